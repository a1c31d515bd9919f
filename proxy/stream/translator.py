"""Ollama's NDJSON stream → Anthropic events, for one response. Sans-I/O.

Bytes from Ollama go in (:meth:`ResponseTranslator.feed`), events come out. The
translator owns the NDJSON decoder and the content-block machine; the relay owns the I/O.
Streaming and non-streaming answers both come from here (the non-streaming one folds the
events with :class:`~proxy.stream.message.MessageBuilder`).
"""

from __future__ import annotations

import logging
import secrets
from typing import Any, Callable, Iterable

from ..errors import ProxyError, UpstreamError, UpstreamProtocolError
from ..protocol.tool_repair import repair_tool_call
from .chunks import OllamaChunk, parse_chunk, parse_lines
from .events import Event
from .machine import ContentBlockMachine, State
from .ndjson import NDJSONDecoder
from .dialects import Dialect
from .repetition import Repetition, RepetitionGuard
from .stop_sequences import StopMatcher
from .text_calls import TextCall, TextCallFilter, TextPiece
from .think_text import ThinkTagFilter
from .thinking_calls import MAX_THINKING, call_in_thinking

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
        loop_guard_chars: int = 0,
        stop_sequences: list[str] | None = None,
        dialects: tuple[Dialect, ...] | None = None,
        thinking: bool = False,
        think_open: bool = False,
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
        #: bytes of Ollama's body fed so far: while 0, another host may still answer
        self.bytes_fed = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.done_reason = ""
        #: characters of thinking, text and tool input produced so far
        self.output_chars = 0
        #: tool calls whose arguments had to be repaired (for the request log)
        self.repairs = 0
        #: (tool name, what was changed, the dialect it was printed in or "") for each
        #: repaired call, in order (for the live view)
        self.repair_log: list[tuple[str, tuple[str, ...], str]] = []
        #: events of the good lines read together with a bad one (sent before the error)
        self._unsent: list[Event] = []
        #: finds tool calls printed as text, in ``dialects`` (best first); only when the
        #: client offered tools
        self.dialects = dialects
        self.text_calls = TextCallFilter(list(self.tools), dialects) if self.tools else None
        #: splits ``<think>…</think>`` printed in the content off the text; ``think_open``:
        #: the template opened it, so the content starts inside it
        self.think_tags = ThinkTagFilter(starts_inside=think_open, keep_until_closed=not thinking)
        #: whether the client asked for thinking (else printed thinking is removed)
        self.thinking_requested = thinking
        self._think_done = False
        #: blank text since the last printed call (None: no call, or text came after it)
        self._blank_after_call: str | None = None
        #: ends the answer when the model repeats one span (loop_guard_chars; 0: off)
        self.repetition_guard = RepetitionGuard(loop_guard_chars)
        #: the loop that ended the answer, if one did (the relay then stops reading Ollama)
        self.loop: Repetition | None = None
        #: the client's stop_sequences, matched in the text; the one that ended the answer
        self.stop_matcher = StopMatcher(stop_sequences) if stop_sequences else None
        self.stop_sequence: str | None = None
        #: the start of the answer's text (for the log of a check without a verdict)
        self.text_head = ""
        #: the end of the thinking, and whether the answer had text or a call (see thinking_calls)
        self._thinking = ""
        self._answered = False

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
        self.bytes_fed += len(data)
        events: list[Event] = []
        try:
            lines = self.decoder.feed_lines(data)
            chunks: Iterable[OllamaChunk] | None = parse_lines(lines)
            if chunks is None:  # the reference path: line by line, each parsed as it is fed
                # (lazily: a bad line must not stop the good lines before it from counting
                # as output, or the relay would take the stream for one that produced none)
                chunks = (parse_chunk(NDJSONDecoder.parse(line)) for line in lines)
            for chunk in chunks:
                events += self.feed_chunk(chunk)
        except UpstreamError:
            # Lines before the bad one were good: their events go out before the error.
            self._unsent = events
            raise
        return events

    def feed_chunk(self, chunk: OllamaChunk) -> list[Event]:
        if chunk.error is not None:
            if self.produced_output:
                raise UpstreamError(f"Ollama failed mid-stream: {chunk.error}")
            raise UpstreamError(f"Ollama failed before its first token: {chunk.error}")
        if self.done:
            if not self.ended_early:  # after the proxy ended the answer, the rest is expected
                log.warning("ignored a chunk Ollama sent after its final chunk")
            return []
        events: list[Event] = []
        machine = self.machine
        if chunk.thinking:
            events += machine.thinking(chunk.thinking)
            self.output_chars += len(chunk.thinking)
            if self.tools:
                self._thinking = (self._thinking + chunk.thinking)[-MAX_THINKING:]
        if (chunk.content and chunk.content.strip()) or chunk.tool_calls:
            self._answered = True
        content = chunk.content
        matched = None
        if content and self.stop_matcher is not None:
            content, matched = self.stop_matcher.feed(content)
        if chunk.done and self.stop_matcher is not None:
            content += self.stop_matcher.finish()
        if content:
            self.output_chars += len(content)
            if len(self.text_head) < 256:
                self.text_head += content[: 256 - len(self.text_head)]
            if self._think_done:
                events += self._content(content)
            else:
                events += self._think_split(*self.think_tags.feed(content))
        if matched is not None:
            self.produced_output = True
            return events + self._stop_at(matched)
        for call in chunk.tool_calls:
            events += self._emit_call(call.name, call.arguments)
        if chunk.thinking or chunk.content or chunk.tool_calls:
            self.produced_output = True
        if not chunk.done and (chunk.thinking or chunk.content):
            loop = self.repetition_guard.feed(chunk.thinking + chunk.content)
            if loop is not None:
                return events + self._stop_loop(loop)
        if chunk.done:
            events += self._finish_held()
            if not self._answered and self._thinking:
                events += self._recover_from_thinking()
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

    def _recover_from_thinking(self) -> list[Event]:
        """The answer is empty: a call written in the thinking is the model's answer."""
        call = call_in_thinking(self._thinking, list(self.tools), self.dialects)
        if call is None:
            return []
        log.info("the answer was empty; recovered the call to %s that the model wrote in its thinking", call.name)
        repaired = repair_tool_call(call.name, call.arguments, self.tools)
        self.repairs += 1
        self.repair_log.append(
            (repaired.name, ("recovered a call the model wrote in its thinking",) + repaired.changes, call.dialect)
        )
        self.output_chars += len(repaired.name) + len(str(repaired.arguments))
        return self.machine.tool_use(tool_id=self._new_tool_id(), name=repaired.name, arguments=repaired.arguments)

    @property
    def ended_early(self) -> bool:
        """True when the proxy ended the answer before Ollama did (a stop sequence, a loop)."""
        return self.done and (self.loop is not None or self.stop_sequence is not None)

    def _stop_at(self, sequence: str) -> list[Event]:
        """End the answer at one of the client's stop sequences."""
        self.stop_sequence = sequence
        self.done = True
        self.done_reason = "stop_sequence"
        self.output_tokens = self.approx_output_tokens
        return self._finish_held() + self.machine.finish(
            input_tokens=self.estimated_input_tokens, output_tokens=self.output_tokens, stop_sequence=sequence
        )

    def _stop_loop(self, loop: Repetition) -> list[Event]:
        """End the answer as if ``max_tokens`` were reached: the model is looping."""
        self.loop = loop
        self.done = True
        self.done_reason = "loop"
        self.output_tokens = self.approx_output_tokens
        log.warning(
            "the model repeated a %d-character span %d times (%r…); its answer was ended with"
            " stop_reason max_tokens and Ollama's generation stopped (loop_guard_chars)",
            loop.span, loop.repeats, loop.sample,
        )
        return self._finish_held() + self.machine.finish(
            input_tokens=self.estimated_input_tokens, output_tokens=self.output_tokens, truncated=True
        )

    def _finish_held(self) -> list[Event]:
        """The answer ends: what the filters still hold (printed thinking not yet closed,
        text that could still have become a call) goes out as what it turned out to be."""
        events: list[Event] = []
        if not self._think_done:
            events += self._think_split(*self.think_tags.finish())
            self._log_removed_thinking()
        if self.text_calls is not None:
            events += self._emit_text(self.text_calls.finish())
        return events

    def _content(self, text: str) -> list[Event]:
        if not text:
            return []
        if self.text_calls is None:
            return self.machine.text(text)
        return self._emit_text(self.text_calls.feed(text))

    def _think_split(self, thinking: str, text: str) -> list[Event]:
        """Thinking printed in the content: a thinking block if the client asked for one."""
        events: list[Event] = []
        if thinking and self.thinking_requested:
            events += self.machine.thinking(thinking)
        if self.think_tags.done:
            self._think_done = True
            self._log_removed_thinking()
        return events + self._content(text)

    def _log_removed_thinking(self) -> None:
        removed, self.think_tags.thinking_chars = self.think_tags.thinking_chars, 0
        if removed:
            if self.thinking_requested:
                log.info("the model printed its thinking in the text (%d characters): sent as a thinking block", removed)
            else:
                log.info(
                    "removed %d characters of thinking the model printed in its text (the client did not ask for thinking)",
                    removed,
                )

    def _emit_call(self, name: str, arguments: Any, *, printed: str = "") -> list[Event]:
        """``printed``: the dialect of a call recovered from the text ('' for a native one)."""
        repaired = repair_tool_call(name, arguments, self.tools)
        changes = ((f"recovered a call the model printed as text ({printed})",) if printed else ()) + repaired.changes
        if changes:
            self.repairs += 1
            self.repair_log.append((repaired.name, changes, printed))
            log.info("repaired tool call %s: %s", repaired.name, "; ".join(changes))
        self.output_chars += len(repaired.name) + len(str(repaired.arguments))
        return self.machine.tool_use(
            tool_id=self._new_tool_id(), name=repaired.name, arguments=repaired.arguments
        )

    def _emit_text(self, pieces: list[TextPiece | TextCall]) -> list[Event]:
        events: list[Event] = []
        for piece in pieces:
            if self._blank_after_call is None and type(piece) is TextPiece:
                events += self.machine.text(piece.text)
            elif isinstance(piece, TextCall):
                events += self._emit_call(piece.name, piece.arguments, printed=piece.dialect or "text")
                self._blank_after_call = ""
            elif self._blank_after_call is not None and not piece.text.strip():
                self._blank_after_call += piece.text  # the newlines after a call: layout, unless text follows
            else:
                events += self.machine.text((self._blank_after_call or "") + piece.text)
                self._blank_after_call = None
        return events

    def restart(self) -> None:
        """Forget a failed attempt that produced no output, for a retry: a fresh decoder."""
        if self.produced_output:
            raise RuntimeError("cannot restart a response that produced output")
        self.decoder = NDJSONDecoder()
        self.bytes_fed = 0
        self._unsent = []

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
        unsent, self._unsent = self._unsent, []
        return unsent + self._release_held() + self.machine.fail(error_type=error.error_type, message=error.message)

    def _release_held(self) -> list[Event]:
        """The stream broke: text held back (a possible call or <think> not yet complete)
        goes out as what it is so far, text; a half-printed call is never run."""
        thinking, text = ("", "") if self._think_done else self.think_tags.finish()
        self._think_done = True
        events = self.machine.thinking(thinking) if thinking and self.thinking_requested else []
        if self.text_calls is not None:
            text += self.text_calls.holding
            self.text_calls = None
        if text.strip() or (text and self._blank_after_call is None):  # blank lines after a call are layout
            events += self.machine.text((self._blank_after_call or "") + text)
        self._blank_after_call = None
        return events
