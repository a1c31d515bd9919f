"""Long sessions: num_ctx sizing, the prompt-too-long 400, calibration, count_tokens, keep_alive."""

from __future__ import annotations

import json

import anthropic
import httpx
import pytest
import trio

from proxy.errors import PromptTooLong
from proxy.protocol.context import ContextPolicy, choose_num_ctx, looks_truncated
from proxy.protocol.tokens import Calibration, estimate_tokens
from tests.conftest import FIXTURES
from tests.fake_ollama import Recorded, text_stream


@pytest.mark.parametrize(
    "estimate, max_tokens, model_max, policy, high_water, expected",
    [
        (1000, 32000, 40960, ContextPolicy(), 0, 16384),  # 1000 + 8192 headroom → 16k step
        (100, 5, 40960, ContextPolicy(), 0, 8192),
        (20000, 128000, 131072, ContextPolicy(), 0, 32768),
        (30000, 128000, 40960, ContextPolicy(), 0, 40960),  # capped by the model
        (20000, 128000, 131072, ContextPolicy(maximum=32768), 0, 32768),  # capped by max_num_ctx
        (100, 5, 131072, ContextPolicy(), 65536, 65536),  # never shrinks: a change reloads the model
        (100, 5, 131072, ContextPolicy(pinned=12345), 0, 12345),
        (100, 5, None, ContextPolicy(), 0, 8192),
    ],
)
def test_num_ctx_policy(estimate, max_tokens, model_max, policy, high_water, expected):
    assert choose_num_ctx(estimate=estimate, max_tokens=max_tokens, model_max=model_max,
                          policy=policy, high_water=high_water) == expected


def test_a_prompt_over_the_maximum_is_refused():
    with pytest.raises(PromptTooLong) as caught:
        choose_num_ctx(estimate=35000, max_tokens=64000, model_max=40960, policy=ContextPolicy())
    # 8192 tokens of the window are kept for the answer
    assert caught.value.message == "prompt is too long: 35000 tokens > 32768 maximum"
    assert caught.value.status == 400


def test_truncation_is_recognized():
    assert looks_truncated(4096, 4096) and looks_truncated(3900, 4096) and not looks_truncated(3000, 4096)


def test_calibration_learns_and_ignores_cache_hits():
    calibration = Calibration()
    assert calibration.apply("m", 1000) == 1000
    assert calibration.observe("m", 1000, 1250)
    assert calibration.apply("m", 2000) == 2500
    assert not calibration.observe("m", 1000, 37)  # KV-cache reuse: only the new part counted
    assert calibration.apply("m", 2000) == 2500
    assert calibration.apply("other", 2000) == 2000


def big_body(chars: int) -> dict:
    return {"model": "claude-opus-5-5", "max_tokens": 64000, "stream": True,
            "messages": [{"role": "user", "content": "word " * (chars // 5)}]}


async def test_overflow_is_the_400_claude_code_compacts_on(fake_ollama, proxy):
    body = big_body(400_000)  # ~110k tokens; qwen3:8b in the fake has 40960
    with trio.fail_after(20):
        with pytest.raises(anthropic.BadRequestError) as caught:
            await trio.to_thread.run_sync(lambda: proxy.client().messages.create(
                **{k: v for k, v in body.items() if k != "stream"}))
    message = caught.value.body["error"]["message"]
    assert message.startswith("prompt is too long: ") and message.endswith(" tokens > 32768 maximum")
    assert fake_ollama.chat_requests == []  # refused before Ollama could truncate it


async def test_num_ctx_fits_the_prompt_and_only_grows(fake_ollama, proxy):
    async with httpx.AsyncClient(base_url=proxy.url, timeout=10) as client:
        for chars in (60_000, 1_000):
            fake_ollama.script_chat(text_stream("ok"))
            with trio.fail_after(10):
                response = await client.post("/v1/messages", json={**big_body(chars), "stream": False})
            assert response.status_code == 200
    sizes = [r.body["options"]["num_ctx"] for r in fake_ollama.chat_requests]
    assert sizes == [32768, 32768]  # ~17k tokens + headroom → 32k; then kept, never shrunk


async def test_keep_alive_is_passed_when_configured(fake_ollama, start_proxy):
    proxy = await start_proxy(keep_alive="30m")
    async with httpx.AsyncClient(base_url=proxy.url, timeout=10) as client:
        with trio.fail_after(10):
            await client.post("/v1/messages", json={**big_body(100), "stream": False})
    assert fake_ollama.chat_requests[-1].body["keep_alive"] == "30m"


async def test_count_tokens_calibrates_to_ollamas_counts(fake_ollama, proxy):
    # This fake "tokenizer" counts one token per 3 characters of message content.
    def answer(record: Recorded, index: int):
        chars = sum(len(m["content"]) for m in record.body["messages"])
        return text_stream("ok", prompt_eval_count=chars // 3)

    fake_ollama.on_chat = answer
    first = {"model": "claude-opus-5-5", "max_tokens": 100,
             "messages": [{"role": "user", "content": "alpha beta gamma delta " * 800}]}
    similar = {"model": "claude-opus-5-5", "max_tokens": 100,
               "messages": [{"role": "user", "content": "epsilon zeta eta theta " * 900}]}
    truth = len(similar["messages"][0]["content"]) // 3
    async with httpx.AsyncClient(base_url=proxy.url, timeout=10) as client:
        with trio.fail_after(10):
            before = (await client.post("/v1/messages/count_tokens", json=similar)).json()["input_tokens"]
            await client.post("/v1/messages", json=first)
            after = (await client.post("/v1/messages/count_tokens", json=similar)).json()["input_tokens"]
    assert abs(before - truth) / truth > 0.10  # the uncalibrated guess is off for this tokenizer
    assert abs(after - truth) / truth <= 0.10


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.json")))
async def test_count_tokens_on_captured_requests(fake_ollama, proxy, name):
    body = json.loads((FIXTURES / name).read_text())["body"]
    async with httpx.AsyncClient(base_url=proxy.url, timeout=10) as client:
        with trio.fail_after(10):
            response = await client.post("/v1/messages/count_tokens?beta=true", json=body)
    assert response.status_code == 200
    # ~50 KB of prompt and tool schemas: between 3 and 6 characters per token
    size = len(json.dumps(body))
    assert size / 6 < response.json()["input_tokens"] < size / 3
    assert fake_ollama.chat_requests == []


def test_non_latin_text_is_not_underestimated():
    # ~1 token per CJK character in real tokenizers (qwen3, llama3): the estimate counts
    # UTF-8 bytes, so it lands near that instead of 3.6 characters per token.
    chinese = "请把这个函数改写成异步的并且添加测试" * 100  # 1800 characters
    ascii_text = "a" * 1800
    def estimate(text):
        return estimate_tokens({"messages": [{"role": "user", "content": text}]})
    assert estimate(chinese) >= 1400
    assert estimate(ascii_text) == pytest.approx(1800 / 3.6, abs=10)
