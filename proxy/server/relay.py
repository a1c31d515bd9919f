"""One ``POST /v1/messages``, from its plan (proxy/protocol/plan.py) to the last byte sent.

Lifecycle (docs/STREAMING.md tells it in full)::

    handler ── opens one nursery for the request ──────────────────────────────┐
      ├─ watch_disconnect   the only caller of receive(); on http.disconnect it │
      │                     cancels the nursery → the Ollama stream is closed   │
      ├─ keep_alive         (streaming) commits after the grace period, then    │
      │                     sends a ping whenever nothing was written for a     │
      │                     ping interval                                       │
      └─ relay_upstream     async with client.stream(...) → translator → sink   │
                                                                               ─┘
The *sink* (:class:`Sink`) is where events go: :class:`SSESink` writes them as they come
(committing the 200 and ``message_start`` at most once), :class:`JSONSink` folds them into
one Message. Before the commit an error is an HTTP status; after it, an ``event: error``
frame. The relay moves the request's :class:`~proxy.protocol.lifecycle.Lifecycle` along
(per phase, never per chunk) and returns it frozen as an ``Outcome``.
"""

from __future__ import annotations

import dataclasses
import logging
from contextlib import aclosing
from typing import Protocol

import httpx
import trio

from .asgi import Receive, Send, send_error, send_json
from ..errors import PoolExhausted, ProxyError, ShuttingDown, UpstreamBusy, UpstreamError, UpstreamTimeout
from ..ollama.hosts import Route
from ..live.requests import RequestWatch
from ..ollama.chat import OllamaChat
from ..protocol.lifecycle import Lifecycle, Outcome, Phase
from ..protocol.plan import HEADERS as FALLBACK_HEADERS
from ..protocol.plan import Plan
from ..protocol.translate import encode_ollama_body
from ..stream.events import Event, Ping, encode_sse
from ..stream.message import MessageBuilder
from ..stream.translator import ResponseTranslator
from ..ollama.client import ERROR_BODY_LIMIT, read_capped, status_error, transport_error

__all__ = ["RelaySettings", "Sink", "SSESink", "JSONSink", "Exchange", "serve_messages", "relay_routed", "wait_for_disconnect"]

log = logging.getLogger("proxy.relay")

#: after Ollama's final chunk, how long the rest of its body may take to arrive
DRAIN_TIMEOUT = 0.25
#: the wait before the one quick retry of a failure before any output: long enough for
#: Ollama to notice its runner died (or to finish restarting), short enough to go unseen
CRASH_RETRY_DELAY = 0.5
#: how long the last word to a client cut by the shutdown may take to send
SHUTDOWN_NOTICE_TIMEOUT = 1.0


@dataclasses.dataclass(frozen=True, slots=True)
class RelaySettings:
    first_content_timeout: float = 900.0
    idle_timeout: float = 300.0
    commit_grace: float = 1.0
    ping_interval: float = 10.0
    busy_retries: int = 1
    busy_retry_window: float = 10.0
    busy_retry_after: int = 5
    crash_retries: int = 1


class Sink(Protocol):
    """Where a request's events go. ``committed``: a status was sent (an error now goes as
    an ``event: error``); ``finished``: the answer's end (its last event, or its error) was
    handed to the server. Every method may be called again after ``finished``: it does
    nothing then."""

    @property
    def committed(self) -> bool: ...

    @property
    def finished(self) -> bool: ...

    async def commit(self) -> None: ...

    async def emit(self, events: list[Event]) -> None: ...

    async def complete(self) -> None: ...

    async def fail(self, error: ProxyError, translator: ResponseTranslator) -> None: ...


class SSESink:
    """Writes one SSE response. All writes are serialized; the head goes out once."""

    def __init__(
        self, send: Send, *, request_id: str, first_events: list[Event], headers: list[tuple[str, str]]
    ) -> None:
        self._send = send
        self._request_id = request_id
        #: extra response headers, read when the head goes out (so they may still grow)
        self._headers = headers
        self._first = first_events
        self._lock = trio.Lock()
        self.committed = False
        self.finished = False
        self.last_write = trio.current_time()

    async def _commit_locked(self) -> None:
        if self.committed:
            return
        self.committed = True
        await self._send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream; charset=utf-8"),
                    (b"cache-control", b"no-cache"),
                    (b"x-accel-buffering", b"no"),
                    (b"request-id", self._request_id.encode()),
                    *((k.encode("latin-1"), v.encode("latin-1")) for k, v in self._headers),
                ],
            }
        )
        await self._write_locked(self._first)

    async def _write_locked(self, events: list[Event]) -> None:
        if events and not self.finished:
            body = b"".join(encode_sse(e) for e in events)
            await self._send({"type": "http.response.body", "body": body, "more_body": True})
            self.last_write = trio.current_time()

    async def commit(self) -> None:
        """Send the 200 head and ``message_start`` (once)."""
        async with self._lock:
            if not self.finished:
                await self._commit_locked()

    async def emit(self, events: list[Event]) -> None:
        if not events:
            return
        async with self._lock:
            await self._commit_locked()
            await self._write_locked(events)

    async def ping(self) -> None:
        async with self._lock:
            if self.committed:
                await self._write_locked([Ping()])

    async def complete(self) -> None:
        async with self._lock:
            await self._commit_locked()
            await self._end_locked()

    async def fail(self, error: ProxyError, translator: ResponseTranslator) -> None:
        """Before the commit: the error's HTTP status. After: an ``error`` event."""
        async with self._lock:
            if self.finished:
                return
            if not self.committed:
                self.committed = self.finished = True
                await send_error(self._send, error, headers=[("request-id", self._request_id), *self._headers])
                return
            await self._write_locked(translator.fail(error))
            await self._end_locked()

    async def _end_locked(self) -> None:
        if not self.finished:
            self.finished = True
            await self._send({"type": "http.response.body", "body": b"", "more_body": False})


class JSONSink:
    """Folds the events into one Message, sent when the stream completes: the one thing
    it sends is both its commit and its end."""

    def __init__(
        self, send: Send, *, request_id: str, first_events: list[Event], headers: list[tuple[str, str]]
    ) -> None:
        self._send = send
        self._request_id = request_id
        self._headers = headers
        self._builder = MessageBuilder()
        self._builder.add(first_events)
        self.finished = False

    @property
    def committed(self) -> bool:
        return self.finished

    async def commit(self) -> None:
        pass  # nothing can be sent before the whole message is known

    async def emit(self, events: list[Event]) -> None:
        self._builder.add(events)

    async def complete(self) -> None:
        if self.finished:
            return  # sent already (the relay completes before draining Ollama's body)
        self.finished = True
        await send_json(
            self._send, 200, self._builder.message(), headers=[("request-id", self._request_id), *self._headers]
        )

    async def fail(self, error: ProxyError, translator: ResponseTranslator) -> None:
        if not self.finished:
            self.finished = True
            await send_error(self._send, error, headers=[("request-id", self._request_id), *self._headers])


@dataclasses.dataclass(frozen=True, slots=True)
class Exchange:
    """What every attempt of one request shares, at every host: the plan, the translator,
    the sink, the lifecycle (which the relay moves along), the response headers (they may
    grow until the head is sent) and the live view's watch."""

    request_id: str
    plan: Plan
    translator: ResponseTranslator
    sink: Sink
    lifecycle: Lifecycle
    headers: list[tuple[str, str]]
    watch: RequestWatch | None = None


async def wait_for_disconnect(receive: Receive) -> None:
    """Return when the client has gone. The request body must already have been read.

    Hypercorn never makes ``send()`` raise for a gone client: ``receive()`` returning
    ``http.disconnect`` is the only signal, so this task is its only caller.
    """
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def keep_alive(sink: SSESink, settings: RelaySettings) -> None:
    """Commit after the grace period, then ping whenever nothing went out for an interval."""
    await trio.sleep(settings.commit_grace)
    await sink.commit()
    if settings.ping_interval <= 0:
        return
    while not sink.finished:
        due = sink.last_write + settings.ping_interval
        await trio.sleep_until(due)
        if trio.current_time() >= sink.last_write + settings.ping_interval:
            await sink.ping()


async def relay_upstream(client: OllamaChat, settings: RelaySettings, exchange: Exchange) -> None:
    """Stream Ollama's answer into the exchange's sink. Raises ProxyError for every failure.

    The lifecycle hears when Ollama answered, the first output and the end of the answer.
    When Ollama answers 400 with what one of the plan's fallbacks cures (e.g. "does not
    support thinking"), the request is sent again at once with it; the lifecycle keeps
    which were used (the handler corrects the capability cache from that). The watch (the
    live view) hears of each piece that carried output.

    Who retries (docs/STREAMING.md): a failure before any output — a runner crash (a 5xx),
    Ollama unreachable, a connection lost, an error line — is retried here, quickly, at
    most ``crash_retries`` times; a busy Ollama (503) ``busy_retries`` - 1 times. Whatever
    is raised after that is the final answer (see ProxyError.should_retry).
    """
    plan, translator, sink, lifecycle, watch = (
        exchange.plan, exchange.translator, exchange.sink, exchange.lifecycle, exchange.watch
    )
    url = client.url
    start = trio.current_time()
    retry_until = start + settings.busy_retry_window
    attempt = 0
    quick_retries = settings.crash_retries
    with trio.CancelScope(deadline=start + settings.first_content_timeout) as timer:
        while True:
            attempt += 1
            backoff = 0.0
            #: a failure that a quick retry may cure, when nothing was produced yet
            failure: ProxyError | None = None
            try:
                request = plan.request(tuple(lifecycle.fallbacks))
                payload = encode_ollama_body(request)
                async with client.stream(payload) as response:
                    lifecycle.answered(response.status_code)
                    if response.status_code != 200:
                        body = await read_capped(response, ERROR_BODY_LIMIT)
                        error = status_error(
                            response.status_code, body, model=request.ollama["model"],
                            retry_after=settings.busy_retry_after,
                        )
                        backoff = 0.25 * 2 ** (attempt - 1)
                        busy = response.status_code in (429, 503)
                        if busy and attempt < settings.busy_retries and trio.current_time() + backoff < retry_until:
                            log.info("Ollama is busy (attempt %d); retrying in %.2f s", attempt, backoff)
                        elif (
                            response.status_code == 400
                            and (fallback := plan.fallback_for(body, tuple(lifecycle.fallbacks))) is not None
                        ):
                            # Ollama refused what the cached capabilities allowed: believe it.
                            lifecycle.fallbacks.append(fallback)
                            header = FALLBACK_HEADERS.get(fallback)
                            if header is not None:
                                exchange.headers.append(header)
                            log.info(
                                "request %s: Ollama refused it (%s); sending it again %s",
                                exchange.request_id, error.message, fallback.value,
                            )
                            backoff = 0
                        elif response.status_code >= 500 and not busy:
                            failure = error  # a runner that crashed or could not load
                        else:
                            raise error
                    else:
                        await sink.commit()
                        async with aclosing(response.aiter_bytes()) as chunks:
                            async for data in chunks:
                                try:
                                    events = translator.feed(data)
                                except UpstreamError as exc:  # an error line, a bad line
                                    failure = exc
                                    break
                                if translator.produced_output:
                                    now = trio.current_time()
                                    if lifecycle.first_output_at is None:
                                        lifecycle.first_output(now)
                                    timer.deadline = now + settings.idle_timeout
                                    if watch is not None:
                                        watch.output(translator, now)
                                done = translator.done
                                if done:
                                    lifecycle.finishing()
                                await sink.emit(events)
                                if done:
                                    # The answer is complete: the client gets the end of
                                    # its response now. What is left of Ollama's body is
                                    # normally just the chunked terminator, already on its
                                    # way: read it so the connection goes back to the pool
                                    # (a new connection per request costs more than the
                                    # whole translation), but never wait long on an Ollama
                                    # that keeps its body open.
                                    # First: Hypercorn reports the end of a response as
                                    # http.disconnect, which must not cancel the drain.
                                    lifecycle.done()
                                    await sink.complete()
                                    if translator.ended_early:
                                        return  # a stop sequence or a loop: closing stops Ollama at once
                                    with trio.move_on_after(DRAIN_TIMEOUT):
                                        try:
                                            async for _ in chunks:
                                                pass
                                        except httpx.HTTPError:
                                            pass  # the answer went out whole; only the pool loses
                                    return
                        if failure is None:
                            try:
                                events = translator.end()
                            except UpstreamError as exc:  # ended before its final chunk
                                failure = exc
                            else:
                                lifecycle.finishing()
                                await sink.emit(events)
                                return
            except httpx.HTTPError as exc:
                failure = transport_error(
                    exc, url=url, streaming=lifecycle.state is not Phase.WAITING,
                    produced_output=translator.produced_output, client=client,
                )
                failure.__cause__ = exc
                if isinstance(exc, httpx.TimeoutException):
                    quick_retries = 0  # a host that does not answer will not answer sooner
            if failure is not None:
                if translator.produced_output or quick_retries <= 0:
                    if attempt > 1:
                        failure.message += f" (tried {attempt} times)"
                    raise failure
                quick_retries -= 1
                translator.restart()
                lifecycle.restart()
                backoff = CRASH_RETRY_DELAY
                # INFO: the end record says it once, with "(tried N times)"
                log.info(
                    "Ollama failed before any output (%s); retrying once in %.1f s", failure.message, backoff
                )
            await trio.sleep(backoff)
    if timer.cancelled_caught:
        if translator.produced_output:
            raise UpstreamTimeout(
                f"Ollama sent nothing for {settings.idle_timeout:g} s in the middle of its answer;"
                " the connection was closed"
            )
        raise UpstreamTimeout(
            f"Ollama produced no output within {settings.first_content_timeout:g} s (model"
            " loading or prompt prefill took too long); the connection was closed"
        )


async def relay_routed(route: Route, settings: RelaySettings, exchange: Exchange) -> None:
    """:func:`relay_upstream` to the route's hosts in order, while the model has produced
    nothing (the client has had at most the head, ``message_start`` and pings, the same
    whichever host answers). A host that is down, busy (503), lacks the model or fails
    before any output hands the request to the next at once: failing over is the quick
    retry, so only the route's last host gets ``crash_retries`` (docs/STREAMING.md, "Who
    retries"). When every host was busy the round is tried again with backoff
    (``busy_retries`` rounds within ``busy_retry_window``), then the client gets the 529.
    One host: exactly :func:`relay_upstream`, whose own retries apply.
    The lifecycle's ``host`` names the host that answered (or was tried last)."""
    translator, lifecycle = exchange.translator, exchange.lifecycle
    if route.single:
        lifecycle.host = route.first.url
        with route.attempt(route.first):
            await relay_upstream(route.client(route.first), settings, exchange)
        return
    once = dataclasses.replace(settings, busy_retries=1)
    failover = dataclasses.replace(once, crash_retries=0)
    retry_until = trio.current_time() + settings.busy_retry_window
    for round_number in range(1, max(1, settings.busy_retries) + 1):
        busy: ProxyError | None = None
        last: ProxyError | None = None
        hosts = list(route.hosts)
        for index, host in enumerate(hosts):
            lifecycle.host = host.url
            lifecycle.restart()
            try:
                with route.attempt(host):
                    policy = once if index == len(hosts) - 1 else failover
                    await relay_upstream(route.client(host), policy, exchange)
                return
            except ProxyError as exc:
                if translator.produced_output or not route.may_try_next(exc):
                    raise
                if translator.bytes_fed:
                    translator.restart()  # an error line before any output: the next host starts afresh
                log.info("Ollama host %s: %s; trying the next host", host.url, exc.message)
                last = exc
                if isinstance(exc, (UpstreamBusy, PoolExhausted)):
                    busy = exc
        assert last is not None
        backoff = 0.25 * 2 ** (round_number - 1)
        if busy is None or round_number >= settings.busy_retries or trio.current_time() + backoff >= retry_until:
            raise busy or last
        log.info("every Ollama host is busy (round %d); retrying in %.2f s", round_number, backoff)
        await trio.sleep(backoff)
        route.hosts = route.pool.table.plan(route.model, route.key, trio.current_time()) or route.hosts


async def serve_messages(
    receive: Receive,
    send: Send,
    *,
    route: Route,
    settings: RelaySettings,
    plan: Plan,
    translator: ResponseTranslator,
    request_id: str,
    started: float,
    headers: list[tuple[str, str]] | None = None,
    watch: RequestWatch | None = None,
) -> Outcome:
    """Answer one planned request; return its :class:`Outcome` (``started``: the trio
    clock when the request was accepted).

    ``headers`` are extra response headers; the list may grow until the head is sent.
    """
    first = translator.start()
    headers = headers if headers is not None else []
    sink: Sink
    if plan.made.stream:
        sink = SSESink(send, request_id=request_id, first_events=first, headers=headers)
    else:
        sink = JSONSink(send, request_id=request_id, first_events=first, headers=headers)
    lifecycle = Lifecycle(host=route.first.url)
    exchange = Exchange(request_id, plan, translator, sink, lifecycle, headers, watch)

    try:
        await _serve(receive, route, settings, exchange)
    except* trio.Cancelled:
        # Cancelled from outside the request (a client leaving cancels only the request's
        # own nursery): the server's graceful shutdown ran out of time. The client gets a
        # last word (529, or an event: error), shielded and bounded, then the cut — unless
        # its answer was already complete, when nothing was cut.
        if sink.finished:  # the answer went out whole: the relay was reading Ollama's rest
            log.info("request %s: the shutdown came after its answer was sent; nothing was cut", request_id)
            raise
        error = ShuttingDown()
        lifecycle.cut(error)
        with trio.CancelScope(shield=True), trio.move_on_after(SHUTDOWN_NOTICE_TIMEOUT):
            await sink.fail(error, translator)
        log.warning("request %s cut by the shutdown: %s", request_id, error.message)
        raise

    outcome = lifecycle.outcome(
        committed=sink.committed,
        started=started,
        ended=trio.current_time(),
        output_tokens=translator.output_tokens or translator.approx_output_tokens,
    )
    if outcome.cancelled:
        log.info(
            "request %s cancelled by the client during %s after ~%d output tokens;"
            " the Ollama connection was closed",
            request_id,
            outcome.phase,
            translator.approx_output_tokens,
        )
    return outcome


async def _serve(receive: Receive, route: Route, settings: RelaySettings, exchange: Exchange) -> None:
    """serve_messages' nursery: the disconnect watcher, the keepalive and the relay."""
    lifecycle, sink = exchange.lifecycle, exchange.sink
    async with trio.open_nursery() as nursery:

        async def watch_disconnect() -> None:
            await wait_for_disconnect(receive)
            if not lifecycle.responded:  # a client leaving after the answer cancels nothing
                lifecycle.to(Phase.CANCELLED)
                nursery.cancel_scope.cancel()

        nursery.start_soon(watch_disconnect)
        if isinstance(sink, SSESink):
            nursery.start_soon(keep_alive, sink, settings)
        try:
            await relay_routed(route, settings, exchange)
            lifecycle.done()
            await sink.complete()
        except ProxyError as exc:
            # No record here: the request's end record (a warning) says what failed, once.
            await _give_error(exchange, exc)
        except Exception as exc:  # a bug of ours: still answer in Anthropic's shape
            log.exception("request %s: internal error", exchange.request_id)
            await _give_error(exchange, ProxyError(f"internal error in the proxy: {type(exc).__name__}: {exc}"))
        nursery.cancel_scope.cancel()


async def _give_error(exchange: Exchange, error: ProxyError) -> None:
    """Tell the client ``error`` (a status before the commit, an ``event: error`` after)."""
    lifecycle = exchange.lifecycle
    if lifecycle.state is Phase.DONE:  # the answer went out whole: nothing to tell
        log.info("request %s: after its answer was sent: %s", exchange.request_id, error.message)
        return
    lifecycle.fail(error, status=200 if exchange.sink.committed else error.status)
    await exchange.sink.fail(error, exchange.translator)
