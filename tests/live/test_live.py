"""The live feed, GET /v1/events, through the real server with a trio-websocket client.

Each test watches the feed while real requests run through the proxy against the fake
Ollama, and asserts what a viewer sees: the steps of each request in order, their numbers,
cancels, repairs and errors, the key check, a viewer that never reads, and shutdown.
"""

from __future__ import annotations

import json
import socket

import httpx
import pytest
import trio
import wsproto
import wsproto.events
from trio_websocket import ConnectionClosed, ConnectionRejected, open_websocket_url

from tests.fake_ollama import Chunk, Model, Sleep, Stall, Status, text_stream, tool_call
from tests.e2e.test_e2e_sdk import WRITE_TOOL

BODY = {"model": "claude-sonnet-5-5", "max_tokens": 100, "stream": True,
        "messages": [{"role": "user", "content": "hi"}]}


def ws_url(proxy) -> str:
    return proxy.url.replace("http://", "ws://") + "/v1/events"


class Viewer:
    """A feed connection that collects every event it reads."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.events: list[dict] = []

    async def next(self) -> dict:
        event = json.loads(await self.ws.get_message())
        self.events.append(event)
        return event

    async def until(self, predicate, *, timeout: float = 10.0, limit: int = 500) -> dict:
        """Read until an event matches ``predicate``; return it."""
        with trio.fail_after(timeout):
            for _ in range(limit):
                event = await self.next()
                if predicate(event):
                    return event
        raise AssertionError(f"no matching event in {limit}: {self.events[-5:]}")

    def of(self, request_id: str) -> list[dict]:
        return [e for e in self.events if e.get("request_id") == request_id]


async def post(proxy, body: dict, **kwargs) -> httpx.Response:
    async with httpx.AsyncClient(timeout=20) as client:
        return await client.post(proxy.url + "/v1/messages", json=body, **kwargs)


async def test_a_streamed_request_appears_step_by_step(fake_ollama, proxy):
    # About 2.4 s of output: at least one progress event (they come about once a second).
    fake_ollama.script_chat(
        [Status(200)]
        + [a for i in range(8) for a in (Chunk(content=f"word{i} "), Sleep(0.3))]
        + [Chunk(done=True, done_reason="stop", prompt_eval_count=1234, eval_count=40)]
    )
    with trio.fail_after(20):
        async with open_websocket_url(ws_url(proxy)) as ws:
            viewer = Viewer(ws)
            hello = await viewer.next()
            assert hello["type"] == "hello" and hello["requests"] == []
            assert isinstance(hello["proxy_version"], str)
            response = await post(proxy, BODY)
            assert response.status_code == 200
            request_id = response.headers["request-id"]
            await viewer.until(lambda e: e["type"] == "finished")

    steps = viewer.of(request_id)
    kinds = [e["type"] for e in steps]
    assert kinds[:2] == ["started", "first_token"] and kinds[-1] == "finished"
    assert "progress" in kinds and set(kinds[2:-1]) == {"progress"}
    started, first, finished = steps[0], steps[1], steps[-1]
    assert started["model"] == "claude-sonnet-5-5" and started["ollama_model"] == "qwen3:8b"
    assert started["stream"] is True and started["messages"] == 1 and started["num_ctx"] >= 2048
    assert first["ttft_ms"] >= 0
    progress = [e for e in steps if e["type"] == "progress"]
    assert all(p["output_tokens"] > 0 and p["tokens_per_second"] > 0 for p in progress)
    assert [p["output_tokens"] for p in progress] == sorted(p["output_tokens"] for p in progress)
    assert finished["status"] == 200 and finished["stop_reason"] == "end_turn"
    assert finished["input_tokens"] == 1234 and finished["output_tokens"] == 40
    assert finished["input_tokens_estimated"] is False  # Ollama's own count
    assert finished["context_fill"] == pytest.approx(1234 / started["num_ctx"], abs=1e-3)
    assert finished["duration_ms"] >= 2000 and finished["tokens_per_second"] > 0
    assert finished["cancelled"] is False and finished["repairs"] == 0 and finished["error_type"] is None
    # seq grows by one per event across the feed; time is wall-clock
    seqs = [e["seq"] for e in viewer.events[1:]]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert all(abs(e["time"] - hello["time"]) < 60 for e in viewer.events)


async def test_a_new_viewer_gets_running_and_recent_requests_in_its_snapshot(fake_ollama, proxy):
    await post(proxy, BODY)  # done before anyone watches
    fake_ollama.script_chat([Chunk(content="still going"), Stall()])
    async with trio.open_nursery() as nursery:
        nursery.start_soon(post, proxy, BODY)
        with trio.fail_after(10):
            while fake_ollama.active_chats == 0:
                await trio.sleep(0.01)
            await trio.sleep(0.1)  # its first chunk went through
            async with open_websocket_url(ws_url(proxy)) as ws:
                hello = json.loads(await ws.get_message())
        nursery.cancel_scope.cancel()
    statuses = [r["status"] for r in hello["requests"]]
    assert statuses == ["running", 200]  # live first, then recent
    running = hello["requests"][0]
    assert running["model"] == "claude-sonnet-5-5" and running["ttft_ms"] is not None
    assert running["output_tokens"] > 0 and running["num_ctx"] > 0
    assert running["duration_ms"] >= 100 and running["tokens_per_second"] > 0
    assert running["input_tokens_estimated"] is True


async def test_a_client_hang_up_is_a_cancel_then_finished(fake_ollama, proxy):
    fake_ollama.script_chat([Chunk(content="one "), Chunk(content="two "), Stall()])
    with trio.fail_after(15):
        async with open_websocket_url(ws_url(proxy)) as ws:
            viewer = Viewer(ws)
            await viewer.next()
            async with httpx.AsyncClient(timeout=10) as client:
                async with client.stream("POST", proxy.url + "/v1/messages", json=BODY) as response:
                    request_id = response.headers["request-id"]
                    async for data in response.aiter_raw():
                        if b"two" in data:
                            break
            finished = await viewer.until(lambda e: e["type"] == "finished")
    cancel = [e for e in viewer.of(request_id) if e["type"] == "cancel"]
    assert len(cancel) == 1 and cancel[0]["phase"] == "streaming" and cancel[0]["output_tokens"] >= 1
    assert finished["request_id"] == request_id and finished["cancelled"] is True
    assert finished["stop_reason"] is None
    assert finished["input_tokens_estimated"] is True  # Ollama never said: the estimate
    assert finished["status"] == 200  # the stream had started: its status was sent


async def test_a_repaired_tool_call_is_a_repair_event(fake_ollama, proxy):
    fake_ollama.script_chat(text_stream("", tool_calls=[tool_call("Write", {"path": "/tmp/a.py", "content": "x"})]))
    with trio.fail_after(15):
        async with open_websocket_url(ws_url(proxy)) as ws:
            viewer = Viewer(ws)
            await viewer.next()
            response = await post(proxy, {**BODY, "tools": [WRITE_TOOL]})
            assert response.status_code == 200
            finished = await viewer.until(lambda e: e["type"] == "finished")
    repairs = [e for e in viewer.events if e["type"] == "repair"]
    assert len(repairs) == 1 and repairs[0]["tool"] == "Write" and repairs[0]["repairs"] == 1
    assert repairs[0]["dialect"] is None  # a native call
    assert any("file_path" in change for change in repairs[0]["changes"])
    assert finished["repairs"] == 1 and finished["stop_reason"] == "tool_use"


async def test_a_call_printed_as_text_is_a_repair_event_naming_its_dialect(fake_ollama, proxy):
    printed = '[TOOL_CALLS]Write[ARGS]{"file_path": "/tmp/a.py", "content": "x"}'
    fake_ollama.script_chat(text_stream(printed))
    with trio.fail_after(15):
        async with open_websocket_url(ws_url(proxy)) as ws:
            viewer = Viewer(ws)
            await viewer.next()
            response = await post(proxy, {**BODY, "tools": [WRITE_TOOL]})
            assert response.status_code == 200
            await viewer.until(lambda e: e["type"] == "finished")
    repairs = [e for e in viewer.events if e["type"] == "repair"]
    assert [(r["tool"], r["dialect"]) for r in repairs] == [("Write", "mistral")]
    assert repairs[0]["changes"] == ["recovered a call the model printed as text (mistral)"]


async def test_an_ollama_error_and_a_refused_request_are_error_events(fake_ollama, proxy):
    fake_ollama.script_chat([Status(404, body={"error": "model 'qwen3:8b' not found"})])
    with trio.fail_after(15):
        async with open_websocket_url(ws_url(proxy)) as ws:
            viewer = Viewer(ws)
            await viewer.next()
            upstream = await post(proxy, BODY)
            refused = await post(proxy, {"model": "claude-x", "messages": []})
            assert (upstream.status_code, refused.status_code) == (400, 400)
            await viewer.until(lambda e: e["type"] == "finished" and e["request_id"] == refused.headers["request-id"])
    errors = {e["request_id"]: e for e in viewer.events if e["type"] == "error"}
    finished = {e["request_id"]: e for e in viewer.events if e["type"] == "finished"}
    first = errors[upstream.headers["request-id"]]
    assert first["status"] == 400 and first["error_type"] == "invalid_request_error" and "not found" in first["message"]
    assert finished[upstream.headers["request-id"]]["status"] == 400
    second = errors[refused.headers["request-id"]]
    assert second["status"] == 400 and "max_tokens" in second["message"]
    assert finished[refused.headers["request-id"]]["model"] == "claude-x"
    assert not [e for e in viewer.of(refused.headers["request-id"]) if e["type"] == "started"]


async def test_the_feed_wants_the_key_when_one_is_set(start_proxy):
    proxy = await start_proxy(api_key="sekrit")
    with trio.fail_after(10):
        with pytest.raises(ConnectionRejected) as refused:
            async with open_websocket_url(ws_url(proxy)):
                pass
        assert refused.value.status_code == 401
        body = json.loads(refused.value.body)
        assert body["type"] == "error" and body["error"]["type"] == "authentication_error"
        with pytest.raises(ConnectionRejected):
            async with open_websocket_url(ws_url(proxy) + "?api_key=wrong"):
                pass
        for url, headers in [
            (ws_url(proxy), [(b"x-api-key", b"sekrit")]),
            (ws_url(proxy), [(b"authorization", b"Bearer sekrit")]),
            (ws_url(proxy) + "?api_key=sekrit", []),
        ]:
            async with open_websocket_url(url, extra_headers=headers) as ws:
                assert json.loads(await ws.get_message())["type"] == "hello"


async def test_other_websocket_paths_and_plain_http_get_clear_errors(proxy):
    with trio.fail_after(10):
        with pytest.raises(ConnectionRejected) as refused:
            async with open_websocket_url(proxy.url.replace("http://", "ws://") + "/v1/messages"):
                pass
        assert refused.value.status_code == 404
        assert json.loads(refused.value.body)["error"]["type"] == "not_found_error"
        async with httpx.AsyncClient() as client:
            response = await client.get(proxy.url + "/v1/events")
        assert response.status_code == 400
        assert "WebSocket" in response.json()["error"]["message"]


async def _open_stuck_viewer(proxy) -> tuple[trio.SocketStream, wsproto.WSConnection]:
    """A WebSocket that completes its handshake and then reads nothing: a tiny receive
    buffer, so the proxy's writes to it block after a few KB."""
    host, port = proxy.url.removeprefix("http://").split(":")
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    await sock.connect((host, int(port)))
    stream = trio.SocketStream(sock)
    ws = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
    await stream.send_all(ws.send(wsproto.events.Request(host=f"{host}:{port}", target="/v1/events")))
    with trio.fail_after(5):
        while True:
            ws.receive_data(await stream.receive_some(65536))
            if any(isinstance(e, wsproto.events.AcceptConnection) for e in ws.events()):
                return stream, ws


async def _drain(stream: trio.SocketStream, ws: wsproto.WSConnection, until_seq: int) -> list[dict]:
    """Read the stuck viewer's backlog until it has the event numbered ``until_seq``."""
    events: list[dict] = []
    text = ""
    with trio.fail_after(20):
        while not events or events[-1].get("seq", 0) < until_seq or events[-1]["type"] == "dropped":
            data = await stream.receive_some(1 << 20)
            assert data, "the proxy closed the viewer"
            ws.receive_data(data)
            for event in ws.events():
                if isinstance(event, wsproto.events.TextMessage):
                    text += event.data
                    if event.message_finished:
                        events.append(json.loads(text))
                        text = ""
    return events


async def test_a_viewer_that_never_reads_loses_old_events_and_delays_no_request(fake_ollama, start_proxy):
    # A long Ollama model name (the operator's model map may name anything; a client's
    # model is at most 512 characters) makes every started/finished event ~32 KB, so the
    # stuck viewer's socket fills after a handful and its buffer of 4 must overflow.
    long_name = "big-" + "x" * 32_000
    fake_ollama.models.append(Model(long_name))
    proxy = await start_proxy(events_buffer=4, log_level="WARNING", model_map={"claude-big": long_name})
    stuck, stuck_ws = await _open_stuck_viewer(proxy)
    big = {**BODY, "model": "claude-big", "stream": False}
    with trio.fail_after(60):
        async with open_websocket_url(ws_url(proxy), max_message_size=1 << 20) as ws:
            reader = Viewer(ws)
            await reader.next()
            async with httpx.AsyncClient(timeout=10) as client:
                for _ in range(150):
                    response = await client.post(proxy.url + "/v1/messages", json=big)
                    assert response.status_code == 200 and response.json()["content"][0]["text"] == "Hello"
                    await reader.until(lambda e: e["type"] == "finished")  # a live viewer keeps up
            last_seq = reader.events[-1]["seq"]
    # The reading viewer saw every event: no gaps, no drops.
    seqs = [e["seq"] for e in reader.events[1:]]
    assert seqs == list(range(seqs[0], last_seq + 1))
    assert not [e for e in reader.events if e["type"] == "dropped"]

    backlog = await _drain(stuck, stuck_ws, last_seq)
    await stuck.aclose()
    assert backlog[0]["type"] == "hello"
    dropped = [e for e in backlog if e["type"] == "dropped"]
    assert dropped, "a viewer that never read should have lost events"
    real = [e for e in backlog[1:] if e["type"] != "dropped"]
    gaps = sum(b["seq"] - a["seq"] - 1 for a, b in zip(real, real[1:]))
    assert gaps == sum(d["count"] for d in dropped)
    assert dropped[-1]["total"] == sum(d["count"] for d in dropped)
    assert real[-1]["seq"] == last_seq  # the newest events are the ones kept


async def test_shutdown_closes_viewers_with_going_away(fake_ollama, start_proxy):
    stop = trio.Event()
    proxy = await start_proxy(shutdown_trigger=stop.wait, graceful_timeout=30)
    with trio.fail_after(10):  # far less than the 30 s of grace: the viewer does not hold it
        async with open_websocket_url(ws_url(proxy)) as ws:
            await ws.get_message()
            stop.set()
            with pytest.raises(ConnectionClosed) as closed:
                await ws.get_message()
        assert closed.value.reason.code == 1001
        async with httpx.AsyncClient() as client:
            with trio.fail_after(5):
                while True:
                    try:
                        await client.get(proxy.url + "/health")
                    except httpx.ConnectError:
                        break
                    await trio.sleep(0.05)
