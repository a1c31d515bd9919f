"""What the live view knows of requests: each request's steps, published as events.

:class:`LiveRequests` is the app's registry: the requests running now and the last
finished ones (the ``hello`` snapshot a new viewer gets), and the :class:`Broadcast` the
events go out on. :class:`RequestWatch` follows one ``POST /v1/messages``: the handler
creates it once the request is translated, the relay calls :meth:`RequestWatch.output`
after each piece from Ollama, and the handler ends it with :meth:`RequestWatch.finish`.
docs/LIVE.md lists every event and field.

Times: ``now`` arguments are trio's clock (durations); the events' ``time`` and
``started_at`` are wall-clock Unix seconds.
"""

from __future__ import annotations

import collections
import time
from typing import Any

from .. import __version__
from ..errors import ProxyError
from ..protocol.lifecycle import Outcome
from ..stream.translator import ResponseTranslator
from .broadcast import Broadcast

__all__ = ["LiveRequests", "RequestWatch", "PROGRESS_INTERVAL"]

#: seconds between two ``progress`` events of one request
PROGRESS_INTERVAL = 1.0
#: finished requests a new viewer is shown
RECENT = 50


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


#: a request as the snapshot and ``finished`` show it, before anything is known
_BLANK_ROW: dict[str, Any] = {
    "request_id": None, "status": None, "started_at": None, "model": None, "ollama_model": None,
    "stop_reason": None, "ttft_ms": None, "duration_ms": None, "input_tokens": None,
    "input_tokens_estimated": False, "output_tokens": 0, "tokens_per_second": None, "num_ctx": None,
    "context_fill": None, "cancelled": False, "repairs": 0, "error_type": None, "host": None,
}


def _error_event(request_id: str, error: ProxyError) -> dict[str, Any]:
    return {
        "type": "error",
        "request_id": request_id,
        "status": error.status,
        "error_type": error.error_type,
        "message": error.message,
    }


class LiveRequests:
    def __init__(self, broadcast: Broadcast) -> None:
        self.broadcast = broadcast
        self.running: dict[str, RequestWatch] = {}
        self.recent: collections.deque[dict[str, Any]] = collections.deque(maxlen=RECENT)
        #: the Ollama hosts (proxy.ollama.hosts.HostPool), set at startup: their state is shown too
        self.host_pool: Any = None
        self._last_hosts: list[dict[str, Any]] | None = None

    def watch(self, **facts: Any) -> "RequestWatch":
        """Start following a request; publishes ``started``. ``facts``: see RequestWatch."""
        watch = RequestWatch(self, **facts)
        self.running[watch.request_id] = watch
        self.broadcast.publish(watch.started_event())
        return watch

    def hello(self, now: float) -> dict[str, Any]:
        """The first event of a connection: the proxy's version and the snapshot."""
        requests = [w.summary(now) for w in reversed(self.running.values())]
        requests += reversed(self.recent)
        hello: dict[str, Any] = {"type": "hello", "proxy_version": __version__, "requests": requests}
        if self.host_pool is not None:
            hello["hosts"] = self.host_pool.snapshot()
        return self.broadcast.stamp(hello, count=False)

    def hosts_changed(self) -> None:
        """With several hosts: publish ``hosts`` when a host's state, load or loaded models
        changed since the last one (called after each request)."""
        if self.host_pool is None or len(self.host_pool.table) < 2:
            return
        hosts = self.host_pool.snapshot()
        shown = [{k: h[k] for k in ("url", "state", "in_flight", "models_loaded", "served")} for h in hosts]
        if shown != self._last_hosts:
            self._last_hosts = shown
            self.broadcast.publish({"type": "hosts", "hosts": hosts})

    def rejected(self, request_id: str, error: ProxyError, *, model: str | None = None) -> None:
        """A ``POST /v1/messages`` refused before it reached Ollama (a 4xx, a 413...):
        ``error`` and ``finished``, with no ``started``."""
        self.broadcast.publish(_error_event(request_id, error))
        summary = {
            **_BLANK_ROW, "request_id": request_id, "status": error.status,
            "started_at": round(time.time(), 3), "model": model, "error_type": error.error_type,
        }
        self.recent.append(summary)
        self.broadcast.publish({"type": "finished", **summary})

    def _ended(self, watch: "RequestWatch", summary: dict[str, Any]) -> None:
        self.running.pop(watch.request_id, None)
        self.recent.append(summary)


class RequestWatch:
    """One request's steps. Cheap when nobody watches: a comparison per piece."""

    def __init__(
        self,
        registry: LiveRequests,
        *,
        request_id: str,
        model: str,
        ollama_model: str,
        stream: bool,
        messages: int,
        tools: int,
        input_tokens: int,
        num_ctx: int,
        now: float,
        host: str | None = None,
    ) -> None:
        self._registry = registry
        self._publish = registry.broadcast.publish
        self.request_id = request_id
        self.model = model
        self.ollama_model = ollama_model
        self.stream = stream
        self.messages = messages
        self.tools = tools
        self.input_tokens = input_tokens
        self.num_ctx = num_ctx
        #: the Ollama host routed to (the one that answered, once finished)
        self.host = host
        self.started = now
        self.started_at = time.time()
        self.first_output: float | None = None
        self.output_tokens = 0
        self.repairs = 0
        self._next_progress = now + PROGRESS_INTERVAL
        self._loop_reported = False
        self.done = False

    def started_event(self) -> dict[str, Any]:
        return {
            "type": "started",
            "request_id": self.request_id,
            "model": self.model,
            "ollama_model": self.ollama_model,
            "stream": self.stream,
            "messages": self.messages,
            "tools": self.tools,
            "input_tokens": self.input_tokens,
            "num_ctx": self.num_ctx,
            "host": self.host,
        }

    def _rate(self, now: float) -> float | None:
        if self.first_output is None or now <= self.first_output or not self.output_tokens:
            return None
        return round(self.output_tokens / (now - self.first_output), 1)

    def output(self, translator: ResponseTranslator, now: float) -> None:
        """After each piece from Ollama: first token, repairs, and (at most once per
        PROGRESS_INTERVAL) progress."""
        if self.first_output is None and translator.produced_output:
            self.first_output = now
            self._publish({"type": "first_token", "request_id": self.request_id, "ttft_ms": _ms(now - self.started)})
        self.output_tokens = translator.approx_output_tokens
        for repair in translator.repair_log[self.repairs:]:
            self.repairs += 1
            self._publish({
                "type": "repair",
                "request_id": self.request_id,
                "tool": repair[0],
                "changes": list(repair[1]),
                "dialect": repair[2] or None,
                "repairs": self.repairs,
            })
        if translator.loop is not None and not self._loop_reported:
            self._loop_reported = True
            self._publish({
                "type": "loop",
                "request_id": self.request_id,
                "span_chars": translator.loop.span,
                "repeats": translator.loop.repeats,
                "output_tokens": self.output_tokens,
            })
        if now >= self._next_progress and self.first_output is not None:
            self._next_progress = now + PROGRESS_INTERVAL
            self._publish({
                "type": "progress",
                "request_id": self.request_id,
                "output_tokens": self.output_tokens,
                "tokens_per_second": self._rate(now),
                "elapsed_ms": _ms(now - self.started),
            })

    def no_verdict(self, answer: str) -> None:
        """Auto mode's check was answered without a verdict (proxy/protocol/auto_mode.py)."""
        self._publish({"type": "no_verdict", "request_id": self.request_id, "answer": answer})

    def _row(self, now: float, *, input_tokens: int, **fields: Any) -> dict[str, Any]:
        """This request's row (see _BLANK_ROW) at ``now``; ``fields`` add what only the
        caller knows."""
        return {
            **_BLANK_ROW,
            "request_id": self.request_id,
            "started_at": round(self.started_at, 3),
            "model": self.model,
            "ollama_model": self.ollama_model,
            "ttft_ms": _ms(None if self.first_output is None else self.first_output - self.started),
            "duration_ms": _ms(now - self.started),
            "input_tokens": input_tokens,
            "output_tokens": self.output_tokens,
            "tokens_per_second": self._rate(now),
            "num_ctx": self.num_ctx,
            "context_fill": round(min(1.0, input_tokens / self.num_ctx), 4) if self.num_ctx else None,
            "repairs": self.repairs,
            "host": self.host,
            **fields,
        }

    def summary(self, now: float) -> dict[str, Any]:
        """The request as the snapshot shows it while it runs: what is known so far."""
        return self._row(now, input_tokens=self.input_tokens, status="running", input_tokens_estimated=True)

    def finish(self, *, outcome: Outcome, translator: ResponseTranslator) -> None:
        """The request ended: ``cancel`` or ``error`` when so, then ``finished``. Its
        numbers (time to first token, duration, tokens/s) are the outcome's, as in the log."""
        if self.done:
            return
        self.done = True
        self.host = outcome.host or self.host
        self.output(translator, outcome.ended)  # the last repairs and loop
        self.output_tokens = outcome.output_tokens
        error = outcome.error
        if outcome.cancelled:
            self._publish({
                "type": "cancel",
                "request_id": self.request_id,
                "phase": outcome.phase,
                "output_tokens": self.output_tokens,
            })
        if error is not None:
            self._publish(_error_event(self.request_id, error))
        summary = self._row(
            outcome.ended,
            input_tokens=translator.input_tokens or self.input_tokens,
            status=outcome.status,
            stop_reason=translator.machine.stop_reason,
            input_tokens_estimated=not translator.input_tokens,
            cancelled=outcome.cancelled,
            error_type=error.error_type if error is not None else None,
            ttft_ms=outcome.ttft_ms,
            duration_ms=outcome.duration_ms,
            tokens_per_second=outcome.tokens_per_second,
        )
        if outcome.fallbacks:
            summary["fallbacks"] = [fallback.value for fallback in outcome.fallbacks]
        self._registry._ended(self, summary)
        self._publish({"type": "finished", **summary})
