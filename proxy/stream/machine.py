"""The content-block state machine. Sans-I/O.

Theory of operation
-------------------
An Anthropic message stream is ``message_start``, then content blocks — each
``content_block_start`` → ``content_block_delta``* → ``content_block_stop``, indices 0, 1,
2, … — then ``message_delta`` (stop reason, usage) and ``message_stop``. A model produces
thinking, text and tool calls in any order; the machine turns that sequence of inputs into
a stream of events that is always well formed:

* at most one block is open at a time; a thinking or text block stays open while the same
  kind keeps coming and is closed the moment another kind arrives;
* a thinking block always ends with a non-empty placeholder ``signature_delta``;
* empty text or thinking never opens a block (so no empty text block, ever);
* a tool call is a whole block at once: start with ``input: {}``, one ``input_json_delta``
  whose ``partial_json`` is the JSON object, stop;
* ``finish`` closes whatever is open and ends the message; ``fail`` ends it with an
  ``error`` event (no ``message_stop``: a client must not mistake it for a complete answer).

Inputs are method calls; each returns the events to send. The legal transitions are the
table below. An input that is not in the table raises :class:`MachineError` naming the
state and the input, emits nothing, and leaves the machine in ``ERROR``; every later call
raises again, saying so.
"""

from __future__ import annotations

import enum
import json
from typing import Any

from ..errors import MachineError
from .events import (
    ContentBlockDelta,
    ContentBlockStart,
    ContentBlockStop,
    ErrorEvent,
    Event,
    MessageDelta,
    MessageStart,
    MessageStop,
)

__all__ = ["State", "Input", "TRANSITIONS", "ContentBlockMachine", "THINKING_SIGNATURE"]


class State(enum.Enum):
    AWAITING_START = "awaiting_start"
    BETWEEN_BLOCKS = "between_blocks"
    IN_THINKING = "in_thinking"
    IN_TEXT = "in_text"
    FINISHED = "finished"
    FAILED = "failed"
    ERROR = "error"


class Input(enum.Enum):
    START = "start"
    THINKING = "thinking"
    TEXT = "text"
    TOOL_USE = "tool_use"
    FINISH = "finish"
    FAIL = "fail"


S, I = State, Input
#: (state, input) → next state. Anything else is illegal.
TRANSITIONS: dict[tuple[State, Input], State] = {
    (S.AWAITING_START, I.START): S.BETWEEN_BLOCKS,
    (S.AWAITING_START, I.FAIL): S.FAILED,
    (S.BETWEEN_BLOCKS, I.THINKING): S.IN_THINKING,
    (S.BETWEEN_BLOCKS, I.TEXT): S.IN_TEXT,
    (S.BETWEEN_BLOCKS, I.TOOL_USE): S.BETWEEN_BLOCKS,
    (S.BETWEEN_BLOCKS, I.FINISH): S.FINISHED,
    (S.BETWEEN_BLOCKS, I.FAIL): S.FAILED,
    (S.IN_THINKING, I.THINKING): S.IN_THINKING,
    (S.IN_THINKING, I.TEXT): S.IN_TEXT,
    (S.IN_THINKING, I.TOOL_USE): S.BETWEEN_BLOCKS,
    (S.IN_THINKING, I.FINISH): S.FINISHED,
    (S.IN_THINKING, I.FAIL): S.FAILED,
    (S.IN_TEXT, I.TEXT): S.IN_TEXT,
    (S.IN_TEXT, I.THINKING): S.IN_THINKING,
    (S.IN_TEXT, I.TOOL_USE): S.BETWEEN_BLOCKS,
    (S.IN_TEXT, I.FINISH): S.FINISHED,
    (S.IN_TEXT, I.FAIL): S.FAILED,
}
del S, I

#: Claude Code drops a thinking block without a signature; ours means nothing to anyone.
THINKING_SIGNATURE = "ollama-local-thinking"


class ContentBlockMachine:
    """Turns model output (thinking, text, tool calls) into Anthropic stream events."""

    def __init__(self) -> None:
        self.state = State.AWAITING_START
        #: index the next block will get
        self.next_index = 0
        #: whether any tool_use block was emitted (decides the default stop reason)
        self.tool_used = False
        #: the stop reason ``finish`` sent, for the request log
        self.stop_reason: str | None = None
        self._error: str | None = None

    # -- the one place states change --------------------------------------------------

    def _advance(self, event: Input) -> State:
        """Check ``event`` against the table; return the next state (not yet entered)."""
        if self.state is State.ERROR:
            raise MachineError(f"machine is in ERROR after an earlier error: {self._error}")
        next_state = TRANSITIONS.get((self.state, event))
        if next_state is None:
            self._error = f"illegal input {event.name} in state {self.state.name}"
            self.state = State.ERROR
            raise MachineError(self._error)
        return next_state

    def _close_open_block(self) -> list[Event]:
        """Events that close the open block, if any (called on leaving IN_* states)."""
        if self.state is State.IN_THINKING:
            index = self.next_index - 1
            return [
                ContentBlockDelta(index, {"type": "signature_delta", "signature": THINKING_SIGNATURE}),
                ContentBlockStop(index),
            ]
        if self.state is State.IN_TEXT:
            return [ContentBlockStop(self.next_index - 1)]
        return []

    def _open_block(self, content_block: dict[str, Any]) -> ContentBlockStart:
        event = ContentBlockStart(self.next_index, content_block)
        self.next_index += 1
        return event

    # -- inputs ------------------------------------------------------------------------

    def start(self, *, message_id: str, model: str, input_tokens: int) -> list[Event]:
        self.state = self._advance(Input.START)
        return [MessageStart(message_id, model, input_tokens)]

    def thinking(self, text: str) -> list[Event]:
        return self._stream_text(Input.THINKING, State.IN_THINKING, text)

    def text(self, text: str) -> list[Event]:
        return self._stream_text(Input.TEXT, State.IN_TEXT, text)

    def _stream_text(self, event: Input, block_state: State, text: str) -> list[Event]:
        next_state = self._advance(event)
        if not text:
            return []  # legal but empty: never open a block for nothing
        events: list[Event] = []
        if self.state is not block_state:
            events += self._close_open_block()
            if block_state is State.IN_THINKING:
                events.append(self._open_block({"type": "thinking", "thinking": "", "signature": ""}))
            else:
                events.append(self._open_block({"type": "text", "text": ""}))
        delta = (
            {"type": "thinking_delta", "thinking": text}
            if block_state is State.IN_THINKING
            else {"type": "text_delta", "text": text}
        )
        events.append(ContentBlockDelta(self.next_index - 1, delta))
        self.state = next_state
        return events

    def tool_use(self, *, tool_id: str, name: str, arguments: dict[str, Any]) -> list[Event]:
        next_state = self._advance(Input.TOOL_USE)
        events = self._close_open_block()
        start = self._open_block({"type": "tool_use", "id": tool_id, "name": name, "input": {}})
        partial = json.dumps(arguments, ensure_ascii=False, separators=(",", ":"))
        events += [
            start,
            ContentBlockDelta(start.index, {"type": "input_json_delta", "partial_json": partial}),
            ContentBlockStop(start.index),
        ]
        self.tool_used = True
        self.state = next_state
        return events

    def finish(
        self,
        *,
        input_tokens: int,
        output_tokens: int,
        truncated: bool = False,
        stop_sequence: str | None = None,
    ) -> list[Event]:
        """End the message. The stop reason: ``tool_use`` if a tool was called, else
        ``max_tokens`` when ``truncated``, else ``stop_sequence`` when one matched, else
        ``end_turn``."""
        next_state = self._advance(Input.FINISH)
        events = self._close_open_block()
        if self.tool_used:
            stop_reason, stop_sequence = "tool_use", None
        elif truncated:
            stop_reason, stop_sequence = "max_tokens", None
        elif stop_sequence is not None:
            stop_reason = "stop_sequence"
        else:
            stop_reason = "end_turn"
        self.stop_reason = stop_reason
        events += [
            MessageDelta(stop_reason, input_tokens, output_tokens, stop_sequence),
            MessageStop(),
        ]
        self.state = next_state
        return events

    def fail(self, *, error_type: str, message: str) -> list[Event]:
        self.state = self._advance(Input.FAIL)
        return [ErrorEvent(error_type, message)]
