"""The plan's fallbacks through the real server: Ollama refuses (400) what the cached
capabilities allowed, the relay sends the request again without it, and the client, the
log record and the live view all say which fallback was used."""

from __future__ import annotations

import json

import httpx
import trio
from trio_websocket import open_websocket_url

from tests.fake_ollama import Status, text_stream
from tests.server.test_logs import wait_for_event

BASH = {"name": "Bash", "description": "Run a command",
        "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}}
BODY = {"model": "claude-sonnet-5-5", "max_tokens": 200, "stream": True, "tools": [BASH],
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "messages": [{"role": "user", "content": "what is here?"}]}
NO_THINKING = {"error": '"qwen3:8b" does not support thinking'}
NO_TOOLS = {"error": "registry.ollama.ai/library/qwen3:8b does not support tools"}
CALL = '<tool_call>{"name": "Bash", "arguments": {"command": "ls"}}</tool_call>'


async def test_both_fallbacks_in_one_request_are_reported_where_a_user_looks(fake_ollama, start_proxy, tmp_path):
    log_file = tmp_path / "proxy.log"
    proxy = await start_proxy(log_file=str(log_file), log_level="INFO", commit_grace=5)
    fake_ollama.script_chat([Status(400, body=NO_THINKING)])
    fake_ollama.script_chat([Status(400, body=NO_TOOLS)])
    fake_ollama.script_chat(text_stream(CALL))
    with trio.fail_after(20):
        async with open_websocket_url(proxy.url.replace("http://", "ws://") + "/v1/events") as ws:
            assert json.loads(await ws.get_message())["type"] == "hello"
            async with httpx.AsyncClient(base_url=proxy.url, timeout=15) as client:
                response = await client.post("/v1/messages", json=BODY)
            for _ in range(50):
                finished = json.loads(await ws.get_message())
                if finished["type"] == "finished":
                    break
    # the client got its tool call, and was told its thinking was dropped
    assert response.status_code == 200 and response.headers["x-proxy-thinking"] == "dropped"
    assert b'"stop_reason":"tool_use"' in response.content and b'ls' in response.content
    sent = [r.body for r in fake_ollama.chat_requests]
    assert [("think" in b, "tools" in b) for b in sent] == [(True, True), (False, True), (False, False)]
    assert sent[0]["options"] == sent[1]["options"] == sent[2]["options"]
    # the log record and the live view say the same: which fallbacks, in order
    (end,) = await wait_for_event(log_file, "proxy.request.end")
    a = end["Attributes"]
    assert a["proxy.fallbacks"] == ["without think", "tools emulated"]
    assert a["http.response.status_code"] == 200 and a["proxy.cancelled"] is False and "error.type" not in a
    assert finished["request_id"] == response.headers["request-id"]
    assert finished["fallbacks"] == ["without think", "tools emulated"] and finished["status"] == 200
    assert finished["ttft_ms"] == a["proxy.time_to_first_token_ms"]
    assert finished["duration_ms"] == a["proxy.duration_ms"]
    assert finished["output_tokens"] == a["gen_ai.usage.output_tokens"]
    # the handler corrected the capability cache: the next request is made right at once
    fake_ollama.script_chat(text_stream("ok"))
    with trio.fail_after(10):
        async with httpx.AsyncClient(base_url=proxy.url, timeout=10) as client:
            again = await client.post("/v1/messages", json=BODY)
    assert again.status_code == 200 and again.headers["x-proxy-thinking"] == "dropped"
    last = fake_ollama.chat_requests[-1].body
    assert len(fake_ollama.chat_requests) == 4 and "think" not in last and "tools" not in last
    ends = await wait_for_event(log_file, "proxy.request.end", 2)
    assert "proxy.fallbacks" not in ends[1]["Attributes"]


async def test_a_refusal_no_fallback_cures_is_the_clients_error(fake_ollama, start_proxy, tmp_path):
    # Thinking was already dropped by the fallback; a second "no thinking" is not retried
    # again (each fallback once): the client gets Ollama's 400, and the log says both.
    log_file = tmp_path / "proxy.log"
    proxy = await start_proxy(log_file=str(log_file), commit_grace=5)
    fake_ollama.script_chat([Status(400, body=NO_THINKING)])
    fake_ollama.script_chat([Status(400, body=NO_THINKING)])
    with trio.fail_after(10):
        async with httpx.AsyncClient(base_url=proxy.url, timeout=10) as client:
            response = await client.post("/v1/messages", json={**BODY, "stream": False})
    assert response.status_code == 400 and "does not support thinking" in response.json()["error"]["message"]
    assert len(fake_ollama.chat_requests) == 2
    (end,) = await wait_for_event(log_file, "proxy.request.end")
    a = end["Attributes"]
    assert a["http.response.status_code"] == 400 and a["proxy.fallbacks"] == ["without think"]
    assert a["error.type"] == "invalid_request_error"
