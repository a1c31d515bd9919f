"""An independent validator of the Anthropic streaming-event grammar.

Written apart from the proxy's state machine (it imports nothing from ``proxy``), from the
rules Claude Code and the SDK rely on (WIRE.md). :func:`validate` takes the events as
``(name, payload)`` pairs — :func:`parse_sse` makes them from raw SSE bytes — and raises
:class:`GrammarError` naming the broken rule, or returns a :class:`Summary` of the message.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

__all__ = ["GrammarError", "Summary", "parse_sse", "validate"]

STOP_REASONS = {"end_turn", "tool_use", "max_tokens", "stop_sequence"}
DELTA_FOR_BLOCK = {
    "text": {"text_delta"},
    "thinking": {"thinking_delta", "signature_delta"},
    "tool_use": {"input_json_delta"},
}


class GrammarError(AssertionError):
    """The stream breaks a rule; the message starts with the rule's name."""


@dataclasses.dataclass
class Summary:
    text: str = ""
    thinking: str = ""
    tool_calls: list[tuple[str, str, Any]] = dataclasses.field(default_factory=list)
    stop_reason: str | None = None
    error: dict | None = None
    usage: dict | None = None


def parse_sse(raw: bytes) -> list[tuple[str, dict]]:
    """``event: NAME\\ndata: JSON\\n\\n`` frames → (name, payload) pairs."""
    events = []
    text = raw.decode("utf-8")
    if text and not text.endswith("\n\n"):
        raise GrammarError("framing: the body does not end with a blank line")
    for frame in text.split("\n\n"):
        if not frame:
            continue
        fields: dict[str, str] = {}
        for line in frame.split("\n"):
            key, sep, value = line.partition(": ")
            if not sep or key not in ("event", "data"):
                raise GrammarError(f"framing: unexpected line {line!r}")
            fields[key] = value
        if set(fields) != {"event", "data"}:
            raise GrammarError(f"framing: a frame needs an event and a data line: {frame!r}")
        payload = json.loads(fields["data"])
        if payload.get("type") != fields["event"]:
            raise GrammarError(f"framing: event {fields['event']!r} carries type {payload.get('type')!r}")
        events.append((fields["event"], payload))
    return events


def _fail(rule: str, detail: str) -> GrammarError:
    return GrammarError(f"{rule}: {detail}")


def validate(events: list[tuple[str, dict]], *, expected_text: str | None = None,
             allow_incomplete: bool = False) -> Summary:
    """Check the grammar; ``expected_text``: the model's text less what became tool calls.

    ``allow_incomplete``: the client hung up, so the stream may stop anywhere (but what was
    sent must still be well formed)."""
    summary = Summary()
    if not events:
        if allow_incomplete:
            return summary
        raise _fail("order", "no events")
    if events[0][0] != "message_start":
        raise _fail("order", f"first event is {events[0][0]!r}, not message_start")
    usage = events[0][1].get("message", {}).get("usage")
    if not isinstance(usage, dict) or not isinstance(usage.get("input_tokens"), int):
        raise _fail("usage", "message_start has no usage with input_tokens")
    open_block: tuple[int, str] | None = None
    seen_indices: list[int] = []
    block_content: dict[int, list[str]] = {}
    block_meta: dict[int, dict] = {}
    finished = False
    for position, (name, payload) in enumerate(events[1:], start=1):
        if summary.error is not None:
            raise _fail("error-is-last", f"{name} after an error event")
        if finished and name != "ping":
            raise _fail("order", f"{name} after message_stop")
        if name == "ping":
            continue
        if name == "error":
            error = payload.get("error")
            if not isinstance(error, dict) or not error.get("type") or not error.get("message"):
                raise _fail("error-shape", f"{payload}")
            summary.error = error
            if open_block is not None and open_block[1] == "text":  # streamed before the error
                summary.text += "".join(block_content[open_block[0]])
            continue
        if name == "content_block_start":
            if open_block is not None:
                raise _fail("one-open-block", f"block {payload.get('index')} starts while {open_block[0]} is open")
            if summary.stop_reason is not None:
                raise _fail("order", "a block after message_delta")
            index = payload.get("index")
            expected_index = seen_indices[-1] + 1 if seen_indices else 0
            if index != expected_index:
                raise _fail("indices", f"block index {index}, expected {expected_index}")
            block = payload.get("content_block", {})
            kind = block.get("type")
            if kind not in DELTA_FOR_BLOCK:
                raise _fail("block-type", f"unknown block type {kind!r}")
            if kind == "tool_use":
                if not str(block.get("id", "")).startswith("toolu_") or not block.get("name"):
                    raise _fail("tool-id", f"tool block without a toolu_ id or a name: {block}")
                if block.get("input") != {}:
                    raise _fail("tool-input", "content_block_start.input must be {} (it is ignored)")
            if kind == "text" and block.get("text") != "":
                raise _fail("block-start", "a text block starts with text")
            if kind == "thinking" and block.get("signature") != "":
                raise _fail("block-start", "a thinking block starts with a signature")
            seen_indices.append(index)
            open_block = (index, kind)
            block_content[index] = []
            block_meta[index] = dict(block, signature="")
            continue
        if name == "content_block_delta":
            if open_block is None or payload.get("index") != open_block[0]:
                raise _fail("delta-index", f"delta for block {payload.get('index')} while {open_block} is open")
            delta = payload.get("delta", {})
            if delta.get("type") not in DELTA_FOR_BLOCK[open_block[1]]:
                raise _fail("delta-type", f"{delta.get('type')} in a {open_block[1]} block")
            field = {"text_delta": "text", "thinking_delta": "thinking", "input_json_delta": "partial_json",
                     "signature_delta": "signature"}[delta["type"]]
            if not isinstance(delta.get(field), str):
                raise _fail("delta-shape", f"{delta}")
            if delta["type"] == "signature_delta":
                block_meta[open_block[0]]["signature"] += delta["signature"]
            else:
                block_content[open_block[0]].append(delta[field])
            continue
        if name == "content_block_stop":
            if open_block is None or payload.get("index") != open_block[0]:
                raise _fail("stop-index", f"stop for {payload.get('index')} while {open_block} is open")
            index, kind = open_block
            content = "".join(block_content[index])
            if kind == "text":
                if not content:
                    raise _fail("no-empty-text", f"text block {index} is empty")
                summary.text += content
            elif kind == "thinking":
                if not block_meta[index]["signature"]:
                    raise _fail("thinking-signature", f"thinking block {index} closed without a signature")
                summary.thinking += content
            else:
                try:
                    tool_input = json.loads(content)
                except ValueError:
                    raise _fail("tool-json", f"tool block {index} input {content!r} is not JSON") from None
                if not isinstance(tool_input, dict):
                    raise _fail("tool-json", f"tool block {index} input is not an object")
                summary.tool_calls.append((block_meta[index]["id"], block_meta[index]["name"], tool_input))
            open_block = None
            continue
        if name == "message_delta":
            if open_block is not None:
                raise _fail("blocks-closed", f"message_delta while block {open_block[0]} is open")
            reason = payload.get("delta", {}).get("stop_reason")
            if reason not in STOP_REASONS:
                raise _fail("stop-reason", f"{reason!r}")
            usage = payload.get("usage")
            if not isinstance(usage, dict) or not isinstance(usage.get("output_tokens"), int):
                raise _fail("usage", "message_delta has no usage with output_tokens")
            if (reason == "tool_use") != bool(summary.tool_calls):
                raise _fail("stop-reason", f"{reason} with {len(summary.tool_calls)} tool calls")
            summary.stop_reason, summary.usage = reason, usage
            continue
        if name == "message_stop":
            if summary.stop_reason is None:
                raise _fail("order", "message_stop without message_delta")
            finished = True
            continue
        raise _fail("event-name", f"unknown event {name!r} at {position}")
    ids = [call[0] for call in summary.tool_calls]
    if len(ids) != len(set(ids)):
        raise _fail("tool-id", "a tool id is used twice")
    complete = finished or summary.error is not None
    if not complete and not allow_incomplete:
        raise _fail("complete", "the stream ends without message_stop or an error")
    if expected_text is not None and finished and summary.text != expected_text:
        raise _fail("text-preserved", f"{summary.text!r} != {expected_text!r}")
    return summary
