"""Tool calls a model printed as text, turned into real calls while the text streams. Sans-I/O.

Small models often write a call into their content instead of using Ollama's native tool
calls. :class:`TextCallFilter` sits between Ollama's content and the state machine and
recognizes these forms, for tools the client offered:

* ``<tool_call>{"name": "Write", "arguments": {…}}</tool_call>`` (Hermes, Qwen)
* ``<function=Write>{…}</function>`` or ``<function=Write><parameter=file_path>…</parameter>…</function>``
* a bare ``{"name": "Write", "arguments"|"parameters": {…}}``
* any of these inside a fenced block (```` ```json ```` … ```` ``` ````)

Theory of operation: text flows through untouched until a character that may begin one of
these forms (``<``, ``{``, a backtick). From there the filter *holds* the text and, on every
feed, classifies what it holds: still possibly a call (keep holding), certainly not (release
the first character as text and look again from the next), or a whole call (emit it). So only
text that may still be the start of a call is held back, and it is released the moment it
cannot be. :meth:`TextCallFilter.finish` releases or completes what is held at the end.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

import json_repair

__all__ = ["TextCallFilter", "TextPiece", "TextCall"]

#: Held text beyond this is released as text: no real call is this long before it parses.
MAX_HOLD = 256 * 1024

_OPENERS = ("<tool_call>", "<function=", "```", "{")
_FENCE_LANGS = ("", "json", "tool_call", "tool_code", "xml")
_NAME_KEYS = ("name", "tool", "tool_name", "function")
_ARG_KEYS = ("arguments", "parameters", "args", "input")
_PARAMETER = re.compile(r"<parameter=([^>\s]+)>\s*(.*?)\s*</parameter>", re.DOTALL)


@dataclasses.dataclass(frozen=True, slots=True)
class TextPiece:
    text: str


@dataclasses.dataclass(frozen=True, slots=True)
class TextCall:
    name: str
    arguments: Any
    #: the text the model printed for it (for the log)
    source: str


_MORE = "more"  # classify: cannot tell yet
_NO = "no"  # classify: not a call


class TextCallFilter:
    """``feed(text)`` and ``finish()`` → a list of :class:`TextPiece` and :class:`TextCall`."""

    def __init__(self, tool_names: list[str] | tuple[str, ...]) -> None:
        self._tools = {name.lower(): name for name in tool_names}
        self._held = ""

    @property
    def holding(self) -> str:
        return self._held

    def feed(self, text: str) -> list[TextPiece | TextCall]:
        self._held += text
        return self._drain(final=False)

    def finish(self) -> list[TextPiece | TextCall]:
        return self._drain(final=True)

    # -- scanning ----------------------------------------------------------------------

    def _drain(self, *, final: bool) -> list[TextPiece | TextCall]:
        out: list[TextPiece | TextCall] = []
        text_parts: list[str] = []
        buf = self._held
        while buf:
            start = self._candidate_start(buf)
            if start is None:
                text_parts.append(buf)
                buf = ""
                break
            if start:
                text_parts.append(buf[:start])
                buf = buf[start:]
            verdict = self._classify(buf, final=final)
            if verdict == _MORE and len(buf) <= MAX_HOLD:
                break
            if isinstance(verdict, tuple):
                call, consumed = verdict
                if text_parts:
                    out.append(TextPiece("".join(text_parts)))
                    text_parts = []
                out.append(call)
                buf = buf[consumed:]
                continue
            text_parts.append(buf[0])  # not a call (or held too long): one character is text
            buf = buf[1:]
        if text_parts and "".join(text_parts):
            out.append(TextPiece("".join(text_parts)))
        self._held = buf
        return out

    @staticmethod
    def _candidate_start(buf: str) -> int | None:
        """Index of the first place a call may begin (a whole opener, or the start of one
        cut off at the end of ``buf``)."""
        for i, char in enumerate(buf):
            if char in "<{`":
                rest = buf[i:]
                if any(rest.startswith(o) or o.startswith(rest) for o in _OPENERS):
                    return i
        return None

    def _classify(self, buf: str, *, final: bool) -> Any:
        if buf.startswith("```") or "```".startswith(buf):
            return self._fenced(buf, final=final)
        if buf.startswith("<tool_call>") or "<tool_call>".startswith(buf):
            return self._tagged(buf, "<tool_call>", "</tool_call>", final=final)
        if buf.startswith("<function=") or "<function=".startswith(buf):
            return self._function_tag(buf, final=final)
        if buf.startswith("{"):
            return self._bare(buf, final=final)
        return _NO

    # -- the forms ---------------------------------------------------------------------

    def _call_from_object(self, obj: Any, source: str) -> TextCall | None:
        if not isinstance(obj, dict):
            return None
        name = next((obj[k] for k in _NAME_KEYS if isinstance(obj.get(k), str)), None)
        if name is None or name.lower() not in self._tools:
            return None
        arguments = next((obj[k] for k in _ARG_KEYS if k in obj), {})
        return TextCall(self._tools[name.lower()], arguments, source)

    def _bare(self, buf: str, *, final: bool) -> Any:
        if not self._header_possible(buf):
            return _NO
        end = _object_end(buf)
        if end is None:
            if final:
                return self._parse_call(buf, len(buf), repair=True)
            return _MORE
        return self._parse_call(buf[:end], end)

    def _parse_call(self, text: str, consumed: int, *, repair: bool = False) -> Any:
        try:
            obj = json.loads(text)
        except ValueError:
            obj = json_repair.loads(text) if repair or text.startswith("{") else None
        call = self._call_from_object(obj, text)
        return (call, consumed) if call is not None else _NO

    def _header_possible(self, buf: str) -> bool:
        """Whether ``buf`` may still begin ``{"name": "<an offered tool>"``."""

        def skip_space(pos: int) -> int:
            while pos < len(buf) and buf[pos] in " \t\r\n":
                pos += 1
            return pos

        pos = skip_space(1)
        if pos == len(buf):
            return True
        if buf[pos] != '"':
            return False
        end = buf.find('"', pos + 1)
        key = buf[pos + 1 : end if end >= 0 else len(buf)]
        if end < 0:
            return any(k.startswith(key) for k in _NAME_KEYS)
        if key not in _NAME_KEYS:
            return False
        pos = skip_space(end + 1)
        if pos == len(buf):
            return True
        if buf[pos] != ":":
            return False
        pos = skip_space(pos + 1)
        if pos == len(buf):
            return True
        if buf[pos] != '"':
            return False
        end = buf.find('"', pos + 1)
        value = buf[pos + 1 : end if end >= 0 else len(buf)].lower()
        if end < 0:
            return any(tool.startswith(value) for tool in self._tools)
        return value in self._tools

    def _tagged(self, buf: str, opener: str, closer: str, *, final: bool) -> Any:
        if not buf.startswith(opener):
            return _MORE if not final else _NO
        end = buf.find(closer)
        if end < 0:
            if not final:
                return _MORE
            inner, consumed = buf[len(opener):], len(buf)  # the model stopped before closing
        else:
            inner, consumed = buf[len(opener):end], end + len(closer)
        inner = inner.strip()
        return self._parse_call(inner, consumed, repair=True)

    def _function_tag(self, buf: str, *, final: bool) -> Any:
        if not buf.startswith("<function="):
            return _MORE if not final else _NO
        head = re.match(r"<function=([^>\s]*)(>?)", buf)
        name = head.group(1)
        if not any(tool.startswith(name.lower()) for tool in self._tools):
            return _NO
        if not head.group(2):
            return _MORE if not final else _NO
        if name.lower() not in self._tools:
            return _NO
        end = buf.find("</function>")
        if end < 0 and not final:
            return _MORE
        body = buf[head.end(): end if end >= 0 else len(buf)].strip()
        consumed = end + len("</function>") if end >= 0 else len(buf)
        parameters = _PARAMETER.findall(body)
        if parameters:
            arguments: Any = {key: _scalar(value) for key, value in parameters}
        else:
            arguments = body or "{}"
        return TextCall(self._tools[name.lower()], arguments, buf[:consumed]), consumed

    def _fenced(self, buf: str, *, final: bool) -> Any:
        if len(buf) < 3:
            return _MORE if not final else _NO
        newline = buf.find("\n", 3)
        lang = buf[3: newline if newline >= 0 else len(buf)].strip().lower()
        if newline < 0:
            if final or not any(l.startswith(lang) for l in _FENCE_LANGS):
                return _NO
            return _MORE
        if lang not in _FENCE_LANGS:
            return _NO
        body_start = newline + 1
        inner = buf[body_start:].lstrip()
        if not inner:
            return _MORE if not final else _NO
        offset = len(buf) - len(inner)
        verdict = self._classify(inner, final=final)
        if not isinstance(verdict, tuple):
            return verdict
        call, consumed = verdict
        rest = buf[offset + consumed:]
        closing = re.match(r"\s*```", rest)
        if closing:
            return call, offset + consumed + closing.end()
        if not final and re.fullmatch(r"\s*`{0,2}", rest):
            return _MORE  # the closing fence may still come
        return call, offset + consumed


def _object_end(text: str) -> int | None:
    """Index just past the JSON object that starts ``text``, or None if it is not closed."""
    depth, in_string, escaped = 0, False, False
    for i, char in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
            if depth == 0:
                return i + 1
    return None


def _scalar(value: str) -> Any:
    """A ``<parameter>`` value: JSON when it parses as a number, bool, array or object."""
    try:
        parsed = json.loads(value)
    except ValueError:
        return value
    return parsed if not isinstance(parsed, str) else value
