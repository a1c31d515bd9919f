"""The hand-written /api/chat client: its pool, cancellation, errors, and per-read batching.

The client is tested against the fake Ollama over real sockets; batching is also checked
through the real server, counting the relay's downstream writes.
"""

from __future__ import annotations

import functools
import json
import ssl
import subprocess

import httpx
import pytest
import trio

from proxy.server import relay
from proxy.ollama.chat import ChunkedBody, OllamaChat, _Connection
from tests.fake_ollama import Await, Burst, Chunk, Reset, Sleep, Stall, Status, text_stream
from tests.conftest import no_task_left, proxy_tasks
from tests.server.test_lifecycle import BODY, sse_events

CHAT = json.dumps({"model": "qwen3:8b", "messages": [{"role": "user", "content": "hi"}]}).encode()


def lines(body: bytes) -> list[dict]:
    return [json.loads(line) for line in body.split(b"\n") if line.strip()]


async def answer(chat: OllamaChat) -> tuple[int, bytes]:
    async with chat.stream(CHAT) as response:
        return response.status_code, b"".join([piece async for piece in response.aiter_bytes()])


# -- the pool ----------------------------------------------------------------------------


async def test_answers_read_to_the_end_share_one_connection(fake_ollama):
    chat = OllamaChat(fake_ollama.url, connect_timeout=2)
    fake_ollama.script_chat(text_stream("one"))
    fake_ollama.script_chat([Status(400, body={"error": "bad request"})])  # a Content-Length body
    fake_ollama.script_chat(text_stream("three"))
    with trio.fail_after(10):
        first = await answer(chat)
        async with chat.stream(CHAT) as response:
            second = response.status_code, await response.aread()
        third = await answer(chat)
    assert first[0] == 200 and "".join(c["message"]["content"] for c in lines(first[1])) == "one"
    assert second == (400, b'{"error":"bad request"}')
    assert lines(third[1])[-1]["done"] is True
    assert chat.connections_opened == 1
    assert len({r.connection for r in fake_ollama.chat_requests}) == 1
    await chat.aclose()


async def test_a_connection_ollama_closed_while_idle_is_not_used_again(fake_ollama):
    chat = OllamaChat(fake_ollama.url, connect_timeout=2)
    with trio.fail_after(10):
        await answer(chat)
        assert chat.idle_connections == 1
        await fake_ollama.wait_until(lambda: fake_ollama.idle_connections == 1)
        assert await fake_ollama.close_idle_connections() == 1
        await fake_ollama.wait_until(lambda: fake_ollama.open_connections == 0)
        status, body = await answer(chat)
    assert status == 200 and lines(body)[-1]["done"] is True
    assert chat.connections_opened == 2
    await chat.aclose()


async def test_without_the_idle_check_a_closed_connection_would_fail_the_request(fake_ollama, monkeypatch):
    # The check above is what saves the request: skip it and the request meets the closed socket.
    monkeypatch.setattr(_Connection, "looks_closed", lambda self: False)
    chat = OllamaChat(fake_ollama.url, connect_timeout=2)
    with trio.fail_after(10):
        await answer(chat)
        await fake_ollama.wait_until(lambda: fake_ollama.idle_connections == 1)
        await fake_ollama.close_idle_connections()
        await fake_ollama.wait_until(lambda: fake_ollama.open_connections == 0)
        with pytest.raises(httpx.TransportError):
            await answer(chat)


async def test_a_half_read_body_is_never_reused(fake_ollama):
    chat = OllamaChat(fake_ollama.url, connect_timeout=2)
    fake_ollama.script_chat([Chunk(content="first "), Sleep(0.2), *text_stream("rest")])
    with trio.fail_after(10):
        async with chat.stream(CHAT) as response:
            async for piece in response.aiter_bytes():
                assert b"first" in piece
                break  # leave with the body half read
        assert chat.idle_connections == 0
        await fake_ollama.wait_disconnected(1)
        status, body = await answer(chat)
    assert status == 200 and lines(body)[-1]["done"] is True
    assert chat.connections_opened == 2
    assert len({r.connection for r in fake_ollama.chat_requests}) == 2
    await chat.aclose()


async def test_connection_close_from_ollama_is_honoured(fake_ollama):
    chat = OllamaChat(fake_ollama.url, connect_timeout=2)
    fake_ollama.script_chat([Status(200, headers={"connection": "close"}), *text_stream("bye")])
    with trio.fail_after(10):
        await answer(chat)
        assert chat.idle_connections == 0
        await answer(chat)
    assert chat.connections_opened == 2


# -- cancellation ------------------------------------------------------------------------


@pytest.mark.parametrize("phase", ["waiting-for-the-head", "mid-body"])
async def test_cancelling_closes_the_socket_at_once(fake_ollama, phase):
    chat = OllamaChat(fake_ollama.url, connect_timeout=2)
    script = [Stall()] if phase == "waiting-for-the-head" else [Chunk(content="a"), Stall()]
    fake_ollama.script_chat(script)
    with trio.fail_after(10):
        if phase == "waiting-for-the-head":  # cancelled from outside, as the relay's scope is
            async with trio.open_nursery() as nursery:
                nursery.start_soon(answer, chat)
                await fake_ollama.wait_until(lambda: fake_ollama.active_chats == 1)
                nursery.cancel_scope.cancel()
        else:
            with trio.CancelScope() as scope:
                async with chat.stream(CHAT) as response:
                    async for _ in response.aiter_bytes():
                        scope.cancel()
                        await trio.sleep_forever()
    with trio.fail_after(1):  # "at once": no drain, no grace period
        gone = await fake_ollama.wait_disconnected(1)
    assert gone.during == ("stall-before-head" if phase == "waiting-for-the-head" else "stall-after-head")
    assert chat.idle_connections == 0


# -- errors (mapped by proxy.ollama.client.transport_error, as before) -------------------------


async def test_refused_reset_and_garbage_raise_httpx_errors(fake_ollama):
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()  # nothing listens there now
    with trio.fail_after(10):
        with pytest.raises(httpx.ConnectError):
            await answer(OllamaChat(f"http://127.0.0.1:{port}", connect_timeout=2))
        fake_ollama.script_chat([Chunk(content="a"), Reset()])
        with pytest.raises(httpx.ReadError):
            await answer(OllamaChat(fake_ollama.url, connect_timeout=2))

        async def garbage(stream: trio.SocketStream) -> None:
            await stream.receive_some(65536)
            await stream.send_all(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
            await stream.aclose()

        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(functools.partial(trio.serve_tcp, garbage, 0, host="127.0.0.1"))
            url = f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}"
            with pytest.raises(httpx.RemoteProtocolError):
                await answer(OllamaChat(url, connect_timeout=2))
            nursery.cancel_scope.cancel()


async def test_https_ollama_through_a_tls_front(fake_ollama, tmp_path, monkeypatch):
    # Ollama behind a TLS reverse proxy (a team's GPU box): a self-signed certificate the
    # client trusts through SSL_CERT_FILE, as a user would point it at their own CA.
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True, timeout=30)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)

    async def pipe(source: trio.abc.ReceiveStream, sink: trio.abc.SendStream) -> None:
        try:
            while data := await source.receive_some(65536):
                await sink.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        await trio.aclose_forcefully(sink)

    async def front(tls: trio.SSLStream) -> None:
        plain = await trio.open_tcp_stream("127.0.0.1", fake_ollama.port)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pipe, tls, plain)
            nursery.start_soon(pipe, plain, tls)

    fake_ollama.script_chat(text_stream("secure one"))
    fake_ollama.script_chat(text_stream("secure two"))
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(functools.partial(
                trio.serve_ssl_over_tcp, front, 0, server_context, host="127.0.0.1"))
            chat = OllamaChat(f"https://127.0.0.1:{listeners[0].transport_listener.socket.getsockname()[1]}",
                              connect_timeout=5)
            answers = [await answer(chat), await answer(chat)]
            await chat.aclose()
            nursery.cancel_scope.cancel()
    texts = ["".join(c["message"]["content"] for c in lines(body)) for _, body in answers]
    assert texts == ["secure one", "secure two"]
    assert chat.connections_opened == 1  # the TLS connection was kept and reused


# -- batching: one downstream write per socket read ----------------------------------------


@pytest.fixture
def writes(monkeypatch) -> list[int]:
    """Number of content deltas in each body write the relay makes."""
    seen: list[int] = []

    class RecordingSink(relay.SSESink):
        async def _write_locked(self, events):
            if events and not self.finished:
                seen.append(sum(1 for e in events if e.NAME == "content_block_delta"))
            await super()._write_locked(events)

    monkeypatch.setattr(relay, "SSESink", RecordingSink)
    return seen


async def stream_text(proxy) -> str:
    with trio.fail_after(10), proxy_tasks() as tasks:
        async with httpx.AsyncClient(base_url=proxy.url) as client:
            response = await client.post("/v1/messages", json=BODY)
        await no_task_left(tasks)
    return "".join(d["delta"]["text"] for n, d in sse_events(response.content) if n == "content_block_delta")


async def test_a_burst_of_chunks_goes_out_in_fewer_writes(fake_ollama, proxy, writes):
    tokens = [f"t{i} " for i in range(50)]
    fake_ollama.script_chat([Burst(tuple(Chunk(content=t) for t in tokens)),
                             Chunk(content="", done=True, done_reason="stop", eval_count=50)])
    assert await stream_text(proxy) == "".join(tokens)
    with_deltas = [n for n in writes if n]
    assert sum(with_deltas) == 50
    assert len(with_deltas) < 10  # one read normally brings the whole burst: one write


async def test_a_trickle_goes_out_one_chunk_per_write(fake_ollama, proxy, writes):
    # Lockstep: the fake sends the next chunk only once the proxy wrote the previous one, so
    # a relay that waited for more chunks to fill a batch would hang here (and fail_after).
    tokens = [f"t{i} " for i in range(5)]
    script = []
    for n, token in enumerate(tokens, start=1):

        async def written(n: int = n) -> None:
            while sum(1 for w in writes if w) < n:
                await trio.sleep(0.001)

        script += [Chunk(content=token), Await(written)]
    fake_ollama.script_chat([*script, Chunk(content="", done=True, done_reason="stop", eval_count=5)])
    assert await stream_text(proxy) == "".join(tokens)
    assert [n for n in writes if n] == [1, 1, 1, 1, 1]


# -- the chunked-body decoder (table; fuzz/test_chunked_fuzz.py compares it with h11's) -----


@pytest.mark.parametrize("framed, body", [
    (b"5\r\nhello\r\n0\r\n\r\n", b"hello"),
    (b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-trailer: y\r\n\r\n", b"hello world"),
    (b"A\r\n0123456789\r\n0\r\n\r\n", b"0123456789"),
])
def test_chunked_bodies_decode_whole_however_split(framed, body):
    for cut in range(len(framed) + 1):
        decoder = ChunkedBody()
        got = decoder.feed(framed[:cut]) + decoder.feed(framed[cut:])
        assert (got, decoder.done, decoder.extra) == (body, True, b"")


@pytest.mark.parametrize("framed", [b"zz\r\nhello\r\n", b"5\r\nhelloXX", b"-1\r\n", b"1" * 5000, b"\r\n"])
def test_broken_chunked_framing_is_a_protocol_error(framed):
    with pytest.raises(httpx.RemoteProtocolError):
        ChunkedBody().feed(framed)


def test_a_chunked_body_cut_off_is_a_protocol_error_at_eof():
    decoder = ChunkedBody()
    assert decoder.feed(b"5\r\nhel") == b"hel"
    with pytest.raises(httpx.RemoteProtocolError, match="incomplete chunked read"):
        decoder.eof()
