"""`claude-code-ollama-proxy tail`: the line format, and the client through real servers,
including a proxy restart it must survive."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import httpx
import pytest
import trio

from proxy.errors import TailRefused
from proxy.live.tail import events_url, format_event, tail

BODY = {"model": "claude-sonnet-5-5", "max_tokens": 100, "stream": True,
        "messages": [{"role": "user", "content": "hi"}]}
CONSOLE_SCRIPT = Path(sys.executable).with_name("claude-code-ollama-proxy")

RID = "req_0123456789abcdef01234567"
FORMATS = [
    ({"type": "hello", "proxy_version": "0.1.0", "requests": [{"status": "running"}, {"status": 200}]},
     ["connected", "0.1.0", "1 running, 1 recent"]),
    ({"type": "started", "request_id": RID, "model": "claude-haiku-4-5", "ollama_model": "qwen3:8b",
      "stream": False, "messages": 12, "tools": 30, "input_tokens": 15234, "num_ctx": 32768},
     ["req_01234567", "started", "claude-haiku-4-5 → qwen3:8b", "12 msgs", "30 tools", "~15234", "32768", "no stream"]),
    ({"type": "first_token", "request_id": RID, "ttft_ms": 812.4}, ["first_token", "812 ms"]),
    ({"type": "progress", "request_id": RID, "output_tokens": 120, "tokens_per_second": 41.26, "elapsed_ms": 3000},
     ["120 tokens out", "41.3 tok/s"]),
    ({"type": "repair", "request_id": RID, "tool": "Write", "changes": ["renamed path to file_path"], "repairs": 1},
     ["repair", "Write: renamed path to file_path"]),
    ({"type": "cancel", "request_id": RID, "phase": "prefill", "output_tokens": 0},
     ["cancel", "during prefill"]),
    ({"type": "error", "request_id": RID, "status": 529, "error_type": "overloaded_error", "message": "busy"},
     ["529 overloaded_error: busy"]),
    ({"type": "finished", "request_id": RID, "status": 200, "stop_reason": "tool_use", "ttft_ms": 90.0,
      "duration_ms": 2500.0, "input_tokens": 16000, "output_tokens": 80, "tokens_per_second": 33.3,
      "context_fill": 0.4883, "cancelled": False, "repairs": 2, "error_type": None},
     ["200 tool_use", "2500 ms", "ttft 90 ms", "16000 in / 80 out", "33.3 tok/s", "ctx 49%", "2 repairs"]),
    ({"type": "finished", "request_id": RID, "status": 499, "stop_reason": None, "ttft_ms": None,
      "duration_ms": 10.0, "input_tokens": 5, "output_tokens": 0, "tokens_per_second": None,
      "context_fill": None, "cancelled": True, "repairs": 0, "error_type": None},
     ["499 cancelled", "ttft -", "ctx -"]),
    ({"type": "dropped", "count": 17, "total": 20}, ["fell behind", "17 events lost"]),
    ({"type": "hosts", "hosts": [
        {"url": "http://a:11434", "state": "up", "in_flight": 2, "models_loaded": ["qwen3:8b"]},
        {"url": "http://b:11434", "state": "down", "in_flight": 0, "models_loaded": []}]},
     ["hosts", "http://a:11434 up 2 in flight [qwen3:8b]", "http://b:11434 down 0 in flight"]),
    ({"type": "finished", "request_id": RID, "status": 200, "stop_reason": "end_turn", "host": "http://b:11434"},
     ["200 end_turn", "on http://b:11434"]),
    ({"type": "from_the_future", "request_id": RID, "x": 1}, ["from_the_future", '{"x": 1}']),
]


@pytest.mark.parametrize("event, parts", FORMATS, ids=[e["type"] for e, _ in FORMATS])
def test_each_event_is_one_readable_line(event, parts):
    line = format_event({"seq": 1, "time": 1_800_000_000.0, **event})
    assert "\n" not in line
    for part in parts:
        assert part in line


@pytest.mark.parametrize("given, expected", [
    ("http://127.0.0.1:3000", "ws://127.0.0.1:3000/v1/events"),
    ("https://proxy.example/", "wss://proxy.example/v1/events"),
    ("ws://h:1/v1/events", "ws://h:1/v1/events"),
    ("127.0.0.1:3000", "ws://127.0.0.1:3000/v1/events"),
    ("http://h:1/prefix", "ws://h:1/prefix/v1/events"),
])
def test_events_url(given, expected):
    assert events_url(given) == expected


def test_events_url_refuses_other_schemes():
    with pytest.raises(ValueError, match="ftp://x"):
        events_url("ftp://x")


async def _post(url: str) -> str:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.post(url + "/v1/messages", json=BODY)
        assert response.status_code == 200
        return response.headers["request-id"]


async def _wait_for(stream: io.StringIO, text: str, *, timeout: float = 10.0) -> None:
    with trio.fail_after(timeout):
        while text not in stream.getvalue():
            await trio.sleep(0.02)


async def test_tail_prints_requests_and_survives_a_proxy_restart(fake_ollama, start_proxy):
    first_stop = trio.Event()
    first = await start_proxy(shutdown_trigger=first_stop.wait)
    port = int(first.url.rsplit(":", 1)[1])
    out, err = io.StringIO(), io.StringIO()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: tail(first.url, out=out, err=err))
        await _wait_for(out, "connected to claude-code-ollama-proxy")
        one = await _post(first.url)
        await _wait_for(out, f"{one[:12]} finished")

        first_stop.set()  # the proxy goes away...
        await _wait_for(err, "reconnecting")
        second = await start_proxy(port=port)  # ...and comes back on the same port
        await _wait_for(err, "reconnected")
        two = await _post(second.url)
        await _wait_for(out, f"{two[:12]} finished")
        nursery.cancel_scope.cancel()

    lines = out.getvalue().splitlines()
    assert sum("connected to claude-code-ollama-proxy" in line for line in lines) == 2
    for request_id in (one, two):
        mine = [line for line in lines if request_id[:12] in line]
        assert [line.split()[2] for line in mine][:2] == ["started", "first_token"]
        assert "200 end_turn" in mine[-1]
    assert err.getvalue().count("reconnecting") == 1  # said once per outage, not per try


async def test_tail_json_prints_the_raw_events(fake_ollama, proxy):
    out = io.StringIO()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: tail(proxy.url, as_json=True, out=out, err=io.StringIO()))
        await _wait_for(out, '"hello"')
        request_id = await _post(proxy.url)
        await _wait_for(out, '"finished"')
        nursery.cancel_scope.cancel()
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert events[0]["type"] == "hello"
    assert [e["type"] for e in events if e.get("request_id") == request_id][-1] == "finished"


async def test_tail_without_the_key_stops_with_what_to_do(start_proxy):
    proxy = await start_proxy(api_key="sekrit")
    with trio.fail_after(10):
        with pytest.raises(TailRefused, match="--api-key"):
            await tail(proxy.url, out=io.StringIO(), err=io.StringIO())
        # The console script: exit 1 and the same advice; with the key it connects.
        result = await trio.run_process(
            [str(CONSOLE_SCRIPT), "tail", "--url", proxy.url], capture_stdout=True, capture_stderr=True,
            check=False, env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"},
        )
    assert result.returncode == 1
    assert b"invalid API key" in result.stderr and b"--api-key" in result.stderr
    out = io.StringIO()
    with trio.fail_after(10):
        assert await tail(proxy.url, api_key="sekrit", out=out, err=io.StringIO(), max_events=1) == 1
    assert "connected" in out.getvalue()
