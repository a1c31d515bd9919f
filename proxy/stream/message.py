"""Fold stream events into one Messages API response object (for ``stream: false``). Sans-I/O."""

from __future__ import annotations

import json
from typing import Any

from .events import (
    ContentBlockDelta,
    ContentBlockStart,
    ContentBlockStop,
    Event,
    MessageDelta,
    MessageStart,
)

__all__ = ["MessageBuilder"]


class MessageBuilder:
    """``add(events)`` as they come; ``message()`` once the stream finished."""

    def __init__(self) -> None:
        self._message: dict[str, Any] | None = None
        self._blocks: dict[int, dict[str, Any]] = {}
        self._json: dict[int, list[str]] = {}

    def add(self, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, MessageStart):
                self._message = event.payload()["message"]
            elif isinstance(event, ContentBlockStart):
                self._blocks[event.index] = dict(event.content_block)
                if event.content_block["type"] == "tool_use":
                    self._json[event.index] = []
            elif isinstance(event, ContentBlockDelta):
                block, delta = self._blocks[event.index], event.delta
                kind = delta["type"]
                if kind == "text_delta":
                    block["text"] += delta["text"]
                elif kind == "thinking_delta":
                    block["thinking"] += delta["thinking"]
                elif kind == "signature_delta":
                    block["signature"] = delta["signature"]
                elif kind == "input_json_delta":
                    self._json[event.index].append(delta["partial_json"])
            elif isinstance(event, ContentBlockStop):
                if event.index in self._json:
                    self._blocks[event.index]["input"] = json.loads("".join(self._json.pop(event.index)))
            elif isinstance(event, MessageDelta) and self._message is not None:
                self._message["stop_reason"] = event.stop_reason
                self._message["stop_sequence"] = event.stop_sequence
                usage = self._message["usage"]
                if event.input_tokens > 0:
                    usage["input_tokens"] = event.input_tokens
                usage["output_tokens"] = event.output_tokens

    def message(self) -> dict[str, Any]:
        if self._message is None:
            raise RuntimeError("no message_start was seen")
        message = dict(self._message)
        message["content"] = [self._blocks[i] for i in sorted(self._blocks)]
        return message
