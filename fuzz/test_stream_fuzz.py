"""Generated Ollama streams, split at random bytes, through the decoder and the translator.

Every stream the proxy produces must pass the independent validator, and the text must
come out exactly as the model produced it. A stateful test interleaves feeds of random
sizes, and a regression test replays every example kept under fuzz/regressions/.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from fuzz.validator import validate
from proxy.errors import UpstreamError
from proxy.stream.dialects import DIALECTS
from proxy.stream.message import MessageBuilder
from proxy.stream.translator import ResponseTranslator

REGRESSIONS = Path(__file__).parent / "regressions"

texts = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=12),
    st.sampled_from(["", " ", "\n", "é", "🙂", "日本語", "\u2028", "\x00", "{", "<tool_call>", "```"]),
    st.text(min_size=2000, max_size=4000, alphabet="ab \n🙂"),
)
arguments = st.one_of(
    st.dictionaries(st.text(max_size=8), st.one_of(st.integers(), st.text(max_size=20), st.booleans(), st.none()), max_size=4),
    st.text(max_size=30).map(json.dumps),  # a JSON string (double-encoded or not an object)
)
tool_calls = st.lists(
    st.fixed_dictionaries(
        {"function": st.fixed_dictionaries({"name": st.sampled_from(["Bash", "Write", "Read"]), "arguments": arguments})},
        optional={"id": st.just("call_x"), "index": st.integers(0, 3)},
    ),
    max_size=2,
)
chunk = st.fixed_dictionaries(
    {"content": texts},
    optional={"thinking": texts, "tool_calls": tool_calls},
)
final = st.fixed_dictionaries(
    {"done_reason": st.sampled_from(["stop", "length", "load", "unload", ""])},
    optional={"prompt_eval_count": st.integers(0, 10**6), "eval_count": st.integers(0, 10**6),
              "tool_calls": tool_calls, "content": texts},
)
streams = st.tuples(
    st.lists(chunk, max_size=12),
    final,
    st.one_of(st.none(), st.integers(0, 12)),  # where an {"error": …} line replaces the rest
    st.booleans(),  # whether the body is cut before the final chunk (no done)
)


def ndjson(stream) -> tuple[bytes, str, bool]:
    """(the body, the text the client must see, whether it ends in an error)."""
    chunks, last, error_at, truncated = stream
    lines, expected = [], ""
    for i, c in enumerate(chunks):
        if error_at == i:
            lines.append({"error": "the model crashed"})
            return b"".join(json.dumps(l).encode() + b"\n" for l in lines), expected, True
        lines.append({"model": "m", "created_at": "2026-01-01T00:00:00Z",
                      "message": {"role": "assistant", **{k: v for k, v in c.items()}}, "done": False})
        expected += c.get("content", "")
    if truncated:
        return b"".join(json.dumps(l).encode() + b"\n" for l in lines), expected, True
    message = {"role": "assistant", "content": last.get("content", "")}
    if "tool_calls" in last:
        message["tool_calls"] = last["tool_calls"]
    expected += message["content"]
    done = {"model": "m", "message": message, "done": True, **{k: v for k, v in last.items() if k not in ("tool_calls", "content")}}
    lines.append(done)
    return b"".join(json.dumps(l).encode() + b"\n" for l in lines), expected, False


def run(body: bytes, cuts: list[int]) -> list:
    """Feed ``body`` split at ``cuts``; return the events as (name, payload), as a client sees them."""
    translator = ResponseTranslator(client_model="claude-x", input_tokens=7)
    events = list(translator.start())
    points = sorted({c % (len(body) + 1) for c in cuts}) if body else []
    pieces = [body[a:b] for a, b in zip([0, *points], [*points, len(body)])]
    try:
        for piece in pieces:
            events += translator.feed(piece)
            if translator.done:
                break
        else:
            events += translator.end()
    except UpstreamError as exc:
        events += translator.fail(exc)
    return [(e.NAME, e.payload()) for e in events]


def check(body: bytes, cuts: list[int], expected: str, fails: bool, *, in_hypothesis: bool = True) -> None:
    events = run(body, cuts)
    if in_hypothesis:
        note(f"events: {events[:40]}")
    summary = validate(events, expected_text=None if fails else expected)
    if fails:
        assert summary.error is not None and summary.stop_reason is None
    else:
        assert summary.error is None
    # Everything the model said before a failure reached the client too.
    assert summary.text == expected


@given(streams, st.lists(st.integers(min_value=0), max_size=30))
def test_any_stream_split_anywhere_is_well_formed(stream, cuts):
    body, expected, fails = ndjson(stream)
    check(body, cuts, expected, fails)


@settings(max_examples=max(10, settings().max_examples // 5))
@given(streams)
def test_one_byte_at_a_time_is_the_same_as_whole(stream):
    body, _, _ = ndjson(stream)
    if len(body) > 3000:
        body = body[:3000]  # keep the byte-by-byte run quick; the cut stream fails cleanly
    whole = run(body, [])
    bytewise = run(body, list(range(len(body))))
    strip = lambda events: [(n, p) for n, p in events if n != "message_start"]
    ids = lambda events: [p["content_block"].get("id") for n, p in events if n == "content_block_start"]
    # tool ids are fresh per run; everything else must match exactly
    assert len(ids(whole)) == len(ids(bytewise))
    scrub = lambda events: json.dumps(strip(events)).replace("toolu_", "")
    normalized = lambda events: [(n, p if n != "content_block_start" or p["content_block"]["type"] != "tool_use"
                                  else {**p, "content_block": {**p["content_block"], "id": "x"}}) for n, p in events]
    assert normalized(strip(whole)) == normalized(strip(bytewise)), scrub(whole)[:200]


# -- text-form tool calls in every dialect, with tools offered --------------------------------

_DIALECT_PIECES = sorted(
    {o for d in DIALECTS for o in d.openers}
    | {s.text for d in DIALECTS for s in d.samples}
    | {"{", "}", "[", "]", "(", ")", "`", "```", "\n", " ", '"name": ', '"Bash"', '"arguments": ', "Bash", "nope",
       "</tool_call>", "<|eom_id|>", "</s>", "<think>", "</think>", "prose ", "é🙂"}
)
_TOOLS = {"Bash": {"type": "object", "properties": {"command": {"type": "string"}}},
          "Write": {"type": "object", "properties": {"file_path": {"type": "string"}, "content": {"type": "string"}}}}


def _fold(pieces: list[str], thinking: bool) -> tuple[list, list]:
    """Content ``pieces`` (one chunk each) with tools offered → (events, folded blocks)."""
    translator = ResponseTranslator(client_model="claude-x", input_tokens=1, tools=_TOOLS, thinking=thinking)
    events = list(translator.start())
    lines = [{"model": "m", "message": {"role": "assistant", "content": p}, "done": False} for p in pieces]
    lines.append({"model": "m", "message": {"role": "assistant", "content": ""}, "done": True, "done_reason": "stop"})
    for line in lines:
        events += translator.feed(json.dumps(line).encode() + b"\n")
    builder = MessageBuilder()
    builder.add(events)
    blocks = [{k: v for k, v in b.items() if k != "id"} for b in builder.message()["content"]]
    return [(e.NAME, e.payload()) for e in events], blocks


@given(st.lists(st.sampled_from(_DIALECT_PIECES) | st.text(max_size=8), max_size=14), st.lists(st.integers(0, 10**4), max_size=8),
       st.booleans())
def test_printed_calls_in_any_dialect_split_anywhere_are_the_same_and_well_formed(parts, cuts, thinking):
    text = "".join(parts)
    points = sorted({c % (len(text) + 1) for c in cuts})
    pieces = [text[a:b] for a, b in zip([0, *points], [*points, len(text)])]
    events, blocks = _fold(pieces, thinking)
    validate(events)
    assert blocks == _fold([text], thinking)[1]


class FeedMachine(RuleBasedStateMachine):
    """Feed a generated stream in pieces of random sizes, checking the prefix as we go."""

    def __init__(self) -> None:
        super().__init__()
        self.translator = ResponseTranslator(client_model="claude-x", input_tokens=1)
        self.events = [(e.NAME, e.payload()) for e in self.translator.start()]
        self.body = b""
        self.offset = 0
        self.failed = False
        self.builder = MessageBuilder()

    @precondition(lambda self: not self.body)
    @rule(stream=streams)
    def choose_stream(self, stream) -> None:
        self.body, self.expected, self.fails = ndjson(stream)
        if not self.body:
            self.body = b"\n"

    @precondition(lambda self: self.body and self.offset < len(self.body) and not self.failed and not self.translator.done)
    @rule(size=st.integers(1, 64))
    def feed(self, size: int) -> None:
        piece = self.body[self.offset: self.offset + size]
        self.offset += len(piece)
        try:
            self.events += [(e.NAME, e.payload()) for e in self.translator.feed(piece)]
        except UpstreamError as exc:
            self.events += [(e.NAME, e.payload()) for e in self.translator.fail(exc)]
            self.failed = True

    @rule()
    def client_reads_what_was_sent(self) -> None:
        """Always possible: what the client has so far folds into a message."""
        validate(self.events, allow_incomplete=True)

    @invariant()
    def what_was_sent_is_well_formed(self) -> None:
        validate(self.events, allow_incomplete=True)

    def teardown(self) -> None:
        if self.body and not self.failed and not self.translator.done:
            self.feed(len(self.body))
            try:
                self.events += [(e.NAME, e.payload()) for e in self.translator.end()]
            except UpstreamError as exc:
                self.events += [(e.NAME, e.payload()) for e in self.translator.fail(exc)]
        if self.body:
            validate(self.events)


TestFeedMachine = FeedMachine.TestCase


@pytest.mark.parametrize("path", sorted(REGRESSIONS.glob("stream-*.json")), ids=lambda p: p.stem)
def test_regressions(path):
    case = json.loads(path.read_text())
    check(case["body"].encode("utf-8"), case["cuts"], case["expected_text"], case["fails"], in_hypothesis=False)
