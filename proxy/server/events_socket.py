"""``GET /v1/events``: the live feed as an ASGI WebSocket (Hypercorn speaks the protocol).

One connection is one subscription. Its handler owns a nursery with two tasks: the
client reader (the only caller of ``receive()``; a ``websocket.disconnect`` cancels the
connection's scope) and the writer below it, which sends the ``hello`` snapshot and then
every event of the subscription, one JSON text message each. The writer may block on a
viewer that does not read; publishers never do (see :mod:`proxy.live.broadcast`).

A handshake that is refused (wrong path, missing key) gets an HTTP answer in Anthropic's
error shape through the ``websocket.http.response`` extension, where the server has it.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import trio

from .asgi import Receive, Scope, Send
from ..errors import FeedClosed
from ..errors import ProxyError
from ..live.requests import LiveRequests
from ..protocol.bounded import utf8, valid_text

__all__ = ["serve_events", "reject_handshake"]

log = logging.getLogger("proxy.events")

#: "going away": the proxy is shutting down (the tail client reconnects)
GOING_AWAY = 1001


def _encode(event: dict[str, Any]) -> str:
    # valid_text: the WebSocket sends UTF-8; a lone surrogate would close the connection
    return valid_text(json.dumps(event, ensure_ascii=False, separators=(",", ":")))


async def reject_handshake(scope: Scope, send: Send, error: ProxyError) -> None:
    """Refuse the WebSocket with ``error``'s status and Anthropic error body."""
    if "websocket.http.response" not in scope.get("extensions", {}):
        await send({"type": "websocket.close", "code": 1008, "reason": error.message[:120]})
        return
    body = utf8(_encode(error.to_body()))
    await send({
        "type": "websocket.http.response.start",
        "status": error.status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
    })
    await send({"type": "websocket.http.response.body", "body": body})


async def _read_until_disconnect(receive: Receive, scope: trio.CancelScope) -> None:
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            scope.cancel()
            return
        # The feed is one-way; whatever a viewer sends is ignored.
        log.debug("ignored a message a live-view client sent on /v1/events")


#: how often a viewer's connection looks for the server's shutdown (see _close_on_shutdown)
SHUTDOWN_POLL = 0.25


async def _close_on_shutdown(live: LiveRequests) -> None:
    """End the feed (every viewer, close code 1001) as soon as the server's graceful
    shutdown begins: a viewer never ends by itself and must not hold the shutdown open.

    ``serve()`` does this from its shutdown trigger; under plain ``hypercorn`` the app is
    not told. But Hypercorn begins a shutdown by putting a deadline (now + its graceful
    timeout) on the nursery that runs every connection, this one included: the deadline
    this task sees drops from what it was at the start."""
    start = trio.current_effective_deadline()
    while trio.current_effective_deadline() >= start:
        await trio.sleep(SHUTDOWN_POLL)
    log.info("the server is shutting down: closing the live-view connections")
    live.broadcast.close()


async def serve_events(receive: Receive, send: Send, live: LiveRequests) -> None:
    """Accept the (already authenticated) WebSocket and stream the feed until the client
    leaves or the proxy shuts down (close code 1001)."""
    try:
        subscription = live.broadcast.subscribe()
    except FeedClosed:
        await send({"type": "websocket.close", "code": GOING_AWAY})
        return
    with subscription:
        # Subscribed and the snapshot taken with no await between: nothing falls between
        # the snapshot and the first event, and nothing is in both.
        hello = live.hello(trio.current_time())
        await send({"type": "websocket.accept"})
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_read_until_disconnect, receive, nursery.cancel_scope)
            nursery.start_soon(_close_on_shutdown, live)
            await send({"type": "websocket.send", "text": _encode(hello)})
            while True:
                try:
                    batch = await subscription.get()
                except FeedClosed:
                    await send({"type": "websocket.close", "code": GOING_AWAY, "reason": "proxy shutting down"})
                    break
                for event in batch:
                    await send({"type": "websocket.send", "text": _encode(event)})
            nursery.cancel_scope.cancel()
        if subscription.total_drops:
            log.info("a live-view client fell behind: %d events were dropped for it", subscription.total_drops)
