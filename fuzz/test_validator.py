"""The validator must accept well-formed streams and name the rule a broken one breaks."""

from __future__ import annotations

import copy
import json

import pytest

from fuzz.validator import GrammarError, parse_sse, validate

START = ("message_start", {"type": "message_start", "message": {"usage": {"input_tokens": 3, "output_tokens": 0}}})
STOP = ("message_stop", {"type": "message_stop"})


def delta(reason="end_turn", out=2):
    return ("message_delta", {"type": "message_delta", "delta": {"stop_reason": reason}, "usage": {"output_tokens": out}})


def block(index, kind, **extra):
    content = {"text": {"type": "text", "text": ""}, "thinking": {"type": "thinking", "thinking": "", "signature": ""},
               "tool_use": {"type": "tool_use", "id": f"toolu_{index:024x}", "name": "Bash", "input": {}}}[kind]
    return ("content_block_start", {"type": "content_block_start", "index": index, "content_block": {**content, **extra}})


def d(index, kind, value):
    field = {"text_delta": "text", "thinking_delta": "thinking", "input_json_delta": "partial_json",
             "signature_delta": "signature"}[kind]
    return ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": {"type": kind, field: value}})


def stop(index):
    return ("content_block_stop", {"type": "content_block_stop", "index": index})


GOOD = [START, block(0, "thinking"), d(0, "thinking_delta", "hm"), d(0, "signature_delta", "s"), stop(0),
        block(1, "text"), d(1, "text_delta", "Hi"), stop(1),
        block(2, "tool_use"), d(2, "input_json_delta", '{"command":'), d(2, "input_json_delta", '"ls"}'), stop(2),
        delta("tool_use"), STOP]


def test_a_good_stream_passes_and_is_summarized():
    summary = validate(GOOD, expected_text="Hi")
    assert summary.thinking == "hm" and summary.text == "Hi"
    assert summary.tool_calls == [("toolu_" + "0" * 23 + "2", "Bash", {"command": "ls"})]
    assert summary.stop_reason == "tool_use"


def test_sse_round_trip():
    raw = b"".join(f"event: {n}\ndata: {json.dumps(p)}\n\n".encode() for n, p in GOOD)
    assert parse_sse(raw) == GOOD


def broken(mutate):
    events = copy.deepcopy(GOOD)
    mutate(events)
    return events


@pytest.mark.parametrize(
    "events, rule",
    [
        (GOOD[1:], "order"),
        (broken(lambda e: e[0][1]["message"].pop("usage")), "usage"),
        (broken(lambda e: e.insert(6, block(2, "text"))), "one-open-block"),
        (broken(lambda e: e[5][1].update(index=5)), "indices"),
        (broken(lambda e: e.__setitem__(6, d(1, "thinking_delta", "x"))), "delta-type"),
        (broken(lambda e: e.pop(7)), "one-open-block"),
        (broken(lambda e: e.__setitem__(6, d(1, "text_delta", ""))), "no-empty-text"),
        (broken(lambda e: e.pop(3)), "thinking-signature"),
        (broken(lambda e: e.__setitem__(9, d(2, "input_json_delta", "["))), "tool-json"),
        (broken(lambda e: e.__setitem__(12, delta("end_turn"))), "stop-reason"),
        (broken(lambda e: e.__setitem__(12, delta("bogus"))), "stop-reason"),
        (broken(lambda e: e.pop()), "complete"),
        (broken(lambda e: e.append(("error", {"type": "error", "error": {"type": "api_error", "message": "x"}}))), "order"),
        (broken(lambda e: e[8][1]["content_block"].update(input={"a": 1})), "tool-input"),
    ],
)
def test_each_rule_is_named(events, rule):
    with pytest.raises(GrammarError, match=f"^{rule}"):
        validate(events)


def test_text_must_be_preserved():
    with pytest.raises(GrammarError, match="^text-preserved"):
        validate(GOOD, expected_text="Hello")


def test_an_error_ends_the_stream():
    events = GOOD[:7] + [("error", {"type": "error", "error": {"type": "api_error", "message": "boom"}})]
    assert validate(events).error["message"] == "boom"
    with pytest.raises(GrammarError, match="^error-is-last"):
        validate(events + [stop(1)])
