"""The msgspec fast path for Ollama's lines (chunks.parse_lines) against the reference path
(json.loads + parse_chunk, line by line), on generated lines of every shape and type."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from proxy.errors import UpstreamProtocolError
from proxy.stream.chunks import parse_chunk, parse_lines

scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70),
                    st.floats(allow_nan=False), st.text(max_size=8))
anything = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                         st.dictionaries(st.text(max_size=5), inner, max_size=3)),
                        max_leaves=6)
texts = st.one_of(st.text(max_size=20), st.sampled_from(["", "é🙂", "\u2028", '"\\'] ), anything)
tool_call = st.one_of(
    st.fixed_dictionaries({"function": st.fixed_dictionaries(
        {"name": st.one_of(st.sampled_from(["Read", "Bash", ""]), anything)},
        optional={"arguments": anything, "index": anything})}, optional={"id": anything}),
    anything)
message = st.fixed_dictionaries({}, optional={
    "role": st.just("assistant"), "content": texts, "thinking": texts,
    "tool_calls": st.one_of(st.lists(tool_call, max_size=2), anything)})
chunk = st.fixed_dictionaries({}, optional={
    "model": st.just("qwen3:8b"), "message": st.one_of(message, anything), "done": st.one_of(st.booleans(), anything),
    "done_reason": st.one_of(st.sampled_from(["stop", "length", ""]), anything),
    "prompt_eval_count": st.one_of(st.integers(min_value=-5, max_value=10**6), anything),
    "eval_count": st.one_of(st.integers(min_value=-5, max_value=10**6), anything),
    "error": st.one_of(st.text(max_size=10), anything)})
line = st.one_of(chunk.map(lambda o: json.dumps(o, ensure_ascii=False).encode()),
                 anything.map(lambda o: json.dumps(o).encode()),
                 st.sampled_from([b"<html>502</html>", b"{", b'{"a":1} {"b":2}', b"nul", b'{"error": null}',
                                  b'{"error": {"code": 1}}', b'{"message": null}', b'{"message": {"content": null}}',
                                  b'{"done": 1}', b'{"eval_count": true}', b'{"eval_count": -3}',
                                  b'{"done_reason": "stop"}', b'{"message": {"tool_calls": [{"function": {}}]}}']))


def reference(lines: list[bytes]):
    out = []
    try:
        objs = [json.loads(x) for x in lines]
        for obj in objs:
            out.append(parse_chunk(obj))
    except (ValueError, UpstreamProtocolError) as exc:
        return out, type(exc).__name__
    return out, None


@given(st.lists(line, min_size=1, max_size=6))
def test_the_fast_path_gives_the_reference_chunks_or_steps_aside(lines):
    fast = parse_lines(lines)
    expected, error = reference(lines)
    if fast is not None:
        assert error is None and fast == expected


@given(st.lists(st.text(max_size=12), min_size=1, max_size=8), st.booleans())
def test_plain_chunks_take_the_fast_path(texts, thinking):
    field = "thinking" if thinking else "content"
    lines = [json.dumps({"model": "m", "message": {"role": "assistant", field: t}, "done": False},
                        ensure_ascii=False).encode() for t in texts]
    lines.append(b'{"model":"m","message":{"role":"assistant","content":""},"done_reason":"stop","done":true,'
                 b'"prompt_eval_count":12,"eval_count":3}')
    fast = parse_lines(lines)
    assert fast is not None and fast == reference(lines)[0]
