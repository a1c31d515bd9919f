"""One ``POST /v1/messages``'s lifecycle: its states, their legal transitions, its outcome.

The relay owns one :class:`Lifecycle` per request and moves it along as the request goes:
per request and per phase, never per chunk. The states and every legal transition are in
one table, :data:`TRANSITIONS` (as ``proxy/stream/machine.py`` does for content blocks);
an illegal transition raises :class:`LifecycleError`.

::

    WAITING ──Ollama sent a status──▶ PREFILL ──first output──▶ STREAMING
       ▲                                 │  │                        │
       └───── retry / next host ─────────┘  └──── end of answer ──▶ FINISHING ──▶ DONE
    (any state before DONE) ──▶ FAILED (an error was given) · CANCELLED (the client left)
                                · CUT (the server's shutdown ran out of grace)

When the request is over, :meth:`Lifecycle.outcome` freezes what happened into an
:class:`Outcome`, from which the request log and the live view both take their numbers
(time to first token, duration, tokens per second).
"""

from __future__ import annotations

import dataclasses
import enum

from ..errors import LifecycleError, ProxyError
from .plan import Fallback

__all__ = ["Phase", "TRANSITIONS", "Lifecycle", "Outcome"]


class Phase(enum.Enum):
    #: no byte from Ollama yet: queued, loading the model or prefilling (not told apart)
    WAITING = "waiting for Ollama"
    #: Ollama answered with a status; no output yet
    PREFILL = "prefill"
    #: the model produces output
    STREAMING = "streaming"
    #: the answer is complete; its last events are being handed to the client
    FINISHING = "finishing"
    #: the answer's end was handed to the server (the relay may still drain Ollama's body)
    DONE = "done"
    #: an error was given to the client (a status, or an ``event: error``)
    FAILED = "failed"
    #: the client left before its answer's end was handed over
    CANCELLED = "cancelled"
    #: the server's graceful shutdown ran out of time; the client got a last word
    CUT = "shutdown"


_ENDS = {Phase.FAILED, Phase.CANCELLED, Phase.CUT}

#: state → the states it may move to; the terminal states move nowhere
TRANSITIONS: dict[Phase, frozenset[Phase]] = {
    Phase.WAITING: frozenset({Phase.PREFILL, *_ENDS}),
    # back to WAITING: a retry, or the next host, before any output
    Phase.PREFILL: frozenset({Phase.WAITING, Phase.STREAMING, Phase.FINISHING, *_ENDS}),
    Phase.STREAMING: frozenset({Phase.FINISHING, *_ENDS}),
    Phase.FINISHING: frozenset({Phase.DONE, *_ENDS}),
    Phase.DONE: frozenset(),
    Phase.FAILED: frozenset(),
    Phase.CANCELLED: frozenset(),
    Phase.CUT: frozenset(),
}


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one request, for the request log, the live view and the handler."""

    #: the HTTP status sent; 499 when the client left before any status was sent
    status: int
    #: the state the request ended in (DONE, FAILED, CANCELLED or CUT)
    end: Phase
    #: the trio clock when the request was accepted, and when it was over
    started: float
    ended: float
    #: the trio clock at the model's first output; None if it produced none
    first_output_at: float | None = None
    #: output tokens: Ollama's count, or the proxy's estimate when Ollama gave none
    output_tokens: int = 0
    #: the error given to the client, if any
    error: ProxyError | None = None
    #: for a cancel: the phase the request was in when the client left
    cancelled_during: Phase | None = None
    #: the Ollama host that answered (or was tried last)
    host: str | None = None
    #: the status of Ollama's last answer; None when no Ollama host answered
    ollama_status: int | None = None
    #: the plan's fallbacks the relay used, in order
    fallbacks: tuple[Fallback, ...] = ()

    @property
    def cancelled(self) -> bool:
        return self.end in (Phase.CANCELLED, Phase.CUT)

    @property
    def phase(self) -> str | None:
        """For a cancel: where it happened, as the log and the live view name it."""
        if self.end is Phase.CUT:
            return Phase.CUT.value
        return self.cancelled_during.value if self.cancelled_during is not None else None

    @property
    def ttft_ms(self) -> float | None:
        return None if self.first_output_at is None else _ms(self.first_output_at - self.started)

    @property
    def duration_ms(self) -> float:
        return _ms(self.ended - self.started)

    @property
    def tokens_per_second(self) -> float | None:
        if self.first_output_at is None or not self.output_tokens:
            return None
        generating = self.ended - self.first_output_at
        return round(self.output_tokens / generating, 1) if generating > 0 else None


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


class Lifecycle:
    """One request's state and the facts gathered on the way; owned by the relay."""

    __slots__ = (
        "state", "cancelled_during", "first_output_at", "error", "status", "host", "ollama_status", "fallbacks",
    )

    def __init__(self, host: str | None = None) -> None:
        self.state = Phase.WAITING
        self.cancelled_during: Phase | None = None
        self.first_output_at: float | None = None
        self.error: ProxyError | None = None
        #: the HTTP status given with the error
        self.status: int | None = None
        self.host = host
        self.ollama_status: int | None = None
        self.fallbacks: list[Fallback] = []

    def to(self, new: Phase) -> None:
        if new not in TRANSITIONS[self.state]:
            raise LifecycleError(f"a request cannot go from {self.state.name} to {new.name}")
        if new is Phase.CANCELLED:
            self.cancelled_during = self.state
        self.state = new

    # The relay's steps, each a transition (or none, when the state already says it).
    # Once the client left (CANCELLED), the relay is being cancelled: what it still does
    # before its next checkpoint changes nothing, so its steps are ignored.

    def answered(self, status: int) -> None:
        """Ollama sent a status (its answer, or a refusal)."""
        self.ollama_status = status
        if self.state is Phase.WAITING:
            self.to(Phase.PREFILL)

    def restart(self) -> None:
        """A retry, or the next host, before any output: Ollama must answer afresh."""
        if self.state is Phase.PREFILL:
            self.to(Phase.WAITING)

    def first_output(self, now: float) -> None:
        if self.state is not Phase.CANCELLED:
            self.first_output_at = now
            self.to(Phase.STREAMING)

    def finishing(self) -> None:
        """The answer is complete; its last events are on their way."""
        if self.state is not Phase.CANCELLED:
            self.to(Phase.FINISHING)

    def done(self) -> None:
        """The answer's end is handed to the client (said once, however often called)."""
        if self.state not in (Phase.DONE, Phase.CANCELLED):
            self.to(Phase.DONE)

    def fail(self, error: ProxyError, *, status: int) -> None:
        """``error`` is given to the client; ``status``: the HTTP status it gets (200
        when the stream had started: the error then goes as an ``event: error``)."""
        self.error = error
        self.status = status
        self.to(Phase.FAILED)

    def cut(self, error: ProxyError) -> None:
        """The server's shutdown ran out of grace; ``error`` is the client's last word."""
        if Phase.CUT in TRANSITIONS[self.state]:
            self.error = error
            self.to(Phase.CUT)

    @property
    def responded(self) -> bool:
        """The answer's end (or its error) is being or was handed to the client: a client
        leaving now cancels nothing."""
        return self.state in (Phase.DONE, Phase.FAILED, Phase.CUT)

    def outcome(self, *, committed: bool, started: float, ended: float, output_tokens: int) -> Outcome:
        """Freeze what happened. ``committed``: a status (200) was sent before the end."""
        if self.status is not None:
            status = self.status
        elif committed or self.state is Phase.DONE:
            status = 200
        else:
            status = 499  # nginx's "client closed request": no status was sent
        return Outcome(
            status=status,
            end=self.state,
            started=started,
            ended=ended,
            first_output_at=self.first_output_at,
            output_tokens=output_tokens,
            error=self.error,
            cancelled_during=self.cancelled_during,
            host=self.host,
            ollama_status=self.ollama_status,
            fallbacks=tuple(self.fallbacks),
        )
