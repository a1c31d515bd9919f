"""The ASGI application: ``hypercorn proxy.app:app --worker-class trio``.

Hand-written ASGI, no framework. The lifespan loads the settings (environment and config
file; the CLI passes its own) and opens the one shared Ollama client; each HTTP request is
routed by (method, path) to a handler. Every error leaves in Anthropic's shape.
"""

from __future__ import annotations

import functools
import logging
import secrets
from importlib import resources
from typing import Any, Awaitable, Callable
from urllib.parse import parse_qs

import httpx
import trio

from . import __version__
from .asgi import ClientDisconnected, Receive, Scope, Send, header, read_body, send_error, send_json, send_response
from .broadcast import Broadcast
from .capabilities import CapabilityCache
from .config import ConfigError, is_loopback_host, load_settings
from .errors import AuthenticationError, MethodNotAllowed, NotFound, ProxyError, RequestError, UpstreamTimeout
from .events_socket import reject_handshake, serve_events
from .live import LiveRequests
from .logs import configure_logging, request_context
from .ollama_admin import list_models
from .ollama_chat import OllamaChat, open_chat
from .protocol.model_list import model_entries, paginate, parse_list_query
from .protocol.models import resolve_model
from .protocol.context import ContextPolicy, choose_num_ctx, looks_truncated
from .protocol.known_tools import KnownTools, ToolsCache, parse_request_body
from .protocol.tokens import Calibration, estimate_tokens
from .protocol.translate import translate_request, validate_request
from .relay import RelaySettings, serve_messages
from .request_log import RequestRecord, log_request_bodies, log_request_end, log_request_start
from .stream.translator import ResponseTranslator
from .upstream import open_client, probe_version

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


def _keep_alive(value: str) -> str | int:
    """Ollama takes a duration string ("30m") or a number of seconds (-1: forever)."""
    try:
        return int(value)
    except ValueError:
        return value


#: Tells the client its thinking request was dropped because the model cannot think.
THINKING_DROPPED_HEADER = ("x-proxy-thinking", "dropped")


def _new_request_id() -> str:
    return f"req_{secrets.token_hex(12)}"


class ProxyApp:
    """The proxy as an ASGI 3 application. ``settings=None`` reads them at startup.

    ``console_log=False`` keeps log records off stdout (the ``claude`` launcher: Claude
    Code owns the terminal); they still go to the log file when one is set.
    """

    def __init__(self, settings: Any = None, *, console_log: bool = True) -> None:
        self._given_settings = settings
        self._console_log = console_log
        self.settings: Any = None
        self.client: httpx.AsyncClient | None = None
        #: Ollama's /api/chat (the hot path); ``client`` serves the admin calls
        self.chat: OllamaChat | None = None
        self.capabilities: CapabilityCache | None = None
        self.relay_settings = RelaySettings()
        #: recent requests' tools, so a session's repeated tools are parsed and translated once
        self.known_tools = ToolsCache()
        #: the live view (GET /v1/events, tail, the dashboard); replaced at startup
        self.live = LiveRequests(Broadcast())

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
        configure_logging(
            settings.log_level, log_file=settings.log_file, quiet=settings.quiet, console=self._console_log
        )
        self.settings = settings
        if not settings.api_key and not is_loopback_host(settings.host):
            log.warning(
                "listening on %s without an API key: anyone who can reach this address can use"
                " your Ollama through the proxy; set --api-key (env PROXY_API_KEY)",
                settings.host,
            )
        self.relay_settings = RelaySettings(
            first_content_timeout=settings.first_content_timeout,
            idle_timeout=settings.idle_timeout,
            commit_grace=settings.commit_grace,
            ping_interval=settings.ping_interval,
            busy_retries=max(1, settings.busy_retries),
            busy_retry_window=settings.busy_retry_window,
        )
        self.live = LiveRequests(Broadcast(buffer=settings.events_buffer))
        self.client = open_client(settings.ollama_url, connect_timeout=settings.connect_timeout)
        self.chat = open_chat(settings.ollama_url, connect_timeout=settings.connect_timeout)
        self.capabilities = CapabilityCache(self.client)
        self.calibration = Calibration()
        #: the largest num_ctx each model got so far: it only grows (a change reloads the model)
        self.num_ctx_high_water: dict[str, int] = {}
        log.info("proxy ready: Ollama at %s, default model %s", settings.ollama_url, settings.default_model)

    def close_live_view(self) -> None:
        """End every /v1/events connection (close code 1001): a viewer must not hold a
        graceful shutdown open, and `tail` reconnects to the next proxy."""
        self.live.broadcast.close()

    async def shutdown(self) -> None:
        self.close_live_view()
        if self.client is not None:
            with trio.move_on_after(5, shield=True):
                await self.client.aclose()
            self.client = None
        if self.chat is not None:
            with trio.move_on_after(5, shield=True):
                await self.chat.aclose()
            self.chat = None

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except ConfigError as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # -- HTTP ----------------------------------------------------------------------

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = _new_request_id()
        path = scope["path"]
        method = scope["method"]
        methods = ROUTES.get(path.rstrip("/") or "/")
        try:
            if methods is None:
                raise NotFound(f"no route for {method} {path}")
            handler = methods.get(method) or (methods.get("GET") if method == "HEAD" else None)
            if handler is None:
                raise MethodNotAllowed(f"{method} is not allowed on {path}; use {', '.join(methods)}")
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
                log.info("request %s: %s %s: %s", request_id, method, path, exc.message)
            await send_error(send, exc, headers=[("request-id", request_id)])

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The one WebSocket route, ``/v1/events``; any other path is refused with a 404."""
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        path = scope["path"].rstrip("/")
        try:
            if path != "/v1/events":
                raise NotFound(f"no WebSocket route at {scope['path']}; the live feed is /v1/events")
            self._authenticate(scope, query_key=True)
        except ProxyError as exc:
            log.info("WebSocket %s refused: %s", scope["path"], exc.message)
            await reject_handshake(scope, send, exc)
            return
        await serve_events(receive, send, self.live)

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

    async def _read_json(self, receive: Receive) -> tuple[Any, KnownTools | None]:
        """The parsed body, and its tools when they are an array (see known_tools)."""
        body = await read_body(receive, limit=self.settings.body_limit)
        try:
            return parse_request_body(body, self.known_tools)
        except ValueError as exc:
            raise RequestError(f"request body is not valid JSON: {exc}") from None

    # -- handlers ------------------------------------------------------------------

    async def messages(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        facts: dict[str, Any] = {}
        try:
            await self._messages(receive, send, request_id, facts)
        except ProxyError as exc:
            # Refused before it reached Ollama (the relay answers every later failure
            # itself): the live view shows it too.
            self.live.rejected(request_id, exc, model=facts.get("model"))
            raise

    async def _messages(self, receive: Receive, send: Send, request_id: str, facts: dict[str, Any]) -> None:
        raw, known_tools = await self._read_json(receive)
        if isinstance(raw, dict) and isinstance(raw.get("model"), str):
            facts["model"] = raw["model"]  # for the live view, even when the body is refused
        body = validate_request(raw)
        settings = self.settings
        ollama_model = resolve_model(body["model"], settings.model_map, settings.default_model)
        capabilities = await self.capabilities.get(ollama_model)
        native_tools = capabilities.tools or not body.get("tools")
        if not native_tools and not settings.tool_emulation:
            callers = await self.capabilities.models_that("tools")
            raise RequestError(
                f"{ollama_model} cannot call tools, and tool_emulation is off. Models installed that can: "
                + (", ".join(callers) if callers else "none (try `ollama pull qwen3:8b`)")
            )
        request = translate_request(
            body,
            ollama_model=ollama_model,
            can_think=capabilities.thinking,
            sequential_tools=settings.sequential_tools,
            native_tools=native_tools,
            known_tools=known_tools,
        )
        if not native_tools:
            log.info("request %s: %s has no native tool calling; tools are emulated in the prompt", request_id, ollama_model)
        headers: list[tuple[str, str]] = []
        if request.thinking_dropped:
            await self._thinking_dropped(ollama_model, headers)

        def revise_refused(ollama_error: bytes) -> dict[str, Any] | None:
            """Ollama refused with a 400 what our cached capabilities allowed: believe
            Ollama, correct the cache, and return the body to try at once (None: no fix).
            Each fix removes what was refused, so neither can repeat."""
            current = request.ollama
            if b"does not support thinking" in ollama_error and current.get("think"):
                self.capabilities.contradicted(ollama_model, "thinking", "Ollama says it does not support thinking")
                self.capabilities.warn_thinking_dropped(ollama_model)
                headers.append(THINKING_DROPPED_HEADER)
                return {k: v for k, v in current.items() if k != "think"}
            if b"does not support tools" in ollama_error and current.get("tools") and settings.tool_emulation:
                self.capabilities.contradicted(ollama_model, "tools", "Ollama says it does not support tools")
                log.warning(
                    "request %s: Ollama says %s cannot call tools; its tools are described in the"
                    " prompt instead (tool emulation)", request_id, ollama_model,
                )
                emulated = translate_request(
                    body, ollama_model=ollama_model, can_think=capabilities.thinking,
                    sequential_tools=settings.sequential_tools, native_tools=False,
                    known_tools=known_tools,
                ).ollama
                for key in ("options", "keep_alive", "think"):  # as decided for this request
                    if key in current:
                        emulated[key] = current[key]
                    else:
                        emulated.pop(key, None)
                return emulated
            return None

        raw_estimate = estimate_tokens(body, known_tools=known_tools)
        estimate = self.calibration.apply(ollama_model, raw_estimate)
        num_ctx = choose_num_ctx(
            estimate=estimate,
            max_tokens=body["max_tokens"],
            model_max=capabilities.context_length,
            policy=ContextPolicy(pinned=settings.num_ctx, maximum=settings.max_num_ctx),
            high_water=self.num_ctx_high_water.get(ollama_model, 0),
        )
        if num_ctx > self.num_ctx_high_water.get(ollama_model, 0):
            self.num_ctx_high_water[ollama_model] = num_ctx
        request.ollama["options"]["num_ctx"] = num_ctx
        if settings.keep_alive:
            request.ollama["keep_alive"] = _keep_alive(settings.keep_alive)
        translator = ResponseTranslator(client_model=body["model"], input_tokens=estimate, tools=request.tools)
        record = RequestRecord(
            request_id=request_id,
            client_model=body["model"],
            ollama_model=ollama_model,
            stream=request.stream,
            started=trio.current_time(),
            estimated_input_tokens=translator.estimated_input_tokens,
            messages=len(request.ollama["messages"]),
            tools=len(request.ollama.get("tools") or ()),
        )
        log_request_start(record)
        log_request_bodies(record, body, request.ollama)
        watch = self.live.watch(
            request_id=request_id,
            model=body["model"],
            ollama_model=ollama_model,
            stream=request.stream,
            messages=record.messages,
            tools=record.tools,
            input_tokens=estimate,
            num_ctx=num_ctx,
            now=record.started,
        )
        outcome: dict[str, Any] | None = None
        try:
            outcome = await serve_messages(
                receive,
                send,
                client=self.chat,
                settings=self.relay_settings,
                request=request,
                translator=translator,
                request_id=request_id,
                headers=headers,
                revise_refused=revise_refused,
                watch=watch,
            )
        finally:
            if outcome is None:  # cancelled from outside: the server's shutdown ran out of grace
                watch.finish(
                    outcome={"cancelled": True, "phase": "shutdown", "status": 499},
                    translator=translator,
                    now=trio.current_time(),
                )
        self._learn_prompt_size(ollama_model, raw_estimate, translator.input_tokens, num_ctx)
        ended = trio.current_time()
        log_request_end(record, ended=ended, outcome=outcome, translator=translator)
        watch.finish(outcome=outcome, translator=translator, now=ended)

    def _learn_prompt_size(self, model: str, raw_estimate: int, actual: int, num_ctx: int) -> None:
        """Calibrate the estimator from Ollama's real count; warn when the prompt was cut."""
        if not actual:
            return
        if looks_truncated(actual, num_ctx):
            log.warning(
                "%s: Ollama evaluated %d prompt tokens with num_ctx %d (estimate %d): the prompt was"
                " probably truncated; raise max_num_ctx or use a model with a longer context",
                model, actual, num_ctx, raw_estimate,
            )
            return
        self.calibration.observe(model, raw_estimate, actual)

    async def _thinking_dropped(self, model: str, headers: list[tuple[str, str]]) -> None:
        """The client asked for thinking from a model that cannot think: drop it and say so
        in a header, or (strict_thinking) refuse with a 400 naming the models that can."""
        if self.settings.strict_thinking:
            thinkers = await self.capabilities.models_that("thinking")
            raise RequestError(
                f"{model} cannot think, and strict_thinking is on. Models installed that can think: "
                + (", ".join(thinkers) if thinkers else "none (try `ollama pull qwen3:8b`)")
            )
        self.capabilities.warn_thinking_dropped(model)
        headers.append(THINKING_DROPPED_HEADER)

    async def count_tokens(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        body, known_tools = await self._read_json(receive)
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            raise RequestError("messages: field required (an array)")
        model = body.get("model")
        estimate = estimate_tokens(body, known_tools=known_tools)
        if isinstance(model, str):
            ollama_model = resolve_model(model, self.settings.model_map, self.settings.default_model)
            estimate = self.calibration.apply(ollama_model, estimate)
        await send_json(send, 200, {"input_tokens": estimate})

    async def models(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        """Anthropic's model list: the model map's named keys and Ollama's installed models."""
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        limit, after_id, before_id = parse_list_query(query)
        with trio.move_on_after(10):  # the one shared client has no read timeout of its own
            installed = await list_models(self.client)
            entries = model_entries(installed, self.settings.model_map)
            await send_json(send, 200, paginate(entries, limit=limit, after_id=after_id, before_id=before_id))
            return
        raise UpstreamTimeout(f"Ollama at {self.settings.ollama_url} did not list its models within 10 s")

    async def root(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        await send_response(
            send, 200, b"claude-code-ollama-proxy is running\n", content_type="text/plain; charset=utf-8"
        )

    async def health(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        version = await probe_version(self.client)
        url = self.settings.ollama_url
        await send_json(
            send,
            200,
            {
                "status": "ok" if version else "ollama_unreachable",
                "proxy_version": __version__,
                "ollama": {"url": url, "reachable": version is not None, "version": version},
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


@functools.cache
def dashboard_page() -> bytes:
    return resources.files("proxy").joinpath("dashboard.html").read_bytes()


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
