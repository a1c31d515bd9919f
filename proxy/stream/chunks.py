"""Parsed Ollama ``/api/chat`` stream chunks. Sans-I/O.

:func:`parse_chunk` turns one decoded NDJSON object into an :class:`OllamaChunk` or raises
:class:`UpstreamProtocolError`. Fields that real servers omit default to empty/zero; an
``{"error": …}`` line becomes an error chunk (the caller turns it into an error event).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Sequence

import msgspec

from ..errors import UpstreamProtocolError

__all__ = ["OllamaChunk", "OllamaToolCall", "parse_chunk", "parse_lines"]


@dataclasses.dataclass(frozen=True, slots=True)
class OllamaToolCall:
    name: str
    #: an object as Ollama should send it; a string when a model double-encoded it
    arguments: Any
    id: str | None = None
    index: int | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class OllamaChunk:
    content: str = ""
    thinking: str = ""
    tool_calls: tuple[OllamaToolCall, ...] = ()
    done: bool = False
    done_reason: str = ""
    prompt_eval_count: int = 0
    eval_count: int = 0
    #: set for an ``{"error": "…"}`` line
    error: str | None = None


def _count(obj: dict[str, Any], key: str) -> int:
    value = obj.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _tool_call(raw: Any) -> OllamaToolCall:
    if not isinstance(raw, dict) or not isinstance(raw.get("function"), dict):
        raise UpstreamProtocolError(f"Ollama sent a malformed tool call: {json.dumps(raw)[:200]}")
    function = raw["function"]
    name = function.get("name")
    if not isinstance(name, str) or not name:
        raise UpstreamProtocolError(f"Ollama sent a tool call without a name: {json.dumps(raw)[:200]}")
    call_id = raw.get("id")
    index = function.get("index", raw.get("index"))
    return OllamaToolCall(
        name=name,
        arguments=function.get("arguments", {}),
        id=call_id if isinstance(call_id, str) else None,
        index=index if isinstance(index, int) and not isinstance(index, bool) else None,
    )


def parse_chunk(obj: Any) -> OllamaChunk:
    """One decoded NDJSON value → :class:`OllamaChunk`. Raises UpstreamProtocolError."""
    if not isinstance(obj, dict):
        raise UpstreamProtocolError(f"Ollama sent a line that is not an object: {json.dumps(obj)[:200]}")
    if "error" in obj:
        error = obj["error"]
        return OllamaChunk(error=error if isinstance(error, str) else json.dumps(error))
    message = obj.get("message") or {}
    if not isinstance(message, dict):
        raise UpstreamProtocolError("Ollama sent a chunk whose 'message' is not an object")
    content = message.get("content") or ""
    thinking = message.get("thinking") or ""
    if not isinstance(content, str) or not isinstance(thinking, str):
        raise UpstreamProtocolError("Ollama sent a chunk whose content or thinking is not a string")
    raw_calls = message.get("tool_calls") or []
    if not isinstance(raw_calls, list):
        raise UpstreamProtocolError("Ollama sent a chunk whose 'tool_calls' is not an array")
    done = obj.get("done") is True
    done_reason = obj.get("done_reason") or ""
    return OllamaChunk(
        content=content,
        thinking=thinking,
        tool_calls=tuple(_tool_call(c) for c in raw_calls),
        done=done,
        done_reason=done_reason if isinstance(done_reason, str) else "",
        prompt_eval_count=_count(obj, "prompt_eval_count"),
        eval_count=_count(obj, "eval_count"),
    )


# -- the fast path: a whole read's lines decoded and type-checked by msgspec ----------------


class _WireMessage(msgspec.Struct):
    content: str = ""
    thinking: str = ""
    tool_calls: list[Any] | None = None


class _WireChunk(msgspec.Struct):
    """The fields of a chunk that :func:`parse_chunk` reads, in the types it accepts as
    they are; any other shape fails to decode here and takes the reference path."""

    message: _WireMessage | None = None
    done: bool = False
    done_reason: str = ""
    prompt_eval_count: int = 0
    eval_count: int = 0
    #: present only in an error line; a null or a non-string error takes the reference path
    error: str | msgspec.UnsetType = msgspec.UNSET


_decode_lines = msgspec.json.Decoder(_WireChunk).decode_lines


def parse_lines(lines: Sequence[bytes | bytearray]) -> list[OllamaChunk] | None:
    """Complete NDJSON lines → their chunks, decoded and type-checked by msgspec in one
    call (~8× faster than ``json.loads`` and :func:`parse_chunk` line by line); None when
    any line is not a plain chunk (not JSON, not an object, a null or another type that
    :func:`parse_chunk` would coerce or reject, a malformed tool call): the caller then
    takes the reference path, whose results and errors, in their order, stay the rule.
    """
    if not lines:
        return []
    try:
        wires = _decode_lines(b"\n".join(lines))
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return None  # RecursionError: nested past the decoder's depth; the reference path says so
    if len(wires) != len(lines):
        return None
    chunks = []
    for wire in wires:
        if wire.error is not msgspec.UNSET:
            chunks.append(OllamaChunk(error=wire.error))
            continue
        message = wire.message
        calls: tuple[OllamaToolCall, ...] = ()
        if message is None:
            content = thinking = ""
        else:
            content, thinking = message.content, message.thinking
            if message.tool_calls:
                try:
                    calls = tuple(_tool_call(c) for c in message.tool_calls)
                except UpstreamProtocolError:
                    return None
        chunks.append(OllamaChunk(
            content=content,
            thinking=thinking,
            tool_calls=calls,
            done=wire.done,
            done_reason=wire.done_reason,
            prompt_eval_count=max(wire.prompt_eval_count, 0),
            eval_count=max(wire.eval_count, 0),
        ))
    return chunks
