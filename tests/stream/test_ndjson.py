"""The incremental NDJSON decoder (proxy/stream/ndjson.py) and the chunk parser
(proxy/stream/chunks.py) on the shapes real Ollama servers send (WIRE.md)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.errors import UpstreamProtocolError
from proxy.stream.chunks import OllamaChunk, OllamaToolCall, parse_chunk
from proxy.stream.ndjson import NDJSONDecoder

# Multi-byte UTF-8 on purpose: "é" is 2 bytes, CJK 3, "🙂" 4.
OBJECTS = [
    {"model": "qwen3:8b", "message": {"role": "assistant", "content": "", "thinking": "café"}, "done": False},
    {"model": "qwen3:8b", "message": {"role": "assistant", "content": "🙂 日本語"}, "done": False},
    {"model": "qwen3:8b", "message": {"role": "assistant", "content": "x"}, "done": True, "eval_count": 3},
]
DATA = b"".join(json.dumps(o, ensure_ascii=False).encode("utf-8") + b"\n" for o in OBJECTS)


def decode(pieces: list[bytes], **kwargs) -> list:
    decoder = NDJSONDecoder(**kwargs)
    out = []
    for piece in pieces:
        out += decoder.feed(piece)
    decoder.close()
    return out


def test_the_sample_has_multibyte_characters_to_split():
    for char in ("é", "🙂", "日"):
        assert char.encode("utf-8") in DATA


@pytest.mark.parametrize("offset", range(len(DATA) + 1))
def test_split_at_any_byte_gives_the_same_objects(offset):
    assert decode([DATA[:offset], DATA[offset:]]) == OBJECTS


@pytest.mark.parametrize("char", ["é", "🙂", "日"])
def test_split_inside_a_multibyte_character(char):
    encoded = char.encode("utf-8")
    start = DATA.index(encoded)
    for cut in range(1, len(encoded)):
        assert decode([DATA[: start + cut], DATA[start + cut :]]) == OBJECTS


def test_one_byte_at_a_time():
    assert decode([DATA[i : i + 1] for i in range(len(DATA))]) == OBJECTS


@settings(max_examples=200, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=len(DATA)), max_size=20))
def test_split_anywhere_many_times(cuts):
    bounds = [0, *sorted(cuts), len(DATA)]
    assert decode([DATA[a:b] for a, b in zip(bounds, bounds[1:])]) == OBJECTS


def test_objects_come_out_as_soon_as_their_line_is_complete():
    decoder = NDJSONDecoder()
    first_line_end = DATA.index(b"\n") + 1
    assert decoder.feed(DATA[: first_line_end - 1]) == []
    assert decoder.feed(DATA[first_line_end - 1 : first_line_end]) == [OBJECTS[0]]


def test_blank_lines_are_skipped():
    line = json.dumps(OBJECTS[0]).encode()
    data = b"\n\n   \n" + line + b"\n\r\n\t\n" + line + b"\r\n\n"
    assert decode([data]) == [OBJECTS[0], OBJECTS[0]]


def test_empty_feed_is_nothing():
    decoder = NDJSONDecoder()
    assert decoder.feed(b"") == []
    decoder.close()


@pytest.mark.parametrize(
    "line",
    [b"not json", b"{\"message\": {", b"<html>502 Bad Gateway</html>", b"\xff\xfe{}"],
    ids=["words", "broken-object", "html", "not-utf8"],
)
def test_a_line_that_is_not_json_raises(line):
    decoder = NDJSONDecoder()
    assert decoder.feed(DATA) == OBJECTS
    with pytest.raises(UpstreamProtocolError, match="not JSON"):
        decoder.feed(line + b"\n")


def test_close_with_a_truncated_last_line_raises():
    decoder = NDJSONDecoder()
    decoder.feed(DATA + b'{"model":"qwen3:8b","mess')
    with pytest.raises(UpstreamProtocolError, match="middle of a line"):
        decoder.close()


def test_close_after_complete_lines_and_trailing_whitespace_is_fine():
    decoder = NDJSONDecoder()
    assert decoder.feed(DATA + b"  \r") == OBJECTS
    decoder.close()


@pytest.mark.parametrize(
    "pieces",
    [
        [b'{"content":"' + b"x" * 100 + b'"}'],
        [b'{"content":"' + b"x" * 100 + b'"}\n'],
        [b'{"a":1}\n{"content":"' + b"x" * 50, b"x" * 50 + b'"}\n'],
        [b'{"content":"', b"x" * 40, b"x" * 40, b"x" * 40],
    ],
    ids=["no-newline", "with-its-newline", "after-a-short-line", "in-pieces"],
)
def test_a_line_longer_than_the_limit_raises_however_it_arrives(pieces):
    decoder = NDJSONDecoder(max_line=64)
    with pytest.raises(UpstreamProtocolError, match="longer than 64 bytes"):
        for piece in pieces:
            decoder.feed(piece)


def test_lines_up_to_the_limit_are_fine():
    line = b'{"c":"' + b"x" * 56 + b'"}'
    assert len(line) == 64
    assert decode([line + b"\n", line[:10], line[10:] + b"\n"], max_line=64) == [{"c": "x" * 56}] * 2


def test_the_errors_quote_the_first_80_bytes_of_the_line():
    long = b"<html>" + b"x" * 200
    with pytest.raises(UpstreamProtocolError) as caught:
        NDJSONDecoder().feed(long + b"\n")
    assert str(caught.value) == f"Ollama sent a line that is not JSON: {long[:80]!r}"
    decoder = NDJSONDecoder()
    decoder.feed(b'{"a": 1}\n' + long)
    with pytest.raises(UpstreamProtocolError) as caught:
        decoder.close()
    assert str(caught.value) == f"Ollama's stream ended in the middle of a line: {long[:80]!r}"
    decoder.close()  # reported once: the cut-off line is gone


def test_the_default_line_limit_is_64_mib():
    decoder = NDJSONDecoder()
    decoder.feed(b"x" * (64 * 1024 * 1024))  # exactly the limit, still open: fine
    with pytest.raises(UpstreamProtocolError, match=f"longer than {64 * 1024 * 1024} bytes"):
        decoder.feed(b"x")


def test_lines_and_blank_lines_come_out_unparsed_for_the_fast_path():
    decoder = NDJSONDecoder()
    assert decoder.feed_lines(b"") == []
    assert decoder.feed_lines(b'{"a": 1}\n\n  \n{"b"') == [b'{"a": 1}']
    assert decoder.feed_lines(b": 2}\n") == [b'{"b": 2}']
    decoder.close()


# --- parse_chunk on real chunk shapes (WIRE.md) -----------------------------------------

CREATED = "2025-06-01T12:00:00.123456Z"


def test_a_chunk_with_thinking_and_content_together():
    raw = {
        "model": "qwen3:8b",
        "created_at": CREATED,
        "message": {"role": "assistant", "content": "Sure.", "thinking": "The user wants a file."},
        "done": False,
    }
    assert parse_chunk(raw) == OllamaChunk(content="Sure.", thinking="The user wants a file.")


def test_a_plain_content_chunk():
    raw = {"model": "qwen3:8b", "created_at": CREATED, "message": {"role": "assistant", "content": "Hi"}, "done": False}
    chunk = parse_chunk(raw)
    assert (chunk.content, chunk.thinking, chunk.tool_calls, chunk.done, chunk.error) == ("Hi", "", (), False, None)


def test_tool_calls_with_id_and_index():
    raw = {
        "model": "qwen3:8b",
        "created_at": CREATED,
        "message": {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"id": "call_ab12cd34", "function": {"index": 0, "name": "Write", "arguments": {"file_path": "a.txt", "content": "A\n"}}},
                {"id": "call_ef56gh78", "function": {"index": 1, "name": "Bash", "arguments": {"command": "ls"}}},
            ],
        },
        "done": False,
    }
    assert parse_chunk(raw).tool_calls == (
        OllamaToolCall(name="Write", arguments={"file_path": "a.txt", "content": "A\n"}, id="call_ab12cd34", index=0),
        OllamaToolCall(name="Bash", arguments={"command": "ls"}, id="call_ef56gh78", index=1),
    )


def test_tool_calls_without_id_or_index_as_older_servers_send_them():
    raw = {
        "model": "llama3.2:3b",
        "created_at": CREATED,
        "message": {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "Read", "arguments": {"file_path": "/x"}}}]},
        "done": False,
    }
    assert parse_chunk(raw).tool_calls == (OllamaToolCall(name="Read", arguments={"file_path": "/x"}, id=None, index=None),)


def test_tool_call_without_arguments_gets_an_empty_object():
    raw = {"message": {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "ListAgents"}}]}, "done": False}
    assert parse_chunk(raw).tool_calls[0].arguments == {}


def test_tool_call_arguments_double_encoded_are_kept_for_repair():
    raw = {"message": {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "Read", "arguments": '{"file_path": "/x"}'}}]}}
    assert parse_chunk(raw).tool_calls[0].arguments == '{"file_path": "/x"}'


def test_the_final_chunk_with_counts():
    raw = {
        "model": "qwen3:8b",
        "created_at": CREATED,
        "message": {"role": "assistant", "content": ""},
        "done": True,
        "done_reason": "stop",
        "total_duration": 5_000_000_000,
        "load_duration": 1_000_000,
        "prompt_eval_count": 1234,
        "prompt_eval_duration": 900_000_000,
        "eval_count": 56,
        "eval_duration": 4_000_000_000,
    }
    assert parse_chunk(raw) == OllamaChunk(done=True, done_reason="stop", prompt_eval_count=1234, eval_count=56)


def test_the_final_chunk_with_counts_absent_means_zero():
    raw = {"model": "qwen3:8b", "created_at": CREATED, "message": {"role": "assistant", "content": ""}, "done": True, "done_reason": "length"}
    assert parse_chunk(raw) == OllamaChunk(done=True, done_reason="length", prompt_eval_count=0, eval_count=0)


def test_the_final_chunk_may_carry_tool_calls():
    raw = {
        "model": "qwen3:8b",
        "created_at": CREATED,
        "message": {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "Bash", "arguments": {"command": "pwd"}}}]},
        "done": True,
        "done_reason": "stop",
        "prompt_eval_count": 10,
        "eval_count": 2,
    }
    chunk = parse_chunk(raw)
    assert chunk.done and chunk.tool_calls == (OllamaToolCall(name="Bash", arguments={"command": "pwd"}),)


@pytest.mark.parametrize("reason", [None, ""], ids=["absent", "empty"])
def test_missing_done_reason_is_empty(reason):
    raw = {"message": {"role": "assistant", "content": ""}, "done": True}
    if reason is not None:
        raw["done_reason"] = reason
    assert parse_chunk(raw).done_reason == ""


def test_an_error_line():
    chunk = parse_chunk({"error": "an error was encountered while running the model: unexpected EOF"})
    assert chunk.error == "an error was encountered while running the model: unexpected EOF"


def test_an_error_line_with_a_non_string_error_still_reports_it():
    chunk = parse_chunk({"error": {"code": 500, "detail": "boom"}})
    assert chunk.error is not None and "boom" in chunk.error


@pytest.mark.parametrize(
    "raw",
    [
        ["not", "an", "object"],
        "text",
        {"message": "hello"},
        {"message": {"content": 5}},
        {"message": {"content": "", "thinking": ["x"]}},
        {"message": {"content": "", "tool_calls": {"function": {"name": "x"}}}},
        {"message": {"content": "", "tool_calls": ["Write"]}},
        {"message": {"content": "", "tool_calls": [{"function": {"arguments": {}}}]}},
        {"message": {"content": "", "tool_calls": [{"function": {"name": "", "arguments": {}}}]}},
    ],
    ids=[
        "array",
        "string",
        "message-not-object",
        "content-not-string",
        "thinking-not-string",
        "tool-calls-not-array",
        "tool-call-not-object",
        "tool-call-without-name",
        "tool-call-empty-name",
    ],
)
def test_malformed_chunks_raise(raw):
    with pytest.raises(UpstreamProtocolError):
        parse_chunk(raw)


def test_a_line_nested_too_deep_is_an_upstream_error_quoting_its_first_80_bytes():
    line = b'{"model":"m","message":{"role":"assistant","tool_calls":[{"function":{"arguments":' + b'{"a":' * 1000 + b"1" + b"}" * 1000 + b"}}]}}"
    with pytest.raises(UpstreamProtocolError) as caught:
        NDJSONDecoder.parse(line)
    assert str(caught.value) == f"Ollama sent a line nested too deep to read: {line[:80]!r}"
