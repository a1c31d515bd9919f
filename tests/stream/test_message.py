"""The non-streaming answer (``stream: false``): the events folded into one Messages
response, exactly as a client reads it."""

from __future__ import annotations

import pytest

from proxy.stream.events import (
    ContentBlockDelta,
    ContentBlockStart,
    ContentBlockStop,
    MessageDelta,
    MessageStart,
    MessageStop,
    Ping,
)
from proxy.stream.message import MessageBuilder


def test_every_kind_of_block_is_folded_into_the_message():
    builder = MessageBuilder()
    builder.add([MessageStart("msg_1", "claude-x", 12), Ping()])
    builder.add([
        ContentBlockStart(0, {"type": "thinking", "thinking": "", "signature": ""}),
        ContentBlockDelta(0, {"type": "thinking_delta", "thinking": "Let me "}),
        ContentBlockDelta(0, {"type": "thinking_delta", "thinking": "see."}),
        ContentBlockDelta(0, {"type": "signature_delta", "signature": "sig"}),
        ContentBlockStop(0),
        ContentBlockStart(1, {"type": "text", "text": ""}),
        ContentBlockDelta(1, {"type": "text_delta", "text": "Run "}),
        ContentBlockDelta(1, {"type": "text_delta", "text": "it."}),
        ContentBlockStop(1),
        ContentBlockStart(2, {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {}}),
        ContentBlockDelta(2, {"type": "input_json_delta", "partial_json": '{"command": '}),
        ContentBlockDelta(2, {"type": "input_json_delta", "partial_json": '"ls"}'}),
        ContentBlockStop(2),
        MessageDelta("tool_use", 40, 7),
        MessageStop(),
    ])
    assert builder.message() == {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
        "content": [{"type": "thinking", "thinking": "Let me see.", "signature": "sig"},
                    {"type": "text", "text": "Run it."},
                    {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}}],
        "stop_reason": "tool_use", "stop_sequence": None,
        "usage": {"input_tokens": 40, "output_tokens": 7, "cache_creation_input_tokens": 0,
                  "cache_read_input_tokens": 0},
    }


def test_two_tool_calls_keep_their_own_arguments():
    builder = MessageBuilder()
    builder.add([MessageStart("msg_1", "m", 1),
                 ContentBlockStart(0, {"type": "tool_use", "id": "a", "name": "Bash", "input": {}}),
                 ContentBlockDelta(0, {"type": "input_json_delta", "partial_json": '{"command": "ls"}'}),
                 ContentBlockStop(0),
                 ContentBlockStart(1, {"type": "tool_use", "id": "b", "name": "Bash", "input": {}}),
                 ContentBlockDelta(1, {"type": "input_json_delta", "partial_json": '{"command": "pwd"}'}),
                 ContentBlockStop(1),
                 MessageDelta("tool_use", 0, 2)])
    message = builder.message()
    assert [b["input"] for b in message["content"]] == [{"command": "ls"}, {"command": "pwd"}]


def test_the_stop_sequence_and_a_missing_real_count_reach_the_client():
    builder = MessageBuilder()
    builder.add([MessageStart("msg_1", "m", 12),
                 ContentBlockStart(0, {"type": "text", "text": ""}),
                 ContentBlockDelta(0, {"type": "text_delta", "text": "a"}),
                 ContentBlockStop(0),
                 MessageDelta("stop_sequence", 0, 3, stop_sequence="END")])
    message = builder.message()
    assert (message["stop_reason"], message["stop_sequence"]) == ("stop_sequence", "END")
    # Ollama's count was not there (0): the estimate from message_start stays
    assert message["usage"]["input_tokens"] == 12
    assert message["usage"]["output_tokens"] == 3
    # any real count replaces the estimate, 1 included
    builder = MessageBuilder()
    builder.add([MessageStart("msg_1", "m", 12), MessageDelta("end_turn", 1, 1)])
    assert builder.message()["usage"]["input_tokens"] == 1


def test_a_message_without_its_start_is_an_error_not_a_half_answer():
    builder = MessageBuilder()
    builder.add([MessageDelta("end_turn", 5, 5)])  # ignored: nothing to put it in
    with pytest.raises(RuntimeError, match="no message_start was seen"):
        builder.message()


def test_the_message_is_a_fresh_copy_each_time():
    builder = MessageBuilder()
    builder.add([MessageStart("msg_1", "m", 1), MessageDelta("end_turn", 0, 1)])
    first = builder.message()
    first["content"].append("x")
    first["stop_reason"] = "changed"
    assert builder.message()["content"] == []
    assert builder.message()["stop_reason"] == "end_turn"
