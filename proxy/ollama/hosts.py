"""The Ollama hosts behind the proxy: one client each, their polls, and each request's route.

:class:`HostPool` is opened in the ASGI lifespan. It holds the sans-I/O
:class:`~proxy.protocol.routing.HostTable` (what is known of every host), and per host an httpx
client for the admin calls (capabilities, polls, probes), an :class:`~proxy.ollama.chat.OllamaChat`
for ``/api/chat`` and a capability cache, and — when there are several hosts — a monitor task run in the
lifespan's nursery: it reads each host's ``/api/tags`` and ``/api/ps`` every
``host_poll_interval`` seconds (each read bounded by ``connect_timeout``), and probes a down
host again as soon as its backoff expires. Real traffic reports too (:meth:`Route.attempt`):
a refused, reset or timed-out connection marks the host down at once.

One host is today's proxy exactly: no monitor, no extra requests to Ollama; its route is
always that one host.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any, Callable, Iterator

import httpx
import trio

from .capabilities import CapabilityCache
from ..errors import (
    PoolExhausted,
    ProxyError,
    UpstreamBusy,
    UpstreamError,
    UpstreamModelNotFound,
    UpstreamProtocolError,
    UpstreamUnreachable,
)
from .admin import InstalledModel, list_models, list_running
from .chat import OllamaChat, open_chat
from ..protocol.routing import Host, HostState, HostTable, parse_host_list
from .admin import probe_version
from .client import open_client

__all__ = ["HostPool", "Route"]

log = logging.getLogger("proxy.hosts")


class Route:
    """One request's plan: the hosts to try, best first, and where each outcome goes."""

    def __init__(self, pool: "HostPool", model: str, key: str, hosts: list[Host]) -> None:
        self.pool = pool
        self.model = model
        self.key = key
        self.hosts = hosts
        #: the hosts tried, in order, and what each did (for the log and the live view)
        self.tried: list[tuple[str, str]] = []

    @property
    def first(self) -> Host:
        return self.hosts[0]

    @property
    def single(self) -> bool:
        return len(self.pool.table) == 1

    def client(self, host: Host) -> OllamaChat:
        """``host``'s chat client (what :func:`proxy.server.relay.relay_upstream` streams from)."""
        return self.pool.chats[host.url]

    @contextlib.contextmanager
    def attempt(self, host: Host) -> Iterator[None]:
        """Count ``host``'s request in flight; report how it ended to the table."""
        table = self.pool.table
        table.started(host)
        answered = True
        try:
            yield
        except ProxyError as exc:
            self.tried.append((host.url, exc.error_type))
            answered = self._report(host, exc)
            raise
        else:
            self.tried.append((host.url, "ok"))
            table.succeeded(host, trio.current_time(), model=self.model)
        finally:
            table.finished(host, answered=answered)

    def _report(self, host: Host, exc: ProxyError) -> bool:
        """Tell the table how ``host`` failed; True when it answered (it is up)."""
        table, now = self.pool.table, trio.current_time()
        if isinstance(exc, (UpstreamUnreachable, UpstreamProtocolError)):
            was_down = host.state is HostState.DOWN
            table.failed(host, now, exc.message)
            self.pool.nudge()  # the monitor probes it when its backoff ends
            if not self.single and not was_down:
                log.warning("Ollama host %s is down (%s); retrying it in %.0f s", host.url, exc.message, host.retry_at - now)
            return False
        if isinstance(exc, UpstreamBusy):
            table.busy(host, now)
        elif isinstance(exc, UpstreamModelNotFound):
            table.succeeded(host, now)
            table.lacks(host, self.model)
        elif isinstance(exc, UpstreamError):
            table.succeeded(host, now)  # it answered: up, whatever it said
        return True

    @staticmethod
    def may_try_next(exc: ProxyError) -> bool:
        """Would another host do better? Yes for a host that is down, busy (its queue or
        the proxy's connections to it full), lacks the model or failed. Not for a bad
        request (every host says the same) nor a timeout of the first token (the client has
        waited long enough)."""
        return isinstance(
            exc, (UpstreamUnreachable, UpstreamProtocolError, UpstreamBusy, UpstreamModelNotFound, PoolExhausted)
        ) or (
            type(exc) is UpstreamError
        )


class HostPool:
    """Every configured Ollama. ``async with`` is not needed: :meth:`aclose` in the lifespan."""

    def __init__(
        self,
        ollama_url: str,
        *,
        connect_timeout: float,
        saturation: int = 0,
        poll_interval: float = 10.0,
        origin: str | None = None,
        max_connections: int = 256,
    ) -> None:
        specs = parse_host_list(ollama_url)
        self.table = HostTable(specs, saturation=saturation)
        #: per host: the admin client (httpx) and the /api/chat client (the hot path), with
        #: the same connect timeout, origin (for messages) and connection limit
        self.clients = {
            spec.url: open_client(spec.url, connect_timeout=connect_timeout, origin=origin, max_connections=max_connections)
            for spec in specs
        }
        self.chats = {
            spec.url: open_chat(spec.url, connect_timeout=connect_timeout, origin=origin, max_connections=max_connections)
            for spec in specs
        }
        self.capability_caches = {url: CapabilityCache(client) for url, client in self.clients.items()}
        self.poll_interval = max(0.5, poll_interval)
        self.poll_timeout = max(0.5, connect_timeout)
        self._polled: dict[str, float] = {}
        self._refresh_lock = trio.Lock()
        #: set when traffic marked a host down: the monitor's next wake-up may be sooner
        self._nudged = trio.Event()

    @property
    def urls(self) -> list[str]:
        return [host.url for host in self.table.hosts]

    @property
    def first_client(self) -> httpx.AsyncClient:
        return self.clients[self.table.hosts[0].url]

    def capabilities(self, host: Host) -> CapabilityCache:
        return self.capability_caches[host.url]

    async def aclose(self) -> None:
        """Close every host's clients (shielded, bounded: called in the shutdown)."""
        with trio.move_on_after(5, shield=True):
            for client in self.clients.values():
                await client.aclose()
            for chat in self.chats.values():
                await chat.aclose()

    # -- routes -----------------------------------------------------------------------

    async def route(self, model: str, key: str) -> Route:
        """The route for ``model`` and session ``key``. When no host is known to have the
        model, the hosts are asked again (bounded) before the 400 that lists them (a missing model is a 400: issue 16)."""
        now = trio.current_time()
        hosts = self.table.plan(model, key, now)
        if not hosts:
            await self.refresh()
            hosts = self.table.plan(model, key, trio.current_time())
        if not hosts:
            raise UpstreamModelNotFound(
                f"no Ollama host has model {model!r} (hosts: {', '.join(self.urls)}). Install it on one"
                f" with `ollama pull {model}`, or map the Claude model name to an installed model."
            )
        return Route(self, model, key, hosts)

    # -- polls ------------------------------------------------------------------------

    async def poll(self, host: Host) -> None:
        """Read ``host``'s installed and loaded models (bounded); mark it down on failure."""
        client = self.clients[host.url]
        self._polled[host.url] = trio.current_time()
        try:
            with trio.fail_after(self.poll_timeout):
                installed = await list_models(client)
                running = await list_running(client)
        except (ProxyError, trio.TooSlowError) as exc:
            reason = getattr(exc, "message", None) or f"no answer to /api/tags within {self.poll_timeout:g} s"
            was_down = host.state is HostState.DOWN
            self.table.failed(host, trio.current_time(), reason)
            if not was_down:
                log.warning("Ollama host %s is down (%s)", host.url, reason)
            return
        was_down = host.state is HostState.DOWN
        now = trio.current_time()
        self.table.observe_tags(host, [m.name for m in installed], now)
        self.table.observe_ps(host, running, now)
        if was_down:
            log.info("Ollama host %s is back (%d models installed, %d loaded)", host.url, len(installed), len(running))

    def nudge(self) -> None:
        """Wake the monitor to recompute when it next polls (a host went down)."""
        self._nudged.set()

    async def refresh(self) -> None:
        """Poll every host now, concurrently (on demand: a model no host was known to have).
        One refresh at a time: a burst of requests for a missing model polls once."""
        async with self._refresh_lock:
            async with trio.open_nursery() as nursery:
                for host in self.table.hosts:
                    nursery.start_soon(self.poll, host)

    async def monitor(
        self,
        polled: Callable[[], None] | None = None,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Run in the lifespan's nursery (several hosts only): the first poll of every host,
        then each host again every ``poll_interval`` s, and a down host as soon as its
        backoff expires (the cheap probe: ``/api/tags`` and ``/api/ps``). ``polled()`` is
        called after each round (the live view publishes what changed)."""
        await self.refresh()
        task_status.started()
        while True:
            now = trio.current_time()
            due = []
            wake = now + self.poll_interval
            for host in self.table.hosts:
                at = self._polled.get(host.url, 0.0) + self.poll_interval
                if host.state is HostState.DOWN:
                    at = min(at, host.retry_at)
                if at <= now:
                    due.append(host)
                else:
                    wake = min(wake, at)
            if due:
                async with trio.open_nursery() as nursery:
                    for host in due:
                        nursery.start_soon(self.poll, host)
                if polled is not None:
                    polled()
                continue
            with trio.move_on_at(max(wake, now + 0.05)):
                await self._nudged.wait()
            self._nudged = trio.Event()

    # -- for /health and /v1/models ---------------------------------------------------

    async def versions(self) -> dict[str, str | None]:
        """Each host's Ollama version (None: no answer within 2 s), asked concurrently."""
        results: dict[str, str | None] = {}

        async def one(url: str) -> None:
            results[url] = await probe_version(self.clients[url])

        async with trio.open_nursery() as nursery:
            for url in self.clients:
                nursery.start_soon(one, url)
        return results

    async def installed_models(self) -> list[InstalledModel]:
        """Every host's installed models, merged by name (first host first). One host:
        its error is raised as today; several: a host that fails is left out (logged)."""
        if len(self.table) == 1:
            return await list_models(self.first_client)
        found: dict[str, list[InstalledModel]] = {}

        async def one(url: str) -> None:
            try:
                found[url] = await list_models(self.clients[url])
            except ProxyError as exc:
                log.info("listing models: Ollama host %s failed: %s", url, exc.message)

        async with trio.open_nursery() as nursery:
            for url in self.clients:
                nursery.start_soon(one, url)
        if not found:
            raise UpstreamUnreachable(f"no Ollama host answered /api/tags ({', '.join(self.urls)})")
        merged: dict[str, InstalledModel] = {}
        for url in self.clients:
            for model in found.get(url, ()):
                merged.setdefault(model.name, model)
        return list(merged.values())

    def snapshot(self) -> list[dict[str, Any]]:
        return self.table.snapshot(trio.current_time())
