"""The byte templates for delta frames give exactly the bytes of the generic SSE encoder."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.protocol.bounded import utf8
from proxy.stream.events import ContentBlockDelta, _encode_json, encode_sse

FIELDS = {"text_delta": "text", "thinking_delta": "thinking", "input_json_delta": "partial_json"}


def generic(event) -> bytes:
    return utf8(f"event: {event.NAME}\ndata: {_encode_json(event.payload())}\n\n")


@given(st.sampled_from(sorted(FIELDS)), st.integers(min_value=0, max_value=10**6), st.text())
def test_delta_templates_match_the_generic_encoding(kind, index, text):
    event = ContentBlockDelta(index, {"type": kind, FIELDS[kind]: text})
    assert encode_sse(event) == generic(event)


@pytest.mark.parametrize("delta", [
    {"type": "signature_delta", "signature": "x"},       # no template: the generic path
    {"text": "a", "type": "text_delta"},                 # keys in another order
    {"type": "text_delta", "text": "a", "extra": 1},
    {"type": "text_delta", "text": 5},
])
def test_other_deltas_take_the_generic_path(delta):
    event = ContentBlockDelta(0, delta)
    assert encode_sse(event) == generic(event)


def test_a_lone_surrogate_is_replaced_the_same_on_both_paths():
    """Model text is client-visible text: no encoder may raise on it (issue 14)."""
    event = ContentBlockDelta(0, {"type": "text_delta", "text": "a\ud800b"})
    assert encode_sse(event) == generic(event)
    assert '"text":"a\ufffdb"'.encode() in encode_sse(event)
