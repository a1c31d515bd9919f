"""Thinking: what goes to Ollama as ``think``, for every kind of request and model."""

from __future__ import annotations

import httpx
import pytest
import trio

from proxy.ollama.capabilities import guess_from_name
from proxy.protocol.thinking import ThinkDecision, decide_think
from tests.fake_ollama import Status, text_stream

USER = [{"role": "user", "content": "hi"}]
REQUESTS = {
    "enabled": {"thinking": {"type": "enabled", "budget_tokens": 20000}},
    "adaptive": {"thinking": {"type": "adaptive"}, "output_config": {"effort": "xhigh"}},
    "disabled": {"thinking": {"type": "disabled"}},
    "absent": {},
}


@pytest.mark.parametrize(
    "kind, model, can_think, expected",
    [
        ("enabled", "qwen3:8b", True, ThinkDecision(True)),
        ("adaptive", "qwen3:8b", True, ThinkDecision(True)),
        ("disabled", "qwen3:8b", True, ThinkDecision(False)),
        ("absent", "qwen3:8b", True, ThinkDecision(False)),
        ("enabled", "gpt-oss:20b", True, ThinkDecision("high")),
        ("adaptive", "gpt-oss:20b", True, ThinkDecision("high")),
        ("disabled", "gpt-oss:20b", True, ThinkDecision(False)),
        ("enabled", "llama3.2:3b", False, ThinkDecision(None, dropped=True)),
        ("adaptive", "llama3.2:3b", False, ThinkDecision(None, dropped=True)),
        ("disabled", "llama3.2:3b", False, ThinkDecision(None)),
        ("absent", "llama3.2:3b", False, ThinkDecision(None)),
    ],
)
def test_the_thinking_matrix(kind, model, can_think, expected):
    body = {"model": "claude-x", "max_tokens": 5, "messages": USER, **REQUESTS[kind]}
    assert decide_think(body, model=model, can_think=can_think) == expected


@pytest.mark.parametrize("budget, level", [(1024, "low"), (8000, "medium"), (32000, "high")])
def test_levels_from_budget_for_models_that_take_levels(budget, level):
    body = {"thinking": {"type": "enabled", "budget_tokens": budget}}
    assert decide_think(body, model="gpt-oss:120b", can_think=True).think == level


def test_name_guess_is_only_a_fallback_for_known_families():
    assert "thinking" in guess_from_name("qwen3:30b-a3b").capabilities
    assert "tools" in guess_from_name("llama3.1:8b").capabilities
    assert guess_from_name("gemma3:4b").capabilities == ("completion",)


async def post(proxy, **extra) -> httpx.Response:
    body = {"model": "claude-opus-5-5", "max_tokens": 5, "messages": USER, **extra}
    async with httpx.AsyncClient(base_url=proxy.url, timeout=10) as client:
        return await client.post("/v1/messages", json=body)


@pytest.mark.parametrize("kind", sorted(REQUESTS))
async def test_through_the_server_for_a_model_that_thinks(fake_ollama, proxy, kind):
    fake_ollama.script_chat(text_stream("ok"))
    with trio.fail_after(10):
        response = await post(proxy, **REQUESTS[kind])
    assert response.status_code == 200
    assert fake_ollama.chat_requests[-1].body["think"] is (kind in ("enabled", "adaptive"))
    assert "x-proxy-thinking" not in response.headers


@pytest.mark.parametrize("kind", sorted(REQUESTS))
async def test_through_the_server_for_a_model_that_cannot_think(fake_ollama, start_proxy, caplog, kind):
    # llama3.2:3b in the fake has no "thinking" capability; the fake answers 400 to think:true
    proxy = await start_proxy(default_model="llama3.2:3b")
    with trio.fail_after(10):
        first = await post(proxy, **REQUESTS[kind])
        second = await post(proxy, **REQUESTS[kind])
    assert first.status_code == 200 and first.json()["content"][0]["text"] == "Hello"
    assert all("think" not in r.body for r in fake_ollama.chat_requests)
    dropped = kind in ("enabled", "adaptive")
    assert (first.headers.get("x-proxy-thinking") == "dropped") is dropped
    warnings = [r for r in caplog.records if "cannot think" in r.getMessage()]
    assert len(warnings) == (1 if dropped else 0)  # once per model, not per request
    assert second.status_code == 200


async def test_strict_thinking_is_a_400_naming_models_that_can(fake_ollama, start_proxy):
    proxy = await start_proxy(default_model="llama3.2:3b", strict_thinking=True)
    with trio.fail_after(10):
        response = await post(proxy, **REQUESTS["adaptive"])
        plain = await post(proxy, **REQUESTS["disabled"])
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "llama3.2:3b cannot think" in message and "qwen3:8b" in message
    assert "llama3.2:3b" not in message.split("can think:")[1]
    assert plain.status_code == 200
    assert len(fake_ollama.chat_requests) == 1


async def test_ollama_refusing_thinking_overrules_the_cache(fake_ollama, proxy):
    # The capabilities said qwen3:8b thinks; this Ollama disagrees: retry once without think.
    fake_ollama.script_chat([Status(400, body={"error": '"qwen3:8b" does not support thinking'})])
    fake_ollama.script_chat(text_stream("answered without thinking"))
    with trio.fail_after(10):
        response = await post(proxy, **REQUESTS["adaptive"])
    assert response.status_code == 200
    assert response.json()["content"][0]["text"] == "answered without thinking"
    assert [r.body.get("think") for r in fake_ollama.chat_requests] == [True, None]
    assert response.headers["x-proxy-thinking"] == "dropped"
    # Ollama is believed from now on: the next thinking request is not refused first
    fake_ollama.script_chat(text_stream("again"))
    with trio.fail_after(10):
        again = await post(proxy, **REQUESTS["adaptive"])
    assert again.status_code == 200 and again.headers["x-proxy-thinking"] == "dropped"
    assert len(fake_ollama.chat_requests) == 3 and "think" not in fake_ollama.chat_requests[2].body


async def test_unknown_to_api_show_falls_back_to_the_name(fake_ollama, start_proxy):
    # /api/show answers 404 for a model the fake does not list; the name says "cannot think"
    proxy = await start_proxy(default_model="gemma3n:e4b")
    fake_ollama.script_chat(text_stream("ok"))
    with trio.fail_after(10):
        response = await post(proxy, **REQUESTS["adaptive"])
    assert response.status_code == 200
    assert "think" not in fake_ollama.chat_requests[-1].body


# -- the level a model that takes levels receives, at every boundary ------------------------


def think_sent(extra, *, model="gpt-oss:20b", can_think=True):
    """What Ollama receives as ``think`` (absent: the key is not in the body)."""
    from proxy.protocol.translate import translate_request, validate_request

    body = validate_request({"model": "claude-x", "max_tokens": 5, "messages": USER, **extra})
    return translate_request(body, ollama_model=model, can_think=can_think).ollama.get("think", "absent")


@pytest.mark.parametrize(
    "budget, level",
    [(1024, "low"), (4095, "low"), (4096, "medium"), (16383, "medium"), (16384, "high"), (100000, "high")],
)
def test_a_thinking_budget_becomes_a_level_at_the_right_boundary(budget, level):
    assert think_sent({"thinking": {"type": "enabled", "budget_tokens": budget}}) == level


@pytest.mark.parametrize("budget", ["big", True, 20000.5, None])
def test_a_budget_that_is_not_an_integer_means_medium(budget):
    assert decide_think({"thinking": {"type": "enabled", "budget_tokens": budget}},
                        model="gpt-oss:20b", can_think=True) == ThinkDecision("medium")
    assert decide_think({"thinking": {"type": "enabled"}}, model="gpt-oss:20b", can_think=True).think == "medium"


@pytest.mark.parametrize(
    "output_config, level",
    [
        ({"effort": "low"}, "low"),
        ({"effort": "medium"}, "medium"),
        ({"effort": "high"}, "high"),
        ({"effort": "xhigh"}, "high"),
        ({"effort": "max"}, "high"),
        ({"effort": "ultra"}, "medium"),  # a level Ollama does not know: the middle one
        ({"effort": 3}, "medium"),
        ({"effort": ["high"]}, "medium"),  # not a string: not looked up at all
        ({}, "medium"),
        (None, "medium"),
        ("high", "medium"),
    ],
)
def test_adaptive_thinking_takes_its_level_from_the_effort(output_config, level):
    body = {"thinking": {"type": "adaptive"}}
    if output_config is not None:
        body["output_config"] = output_config
    assert decide_think(body, model="gpt-oss:20b", can_think=True) == ThinkDecision(level)


@pytest.mark.parametrize(
    "model, levels",
    [
        ("gpt-oss:20b", True),
        ("GPT-OSS:120b", True),
        ("library/gpt-oss:20b", True),
        ("hf.co/someone/gpt-oss-20b-GGUF:Q4", True),
        ("gpt-oss", True),
        ("my-gpt-oss:20b", False),
        ("gpt-oss-like/qwen3:8b", False),
        ("qwen3:8b", False),
    ],
)
def test_which_models_receive_a_level_rather_than_true(model, levels):
    sent = think_sent({"thinking": {"type": "adaptive"}, "output_config": {"effort": "low"}}, model=model)
    assert sent == ("low" if levels else True)


def test_a_thinking_value_that_is_not_an_object_asks_for_nothing():
    for thinking in ("enabled", ["enabled"], None):
        assert decide_think({"thinking": thinking}, model="qwen3:8b", can_think=True) == ThinkDecision(False)
        assert decide_think({"thinking": thinking}, model="llama3:8b", can_think=False) == ThinkDecision(None)
    assert decide_think({"thinking": {"type": "bogus"}}, model="gpt-oss:20b", can_think=True) == ThinkDecision(False)


def test_a_model_that_cannot_think_receives_no_think_field():
    assert think_sent({"thinking": {"type": "enabled", "budget_tokens": 20000}}, can_think=False) == "absent"
    assert think_sent({}, model="qwen3:8b", can_think=False) == "absent"
    assert think_sent({}, model="qwen3:8b") is False
    assert think_sent({"thinking": {"type": "disabled"}}) is False
