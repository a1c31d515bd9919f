"""What the planner sends Ollama at each boundary (proxy/protocol/plan.py): the answer cap's
floor, the calibrated estimate, the window's inputs, and what a fallback keeps."""

from __future__ import annotations

import pytest

from proxy.errors import PromptTooLong
from proxy.protocol.plan import HEADERS, MIN_NUM_PREDICT, TRIGGERS, Fallback, PlanSettings, make_plan
from proxy.protocol.tokens import Calibration
from proxy.protocol.translate import validate_request

BASH = {"name": "Bash", "description": "Run a command",
        "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}}
THINK = {"thinking": {"type": "enabled", "budget_tokens": 2048}}
W, T = Fallback.WITHOUT_THINK, Fallback.TOOLS_EMULATED


def body(**extra):
    return validate_request({"model": "claude-x", "max_tokens": 1000,
                             "messages": [{"role": "user", "content": "hi"}], **extra})


def plan_for(request, *, can_think=True, can_call_tools=True, calibration=None, context_length=32768,
             high_water=0, **settings):
    return make_plan(
        request, ollama_model="qwen3:8b", settings=PlanSettings(**settings), can_think=can_think,
        can_call_tools=can_call_tools, context_length=context_length, call_dialect=None,
        calibration=calibration or Calibration(), high_water=high_water,
    )


def test_what_the_client_is_told_and_what_ollama_says() -> None:
    assert HEADERS == {W: ("x-proxy-thinking", "dropped")}
    assert TRIGGERS == {W: b"does not support thinking", T: b"does not support tools"}
    assert (W.value, T.value) == ("without think", "tools emulated")


def test_the_answer_cap_never_goes_below_its_floor() -> None:
    assert MIN_NUM_PREDICT == 256
    request = body(max_tokens=100000)
    plan = plan_for(request, num_ctx=plan_for(request).estimate + 100)  # 100 tokens of room
    assert plan.made.ollama["options"]["num_predict"] == 256
    exact = plan_for(request, num_ctx=plan.estimate + 256)
    assert exact.made.ollama["options"]["num_predict"] == 256
    above = plan_for(request, num_ctx=plan.estimate + 257)
    assert above.made.ollama["options"]["num_predict"] == 257
    small = plan_for(body(max_tokens=100), num_ctx=plan.estimate + 10)
    assert small.made.ollama["options"]["num_predict"] == 100  # the client's smaller max wins


def test_the_window_is_sized_from_the_calibrated_estimate() -> None:
    request = body(messages=[{"role": "user", "content": "word " * 5000}])
    plain = plan_for(request)
    calibration = Calibration()
    assert calibration.observe("qwen3:8b", 1000, 2000)  # this model counts twice as many
    calibrated = plan_for(request, calibration=calibration)
    assert calibrated.raw_estimate == plain.raw_estimate == plain.estimate
    assert calibrated.estimate == 2 * plain.raw_estimate
    assert (plain.num_ctx, calibrated.num_ctx) == (8192, 16384)
    assert calibrated.made.ollama["options"]["num_predict"] == 1000
    other = Calibration()
    other.observe("another:1b", 1000, 2000)  # another model's factor does not apply
    assert plan_for(request, calibration=other).estimate == plain.estimate


def test_the_window_takes_the_model_limit_the_cap_and_the_high_water_mark() -> None:
    request = body()
    assert plan_for(request).num_ctx == 8192
    assert plan_for(request, high_water=16384).num_ctx == 16384
    assert plan_for(request, high_water=65536, context_length=32768).num_ctx == 32768
    assert plan_for(request, high_water=65536, max_num_ctx=20000).num_ctx == 20000
    with pytest.raises(PromptTooLong):
        plan_for(body(messages=[{"role": "user", "content": "word " * 20000}]), context_length=8192)
    with pytest.raises(PromptTooLong):
        plan_for(body(messages=[{"role": "user", "content": "word " * 20000}]), max_num_ctx=8192)


def test_keep_alive_zero_is_sent() -> None:
    assert plan_for(body(), keep_alive=0).made.ollama["keep_alive"] == 0
    assert plan_for(body(), keep_alive="5m").made.ollama["keep_alive"] == "5m"
    assert "keep_alive" not in plan_for(body()).made.ollama


def test_a_model_without_think_levels_or_thinking_carries_no_think_fallback() -> None:
    disabled = plan_for(body(thinking={"type": "disabled"}))
    assert disabled.made.ollama["think"] is False and disabled.fallbacks == ()
    assert disabled.fallback_for(b"does not support thinking", ()) is None


def test_the_fallback_is_looked_for_in_the_plans_order() -> None:
    plan = plan_for(body(tools=[BASH], **THINK))
    both = b'"does not support tools" ... "does not support thinking"'
    assert plan.fallback_for(both, ()) is W
    assert plan.fallback_for(both, (W,)) is T
    assert plan.fallback_for(both, (W, T)) is None
    tools_only = plan_for(body(tools=[BASH]))
    assert tools_only.fallback_for(b"does not support thinking", ()) is None


PARALLEL = [
    {"role": "user", "content": "list both"},
    {"role": "assistant", "content": [
        {"type": "tool_use", "id": "t1", "name": "Bash", "input": {"command": "ls a"}},
        {"type": "tool_use", "id": "t2", "name": "Bash", "input": {"command": "ls b"}}]},
    {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "t1", "content": "A"},
        {"type": "tool_result", "tool_use_id": "t2", "content": "B"}]},
]


@pytest.mark.parametrize("sequential, assistant_turns", [(True, 2), (False, 1)])
def test_emulated_tools_keep_the_sequential_setting(sequential: bool, assistant_turns: int) -> None:
    plan = plan_for(body(tools=[BASH], messages=PARALLEL), sequential_tools=sequential)
    for used in [(), (T,)]:
        messages = plan.request(used).ollama["messages"]
        assert sum(m["role"] == "assistant" for m in messages) == assistant_turns, used


def test_emulated_tools_drop_what_the_plan_did_not_send() -> None:
    plan = plan_for(body(tools=[BASH]), can_think=False)
    made = plan.made.ollama
    assert "think" not in made and "keep_alive" not in made
    emulated = plan.request((T,)).ollama
    assert "think" not in emulated and "keep_alive" not in emulated and "tools" not in emulated
    assert emulated["options"] == made["options"] and emulated["model"] == "qwen3:8b"


def test_emulated_tools_for_a_model_that_thinks_keep_thinking_on() -> None:
    plan = plan_for(body(tools=[BASH], **THINK), keep_alive=0)
    emulated = plan.request((T,)).ollama
    assert emulated["think"] is True and emulated["keep_alive"] == 0
    assert plan.request((T,)).ollama is not plan.request((T,)).ollama


def test_without_think_leaves_the_rest_of_the_request_alone() -> None:
    plan = plan_for(body(**THINK), keep_alive="1h")
    without = plan.request((W,))
    assert without.ollama == {k: v for k, v in plan.made.ollama.items() if k != "think"}
    assert "think" in plan.made.ollama
    assert without.ollama["keep_alive"] == "1h"


class _Bracket:
    """A call dialect of a model's template (not Hermes): how it prints a call."""

    name = "bracket"

    def write(self, name: str, arguments: dict) -> str:
        return f"[CALL {name} {arguments['command']}]"


def test_emulated_tools_print_past_calls_in_the_models_own_dialect() -> None:
    history = [
        {"role": "user", "content": "list"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Bash", "input": {"command": "ls"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "a.txt"}]},
    ]
    plan = make_plan(
        body(tools=[BASH], messages=history), ollama_model="qwen3:8b", settings=PlanSettings(), can_think=True,
        can_call_tools=True, context_length=32768, call_dialect=_Bracket(), calibration=Calibration(),
    )
    prompt = "\n".join(m["content"] for m in plan.request((T,)).ollama["messages"])
    assert "[CALL Bash ls]" in prompt and "<tool_call>" not in prompt


def test_tools_emulated_from_the_start_print_past_calls_in_the_models_own_dialect() -> None:
    history = [
        {"role": "user", "content": "list"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Bash", "input": {"command": "pwd"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "/src"}]},
    ]
    plan = make_plan(
        body(tools=[BASH], messages=history), ollama_model="qwen3:8b", settings=PlanSettings(), can_think=True,
        can_call_tools=False, context_length=32768, call_dialect=_Bracket(), calibration=Calibration(),
    )
    prompt = "\n".join(m["content"] for m in plan.made.ollama["messages"])
    assert "[CALL Bash pwd]" in prompt and "<tool_call>" not in prompt and "tools" not in plan.made.ollama
