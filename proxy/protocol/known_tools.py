"""Parse a request body, recognizing tools seen before by their exact JSON text. Sans-I/O.

Claude Code sends the same tools with every request of a session: about 30 KB of JSON
Schema in a 50 KB first turn. Parsing them, measuring their JSON for the token estimate and
encoding them into Ollama's body cost ~0.3 ms a request, before the first token. So
:func:`parse_request_body` parses the body's top-level object one member at a time with the
standard library's own decoder (the same scanner as :func:`json.loads`, the same result and
the same errors) and, where the ``tools`` member's text is exactly the text of a recent
request's tools, reuses that request's :class:`KnownTools` instead of parsing it again.
Whatever is derived from the tools (their JSON length, their Ollama form and its encoding)
is computed once per :class:`KnownTools`, by the modules that need it.

Keyed by the exact text, so a hit is the same JSON value (a ``1`` is not a ``true``, the
order of keys is kept); the cached objects are shared by every request that has the same
tools and must never be modified.
"""

from __future__ import annotations

import collections
import json
import re
import threading
from typing import Any

__all__ = ["KnownTools", "ToolsCache", "parse_request_body"]

#: json's own definition of whitespace between tokens
_WS = re.compile(r"[ \t\n\r]*")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number (numbers must be finite)")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (_INF, -_INF):
        raise ValueError(f"{text[:40]} is out of range (numbers must be finite)")
    return value


_INF = float("inf")
#: json.loads' own scanner, minus what Python accepts and JSON does not: NaN, Infinity and
#: numbers too large for a float (1e999 would be inf). Ollama's body cannot carry them.
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float)


class KnownTools:
    """One request's ``tools`` value and what the proxy derives from it (filled lazily)."""

    __slots__ = ("text", "tools", "json_length", "translation", "functions_json", "depth_checked")

    def __init__(self, text: str, tools: Any) -> None:
        #: the exact JSON text of the ``tools`` member
        self.text = text
        #: the parsed value (read-only: shared by the requests with these tools)
        self.tools = tools
        #: len() of the tools as compact JSON (the token estimate): see proxy.protocol.tokens
        self.json_length: int | None = None
        #: (functions, schemas, left-out server tools, the tool_reference-loaded names it
        #: was made for): see proxy.protocol.translate
        self.translation: (
            tuple[list[dict[str, Any]], dict[str, Any], list[tuple[Any, Any]], frozenset[str]] | None
        ) = None
        #: JSON of ``functions`` as json.dumps encodes it in Ollama's body
        self.functions_json: str | None = None
        #: their nesting was found within the limit (see proxy.protocol.bounded.too_deep)
        self.depth_checked = False


class ToolsCache:
    """The tools of the last few distinct tool sets (a session, its subagents), by text."""

    def __init__(self, size: int = 8) -> None:
        self._size = size
        self._entries: collections.OrderedDict[str, KnownTools] = collections.OrderedDict()
        # Big bodies are parsed in worker threads (proxy.server.app), small ones on the event loop.
        self._lock = threading.Lock()

    def match(self, text: str, start: int) -> KnownTools | None:
        """The entry whose text appears in ``text`` at ``start``, if any."""
        with self._lock:
            for key, entry in self._entries.items():
                if text.startswith(key, start):
                    self._entries.move_to_end(key)
                    return entry
        return None

    def add(self, text: str, tools: Any) -> KnownTools:
        entry = KnownTools(text, tools)
        with self._lock:
            self._entries[text] = entry
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)
        return entry


def parse_request_body(raw: bytes, cache: ToolsCache) -> tuple[Any, KnownTools | None]:
    """``(json.loads(raw), tools)``: the parsed body, and the KnownTools that is its
    ``tools`` value (``body["tools"] is tools.tools``), or None when it has none or it is
    not an object. Raises what json.loads raises (ValueError), with the same message, and
    ValueError for NaN, Infinity and numbers out of a float's range."""
    text = raw.decode(json.detect_encoding(raw), "surrogatepass")  # as json.loads does
    try:
        parsed = _parse_object(text, cache)
    except ValueError:
        parsed = None
    if parsed is None:  # not a plain object, or malformed: json's own answer (or error)
        return _DECODER.decode(text), None
    return parsed


def _skip_ws(s: str, i: int) -> int:
    """The index past the JSON whitespace at ``s[i]`` (``_WS`` matches nothing as well)."""
    match = _WS.match(s, i)
    assert match is not None
    return match.end()


def _parse_object(s: str, cache: ToolsCache) -> tuple[dict[str, Any], KnownTools | None] | None:
    """A top-level JSON object parsed member by member, or None (let json decide)."""
    ws = _skip_ws
    decode = _DECODER.raw_decode
    i = ws(s, 0)
    if s[i : i + 1] != "{":
        return None
    obj: dict[str, Any] = {}
    known: KnownTools | None = None
    i = ws(s, i + 1)
    if s[i : i + 1] == "}":
        return (obj, None) if ws(s, i + 1) == len(s) else None
    while True:
        if s[i : i + 1] != '"':
            return None
        key, i = decode(s, i)
        i = ws(s, i)
        if s[i : i + 1] != ":":
            return None
        i = ws(s, i + 1)
        if key == "tools":
            entry = cache.match(s, i)
            if entry is not None:
                value, i = entry.tools, i + len(entry.text)
            else:
                value, end = decode(s, i)
                # Only an array: its text ends where its value ends, so a later body that
                # starts with the same text at that place holds the same value there.
                entry = cache.add(s[i:end], value) if isinstance(value, list) else None
                i = end
            known = entry  # a repeated key: the last one wins, as in json.loads
        else:
            value, i = decode(s, i)
        obj[key] = value
        i = ws(s, i)
        c = s[i : i + 1]
        if c == ",":
            i = ws(s, i + 1)
        elif c == "}":
            return (obj, known) if ws(s, i + 1) == len(s) else None
        else:
            return None
