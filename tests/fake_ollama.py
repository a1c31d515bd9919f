"""A fake Ollama on trio + h11, faithful to WIRE.md and able to misbehave on purpose.

Each ``/api/chat`` request plays a *script*: a list of actions queued with
:meth:`FakeOllama.script_chat` (FIFO), produced by ``on_chat``, or ``default_script``::

    fake = FakeOllama(models=[Model("qwen3:8b", capabilities=("completion", "tools"))])
    await nursery.start(fake.serve)
    fake.script_chat([Chunk(content="Hi"), Stall()])

While a script runs, a watcher reads the socket, so a client hanging up is noticed at
once — before any byte was sent, mid-stream or while stalled — and recorded in
``disconnects``. The other endpoints answer like Ollama's (``/``, ``/api/version``,
``/api/tags``, ``/api/show``, ``/api/ps``); a foreign ``Host`` header gets 403.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import socket
import struct
from typing import Any, Callable

import h11
import trio

__all__ = [
    "FakeOllama", "Model", "Recorded", "Disconnect",
    "Chunk", "Line", "Raw", "Status", "Sleep", "Stall", "Reset", "Close", "text_stream",
]


# -- script actions ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Status:
    """The response head; with ``body`` the whole (error) response."""

    code: int = 200
    headers: dict[str, str] | None = None
    body: bytes | str | dict | None = None


@dataclasses.dataclass(frozen=True)
class Chunk:
    """One NDJSON line shaped like Ollama's."""

    content: str = ""
    thinking: str | None = None
    tool_calls: list[dict] | None = None
    done: bool = False
    done_reason: str | None = None
    prompt_eval_count: int | None = None
    eval_count: int | None = None


@dataclasses.dataclass(frozen=True)
class Line:
    """Any JSON value as one NDJSON line (e.g. ``{"error": "…"}``)."""

    obj: Any


@dataclasses.dataclass(frozen=True)
class Raw:
    """Body bytes exactly as given: split lines, garbage, half a UTF-8 character."""

    data: bytes


@dataclasses.dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclasses.dataclass(frozen=True)
class Stall:
    """Wait until the client hangs up."""


@dataclasses.dataclass(frozen=True)
class Reset:
    """Abort the TCP connection (RST) without ending the body."""


@dataclasses.dataclass(frozen=True)
class Close:
    """Close the connection without ending the chunked body (a truncated stream)."""


Action = Status | Chunk | Line | Raw | Sleep | Stall | Reset | Close


def text_stream(
    text: str,
    *,
    thinking: str | None = None,
    tool_calls: list[dict] | None = None,
    prompt_eval_count: int | None = 10,
    eval_count: int | None = 5,
    done_reason: str = "stop",
    pieces: int = 3,
) -> list[Action]:
    """A successful answer: thinking chunks, ``text`` in about ``pieces`` chunks, then the
    final chunk (carrying ``tool_calls`` if given)."""
    actions: list[Action] = []
    for part in _split(thinking or "", pieces):
        actions.append(Chunk(thinking=part))
    for part in _split(text, pieces):
        actions.append(Chunk(content=part))
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


def _split(text: str, pieces: int) -> list[str]:
    if not text:
        return []
    size = max(1, -(-len(text) // pieces))
    return [text[i : i + size] for i in range(0, len(text), size)]


# -- records ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Model:
    name: str
    capabilities: tuple[str, ...] = ("completion", "tools")
    context_length: int = 40960
    family: str = "qwen3"
    parameter_size: str = "8.2B"


@dataclasses.dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    raw_body: bytes


@dataclasses.dataclass(frozen=True)
class Disconnect:
    request_index: int
    at: float
    during: str


class _ClientGone(Exception):
    pass


def _now_rfc3339() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat().replace("+00:00", "Z")


class FakeOllama:
    """The fake server. ``serve`` binds 127.0.0.1:0 and sets ``port`` and ``url``."""

    def __init__(self, models: list[Model] | None = None, version: str = "0.12.6") -> None:
        self.models = list(models or [])
        self.version = version
        self.port = 0
        self.url = ""
        self.requests: list[Recorded] = []
        self.disconnects: list[Disconnect] = []
        self.open_connections = 0
        self.active_chats = 0
        self.default_script: list[Action] = text_stream("Hello")
        self.on_chat: Callable[[Recorded, int], list[Action]] | None = None
        self._queue: list[list[Action]] = []
        self._changed = trio.Event()

    @property
    def chat_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.path == "/api/chat"]

    def script_chat(self, actions: list[Action]) -> None:
        """Queue ``actions`` for the next ``/api/chat`` request."""
        self._queue.append(list(actions))

    async def wait_disconnected(self, count: int = 1) -> None:
        """Return once ``count`` client disconnects have been seen during chats."""
        while len(self.disconnects) < count:
            await self._changed.wait()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, self._connection, listeners)
            task_status.started()

    # -- one connection ------------------------------------------------------------

    async def _connection(self, stream: trio.SocketStream) -> None:
        self.open_connections += 1
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                request, body = await self._read_request(stream, conn)
                if request is None:
                    return
                keep = await self._respond(stream, conn, request, body)
                if not keep or conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    return
                conn.start_next_cycle()
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError, _ClientGone):
            return
        finally:
            self.open_connections -= 1
            self._notify()
            with trio.move_on_after(1, shield=True):
                try:
                    await stream.aclose()
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass

    async def _next_event(self, stream: trio.SocketStream, conn: h11.Connection) -> Any:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await stream.receive_some(65536)
                conn.receive_data(data)
                continue
            return event

    async def _read_request(self, stream: trio.SocketStream, conn: h11.Connection):
        event = await self._next_event(stream, conn)
        if isinstance(event, h11.ConnectionClosed):
            return None, b""
        assert isinstance(event, h11.Request)
        parts = []
        while True:
            more = await self._next_event(stream, conn)
            if isinstance(more, h11.Data):
                parts.append(bytes(more.data))
            elif isinstance(more, h11.EndOfMessage):
                break
            elif isinstance(more, h11.ConnectionClosed):
                return None, b""
        return event, b"".join(parts)

    async def _send(self, stream: trio.SocketStream, conn: h11.Connection, event: Any) -> None:
        data = conn.send(event)
        if data:
            await stream.send_all(data)

    async def _simple(self, stream, conn, status: int, body: bytes | str | dict, content_type: str | None = None) -> None:
        if isinstance(body, dict) or isinstance(body, list):
            payload, ctype = json.dumps(body).encode(), "application/json; charset=utf-8"
        elif isinstance(body, str):
            payload, ctype = body.encode(), "text/plain; charset=utf-8"
        else:
            payload, ctype = body, "application/octet-stream"
        headers = [("content-type", content_type or ctype), ("content-length", str(len(payload)))]
        await self._send(stream, conn, h11.Response(status_code=status, headers=headers))
        if conn.our_state is h11.SEND_BODY and self.requests[-1].method != "HEAD":
            await self._send(stream, conn, h11.Data(data=payload))
        await self._send(stream, conn, h11.EndOfMessage())

    async def _respond(self, stream, conn, request: h11.Request, body: bytes) -> bool:
        headers = {k.decode().lower(): v.decode() for k, v in request.headers}
        method = request.method.decode()
        path = request.target.decode().split("?", 1)[0]
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        record = Recorded(method, path, headers, parsed, body)
        self.requests.append(record)
        self._notify()

        host = headers.get("host", "").rsplit(":", 1)[0] if not headers.get("host", "").startswith("[") else "[::1]"
        if host not in ("127.0.0.1", "localhost", "[::1]"):
            await self._simple(stream, conn, 403, "")
            return True
        if path == "/" and method in ("GET", "HEAD"):
            await self._simple(stream, conn, 200, "Ollama is running")
        elif path == "/api/version" and method == "GET":
            await self._simple(stream, conn, 200, {"version": self.version})
        elif path == "/api/tags" and method == "GET":
            await self._simple(stream, conn, 200, {"models": [self._tag(m) for m in self.models]})
        elif path == "/api/ps" and method == "GET":
            await self._simple(stream, conn, 200, {"models": [
                {**self._tag(m), "expires_at": _now_rfc3339(), "size_vram": 1, "context_length": m.context_length}
                for m in self.models]})
        elif path == "/api/show" and method == "POST":
            name = (parsed or {}).get("model") or (parsed or {}).get("name")
            model = self._find(name)
            if model is None:
                await self._simple(stream, conn, 404, {"error": f"model '{name}' not found"})
            else:
                await self._simple(stream, conn, 200, self._show(model))
        elif path == "/api/chat" and method == "POST":
            return await self._chat(stream, conn, record)
        else:
            await self._simple(stream, conn, 404, "404 page not found")
        return True

    def _find(self, name: Any) -> Model | None:
        for model in self.models:
            if name in (model.name, model.name.removesuffix(":latest")) or f"{name}:latest" == model.name:
                return model
        return None

    def _tag(self, model: Model) -> dict:
        return {
            "name": model.name, "model": model.name, "modified_at": _now_rfc3339(), "size": 5_000_000_000,
            "digest": f"{abs(hash(model.name)):064x}"[:64],
            "details": {"format": "gguf", "family": model.family, "parameter_size": model.parameter_size,
                        "quantization_level": "Q4_K_M"},
        }

    def _show(self, model: Model) -> dict:
        return {
            "capabilities": list(model.capabilities),
            "model_info": {"general.architecture": model.family,
                           f"{model.family}.context_length": model.context_length},
            "details": self._tag(model)["details"],
            "template": "{{ .Prompt }}",
            "parameters": "",
        }

    # -- /api/chat -----------------------------------------------------------------

    def _script_for(self, record: Recorded, index: int) -> list[Action]:
        if self._queue:
            return self._queue.pop(0)
        if self.on_chat is not None:
            return list(self.on_chat(record, index))
        model = (record.body or {}).get("model")
        if self.models and self._find(model) is None:
            return [Status(404, body={"error": f"model '{model}' not found"})]
        return list(self.default_script)

    async def _chat(self, stream, conn, record: Recorded) -> bool:
        index = len(self.chat_requests) - 1
        script = self._script_for(record, index)
        model = (record.body or {}).get("model", "")
        self.active_chats += 1
        self._notify()
        state = {"phase": "before-status", "keep": True}
        try:
            async with trio.open_nursery() as nursery:

                async def watch() -> None:
                    # Nothing more is expected from the client during a response: any read
                    # returning is either EOF or a reset, i.e. the client left.
                    try:
                        data = await stream.receive_some(65536)
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        data = b""
                    if state.get("closed"):
                        return  # our own Reset/Close, not the client leaving
                    if data:
                        conn.receive_data(data)  # a pipelined request: keep it for later
                        await trio.sleep_forever()
                    self.disconnects.append(Disconnect(index, trio.current_time(), state["phase"]))
                    self._notify()
                    nursery.cancel_scope.cancel()
                    state["keep"] = False

                nursery.start_soon(watch)
                await self._play(stream, conn, script, model, state)
                nursery.cancel_scope.cancel()
        finally:
            self.active_chats -= 1
            self._notify()
        if state.get("closed"):
            return False
        return state["keep"]

    async def _head(self, stream, conn, state, code: int = 200, headers: dict[str, str] | None = None,
                    content_type: str | None = None) -> None:
        pairs = [("content-type", content_type or "application/x-ndjson"), ("transfer-encoding", "chunked")]
        pairs += list((headers or {}).items())
        await self._send(stream, conn, h11.Response(status_code=code, headers=pairs))
        state["phase"] = "streaming"

    async def _play(self, stream, conn, script: list[Action], model: str, state: dict) -> None:
        for action in script:
            if isinstance(action, Status):
                if action.body is None:
                    await self._head(stream, conn, state, action.code, action.headers,
                                     None if action.code == 200 else "application/json; charset=utf-8")
                    continue
                body = action.body
                payload = json.dumps(body).encode() if isinstance(body, (dict, list)) else (
                    body.encode() if isinstance(body, str) else body)
                await self._head(stream, conn, state, action.code, action.headers,
                                 "application/json; charset=utf-8")
                await self._send(stream, conn, h11.Data(data=payload))
                await self._send(stream, conn, h11.EndOfMessage())
                state["phase"] = "done"
                return
            if isinstance(action, Sleep):
                await trio.sleep(action.seconds)
                continue
            if isinstance(action, Stall):
                state["phase"] = f"stalled-{state['phase']}"
                await trio.sleep_forever()
            if isinstance(action, Reset):
                sock = stream.socket
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                state["closed"] = True
                sock.close()
                return
            if isinstance(action, Close):
                state["closed"] = True
                await stream.aclose()
                return
            if conn.our_state is h11.SEND_RESPONSE:
                await self._head(stream, conn, state)
            if isinstance(action, Raw):
                data = action.data
            elif isinstance(action, Line):
                data = json.dumps(action.obj).encode() + b"\n"
            else:
                data = json.dumps(self._chunk(action, model)).encode() + b"\n"
            await self._send(stream, conn, h11.Data(data=data))
        if conn.our_state is h11.SEND_RESPONSE:
            await self._head(stream, conn, state)
        await self._send(stream, conn, h11.EndOfMessage())
        state["phase"] = "done"

    @staticmethod
    def _chunk(chunk: Chunk, model: str) -> dict:
        message: dict[str, Any] = {"role": "assistant", "content": chunk.content}
        if chunk.thinking is not None:
            message["thinking"] = chunk.thinking
        if chunk.tool_calls:
            message["tool_calls"] = chunk.tool_calls
        obj: dict[str, Any] = {"model": model, "created_at": _now_rfc3339(), "message": message, "done": chunk.done}
        if chunk.done:
            obj["done_reason"] = chunk.done_reason or "stop"
            obj.update(total_duration=1_000_000, load_duration=1000, prompt_eval_duration=2000, eval_duration=3000)
            if chunk.prompt_eval_count is not None:
                obj["prompt_eval_count"] = chunk.prompt_eval_count
            if chunk.eval_count is not None:
                obj["eval_count"] = chunk.eval_count
        return obj
