"""The same final answer for Claude Code's non-streaming retry of a failed stream.

When a stream fails after its 200 was sent, the failure can only travel as an ``event:
error`` frame, which carries no ``x-should-retry``; Claude Code then sends the same request
again without streaming. If the proxy already gave that failure its final verdict (it
failed before any output, after the proxy's own quick retry: a runner crash, Ollama
unreachable, a timeout), asking Ollama again would only repeat it — and on a real GPU
re-send the whole prompt, or reload a model that just crashed. So the verdict is kept for
a few seconds, per Claude Code session and model, and the non-streaming retry gets it at
once, as a status with ``x-should-retry: false``.

A failure after output (an error line mid-answer) is not kept: the non-streaming request
is then the one retry that may help, and it goes to Ollama.

A model that is not pulled is a fact about the model, not the request: Claude Code answers
a 400 by sending variants of the same request at once (without ``thinking.display``, with
more tools, …), six in two seconds. For ``MISSING_TTL`` seconds after Ollama said a model
does not exist, every request for it gets that answer without asking Ollama again; a
``ollama pull`` takes longer than that, so nobody waits for the proxy to notice.
"""

from __future__ import annotations

import logging

from ..errors import ProxyError, UpstreamModelNotFound
from ..protocol.bounded import BoundedDict
from ..protocol.lifecycle import Outcome
from ..stream.translator import ResponseTranslator

__all__ = ["FinalVerdicts", "VERDICT_TTL"]

log = logging.getLogger("proxy.app")

#: how long a stream's final failure answers the client's non-streaming retry; Claude
#: Code sends it at once
VERDICT_TTL = 15.0
#: how long "Ollama has no model M" answers every request for M
MISSING_TTL = 10.0
#: sessions remembered at most (each entry is small; old ones go first)
MAX_VERDICTS = 256

Key = tuple[str, str, str]


class FinalVerdicts:
    """``remember`` a stream's final failure; ``repeat`` it (raise it) for the retry."""

    def __init__(self, ttl: float = VERDICT_TTL, missing_ttl: float = MISSING_TTL) -> None:
        self._ttl = ttl
        self._missing_ttl = missing_ttl
        self._kept: BoundedDict[Key, tuple[ProxyError, str, float]] = BoundedDict(MAX_VERDICTS)
        #: Ollama model → (its "not found" error, the request that learned it, expiry)
        self._missing: BoundedDict[str, tuple[ProxyError, str, float]] = BoundedDict(MAX_VERDICTS)

    def remember_missing(self, model: str, request_id: str, outcome: Outcome | None, *, now: float) -> None:
        """Keep the answer when Ollama said ``model`` does not exist."""
        error = outcome.error if outcome else None
        if isinstance(error, UpstreamModelNotFound):
            self._missing[model] = (error, request_id, now + self._missing_ttl)

    def known_missing(self, model: str, request_id: str, *, now: float) -> None:
        """Raise the "not found" answer for ``model`` if Ollama gave it a moment ago."""
        kept = self._missing.get(model)
        if kept is None:
            return
        error, learned_by, expires = kept
        if now > expires:
            del self._missing[model]
            return
        log.info(
            "request %s: Ollama said %s is not installed %.0f s ago (request %s); answered the"
            " same without asking again", request_id, model, now - (expires - self._missing_ttl), learned_by,
        )
        raise error

    def remember(self, key: Key, request_id: str, outcome: Outcome | None, translator: ResponseTranslator, *, now: float) -> None:
        """Keep ``outcome``'s error if it is final, was sent as an ``event: error`` (the
        stream was committed) and came before any output."""
        if outcome is None:
            return
        error = outcome.error
        if not isinstance(error, ProxyError) or error.should_retry or outcome.cancelled:
            return
        if outcome.status != 200 or translator.produced_output:
            return  # answered with a status (final already), or failed mid-answer
        self._kept[key] = (error, request_id, now + self._ttl)

    def repeat(self, key: Key, request_id: str, *, now: float) -> None:
        """Raise the kept verdict for ``key`` (once), if one is still fresh."""
        kept = self._kept.pop(key, None)
        if kept is None:
            return
        error, failed_id, expires = kept
        if now > expires:
            return
        log.info(
            "request %s: Claude Code's non-streaming retry of request %s, which failed for good"
            " a moment ago; answered with the same error without asking Ollama again: %s",
            request_id, failed_id, error.message,
        )
        raise error
