"""The two records every ``POST /v1/messages`` leaves in the log: start and end.

:class:`RequestRecord` holds the facts of one request; :func:`log_request_start` and
:func:`log_request_end` write them as ``proxy.request.start`` / ``proxy.request.end``
records whose attributes docs/LOGGING.md lists. Times are plain numbers from the
caller's clock (the app uses trio's), so this module does no I/O of its own.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from ..logs import redact
from ..protocol.lifecycle import Outcome
from ..stream.translator import ResponseTranslator

__all__ = ["RequestRecord", "log_request_start", "log_request_end", "log_request_bodies"]

log = logging.getLogger("proxy.request")

START_EVENT = "proxy.request.start"
END_EVENT = "proxy.request.end"


@dataclasses.dataclass(slots=True)
class RequestRecord:
    request_id: str
    client_model: str
    ollama_model: str
    stream: bool
    #: clock reading when the request was accepted
    started: float
    estimated_input_tokens: int = 0
    messages: int = 0
    tools: int = 0
    #: the Ollama host the request was routed to first
    host: str | None = None

    def start_attributes(self) -> dict[str, Any]:
        return {
            "proxy.request_id": self.request_id,
            "http.request.method": "POST",
            "url.path": "/v1/messages",
            "gen_ai.request.model": self.client_model,
            "proxy.ollama_model": self.ollama_model,
            "proxy.stream": self.stream,
            "proxy.messages": self.messages,
            "proxy.tools": self.tools,
            "proxy.estimated_input_tokens": self.estimated_input_tokens,
            "proxy.ollama_host": self.host,
        }

    def end_attributes(self, *, outcome: Outcome, translator: ResponseTranslator) -> dict[str, Any]:
        """``outcome`` is what the relay returned; ``translator`` the request's."""
        error = outcome.error
        attributes: dict[str, Any] = {
            "proxy.request_id": self.request_id,
            "http.request.method": "POST",
            "url.path": "/v1/messages",
            "http.response.status_code": outcome.status,
            "gen_ai.request.model": self.client_model,
            "proxy.ollama_model": self.ollama_model,
            "proxy.stream": self.stream,
            "proxy.time_to_first_token_ms": outcome.ttft_ms,
            "proxy.duration_ms": outcome.duration_ms,
            "gen_ai.usage.input_tokens": translator.input_tokens,
            "gen_ai.usage.output_tokens": outcome.output_tokens,
            "proxy.tokens_per_second": outcome.tokens_per_second,
            "proxy.stop_reason": translator.machine.stop_reason,
            "proxy.ollama_done_reason": translator.done_reason or None,
            "proxy.cancelled": outcome.cancelled,
            "proxy.repairs": translator.repairs,
            "proxy.ollama_host": outcome.host or self.host,
        }
        if outcome.cancelled:
            attributes["proxy.cancelled_during"] = outcome.phase
        if outcome.fallbacks:
            attributes["proxy.fallbacks"] = [fallback.value for fallback in outcome.fallbacks]
        if error is not None:
            attributes["error.type"] = error.error_type
            attributes["proxy.error_message"] = error.message
        return attributes


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def log_request_start(record: RequestRecord) -> None:
    log.info(
        "request %s started: %s → %s, %s, %d messages",
        record.request_id,
        record.client_model,
        record.ollama_model,
        "stream" if record.stream else "no stream",
        record.messages,
        extra={"event_name": START_EVENT, "attributes": record.start_attributes()},
    )


def log_request_bodies(record: RequestRecord, body: Any, ollama_body: Any) -> None:
    """At DEBUG only: the client's request and the Ollama request, redacted."""
    if log.isEnabledFor(logging.DEBUG):
        log.debug(
            "request %s bodies",
            record.request_id,
            extra={
                "event_name": "proxy.request.body",
                "attributes": {"proxy.request.body": redact(body), "proxy.ollama.body": redact(ollama_body)},
            },
        )


def log_request_end(
    record: RequestRecord,
    *,
    outcome: Outcome,
    translator: ResponseTranslator,
    tried: list[tuple[str, str]] | None = None,
) -> None:
    """``tried``: (host, what it did) for each host tried, when more than one was."""
    attributes = record.end_attributes(outcome=outcome, translator=translator)
    if tried and len(tried) > 1:
        attributes["proxy.ollama_hosts_tried"] = [f"{url} {result}" for url, result in tried]
    if attributes["proxy.cancelled"]:
        verdict = "cancelled"
    elif outcome.error is not None:
        verdict = "failed"
    else:
        verdict = "done"
    error = outcome.error
    if error is not None and verdict == "failed":
        # One failure, one record: this one, a warning that says what went wrong.
        log.warning(
            "request %s failed: %s in %.2f s: %s: %s",
            record.request_id,
            attributes["http.response.status_code"],
            attributes["proxy.duration_ms"] / 1000,
            error.error_type,
            error.message,
            extra={"event_name": END_EVENT, "attributes": attributes},
        )
        return
    log.info(
        "request %s %s: %s in %.2f s, %d in / %d out tokens, stop %s",
        record.request_id,
        verdict,
        attributes["http.response.status_code"],
        attributes["proxy.duration_ms"] / 1000,
        attributes["gen_ai.usage.input_tokens"],
        attributes["gen_ai.usage.output_tokens"],
        attributes["proxy.stop_reason"] or "-",
        extra={"event_name": END_EVENT, "attributes": attributes},
    )
