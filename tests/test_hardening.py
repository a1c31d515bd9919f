"""No single request can freeze, bloat or crash the proxy, and no web page can use it.

Each test goes through the real Hypercorn server and the fake Ollama, and each one failed on
the code before the fix it guards (see the commit that added it).
"""

from __future__ import annotations

import json

import httpx
import pytest
import trio

from tests.fake_ollama import Model

SMALL = {"model": "qwen3:8b", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}


# -- 1. one request must not freeze the others ----------------------------------------------


async def test_health_answers_while_a_huge_same_role_history_is_translated(fake_ollama, start_proxy):
    # A model with no context limit: the request passes the size checks and is translated.
    fake_ollama.models.append(Model("roomy:1b", context_length=0))
    proxy = await start_proxy()
    # 40,000 consecutive user messages: merged into one (chat templates expect
    # alternation). Merging by rebuilding the growing string took ~5 s on the event loop.
    body = {
        "model": "roomy:1b",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": f"line {i} of a long paste, padded out"} for i in range(40_000)],
    }
    health_times: list[float] = []
    answer: dict = {}
    with trio.fail_after(60):
        async with httpx.AsyncClient(base_url=proxy.url, timeout=60) as client:
            done = trio.Event()

            async def big() -> None:
                response = await client.post("/v1/messages", json=body)
                answer["status"] = response.status_code
                done.set()

            async def probe() -> None:
                for _ in range(200):  # bounded: ~0.05 s apart
                    started = trio.current_time()
                    response = await client.get("/health")
                    assert response.status_code == 200
                    health_times.append(trio.current_time() - started)
                    if done.is_set():
                        return
                    await trio.sleep(0.05)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(big)
                nursery.start_soon(probe)
    assert answer["status"] == 200
    merged = fake_ollama.chat_requests[-1].body["messages"]
    assert [m["role"] for m in merged] == ["user"] and merged[0]["content"].count("\n\nline ") == 39_999
    # Generous: a /health normally answers in a few ms; before the fix it waited seconds.
    assert max(health_times) < 1.0, health_times
