"""Ollama's ``/api/chat`` over a hand-written HTTP/1.1 client: h11 on trio streams.

The relay's hot path. httpx/httpcore cost more per streamed chunk than the whole
translation (several async-generator layers, a timeout scope per read, one ``Data`` event
handed up per HTTP chunk), so the chat stream has a client of its own; httpx still serves
the admin calls (show, tags, ps, pull, version), where it does well.

- :class:`OllamaChat` — one per Ollama URL: a small pool of keep-alive connections, a
  connect timeout, at most ``max_connections`` open at once.
- :meth:`OllamaChat.stream` — ``async with chat.stream(body) as response``; the response
  has ``status_code``, ``aread()`` and ``aiter_bytes()``.
- :meth:`ChatResponse.aiter_bytes` yields **one** piece per socket read: every body byte
  that read completed, however many HTTP chunks (Ollama writes one per token) it held.
  The relay translates and writes each piece as one downstream send, so a burst is
  batched and a trickle goes out chunk by chunk, with no waiting to fill a batch.

Failures are raised as httpx's exception classes (``ConnectError``, ``ConnectTimeout``,
``PoolTimeout``, ``ReadError``, ``WriteError``, ``RemoteProtocolError``) so that
:func:`proxy.ollama.client.transport_error` stays the one place that maps them.

A connection goes back to the pool only when its response was read to the end and both
sides can go on (h11 says so); a response left half-read, a cancelled one, or one with
``Connection: close`` closes its socket at once — for a cancel this is what stops the GPU.
An idle connection that Ollama closed (or that sat longer than ``keepalive_expiry``) is
dropped when taken from the pool, before a request is written to it.
"""

from __future__ import annotations

import base64
import re
import select
import ssl
import urllib.parse
from contextlib import asynccontextmanager
from typing import AsyncGenerator, AsyncIterator

import h11
import httpx
import trio

from .client import remember_client

__all__ = ["OllamaChat", "ChatResponse", "open_chat"]

_READ_SIZE = 256 * 1024
#: an error answer's body is read up to this size (Ollama's are one short JSON object)
MAX_ERROR_BODY = 1024 * 1024


class _Connection:
    """One HTTP/1.1 connection: its stream, its h11 state, when it was last used."""

    __slots__ = ("stream", "h11", "idle_since")

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.h11 = h11.Connection(h11.CLIENT)
        self.idle_since = 0.0

    def socket(self) -> trio.socket.SocketType:
        stream = self.stream
        while isinstance(stream, trio.SSLStream):
            stream = stream.transport_stream
        assert isinstance(stream, trio.SocketStream)
        return stream.socket

    def looks_closed(self) -> bool:
        """An idle connection with anything to read has been closed (or is broken): an
        HTTP server sends nothing between responses."""
        poller = select.poll()  # not select(): no limit on the descriptor's number
        try:
            poller.register(self.socket().fileno(), select.POLLIN)
            return bool(poller.poll(0))
        except (OSError, ValueError):
            return True

    async def close(self) -> None:
        """Close at once: nothing is sent or waited for, even under cancellation."""
        await trio.aclose_forcefully(self.stream)


class ChunkedBody:
    """Decoder of a ``Transfer-Encoding: chunked`` body (RFC 9112 §7.1). Sans-I/O.

    ``feed(data)`` → the body bytes ``data`` completed (possibly empty); ``done`` once the
    last chunk and the trailer section were read; ``extra``: bytes received after the end.
    Raises :class:`httpx.RemoteProtocolError` for anything that is not chunked framing.

    h11 decodes the same framing at ~20 µs of Python per chunk (an event object, a buffer
    copy and a shift of the whole receive buffer each), more than the translation of the
    chunk; this walks a read's bytes with ``find`` and slices, ~1 µs per chunk.
    """

    __slots__ = ("_buffer", "_need", "_state", "_trailer_bytes", "done")

    _SIZE, _DATA, _CRLF, _TRAILER = range(4)
    #: a chunk-size line (with extensions) or a trailer line longer than this is garbage
    MAX_LINE = 4096
    MAX_TRAILERS = 64 * 1024

    def __init__(self) -> None:
        self._buffer = b""
        self._need = 0
        self._state = self._SIZE
        self._trailer_bytes = 0
        self.done = False

    @property
    def extra(self) -> bytes:
        return self._buffer if self.done else b""

    def feed(self, data: bytes) -> bytes:
        buffer = self._buffer + data if self._buffer else data
        size = len(buffer)
        find = buffer.find
        out: list[bytes] = []
        pos = 0
        state = self._state
        need = self._need
        SIZE, DATA, CRLF = self._SIZE, self._DATA, self._CRLF
        while pos < size and not self.done:
            if state is SIZE:
                eol = find(b"\r\n", pos)
                if eol < 0:
                    if size - pos > self.MAX_LINE:
                        raise _framing("a chunk-size line without its end")
                    break
                need = _chunk_size(buffer[pos:eol])
                pos = eol + 2
                state = DATA if need else self._TRAILER
            elif state is DATA:
                end = pos + need
                if end > size:
                    out.append(buffer[pos:])
                    need = end - size
                    pos = size
                    break
                out.append(buffer[pos:end])
                pos = end
                state = CRLF
            elif state is CRLF:
                if size - pos < 2:
                    break
                if buffer[pos:pos + 2] != b"\r\n":
                    raise _framing(f"a chunk not followed by CRLF: {buffer[pos:pos + 20]!r}")
                pos += 2
                state = SIZE
            else:  # trailer section: lines up to an empty one
                # Lines end at LF, with or without CR, as h11 reads a header block.
                eol = find(b"\n", pos)
                if eol < 0:
                    if size - pos > self.MAX_LINE:
                        raise _framing("a trailer line without its end")
                    break
                self._trailer_bytes += eol + 1 - pos
                if self._trailer_bytes > self.MAX_TRAILERS:
                    raise _framing("trailers too long")
                if eol == pos or (eol == pos + 1 and buffer[pos] == 13):  # LF or CRLF alone
                    self.done = True
                pos = eol + 1
        self._state = state
        self._need = need
        self._buffer = buffer[pos:]
        return out[0] if len(out) == 1 else b"".join(out)

    def eof(self) -> None:
        """The connection closed: an error unless the body had ended."""
        if not self.done:
            raise httpx.RemoteProtocolError(
                "peer closed connection without sending complete message body: incomplete chunked read"
            )


_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")


def _chunk_size(line: bytes) -> int:
    digits = line.split(b";", 1)[0].rstrip(b" \t")  # extensions are allowed, and ignored
    if _HEX.fullmatch(digits) is None:
        raise _framing(f"bad chunk-size line {line[:40]!r}")
    return int(digits, 16)


def _framing(what: str) -> httpx.RemoteProtocolError:
    return httpx.RemoteProtocolError(f"Ollama's chunked body is broken: {what}")


class ChatResponse:
    """Ollama's answer to one ``POST /api/chat``: status, headers, and the body as it comes."""

    def __init__(self, connection: _Connection, head: h11.Response) -> None:
        self._connection = connection
        self.status_code = head.status_code
        self.headers = [(bytes(k).decode("latin-1"), bytes(v).decode("latin-1")) for k, v in head.headers]
        #: True once the whole body was read
        self.complete = False
        #: whether the connection may carry another request after this answer
        self.keep_alive = head.http_version == b"1.1" and not any(
            k == b"connection" and b"close" in v.lower() for k, v in head.headers
        )
        self._chunked: ChunkedBody | None = None
        if head.status_code not in (204, 304) and any(k == b"transfer-encoding" for k, _ in head.headers):
            # A chunked body is decoded here, not by h11 (see ChunkedBody); h11 has
            # checked the head (it accepts only "chunked" as a transfer coding).
            self._chunked = ChunkedBody()
            self._pending, _ = connection.h11.trailing_data

    async def aiter_bytes(self) -> AsyncGenerator[bytes, None]:
        """The body, one piece per socket read (never an empty piece). Raises httpx's
        ``ReadError`` for a reset and ``RemoteProtocolError`` for a truncated or invalid body."""
        if self.complete:
            return
        if self._chunked is not None:
            async for piece in self._aiter_chunked(self._chunked):
                yield piece
            return
        conn = self._connection.h11
        stream = self._connection.stream
        next_event = conn.next_event
        need_data = h11.NEED_DATA
        data_type = h11.Data
        while True:
            parts: list[bytes] = []
            try:
                while (event := next_event()) is not need_data:
                    if type(event) is data_type:
                        parts.append(event.data)
                    elif type(event) is h11.EndOfMessage:
                        self.complete = True
                        break
                    else:  # ConnectionClosed before the end of the body; h11 raises for most
                        raise httpx.RemoteProtocolError("Ollama closed the connection in the middle of its body")
            except h11.RemoteProtocolError as exc:
                raise httpx.RemoteProtocolError(f"Ollama's HTTP response broke off or is invalid: {exc}") from None
            if parts:
                yield b"".join(parts)
            if self.complete:
                return
            conn.receive_data(await _receive(stream))

    async def _aiter_chunked(self, body: ChunkedBody) -> AsyncGenerator[bytes, None]:
        stream = self._connection.stream
        data, self._pending = self._pending, b""
        while True:
            if data:
                piece = body.feed(data)
                if body.done:
                    self.complete = True
                    if body.extra:  # an HTTP server sends nothing after its response
                        self.keep_alive = False
                if piece:
                    yield piece
                if self.complete:
                    return
            data = await _receive(stream)
            if not data:
                body.eof()

    async def aread(self, limit: int = MAX_ERROR_BODY) -> bytes:
        """The rest of the body, up to ``limit`` bytes (the connection is dropped after a
        longer one: it is an error answer, and the head of it says enough)."""
        parts: list[bytes] = []
        size = 0
        async for piece in self.aiter_bytes():
            parts.append(piece)
            size += len(piece)
            if size >= limit:
                break
        return b"".join(parts)[:limit]


async def _receive(stream: trio.abc.Stream) -> bytes:
    try:
        # SSLStream's may be a bytearray; h11 and ChunkedBody take any bytes-like object
        return await stream.receive_some(_READ_SIZE)  # type: ignore[return-value]
    except trio.BrokenResourceError as exc:
        cause = exc.__cause__
        raise httpx.ReadError(str(cause or exc) or type(cause or exc).__name__) from None


class OllamaChat:
    """``POST {ollama_url}/api/chat`` over a pool of keep-alive HTTP/1.1 connections.

    ``connect_timeout`` bounds the TCP (and TLS) connect and the wait for a free connection
    when ``max_connections`` are in use; nothing else has a timeout here: the relay bounds
    reads, knowing whether it waits for the first token (minutes of prefill) or the next.
    """

    def __init__(
        self,
        ollama_url: str,
        *,
        connect_timeout: float,
        max_connections: int = 256,
        max_idle: int = 32,
        keepalive_expiry: float = 5.0,
        user_agent: str = "claude-code-ollama-proxy",
    ) -> None:
        parts = urllib.parse.urlsplit(ollama_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected an http:// or https:// URL, not {ollama_url!r}")
        self.url = ollama_url
        self._tls = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._tls else 80)
        self.target = (parts.path.rstrip("/") + "/api/chat").encode("ascii")
        default_port = self._port == (443 if self._tls else 80)
        host = f"[{self._host}]" if ":" in self._host else self._host
        headers = [
            (b"host", (host if default_port else f"{host}:{self._port}").encode("idna")),
            (b"user-agent", user_agent.encode()),
            (b"accept", b"application/x-ndjson, application/json"),
            (b"content-type", b"application/json"),
        ]
        if parts.username is not None:
            credentials = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
            headers.append((b"authorization", b"Basic " + base64.b64encode(credentials.encode())))
        self._headers = headers
        self.connect_timeout = connect_timeout
        self.keepalive_expiry = keepalive_expiry
        self._max_idle = max_idle
        self._slots = trio.Semaphore(max_connections)
        self._idle: list[_Connection] = []
        self._ssl_context: ssl.SSLContext | None = ssl.create_default_context() if self._tls else None
        #: connections opened so far (for tests and the bench)
        self.connections_opened = 0

    @property
    def idle_connections(self) -> int:
        return len(self._idle)

    async def _checkout(self) -> _Connection:
        now = trio.current_time()
        while self._idle:
            connection = self._idle.pop()  # the most recently used: the likeliest alive
            if now - connection.idle_since < self.keepalive_expiry and not connection.looks_closed():
                return connection
            await connection.close()
        return await self._connect()

    async def _connect(self) -> _Connection:
        try:
            with trio.fail_after(self.connect_timeout):
                stream: trio.abc.Stream
                if self._tls:
                    stream = tls = await trio.open_ssl_over_tcp_stream(
                        self._host, self._port, ssl_context=self._ssl_context, https_compatible=True
                    )
                    await tls.do_handshake()
                else:
                    stream = await trio.open_tcp_stream(self._host, self._port)
        except trio.TooSlowError:
            raise httpx.ConnectTimeout(f"no connection within {self.connect_timeout:g} s") from None
        except (OSError, trio.BrokenResourceError) as exc:
            raise httpx.ConnectError(str(exc.__cause__ or exc) or type(exc).__name__) from None
        self.connections_opened += 1
        return _Connection(stream)

    def _release(self, connection: _Connection, response: ChatResponse) -> bool:
        """Back to the pool if its exchange ended cleanly; True when it went back."""
        conn = connection.h11
        if conn.our_state is not h11.DONE or not response.complete or not response.keep_alive:
            return False
        if conn.their_state is h11.DONE:
            conn.start_next_cycle()
        else:  # a chunked body, read by ChunkedBody: h11 never saw it
            connection.h11 = h11.Connection(h11.CLIENT)
        if len(self._idle) < self._max_idle:
            connection.idle_since = trio.current_time()
            self._idle.append(connection)
            return True
        return False

    @asynccontextmanager
    async def stream(self, body: bytes) -> AsyncIterator[ChatResponse]:
        """Send ``body`` (JSON) and yield the response once its head arrived."""
        try:
            with trio.fail_after(self.connect_timeout):
                await self._slots.acquire()
        except trio.TooSlowError:
            raise httpx.PoolTimeout(f"all connections to Ollama busy for {self.connect_timeout:g} s") from None
        try:
            connection = await self._checkout()
            kept = False
            try:
                response = await self._exchange(connection, body)
                yield response
                kept = self._release(connection, response)
            finally:
                if not kept:
                    with trio.CancelScope(shield=True):
                        await connection.close()
        finally:
            self._slots.release()

    async def _exchange(self, connection: _Connection, body: bytes) -> ChatResponse:
        conn = connection.h11
        request = h11.Request(
            method=b"POST",
            target=self.target,
            headers=[*self._headers, (b"content-length", str(len(body)).encode())],
        )
        # Head and body in one write: one wakeup of Ollama instead of two.
        payload = conn.send(request) + conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage())
        try:
            await connection.stream.send_all(payload)
        except trio.BrokenResourceError as exc:
            raise httpx.WriteError(str(exc.__cause__ or exc) or "connection broken") from None
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                raise httpx.RemoteProtocolError(f"Ollama's answer is not valid HTTP: {exc}") from None
            if event is h11.NEED_DATA:
                data = await _receive(connection.stream)
                if not data:
                    raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
                conn.receive_data(data)
            elif isinstance(event, h11.Response):
                return ChatResponse(connection, event)
            elif isinstance(event, h11.ConnectionClosed):
                raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
            # an InformationalResponse (100 Continue): read on

    async def aclose(self) -> None:
        """Close the idle connections (those in use close when their request ends)."""
        idle, self._idle = self._idle, []
        for connection in idle:
            await connection.close()


def open_chat(
    ollama_url: str, *, connect_timeout: float, origin: str | None = None, max_connections: int = 256
) -> OllamaChat:
    """The chat client, opened in the ASGI lifespan next to the admin httpx client.
    ``origin`` (where the URL came from) and ``max_connections`` are named in the
    messages of :func:`proxy.ollama.client.transport_error`."""
    chat = OllamaChat(ollama_url, connect_timeout=connect_timeout, max_connections=max_connections)
    return remember_client(chat, origin=origin, max_connections=max_connections)
