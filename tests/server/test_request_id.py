"""Every HTTP response carries `request-id` (docs/API.md), and the same bad field gets the
same message on every route — through the real server and the fake Ollama."""

from __future__ import annotations

import re

import httpx
import pytest
import trio

from tests.fake_ollama import text_stream

REQUEST_ID = re.compile(r"^req_[0-9a-f]{24}$")
MESSAGE = {"model": "claude-sonnet-4-5", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "/", None, 200),
        ("HEAD", "/", None, 200),
        ("GET", "/health", None, 200),
        ("GET", "/dashboard", None, 200),
        ("GET", "/v1/models", None, 200),
        ("POST", "/v1/messages/count_tokens", MESSAGE, 200),
        ("POST", "/v1/messages", MESSAGE, 200),
        ("POST", "/v1/messages", {**MESSAGE, "stream": True}, 200),
        ("POST", "/v1/messages", {"model": "x"}, 400),
        ("GET", "/v1/events", None, 400),
        ("GET", "/nowhere", None, 404),
        ("DELETE", "/v1/messages", None, 405),
    ],
)
async def test_every_response_carries_a_request_id(fake_ollama, proxy, method, path, body, status):
    if path == "/v1/messages" and status == 200:
        fake_ollama.script_chat(text_stream("hello"))
    with trio.fail_after(15):
        async with httpx.AsyncClient(base_url=proxy.url) as client:
            response = await client.request(method, path, json=body)
    assert response.status_code == status
    assert REQUEST_ID.match(response.headers.get("request-id", "")), response.headers
    assert len(response.headers.get_list("request-id")) == 1


async def test_each_response_gets_its_own_id(proxy):
    with trio.fail_after(10):
        async with httpx.AsyncClient(base_url=proxy.url) as client:
            ids = {(await client.get("/health")).headers["request-id"] for _ in range(3)}
    assert len(ids) == 3


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"model": "claude-sonnet-4-5", "max_tokens": 5}, "messages: field required"),
        ({"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": "hi"}, "messages: must be an array"),
        ({"model": "", "max_tokens": 5, "messages": []}, "model: must be a non-empty string"),
        (["not", "an", "object"], "request body must be a JSON object"),
    ],
)
async def test_the_same_bad_field_gets_the_same_message_on_every_route(proxy, body, message):
    with trio.fail_after(10):
        async with httpx.AsyncClient(base_url=proxy.url) as client:
            answers = [await client.post(path, json=body) for path in ("/v1/messages", "/v1/messages/count_tokens")]
    for response in answers:
        assert response.status_code == 400
        assert response.json()["error"] == {"type": "invalid_request_error", "message": message}
