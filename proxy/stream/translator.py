"""Ollama's NDJSON stream → Anthropic events, for one response. Sans-I/O.

Bytes from Ollama go in (:meth:`ResponseTranslator.feed`), events come out. The
translator owns the NDJSON decoder and the content-block machine; the relay owns the I/O.
Streaming and non-streaming answers both come from here (the non-streaming one folds the
events with :class:`~proxy.stream.message.MessageBuilder`).
"""

from __future__ import annotations

import logging
import secrets
from typing import Any, Callable

from ..errors import ProxyError, UpstreamError, UpstreamProtocolError
from ..protocol.tool_repair import repair_tool_call
from .chunks import OllamaChunk, parse_chunk, parse_lines
from .events import Event
from .machine import ContentBlockMachine, State
from .ndjson import NDJSONDecoder
from .text_calls import TextCall, TextCallFilter, TextPiece

__all__ = ["ResponseTranslator", "new_tool_id", "new_message_id"]

log = logging.getLogger("proxy.stream")


def new_tool_id() -> str:
    """A session-unique tool id: Claude Code drops a tool_use whose id it has seen before."""
    return f"toolu_{secrets.token_hex(12)}"


def new_message_id() -> str:
    return f"msg_{secrets.token_hex(12)}"


class ResponseTranslator:
    """One response: ``start()``, then ``feed(bytes)`` as they arrive, then ``end()``.

    Each returns the events to send. ``feed`` and ``end`` raise
    :class:`~proxy.errors.UpstreamError` when Ollama's stream is faulty (bad line, error
    line, no final chunk); the caller then calls :meth:`fail` for the ``error`` event.
    """

    def __init__(
        self,
        *,
        client_model: str,
        input_tokens: int,
        tools: dict[str, dict[str, Any]] | None = None,
        tool_id_factory: Callable[[], str] = new_tool_id,
        message_id: str | None = None,
    ) -> None:
        self.client_model = client_model
        self.estimated_input_tokens = input_tokens
        self.tools = tools or {}
        self._new_tool_id = tool_id_factory
        self.message_id = message_id or new_message_id()
        self.machine = ContentBlockMachine()
        self.decoder = NDJSONDecoder()
        #: True once Ollama produced thinking, text or a tool call
        self.produced_output = False
        #: True once the final ``done`` chunk was seen
        self.done = False
        self.input_tokens = 0
        self.output_tokens = 0
        self.done_reason = ""
        #: characters of thinking, text and tool input produced so far
        self.output_chars = 0
        #: tool calls whose arguments had to be repaired (for the request log)
        self.repairs = 0
        #: (tool name, what was changed) for each repaired call, in order (for the live view)
        self.repair_log: list[tuple[str, tuple[str, ...]]] = []
        #: events of the good lines read together with a bad one (sent before the error)
        self._unsent: list[Event] = []
        #: finds tool calls printed as text; only when the client offered tools
        self.text_calls = TextCallFilter(list(self.tools)) if self.tools else None

    @property
    def approx_output_tokens(self) -> int:
        """Output tokens so far: Ollama's count once known, else an estimate."""
        return self.output_tokens or round(self.output_chars / 4)

    @property
    def finished(self) -> bool:
        return self.machine.state in (State.FINISHED, State.FAILED)

    def start(self) -> list[Event]:
        return self.machine.start(
            message_id=self.message_id,
            model=self.client_model,
            input_tokens=self.estimated_input_tokens,
        )

    def feed(self, data: bytes) -> list[Event]:
        events: list[Event] = []
        try:
            lines = self.decoder.feed_lines(data)
            chunks = parse_lines(lines)
            if chunks is None:  # the reference path: every line's JSON, then each chunk in turn
                chunks = map(parse_chunk, [NDJSONDecoder.parse(line) for line in lines])
            for chunk in chunks:
                events += self.feed_chunk(chunk)
        except UpstreamError:
            # Lines before the bad one were good: their events go out before the error.
            self._unsent = events
            raise
        return events

    def feed_chunk(self, chunk: OllamaChunk) -> list[Event]:
        if chunk.error is not None:
            raise UpstreamError(f"Ollama failed mid-stream: {chunk.error}")
        if self.done:
            log.warning("ignored a chunk Ollama sent after its final chunk")
            return []
        events: list[Event] = []
        machine = self.machine
        if chunk.thinking:
            events += machine.thinking(chunk.thinking)
            self.output_chars += len(chunk.thinking)
        if chunk.content:
            self.output_chars += len(chunk.content)
            if self.text_calls is None:
                events += machine.text(chunk.content)
            else:
                events += self._emit_text(self.text_calls.feed(chunk.content))
        for call in chunk.tool_calls:
            events += self._emit_call(call.name, call.arguments, printed=False)
        if chunk.thinking or chunk.content or chunk.tool_calls:
            self.produced_output = True
        if chunk.done and self.text_calls is not None:
            events += self._emit_text(self.text_calls.finish())
        if chunk.done:
            self.done = True
            self.done_reason = chunk.done_reason
            self.input_tokens = chunk.prompt_eval_count
            self.output_tokens = chunk.eval_count
            events += machine.finish(
                # Ollama omits a zero count; a streaming client (the SDK) takes
                # message_delta's input_tokens as final, so 0 would wipe the estimate.
                input_tokens=chunk.prompt_eval_count or self.estimated_input_tokens,
                output_tokens=chunk.eval_count,
                truncated=chunk.done_reason == "length",
            )
        return events

    def _emit_call(self, name: str, arguments: Any, *, printed: bool) -> list[Event]:
        repaired = repair_tool_call(name, arguments, self.tools)
        changes = (("recovered a call the model printed as text",) if printed else ()) + repaired.changes
        if changes:
            self.repairs += 1
            self.repair_log.append((repaired.name, changes))
            log.info("repaired tool call %s: %s", repaired.name, "; ".join(changes))
        self.output_chars += len(repaired.name) + len(str(repaired.arguments))
        return self.machine.tool_use(
            tool_id=self._new_tool_id(), name=repaired.name, arguments=repaired.arguments
        )

    def _emit_text(self, pieces: list[TextPiece | TextCall]) -> list[Event]:
        events: list[Event] = []
        after_call = False
        for piece in pieces:
            if isinstance(piece, TextCall):
                events += self._emit_call(piece.name, piece.arguments, printed=True)
                after_call = True
            elif not (after_call and not piece.text.strip()):  # the newline after a call
                events += self.machine.text(piece.text)
                after_call = False
        return events

    def end(self) -> list[Event]:
        """Ollama's body ended. Raises UpstreamProtocolError unless the final chunk came."""
        self.decoder.close()
        if not self.done:
            raise UpstreamProtocolError("Ollama's stream ended before its final chunk")
        return []

    def fail(self, error: ProxyError) -> list[Event]:
        """The ``error`` event for a stream that cannot complete (no-op once finished)."""
        if self.finished:
            return []
        if self.machine.state is State.AWAITING_START:
            self.start()  # state only: the error event is all the client gets
        unsent, self._unsent = self._unsent, []
        return unsent + self.machine.fail(error_type=error.error_type, message=error.message)
