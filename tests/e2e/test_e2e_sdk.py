"""The official anthropic SDK against the real proxy (Hypercorn, port 0) and a fake Ollama."""

from __future__ import annotations

import json

import anthropic
import httpx
import pytest
import trio

from tests.fake_ollama import Chunk, Line, Status, text_stream

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

USER = [{"role": "user", "content": "hi"}]
WRITE_TOOL = {
    "name": "Write",
    "description": "Write a file",
    "input_schema": {
        "type": "object",
        "properties": {"file_path": {"type": "string"}, "content": {"type": "string"}},
        "required": ["file_path", "content"],
    },
}


def stream_final(client: anthropic.Anthropic, **kwargs):
    """Run ``client.messages.stream`` to the end; return (event types, final message)."""
    with client.messages.stream(**kwargs) as stream:
        types = [event.type for event in stream]
        return types, stream.get_final_message()


async def test_streamed_text_accumulates_to_the_models_words(fake_ollama, proxy):
    fake_ollama.script_chat(text_stream("Hello, world!", prompt_eval_count=321, eval_count=4))
    with trio.fail_after(20):
        types, message = await trio.to_thread.run_sync(
            lambda: stream_final(proxy.client(), model="claude-sonnet-5-5", max_tokens=64, messages=USER)
        )
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == "Hello, world!"
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens == 321
    assert message.usage.output_tokens == 4
    assert message.model == "claude-sonnet-5-5"  # the name the client asked for
    assert types[0] == "message_start" and types[-1] == "message_stop"
    sent = fake_ollama.chat_requests[-1].body
    assert sent["model"] == "qwen3:8b"
    assert sent["messages"] == [{"role": "user", "content": "hi"}]
    assert sent["options"]["num_predict"] == 64
    assert fake_ollama.chat_requests[-1].headers["host"].startswith("127.0.0.1")


async def test_thinking_then_text_then_tool_call(fake_ollama, proxy):
    fake_ollama.script_chat(
        [
            Chunk(thinking="Let me "),
            Chunk(thinking="think.", content="I'll write it."),
            Chunk(
                tool_calls=[{"function": {"name": "Write", "arguments": {"file_path": "/tmp/a", "content": "A"}}}],
            ),
            Chunk(done=True, done_reason="stop", prompt_eval_count=50, eval_count=20),
        ]
    )
    with trio.fail_after(20):
        _, message = await trio.to_thread.run_sync(
            lambda: stream_final(
                proxy.client(),
                model="claude-opus-5-5",
                max_tokens=1000,
                messages=USER,
                tools=[WRITE_TOOL],
                thinking={"type": "enabled", "budget_tokens": 1024},
            )
        )
    assert [b.type for b in message.content] == ["thinking", "text", "tool_use"]
    assert message.content[0].thinking == "Let me think."
    assert message.content[0].signature  # Claude Code drops unsigned thinking
    assert message.content[1].text == "I'll write it."
    tool = message.content[2]
    assert tool.name == "Write" and tool.input == {"file_path": "/tmp/a", "content": "A"}
    assert tool.id.startswith("toolu_") and len(tool.id) == len("toolu_") + 24
    assert message.stop_reason == "tool_use"
    sent = fake_ollama.chat_requests[-1].body
    assert sent["think"] is True
    assert sent["tools"][0]["function"]["name"] == "Write"
    assert sent["tools"][0]["function"]["parameters"] == WRITE_TOOL["input_schema"]


async def test_tool_call_in_the_final_chunk_and_unique_ids(fake_ollama, proxy):
    calls = [
        {"function": {"name": "Write", "arguments": {"file_path": "/a", "content": "1"}}},
        {"function": {"name": "Write", "arguments": {"file_path": "/b", "content": "2"}}},
    ]
    for _ in range(2):
        fake_ollama.script_chat(text_stream("", tool_calls=calls))
    with trio.fail_after(20):
        messages = [
            (await trio.to_thread.run_sync(
                lambda: stream_final(proxy.client(), model="claude-x", max_tokens=99, messages=USER, tools=[WRITE_TOOL])
            ))[1]
            for _ in range(2)
        ]
    ids = [block.id for message in messages for block in message.content]
    assert len(ids) == 4 and len(set(ids)) == 4
    assert [b.input["file_path"] for b in messages[0].content] == ["/a", "/b"]
    assert all(b.type == "tool_use" for m in messages for b in m.content)  # no empty text block


async def test_non_streaming_answer_is_the_same_message(fake_ollama, proxy):
    fake_ollama.script_chat(text_stream("Plain answer.", thinking="quietly", eval_count=3))
    with trio.fail_after(20):
        message = await trio.to_thread.run_sync(
            lambda: proxy.client().messages.create(model="claude-haiku-4-5", max_tokens=10, messages=USER)
        )
    assert [b.type for b in message.content] == ["thinking", "text"]
    assert message.content[1].text == "Plain answer."
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens == 3
    # Even a non-streaming request streams from Ollama, so a disconnect can stop it.
    assert fake_ollama.chat_requests[-1].body["stream"] is True


async def test_length_limit_is_max_tokens(fake_ollama, proxy):
    fake_ollama.script_chat(text_stream("cut off", done_reason="length"))
    with trio.fail_after(20):
        _, message = await trio.to_thread.run_sync(
            lambda: stream_final(proxy.client(), model="claude-x", max_tokens=2, messages=USER)
        )
    assert message.stop_reason == "max_tokens"


async def test_model_map_and_pass_through(fake_ollama, start_proxy):
    proxy = await start_proxy(model_map={"haiku": "llama3.2:3b", "claude-exact": "gemma3:4b"})
    cases = [("claude-3-5-haiku-latest", "llama3.2:3b"), ("claude-exact", "gemma3:4b"),
             ("claude-opus-5-5", "qwen3:8b"), ("qwen3:8b", "qwen3:8b")]
    for asked, expected in cases:
        fake_ollama.script_chat(text_stream("ok"))
        with trio.fail_after(20):
            message = await trio.to_thread.run_sync(
                lambda: proxy.client().messages.create(model=asked, max_tokens=5, messages=USER)
            )
        assert message.model == asked
        assert fake_ollama.chat_requests[-1].body["model"] == expected


@pytest.mark.parametrize(
    "status, body, exc_type, error_type, words",
    [
        # a 400, not a 404: Claude Code replaces a 404's message with its own (docs/STREAMING.md)
        (404, {"error": "model 'qwen3:8b' not found"}, anthropic.BadRequestError, "invalid_request_error",
         "ollama pull qwen3:8b"),
        (400, {"error": "registry.ollama.ai/library/qwen3:8b does not support tools"}, anthropic.BadRequestError,
         "invalid_request_error", "does not support tools"),
        (500, {"error": "llama runner process has terminated"}, anthropic.InternalServerError, "api_error",
         "llama runner process has terminated"),
    ],
)
async def test_ollama_errors_keep_their_meaning(fake_ollama, proxy, status, body, exc_type, error_type, words):
    fake_ollama.script_chat([Status(status, body=body)])
    fake_ollama.script_chat([Status(status, body=body)])  # for the proxy's one quick retry of a 5xx
    with trio.fail_after(20):
        with pytest.raises(exc_type) as caught:
            await trio.to_thread.run_sync(
                lambda: stream_final(proxy.client(), model="claude-x", max_tokens=5, messages=USER)
            )
    assert caught.value.status_code == (400 if status == 404 else status)
    assert caught.value.body["error"]["type"] == error_type
    assert words in caught.value.body["error"]["message"]
    # The answer is final: the client is told not to send it again.
    assert caught.value.response.headers["x-should-retry"] == "false"
    # Only a crash (a 5xx) is worth the proxy's one quick retry.
    assert len(fake_ollama.chat_requests) == (2 if status >= 500 else 1)


async def test_busy_ollama_becomes_overloaded_after_retries(fake_ollama, start_proxy):
    proxy = await start_proxy(busy_retries=2, busy_retry_window=5)
    busy = [Status(503, body={"error": "server busy, please try again.  maximum pending requests exceeded"})]
    fake_ollama.script_chat(busy)
    fake_ollama.script_chat(busy)
    with trio.fail_after(20):
        with pytest.raises(anthropic.APIStatusError) as caught:
            await trio.to_thread.run_sync(
                lambda: proxy.client().messages.create(model="claude-x", max_tokens=5, messages=USER)
            )
    assert caught.value.status_code == 529
    assert caught.value.body["error"]["type"] == "overloaded_error"
    assert caught.value.response.headers["retry-after"]
    assert len(fake_ollama.chat_requests) == 2


async def test_busy_is_left_to_the_client_with_retry_after(fake_ollama, start_proxy):
    """By default the client retries a busy Ollama (Claude Code shows it), not the proxy too."""
    proxy = await start_proxy(busy_retry_after=2)
    fake_ollama.script_chat([Status(503, body={"error": "server busy"})])
    with trio.fail_after(20):
        with pytest.raises(anthropic.APIStatusError) as caught:
            await trio.to_thread.run_sync(
                lambda: proxy.client().messages.create(model="claude-x", max_tokens=5, messages=USER)
            )
    assert caught.value.status_code == 529
    assert caught.value.response.headers["retry-after"] == "2"
    assert "x-should-retry" not in caught.value.response.headers
    assert len(fake_ollama.chat_requests) == 1


async def test_busy_then_free_is_retried_transparently(fake_ollama, start_proxy):
    proxy = await start_proxy(busy_retries=2)
    fake_ollama.script_chat([Status(503, body={"error": "server busy"})])
    fake_ollama.script_chat(text_stream("second try"))
    with trio.fail_after(20):
        message = await trio.to_thread.run_sync(
            lambda: proxy.client().messages.create(model="claude-x", max_tokens=5, messages=USER)
        )
    assert message.content[0].text == "second try"


async def test_unreachable_ollama_is_a_502_naming_the_url(start_proxy):
    with trio.socket.socket() as sock:  # a port nobody listens on
        await sock.bind(("127.0.0.1", 0))
        dead_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    proxy = await start_proxy(ollama_url=dead_url)
    with trio.fail_after(20):
        with pytest.raises(anthropic.APIStatusError) as caught:
            await trio.to_thread.run_sync(
                lambda: stream_final(proxy.client(), model="claude-x", max_tokens=5, messages=USER)
            )
    assert caught.value.status_code == 502
    assert caught.value.body["error"]["type"] == "api_error"
    assert dead_url in caught.value.body["error"]["message"]
    assert "ollama serve" in caught.value.body["error"]["message"]


async def test_error_line_mid_stream_is_an_error_event_not_a_complete_message(fake_ollama, proxy):
    fake_ollama.script_chat([Chunk(content="partial "), Line({"error": "CUDA error: out of memory"})])
    with trio.fail_after(20):
        with pytest.raises(anthropic.APIStatusError) as caught:
            await trio.to_thread.run_sync(
                lambda: stream_final(proxy.client(), model="claude-x", max_tokens=5, messages=USER)
            )
    assert "CUDA error: out of memory" in str(caught.value)


async def _raw(proxy, method: str, path: str, **kwargs) -> httpx.Response:
    async with httpx.AsyncClient(base_url=proxy.url, timeout=10) as client:
        return await client.request(method, path, **kwargs)


@pytest.mark.parametrize(
    "body, field",
    [
        (b"{not json", "not valid JSON"),
        (json.dumps({"max_tokens": 5, "messages": USER}).encode(), "model"),
        (json.dumps({"model": "m", "max_tokens": 5}).encode(), "messages"),
        (json.dumps({"model": "m", "messages": USER}).encode(), "max_tokens"),
        (json.dumps({"model": "m", "max_tokens": "5", "messages": USER}).encode(), "max_tokens"),
        (json.dumps({"model": 7, "max_tokens": 5, "messages": USER}).encode(), "model"),
        (json.dumps({"model": "m", "max_tokens": 5, "messages": [{"role": "bot", "content": "x"}]}).encode(),
         "messages.0.role"),
        (json.dumps({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "url", "url": "http://x/y.png"}}]}]}).encode(),
         "messages.0.content.0.source"),
    ],
)
async def test_bad_requests_are_400s_naming_the_field(fake_ollama, proxy, body, field):
    with trio.fail_after(10):
        response = await _raw(proxy, "POST", "/v1/messages?beta=true", content=body,
                              headers={"content-type": "application/json"})
    assert response.status_code == 400
    error = response.json()
    assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
    assert field in error["error"]["message"]
    assert fake_ollama.chat_requests == []
    # and the server keeps serving
    fake_ollama.script_chat(text_stream("still here"))
    with trio.fail_after(10):
        ok = await _raw(proxy, "POST", "/v1/messages", json={"model": "m", "max_tokens": 5, "messages": USER})
    assert ok.json()["content"][0]["text"] == "still here"


async def test_body_over_the_limit_is_413(fake_ollama, start_proxy):
    proxy = await start_proxy(body_limit=1000)
    big = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x" * 5000}]}
    with trio.fail_after(10):
        response = await _raw(proxy, "POST", "/v1/messages", json=big)
    assert response.status_code == 413
    assert response.json()["error"]["type"] == "request_too_large"


async def test_routes_probes_and_unknown_paths(fake_ollama, proxy):
    with trio.fail_after(10):
        head = await _raw(proxy, "HEAD", "/")
        root = await _raw(proxy, "GET", "/")
        missing = await _raw(proxy, "POST", "/api/event_logging/batch", json={})
        wrong = await _raw(proxy, "GET", "/v1/messages")
        health = await _raw(proxy, "GET", "/health")
        count = await _raw(proxy, "POST", "/v1/messages/count_tokens?beta=true",
                           json={"model": "claude-x", "messages": [{"role": "user", "content": "hello " * 400}]})
    assert head.status_code == 200 and head.content == b""
    assert root.status_code == 200
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found_error"
    assert wrong.status_code == 405 and wrong.json()["error"]["type"] == "invalid_request_error"
    assert health.status_code == 200
    assert health.json()["ollama"] == {"url": fake_ollama.url, "url_origin": "from --ollama-url", "reachable": True,
                                       "version": fake_ollama.version}
    assert count.status_code == 200 and 300 < count.json()["input_tokens"] < 1500
    assert fake_ollama.chat_requests == []  # count_tokens is answered locally


async def test_health_says_when_ollama_is_down(start_proxy):
    with trio.socket.socket() as sock:
        await sock.bind(("127.0.0.1", 0))
        dead_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    proxy = await start_proxy(ollama_url=dead_url)
    with trio.fail_after(10):
        health = await _raw(proxy, "GET", "/health")
    assert health.json()["ollama"]["reachable"] is False
    assert health.json()["status"] == "ollama_unreachable"


async def test_api_key_when_configured(fake_ollama, start_proxy):
    proxy = await start_proxy(api_key="sekrit")
    fake_ollama.script_chat(text_stream("ok"))
    body = {"model": "m", "max_tokens": 5, "messages": USER}
    with trio.fail_after(10):
        denied = await _raw(proxy, "POST", "/v1/messages", json=body, headers={"x-api-key": "nope"})
        bearer = await _raw(proxy, "POST", "/v1/messages", json=body, headers={"authorization": "Bearer sekrit"})
    assert denied.status_code == 401 and denied.json()["error"]["type"] == "authentication_error"
    assert bearer.status_code == 200
