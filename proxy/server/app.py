"""The ASGI application: ``hypercorn proxy.app:app --worker-class trio``.

Hand-written ASGI, no framework. The lifespan loads the settings (environment and config
file; the CLI passes its own) and opens the one shared Ollama client; each HTTP request is
routed by (method, path) to a handler. Every error leaves in Anthropic's shape.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import multiprocessing
import os
import secrets
import signal
from importlib import resources
from typing import Any, Awaitable, Callable
from urllib.parse import parse_qs, urlsplit

import httpx
import trio

from .. import __version__
from .asgi import Receive, Scope, Send, header, read_body, send_error, send_json, send_response
from ..live.broadcast import Broadcast
from ..ollama.capabilities import CapabilityCache
from ..config import Settings, describe_source, is_loopback_host, load_settings
from ..errors import AuthenticationError, ClientDisconnected, ConfigError, Forbidden, MethodNotAllowed, NotFound, ProxyError, RequestError, UpstreamTimeout
from .events_socket import reject_handshake, serve_events
from ..ollama.hosts import HostPool
from ..live.requests import LiveRequests
from ..logs import configure_logging, request_context
from ..ollama.admin import settle_container_default
from ..ollama.chat import OllamaChat
from ..protocol.bounded import DEPTH_LIMIT, BoundedDict, clip, too_deep
from ..protocol.model_list import model_entries, paginate, parse_list_query
from ..protocol.models import resolve_model
from ..protocol.known_tools import KnownTools, ToolsCache, parse_request_body
from ..protocol.tokens import Calibration, estimate_tokens
from ..protocol.translate import validate_count_request
from .messages import handle_messages, plan_settings
from ..protocol.plan import PlanSettings
from .relay import RelaySettings
from .verdicts import FinalVerdicts

__all__ = ["ProxyApp", "app"]

log = logging.getLogger("proxy.app")

Handler = Callable[["ProxyApp", Scope, Receive, Send, str], Awaitable[None]]


def _without_body(send: Send) -> Send:
    """A HEAD response has the GET response's head and no body."""

    async def send_head(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            message = {**message, "body": b""}
        await send(message)

    return send_head


def _with_request_id(send: Send, request_id: str) -> Send:
    """Every response carries ``request-id`` (docs/API.md), whichever handler sent it."""
    value = request_id.encode("latin-1")

    async def send_with_id(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers") or ())
            if not any(name.lower() == b"request-id" for name, _ in headers):
                message = {**message, "headers": [*headers, (b"request-id", value)]}
        await send(message)

    return send_with_id


#: Bodies from this size on are parsed, checked and translated in a worker thread (smaller
#: ones on the event loop, where a thread's hand-off would cost more than the work).
OFF_LOOP_BYTES = 512 * 1024


def origin_allowed(origin: str, host: str | None, allowed: list[str]) -> bool:
    """The page's origin is this proxy's own (its host and port are the request's Host,
    over http or https: a TLS proxy in front changes the scheme) or one of ``allowed``."""
    origin = origin.strip().rstrip("/").lower()
    if "*" in allowed or origin in (a.rstrip("/").lower() for a in allowed):
        return True
    scheme, _, netloc = origin.partition("://")
    return scheme in ("http", "https") and host is not None and netloc == host.strip().lower()


def host_allowed(host: str, allowed: list[str]) -> bool:
    """A loopback name (localhost, *.localhost), any IP address (no DNS, no rebinding), or
    one of ``allowed`` (``*``: any)."""
    if "*" in allowed:
        return True
    try:
        name = urlsplit("//" + host.strip()).hostname
    except ValueError:
        return False
    if not name:
        return False
    if is_loopback_host(name) or name in (a.lower() for a in allowed):
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _new_request_id() -> str:
    return f"req_{secrets.token_hex(12)}"


class ProxyApp:
    """The proxy as an ASGI 3 application. ``settings=None`` reads them at startup.

    ``console_log=False`` keeps log records off stdout (the ``claude`` launcher: Claude
    Code owns the terminal); they still go to the log file when one is set.
    """

    def __init__(self, settings: Settings | None = None, *, console_log: bool = True) -> None:
        self._given_settings = settings
        self._console_log = console_log
        self.settings: Any = None
        self.client: httpx.AsyncClient | None = None
        #: Ollama's /api/chat (the hot path); ``client`` serves the admin calls
        self.chat: OllamaChat | None = None
        self.capabilities: CapabilityCache | None = None
        #: the Ollama hosts: their clients, what is known of each, the routes
        self.hosts: HostPool | None = None
        self.relay_settings = RelaySettings()
        #: what a request's plan takes from the settings (set at startup)
        self.plan_settings = PlanSettings()
        #: recent requests' tools, so a session's repeated tools are parsed and translated once
        self.known_tools = ToolsCache()
        #: the live view (GET /v1/events, tail, the dashboard); replaced at startup
        self.live = LiveRequests(Broadcast())
        self._exposure_warned = False
        self._loopback_seen: str | None = None
        #: final failures of streams, for the client's non-streaming retry of the same request
        self.verdicts = FinalVerdicts()
        #: what Ollama counted against what was estimated, per model
        self.calibration = Calibration()
        #: the largest num_ctx each (host, model) got so far: it only grows (a change
        #: reloads the model on that host). One table per host (filled at startup, when
        #: the hosts are known); each keeps only models Ollama answered for, at most
        #: MODEL_TABLE_SIZE.
        self.num_ctx_high_waters: dict[str, BoundedDict[str, int]] = {}
        #: the first host's table (the only one with one host)
        self.num_ctx_high_water: BoundedDict[str, int] = BoundedDict()
        #: worker threads for big bodies (see _off_loop): CPU-bound, so few
        self._cpu_limiter = trio.CapacityLimiter(2)

    @property
    def pool(self) -> HostPool:
        """The Ollama hosts; there are none before startup."""
        if self.hosts is None:
            raise RuntimeError("the proxy has not started: its Ollama hosts are not known yet")
        return self.hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "websocket":
            await self._websocket(scope, receive, send)

    # -- lifespan ------------------------------------------------------------------

    async def startup(self) -> None:
        settings = self._given_settings or load_settings()
        if self._given_settings is None:  # under Hypercorn directly: the CLI did not settle it
            settings = await settle_container_default(settings)
        configure_logging(
            settings.log_level, log_file=settings.log_file, quiet=settings.quiet, console=self._console_log,
            style=settings.log_format,
        )
        self.settings = settings
        self.relay_settings = RelaySettings(
            first_content_timeout=settings.first_content_timeout,
            idle_timeout=settings.idle_timeout,
            commit_grace=settings.commit_grace,
            ping_interval=settings.ping_interval,
            busy_retries=max(1, settings.busy_retries),
            busy_retry_window=settings.busy_retry_window,
            busy_retry_after=max(0, settings.busy_retry_after),
            crash_retries=max(0, settings.crash_retries),
        )
        self.plan_settings = plan_settings(settings)
        self.live = LiveRequests(Broadcast(buffer=settings.events_buffer))
        origin = describe_source(settings, "ollama_url")
        try:
            # Per host: an httpx client for the admin calls and an OllamaChat for /api/chat.
            self.hosts = HostPool(
                settings.ollama_url,
                connect_timeout=settings.connect_timeout,
                saturation=settings.host_saturation,
                poll_interval=settings.host_poll_interval,
                origin=origin,
                max_connections=settings.ollama_connections,
            )
        except ValueError as exc:
            raise ConfigError(f"ollama_url: {exc}") from exc
        self.live.host_pool = self.hosts
        first = self.hosts.table.hosts[0]
        self.client = self.hosts.first_client
        self.chat = self.hosts.chats[first.url]
        self.capabilities = self.hosts.capabilities(first)
        self.num_ctx_high_waters = {url: BoundedDict() for url in self.hosts.urls}
        self.num_ctx_high_water = self.num_ctx_high_waters[first.url]
        urls = ", ".join(self.hosts.urls)
        log.info(
            "proxy ready: Ollama at %s (%s), default model %s", urls, origin, settings.default_model,
            extra={"attributes": {"proxy.ollama_url": urls, "proxy.ollama_url_origin": origin}},
        )
        versions = await self.hosts.versions()
        silent = [url for url in self.hosts.urls if versions[url] is None]
        if len(silent) == len(versions):
            # Said once, here: each request that fails for it says so in its own end record.
            log.warning(
                "Ollama at %s (%s) does not answer: requests will fail with 502 until it does;"
                " start it with `ollama serve`, or point the proxy at it with --ollama-url / PROXY_OLLAMA_URL"
                " (`claude-code-ollama-proxy doctor` checks the setup)",
                urls, origin,
                extra={"attributes": {"proxy.ollama_url": urls, "proxy.ollama_url_origin": origin}},
            )
        elif silent:
            log.warning(
                "Ollama host(s) %s (%s) do not answer: requests go to the other hosts until they do",
                ", ".join(silent), origin,
                extra={"attributes": {"proxy.ollama_url": urls, "proxy.ollama_url_origin": origin}},
            )

    def note_address(self, host: str) -> None:
        """Warn (once) when the server is reachable beyond loopback without an API key.

        Told the address the server really listens on or was reached at: by ``serve()``
        from its bound sockets, and by every request's ASGI ``server`` (so it works under
        plain ``hypercorn --bind 0.0.0.0:3000`` too, where the host setting is not used)."""
        if self._exposure_warned or host == self._loopback_seen:
            return
        if self.settings is None or self.settings.api_key or is_loopback_host(host):
            self._loopback_seen = host  # the one address a local proxy is reached at
            return
        self._exposure_warned = True
        log.warning(
            "listening on %s without an API key: anyone who can reach this address can use"
            " your Ollama through the proxy; set --api-key (env PROXY_API_KEY)",
            clip(host),
        )

    def close_live_view(self) -> None:
        """End every /v1/events connection (close code 1001): a viewer must not hold a
        graceful shutdown open, and `tail` reconnects to the next proxy."""
        self.live.broadcast.close()

    async def shutdown(self) -> None:
        self.close_live_view()
        if self.hosts is not None:
            await self.hosts.aclose()  # every host's admin and chat clients
            self.client = None
            self.chat = None

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        # The lifespan's nursery runs the hosts' monitor (several hosts only) until shutdown.
        async with trio.open_nursery() as nursery:
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    try:
                        await self.startup()
                    except ConfigError as exc:
                        await send({"type": "lifespan.startup.failed", "message": str(exc)})
                        return
                    if len(self.pool.table) > 1:
                        await nursery.start(self.pool.monitor, self.live.hosts_changed)
                    if multiprocessing.parent_process() is not None:
                        nursery.start_soon(watch_parent, os.getppid())
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    nursery.cancel_scope.cancel()
                    await self.shutdown()
                    await send({"type": "lifespan.shutdown.complete"})
                    return

    # -- HTTP ----------------------------------------------------------------------

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = _new_request_id()
        send = _with_request_id(send, request_id)
        server = scope.get("server")
        if server and not self._exposure_warned:
            self.note_address(str(server[0]))
        path = scope["path"]
        method = scope["method"]
        methods = ROUTES.get(path.rstrip("/") or "/")
        try:
            self._check_browser_access(scope)
            if methods is None:
                raise NotFound(f"no route for {clip(method)} {clip(path)}")
            handler = methods.get(method) or (methods.get("GET") if method == "HEAD" else None)
            if handler is None:
                raise MethodNotAllowed(f"{clip(method)} is not allowed on {clip(path)}; use {', '.join(methods)}")
            if path.startswith("/v1/"):
                self._authenticate(scope)
            if method == "HEAD":
                send = _without_body(send)
            with request_context(request_id, header(scope, b"traceparent")):
                await handler(self, scope, receive, send, request_id)
        except ClientDisconnected:
            log.info("request %s: client left while sending its request", request_id)
        except ProxyError as exc:
            if not isinstance(exc, NotFound):
                log.info("request %s: %s %s: %s", request_id, clip(method), clip(path), exc.message)
            await send_error(send, exc, headers=[("request-id", request_id)])
        except Exception as exc:  # a bug of ours: still an answer in Anthropic's shape, and a log
            log.exception("request %s: internal error", request_id)
            error = ProxyError(f"internal error in the proxy: {type(exc).__name__}")
            try:
                await send_error(send, error, headers=[("request-id", request_id)])
            except Exception:  # the response had started: the server ends the connection
                pass

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The one WebSocket route, ``/v1/events``; any other path is refused with a 404."""
        server = scope.get("server")
        if server and not self._exposure_warned:
            self.note_address(str(server[0]))
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        path = scope["path"].rstrip("/")
        try:
            self._check_browser_access(scope)
            if path != "/v1/events":
                raise NotFound(f"no WebSocket route at {clip(scope['path'])}; the live feed is /v1/events")
            self._authenticate(scope, query_key=True)
        except ProxyError as exc:
            log.info("WebSocket %s refused: %s", clip(scope["path"]), exc.message)
            await reject_handshake(scope, send, exc)
            return
        await serve_events(receive, send, self.live)

    def _check_browser_access(self, scope: Scope) -> None:
        """Refuse what a web page could send, as Ollama and Jupyter do: an ``Origin`` that is
        neither this proxy's own (the dashboard) nor allowed (a cross-site page), and, while
        no API key is set, a ``Host`` that is not a loopback name, an IP address or allowed
        (DNS rebinding: a name the attacker controls, resolving to this machine). Claude
        Code and other programs send no ``Origin``."""
        if self.settings is None:
            return
        host = header(scope, b"host")
        origin = header(scope, b"origin")
        if origin is not None and not origin_allowed(origin, host, self.settings.allowed_origins):
            raise Forbidden(
                f"requests from web pages at {clip(origin)} are not allowed: a page on another site"
                " must not use this proxy. To allow that origin, add it to PROXY_ALLOWED_ORIGINS"
                " (allowed_origins)"
            )
        if host is not None and not self.settings.api_key and not host_allowed(host, self.settings.allowed_hosts):
            raise Forbidden(
                f"Host {clip(host)} is not a name of this proxy (protection against DNS rebinding):"
                " use its IP address or localhost, add the name to PROXY_ALLOWED_HOSTS"
                " (allowed_hosts), or set an API key (--api-key)"
            )

    def _authenticate(self, scope: Scope, *, query_key: bool = False) -> None:
        """``query_key``: also take ``?api_key=`` (browsers cannot set a WebSocket's headers)."""
        expected = self.settings.api_key if self.settings is not None else None
        if not expected:
            return  # any key, or none, while no key is configured
        presented = header(scope, b"x-api-key")
        authorization = header(scope, b"authorization")
        if presented is None and authorization and authorization.lower().startswith("bearer "):
            presented = authorization[7:].strip()
        if presented is None and query_key:
            values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("api_key")
            presented = values[0] if values else None
        if presented is None or not secrets.compare_digest(presented.encode(), expected.encode()):
            raise AuthenticationError("invalid API key: present the proxy's key as x-api-key or a Bearer token")

    async def _read_json(self, scope: Scope, receive: Receive) -> tuple[Any, KnownTools | None, int]:
        """The parsed body, its tools when they are an array (see known_tools), and its size."""
        body = await read_body(
            receive,
            limit=self.settings.body_limit,
            timeout=self.settings.body_timeout,
            declared=header(scope, b"content-length"),
        )
        raw, known_tools = await self._off_loop(len(body), self._parse_json, body)
        return raw, known_tools, len(body)

    def _parse_json(self, body: bytes) -> tuple[Any, KnownTools | None]:
        """Parse, refusing what Python accepts and JSON (or Ollama) does not: NaN, Infinity,
        and nesting deeper than DEPTH_LIMIT (which would overflow a later recursive walk)."""
        try:
            raw, known_tools = parse_request_body(body, self.known_tools)
        except ValueError as exc:
            raise RequestError(f"request body is not valid JSON: {exc}") from None
        except RecursionError:
            raise RequestError(f"request body is nested too deeply (limit {DEPTH_LIMIT})") from None
        members = raw.items() if isinstance(raw, dict) else [(None, raw)]
        for key, value in members:
            if key == "tools" and known_tools is not None and value is known_tools.tools:
                if known_tools.depth_checked:
                    continue  # the same tools as a recent request: checked then
                if not too_deep(value, DEPTH_LIMIT - 1):
                    known_tools.depth_checked = True
                    continue
            elif not too_deep(value, DEPTH_LIMIT - 1):
                continue
            where = f"{clip(key)}: " if key is not None else ""
            raise RequestError(f"request body is nested too deeply ({where}limit {DEPTH_LIMIT})")
        return raw, known_tools

    async def _off_loop(self, size: int, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)``: on the event loop for a body under OFF_LOOP_BYTES, else in a worker
        thread, so one huge request cannot stall every other request while it is parsed,
        checked and translated (bench/bench_translate.py measures both)."""
        if size < OFF_LOOP_BYTES:
            return fn(*args)
        return await trio.to_thread.run_sync(functools.partial(fn, *args), limiter=self._cpu_limiter)

    # -- handlers ------------------------------------------------------------------

    async def messages(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        await handle_messages(self, scope, receive, send, request_id)

    async def count_tokens(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        body, known_tools, size = await self._read_json(scope, receive)
        validate_count_request(body)
        model = body.get("model")
        estimate = await self._off_loop(size, functools.partial(estimate_tokens, known_tools=known_tools), body)
        if isinstance(model, str):
            ollama_model = resolve_model(model, self.settings.model_map, self.settings.default_model)
            estimate = self.calibration.apply(ollama_model, estimate)
        await send_json(send, 200, {"input_tokens": estimate})

    async def models(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        """Anthropic's model list: the model map's named keys and Ollama's installed models."""
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        limit, after_id, before_id = parse_list_query(query)
        with trio.move_on_after(10):  # the one shared client has no read timeout of its own
            installed = await self.pool.installed_models()
            entries = model_entries(installed, self.settings.model_map)
            await send_json(send, 200, paginate(entries, limit=limit, after_id=after_id, before_id=before_id))
            return
        raise UpstreamTimeout(f"Ollama at {', '.join(self.pool.urls)} did not list its models within 10 s")

    async def root(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        await send_response(
            send, 200, b"claude-code-ollama-proxy is running\n", content_type="text/plain; charset=utf-8"
        )

    async def health(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        versions = await self.pool.versions()
        hosts = self.pool.snapshot()
        for row in hosts:
            row["reachable"] = versions[row["url"]] is not None
            row["version"] = versions[row["url"]]
        reachable = sum(row["reachable"] for row in hosts)
        first = hosts[0]
        status = "ok" if reachable == len(hosts) else ("degraded" if reachable else "ollama_unreachable")
        await send_json(
            send,
            200,
            {
                "status": status,
                "proxy_version": __version__,
                # the first host, as before several hosts were possible
                "ollama": {
                    "url": first["url"],
                    "url_origin": describe_source(self.settings, "ollama_url"),
                    "reachable": first["reachable"],
                    "version": first["version"],
                },
                "hosts": hosts,
            },
        )

    async def events_over_http(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        raise RequestError(
            "/v1/events is a WebSocket: connect with a WebSocket client, e.g."
            " `claude-code-ollama-proxy tail`, or open /dashboard in a browser"
        )

    async def dashboard(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        """The live view's one self-contained page (docs/LIVE.md). It holds no data: it
        reads /v1/events, which checks the key."""
        await send_response(
            send,
            200,
            dashboard_page(),
            content_type="text/html; charset=utf-8",
            headers=[
                # Nothing but this origin: the page works offline and leaks nothing.
                ("content-security-policy",
                 "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline';"
                 " connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'"),
                ("cache-control", "no-cache"),
                ("x-content-type-options", "nosniff"),
            ],
        )


#: how often a Hypercorn worker checks that the process that started it is still there
PARENT_CHECK_INTERVAL = 1.0


async def watch_parent(parent: int) -> None:
    """In a Hypercorn worker process: end this process when its parent is gone.

    Hypercorn's parent process tells its workers to stop through an event it sets on
    SIGTERM; killed outright (SIGKILL, OOM killer), it sets nothing, and the worker would
    go on serving the port, unseen by whoever restarts the service. The worker is then
    re-parented: that is the sign. It ends at once, as a SIGTERM would end it — every
    open connection closes, which stops Ollama's generations like a client disconnect.
    """
    while os.getppid() == parent:
        await trio.sleep(PARENT_CHECK_INTERVAL)
    log.warning(
        "the Hypercorn parent process (pid %d) is gone; this worker (pid %d) stops serving and exits",
        parent, os.getpid(),
    )
    for handler in logging.getLogger().handlers:
        handler.flush()
    os.kill(os.getpid(), signal.SIGTERM)


@functools.cache
def dashboard_page() -> bytes:
    return resources.files("proxy.live").joinpath("dashboard.html").read_bytes()


#: path → method → handler
ROUTES: dict[str, dict[str, Handler]] = {
    "/": {"GET": ProxyApp.root},
    "/health": {"GET": ProxyApp.health},
    "/v1/messages": {"POST": ProxyApp.messages},
    "/v1/messages/count_tokens": {"POST": ProxyApp.count_tokens},
    "/v1/models": {"GET": ProxyApp.models},
    "/v1/events": {"GET": ProxyApp.events_over_http},
    "/dashboard": {"GET": ProxyApp.dashboard},
}

app = ProxyApp()
