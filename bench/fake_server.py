"""A fast fake Ollama for benchmarks: its own process, trio + h11, answers pre-encoded.

    python bench/fake_server.py --port 0 --port-file PATH [--model NAME ...]

Theory of operation
-------------------
One trio task per connection, each an h11 state machine (keep-alive: read a request,
answer, ``start_next_cycle``). What a chat answer looks like is the *scenario*, set with
``POST /_bench/scenario`` and applied to every later request::

    {"tokens": 200,        # content chunks before the final one
     "rate": 100,          # tokens/s per stream; 0 = as fast as the socket takes them
     "prefill_ms": 0,      # wait before the head and the first chunk (prompt prefill)
     "batch": 64,          # chunks per socket send when rate == 0 (1 = one send each)
     "stall_after": null,  # after N chunks wait until the client hangs up (cancel latency)
     "stamp": false}       # put the send time (CLOCK_MONOTONIC ns) in each token's text

Every token's text is distinct (``t17 `` or, stamped, ``t17@<ns> ``) so that no relay can
coalesce identical chunks. Unstamped answers are encoded once per (endpoint, model,
scenario) and cached, each piece framed as its HTTP chunk: sending them is one ``write``
system call per piece over ready-made bytes (as Ollama's Go server flushes each token), so the
fake is never what a benchmark measures. Stamped answers are encoded as they are sent (the
stamp is the time of that send).

While an answer plays, a watcher task owns ``receive_some``: the request was read whole, so
EOF or a reset means the client left. The watcher notes ``time.monotonic()`` (the system-wide
CLOCK_MONOTONIC on Linux, comparable across processes) and cancels the answer, as real
Ollama stops generating when its connection closes. A send failing on a gone client is noted
the same way. ``GET /_bench/stats`` returns those notes and the counters;
``POST /_bench/reset`` clears them.

Endpoints: ``GET|HEAD /``, ``GET /api/version``, ``GET /api/tags``, ``POST /api/show``,
``GET /api/ps``, ``POST /api/chat`` (NDJSON as WIRE.md describes, or one JSON object for
``stream: false``), ``POST /v1/chat/completions`` (OpenAI-style SSE ending in ``data:
[DONE]``, or one ``chat.completion``), ``GET /v1/models``. Any model name is accepted.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import h11
import trio

RECEIVE_SIZE = 65536
CREATED_AT = "2026-01-01T00:00:00.000000000Z"
CREATED = 1767225600
CONTEXT_LENGTH = 131072
VERSION = "0.12.6"


@dataclasses.dataclass(frozen=True, slots=True)
class Scenario:
    tokens: int = 200
    rate: float = 0.0
    prefill_ms: float = 0.0
    batch: int = 64
    stall_after: int | None = None
    stamp: bool = False

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> "Scenario":
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(obj) - fields
        if unknown:
            raise ValueError(f"unknown scenario fields: {sorted(unknown)}")
        scenario = cls(**obj)
        if scenario.tokens < 0 or scenario.rate < 0 or scenario.batch < 1:
            raise ValueError("tokens and rate must be >= 0, batch >= 1")
        return scenario


@dataclasses.dataclass
class Stats:
    requests: dict[str, int] = dataclasses.field(default_factory=dict)
    streams_started: int = 0
    streams_completed: int = 0
    chunks_sent: int = 0
    #: one entry per chat answer the client left before its end
    disconnects: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    open_connections: int = 0

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "now": time.monotonic()}


# -- encoders: a chat answer as a list of body pieces ---------------------------------------


def token_text(i: int, stamp: bool) -> str:
    return f"t{i}@{time.monotonic_ns()} " if stamp else f"t{i} "


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


class OllamaChat:
    """``/api/chat``: NDJSON, one object a line, the last with ``done: true``."""

    content_type = "application/x-ndjson"

    def __init__(self, model: str, prompt_tokens: int) -> None:
        self.model = model
        self.prompt_tokens = prompt_tokens
        # every chunk line is this prefix + the JSON string of the text + this suffix
        self._prefix = ('{"model":%s,"created_at":"%s","message":{"role":"assistant","content":'
                        % (json.dumps(model), CREATED_AT)).encode()
        self._suffix = b'},"done":false}\n'

    def chunk(self, text: str) -> bytes:
        return self._prefix + _dumps(text) + self._suffix

    def final(self, eval_count: int) -> bytes:
        return _dumps({
            "model": self.model, "created_at": CREATED_AT,
            "message": {"role": "assistant", "content": ""},
            "done_reason": "stop", "done": True,
            "total_duration": 1_000_000 * (1 + eval_count), "load_duration": 500_000,
            "prompt_eval_count": self.prompt_tokens, "prompt_eval_duration": 1_000_000,
            "eval_count": eval_count, "eval_duration": 1_000_000 * eval_count,
        }) + b"\n"

    def whole(self, text: str, eval_count: int) -> bytes:
        return _dumps({
            "model": self.model, "created_at": CREATED_AT,
            "message": {"role": "assistant", "content": text},
            "done_reason": "stop", "done": True,
            "total_duration": 1_000_000 * (1 + eval_count), "load_duration": 500_000,
            "prompt_eval_count": self.prompt_tokens, "prompt_eval_duration": 1_000_000,
            "eval_count": eval_count, "eval_duration": 1_000_000 * eval_count,
        })


class OpenAIChat:
    """``/v1/chat/completions``: SSE ``data:`` lines of ``chat.completion.chunk``, a final
    chunk with ``finish_reason`` and ``usage``, then ``data: [DONE]``."""

    content_type = "text/event-stream"

    def __init__(self, model: str, prompt_tokens: int) -> None:
        self.model = model
        self.prompt_tokens = prompt_tokens
        self._prefix = ('data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":%d,'
                        '"model":%s,"system_fingerprint":"fp_ollama","choices":[{"index":0,"delta":'
                        '{"role":"assistant","content":' % (CREATED, json.dumps(model))).encode()
        self._suffix = b'},"finish_reason":null}]}\n\n'

    def chunk(self, text: str) -> bytes:
        return self._prefix + _dumps(text) + self._suffix

    def _usage(self, eval_count: int) -> dict[str, int]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": eval_count,
                "total_tokens": self.prompt_tokens + eval_count}

    def final(self, eval_count: int) -> bytes:
        last = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": CREATED,
                "model": self.model, "system_fingerprint": "fp_ollama",
                "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": "stop"}],
                "usage": self._usage(eval_count)}
        return b"data: " + _dumps(last) + b"\n\ndata: [DONE]\n\n"

    def whole(self, text: str, eval_count: int) -> bytes:
        return _dumps({
            "id": "chatcmpl-bench", "object": "chat.completion", "created": CREATED, "model": self.model,
            "system_fingerprint": "fp_ollama",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": self._usage(eval_count),
        })


# -- the server -----------------------------------------------------------------------------


class ClientGone(Exception):
    pass


class FakeServer:
    def __init__(self, models: list[str]) -> None:
        self.models = models
        self.scenario = Scenario()
        self.stats = Stats()
        # (endpoint, model, prompt_tokens, scenario) → the answer's pieces, one per send
        self._cache: dict[tuple, list[bytes]] = {}

    # ---- connections ----

    async def handle(self, stream: trio.SocketStream) -> None:
        self.stats.open_connections += 1
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=1 << 20)
        try:
            while True:
                request, body = await self._read_request(stream, conn)
                if request is None:
                    return
                await self._dispatch(stream, conn, request, body)
                if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                    return
                try:
                    conn.start_next_cycle()
                except h11.LocalProtocolError:
                    return
        except (ClientGone, trio.BrokenResourceError, trio.ClosedResourceError, h11.RemoteProtocolError):
            pass
        finally:
            self.stats.open_connections -= 1
            with trio.move_on_after(1, shield=True):
                await stream.aclose()

    async def _read_request(self, stream: trio.SocketStream, conn: h11.Connection):
        request = None
        parts: list[bytes] = []
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await stream.receive_some(RECEIVE_SIZE)
                if not data and request is None and conn.their_state is h11.IDLE:
                    return None, b""  # a keep-alive connection closed between requests
                conn.receive_data(data)
            elif isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                parts.append(event.data)
            elif isinstance(event, h11.EndOfMessage):
                return request, b"".join(parts)
            elif isinstance(event, h11.ConnectionClosed):
                return None, b""

    async def _send(self, stream: trio.SocketStream, data: bytes) -> None:
        try:
            await stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise ClientGone() from exc

    async def _respond(self, stream, conn, status: int, body: bytes, content_type: str = "application/json",
                       head: bool = False) -> None:
        headers = [("content-type", content_type), ("content-length", str(len(body)))]
        out = conn.send(h11.Response(status_code=status, headers=headers))
        if not head:
            out += conn.send(h11.Data(data=body))
        out += conn.send(h11.EndOfMessage())
        await self._send(stream, out)

    async def _json(self, stream, conn, obj: Any, status: int = 200) -> None:
        await self._respond(stream, conn, status, _dumps(obj))

    # ---- routing ----

    async def _dispatch(self, stream, conn, request: h11.Request, body: bytes) -> None:
        method = request.method.decode()
        path = request.target.decode().split("?", 1)[0]
        key = f"{method} {path}"
        self.stats.requests[key] = self.stats.requests.get(key, 0) + 1
        if path == "/" and method in ("GET", "HEAD"):
            await self._respond(stream, conn, 200, b"Ollama is running", "text/plain; charset=utf-8", head=method == "HEAD")
        elif key == "GET /api/version":
            await self._json(stream, conn, {"version": VERSION})
        elif key == "GET /api/tags":
            await self._json(stream, conn, {"models": [self._tag(m) for m in self.models]})
        elif key == "POST /api/show":
            await self._json(stream, conn, self._show(_loads(body).get("model") or self.models[0]))
        elif key == "GET /api/ps":
            await self._json(stream, conn, {"models": [
                {**self._tag(m), "expires_at": "2099-01-01T00:00:00Z", "size_vram": 1 << 30,
                 "context_length": CONTEXT_LENGTH} for m in self.models]})
        elif key == "GET /v1/models":
            await self._json(stream, conn, {"object": "list", "data": [
                {"id": m, "object": "model", "created": CREATED, "owned_by": "library"} for m in self.models]})
        elif key == "POST /api/chat":
            await self._chat(stream, conn, body, OllamaChat, default_stream=True)
        elif key == "POST /v1/chat/completions":
            await self._chat(stream, conn, body, OpenAIChat, default_stream=False)
        elif key == "POST /_bench/scenario":
            try:
                self.scenario = Scenario.from_json(_loads(body))
            except (ValueError, TypeError) as exc:
                await self._json(stream, conn, {"error": str(exc)}, 400)
                return
            self._cache.clear()
            await self._json(stream, conn, dataclasses.asdict(self.scenario))
        elif key == "GET /_bench/scenario":
            await self._json(stream, conn, dataclasses.asdict(self.scenario))
        elif key == "GET /_bench/stats":
            await self._json(stream, conn, self.stats.to_json())
        elif key == "POST /_bench/reset":
            open_now = self.stats.open_connections
            self.stats = Stats(open_connections=open_now)
            await self._json(stream, conn, self.stats.to_json())
        else:
            await self._json(stream, conn, {"error": f"404 page not found: {method} {path}"}, 404)

    def _tag(self, model: str) -> dict[str, Any]:
        return {"name": model, "model": model, "modified_at": CREATED_AT, "size": 5_000_000_000,
                "digest": "0" * 64, "details": {"format": "gguf", "family": "qwen3", "families": ["qwen3"],
                                                  "parameter_size": "8.2B", "quantization_level": "Q4_K_M"}}

    def _show(self, model: str) -> dict[str, Any]:
        return {"modelfile": "", "parameters": "", "template": "{{ .Prompt }}",
                "details": self._tag(model)["details"],
                "model_info": {"general.architecture": "qwen3", "qwen3.context_length": CONTEXT_LENGTH},
                "capabilities": ["completion", "tools"], "modified_at": CREATED_AT}

    # ---- chat answers ----

    async def _chat(self, stream, conn, body: bytes, kind: type, *, default_stream: bool) -> None:
        try:
            request = _loads(body)
        except ValueError as exc:
            await self._json(stream, conn, {"error": f"invalid JSON: {exc}"}, 400)
            return
        model = request.get("model") or self.models[0]
        streaming = request.get("stream", default_stream)
        prompt_tokens = max(1, len(body) // 4)
        scenario = self.scenario
        encoder = kind(model, prompt_tokens)
        if not streaming:
            if scenario.prefill_ms:
                await trio.sleep(scenario.prefill_ms / 1000)
            text = "".join(token_text(i, False) for i in range(scenario.tokens))
            await self._respond(stream, conn, 200, encoder.whole(text, scenario.tokens))
            return
        head = conn.send(h11.Response(status_code=200, headers=[
            ("content-type", encoder.content_type), ("transfer-encoding", "chunked")]))
        self.stats.streams_started += 1
        state = {"sent": 0, "gone": False, "ended": False}
        async with trio.open_nursery() as nursery:

            async def watch() -> None:
                # The request was read whole: EOF or a reset means the client left.
                try:
                    while True:
                        data = await stream.receive_some(RECEIVE_SIZE)
                        if not data:
                            break
                        conn.receive_data(data)  # pipelined: h11 keeps it for the next cycle
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass
                self._note_gone(state, kind)
                nursery.cancel_scope.cancel()

            nursery.start_soon(watch)
            try:
                await self._play(stream, conn, encoder, scenario, head, state, (kind.__name__, model, prompt_tokens))
            except ClientGone:  # a send failed: the client left mid-answer
                self._note_gone(state, kind)
            else:
                self.stats.streams_completed += 1
            nursery.cancel_scope.cancel()
        if state["gone"]:
            raise ClientGone()

    def _note_gone(self, state: dict[str, Any], kind: type) -> None:
        # A client closing once the last bytes went out left nothing unanswered.
        if not state["gone"] and not state["ended"]:
            state["gone"] = True
            self.stats.disconnects.append({"at": time.monotonic(), "endpoint": kind.__name__, "sent": state["sent"]})

    def _pieces(self, encoder, scenario: Scenario, key: tuple) -> list[bytes]:
        """The whole answer's body, ready to send: one piece per socket send."""
        cache_key = (*key, scenario)
        pieces = self._cache.get(cache_key)
        if pieces is None:
            lines = [encoder.chunk(token_text(i, False)) for i in range(scenario.tokens)]
            pieces = [b"".join(lines[i:i + scenario.batch]) for i in range(0, len(lines), scenario.batch)]
            pieces.append(encoder.final(scenario.tokens))
            self._cache[cache_key] = pieces
        return pieces

    def _framed(self, encoder, scenario: Scenario, key: tuple) -> list[bytes]:
        """:meth:`_pieces` with each piece framed as one HTTP chunk (what h11 would write)."""
        cache_key = ("framed", *key, scenario)
        framed = self._cache.get(cache_key)
        if framed is None:
            framed = [b"%x\r\n%s\r\n" % (len(p), p) for p in self._pieces(encoder, scenario, key)]
            self._cache[cache_key] = framed
        return framed

    async def _write_each(self, stream: trio.SocketStream, pieces: list[bytes], tokens: int,
                          state: dict[str, Any]) -> None:
        """One ``write`` system call per piece, as Ollama's Go server flushes each token: no
        trio machinery per piece (send_all costs more than the write), a checkpoint every 64
        pieces so the watcher sees a client that left."""
        sock = stream.socket
        fd = sock.fileno()
        write = os.write
        for n, piece in enumerate(pieces):
            view = memoryview(piece)
            while view:
                try:
                    view = view[write(fd, view):]
                except BlockingIOError:
                    await trio.lowlevel.wait_writable(sock)
                except OSError as exc:  # reset, broken pipe: the client left
                    raise ClientGone() from exc
            if n % 64 == 63:
                await trio.lowlevel.checkpoint()
        self.stats.chunks_sent += tokens - state["sent"]
        state["sent"] = tokens

    async def _play(self, stream, conn, encoder, scenario: Scenario, head: bytes, state, key: tuple) -> None:
        if scenario.prefill_ms:
            await trio.sleep(scenario.prefill_ms / 1000)
        stall_after = scenario.stall_after
        tokens = scenario.tokens if stall_after is None else min(scenario.tokens, stall_after)
        out = head
        if scenario.rate == 0 and not scenario.stamp and stall_after is None:
            pieces = self._framed(encoder, scenario, key)
            await self._send(stream, out)
            await self._write_each(stream, pieces[:-1], scenario.tokens, state)
            state["ended"] = True
            await self._send(stream, pieces[-1] + conn.send(h11.EndOfMessage()))
            return
        else:
            interval = 1 / scenario.rate if scenario.rate else 0.0
            start = trio.current_time()
            batch = 1 if scenario.rate else scenario.batch
            i = 0
            while i < tokens:
                if interval:
                    await trio.sleep_until(start + i * interval)
                n = min(batch, tokens - i)
                piece = b"".join(encoder.chunk(token_text(i + j, scenario.stamp)) for j in range(n))
                await self._send(stream, out + conn.send(h11.Data(data=piece)))
                out = b""
                i += n
                state["sent"] = i
                self.stats.chunks_sent += n
            if stall_after is not None:
                if out:
                    await self._send(stream, out)
                await trio.sleep_forever()  # until the watcher sees the client leave
            state["ended"] = True
            await self._send(stream, out + conn.send(h11.Data(data=encoder.final(tokens))) + conn.send(h11.EndOfMessage()))


def _loads(body: bytes) -> Any:
    return json.loads(body) if body else {}


async def main(port: int, port_file: Path | None, models: list[str]) -> None:
    server = FakeServer(models)
    listeners = await trio.open_tcp_listeners(port, host="127.0.0.1")
    bound = listeners[0].socket.getsockname()[1]
    if port_file:
        tmp = port_file.with_name(port_file.name + ".tmp")
        tmp.write_text(f"{bound}\n")
        os.replace(tmp, port_file)
    print(f"fake Ollama listening on http://127.0.0.1:{bound} (pid {os.getpid()})", file=sys.stderr, flush=True)
    await trio.serve_listeners(server.handle, listeners)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", type=Path)
    parser.add_argument("--model", action="append", help="a model name for /api/tags (repeatable)")
    args = parser.parse_args()
    try:
        trio.run(main, args.port, args.port_file, args.model or ["qwen3:8b"])
    except KeyboardInterrupt:
        pass
