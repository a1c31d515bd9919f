"""The load generator's HTTP/1.1 client: trio sockets with h11 framing, nothing else.

httpx would cost more per chunk than the relays under test at tens of thousands of chunks
a second, so the bench talks HTTP itself: one :class:`Connection` per concurrent stream,
kept alive between requests like Claude Code's own, body pieces handed out one per socket
read (however many HTTP chunks it held) together with the ``time.monotonic_ns()`` of that read (the same
CLOCK_MONOTONIC the fake stamps its tokens with).
"""

from __future__ import annotations

import json
import time
from typing import Any

import h11
import trio

__all__ = ["Connection", "Response", "HTTPFailure"]

RECEIVE_SIZE = 256 * 1024


class HTTPFailure(Exception):
    pass


class Response:
    """One response being read. ``await next_piece()`` → bytes, or None at its end."""

    def __init__(self, connection: "Connection", head: h11.Response) -> None:
        self._connection = connection
        self.status = head.status_code
        self.headers = {k.decode().lower(): v.decode("latin-1") for k, v in head.headers}
        self.ended = False

    @property
    def received_ns(self) -> int:
        """CLOCK_MONOTONIC ns of the socket read that brought the last piece."""
        return self._connection.received_ns

    async def next_piece(self) -> bytes | None:
        """The body bytes of the next socket read (every HTTP chunk it completed, joined:
        at one chunk per send, the client must not be the slowest part), or None at the end."""
        if self.ended:
            return None
        connection = self._connection
        conn = connection._h11
        assert conn is not None
        parts: list[bytes] = []
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                if parts:
                    return b"".join(parts)
                await connection._receive()
            elif type(event) is h11.Data:
                parts.append(event.data)
            elif type(event) is h11.EndOfMessage:
                self.ended = True
                connection._finished()
                return b"".join(parts) if parts else None
            elif isinstance(event, h11.ConnectionClosed):
                raise HTTPFailure("the server closed the connection mid-response")

    async def read_all(self) -> bytes:
        parts = []
        while (piece := await self.next_piece()) is not None:
            parts.append(piece)
        return b"".join(parts)

    async def drain(self) -> None:
        while await self.next_piece() is not None:
            pass

    def json(self, body: bytes) -> Any:
        return json.loads(body)


class Connection:
    """A keep-alive HTTP/1.1 connection to ``host:port``; reconnects when the server closed."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._stream: trio.SocketStream | None = None
        self._h11: h11.Connection | None = None
        self.received_ns = 0

    async def _connect(self) -> None:
        await self.aclose()
        self._stream = await trio.open_tcp_stream(self.host, self.port)
        self._h11 = h11.Connection(h11.CLIENT)

    async def request(self, method: str, target: str, body: bytes = b"",
                      headers: list[tuple[str, str]] | None = None) -> Response:
        """Send one request, return once the response head arrived."""
        if self._h11 is None or self._h11.our_state is not h11.IDLE:
            await self._connect()
        assert self._stream is not None and self._h11 is not None
        conn = self._h11
        head = [("host", f"{self.host}:{self.port}"), ("content-length", str(len(body))),
                *(headers or [])]
        data = conn.send(h11.Request(method=method, target=target, headers=head))
        if body:
            data += conn.send(h11.Data(data=body))
        data += conn.send(h11.EndOfMessage())
        try:
            await self._stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            # a keep-alive connection the server had closed: once more on a fresh one
            await self._connect()
            return await self.request(method, target, body, headers)
        while True:
            event = await self._next_event()
            if isinstance(event, h11.Response):
                return Response(self, event)
            if isinstance(event, h11.InformationalResponse):
                continue
            raise HTTPFailure(f"unexpected {event!r} before the response head")

    async def _receive(self) -> None:
        assert self._h11 is not None and self._stream is not None
        data = await self._stream.receive_some(RECEIVE_SIZE)
        self.received_ns = time.monotonic_ns()
        self._h11.receive_data(data)

    async def _next_event(self) -> Any:
        assert self._h11 is not None and self._stream is not None
        while True:
            event = self._h11.next_event()
            if event is h11.NEED_DATA:
                await self._receive()
                continue
            if isinstance(event, h11.ConnectionClosed):
                raise HTTPFailure("the server closed the connection mid-response")
            return event

    def _finished(self) -> None:
        conn = self._h11
        assert conn is not None
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
        # otherwise (MUST_CLOSE, …) the next request reconnects

    def abort(self) -> None:
        """Close the socket now, mid-response if need be (what Claude Code does on Esc)."""
        if self._stream is not None:
            self._stream.socket.close()
        self._stream = None
        self._h11 = None

    async def aclose(self) -> None:
        if self._stream is not None:
            stream, self._stream, self._h11 = self._stream, None, None
            with trio.move_on_after(1, shield=True):
                await stream.aclose()
