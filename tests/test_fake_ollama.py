"""The fake Ollama itself: it must be faithful before other tests can trust it."""

from __future__ import annotations

import functools
import json

import httpx
import pytest
import trio

from tests.fake_ollama import Chunk, Close, Raw, Reset, Sleep, Stall, Status, text_stream


async def test_chat_streams_ollama_ndjson(fake_ollama):
    fake_ollama.script_chat(text_stream("Hello there", thinking="hm", prompt_eval_count=7, eval_count=3))
    with trio.fail_after(10):
        async with httpx.AsyncClient(base_url=fake_ollama.url) as client:
            response = await client.post("/api/chat", json={"model": "qwen3:8b", "messages": []})
    assert response.headers["content-type"] == "application/x-ndjson"
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert "".join(l["message"].get("thinking", "") for l in lines) == "hm"
    assert "".join(l["message"]["content"] for l in lines) == "Hello there"
    assert lines[-1]["done"] is True and lines[-1]["done_reason"] == "stop"
    assert lines[-1]["prompt_eval_count"] == 7 and lines[-1]["eval_count"] == 3
    assert all(l["model"] == "qwen3:8b" and l["created_at"] for l in lines)
    assert fake_ollama.chat_requests[-1].body["model"] == "qwen3:8b"


async def test_error_status_and_unknown_model(fake_ollama):
    fake_ollama.script_chat([Status(503, body={"error": "server busy"})])
    with trio.fail_after(10):
        async with httpx.AsyncClient(base_url=fake_ollama.url) as client:
            busy = await client.post("/api/chat", json={"model": "qwen3:8b"})
            unknown = await client.post("/api/chat", json={"model": "nope:1b"})
    assert busy.status_code == 503 and busy.json() == {"error": "server busy"}
    assert unknown.status_code == 404 and unknown.json() == {"error": "model 'nope:1b' not found"}


async def test_raw_bytes_arrive_exactly(fake_ollama):
    fake_ollama.script_chat([Raw(b'{"a":'), Sleep(0.01), Raw(b' "\xc3'), Raw(b'\xa9"}\n')])
    with trio.fail_after(10):
        async with httpx.AsyncClient(base_url=fake_ollama.url) as client:
            response = await client.post("/api/chat", json={"model": "qwen3:8b"})
    assert response.content == '{"a": "é"}\n'.encode()


async def test_stall_then_client_hang_up_is_recorded(fake_ollama):
    fake_ollama.script_chat([Stall()])
    with trio.fail_after(10):
        async with httpx.AsyncClient(base_url=fake_ollama.url) as client:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(functools.partial(client.post, "/api/chat", json={"model": "qwen3:8b"}))
                while fake_ollama.active_chats == 0:
                    await trio.sleep(0.01)
                nursery.cancel_scope.cancel()  # closes the connection
        await fake_ollama.wait_disconnected(1)
        while fake_ollama.active_chats:
            await trio.sleep(0.01)
    assert fake_ollama.disconnects[0].during == "stalled-before-status"


async def test_reset_and_close_break_the_body(fake_ollama):
    fake_ollama.script_chat([Chunk(content="x"), Reset()])
    fake_ollama.script_chat([Chunk(content="x"), Close()])
    with trio.fail_after(10):
        for _ in range(2):
            async with httpx.AsyncClient(base_url=fake_ollama.url) as client:
                with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
                    await client.post("/api/chat", json={"model": "qwen3:8b"})
    assert fake_ollama.disconnects == []  # our own resets are not the client leaving


async def test_foreign_host_is_forbidden(fake_ollama):
    with trio.fail_after(10):
        async with httpx.AsyncClient(base_url=fake_ollama.url) as client:
            response = await client.get("/api/version", headers={"host": "proxy.example:3000"})
    assert response.status_code == 403


async def test_admin_endpoints_and_keep_alive(fake_ollama):
    with trio.fail_after(10):
        async with httpx.AsyncClient(base_url=fake_ollama.url) as client:
            root = await client.get("/")
            head = await client.head("/")
            version = await client.get("/api/version")
            tags = await client.get("/api/tags")
            show = await client.post("/api/show", json={"model": "qwen3:8b"})
            missing = await client.post("/api/show", json={"model": "nope"})
            unknown = await client.get("/api/nothing")
            assert fake_ollama.open_connections == 1  # all on one kept-alive connection
    assert root.text == "Ollama is running" and head.status_code == 200 and head.content == b""
    assert version.json() == {"version": fake_ollama.version}
    assert [m["name"] for m in tags.json()["models"]] == [m.name for m in fake_ollama.models]
    assert set(tags.json()["models"][0]["details"]) >= {"format", "family", "parameter_size", "quantization_level"}
    info = show.json()
    assert "tools" in info["capabilities"]
    assert info["model_info"][f"{info['model_info']['general.architecture']}.context_length"] == 40960
    assert missing.status_code == 404 and unknown.status_code == 404


async def test_sleep_follows_the_mock_clock(fake_ollama, autojump_clock):
    fake_ollama.script_chat([Sleep(3600), *text_stream("late")])
    with trio.fail_after(7200):
        async with httpx.AsyncClient(base_url=fake_ollama.url, timeout=None) as client:
            start = trio.current_time()
            response = await client.post("/api/chat", json={"model": "qwen3:8b"})
    assert trio.current_time() - start >= 3600
    assert "".join(json.loads(line)["message"]["content"] for line in response.text.splitlines()) == "late"
