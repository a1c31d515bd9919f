"""Talking to Ollama: the shared client, and the one place its failures are mapped.

:func:`status_error` maps a non-200 answer of ``/api/chat``; :func:`transport_error` maps
an httpx exception (refused, reset, truncated). Both return a :class:`~proxy.errors.ProxyError`
for the boundary to render.
"""

from __future__ import annotations

import json

import httpx
import trio

from .errors import (
    ProxyError,
    UpstreamBadRequest,
    UpstreamBusy,
    UpstreamError,
    UpstreamModelNotFound,
    UpstreamProtocolError,
    UpstreamTimeout,
    UpstreamUnreachable,
)

__all__ = ["open_client", "status_error", "transport_error", "probe_version", "CHAT_PATH"]

CHAT_PATH = "/api/chat"


def open_client(ollama_url: str, *, connect_timeout: float) -> httpx.AsyncClient:
    """The client for Ollama's admin calls, opened in the ASGI lifespan (``/api/chat`` has
    its own, :mod:`proxy.ollama_chat`).

    Only the connect step has an httpx timeout: reads are bounded by the relay, which knows
    whether it is waiting for the first token (minutes of prefill) or between two chunks.
    """
    return httpx.AsyncClient(
        base_url=ollama_url,
        timeout=httpx.Timeout(None, connect=connect_timeout, pool=connect_timeout),
        # Generous: Claude Code runs side requests and subagents in parallel.
        limits=httpx.Limits(max_connections=256, max_keepalive_connections=32),
        headers={"user-agent": "claude-code-ollama-proxy"},
        trust_env=False,  # an HTTP(S)_PROXY meant for the internet must not catch localhost
    )


def _ollama_message(body: bytes) -> str:
    text = body.decode("utf-8", "replace").strip()
    try:
        parsed = json.loads(text)
    except ValueError:
        return text or "(empty body)"
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), str):
        return parsed["error"]
    return text


def status_error(status: int, body: bytes, *, model: str) -> UpstreamError:
    """Map a non-200 answer of Ollama's ``/api/chat`` to the error the client should see.

    ``body`` is the raw response body (Ollama sends ``{"error": "…"}``); ``model`` is the
    Ollama model that was asked for.
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
        return UpstreamBusy(f"Ollama is busy: {message}", headers={"retry-after": "5"})
    return UpstreamError(f"Ollama answered HTTP {status}: {message}")


def transport_error(exc: Exception, *, url: str, streaming: bool) -> ProxyError:
    """Map an httpx failure. ``streaming``: whether Ollama had already answered 200."""
    if isinstance(exc, ProxyError):
        return exc
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)) and not streaming:
        return UpstreamUnreachable(
            f"Cannot reach Ollama at {url} ({type(exc).__name__}: {exc or 'no detail'})."
            " Start it with `ollama serve`, or point the proxy at it with PROXY_OLLAMA_URL."
        )
    if isinstance(exc, httpx.TimeoutException):
        return UpstreamTimeout(f"Ollama at {url} timed out: {exc or type(exc).__name__}")
    if streaming:
        return UpstreamProtocolError(
            f"Ollama's connection broke mid-stream ({type(exc).__name__}: {exc or 'no detail'})"
        )
    return UpstreamProtocolError(
        f"Ollama at {url} closed the connection before answering ({type(exc).__name__}: {exc or 'no detail'})"
    )


async def probe_version(client: httpx.AsyncClient, *, timeout: float = 2.0) -> str | None:
    """Ollama's version, or None when it does not answer within ``timeout`` seconds."""
    with trio.move_on_after(timeout):
        try:
            response = await client.get("/api/version")
            if response.status_code == 200:
                version = response.json().get("version")
                return version if isinstance(version, str) else "unknown"
        except (httpx.HTTPError, ValueError, AttributeError):
            return None
    return None
