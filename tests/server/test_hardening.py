"""No single request can freeze, bloat or crash the proxy, and no web page can use it.

Each test goes through the real Hypercorn server and the fake Ollama, and each one failed on
the code before the fix it guards (see the commit that added it).
"""

from __future__ import annotations

import functools
import json
import os
import re
import signal
import subprocess
import sys

import httpx
import pytest
import trio

from tests.fake_ollama import Chunk, Model, Stall, Status, text_stream

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


# -- 2. memory stays bounded, whatever names and errors come in ----------------------------


async def test_per_model_tables_keep_only_models_ollama_confirmed(fake_ollama, start_proxy, monkeypatch):
    monkeypatch.setattr("proxy.protocol.bounded.MODEL_TABLE_SIZE", 4)
    proxy = await start_proxy()
    names = [f"nope{i}:{'x' * 200}" for i in range(10)]
    async with httpx.AsyncClient(base_url=proxy.url, timeout=20) as client:
        with trio.fail_after(30):
            for name in names:
                thinking = {"thinking": {"type": "enabled", "budget_tokens": 1024}}
                response = await client.post("/v1/messages", json={**SMALL, "model": name, **thinking})
                assert response.status_code == 400  # a missing model is a 400: Claude Code shows its message (issue 16)
                assert "ollama pull" in response.json()["error"]["message"]
    app = proxy.app
    # Ollama never confirmed one of them (the last request ends just after its answer).
    with trio.fail_after(5):
        while app.num_ctx_high_water:
            await trio.sleep(0.01)
    assert len(app.capabilities._warned_no_thinking) <= 4

    # Models Ollama did answer for: the most recent ones are kept, up to the cap.
    installed = [f"real{i}:1b" for i in range(7)]
    fake_ollama.models.extend(Model(name) for name in installed)
    async with httpx.AsyncClient(base_url=proxy.url, timeout=20) as client:
        with trio.fail_after(30):
            for name in installed:
                response = await client.post("/v1/messages", json={**SMALL, "model": name})
                assert response.status_code == 200
    with trio.fail_after(5):  # the last request's bookkeeping ends just after its answer
        while installed[-1] not in app.num_ctx_high_water:
            await trio.sleep(0.01)
    assert list(app.num_ctx_high_water) == installed[-4:]
    # Using a kept model again keeps it over newer ones.
    async with httpx.AsyncClient(base_url=proxy.url, timeout=20) as client:
        with trio.fail_after(30):
            for name in [installed[3], "real7:1b"]:
                if name == "real7:1b":
                    fake_ollama.models.append(Model(name))
                assert (await client.post("/v1/messages", json={**SMALL, "model": name})).status_code == 200
    with trio.fail_after(5):
        while "real7:1b" not in app.num_ctx_high_water:
            await trio.sleep(0.01)
    assert list(app.num_ctx_high_water) == [installed[5], installed[6], installed[3], "real7:1b"]
    assert len(app.capabilities._entries) <= 4


async def test_huge_model_names_and_ollama_errors_are_cut_short_in_answers_and_logs(
    fake_ollama, start_proxy, caplog
):
    proxy = await start_proxy()
    async with httpx.AsyncClient(base_url=proxy.url, timeout=20) as client:
        with trio.fail_after(30):
            response = await client.post("/v1/messages", json={**SMALL, "model": "m" * 1_000_000})
            assert response.status_code == 400
            assert len(response.content) < 2000
            assert "model" in response.json()["error"]["message"]

            # Ollama's own error body is read with a cap and echoed cut short.
            # (twice: a 500 gets the proxy's one quick retry)
            for _ in range(2):
                fake_ollama.script_chat([Status(500, body={"error": "boom " * 1_000_000})])
            response = await client.post("/v1/messages", json=SMALL)
            assert response.status_code == 500
            message = response.json()["error"]["message"]
            assert message.startswith("Ollama answered HTTP 500 for 'qwen3:8b': boom boom"), message[:300]
            assert len(message) < 2000
    longest = max(len(record.getMessage()) for record in caplog.records)
    assert longest < 4000


# -- 3. a lone surrogate is refused or replaced; no encoder raises on client text ------------

SURROGATE_MODEL = b'{"model": "qwen\\ud800", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]'


async def test_a_lone_surrogate_in_the_model_is_a_400_and_viewers_keep_watching(fake_ollama, start_proxy, tmp_path):
    from trio_websocket import open_websocket_url

    log_file = tmp_path / "proxy.log"
    proxy = await start_proxy(log_file=str(log_file))
    with trio.fail_after(20):
        async with open_websocket_url(proxy.url.replace("http://", "ws://") + "/v1/events") as ws:
            await ws.get_message()  # the hello
            async with httpx.AsyncClient(base_url=proxy.url, timeout=20) as client:
                headers = {"content-type": "application/json"}
                for stream in (b"false", b"true"):
                    response = await client.post(
                        "/v1/messages", content=SURROGATE_MODEL + b', "stream": ' + stream + b"}", headers=headers
                    )
                    assert response.status_code == 400, response.content
                    error = response.json()["error"]
                    assert error["type"] == "invalid_request_error" and "surrogate" in error["message"]
                # Client text with lone surrogates (a tool output cut mid-emoji) still works,
                # in the answer, the log (DEBUG bodies) and the live view.
                text = b'{"model": "qwen3:8b", "max_tokens": 100, "stream": true, "messages": [{"role": "user", "content": "cut \\ud83d here"}]}'
                response = await client.post("/v1/messages", content=text, headers=headers)
                assert response.status_code == 200 and b"event: message_stop" in response.content
                finished = response.headers["request-id"]
            for _ in range(100):  # bounded: the feed carries both refusals, then this one
                event = json.loads(await ws.get_message())
                if event.get("type") == "finished" and event.get("request_id") == finished:
                    break
            else:
                raise AssertionError("the viewer never saw the last request finish")
    # Sent on as JSON's \ud83d escape: Ollama (Go) reads it as U+FFFD.
    assert b"cut \\ud83d here" in fake_ollama.chat_requests[-1].raw_body
    records = [json.loads(line) for line in log_file.read_text(encoding="utf-8").splitlines()]
    assert any(r.get("EventName") == "proxy.request.body" for r in records)


# -- 4. NaN, Infinity and deep nesting are 400s on every route that parses JSON ---------------


def _nested(depth: int) -> bytes:
    return b'{"model": "qwen3:8b", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}], "metadata": ' + b"[" * depth + b"]" * depth + b"}"


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/messages/count_tokens"])
async def test_non_finite_numbers_and_deep_nesting_are_400s(proxy, path):
    base = b'{"model": "qwen3:8b", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}], "temperature": '
    cases = {
        "NaN": base + b"NaN}",
        "Infinity": base + b"Infinity}",
        "-Infinity": base + b"-Infinity}",
        "1e999": base + b"1e999}",
        "deep": _nested(100_000),
        "deeper than the limit": _nested(300),
    }
    async with httpx.AsyncClient(base_url=proxy.url, timeout=20) as client:
        with trio.fail_after(30):
            for name, body in cases.items():
                response = await client.post(path, content=body, headers={"content-type": "application/json"})
                assert response.status_code == 400, (name, response.status_code, response.content[:200])
                error = response.json()["error"]
                assert error["type"] == "invalid_request_error", name
                expected = "nested" if "deep" in name else "finite"
                assert expected in error["message"], (name, error["message"])
            # Nesting a real request needs (tool schemas, tool inputs) is fine.
            response = await client.post(path, content=_nested(50), headers={"content-type": "application/json"})
            assert response.status_code == 200, response.content[:300]


async def test_a_user_id_holding_json_nested_too_deep_is_answered(fake_ollama, proxy):
    # metadata.user_id is a string the proxy reads as JSON for Claude Code's session_id (to
    # keep a session on one host); nested past the decoder's depth, it raised RecursionError:
    # "internal error in the proxy". Now it is a user_id without a session_id: the request
    # is keyed by its prompt and answered.
    fake_ollama.script_chat(text_stream("answered"))
    body = {"model": "qwen3:8b", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}],
            "metadata": {"user_id": "[" * 5000}}
    async with httpx.AsyncClient(base_url=proxy.url, timeout=20) as client:
        with trio.fail_after(20):
            response = await client.post("/v1/messages", json=body)
    assert response.status_code == 200, response.content[:300]
    assert response.json()["content"] == [{"type": "text", "text": "answered"}]


# -- 5. a body must arrive in time; a declared oversize body is refused unread --------------


async def _raw_exchange(proxy, head: bytes, body_part: bytes) -> tuple[bytes, float]:
    """Send ``head`` and ``body_part`` on a new connection, then nothing; return what the
    proxy sent until it closed the connection, and how long that took."""
    host, port = proxy.url.removeprefix("http://").split(":")
    stream = await trio.open_tcp_stream(host, int(port))
    started = trio.current_time()
    await stream.send_all(head + body_part)
    received = b""
    for _ in range(100):  # bounded: the answer is a few chunks, then EOF
        data = await stream.receive_some(65536)
        if not data:
            break
        received += data
    await stream.aclose()
    return received, trio.current_time() - started


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/messages/count_tokens"])
async def test_a_stalled_body_gets_a_408_and_the_connection_is_closed(start_proxy, path):
    proxy = await start_proxy(body_timeout=0.5)
    head = (
        f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        "content-length: 1000\r\n\r\n"
    ).encode()
    with trio.fail_after(10):
        received, took = await _raw_exchange(proxy, head, b'{"model": "qwen3:8b", "messa')
    assert received.startswith(b"HTTP/1.1 408 "), received[:200]
    body = json.loads(received.split(b"\r\n\r\n", 1)[1])
    assert body["error"]["type"] == "invalid_request_error" and "0.5 s" in body["error"]["message"]
    assert took < 5


async def test_a_declared_body_over_the_limit_is_a_413_before_it_is_read(start_proxy):
    proxy = await start_proxy(body_limit=1000, body_timeout=30)
    head = (
        "POST /v1/messages HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        "content-length: 50000000\r\n\r\n"
    ).encode()
    with trio.fail_after(10):
        received, took = await _raw_exchange(proxy, head, b"{")
    assert received.startswith(b"HTTP/1.1 413 "), received[:200]
    body = json.loads(received.split(b"\r\n\r\n", 1)[1])
    assert body["error"]["type"] == "request_too_large" and "1000 bytes" in body["error"]["message"]
    assert took < 5  # at once, not after a body timeout


# -- 6. a stream cut by shutdown ends with an error event ------------------------------------


async def test_streams_cut_by_shutdown_end_with_an_overloaded_error_event(fake_ollama, start_proxy):
    stop = trio.Event()
    proxy = await start_proxy(shutdown_trigger=stop.wait, graceful_timeout=0.5, commit_grace=0.1)
    fake_ollama.script_chat([Chunk(content="half an ans"), Stall()])  # committed, then stuck
    fake_ollama.script_chat([Stall()])  # not answered yet: still queued in Ollama
    results: dict[str, httpx.Response | bytes] = {}

    async def streamed(client: httpx.AsyncClient) -> None:
        body = b""
        async with client.stream("POST", "/v1/messages", json={**SMALL, "stream": True}) as response:
            async for chunk in response.aiter_raw():
                body += chunk
        results["streamed"] = body

    async def whole(client: httpx.AsyncClient) -> None:
        results["whole"] = await client.post("/v1/messages", json=SMALL)

    with trio.fail_after(20):
        async with httpx.AsyncClient(base_url=proxy.url, timeout=15) as one, \
                httpx.AsyncClient(base_url=proxy.url, timeout=15) as two:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(streamed, one)
                with trio.fail_after(5):
                    while fake_ollama.active_chats < 1:
                        await trio.sleep(0.01)
                nursery.start_soon(whole, two)
                with trio.fail_after(5):
                    while fake_ollama.active_chats < 2:
                        await trio.sleep(0.01)
                await trio.sleep(0.3)  # past commit_grace: the stream is committed
                stop.set()
    frames = [f for f in results["streamed"].decode().split("\n\n") if f.strip()]
    assert frames[0].startswith("event: message_start")
    assert "half an ans" in results["streamed"].decode()
    last = frames[-1]
    assert last.startswith("event: error"), frames[-3:]
    error = json.loads(last.split("data: ", 1)[1])["error"]
    assert error == {"type": "overloaded_error", "message": "the proxy is shutting down"}
    whole = results["whole"]
    assert whole.status_code == 529
    assert whole.json()["error"] == {"type": "overloaded_error", "message": "the proxy is shutting down"}


async def test_a_server_cancelled_after_the_answer_was_sent_cut_nothing(fake_ollama, caplog):
    """After the answer went out the relay still reads the rest of Ollama's body (briefly);
    a server cancelled then (an embedding program, a test, a bench) cut nothing: no 'cut by
    the shutdown' warning, and the client's stream is whole."""
    from proxy.server.app import ProxyApp
    from proxy.config import load_settings
    from proxy.server.runner import serve

    settings = load_settings({"host": "127.0.0.1", "port": 0, "ollama_url": fake_ollama.url},
                             environ={}, read_config_file=False)
    # the final chunk, then Ollama's body stays open: the relay is draining it
    fake_ollama.script_chat([Chunk(content="the whole answer"), Chunk(done=True, done_reason="stop"), Stall()])
    with trio.fail_after(20):
        async with trio.open_nursery() as servers:
            urls = await servers.start(functools.partial(serve, settings, app=ProxyApp(settings)))
            async with httpx.AsyncClient(base_url=urls[0], timeout=15) as client:
                body = b""
                async with client.stream("POST", "/v1/messages", json={**SMALL, "stream": True}) as response:
                    async for chunk in response.aiter_raw():
                        body += chunk
            servers.cancel_scope.cancel()  # within the relay's 0.25 s drain
    assert b"event: message_stop" in body and b"event: error" not in body
    messages = [record.getMessage() for record in caplog.records]
    assert not [m for m in messages if "cut by the shutdown" in m], messages
    assert [m for m in messages if "after its answer was sent; nothing was cut" in m], messages


async def _plain_hypercorn(fake_url: str, grace: int) -> tuple[trio.Process, str]:
    """``hypercorn proxy.app:app`` (the documented command) on 127.0.0.1:0; its process and URL."""
    env = {**os.environ, "PROXY_OLLAMA_URL": fake_url, "PROXY_COMMIT_GRACE": "0.1"}
    env.pop("PROXY_CONFIG", None)
    command = [sys.executable, "-m", "hypercorn", "proxy.app:app", "--worker-class", "trio",
               "--bind", "127.0.0.1:0", "--graceful-timeout", str(grace)]
    process = await trio.lowlevel.open_process(
        command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    seen = b""
    while (found := re.search(rb"Running on (http://[\d.:]+)", seen)) is None:
        data = await process.stderr.receive_some(4096)
        assert data, seen.decode()
        seen += data
    return process, found.group(1).decode()


async def test_under_plain_hypercorn_viewers_close_at_once_and_a_cut_stream_gets_the_error_event(fake_ollama):
    # Hypercorn's own grace (--graceful-timeout, docs/DEPLOYMENT.md) applies there.
    from trio_websocket import ConnectionClosed, open_websocket_url

    fake_ollama.script_chat([Chunk(content="forever "), Stall()])
    with trio.fail_after(30):
        process, url = await _plain_hypercorn(fake_ollama.url, grace=4)
        try:
            body = b""
            async with open_websocket_url(url.replace("http://", "ws://") + "/v1/events") as ws:
                await ws.get_message()  # the hello
                async with httpx.AsyncClient(base_url=url, timeout=20) as client:
                    async with client.stream("POST", "/v1/messages", json={**SMALL, "stream": True}) as response:
                        async for data in response.aiter_raw():
                            if not body:
                                process.send_signal(signal.SIGTERM)
                                signalled = trio.current_time()
                                # The viewer is closed as the shutdown begins, not at its end.
                                with pytest.raises(ConnectionClosed) as closed:
                                    for _ in range(100):  # bounded: events, then the close
                                        await ws.get_message()
                                assert closed.value.reason.code == 1001
                                assert trio.current_time() - signalled < 2.5
                            body += data
            assert await process.wait() == 0
        finally:
            if process.returncode is None:
                process.kill()
    assert body.rstrip().endswith(b'"message":"the proxy is shutting down"}}'), body[-300:]


# -- 7. no web page can use the proxy: Origin and Host are checked -------------------------


async def test_a_cross_site_page_and_a_rebound_host_are_refused(fake_ollama, proxy):
    from trio_websocket import ConnectionRejected, open_websocket_url

    port = proxy.url.rsplit(":", 1)[1]
    async with httpx.AsyncClient(base_url=proxy.url, timeout=20) as client:
        with trio.fail_after(20):
            # A form-like cross-site POST (text/plain needs no CORS preflight).
            response = await client.post(
                "/v1/messages", content=json.dumps(SMALL),
                headers={"content-type": "text/plain", "origin": "http://evil.example"},
            )
            assert response.status_code == 403
            error = response.json()["error"]
            assert error["type"] == "permission_error" and "http://evil.example" in error["message"]
            assert "PROXY_ALLOWED_ORIGINS" in error["message"]
            assert fake_ollama.chat_requests == []
            # DNS rebinding: a name the attacker controls, resolving to 127.0.0.1.
            response = await client.get("/v1/models", headers={"host": f"evil.example:{port}"})
            assert response.status_code == 403 and "PROXY_ALLOWED_HOSTS" in response.json()["error"]["message"]
            # What Claude Code sends (no Origin, Host 127.0.0.1:PORT), localhost, and the
            # dashboard's own origin are served.
            for headers in ({}, {"host": f"localhost:{port}"}, {"origin": proxy.url},
                            {"origin": f"http://localhost:{port}", "host": f"localhost:{port}"}):
                response = await client.post("/v1/messages", json=SMALL, headers=headers)
                assert response.status_code == 200, (headers, response.content)
        ws_url = proxy.url.replace("http://", "ws://") + "/v1/events"
        with trio.fail_after(10):
            with pytest.raises(ConnectionRejected) as refused:
                async with open_websocket_url(ws_url, extra_headers=[(b"origin", b"http://evil.example")]):
                    pass
            assert refused.value.status_code == 403
            async with open_websocket_url(ws_url, extra_headers=[(b"origin", proxy.url.encode())]) as ws:
                assert json.loads(await ws.get_message())["type"] == "hello"


async def test_allowed_origins_and_hosts_are_settings_and_a_key_relaxes_the_host_check(fake_ollama, start_proxy):
    allowing = await start_proxy(allowed_origins="http://tool.example", allowed_hosts="proxy.lan")
    keyed = await start_proxy(api_key="sekrit")
    async with httpx.AsyncClient(timeout=20) as client:
        with trio.fail_after(20):
            response = await client.post(allowing.url + "/v1/messages", json=SMALL,
                                         headers={"origin": "http://tool.example", "host": "proxy.lan:3000"})
            assert response.status_code == 200, response.content
            response = await client.post(allowing.url + "/v1/messages", json=SMALL,
                                         headers={"origin": "http://other.example"})
            assert response.status_code == 403
            response = await client.get(keyed.url + "/v1/models", headers={"host": "gpu-box.lan", "x-api-key": "sekrit"})
            assert response.status_code == 200
            # The key does not make a foreign page welcome.
            response = await client.get(keyed.url + "/v1/models",
                                        headers={"origin": "http://evil.example", "x-api-key": "sekrit"})
            assert response.status_code == 403


# -- 9. the proxy's own connection limit is named as such ----------------------------------


async def test_a_full_ollama_pool_is_reported_as_the_proxys_own_limit(fake_ollama, start_proxy):
    proxy = await start_proxy(ollama_connections=1, connect_timeout=0.5)
    fake_ollama.script_chat([Stall()])
    async with httpx.AsyncClient(base_url=proxy.url, timeout=20) as one, \
            httpx.AsyncClient(base_url=proxy.url, timeout=20) as two:
        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(functools.partial(one.post, "/v1/messages", json=SMALL))
                while fake_ollama.active_chats < 1:
                    await trio.sleep(0.01)
                response = await two.post("/v1/messages", json=SMALL)
                nursery.cancel_scope.cancel()
    assert response.status_code == 529
    error = response.json()["error"]
    assert error["type"] == "overloaded_error"
    assert "ollama serve" not in error["message"]
    assert "1 connection" in error["message"] and "PROXY_OLLAMA_CONNECTIONS" in error["message"]


def test_serve_listens_with_a_backlog_for_bursts_of_connections():
    from proxy.config import load_settings
    from proxy.server.runner import hypercorn_config

    config = hypercorn_config(load_settings({}, environ={}, read_config_file=False))
    assert config.backlog >= 1024
