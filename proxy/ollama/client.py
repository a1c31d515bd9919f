"""Talking to Ollama: the one httpx client factory, and the one place its failures are mapped.

:func:`status_error` maps a non-200 answer of ``/api/chat``; :func:`transport_error` maps
an httpx exception (refused, reset, truncated). Both return a :class:`~proxy.errors.ProxyError`
for the boundary to render.
"""

from __future__ import annotations

import dataclasses
import json
import re
import weakref
from contextlib import aclosing
from typing import AsyncIterator, Protocol, TypeVar

import httpx
import trio

from ..protocol.bounded import clip
from ..errors import (
    PoolExhausted,
    ProxyError,
    UpstreamBadRequest,
    UpstreamBusy,
    UpstreamError,
    UpstreamModelNotFound,
    UpstreamProtocolError,
    UpstreamTimeout,
    UpstreamUnreachable,
)

__all__ = [
    "open_client", "status_error", "transport_error", "read_capped",
    "remember_client", "url_origin", "pool_limit", "CHAT_PATH", "ERROR_BODY_LIMIT",
]

CHAT_PATH = "/api/chat"
#: bytes of an Ollama error body read (its ``{"error": "…"}`` is a line; the rest is dropped)
ERROR_BODY_LIMIT = 64 * 1024
#: characters of Ollama's error text passed on to the client and the log
ERROR_TEXT_LIMIT = 1000


class StreamedBody(Protocol):
    """An answer whose body arrives in pieces: httpx's Response or the chat client's
    :class:`~proxy.ollama.chat.ChatResponse`."""

    def aiter_bytes(self) -> AsyncIterator[bytes]: ...


async def read_capped(response: StreamedBody, limit: int) -> bytes:
    """At most ``limit`` bytes of ``response``'s body; the rest is never read (closing the
    response drops the connection)."""
    parts: list[bytes] = []
    size = 0
    # httpx annotates aiter_bytes(), an async generator, as an AsyncIterator (no aclose)
    async with aclosing(response.aiter_bytes()) as chunks:  # type: ignore[type-var]
        async for data in chunks:
            parts.append(data)
            size += len(data)
            if size >= limit:
                break
    return b"".join(parts)[:limit]


_C = TypeVar("_C")

@dataclasses.dataclass(frozen=True, slots=True)
class ClientFacts:
    """What the messages of :func:`transport_error` say about the client that failed."""

    #: where its Ollama URL came from (``from OLLAMA_HOST``…; see
    #: :func:`proxy.config.describe_source`); "" when not told
    origin: str = ""
    #: the connection limit it was opened with (for the message when every connection
    #: stays busy); None when not told
    max_connections: int | None = None


#: client → its facts, for as long as the client lives
_facts: weakref.WeakKeyDictionary[object, ClientFacts] = weakref.WeakKeyDictionary()


def remember_client(client: _C, *, origin: str | None, max_connections: int | None = None) -> _C:
    """Note where ``client``'s Ollama URL came from and how many connections it may open.
    ``client``: an httpx client of :func:`open_client` or the chat client
    (:mod:`proxy.ollama.chat`)."""
    _facts[client] = ClientFacts(origin or "", max_connections)
    return client


def url_origin(client: object) -> str:
    return _facts.get(client, ClientFacts()).origin


def pool_limit(client: object) -> int | None:
    """The connection limit ``client`` was opened with (None: not told)."""
    return _facts.get(client, ClientFacts()).max_connections


def open_client(
    base_url: str, *, connect_timeout: float = 5.0, origin: str | None = None, max_connections: int | None = None
) -> httpx.AsyncClient:
    """The proxy's one httpx client factory: the server's admin client per Ollama host
    (opened in the ASGI lifespan; ``/api/chat`` has its own, :mod:`proxy.ollama.chat`),
    the operator commands' short-lived ones, and the launcher's look for a running proxy.

    Only the connect step (and the wait for a pooled connection) has an httpx timeout:
    reads are bounded by the caller — the relay knows whether it is waiting for the first
    token (minutes of prefill) or between two chunks, a pull streams for minutes, the
    other calls run under a trio deadline. ``origin``: where the URL came from;
    ``max_connections``: the pool's limit (None: httpx's default, and not named in the
    messages).
    """
    limits = httpx.Limits()
    if max_connections is not None:
        # Generous in the server: Claude Code runs side requests and subagents in parallel.
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=min(32, max_connections))
    client = httpx.AsyncClient(
        base_url=base_url,
        timeout=httpx.Timeout(None, connect=connect_timeout, pool=connect_timeout),
        limits=limits,
        headers={"user-agent": "claude-code-ollama-proxy"},
        trust_env=False,  # an HTTP(S)_PROXY meant for the internet must not catch localhost
    )
    return remember_client(client, origin=origin, max_connections=max_connections)


_ERROR_START = re.compile(r'\{\s*"error"\s*:\s*"((?:[^"\\]|\\.){0,%d})' % ERROR_TEXT_LIMIT)


def _ollama_message(body: bytes) -> str:
    """Ollama's error text, cut to ERROR_TEXT_LIMIT characters."""
    text = body.decode("utf-8", "replace").strip()
    try:
        parsed = json.loads(text)
    except ValueError:
        cut = _ERROR_START.match(text)  # {"error": "… cut at ERROR_BODY_LIMIT
        if cut is not None:
            try:
                return clip(json.loads(f'"{cut.group(1)}"'), ERROR_TEXT_LIMIT)
            except ValueError:
                pass
        return clip(text, ERROR_TEXT_LIMIT) if text else "(empty body)"
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), str):
        return clip(parsed["error"], ERROR_TEXT_LIMIT)
    return clip(text, ERROR_TEXT_LIMIT)


def status_error(status: int, body: bytes, *, model: str, retry_after: int = 5) -> UpstreamError:
    """Map a non-200 answer of Ollama's ``/api/chat`` to the error the client should see.

    ``body`` is the raw response body (Ollama sends ``{"error": "…"}``); ``model`` is the
    Ollama model that was asked for; ``retry_after`` is the wait, in seconds, a client
    is told when Ollama is busy (the one failure left to the client to retry).
    """
    message = _ollama_message(body)
    if status == 404:
        return UpstreamModelNotFound(
            f"Ollama has no model {model!r} ({message}). Install it with `ollama pull {model}`,"
            " or map the Claude model name to an installed model."
        )
    if status == 400:
        return UpstreamBadRequest(f"Ollama rejected the request for {model!r}: {message}")
    if status in (429, 503):
        return UpstreamBusy(f"Ollama is busy: {message}", headers={"retry-after": str(retry_after)})
    return UpstreamError(
        f"Ollama answered HTTP {status} for {model!r}: {message}. If its model runner crashed,"
        " `ollama ps` and Ollama's log say why (often: the model and its context do not fit in"
        " memory; try a smaller model or a lower max_num_ctx)."
    )


def _connections(limit: int | None) -> str:
    if limit is None:
        return "connections"
    return f"{limit} connection" + ("" if limit == 1 else "s")


def transport_error(
    exc: Exception, *, url: str, streaming: bool, produced_output: bool = True,
    client: object | None = None,
) -> ProxyError:
    """Map an httpx failure. ``streaming``: whether Ollama had already answered 200;
    ``produced_output``: whether its answer had carried any output yet; ``client``: the
    client that failed, whose connection limit (for a pool timeout) and URL origin
    (``from OLLAMA_HOST``, said in the hint) the message names."""
    if isinstance(exc, ProxyError):
        return exc
    if isinstance(exc, httpx.PoolTimeout):
        limit = pool_limit(client) if client is not None else None
        return PoolExhausted(
            f"the proxy's own limit of {_connections(limit)} to Ollama was reached: every one stayed"
            " busy with other requests for the whole pool timeout (connect_timeout). Retry, or"
            " raise the limit with PROXY_OLLAMA_CONNECTIONS (ollama_connections)",
            headers={"retry-after": "5"},
        )
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)) and not streaming:
        origin = url_origin(client) if client is not None else ""
        came_from = f" (the URL is {origin})" if origin else ""
        return UpstreamUnreachable(
            f"Cannot reach Ollama at {url}{came_from}: {type(exc).__name__}: {exc or 'no detail'}."
            " Start it with `ollama serve`, or point the proxy at it with --ollama-url or PROXY_OLLAMA_URL."
        )
    if isinstance(exc, httpx.TimeoutException):
        return UpstreamTimeout(f"Ollama at {url} timed out: {exc or type(exc).__name__}")
    if streaming:
        where = "mid-stream" if produced_output else "before its first token"
        return UpstreamProtocolError(
            f"Ollama's connection broke {where} ({type(exc).__name__}: {exc or 'no detail'})"
        )
    return UpstreamProtocolError(
        f"Ollama at {url} closed the connection before answering ({type(exc).__name__}: {exc or 'no detail'})"
    )
