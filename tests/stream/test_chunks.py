"""Ollama chunks at their edges, on both parsers: the msgspec fast path (parse_lines, a whole
read at once) must give exactly what the reference (json.loads + parse_chunk, line by line)
gives, or hand the read to the reference; and what the client then receives."""

from __future__ import annotations

import json
from typing import Any

import pytest

from proxy.errors import UpstreamProtocolError
from proxy.stream.chunks import OllamaChunk, OllamaToolCall, parse_chunk, parse_lines
from proxy.stream.message import MessageBuilder
from proxy.stream.translator import ResponseTranslator

CALL = {"function": {"name": "Bash", "arguments": {"command": "ls"}}}


def reference(lines: list[bytes]) -> list[OllamaChunk]:
    return [parse_chunk(json.loads(line)) for line in lines]


def encoded(*objs: Any) -> list[bytes]:
    return [json.dumps(obj).encode() for obj in objs]


# every row: (an Ollama line, the chunk it is)
CHUNKS = [
    ({"message": {"role": "assistant", "content": "Hi"}, "done": False}, OllamaChunk(content="Hi")),
    ({"message": {"content": "", "thinking": "hmm"}}, OllamaChunk(thinking="hmm")),
    ({"message": None, "done": False}, OllamaChunk()),
    ({"done": False}, OllamaChunk()),
    ({"message": {"content": None, "thinking": None}}, OllamaChunk()),
    ({"message": {"content": "a", "tool_calls": None}}, OllamaChunk(content="a")),
    ({"message": {"content": "a", "tool_calls": []}}, OllamaChunk(content="a")),
    ({"message": {"content": ""}, "done": True, "done_reason": "stop", "prompt_eval_count": 7, "eval_count": 3},
     OllamaChunk(done=True, done_reason="stop", prompt_eval_count=7, eval_count=3)),
    # counts that are not positive integers count as zero
    ({"done": True, "prompt_eval_count": -5, "eval_count": -1}, OllamaChunk(done=True)),
    ({"done": True, "prompt_eval_count": 0, "eval_count": 0}, OllamaChunk(done=True)),
    ({"done": True, "prompt_eval_count": True, "eval_count": True}, OllamaChunk(done=True)),
    ({"done": True, "prompt_eval_count": 2.5, "eval_count": "3"}, OllamaChunk(done=True)),
    ({"done": True, "prompt_eval_count": None, "eval_count": None}, OllamaChunk(done=True)),
    ({"done": True, "prompt_eval_count": 1, "eval_count": 1}, OllamaChunk(done=True, prompt_eval_count=1, eval_count=1)),
    # only a JSON true ends the stream; a done_reason that is not a string is none
    ({"done": "true", "done_reason": "stop"}, OllamaChunk(done_reason="stop")),
    ({"done": 1}, OllamaChunk()),
    ({"done": True, "done_reason": None}, OllamaChunk(done=True)),
    ({"done": True, "done_reason": 5}, OllamaChunk(done=True)),
    # an error line, whatever else it has; a non-string error as its JSON
    ({"error": "model crashed", "done": True}, OllamaChunk(error="model crashed")),
    ({"error": {"code": 500}}, OllamaChunk(error='{"code": 500}')),
    ({"error": None}, OllamaChunk(error="null")),
    # tool calls: id and index kept when they have the right type
    ({"message": {"content": "", "tool_calls": [{"id": "call_1", "function": {"index": 2, "name": "Bash", "arguments": {}}}]}},
     OllamaChunk(tool_calls=(OllamaToolCall("Bash", {}, "call_1", 2),))),
    ({"message": {"content": "", "tool_calls": [{"index": 4, "function": {"name": "Bash", "arguments": {"a": 1}}}]}},
     OllamaChunk(tool_calls=(OllamaToolCall("Bash", {"a": 1}, None, 4),))),
    ({"message": {"content": "", "tool_calls": [{"index": 4, "function": {"index": 0, "name": "Bash"}}]}},
     OllamaChunk(tool_calls=(OllamaToolCall("Bash", {}, None, 0),))),
    ({"message": {"content": "", "tool_calls": [{"id": 7, "function": {"index": True, "name": "Bash", "arguments": "x"}}]}},
     OllamaChunk(tool_calls=(OllamaToolCall("Bash", "x", None, None),))),
    ({"message": {"content": "", "tool_calls": [{"function": {"index": "1", "name": "Bash", "arguments": None}}]}},
     OllamaChunk(tool_calls=(OllamaToolCall("Bash", None, None, None),))),
    ({"message": {"content": "", "tool_calls": [CALL, {"function": {"name": "Read", "arguments": {"file_path": "/x"}}}]}},
     OllamaChunk(tool_calls=(OllamaToolCall("Bash", {"command": "ls"}), OllamaToolCall("Read", {"file_path": "/x"})))),
]


@pytest.mark.parametrize("obj, chunk", CHUNKS)
def test_each_chunk_parses_the_same_on_both_paths(obj, chunk):
    lines = encoded(obj)
    assert reference(lines) == [chunk]
    fast = parse_lines(lines)
    assert fast is None or fast == [chunk]


def test_a_read_of_plain_chunks_takes_the_fast_path_with_every_field():
    # the rows whose every field already has the type parse_chunk reads it as
    lines = encoded(*(obj for obj, _ in CHUNKS[:4] + CHUNKS[5:10] + CHUNKS[13:14] + CHUNKS[18:19] + CHUNKS[21:]))
    fast = parse_lines(lines)
    assert fast is not None
    assert fast == reference(lines)


def test_an_empty_read_is_no_chunks():
    assert parse_lines([]) == []


@pytest.mark.parametrize(
    "bad",
    [
        b"not json",
        b"[1, 2]",
        b'{"done": false} {"done": false}',  # two values on one line
        b'{"message": {"content": "", "tool_calls": [{"function": {"arguments": {}}}]}}',
        b'{"message": {"content": "", "tool_calls": ["Bash"]}}',
        b'{"message": {"content": "", "tool_calls": [{"function": {"name": ""}}]}}',
        b'{"message": {"content": "", "tool_calls": [{"function": {"name": 5}}]}}',
        b'{"message": {"content": "", "tool_calls": [{"function": "Bash"}]}}',
    ],
)
def test_a_read_with_a_bad_line_goes_to_the_reference_path(bad):
    lines = [json.dumps({"message": {"content": "ok"}}).encode(), bad]
    assert parse_lines(lines) is None


@pytest.mark.parametrize(
    "obj, message",
    [
        ([1], "Ollama sent a line that is not an object: [1]"),
        ({"message": "hi"}, "Ollama sent a chunk whose 'message' is not an object"),
        ({"message": {"content": 5}}, "Ollama sent a chunk whose content or thinking is not a string"),
        ({"message": {"content": "", "thinking": 5}}, "Ollama sent a chunk whose content or thinking is not a string"),
        ({"message": {"tool_calls": {"a": 1}}}, "Ollama sent a chunk whose 'tool_calls' is not an array"),
        ({"message": {"tool_calls": ["Bash"]}}, 'Ollama sent a malformed tool call: "Bash"'),
        ({"message": {"tool_calls": [{"function": "Bash"}]}}, 'Ollama sent a malformed tool call: {"function": "Bash"}'),
        ({"message": {"tool_calls": [{"function": {"name": ""}}]}},
         'Ollama sent a tool call without a name: {"function": {"name": ""}}'),
        ({"message": {"tool_calls": [{"function": {"name": None}}]}},
         'Ollama sent a tool call without a name: {"function": {"name": null}}'),
    ],
)
def test_a_malformed_chunk_is_an_error_that_names_what_is_wrong(obj, message):
    with pytest.raises(UpstreamProtocolError) as caught:
        parse_chunk(obj)
    assert str(caught.value) == message


def test_a_long_malformed_value_is_clipped_in_the_error():
    with pytest.raises(UpstreamProtocolError) as caught:
        parse_chunk(["x" * 1000])
    assert str(caught.value) == "Ollama sent a line that is not an object: " + json.dumps(["x" * 1000])[:200]
    with pytest.raises(UpstreamProtocolError) as caught:
        parse_chunk({"message": {"tool_calls": [{"function": {"name": "", "pad": "y" * 1000}}]}})
    assert len(str(caught.value)) == len("Ollama sent a tool call without a name: ") + 200
    with pytest.raises(UpstreamProtocolError) as caught:
        parse_chunk({"message": {"tool_calls": ["z" * 1000]}})
    assert str(caught.value) == "Ollama sent a malformed tool call: " + json.dumps("z" * 1000)[:200]


def run(*objs: Any) -> dict[str, Any]:
    """What a client receives (non-streaming) for these Ollama lines, all in one read."""
    t = ResponseTranslator(client_model="m", input_tokens=1, tools={"Bash": {"type": "object"}},
                           tool_id_factory=lambda: "toolu_1", message_id="msg_1")
    builder = MessageBuilder()
    builder.add(t.start() + t.feed(b"".join(json.dumps(o).encode() + b"\n" for o in objs)) + t.end())
    return builder.message()


@pytest.mark.parametrize("counts", [{"prompt_eval_count": -5, "eval_count": -2}, {"prompt_eval_count": True}])
def test_counts_ollama_gets_wrong_do_not_reach_the_client(counts):
    message = run({"message": {"content": "hello"}}, {"message": {"content": ""}, "done": True, "done_reason": "stop", **counts})
    assert message["content"] == [{"type": "text", "text": "hello"}]
    assert message["usage"]["input_tokens"] == 1  # the estimate stays
    assert message["usage"]["output_tokens"] == 0  # never negative, never True


def test_the_real_counts_reach_the_client():
    message = run({"message": {"content": "hello"}},
                  {"message": {"content": ""}, "done": True, "done_reason": "stop", "prompt_eval_count": 42, "eval_count": 9})
    assert (message["usage"]["input_tokens"], message["usage"]["output_tokens"]) == (42, 9)


def test_a_call_split_over_two_chunks_reaches_the_client_with_its_arguments():
    message = run({"message": {"content": "", "tool_calls": [{"function": {"name": "Bash", "arguments": {"command": "ls"}}}]}},
                  {"message": {"content": ""}, "done": True, "done_reason": "stop"})
    assert message["content"] == [{"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}}]
    assert message["stop_reason"] == "tool_use"
