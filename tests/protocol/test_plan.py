"""The planner (proxy/protocol/plan.py): which fallbacks a plan carries for which inputs,
what each fallback sends, and that nothing changes a plan once made."""

from __future__ import annotations

import copy
import dataclasses

import pytest

from proxy.protocol.plan import Fallback, PlanSettings, make_plan
from proxy.protocol.tokens import Calibration
from proxy.protocol.translate import encode_ollama_body, validate_request

BASH = {"name": "Bash", "description": "Run a command",
        "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}}
THINK = {"thinking": {"type": "enabled", "budget_tokens": 2048}}


def body(**extra):
    return validate_request({"model": "claude-x", "max_tokens": 1000,
                             "messages": [{"role": "user", "content": "hi"}], **extra})


def plan_for(request, *, can_think=True, can_call_tools=True, **settings):
    return make_plan(
        request, ollama_model="qwen3:8b", settings=PlanSettings(**settings), can_think=can_think,
        can_call_tools=can_call_tools, context_length=32768, call_dialect=None, calibration=Calibration(),
    )


W, T = Fallback.WITHOUT_THINK, Fallback.TOOLS_EMULATED


@pytest.mark.parametrize(
    "extra, facts, settings, fallbacks",
    [
        ({}, {}, {}, ()),
        (THINK, {}, {}, (W,)),
        (THINK, {"can_think": False}, {}, ()),  # dropped already: nothing to fall back from
        ({"tools": [BASH]}, {}, {}, (T,)),
        ({"tools": [BASH]}, {}, {"tool_emulation": False}, ()),  # the refusal is the client's
        ({"tools": [BASH]}, {"can_call_tools": False}, {}, ()),  # emulated from the start
        ({"tools": [BASH], **THINK}, {}, {}, (W, T)),
        ({"tools": [BASH], **THINK}, {"can_think": False, "can_call_tools": False}, {}, ()),
    ],
    ids=["plain", "think", "cannot-think", "tools", "no-emulation", "no-native-tools", "both", "neither"],
)
def test_which_fallbacks_a_plan_carries(extra, facts, settings, fallbacks):
    assert plan_for(body(**extra), **facts, **settings).fallbacks == fallbacks


@pytest.mark.parametrize(
    "error, used, expected",
    [
        (b'{"error":"\\"qwen3:8b\\" does not support thinking"}', (), W),
        (b'{"error":"qwen3:8b does not support tools"}', (), T),
        (b'{"error":"qwen3:8b does not support tools"}', (W,), T),
        (b'{"error":"qwen3:8b does not support thinking"}', (W,), None),  # never twice
        (b'{"error":"invalid options"}', (), None),
    ],
)
def test_the_fallback_an_ollama_400_calls_for(error, used, expected):
    plan = plan_for(body(tools=[BASH], **THINK))
    assert plan.fallback_for(error, used) is expected


def test_each_fallback_sends_what_was_decided_minus_what_was_refused():
    plan = plan_for(body(tools=[BASH], **THINK), keep_alive="30m")
    made = plan.made.ollama
    assert made["think"] is True and made["tools"] and made["keep_alive"] == "30m"
    assert made["options"]["num_ctx"] == plan.num_ctx and made["options"]["num_predict"] <= 1000

    without = plan.request((W,)).ollama
    assert "think" not in without and without["tools"] is made["tools"]
    assert {k: v for k, v in made.items() if k != "think"} == without

    emulated = plan.request((T,)).ollama
    assert "tools" not in emulated and '"name":"Bash"' in emulated["messages"][0]["content"]
    assert (emulated["options"], emulated["keep_alive"], emulated["think"]) == (made["options"], "30m", True)

    both = plan.request((W, T)).ollama
    assert "tools" not in both and "think" not in both and both["options"] == made["options"]
    assert plan.request((T, W)).ollama == both  # the order Ollama refused in does not matter


def test_nothing_changes_a_plan_once_made():
    plan = plan_for(body(tools=[BASH], **THINK))
    before = copy.deepcopy(plan.made.ollama)
    encoded = encode_ollama_body(plan.made)
    requests = [plan.request(used) for used in [(W,), (T,), (W, T), (T, W)]]
    assert all(r.ollama is not plan.made.ollama for r in requests)  # a new body each
    assert plan.made.ollama == before and encode_ollama_body(plan.made) == encoded
    assert plan.request(()) is plan.made and plan.fallbacks == (W, T)
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.fallbacks = ()  # type: ignore[misc]


def test_the_window_and_the_answer_cap():
    plan = plan_for(body(), num_ctx=8192)
    assert plan.num_ctx == 8192 and plan.made.ollama["options"]["num_ctx"] == 8192
    assert plan.made.ollama["options"]["num_predict"] == 1000  # the client's max_tokens fits
    big = body(max_tokens=100000)
    capped = plan_for(big, num_ctx=8192)
    assert capped.made.ollama["options"]["num_predict"] == 8192 - capped.estimate
    assert plan_for(big, num_ctx=8192, cap_num_predict=False).made.ollama["options"]["num_predict"] == 100000
    assert "keep_alive" not in plan.made.ollama
