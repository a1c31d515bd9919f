"""Small ASGI helpers: read a bounded body, send a whole response. No framework."""

from __future__ import annotations

import json
import math
from typing import Any, Awaitable, Callable, Iterable

import trio

from ..errors import ClientDisconnected, ProxyError, RequestTimeout, RequestTooLarge
from ..protocol.bounded import utf8

__all__ = ["Scope", "Receive", "Send", "read_body", "send_response", "send_json", "send_error", "header"]

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def header(scope: Scope, name: bytes) -> str | None:
    """The value of request header ``name`` (lower-case bytes), or None."""
    key: bytes
    value: bytes
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


async def read_body(receive: Receive, *, limit: int, timeout: float = 0, declared: str | None = None) -> bytes:
    """The whole request body. Raises RequestTooLarge past ``limit`` bytes (at once when
    the declared Content-Length, ``declared``, is over it), RequestTimeout when the body has
    not all arrived within ``timeout`` seconds (0: no limit), ClientDisconnected if the
    client leaves first."""
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise _too_large(limit)
    parts: list[bytes] = []
    size = 0
    with trio.move_on_after(timeout if timeout > 0 else math.inf):
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnected()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            parts.append(chunk)
            if not message.get("more_body", False):
                return b"".join(parts)
    raise RequestTimeout(
        f"the request body did not arrive within {timeout:g} s ({size} bytes came);"
        " the connection is closed (raise the limit with PROXY_BODY_TIMEOUT)"
    )


def _too_large(limit: int) -> RequestTooLarge:
    return RequestTooLarge(
        f"request body is larger than the proxy's limit of {limit} bytes"
        " (raise it with PROXY_BODY_LIMIT)"
    )


def _headers(pairs: Iterable[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in pairs]


async def send_response(
    send: Send,
    status: int,
    body: bytes,
    *,
    content_type: str,
    headers: Iterable[tuple[str, str]] = (),
) -> None:
    start: dict[str, Any] = {
        "type": "http.response.start",
        "status": status,
        "headers": _headers(
            [("content-type", content_type), ("content-length", str(len(body))), *headers]
        ),
    }
    await send(start)
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def send_json(
    send: Send, status: int, obj: Any, *, headers: Iterable[tuple[str, str]] = ()
) -> None:
    body = utf8(json.dumps(obj, ensure_ascii=False, separators=(",", ":")))
    await send_response(send, status, body, content_type="application/json", headers=headers)


async def send_error(send: Send, error: ProxyError, *, headers: Iterable[tuple[str, str]] = ()) -> None:
    """The Anthropic error envelope with the error's status (and its extra headers)."""
    await send_json(send, error.status, error.to_body(), headers=[*headers, *error.headers.items()])
