"""Run the app in Hypercorn's trio worker, as the CLI and the tests do."""

from __future__ import annotations

import functools
import logging
import signal
from typing import AsyncIterable, Awaitable, Callable, cast
from urllib.parse import urlsplit

import trio
from hypercorn.config import Config
from hypercorn.trio import serve as hypercorn_serve
from hypercorn.typing import ASGIFramework

from ..config import Settings, host_port
from .app import ProxyApp

__all__ = ["serve", "hypercorn_config", "wait_for_signal", "first_signal"]

log = logging.getLogger("proxy.server")

LISTEN_BACKLOG = 1024


def hypercorn_config(settings: Settings) -> Config:
    config = Config()
    config.bind = [host_port(settings.host, settings.port)]
    # On shutdown Hypercorn stops accepting, gives in-flight streams this long, then
    # cancels them (which closes their Ollama connections).
    config.graceful_timeout = settings.graceful_timeout
    config.keep_alive_timeout = 75  # Claude Code reuses its connections
    config.h11_max_incomplete_size = 64 * 1024
    # Hypercorn's default accept queue (100) resets a burst of connections (250 clients
    # connecting at once: a team, or subagents); the kernel caps it at somaxconn.
    config.backlog = LISTEN_BACKLOG
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    return config


def _as_asgi(app: ProxyApp) -> ASGIFramework:
    """``app`` as Hypercorn's type names an ASGI 3 application. The app reads and sends
    plain ``dict[str, Any]`` messages (:mod:`proxy.server.asgi`); Hypercorn's types name each
    message as its own TypedDict, which no ``dict[str, Any]`` signature matches. Same
    object, same calls: the cast only says so to the type checker."""
    return cast(ASGIFramework, app)


async def wait_for_signal() -> None:
    """Return on SIGTERM or SIGINT: Hypercorn's trigger for a graceful shutdown."""
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        await first_signal(signals)


async def first_signal(signals: AsyncIterable[int]) -> None:
    """Return at the first signal from ``signals`` (a ``trio.open_signal_receiver``).
    Open the receiver before the server starts, so a SIGTERM that arrives as soon as the
    server is up is a graceful shutdown, not the default action (death)."""
    async for signum in signals:
        log.info("received %s: shutting down gracefully", signal.Signals(signum).name)
        return


async def serve(
    settings: Settings,
    *,
    shutdown_trigger: Callable[[], Awaitable[object]] | None = None,
    console_log: bool = True,
    app: ProxyApp | None = None,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the proxy until ``shutdown_trigger`` returns (default: never).

    ``task_status.started`` gets the bound URLs (``http://127.0.0.1:PORT``), so
    ``await nursery.start(serve, settings)`` works with port 0. ``console_log=False``
    keeps log records off stdout (see :class:`~proxy.server.app.ProxyApp`). ``app``: serve this
    ProxyApp (made with ``settings``) instead of a new one (the tests inspect it).
    """
    if app is None:
        app = ProxyApp(settings, console_log=console_log)

    trigger: Callable[[], Awaitable[None]] | None = None
    if shutdown_trigger is not None:

        async def shut_down_when_triggered() -> None:
            # Hypercorn waits up to graceful_timeout for open connections; live-view
            # WebSockets never end by themselves, so they are closed as shutdown begins.
            await shutdown_trigger()
            app.close_live_view()

        trigger = shut_down_when_triggered
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(
            functools.partial(hypercorn_serve, _as_asgi(app), hypercorn_config(settings), shutdown_trigger=trigger)
        )
        log.info("listening on %s", " ".join(urls))
        for url in urls:  # the addresses really bound (a name in host may resolve to several)
            app.note_address(urlsplit(url).hostname or "")
        task_status.started(urls)
