"""Anthropic Messages request → Ollama ``/api/chat`` request. Sans-I/O.

:func:`validate_request` checks the fields the proxy relies on and raises
:class:`~proxy.errors.RequestError` naming the field. :func:`translate_request` builds the
Ollama body. Unknown fields are ignored; unknown content blocks are dropped with a log line.

Why the shapes are what they are (see WIRE.md):

* Ollama's ``content`` must be a string, ``arguments`` must be an object.
* Claude Code's first system block is a billing header that changes every request: it
  would defeat Ollama's prefix cache, so it is dropped.
* Claude Code puts ``role: "system"`` messages mid-conversation; most chat templates reject
  a system message that is not first, so they become ``<system-reminder>`` user text,
  merged with the neighbouring user turn.
* Tool results become ``role: "tool"`` messages placed before the rest of their user turn,
  so each result directly follows the assistant turn that called it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from typing import Any

from ..errors import RequestError
from .bounded import clip
from .known_tools import KnownTools
from .history import CallWriter, emulate_tools, pair_tool_results, sequentialize, tool_choice_instruction, with_system
from .thinking import decide_think

__all__ = ["validate_request", "validate_count_request", "translate_request", "encode_ollama_body", "TranslatedRequest", "BILLING_HEADER_PREFIX"]

log = logging.getLogger("proxy.translate")

BILLING_HEADER_PREFIX = "x-anthropic-billing-header:"
_ROLES = ("user", "assistant", "system")


@dataclasses.dataclass(frozen=True, slots=True)
class TranslatedRequest:
    """What the relay needs: the Ollama body and facts about the client request."""

    ollama: dict[str, Any]
    client_model: str
    stream: bool
    #: name → input_schema of every tool offered to the model (for tool-call repair)
    tools: dict[str, dict[str, Any]]
    #: the client asked for thinking and the model cannot think
    thinking_dropped: bool = False
    #: the request's tools when they were recognized (see encode_ollama_body)
    known_tools: KnownTools | None = None


def _fail(path: str, problem: str) -> RequestError:
    return RequestError(f"{path}: {problem}")


#: Model names in use (Anthropic's, Ollama's, Hugging Face paths with a tag) are far shorter.
#: A longer one is refused before it is echoed into any log record or error.
MODEL_NAME_LIMIT = 512


def _is_unicode(text: str) -> bool:
    """False for a string with a lone surrogate (JSON's ``"\\ud800"``): no UTF-8 encoder
    takes it, so it must not reach a log record, a header or a response."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _validate_model(model: Any) -> None:
    """The checks of ``model``, the same on every route."""
    if not isinstance(model, str) or not model.strip():
        raise _fail("model", "must be a non-empty string")
    if len(model) > MODEL_NAME_LIMIT:
        raise _fail("model", f"must be at most {MODEL_NAME_LIMIT} characters (got {len(model)})")
    if not _is_unicode(model):
        raise _fail("model", "must be valid Unicode text (it contains a lone surrogate, e.g. \\ud800)")


def validate_count_request(body: Any) -> dict[str, Any]:
    """Check a count_tokens request the way :func:`validate_request` checks the same fields
    of a Messages request (the same field gets the same message on both routes)."""
    if not isinstance(body, dict):
        raise RequestError("request body must be a JSON object")
    if "model" in body:
        _validate_model(body["model"])
    if "messages" not in body:
        raise _fail("messages", "field required")
    if not isinstance(body["messages"], list):
        raise _fail("messages", "must be an array")
    return body


def validate_request(body: Any) -> dict[str, Any]:
    """Check a parsed Messages request; return it. Raises RequestError naming the field."""
    if not isinstance(body, dict):
        raise RequestError("request body must be a JSON object")
    if "model" not in body:
        raise _fail("model", "field required")
    _validate_model(body["model"])
    if "max_tokens" not in body:
        raise _fail("max_tokens", "field required")
    if not _is_int(body["max_tokens"]) or body["max_tokens"] < 1:
        raise _fail("max_tokens", "must be an integer >= 1")
    if "messages" not in body:
        raise _fail("messages", "field required")
    messages = body["messages"]
    if not isinstance(messages, list):
        raise _fail("messages", "must be an array")
    if not messages:
        raise _fail("messages", "at least one message is required")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise _fail(f"messages.{i}", "must be an object")
        if message.get("role") not in _ROLES:
            raise _fail(f"messages.{i}.role", "must be one of 'user', 'assistant', 'system'")
        content = message.get("content")
        if not isinstance(content, (str, list)):
            raise _fail(f"messages.{i}.content", "must be a string or an array of content blocks")
        if isinstance(content, list):
            for j, block in enumerate(content):
                if not isinstance(block, dict) or not isinstance(block.get("type"), str):
                    raise _fail(f"messages.{i}.content.{j}", "must be an object with a 'type'")
    if "stream" in body and not isinstance(body["stream"], bool):
        raise _fail("stream", "must be a boolean")
    system = body.get("system")
    if system is not None and not isinstance(system, (str, list)):
        raise _fail("system", "must be a string or an array of text blocks")
    if isinstance(system, list):
        for j, block in enumerate(system):
            if not isinstance(block, dict) or not isinstance(block.get("text"), str):
                raise _fail(f"system.{j}", "must be a text block with a string 'text'")
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise _fail("tools", "must be an array")
        for j, tool in enumerate(tools):
            if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
                raise _fail(f"tools.{j}", "must be an object with a string 'name'")
            schema = tool.get("input_schema")
            if tool.get("type") in (None, "custom") and schema is not None and not isinstance(schema, dict):
                raise _fail(f"tools.{j}.input_schema", "must be an object")
    for key in ("temperature", "top_p"):
        if key in body and body[key] is not None and (
            isinstance(body[key], bool) or not isinstance(body[key], (int, float)) or not math.isfinite(body[key])
        ):
            raise _fail(key, "must be a number")  # NaN and Infinity parse, but Ollama's JSON has no such thing
    if "top_k" in body and body["top_k"] is not None and not _is_int(body["top_k"]):
        raise _fail("top_k", "must be an integer")
    stops = body.get("stop_sequences")
    if stops is not None and (
        not isinstance(stops, list) or not all(isinstance(s, str) for s in stops)
    ):
        raise _fail("stop_sequences", "must be an array of strings")
    return body


# --- content blocks --------------------------------------------------------------------


def _text_of(block: dict[str, Any], path: str) -> str:
    text = block.get("text")
    if not isinstance(text, str):
        raise _fail(f"{path}.text", "must be a string")
    return text


def _image_data(block: dict[str, Any], path: str) -> str:
    source = block.get("source")
    if not isinstance(source, dict):
        raise _fail(f"{path}.source", "must be an object")
    data = source.get("data")
    if source.get("type") == "base64" and isinstance(data, str):
        return data
    if source.get("type") == "url":
        raise _fail(
            f"{path}.source",
            "image URLs are not supported by the local model; send the image as base64 data",
        )
    raise _fail(f"{path}.source", "expected a base64 image source with string 'data'")


def _document_text(block: dict[str, Any], path: str) -> str:
    source = block.get("source")
    if not isinstance(source, dict):
        raise _fail(f"{path}.source", "must be an object")
    title = block.get("title")
    header = f"<document title={json.dumps(title)}>\n" if isinstance(title, str) else "<document>\n"
    kind = source.get("type")
    if kind == "text" and isinstance(source.get("data"), str):
        body = source["data"]
    elif kind == "content" and isinstance(source.get("content"), (str, list)):
        inner = source["content"]
        if isinstance(inner, str):
            body = inner
        else:
            body = "\n\n".join(
                _text_of(b, f"{path}.source.content.{k}")
                for k, b in enumerate(inner)
                if isinstance(b, dict) and b.get("type") == "text"
            )
    else:
        raise _fail(
            f"{path}.source",
            f"documents of source type {clip(repr(kind))} are not supported by the local model;"
            " only text documents are",
        )
    return f"{header}{body}\n</document>"


def _add_media(block: Any, kind: Any, path: str, texts: list[str], images: list[str]) -> bool:
    """Add a text, image or document block to ``texts``/``images``; False for other kinds."""
    if kind == "text":
        texts.append(_text_of(block, path))
    elif kind == "image":
        images.append(_image_data(block, path))
    elif kind == "document":
        texts.append(_document_text(block, path))
    else:
        return False
    return True


def _tool_result(
    block: dict[str, Any], path: str, tool_names: dict[str, str]
) -> dict[str, Any]:
    """One ``tool_result`` → an Ollama tool message. ``tool_reference`` blocks (what
    Claude Code's ToolSearch returns: the tools it loaded) become a sentence naming them;
    the tools themselves are offered from then on (see :func:`referenced_tools`)."""
    tool_use_id = block.get("tool_use_id")
    if not isinstance(tool_use_id, str):
        raise _fail(f"{path}.tool_use_id", "must be a string")
    content = block.get("content", "")
    texts: list[str] = []
    images: list[str] = []
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        loaded: list[str] = []
        for k, inner in enumerate(content):
            inner_path = f"{path}.content.{k}"
            kind = inner.get("type") if isinstance(inner, dict) else None
            if kind == "tool_reference" and isinstance(inner.get("tool_name"), str):
                loaded.append(inner["tool_name"])
            elif not _add_media(inner, kind, inner_path, texts, images):
                log.info("dropped a %s block inside a tool_result at %s", clip(repr(kind)), inner_path)
        if loaded:
            texts.append(
                f"Loaded {'the tool' if len(loaded) == 1 else 'the tools'} {', '.join(loaded)}:"
                " now in your tool list; call them directly."
            )
    elif content is not None:
        raise _fail(f"{path}.content", "must be a string or an array of content blocks")
    text = "\n\n".join(texts)
    if block.get("is_error"):
        text = f"Error: {text}" if text else "Error: the tool failed"
    message: dict[str, Any] = {"role": "tool", "content": text}
    if images:
        message["images"] = images
    name = tool_names.get(tool_use_id)
    if name is not None:
        message["tool_name"] = name
    else:
        log.info("tool_result %s at %s answers no earlier tool_use", clip(tool_use_id), path)
    message["tool_call_id"] = tool_use_id
    return message


def _user_turn(
    content: str | list[dict[str, Any]], path: str, tool_names: dict[str, str]
) -> list[dict[str, Any]]:
    """One Anthropic user turn → tool messages first, then one user message (if any)."""
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    tool_messages: list[dict[str, Any]] = []
    texts: list[str] = []
    images: list[str] = []
    for j, block in enumerate(content):
        block_path = f"{path}.content.{j}"
        kind = block["type"]
        if kind == "tool_result":
            tool_messages.append(_tool_result(block, block_path, tool_names))
        elif not _add_media(block, kind, block_path, texts, images):
            log.info("dropped a %s block at %s: the local model cannot use it", clip(repr(kind)), block_path)
    result = tool_messages
    if texts or images or not tool_messages:
        user: dict[str, Any] = {"role": "user", "content": "\n\n".join(texts)}
        if images:
            user["images"] = images
        result.append(user)
    return result


def _assistant_turn(
    content: str | list[dict[str, Any]], path: str, tool_names: dict[str, str]
) -> dict[str, Any]:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    texts: list[str] = []
    thinking: list[str] = []
    calls: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        block_path = f"{path}.content.{j}"
        kind = block["type"]
        if kind == "text":
            texts.append(_text_of(block, block_path))
        elif kind == "thinking":
            if isinstance(block.get("thinking"), str):
                thinking.append(block["thinking"])
        elif kind == "redacted_thinking":
            pass  # opaque to any model but Claude's
        elif kind == "tool_use":
            name, tool_id, arguments = block.get("name"), block.get("id"), block.get("input", {})
            if not isinstance(name, str) or not isinstance(tool_id, str):
                raise _fail(block_path, "tool_use needs a string 'id' and 'name'")
            if not isinstance(arguments, dict):
                raise _fail(f"{block_path}.input", "must be an object")
            tool_names[tool_id] = name
            calls.append({"id": tool_id, "function": {"name": name, "arguments": arguments}})
        else:
            log.info("dropped a %s block at %s: the local model cannot use it", clip(repr(kind)), block_path)
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts)}
    if thinking:
        message["thinking"] = "\n\n".join(thinking)
    if calls:
        message["tool_calls"] = calls
    return message


def _system_text(block_or_text: str | list[dict[str, Any]]) -> str:
    if isinstance(block_or_text, str):
        return block_or_text
    return "\n\n".join(
        b["text"] for b in block_or_text if not b["text"].startswith(BILLING_HEADER_PREFIX)
    )


def _inline_system(content: str | list[dict[str, Any]], path: str) -> dict[str, Any]:
    if isinstance(content, list):
        text = "\n\n".join(
            _text_of(b, f"{path}.content.{j}")
            for j, b in enumerate(content)
            if b["type"] == "text"
        )
    else:
        text = content
    return {"role": "user", "content": f"<system-reminder>\n{text}\n</system-reminder>"}


def _merge_same_role(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Merge consecutive user or assistant messages: chat templates expect alternation.

    Linear in the size of the history: each run of same-role messages collects its parts
    and joins them once (rebuilding the growing string per message was quadratic: 40,000
    short messages took seconds).
    """
    merged: list[dict[str, Any]] = []
    run: list[dict[str, Any]] = []  # consecutive messages of one mergeable role

    def flush() -> None:
        if len(run) == 1:
            merged.append(dict(run[0]))
        elif run:
            merged.append(_merged(run))
        run.clear()

    for message in messages:
        role = message["role"]
        if role not in ("user", "assistant"):
            flush()
            merged.append(dict(message))
        else:
            if run and run[0]["role"] != role:
                flush()
            run.append(message)
    flush()
    return merged


def _merged(run: list[dict[str, Any]]) -> dict[str, Any]:
    """One message for a run of same-role messages (see _merge_same_role)."""
    first = run[0]
    joiner = "\n\n" if first["role"] == "user" else ""
    message = dict(first)
    message["content"] = joiner.join(m["content"] for m in run if m["content"])
    images = [image for m in run if m.get("images") for image in m["images"]]
    if images:
        message["images"] = images
    thinking = [m["thinking"] for m in run if m.get("thinking")]
    if thinking:
        message["thinking"] = "\n\n".join(thinking)
    calls = [call for m in run if m.get("tool_calls") for call in m["tool_calls"]]
    if calls:
        message["tool_calls"] = calls
    return message


def translate_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The Ollama ``messages`` array for a validated request."""
    out: list[dict[str, Any]] = []
    system = body.get("system")
    if system:
        text = _system_text(system)
        if text:
            out.append({"role": "system", "content": text})
    tool_names: dict[str, str] = {}
    # A system message right after an assistant turn waits for the next turn: placed at
    # once it would come between a tool call and its results (which go first in a turn).
    pending: list[dict[str, Any]] = []
    for i, message in enumerate(body["messages"]):
        path = f"messages.{i}"
        role, content = message["role"], message["content"]
        if role == "user":
            turn = _user_turn(content, path, tool_names)
            results = [m for m in turn if m["role"] == "tool"]
            out.extend(results + pending + turn[len(results) :])
            pending = []
        elif role == "assistant":
            out.extend(pending)
            pending = []
            out.append(_assistant_turn(content, path, tool_names))
        elif out and out[-1]["role"] == "assistant":
            pending.append(_inline_system(content, path))
        else:
            out.append(_inline_system(content, path))
    out.extend(pending)
    return _merge_same_role(out)


def referenced_tools(messages: list[Any]) -> frozenset[str]:
    """Names of the tools that ``tool_reference`` blocks in tool results have loaded."""
    names: set[str] = set()
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if message.get("role") != "user" or not isinstance(content, list):
            continue
        for block in content:
            if isinstance(block, dict) and block.get("type") == "tool_result" and isinstance(block.get("content"), list):
                for inner in block["content"]:
                    if isinstance(inner, dict) and inner.get("type") == "tool_reference":
                        name = inner.get("tool_name")
                        if isinstance(name, str):
                            names.add(name)
    return frozenset(names)


def translate_tools(
    body: dict[str, Any], known_tools: KnownTools | None = None
) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """Client tools → Ollama function tools; server tools are left out with a log line.

    A tool marked ``defer_loading`` is offered only once a ``tool_reference`` in the
    conversation has loaded it (Claude Code's ToolSearch): a small model is not shown
    every tool's schema, nor Claude Code's ``DeferredToolPlaceholder``.

    ``known_tools``: the body's tools as parse_request_body found them; they are then
    translated once for every request that has them and loads the same tools (the
    result is shared: read-only).
    """
    tools = body.get("tools") or []
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "none":
        return [], {}
    loaded = referenced_tools(body["messages"])
    if known_tools is not None and body.get("tools") is known_tools.tools:
        if known_tools.translation is None or known_tools.translation[3] != loaded:
            known_tools.translation = _translate_tools(tools, loaded)
            known_tools.functions_json = None
        functions, schemas, left_out, _ = known_tools.translation
    else:
        functions, schemas, left_out, _ = _translate_tools(tools, loaded)
    for name, kind in left_out:
        log.info("left out server tool %s (type %s): Ollama cannot run it", clip(repr(name)), clip(repr(kind)))
    return functions, schemas


def _translate_tools(
    tools: list[dict[str, Any]], loaded: frozenset[str] = frozenset()
) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]], list[tuple[Any, Any]], frozenset[str]]:
    functions: list[dict[str, Any]] = []
    schemas: dict[str, dict[str, Any]] = {}
    left_out: list[tuple[Any, Any]] = []
    for tool in tools:
        if tool.get("type") not in (None, "custom"):
            left_out.append((tool["name"], tool["type"]))
            continue
        if tool.get("defer_loading") is True and tool["name"] not in loaded:
            continue  # not loaded yet: ToolSearch offers it by name
        schema = tool.get("input_schema") or {"type": "object", "properties": {}}
        description = tool.get("description")
        functions.append(
            {
                "type": "function",
                "function": {
                    "name": tool["name"],
                    "description": description if isinstance(description, str) else "",
                    "parameters": schema,
                },
            }
        )
        schemas[tool["name"]] = schema
    return functions, schemas, left_out, loaded


def translate_options(body: dict[str, Any]) -> dict[str, Any]:
    options: dict[str, Any] = {"num_predict": body["max_tokens"]}
    for ours, theirs in (("temperature", "temperature"), ("top_p", "top_p"), ("top_k", "top_k")):
        if body.get(ours) is not None:
            options[theirs] = body[ours]
    # stop_sequences are matched by the proxy (proxy/stream/stop_sequences.py): Ollama's
    # own stop would hide which one matched.
    return options


def translate_request(
    body: dict[str, Any],
    *,
    ollama_model: str,
    can_think: bool = True,
    sequential_tools: bool = True,
    native_tools: bool = True,
    known_tools: KnownTools | None = None,
    call_dialect: CallWriter | None = None,
) -> TranslatedRequest:
    """Build the Ollama ``/api/chat`` body for a request that passed :func:`validate_request`.

    ``can_think``: whether the model can think (from its capabilities); ``think`` is set
    as :func:`~proxy.protocol.thinking.decide_think` says. ``sequential_tools``: rewrite
    parallel tool calls as rounds of one. ``native_tools``: False for a model without tool
    calling: the tools are described in the system prompt instead (see
    :mod:`proxy.protocol.history`). ``known_tools``: the body's tools as
    :func:`~proxy.protocol.known_tools.parse_request_body` found them (translated once).
    ``call_dialect``: the model's own call format (its ``write(name, arguments)``), used to
    describe tools to a model whose tools are emulated; None: the Hermes ``<tool_call>`` form.

    Raises RequestError for content the local model cannot take (image URLs, PDFs).
    """
    functions, schemas = translate_tools(body, known_tools)
    history = pair_tool_results(body["messages"])
    if sequential_tools:
        history = sequentialize(history)
    messages = translate_messages({**body, "messages": history})
    instruction = tool_choice_instruction(body) if functions else None
    if instruction:
        messages = with_system(messages, instruction)
    if functions and not native_tools:
        messages = emulate_tools(messages, functions, call_dialect)
    ollama: dict[str, Any] = {
        "model": ollama_model,
        "messages": messages,
        "stream": True,
        "options": translate_options(body),
    }
    if functions and native_tools:
        ollama["tools"] = functions
    decision = decide_think(body, model=ollama_model, can_think=can_think)
    if decision.think is not None:
        ollama["think"] = decision.think
    output_config = body.get("output_config")
    if isinstance(output_config, dict) and isinstance(output_config.get("format"), dict):
        fmt = output_config["format"]
        if fmt.get("type") == "json_schema" and isinstance(fmt.get("schema"), dict):
            ollama["format"] = fmt["schema"]
    return TranslatedRequest(
        ollama=ollama,
        client_model=body["model"],
        stream=bool(body.get("stream", False)),
        tools=schemas,
        thinking_dropped=decision.dropped,
        known_tools=known_tools,
    )


def encode_ollama_body(request: TranslatedRequest) -> bytes:
    """``request.ollama`` as JSON bytes: exactly ``json.dumps(request.ollama, allow_nan=False)``.

    json.dumps' default (non-ASCII as \\u escapes) is the same JSON for Ollama and encodes in
    half the time of keeping UTF-8. When ``ollama["tools"]`` is the recognized tools'
    translation, their encoding (most of a Claude Code request) is made once and reused:
    the body is then joined member by member as json.dumps joins them.
    """
    ollama = request.ollama
    known = request.known_tools
    if known is None or known.translation is None or ollama.get("tools") is not known.translation[0]:
        return json.dumps(ollama, allow_nan=False).encode()
    if known.functions_json is None:
        known.functions_json = json.dumps(known.translation[0], allow_nan=False)
    members = [
        f"{json.dumps(key)}: {known.functions_json if key == 'tools' else json.dumps(value, allow_nan=False)}"
        for key, value in ollama.items()
    ]
    return ("{" + ", ".join(members) + "}").encode()
