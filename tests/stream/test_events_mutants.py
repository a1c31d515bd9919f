"""The SSE frames the client parses (proxy/stream/events.py), byte for byte: each event's
frame, and the fast path for deltas giving exactly the generic path's bytes."""

from __future__ import annotations

import json

import pytest

from proxy.stream.events import (
    ContentBlockDelta,
    ContentBlockStart,
    ContentBlockStop,
    ErrorEvent,
    MessageDelta,
    MessageStart,
    MessageStop,
    Ping,
    encode_sse,
)


def generic(name: str, payload: dict) -> bytes:
    text = f"event: {name}\ndata: {json.dumps(payload, ensure_ascii=False, separators=(',', ':'))}\n\n"
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace").encode()


def test_each_event_frame_byte_for_byte() -> None:
    assert encode_sse(Ping()) == b'event: ping\ndata: {"type":"ping"}\n\n'
    assert encode_sse(MessageStop()) == b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
    assert encode_sse(ContentBlockStop(3)) == b'event: content_block_stop\ndata: {"type":"content_block_stop","index":3}\n\n'
    assert encode_sse(ErrorEvent("overloaded_error", "busy")) == (
        b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"busy"}}\n\n'
    )
    assert encode_sse(MessageDelta("tool_use", 12, 34)) == (
        b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},'
        b'"usage":{"input_tokens":12,"output_tokens":34}}\n\n'
    )
    assert encode_sse(ContentBlockStart(1, {"type": "text", "text": ""})) == (
        b'event: content_block_start\ndata: {"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}\n\n'
    )
    assert encode_sse(MessageStart("msg_1", "claude-x", 7)) == (
        b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","type":"message",'
        b'"role":"assistant","model":"claude-x","content":[],"stop_reason":null,"stop_sequence":null,'
        b'"usage":{"input_tokens":7,"output_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0}}}\n\n'
    )


@pytest.mark.parametrize(
    "delta",
    [
        {"type": "text_delta", "text": "héllo \"q\" \\ \n 😀"},
        {"type": "thinking_delta", "thinking": "hmm"},
        {"type": "input_json_delta", "partial_json": '{"a":1'},
        {"type": "text_delta", "text": "a\ud800b"},  # a lone surrogate: U+FFFD, not a crash
        {"text": "x", "type": "text_delta"},  # "type" not first: the generic path keeps the order
        {"type": "text_delta", "text": "x", "extra": 1},
        {"type": "text_delta", "thinking": "wrong field"},
        {"type": "text_delta", "text": 5},
        {"type": "signature_delta", "signature": "sig"},
        {"type": "text_delta"},
        {},
    ],
)
def test_a_delta_frame_is_the_generic_frame(delta: dict) -> None:
    event = ContentBlockDelta(12, delta)
    assert encode_sse(event) == generic("content_block_delta", event.payload())
