"""One nursery per request: disconnects, keepalive, timeouts, upstream faults, shutdown.

Everything runs through the real Hypercorn server and the fake Ollama. Clients here are raw
httpx streams (so a test can hang up at an exact moment) or the anthropic SDK.
"""

from __future__ import annotations

import functools
import json

import anthropic
import httpx
import pytest
import trio

from tests.conftest import no_task_left, proxy_tasks
from tests.fake_ollama import Chunk, Close, Line, Raw, Reset, Sleep, Stall, Status, text_stream

BODY = {"model": "claude-sonnet-5-5", "max_tokens": 100, "stream": True,
        "messages": [{"role": "user", "content": "hi"}]}


async def wait_until(predicate, *, timeout: float = 5.0) -> None:
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.01)


def sse_events(raw: bytes) -> list[tuple[str, dict]]:
    events = []
    for frame in raw.decode().split("\n\n"):
        if not frame.strip():
            continue
        lines = dict(line.split(": ", 1) for line in frame.split("\n"))
        events.append((lines["event"], json.loads(lines["data"])))
    return events


async def read_until(stream: httpx.Response, marker: bytes) -> bytes:
    """Read the response body until ``marker`` appears; return what was read."""
    seen = b""
    async for data in stream.aiter_raw():
        seen += data
        if marker in seen:
            return seen
    raise AssertionError(f"stream ended before {marker!r}: {seen!r}")


# -- disconnects ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "script, hang_up_after, phase",
    [
        # queued/loading: Ollama has not even answered with a status; hang up before the commit
        ([Stall()], None, "waiting for Ollama"),
        # prefill: Ollama answered 200 but no token yet
        ([Status(200), Stall()], b"message_start", "prefill"),
        # mid-stream
        ([Chunk(content="one "), Chunk(content="two "), Stall()], b"two", "streaming"),
        # thinking
        ([Chunk(thinking="hmm "), Stall()], b"thinking_delta", "streaming"),
    ],
    ids=["before-any-byte", "prefill", "mid-stream", "mid-thinking"],
)
async def test_client_disconnect_closes_the_ollama_connection(
    fake_ollama, start_proxy, caplog, script, hang_up_after, phase
):
    proxy = await start_proxy(commit_grace=5)
    fake_ollama.script_chat(script)

    async def request_then_hang_up(client: httpx.AsyncClient) -> None:
        async with client.stream("POST", "/v1/messages?beta=true", json=BODY) as response:
            assert response.status_code == 200
            await read_until(response, hang_up_after)
        # leaving the block closes the client's connection: Esc in Claude Code

    with trio.fail_after(10), proxy_tasks() as tasks:
        async with httpx.AsyncClient(base_url=proxy.url) as client:
            if hang_up_after is None:  # no response head yet: cancel the waiting request
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(functools.partial(client.post, "/v1/messages", json=BODY))
                    await wait_until(lambda: fake_ollama.active_chats == 1)
                    nursery.cancel_scope.cancel()
            else:
                await request_then_hang_up(client)
        await fake_ollama.wait_disconnected(1)
        await no_task_left(tasks, also=lambda: fake_ollama.active_chats == 0)
    assert len(fake_ollama.disconnects) == 1
    cancels = [r.getMessage() for r in caplog.records if "cancelled by the client" in r.getMessage()]
    assert len(cancels) == 1  # one line, with the request id, the phase and the tokens so far
    assert cancels[0].startswith("request req_") and f"during {phase} after ~" in cancels[0]


async def test_disconnect_during_the_final_chunk_leaves_nothing_behind(fake_ollama, proxy):
    # Ollama sends its final chunk but keeps the connection open: the proxy must not wait on it.
    fake_ollama.script_chat([Chunk(content="all"), Chunk(done=True, done_reason="stop", eval_count=1), Stall()])
    with trio.fail_after(10), proxy_tasks() as tasks:
        async with httpx.AsyncClient(base_url=proxy.url) as client:
            async with client.stream("POST", "/v1/messages", json=BODY) as response:
                raw = await read_until(response, b"message_stop")
        await fake_ollama.wait_disconnected(1)
        await no_task_left(tasks, also=lambda: fake_ollama.active_chats == 0)
    assert [name for name, _ in sse_events(raw)][-1] == "message_stop"


async def test_the_client_gets_its_whole_answer_before_ollamas_body_is_drained(fake_ollama, proxy):
    # Ollama keeps its body open after the final chunk. The proxy ends the client's response
    # first and only then waits (briefly) for the rest of Ollama's body.
    with proxy_tasks() as tasks:
        for stream in (True, False):
            fake_ollama.script_chat([Chunk(content="all"), Chunk(done=True, done_reason="stop", eval_count=1), Stall()])
            with trio.fail_after(10):
                async with httpx.AsyncClient(base_url=proxy.url) as client:
                    response = await client.post("/v1/messages", json={**BODY, "stream": stream})
                # the response is whole, while the proxy still holds Ollama's connection
                assert len(fake_ollama.disconnects) == (0 if stream else 1)
                await fake_ollama.wait_disconnected(1 if stream else 2)
            if stream:
                assert [name for name, _ in sse_events(response.content)][-1] == "message_stop"
            else:
                assert response.json()["content"][0]["text"] == "all"
        await no_task_left(tasks)


async def test_answers_one_after_another_reuse_one_ollama_connection(fake_ollama, proxy):
    # The relay reads the end of each body after the final chunk, so the connection goes
    # back to the pool: a new connection per request costs more than the translation.
    with trio.fail_after(10):
        async with httpx.AsyncClient(base_url=proxy.url) as client:
            for i in range(3):
                fake_ollama.script_chat(text_stream(f"answer {i}"))
                response = await client.post("/v1/messages", json=BODY)
                assert [name for name, _ in sse_events(response.content)][-1] == "message_stop"
    assert len(fake_ollama.chat_requests) == 3
    assert len({r.connection for r in fake_ollama.chat_requests}) == 1


async def test_many_cancels_leave_no_task_and_no_connection(fake_ollama, start_proxy):
    proxy = await start_proxy(commit_grace=0.05)
    rounds = 12
    with trio.fail_after(20), proxy_tasks() as tasks:
        async with httpx.AsyncClient(base_url=proxy.url) as client:
            for i in range(rounds):
                fake_ollama.script_chat([Chunk(content=f"r{i} "), Stall()])
                async with client.stream("POST", "/v1/messages", json=BODY) as response:
                    await read_until(response, f"r{i}".encode())
        await fake_ollama.wait_disconnected(rounds)
        await no_task_left(tasks, also=lambda: fake_ollama.active_chats == 0)
    assert len(fake_ollama.disconnects) == rounds


async def test_non_streaming_disconnect_also_stops_ollama(fake_ollama, proxy):
    fake_ollama.script_chat([Chunk(content="thinking hard"), Stall()])
    with trio.fail_after(10), proxy_tasks() as tasks:
        async with httpx.AsyncClient(base_url=proxy.url, timeout=10) as client:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(functools.partial(client.post, "/v1/messages", json={**BODY, "stream": False}))
                await wait_until(lambda: fake_ollama.active_chats == 1)
                await trio.sleep(0.1)
                nursery.cancel_scope.cancel()
        await fake_ollama.wait_disconnected(1)
        await no_task_left(tasks)


# -- the task check itself: it sees the request's tasks, and a leak ----------------------


async def test_the_task_check_sees_a_requests_tasks_while_it_runs(fake_ollama, proxy):
    fake_ollama.script_chat([Chunk(content="one "), Stall()])
    with trio.fail_after(10), proxy_tasks() as tasks:
        async with httpx.AsyncClient(base_url=proxy.url) as client:
            async with client.stream("POST", "/v1/messages", json=BODY) as response:
                await read_until(response, b"one")
                during = tasks.names()
        await no_task_left(tasks, also=lambda: fake_ollama.active_chats == 0)
    # Hypercorn's connection and the request's own nursery (its disconnect watcher, …)
    assert len(during) >= 2, during
    assert any(name.startswith("proxy.") for name in during), during
    assert tasks.names() == []


@pytest.mark.parametrize("leak", [None, "system task", "long-lived nursery"])
@pytest.mark.parametrize("ending", ["answered", "cancelled"])
async def test_the_task_check_fails_when_a_request_leaks_a_task(fake_ollama, proxy, nursery, monkeypatch, leak, ending):
    """A handler that leaves a task behind (here on purpose, wrapping the app) fails the
    check that every lifecycle test (and the server fuzz test) ends with; an answered or a
    cancelled request that leaks nothing passes it."""
    from proxy.server.app import ProxyApp

    release = trio.Event()
    original = ProxyApp.__call__

    async def leaked_task() -> None:
        await release.wait()

    async def leaky(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["path"] == "/v1/messages":
            if leak == "system task":
                trio.lowlevel.spawn_system_task(leaked_task)
            elif leak == "long-lived nursery":
                nursery.start_soon(leaked_task)
        await original(self, scope, receive, send)

    monkeypatch.setattr(ProxyApp, "__call__", leaky)
    fake_ollama.script_chat([Chunk(content="one "), Stall()] if ending == "cancelled" else text_stream("done"))
    with trio.fail_after(10), proxy_tasks() as tasks:
        async with httpx.AsyncClient(base_url=proxy.url) as client:
            async with client.stream("POST", "/v1/messages", json=BODY) as response:
                await read_until(response, b"one" if ending == "cancelled" else b"message_stop")
        if leak is None:
            await no_task_left(tasks, also=lambda: fake_ollama.active_chats == 0)
        else:
            with pytest.raises(AssertionError, match=r"still alive .*leaked_task"):
                await no_task_left(tasks, timeout=0.5, also=lambda: fake_ollama.active_chats == 0)
            assert [name.rsplit(".", 1)[-1] for name in tasks.names()] == ["leaked_task"]
            release.set()  # the leaked task ends: the check passes again
            await no_task_left(tasks)


# -- commit and keepalive ------------------------------------------------------------


async def test_slow_prefill_commits_early_and_pings(fake_ollama, start_proxy, autojump_clock):
    # A model loading and prefilling for 65 s before its first token.
    proxy = await start_proxy(commit_grace=1, ping_interval=10)
    fake_ollama.script_chat([Sleep(65), *text_stream("finally")])
    with trio.fail_after(120):
        async with httpx.AsyncClient(base_url=proxy.url, timeout=None) as client:
            async with client.stream("POST", "/v1/messages", json=BODY) as response:
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("text/event-stream")
                raw = b"".join([chunk async for chunk in response.aiter_raw()])
    names = [name for name, _ in sse_events(raw)]
    assert names[0] == "message_start"
    assert 5 <= names.count("ping") <= 7  # one every 10 s of the 64 s silence after the commit
    assert names[-1] == "message_stop"
    text = "".join(d["delta"]["text"] for n, d in sse_events(raw) if n == "content_block_delta")
    assert text == "finally"


async def test_fast_failure_keeps_its_status_within_the_grace_period(fake_ollama, start_proxy):
    proxy = await start_proxy(commit_grace=5)
    fake_ollama.script_chat([Sleep(0.2), Status(404, body={"error": "model 'qwen3:8b' not found"})])
    with trio.fail_after(10):
        async with httpx.AsyncClient(base_url=proxy.url) as client:
            response = await client.post("/v1/messages", json=BODY)
    assert response.status_code == 400  # a missing model is a 400: see UpstreamModelNotFound
    assert response.json()["error"]["type"] == "invalid_request_error"


async def test_failure_after_the_commit_is_an_error_event(fake_ollama, start_proxy, autojump_clock):
    proxy = await start_proxy(commit_grace=1)
    fake_ollama.script_chat([Sleep(3), Status(404, body={"error": "model 'qwen3:8b' not found"})])
    with trio.fail_after(30):
        async with httpx.AsyncClient(base_url=proxy.url, timeout=None) as client:
            async with client.stream("POST", "/v1/messages", json=BODY) as response:
                assert response.status_code == 200
                raw = b"".join([chunk async for chunk in response.aiter_raw()])
    events = sse_events(raw)
    assert [n for n, _ in events] == ["message_start", "error"]
    assert events[-1][1]["error"]["type"] == "invalid_request_error"
    assert "ollama pull qwen3:8b" in events[-1][1]["error"]["message"]


# -- timeouts ------------------------------------------------------------------------


async def test_first_content_timeout_before_the_commit_is_a_504(fake_ollama, start_proxy, autojump_clock):
    proxy = await start_proxy(commit_grace=100, first_content_timeout=30)
    fake_ollama.script_chat([Stall()])
    with trio.fail_after(60):
        async with httpx.AsyncClient(base_url=proxy.url, timeout=None) as client:
            response = await client.post("/v1/messages", json=BODY)
        await fake_ollama.wait_disconnected(1)
    assert response.status_code == 504
    assert "no output within 30 s" in response.json()["error"]["message"]


async def test_first_content_timeout_after_the_commit_is_an_error_event(fake_ollama, start_proxy, autojump_clock):
    proxy = await start_proxy(commit_grace=1, first_content_timeout=30)
    fake_ollama.script_chat([Status(200), Stall()])
    with trio.fail_after(60):
        async with httpx.AsyncClient(base_url=proxy.url, timeout=None) as client:
            async with client.stream("POST", "/v1/messages", json=BODY) as response:
                raw = b"".join([chunk async for chunk in response.aiter_raw()])
        await fake_ollama.wait_disconnected(1)
    events = sse_events(raw)
    assert events[-1][0] == "error" and "no output within 30 s" in events[-1][1]["error"]["message"]
    assert "message_stop" not in [n for n, _ in events]


async def test_idle_timeout_mid_stream(fake_ollama, start_proxy, autojump_clock):
    proxy = await start_proxy(idle_timeout=20, ping_interval=5)
    fake_ollama.script_chat([Chunk(content="started "), Stall()])
    with trio.fail_after(60):
        async with httpx.AsyncClient(base_url=proxy.url, timeout=None) as client:
            async with client.stream("POST", "/v1/messages", json=BODY) as response:
                raw = b"".join([chunk async for chunk in response.aiter_raw()])
        await fake_ollama.wait_disconnected(1)
    events = sse_events(raw)
    assert events[-1][0] == "error"
    assert "nothing for 20 s" in events[-1][1]["error"]["message"]
    assert "message_stop" not in [n for n, _ in events]


# -- upstream faults, as the SDK sees them ---------------------------------------------

FAULTS = {
    "reset": ([Chunk(content="partial"), Reset()], "connection broke mid-stream"),
    "truncated-body": ([Chunk(content="partial"), Close()], "connection broke mid-stream"),
    "truncated-line": ([Chunk(content="partial"), Raw(b'{"model":"m","message":{"role":"assis')], "middle of a line"),
    "garbage-line": ([Chunk(content="partial"), Raw(b"<html>502 Bad Gateway</html>\n")], "not JSON"),
    "error-line": ([Chunk(content="partial"), Line({"error": "an error was encountered while running the model"})],
                   "an error was encountered while running the model"),
    "no-done": ([Chunk(content="partial"), Chunk(content=" more")], "ended before its final chunk"),
    # a model looping on '{"a": ' in a native call's arguments: deeper than any decoder reads
    "nested-too-deep": ([Chunk(content="partial"), Raw(
        b'{"model":"m","created_at":"x","message":{"role":"assistant","content":"","tool_calls":'
        b'[{"function":{"name":"Bash","arguments":' + b'{"a":' * 1000 + b"1" + b"}" * 1000 + b'}}]},"done":false}\n'
    )], "nested too deep"),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
async def test_faults_mid_stream_are_errors_the_sdk_raises(fake_ollama, proxy, fault):
    script, words = FAULTS[fault]
    fake_ollama.script_chat(script)
    seen: list[str] = []

    def consume() -> None:
        with proxy.client().messages.stream(**{k: v for k, v in BODY.items() if k != "stream"}) as stream:
            for event in stream:
                seen.append(event.type)

    with trio.fail_after(10):
        with pytest.raises(anthropic.APIError) as caught:
            await trio.to_thread.run_sync(consume)
    assert words in str(caught.value)
    assert "message_stop" not in seen
    # and the server keeps serving
    fake_ollama.script_chat(text_stream("fine again"))
    with trio.fail_after(10):
        message = await trio.to_thread.run_sync(
            lambda: proxy.client().messages.create(**{k: v for k, v in BODY.items() if k != "stream"})
        )
    assert message.content[0].text == "fine again"


# -- graceful shutdown ---------------------------------------------------------------


async def test_shutdown_lets_streams_finish_then_cancels_the_rest(fake_ollama, start_proxy, autojump_clock):
    stop = trio.Event()
    proxy = await start_proxy(shutdown_trigger=stop.wait, graceful_timeout=10, commit_grace=0.5)
    # one stream that finishes within the grace period, one that never would
    fake_ollama.script_chat([Chunk(content="quick "), Sleep(2), *text_stream("done")])
    fake_ollama.script_chat([Chunk(content="slow "), Stall()])
    results: dict[str, bytes] = {}

    async def run(name: str, client: httpx.AsyncClient) -> None:
        results[name] = b""
        try:
            async with client.stream("POST", "/v1/messages", json=BODY) as response:
                async for chunk in response.aiter_raw():
                    results[name] += chunk
        except httpx.RemoteProtocolError:
            pass  # the server cut the stream at the end of the grace period

    with trio.fail_after(60), proxy_tasks() as tasks:
        async with httpx.AsyncClient(base_url=proxy.url, timeout=None) as quick, \
                httpx.AsyncClient(base_url=proxy.url, timeout=None) as slow:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(run, "quick", quick)
                await wait_until(lambda: fake_ollama.active_chats == 1)
                nursery.start_soon(run, "slow", slow)
                await wait_until(lambda: fake_ollama.active_chats == 2)
                stop.set()
        await fake_ollama.wait_disconnected(1)
        await no_task_left(tasks, also=lambda: fake_ollama.active_chats == 0)
    assert [n for n, _ in sse_events(results["quick"])][-1] == "message_stop"
    assert b"message_stop" not in results["slow"]
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient(base_url=proxy.url) as client:
            await client.get("/")


async def test_connect_timeout_is_a_502_naming_ollama(start_proxy):
    # A listener whose accept queue is full: the kernel drops further SYNs, so a connect
    # hangs the way it does for a firewalled or sleeping host.
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(8):
            sock = trio.socket.socket()
            fillers.append(sock)
            with trio.move_on_after(0.2):
                await sock.connect(("127.0.0.1", port))
        proxy = await start_proxy(ollama_url=f"http://127.0.0.1:{port}", connect_timeout=0.5)
        with trio.fail_after(10):
            async with httpx.AsyncClient(base_url=proxy.url, timeout=10) as client:
                response = await client.post("/v1/messages", json=BODY)
    finally:
        for sock in fillers:
            sock.close()
        listener.close()
    assert response.status_code == 502
    assert f"127.0.0.1:{port}" in response.json()["error"]["message"]
    assert "ConnectTimeout" in response.json()["error"]["message"]
