"""A fake Ollama HTTP server on trio + h11, faithful to WIRE.md and able to misbehave on purpose.

Theory of operation
-------------------
``serve`` binds 127.0.0.1:0 and runs one task per connection, all inside its own nursery, so
nothing outlives the fake. Each connection is an h11 state machine: read a whole request,
record it in ``requests``, answer, ``start_next_cycle`` (keep-alive), repeat.

``/api/chat`` plays a *script*: a list of actions (``Status``, ``Chunk``, ``Line``, ``Raw``,
``Sleep``, ``Stall``, ``Reset``, ``Close``) executed in order. The script is the next one
queued with :meth:`FakeOllama.script_chat` (FIFO); else the one ``on_chat`` returns; else the
fake checks the request the way Ollama does (400/404) and plays ``default_script``.

While a script plays, a watcher task owns ``receive_some`` on the socket: the request was read
whole, so anything but pipelined bytes means the client left (EOF or reset). The watcher
records a :class:`Disconnect` and cancels the script's scope at once — before any byte was
sent, mid-stream, while sleeping or stalled — just as real Ollama stops generating when its
connection closes. A write failing on a gone client is recorded the same way.

Limits: answers always stream NDJSON (the proxy always asks ``stream: true``); a script that
breaks HTTP (say, bad ``Status.headers``) or an ``on_chat`` that raises crashes ``serve``, so
the test fails loudly instead of hanging.

Usage::

    fake = FakeOllama(models=[Model("qwen3:8b", capabilities=("completion", "tools", "thinking"))])
    async with trio.open_nursery() as nursery:
        await nursery.start(fake.serve)
        fake.script_chat([Chunk(content="Hi"), Stall()])
        ...
        nursery.cancel_scope.cancel()
"""

from __future__ import annotations

import dataclasses
import datetime
import email.utils
import enum
import hashlib
import ipaddress
import json
import re
import socket
import struct
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeAlias

import h11
import trio

__all__ = [
    "FakeOllama", "Model", "Recorded", "Disconnect",
    "Action", "Status", "Chunk", "Line", "Raw", "Burst", "Await", "Sleep", "Stall", "Reset", "Close",
    "text_stream", "tool_call", "check_script",
]

_RECEIVE_SIZE = 65536


# -- script actions ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Status:
    """The response head. With ``body`` (bytes, str, or a dict/list sent as JSON) it is the
    whole response, sent with a Content-Length: use it for Ollama's ``{"error": …}`` answers.
    Without ``body`` the head announces a chunked body that the following actions write.
    ``headers`` are added to (and override, by name) the defaults."""

    code: int = 200
    headers: Mapping[str, str] | None = None
    body: bytes | str | dict | list | None = None


@dataclasses.dataclass(frozen=True, slots=True, init=False)
class Chunk:
    """One NDJSON line shaped like Ollama's ``/api/chat`` chunk.

    ``done=True`` adds the four durations (in ns) next to ``done_reason`` and the counts. Any
    field given as ``None`` is left out — in ``message`` too (``content=None`` drops it).
    ``**extra`` adds or overrides top-level fields; ``total_duration=None`` removes one.
    """

    content: str | None
    thinking: str | None
    tool_calls: list[dict] | None
    done: bool
    done_reason: str | None
    prompt_eval_count: int | None
    eval_count: int | None
    extra: Mapping[str, Any]

    def __init__(
        self,
        content: str | None = "",
        thinking: str | None = None,
        tool_calls: list[dict] | None = None,
        done: bool = False,
        done_reason: str | None = None,
        prompt_eval_count: int | None = None,
        eval_count: int | None = None,
        **extra: Any,
    ) -> None:
        for name, value in (
            ("content", content), ("thinking", thinking), ("tool_calls", tool_calls), ("done", done),
            ("done_reason", done_reason), ("prompt_eval_count", prompt_eval_count),
            ("eval_count", eval_count), ("extra", dict(extra)),
        ):
            object.__setattr__(self, name, value)

    def to_json(self, model: str, created_at: str) -> dict[str, Any]:
        """The chunk as Ollama would send it for ``model`` (keys in Ollama's order)."""
        message = {"role": "assistant", "content": self.content, "thinking": self.thinking,
                   "tool_calls": self.tool_calls}
        obj: dict[str, Any] = {"model": model, "created_at": created_at,
                               "message": {k: v for k, v in message.items() if v is not None}}
        # Ollama's key order: done_reason, done, then the metrics; zero metrics are omitted
        # there, here only what the test gave as None.
        prompt, output = self.prompt_eval_count, self.eval_count
        obj["done_reason"] = self.done_reason
        obj["done"] = self.done
        if self.done:
            obj.update(
                total_duration=1_000_000 * (1 + (prompt or 0) + 20 * (output or 0)),
                load_duration=500_000,
                prompt_eval_count=prompt,
                prompt_eval_duration=1_000_000 * (prompt or 0),
                eval_count=output,
                eval_duration=20_000_000 * (output or 0),
            )
        else:
            obj.update(prompt_eval_count=prompt, eval_count=output)
        obj.update(self.extra)
        return {k: v for k, v in obj.items() if v is not None}


@dataclasses.dataclass(frozen=True, slots=True)
class Line:
    """Any JSON value as one NDJSON line, e.g. ``Line({"error": "boom"})``."""

    obj: Any


@dataclasses.dataclass(frozen=True, slots=True)
class Raw:
    """Body bytes exactly as given, in one HTTP chunk: split lines, garbage, half a UTF-8
    character. Several ``Raw`` actions split a line at any byte."""

    data: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class Burst:
    """Several lines, each its own HTTP chunk (as Ollama writes a token), all in one socket
    write: what a reader finds when tokens come faster than it reads."""

    actions: tuple[Chunk | Line | Raw, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Await:
    """Wait for ``until()`` (an async callable) before the next action: lockstep with the
    test, e.g. "until the proxy has written the previous chunk"."""

    until: Callable[[], Awaitable[Any]]


@dataclasses.dataclass(frozen=True, slots=True)
class Sleep:
    """Pause (``trio.sleep``, so a MockClock drives it)."""

    seconds: float


@dataclasses.dataclass(frozen=True, slots=True)
class Stall:
    """Wait until the client hangs up. Nothing may follow it."""


@dataclasses.dataclass(frozen=True, slots=True)
class Reset:
    """Abort the TCP connection (SO_LINGER 0, then close: the client sees a reset) without
    ending the body. Nothing may follow it."""


@dataclasses.dataclass(frozen=True, slots=True)
class Close:
    """Close the connection (FIN, no reset) without ending the chunked body: a truncated
    stream, or no response at all when nothing was sent yet. Nothing may follow it."""


Action: TypeAlias = Status | Chunk | Line | Raw | Burst | Await | Sleep | Stall | Reset | Close
_CONTENT = (Chunk, Line, Raw, Burst)
_TERMINAL = (Stall, Reset, Close)


def check_script(actions: Iterable[Action]) -> list[Action]:
    """Return ``actions`` as a list, or raise ``ValueError`` for a script that cannot be
    played over HTTP: a ``Status`` after the body started or twice, or an action after one
    that ends the response (``Status`` with a body, ``Stall``, ``Reset``, ``Close``)."""
    script = list(actions)
    head_seen = False
    for position, action in enumerate(script):
        if not isinstance(action, Action):
            raise ValueError(f"action {position} is not a script action: {action!r}")
        if position and _ends_response(script[position - 1]):
            raise ValueError(f"action {position} ({action!r}) follows {script[position - 1]!r} and would never run")
        if isinstance(action, Status):
            if head_seen:
                raise ValueError(f"action {position}: {action!r} comes after the response head was sent")
            head_seen = True
        elif isinstance(action, _CONTENT):
            head_seen = True  # an implicit 200 head goes first
    return script


def _ends_response(action: Action) -> bool:
    return isinstance(action, _TERMINAL) or (isinstance(action, Status) and action.body is not None)


def text_stream(
    text: str,
    *,
    thinking: str | None = None,
    tool_calls: list[dict] | None = None,
    prompt_eval_count: int | None = 10,
    eval_count: int | None = 5,
    done_reason: str | None = "stop",
    pieces: int = 3,
) -> list[Action]:
    """A successful answer: ``thinking`` in about ``pieces`` chunks, then ``text`` in about
    ``pieces`` chunks, then the final ``done`` chunk carrying ``tool_calls`` (if given) and
    the counts. An empty ``text`` sends no content chunk."""
    actions: list[Action] = [Chunk(thinking=part) for part in _split(thinking or "", pieces)]
    actions += [Chunk(content=part) for part in _split(text, pieces)]
    actions.append(
        Chunk(
            tool_calls=tool_calls,
            done=True,
            done_reason=done_reason,
            prompt_eval_count=prompt_eval_count,
            eval_count=eval_count,
        )
    )
    return actions


def tool_call(name: str, arguments: dict[str, Any], *, index: int | None = 0, id: str | None = "call_0") -> dict:
    """One entry of ``message.tool_calls`` as Ollama ≥ 0.12 sends it; ``index=None`` or
    ``id=None`` leaves the field out, like older servers."""
    function: dict[str, Any] = {"index": index, "name": name, "arguments": arguments}
    call: dict[str, Any] = {"id": id, "function": {k: v for k, v in function.items() if v is not None}}
    return {k: v for k, v in call.items() if v is not None}


def _split(text: str, pieces: int) -> list[str]:
    if not text:
        return []
    size = max(1, -(-len(text) // max(1, pieces)))
    return [text[i : i + size] for i in range(0, len(text), size)]


# -- models and records -----------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Model:
    """An installed model. ``family`` (also the ``general.architecture``) defaults to the
    name before the tag; ``parameter_size`` to the tag when it looks like ``8b``."""

    name: str
    capabilities: tuple[str, ...] = ("completion", "tools")
    context_length: int = 40960
    family: str | None = None
    parameter_size: str | None = None
    quantization_level: str = "Q4_K_M"
    size: int = 5_000_000_000
    #: the chat template /api/show returns (None: a generic one naming no tool-call markers)
    template: str | None = None

    @property
    def architecture(self) -> str:
        return self.family or _normalize(self.name).split(":")[0].rsplit("/", 1)[-1]

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.name.encode()).hexdigest()

    def details(self) -> dict[str, Any]:
        tag = _normalize(self.name).split(":")[1]
        size = self.parameter_size or (tag.upper() if re.fullmatch(r"\d+(\.\d+)?[bm]", tag) else "8.0B")
        return {
            "parent_model": "", "format": "gguf", "family": self.architecture,
            "families": [self.architecture], "parameter_size": size,
            "quantization_level": self.quantization_level,
        }


@dataclasses.dataclass(frozen=True, slots=True)
class Recorded:
    """One request as received. ``headers`` have lower-case names (repeats joined with
    ", "); ``body`` is the parsed JSON object, or None when the body is not one;
    ``connection`` numbers the TCP connection it came on (from 0)."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None
    raw_body: bytes
    query: str = ""
    connection: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class Disconnect:
    """The client hung up while its ``/api/chat`` script was playing.

    ``request_index`` indexes ``chat_requests`` (the ``script_index`` ``on_chat`` got);
    ``at`` is ``trio.current_time()`` when noticed; ``during`` is what the script was doing
    — ``"write"``, ``"sleep"`` or ``"stall"`` — and whether the head had been sent:
    ``"stall-before-head"``, ``"write-after-head"``, … ``body_bytes`` counts the body bytes
    handed to the socket so far."""

    request_index: int
    at: float
    during: str
    body_bytes: int = 0


class _Ending(enum.Enum):
    """How a chat response ended, i.e. what becomes of its connection."""

    COMPLETE = "complete"  # body ended properly: keep-alive may go on
    GONE = "gone"  # the client left
    RESET = "reset"  # the script asked for a TCP reset
    CLOSE = "close"  # the script asked for a plain close


@dataclasses.dataclass(slots=True)
class _ChatRun:
    """The progress of one playing script, read by the watcher when the client leaves."""

    index: int
    model: str
    activity: str = "write"
    head_sent: bool = False
    body_bytes: int = 0
    complete: bool = False
    gone: bool = False

    @property
    def during(self) -> str:
        return f"{self.activity}-{'after' if self.head_sent else 'before'}-head"


def _normalize(name: str) -> str:
    name = name.lower()
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def _now_rfc3339() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat().replace("+00:00", "Z")


def _is_local_host(host_header: str) -> bool:
    """Whether Ollama bound to loopback serves this ``Host``: a loopback IP or localhost."""
    host = host_header.strip().lower()
    if host.startswith("["):  # [::1]:11434
        host = host[1 : host.find("]")] if "]" in host else host
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def _json_object(raw: bytes) -> dict[str, Any] | None:
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _go_type(value: Any) -> str:
    """The JSON type name Go's decoder puts in its errors."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "string", list: "array", dict: "object"}.get(type(value), "null")


def _chat_request_error(body: Any) -> str | None:
    """The message of the 400 Ollama would give while decoding this ``/api/chat`` body, or
    None. Only what Go's decoder rejects: ``content`` not a string, ``arguments`` not an
    object, wrongly typed lists."""
    if not isinstance(body, dict):
        return f"json: cannot unmarshal {_go_type(body)} into Go value of type api.ChatRequest"

    def wrong(field: str, value: Any, go_type: str) -> str:
        return f"json: cannot unmarshal {_go_type(value)} into Go struct field ChatRequest.{field} of type {go_type}"

    if not isinstance(body.get("model", ""), str):
        return wrong("model", body["model"], "string")
    if not isinstance(body.get("stream", True), (bool, type(None))):
        return wrong("stream", body["stream"], "bool")
    messages = body.get("messages") or []
    if not isinstance(messages, list):
        return wrong("messages", messages, "[]api.Message")
    for message in messages:
        if not isinstance(message, dict):
            return wrong("messages", message, "api.Message")
        for field in ("role", "content", "thinking", "tool_name", "tool_call_id"):
            if message.get(field) is not None and not isinstance(message[field], str):
                return wrong(f"messages.{field}", message[field], "string")
        for image in message.get("images") or []:
            if not isinstance(image, str):
                return wrong("messages.images", image, "api.ImageData")
        for call in message.get("tool_calls") or []:
            arguments = (call.get("function") or {}).get("arguments") if isinstance(call, dict) else None
            if arguments is not None and not isinstance(arguments, dict):
                return wrong("messages.tool_calls.function.arguments", arguments, "api.ToolCallFunctionArguments")
    if not isinstance(body.get("tools") or [], list):
        return wrong("tools", body["tools"], "api.Tools")
    if not isinstance(body.get("options") or {}, dict):
        return wrong("options", body["options"], "map[string]interface {}")
    return None


# -- the server -------------------------------------------------------------------------


class FakeOllama:
    """A scriptable Ollama. Public state, for tests to read:

    ``port``/``url`` once serving; ``requests`` (every :class:`Recorded`), ``chat_requests``;
    ``disconnects``; ``open_connections`` and ``active_chats`` (now); ``loaded`` (model →
    ``num_ctx`` it was last loaded with, as ``/api/ps`` shows) and ``loads`` (each
    (model, num_ctx) load: a changed ``num_ctx`` reloads, like Ollama).

    Scripting: ``script_chat`` queues, ``on_chat(recorded, script_index) -> actions`` answers
    when the queue is empty, ``default_script`` plays when neither did (after the checks
    Ollama makes: bad JSON or types → 400, unknown model → 404, a missing capability → 400).
    """

    def __init__(
        self,
        models: Iterable[Model] = (),
        version: str = "0.12.6",
        *,
        default_num_ctx: int = 4096,
    ) -> None:
        self.models: list[Model] = list(models)
        self.version = version
        self.default_num_ctx = default_num_ctx
        self.port = 0
        self.url = ""
        self.requests: list[Recorded] = []
        self.disconnects: list[Disconnect] = []
        self.open_connections = 0
        self.active_chats = 0
        self.loaded: dict[str, int] = {}
        self.loads: list[tuple[str, int]] = []
        self.default_script: list[Action] = text_stream("Hello")
        self.on_chat: Callable[[Recorded, int], Iterable[Action]] | None = None
        self._queue: list[list[Action]] = []
        self._connections_seen = 0
        self._idle: set[trio.SocketStream] = set()
        self._chats_seen = 0
        self._changed = trio.Event()

    # -- for tests -------------------------------------------------------------------------

    @property
    def chat_requests(self) -> list[Recorded]:
        """The ``/api/chat`` requests, in order."""
        return [r for r in self.requests if r.path == "/api/chat"]

    @property
    def pending_scripts(self) -> int:
        """Queued scripts not yet used."""
        return len(self._queue)

    def script_chat(self, actions: Iterable[Action]) -> None:
        """Queue ``actions`` for the next ``/api/chat`` request that finds no earlier script.
        Raises ``ValueError`` for a script HTTP cannot carry (see :func:`check_script`)."""
        self._queue.append(check_script(actions))

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Return once ``predicate()`` is true; it is checked whenever the fake's state
        changes (requests, connections, chats, disconnects). No timeout: use ``fail_after``."""
        while not predicate():
            await self._changed.wait()

    async def wait_disconnected(self, count: int = 1) -> Disconnect:
        """Return the ``count``-th disconnect once that many have been seen."""
        await self.wait_until(lambda: len(self.disconnects) >= count)
        return self.disconnects[count - 1]

    @property
    def idle_connections(self) -> int:
        """Connections waiting for their next request."""
        return len(self._idle)

    async def close_idle_connections(self) -> int:
        """Close every connection waiting for its next request, as a server's idle timeout
        does (the client is not told): return how many were closed."""
        idle, self._idle = list(self._idle), set()
        for stream in idle:
            await stream.aclose()
        return len(idle)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen on 127.0.0.1, port 0; set ``port`` and ``url``; serve until cancelled."""
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, self._serve_connection, listeners)
            task_status.started()

    # -- one connection --------------------------------------------------------------------

    async def _serve_connection(self, stream: trio.SocketStream) -> None:
        connection_id = self._connections_seen
        self._connections_seen += 1
        self.open_connections += 1
        self._notify()
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                self._idle.add(stream)
                self._notify()
                try:
                    received = await self._read_request(stream, conn)
                finally:
                    self._idle.discard(stream)
                if received is None:
                    return
                ending = await self._respond(stream, conn, *received, connection_id)
                if ending is _Ending.RESET:
                    # Linger 0: close() sends RST and drops unsent data.
                    stream.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                if ending is not _Ending.COMPLETE:
                    return
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    return  # Connection: close, or HTTP/1.0
                conn.start_next_cycle()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return  # the client left between requests or during a non-chat answer
        except h11.RemoteProtocolError as exc:
            await self._send_bad_request(stream, conn, exc)
        finally:
            self.open_connections -= 1
            self._notify()
            with trio.move_on_after(1, shield=True):
                await stream.aclose()

    async def _read_request(
        self, stream: trio.SocketStream, conn: h11.Connection
    ) -> tuple[h11.Request, bytes] | None:
        """The next request and its whole body, or None when the client closed first."""
        request = await self._next_event(stream, conn)
        if isinstance(request, h11.ConnectionClosed):
            return None
        assert isinstance(request, h11.Request), request
        parts = []
        while True:
            event = await self._next_event(stream, conn)
            if isinstance(event, h11.Data):
                parts.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                return request, b"".join(parts)
            else:
                return None  # closed in the middle of the body

    @staticmethod
    async def _next_event(stream: trio.SocketStream, conn: h11.Connection) -> Any:
        while True:
            event = conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            conn.receive_data(await stream.receive_some(_RECEIVE_SIZE))

    async def _send_bad_request(self, stream: trio.SocketStream, conn: h11.Connection, exc: h11.RemoteProtocolError) -> None:
        if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        try:
            await self._send_simple(stream, conn, exc.error_status_hint, b"400 Bad Request", "text/plain; charset=utf-8")
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.LocalProtocolError):
            pass

    @staticmethod
    async def _send(stream: trio.SocketStream, conn: h11.Connection, event: Any) -> int:
        data = conn.send(event)
        if data:
            await stream.send_all(data)
        return len(data or b"")

    async def _send_simple(
        self, stream: trio.SocketStream, conn: h11.Connection, status: int, body: bytes, content_type: str | None,
        *, head: bool = False,
    ) -> None:
        """A whole response with a Content-Length; ``head``: the head only (a HEAD request)."""
        headers = [("date", email.utils.formatdate(usegmt=True)), ("content-length", str(len(body)))]
        if content_type:
            headers.insert(0, ("content-type", content_type))
        await self._send(stream, conn, h11.Response(status_code=status, headers=headers))
        if body and not head:
            await self._send(stream, conn, h11.Data(data=body))
        await self._send(stream, conn, h11.EndOfMessage())

    async def _send_json(
        self, stream: trio.SocketStream, conn: h11.Connection, status: int, obj: Any, *, head: bool = False
    ) -> None:
        await self._send_simple(stream, conn, status, _json_bytes(obj), "application/json; charset=utf-8", head=head)

    # -- routing ---------------------------------------------------------------------------

    async def _respond(
        self, stream: trio.SocketStream, conn: h11.Connection, request: h11.Request, raw_body: bytes, connection_id: int
    ) -> _Ending:
        headers: dict[str, str] = {}
        for name, value in request.headers:
            key = name.decode("latin-1").lower()
            text = value.decode("latin-1")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        method = request.method.decode("ascii")
        path, _, query = request.target.decode("latin-1").partition("?")
        record = Recorded(method, path, headers, _json_object(raw_body), raw_body, query, connection_id)
        self.requests.append(record)
        self._notify()

        head = method == "HEAD"
        if not _is_local_host(headers.get("host", "")):
            await self._send_simple(stream, conn, 403, b"", None)  # gin's AbortWithStatus
        elif path == "/" and method in ("GET", "HEAD"):
            await self._send_simple(stream, conn, 200, b"Ollama is running", "text/plain; charset=utf-8", head=head)
        elif path == "/api/version" and method in ("GET", "HEAD"):
            await self._send_json(stream, conn, 200, {"version": self.version}, head=head)
        elif path == "/api/tags" and method in ("GET", "HEAD"):
            await self._send_json(stream, conn, 200, {"models": [self._tag(m) for m in self.models]}, head=head)
        elif path == "/api/ps" and method in ("GET", "HEAD"):
            await self._send_json(stream, conn, 200, {"models": self._running()}, head=head)
        elif path == "/api/show" and method == "POST":
            await self._show(stream, conn, record.body)
        elif path == "/api/chat" and method == "POST":
            return await self._chat(stream, conn, record)
        else:
            await self._send_simple(stream, conn, 404, b"404 page not found", "text/plain", head=head)
        return _Ending.COMPLETE

    def _find(self, name: Any) -> Model | None:
        if not isinstance(name, str) or not name:
            return None
        wanted = _normalize(name)
        return next((m for m in self.models if _normalize(m.name) == wanted), None)

    def _tag(self, model: Model) -> dict[str, Any]:
        return {
            "name": model.name, "model": model.name, "modified_at": "2025-10-01T12:00:00Z",
            "size": model.size, "digest": model.digest, "details": model.details(),
        }

    def _running(self) -> list[dict[str, Any]]:
        running = []
        for name, num_ctx in self.loaded.items():
            model = self._find(name)
            if model is not None:
                running.append({**self._tag(model), "expires_at": "2099-01-01T00:00:00Z",
                                "size_vram": model.size, "context_length": num_ctx})
        return running

    async def _show(self, stream: trio.SocketStream, conn: h11.Connection, body: dict[str, Any] | None) -> None:
        body = body or {}
        name = body.get("model") or body.get("name")
        model = self._find(name)
        if model is None:
            await self._send_json(stream, conn, 404, {"error": f"model '{name}' not found"})
            return
        arch = model.architecture
        await self._send_json(stream, conn, 200, {
            "modelfile": f"FROM {model.name}\n",
            "parameters": "",
            "template": model.template if model.template is not None else "{{- range .Messages }}{{ .Role }}: {{ .Content }}\n{{ end }}",
            "details": model.details(),
            "model_info": {
                "general.architecture": arch,
                "general.parameter_count": 8_000_000_000,
                f"{arch}.context_length": model.context_length,
                f"{arch}.embedding_length": 4096,
            },
            "capabilities": list(model.capabilities),
            "modified_at": "2025-10-01T12:00:00Z",
        })

    # -- /api/chat -------------------------------------------------------------------------

    def _script_for(self, record: Recorded, index: int) -> list[Action]:
        """Queue first, then ``on_chat``, then Ollama's own checks and ``default_script``."""
        if self._queue:
            script = self._queue.pop(0)
        elif self.on_chat is not None:
            script = check_script(self.on_chat(record, index))
        else:
            script = self._checked_default(record)
        self._load(record.body)
        return script

    def _checked_default(self, record: Recorded) -> list[Action]:
        def error(code: int, message: str) -> list[Action]:
            return [Status(code, body={"error": message})]

        if not record.raw_body.strip():
            return error(400, "missing request body")
        try:
            parsed = json.loads(record.raw_body)
        except ValueError as exc:
            return error(400, f"invalid JSON: {exc}")
        if parsed is None:
            parsed = {}  # Go decodes null into a zero request
        if (problem := _chat_request_error(parsed)) is not None:
            return error(400, problem)
        name = parsed.get("model") or ""
        if not name:
            return error(400, "model is required")
        model = self._find(name)
        if model is None:
            if self.models:
                return error(404, f"model '{name}' not found")
            return list(self.default_script)
        if parsed.get("tools") and "tools" not in model.capabilities:
            return error(400, f"registry.ollama.ai/library/{_normalize(name)} does not support tools")
        if any(m.get("images") for m in parsed.get("messages") or []) and "vision" not in model.capabilities:
            return error(400, f"registry.ollama.ai/library/{_normalize(name)} does not support vision")
        if parsed.get("think") not in (None, False) and "thinking" not in model.capabilities:
            return error(400, f'"{name}" does not support thinking')
        return list(self.default_script)

    def _load(self, body: dict[str, Any] | None) -> None:
        """Note the model as loaded with the request's ``num_ctx``; a change is a reload."""
        model = self._find((body or {}).get("model"))
        if model is None:
            return
        num_ctx = ((body or {}).get("options") or {}).get("num_ctx") or self.default_num_ctx
        if self.loaded.get(model.name) != num_ctx:
            self.loaded[model.name] = num_ctx
            self.loads.append((model.name, num_ctx))

    async def _chat(self, stream: trio.SocketStream, conn: h11.Connection, record: Recorded) -> _Ending:
        index = self._chats_seen
        self._chats_seen += 1
        script = self._script_for(record, index)
        model = (record.body or {}).get("model")
        run = _ChatRun(index, model if isinstance(model, str) else "")
        ending = _Ending.GONE  # stays so when the watcher cancels the script
        self.active_chats += 1
        self._notify()
        try:
            # One nursery per request: the watcher and the script die with it.
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._watch_for_hang_up, stream, conn, run, nursery.cancel_scope)
                try:
                    ending = await self._play(stream, conn, run, script)
                except trio.BrokenResourceError:  # a write found the client gone
                    self._record_hang_up(run)
                nursery.cancel_scope.cancel()
        finally:
            self.active_chats -= 1
            self._notify()
        return _Ending.GONE if run.gone else ending

    async def _watch_for_hang_up(
        self, stream: trio.SocketStream, conn: h11.Connection, run: _ChatRun, scope: trio.CancelScope
    ) -> None:
        """Own ``receive_some`` while the script plays. The request was read whole, so bytes
        can only be a pipelined request (kept in ``conn`` for later); EOF or a reset means the
        client left: record it and stop the script."""
        while True:
            try:
                data = await stream.receive_some(_RECEIVE_SIZE)
            except trio.BrokenResourceError:
                data = b""
            if not data:
                self._record_hang_up(run)
                scope.cancel()
                return
            conn.receive_data(data)

    def _record_hang_up(self, run: _ChatRun) -> None:
        if run.gone or run.complete:
            return  # already recorded, or the client left after the whole answer
        run.gone = True
        self.disconnects.append(Disconnect(run.index, trio.current_time(), run.during, run.body_bytes))
        self._notify()

    async def _play(self, stream: trio.SocketStream, conn: h11.Connection, run: _ChatRun, script: list[Action]) -> _Ending:
        for action in script:
            run.activity = "write"
            if isinstance(action, Status):
                await self._send_head(stream, conn, run, action)
                if action.body is not None:
                    run.complete = True
                    await self._send(stream, conn, h11.EndOfMessage())
                    return _Ending.COMPLETE
            elif isinstance(action, Sleep):
                run.activity = "sleep"
                await trio.sleep(action.seconds)
            elif isinstance(action, Await):
                run.activity = "sleep"
                await action.until()
            elif isinstance(action, Stall):
                run.activity = "stall"
                await trio.sleep_forever()
            elif isinstance(action, Reset):
                return _Ending.RESET
            elif isinstance(action, Close):
                return _Ending.CLOSE
            elif isinstance(action, Burst):
                if not run.head_sent:
                    await self._send_head(stream, conn, run, Status(200))
                pieces = [self._body_bytes(a, run.model) for a in action.actions]
                await stream.send_all(b"".join(conn.send(h11.Data(data=p)) or b"" for p in pieces))
                run.body_bytes += sum(map(len, pieces))
            else:
                if not run.head_sent:
                    await self._send_head(stream, conn, run, Status(200))
                await self._send_body(stream, conn, run, self._body_bytes(action, run.model))
        run.activity = "write"
        if not run.head_sent:
            await self._send_head(stream, conn, run, Status(200))
        # From here the client has had every byte that matters: leaving is no longer a hang-up.
        run.complete = True
        await self._send(stream, conn, h11.EndOfMessage())
        return _Ending.COMPLETE

    async def _send_head(self, stream: trio.SocketStream, conn: h11.Connection, run: _ChatRun, status: Status) -> None:
        body = status.body
        if isinstance(body, (dict, list)):
            payload, content_type = _json_bytes(body), "application/json; charset=utf-8"
        else:
            payload = body.encode() if isinstance(body, str) else body
            content_type = "application/x-ndjson" if status.code == 200 else "application/json; charset=utf-8"
        headers = {"content-type": content_type, "date": email.utils.formatdate(usegmt=True)}
        if payload is None:
            headers["transfer-encoding"] = "chunked"
        else:
            headers["content-length"] = str(len(payload))
        headers.update({k.lower(): v for k, v in (status.headers or {}).items()})
        await self._send(stream, conn, h11.Response(status_code=status.code, headers=list(headers.items())))
        run.head_sent = True
        if payload:
            await self._send_body(stream, conn, run, payload)

    async def _send_body(self, stream: trio.SocketStream, conn: h11.Connection, run: _ChatRun, data: bytes) -> None:
        await self._send(stream, conn, h11.Data(data=data))
        run.body_bytes += len(data)

    @staticmethod
    def _body_bytes(action: Chunk | Line | Raw, model: str) -> bytes:
        if isinstance(action, Raw):
            return action.data
        if isinstance(action, Line):
            return _json_bytes(action.obj) + b"\n"
        return _json_bytes(action.to_json(model, _now_rfc3339())) + b"\n"
