"""Rewrites of the conversation history that small local models need. Sans-I/O.

All rewrites are local (an assistant turn and the user turn after it) and deterministic, so
a request that is the previous one plus new turns rewrites its earlier part exactly as
before: Ollama's prefix cache keeps working.

* :func:`pair_tool_results` — a ``tool_use`` whose result never came (the user pressed Esc)
  gets a synthesized result saying so; a ``tool_result`` answering no call is dropped with a
  log line. Chat templates and small models lose track otherwise.
* :func:`sequentialize` — an assistant turn with N tool calls and the user turn with their N
  results become N rounds of one call and its result. Text and thinking stay on the first
  round; the user turn's other blocks come after the last result.
* :func:`tool_choice_instruction` — Ollama has no ``tool_choice``: ``any`` or a named tool
  becomes an instruction for the system prompt.
* :func:`emulate_tools` — for a model without native tool calling: the tools and a calling
  format go into the system prompt, past calls and results become text in that format, and
  the model's printed calls are recovered by :mod:`proxy.stream.text_calls`.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Protocol

from .bounded import clip

__all__ = ["pair_tool_results", "sequentialize", "tool_choice_instruction", "emulate_tools", "with_system", "INTERRUPTED"]

log = logging.getLogger("proxy.history")

INTERRUPTED = "The tool call was interrupted before it returned a result (the user stopped it)."


def _blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    content = message.get("content")
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    return list(content) if isinstance(content, list) else []


def _tool_uses(message: dict[str, Any]) -> list[dict[str, Any]]:
    if message.get("role") != "assistant":
        return []
    return [b for b in _blocks(message) if b.get("type") == "tool_use" and isinstance(b.get("id"), str)]


def pair_tool_results(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every tool_use gets exactly one tool_result in the next user turn."""
    out: list[dict[str, Any]] = []
    pending: list[str] = []  # ids of the last assistant turn's calls, awaiting results
    awaited: set[str] = set()  # the same ids, for lookups in constant time
    for i, message in enumerate(messages):
        role = message.get("role")
        if role == "assistant":
            if pending:  # an assistant turn follows calls that never got their user turn
                out.append({"role": "user", "content": _interrupted(pending)})
            pending = [b["id"] for b in _tool_uses(message)]
            awaited = set(pending)
            out.append(message)
            continue
        if role != "user":
            out.append(message)
            continue
        blocks = _blocks(message)
        kept: list[dict[str, Any]] = []
        answered: set[str] = set()
        for block in blocks:
            if block.get("type") == "tool_result":
                tool_id = block.get("tool_use_id")
                if isinstance(tool_id, str) and tool_id in awaited and tool_id not in answered:
                    answered.add(tool_id)
                    kept.append(block)
                else:
                    log.info("dropped a tool_result for %s (messages.%d): it answers no call", clip(tool_id), i)
                continue
            kept.append(block)
        missing = [tool_id for tool_id in pending if tool_id not in answered]
        if missing:
            log.info("synthesized 'interrupted' results for %s (messages.%d)", clip(", ".join(missing)), i)
        if missing or len(kept) != len(blocks):
            message = {**message, "content": _interrupted(missing) + kept}
        pending = []
        awaited = set()
        out.append(message)
    return out


def _interrupted(ids: list[str]) -> list[dict[str, Any]]:
    return [{"type": "tool_result", "tool_use_id": i, "content": INTERRUPTED, "is_error": True} for i in ids]


def sequentialize(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Parallel tool calls → one call and its result per round (see the module doc)."""
    out: list[dict[str, Any]] = []
    i = 0
    while i < len(messages):
        message = messages[i]
        calls = _tool_uses(message)
        reply = messages[i + 1] if i + 1 < len(messages) else None
        if len(calls) < 2 or reply is None or reply.get("role") != "user":
            out.append(message)
            i += 1
            continue
        results = {b.get("tool_use_id"): b for b in _blocks(reply) if b.get("type") == "tool_result"}
        if any(call["id"] not in results for call in calls):
            out.append(message)  # pair_tool_results runs first; be safe if it did not
            i += 1
            continue
        others = [b for b in _blocks(reply) if b.get("type") != "tool_result"]
        preamble = [b for b in _blocks(message) if b.get("type") != "tool_use"]
        for n, call in enumerate(calls):
            last = n == len(calls) - 1
            out.append({"role": "assistant", "content": (preamble if n == 0 else []) + [call]})
            out.append({"role": "user", "content": [results[call["id"]]] + (others if last else [])})
        i += 2
    return out


def tool_choice_instruction(body: dict[str, Any]) -> str | None:
    """An instruction for the system prompt standing in for ``tool_choice``."""
    choice = body.get("tool_choice")
    if not isinstance(choice, dict) or not body.get("tools"):
        return None
    if choice.get("type") == "any":
        return "In this reply you must call one of the available tools."
    if choice.get("type") == "tool" and isinstance(choice.get("name"), str):
        return f"In this reply you must call the tool {choice['name']}."
    return None


_EMULATION_HEADER = """# Tools

You can call tools. To call one, write exactly one line per call, with nothing else on it:
<tool_call>{"name": "<tool name>", "arguments": {<the arguments as JSON>}}</tool_call>
After your calls, stop writing: the results come back as <tool_response> messages.

Available tools (JSON Schema of their arguments):
"""

_DIALECT_HEADER = """# Tools

You can call tools. To call one, write the call in your own tool-call format, on its own, like
this call of the tool {name} with the arguments {arguments}:
{example}
After your calls, stop writing: the results come back as <tool_response> messages.

Available tools (JSON Schema of their arguments):
"""


class CallWriter(Protocol):
    """A call format that can print a call (a dialect of :mod:`proxy.stream.dialects`)."""

    @property
    def name(self) -> str: ...

    def write(self, name: str, arguments: dict[str, Any]) -> str: ...


def _header(functions: list[dict[str, Any]], dialect: CallWriter | None) -> str:
    if dialect is None or dialect.name == "hermes":
        return _EMULATION_HEADER
    spec = functions[0]["function"]
    properties = (spec.get("parameters") or {}).get("properties") or {}
    key = next(iter(properties), "argument")
    arguments = {key: "…"}
    return _DIALECT_HEADER.format(
        name=spec["name"], arguments=json.dumps(arguments, ensure_ascii=False), example=dialect.write(spec["name"], arguments)
    )


def _write_call(name: str, arguments: Any, dialect: CallWriter | None) -> str:
    if dialect is None or not isinstance(arguments, dict):
        return "<tool_call>" + json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False) + "</tool_call>"
    return dialect.write(name, arguments)


def _images_of(message: dict[str, Any]) -> dict[str, Any]:
    return {"images": message["images"]} if message.get("images") else {}


def _join_user_runs(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Consecutive user messages joined into one (results of one turn, then the turn's own
    text, form one user message). Linear: each run is joined once."""
    out: list[dict[str, Any]] = []
    i = 0
    while i < len(messages):
        j = i + 1
        if messages[i]["role"] == "user":
            while j < len(messages) and messages[j]["role"] == "user":
                j += 1
        if j == i + 1:
            out.append(messages[i])
        else:
            run = messages[i:j]
            merged = dict(run[0])
            merged["content"] = "\n\n".join(m["content"] for m in run)
            images = [image for m in run if m.get("images") for image in m["images"]]
            if images:
                merged["images"] = images
            out.append(merged)
        i = j
    return out


def emulate_tools(
    messages: list[dict[str, Any]], functions: list[dict[str, Any]], dialect: CallWriter | None = None
) -> list[dict[str, Any]]:
    """Ollama messages for a model without native tools: the tools described in the
    system prompt, past calls and results as text in the same format. ``dialect``: the
    model's own call format (from its chat template); None: the Hermes ``<tool_call>`` form."""
    lines = [_header(functions, dialect)]
    for function in functions:
        spec = function["function"]
        lines.append(
            json.dumps(
                {"name": spec["name"], "description": spec.get("description", ""), "parameters": spec.get("parameters", {})},
                ensure_ascii=False,
                separators=(",", ":"),
            )
        )
    description = "\n".join(lines)
    out: list[dict[str, Any]] = []
    for message in messages:
        role = message["role"]
        if role == "assistant" and message.get("tool_calls"):
            printed = [_write_call(c["function"]["name"], c["function"]["arguments"], dialect) for c in message["tool_calls"]]
            text = "\n".join(part for part in [message.get("content", "")] + printed if part)
            rewritten = {k: v for k, v in message.items() if k != "tool_calls"}
            out.append({**rewritten, "content": text})
        elif role == "tool":
            name = message.get("tool_name", "tool")
            text = f'<tool_response name="{name}">\n{message["content"]}\n</tool_response>'
            out.append({"role": "user", "content": text, **_images_of(message)})
        else:
            out.append(message)
    return with_system(_join_user_runs(out), description)


def with_system(messages: list[dict[str, Any]], text: str) -> list[dict[str, Any]]:
    """``messages`` with ``text`` at the end of the system prompt: appended to a leading
    system message after a blank line, else as a new one in front. ``messages`` is not
    changed."""
    if messages and messages[0]["role"] == "system":
        return [{**messages[0], "content": f"{messages[0]['content']}\n\n{text}"}, *messages[1:]]
    return [{"role": "system", "content": text}, *messages]
