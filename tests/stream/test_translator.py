"""ResponseTranslator end to end: Ollama NDJSON bytes in, Anthropic events out.

Each answer is read back twice — folded by MessageBuilder (what a ``stream: false`` client
gets) and by the anthropic SDK's own stream accumulator (what a streaming client gets) —
and both must say the same thing.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from anthropic.lib.streaming._messages import accumulate_event

from proxy.errors import UpstreamError, UpstreamProtocolError
from proxy.stream.events import ErrorEvent, Event
from proxy.stream.machine import State
from proxy.stream.message import MessageBuilder
from proxy.stream.translator import ResponseTranslator

CREATED = "2025-06-01T12:00:00Z"
ESTIMATE = 99


def chunk(content: str = "", *, thinking: str | None = None, tool_calls: list | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if thinking is not None:
        message["thinking"] = thinking
    if tool_calls is not None:
        message["tool_calls"] = tool_calls
    return {"model": "qwen3:8b", "created_at": CREATED, "message": message, "done": False}


def final(done_reason: str = "stop", *, prompt_eval_count: int | None = 120, eval_count: int | None = 30, **extra) -> dict[str, Any]:
    obj = chunk(**extra)
    obj.update(done=True, done_reason=done_reason, total_duration=1_000_000, eval_duration=500_000)
    if prompt_eval_count is not None:
        obj["prompt_eval_count"] = prompt_eval_count
    if eval_count is not None:
        obj["eval_count"] = eval_count
    return obj


def call(name: str, arguments: Any, **extra) -> dict[str, Any]:
    return {**extra, "function": {"name": name, "arguments": arguments}}


def ndjson(*objects: dict[str, Any]) -> bytes:
    return b"".join(json.dumps(o, ensure_ascii=False).encode() + b"\n" for o in objects)


def new_translator() -> ResponseTranslator:
    ids = (f"toolu_{n:024x}" for n in itertools.count(1))
    return ResponseTranslator(
        client_model="claude-sonnet-4-5", input_tokens=ESTIMATE, tool_id_factory=lambda: next(ids), message_id="msg_test"
    )


def translate(data: bytes, *, piece: int = 7) -> list[Event]:
    """Feed ``data`` in small pieces (so lines and characters are split), then end."""
    translator = new_translator()
    events = translator.start()
    for i in range(0, len(data), piece):
        events += translator.feed(data[i : i + piece])
    events += translator.end()
    assert translator.finished
    return events


def read_back(events: list[Event]) -> dict[str, Any]:
    """The message a client ends up with; asserts the non-streaming and streaming readings agree."""
    builder = MessageBuilder()
    builder.add(events)
    built = builder.message()

    snapshot, bufs = None, {}
    for event in events:
        snapshot = accumulate_event(event=event.payload(), current_snapshot=snapshot, json_bufs=bufs)
    streamed = snapshot.to_dict()
    for key in ("id", "model", "role", "content", "stop_reason", "stop_sequence"):
        assert streamed[key] == built[key], key
    assert streamed["usage"]["input_tokens"] == built["usage"]["input_tokens"]
    assert streamed["usage"]["output_tokens"] == built["usage"]["output_tokens"]
    return built


def names(events: list[Event]) -> list[str]:
    return [e.NAME for e in events]


def tool_block(n: int, name: str, input: dict[str, Any]) -> dict[str, Any]:
    return {"type": "tool_use", "id": f"toolu_{n:024x}", "name": name, "input": input}


def thinking_block(text: str) -> dict[str, Any]:
    return {"type": "thinking", "thinking": text, "signature": "ollama-local-thinking"}


def test_text_only():
    events = translate(ndjson(chunk("Hel"), chunk("lo, "), chunk("wörld 🙂"), final()))
    assert names(events) == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    message = read_back(events)
    assert message["content"] == [{"type": "text", "text": "Hello, wörld 🙂"}]
    assert message["stop_reason"] == "end_turn"
    assert message["model"] == "claude-sonnet-4-5"


def test_thinking_then_text_including_a_chunk_with_both():
    message = read_back(
        translate(
            ndjson(
                chunk(thinking="The user "),
                chunk(thinking="wants a greeting.", content="Hi"),
                chunk(" there"),
                final(),
            )
        )
    )
    assert message["content"] == [thinking_block("The user wants a greeting."), {"type": "text", "text": "Hi there"}]
    assert message["stop_reason"] == "end_turn"


def test_text_then_tool_call_then_text():
    data = ndjson(
        chunk("I'll write it."),
        chunk(tool_calls=[call("Write", {"file_path": "/tmp/a.txt", "content": "A\n"}, id="call_x1y2z3w4")]),
        chunk("Done."),
        final(),
    )
    message = read_back(translate(data))
    assert message["content"] == [
        {"type": "text", "text": "I'll write it."},
        tool_block(1, "Write", {"file_path": "/tmp/a.txt", "content": "A\n"}),
        {"type": "text", "text": "Done."},
    ]
    assert message["stop_reason"] == "tool_use"


def test_tool_calls_only_in_the_final_chunk_without_id_or_index():
    data = ndjson(
        chunk(thinking="two files"),
        final(tool_calls=[call("Write", {"file_path": "a.txt", "content": "A"}), call("Bash", {"command": "echo B > b.txt"})]),
    )
    events = translate(data)
    message = read_back(events)
    assert message["content"] == [
        thinking_block("two files"),
        tool_block(1, "Write", {"file_path": "a.txt", "content": "A"}),
        tool_block(2, "Bash", {"command": "echo B > b.txt"}),
    ]
    assert message["stop_reason"] == "tool_use"
    # the stop reason comes after every block
    assert names(events)[-2:] == ["message_delta", "message_stop"]


def test_tool_ids_are_fresh_even_when_ollama_repeats_its_own():
    translator = ResponseTranslator(client_model="claude-haiku-4-5", input_tokens=1)
    events = translator.start()
    same = call("Read", {"file_path": "/x"}, id="call_00000000")
    events += translator.feed(ndjson(chunk(tool_calls=[same, same]), final()))
    ids = [b["id"] for b in read_back(events)["content"]]
    assert len(set(ids)) == 2
    assert all(i.startswith("toolu_") and i != "call_00000000" for i in ids)


def test_each_tool_block_gets_input_only_from_one_json_delta():
    events = translate(ndjson(chunk(tool_calls=[call("Edit", {"old_string": "ä", "new_string": "\"q\"", "n": 2})]), final()))
    starts = [e.payload() for e in events if e.NAME == "content_block_start"]
    deltas = [e.payload()["delta"] for e in events if e.NAME == "content_block_delta"]
    assert starts[0]["content_block"]["input"] == {}
    assert [d["type"] for d in deltas] == ["input_json_delta"]
    assert json.loads(deltas[0]["partial_json"]) == {"old_string": "ä", "new_string": "\"q\"", "n": 2}


def test_done_reason_length_means_max_tokens():
    message = read_back(translate(ndjson(chunk("It was a dark and"), final("length"))))
    assert message["stop_reason"] == "max_tokens"
    assert message["content"] == [{"type": "text", "text": "It was a dark and"}]


def test_tool_use_wins_over_length():
    message = read_back(translate(ndjson(chunk(tool_calls=[call("Bash", {"command": "ls"})]), final("length"))))
    assert message["stop_reason"] == "tool_use"


def test_ollama_counts_become_the_usage():
    events = translate(ndjson(chunk("ok"), final(prompt_eval_count=15234, eval_count=87)))
    message_delta = next(e.payload() for e in events if e.NAME == "message_delta")
    assert message_delta["usage"] == {"input_tokens": 15234, "output_tokens": 87}
    assert read_back(events)["usage"]["input_tokens"] == 15234


def test_message_start_carries_the_estimate():
    events = translate(ndjson(chunk("ok"), final()))
    assert events[0].payload()["message"]["usage"]["input_tokens"] == ESTIMATE


def test_absent_counts_keep_the_estimate_for_every_client():
    """Ollama omits zero counts. The client must not be told the prompt had 0 tokens —
    neither the non-streaming one nor a streaming one (the SDK overwrites input_tokens
    with whatever message_delta carries)."""
    message = read_back(translate(ndjson(chunk("ok"), final(prompt_eval_count=None, eval_count=None))))
    assert message["usage"]["input_tokens"] == ESTIMATE
    assert message["usage"]["output_tokens"] == 0


def test_an_error_line_raises_and_fail_gives_the_error_event():
    translator = new_translator()
    translator.start()
    events = translator.feed(ndjson(chunk("partial answer")))
    assert names(events) == ["content_block_start", "content_block_delta"]
    with pytest.raises(UpstreamError, match="CUDA error: out of memory"):
        translator.feed(ndjson({"error": "CUDA error: out of memory"}))
    assert not translator.finished
    failed = translator.fail(UpstreamError("Ollama failed mid-stream: CUDA error: out of memory"))
    assert failed == [ErrorEvent("api_error", "Ollama failed mid-stream: CUDA error: out of memory")]
    assert translator.finished


def test_a_stream_without_its_final_chunk_raises_on_end():
    translator = new_translator()
    translator.start()
    translator.feed(ndjson(chunk("Hello"), chunk(" and then")))
    with pytest.raises(UpstreamProtocolError, match="final chunk"):
        translator.end()
    assert not translator.finished


def test_a_stream_cut_inside_a_line_raises_on_end():
    translator = new_translator()
    translator.start()
    translator.feed(ndjson(chunk("Hello"))[:-9])
    with pytest.raises(UpstreamProtocolError):
        translator.end()


def test_a_garbage_line_raises():
    translator = new_translator()
    translator.start()
    with pytest.raises(UpstreamProtocolError):
        translator.feed(b"<html>bad gateway</html>\n")


@pytest.mark.parametrize(
    "arguments",
    ['{"file_path": "/tmp/a.txt", "limit": 5}', json.dumps('{"file_path": "/tmp/a.txt", "limit": 5}')],
    ids=["json-string", "double-encoded"],
)
def test_arguments_given_as_a_json_string_become_an_object(arguments):
    message = read_back(translate(ndjson(chunk(tool_calls=[call("Read", arguments)]), final())))
    assert message["content"] == [tool_block(1, "Read", {"file_path": "/tmp/a.txt", "limit": 5})]


@pytest.mark.parametrize("arguments", ["not json at all", "[1, 2]", None], ids=["prose", "array", "null"])
def test_arguments_that_are_no_object_become_an_empty_input(arguments):
    message = read_back(translate(ndjson(chunk(tool_calls=[call("Read", arguments)]), final())))
    assert message["content"] == [tool_block(1, "Read", {})]


def test_fail_after_finish_is_a_no_op():
    translator = new_translator()
    translator.start()
    translator.feed(ndjson(chunk("done"), final()))
    assert translator.machine.state is State.FINISHED
    assert translator.fail(UpstreamError("too late")) == []
    assert translator.machine.state is State.FINISHED


def test_fail_twice_gives_one_error_event():
    translator = new_translator()
    translator.start()
    assert len(translator.fail(UpstreamError("first"))) == 1
    assert translator.fail(UpstreamError("second")) == []


def test_fail_before_start_gives_only_the_error_event():
    translator = new_translator()
    assert translator.fail(UpstreamError("Ollama is not running")) == [ErrorEvent("api_error", "Ollama is not running")]


def test_chunks_after_the_final_one_are_ignored():
    events = translate(ndjson(chunk("A"), final(), chunk("B")))
    assert read_back(events)["content"] == [{"type": "text", "text": "A"}]


def test_empty_content_chunks_open_no_block():
    events = translate(ndjson(chunk(""), chunk(thinking=""), chunk("", tool_calls=[]), final()))
    assert names(events) == ["message_start", "message_delta", "message_stop"]
    assert read_back(events)["content"] == []


def test_produced_output_and_done_flags():
    translator = new_translator()
    translator.start()
    translator.feed(ndjson(chunk("")))
    assert not translator.produced_output
    translator.feed(ndjson(chunk("x")))
    assert translator.produced_output and not translator.done
    translator.feed(ndjson(final("length", prompt_eval_count=7, eval_count=3)))
    assert translator.done
    assert (translator.done_reason, translator.input_tokens, translator.output_tokens) == ("length", 7, 3)
