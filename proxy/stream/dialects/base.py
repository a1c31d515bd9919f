"""The one interface every dialect recognizer implements, and the parsing helpers they share.

A dialect knows the strings a call of its family starts with (:attr:`Dialect.openers`) and,
given text that starts with one of them, says one of three things (:meth:`Dialect.parse`):
``MORE`` (cannot tell yet: hold the text), ``NO`` (not a call of this dialect: it is text),
or a :class:`Found` (these calls, made of the first ``consumed`` characters). It never sees
text before its opener, never keeps state between calls, and does no I/O: the streaming
engine (:class:`~proxy.stream.text_calls.TextCallFilter`) does the holding and releasing.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import re
from typing import Any, ClassVar

import json_repair

__all__ = ["Dialect", "Found", "Tools", "MORE", "NO", "Sample", "Calls", "Piece"]

MORE = "more"  #: cannot tell yet
NO = "no"  #: not a call of this dialect

#: the keys a JSON call names its tool and its arguments with, across families
NAME_KEYS = ("name", "tool_name", "tool", "function")
ARG_KEYS = ("arguments", "parameters", "args", "input")


#: calls as recognized: (offered tool name, arguments as printed: an object, or text for
#: the repair to decode), in the order printed
Calls = tuple[tuple[str, Any], ...]
#: one piece of a sample's expected output: ``("text", text)`` or ``("call", name, arguments)``
Piece = tuple[str, str] | tuple[str, str, Any]


@dataclasses.dataclass(frozen=True, slots=True)
class Found:
    calls: Calls
    #: characters of the text the calls were made of
    consumed: int


@dataclasses.dataclass(frozen=True, slots=True)
class Sample:
    """One row of a dialect's sample table: what the model prints, what must come out.

    ``expected`` is a list of ``("text", str)`` and ``("call", name, arguments)``; the tests
    offer the tools ``Bash``, ``Write`` and ``Edit`` (see tests/test_dialects.py)."""

    id: str
    text: str
    expected: tuple[Piece, ...]


class Tools:
    """The tool names the request offered, matched without regard to case."""

    __slots__ = ("by_lower",)

    def __init__(self, names: Any) -> None:
        self.by_lower = {name.lower(): name for name in names}

    def get(self, name: Any) -> str | None:
        return self.by_lower.get(name.lower()) if isinstance(name, str) else None

    def may_start(self, prefix: str) -> bool:
        """Whether some offered name starts with ``prefix``."""
        prefix = prefix.lower()
        return any(name.startswith(prefix) for name in self.by_lower)


class Dialect:
    """One family's printed call format. Subclasses set the class attributes and ``parse``."""

    #: short name, used in logs, the live view and docs
    name: ClassVar[str]
    #: the model families that print it (for docs)
    families: ClassVar[str]
    #: strings a call starts with; text is only ever given to ``parse`` starting with one
    openers: ClassVar[tuple[str, ...]]
    #: strings that, found in a model's chat template, say the model was trained on this dialect
    template_markers: ClassVar[tuple[str, ...]] = ()
    #: tried for every model, whatever its template says (formats any model may fall back to)
    universal: ClassVar[bool] = False
    #: the dialect's sample table (tests run each whole, byte by byte and at every split)
    samples: ClassVar[tuple[Sample, ...]] = ()

    def parse(self, buf: str, tools: Tools, final: bool) -> Any:
        """``buf`` starts with one of :attr:`openers`. ``final``: no more text will come."""
        raise NotImplementedError

    def write(self, name: str, arguments: dict[str, Any]) -> str:
        """The call as this dialect prints it (to describe the format to an emulated model)."""
        return "<tool_call>" + json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False) + "</tool_call>"

    def __repr__(self) -> str:
        return f"<dialect {self.name}>"


# -- helpers ------------------------------------------------------------------------------


#: the next character that matters outside a string, and inside one
_STRUCTURE = re.compile(r'["{}\[\]]')
_IN_STRING = re.compile(r'["\\]')
#: (start, the text's first characters from there) → (the text scanned, where the scan
#: stopped, depth, inside a string): a held call grows by appending, so the next call
#: resumes where this one stopped instead of reading the whole text again
_RESUME: dict[tuple[int, str], tuple[str, int, int, bool]] = {}
_RESUME_FROM = 4096  # shorter texts are cheap to scan again
_RESUME_SIZE = 16


def json_end(text: str, start: int = 0) -> int | None:
    """Index just past the JSON object or array that starts at ``text[start]``; None if it
    is not closed yet.

    Called again on every piece while a printed call arrives, so it must not read the whole
    text each time: a 60 KB call streamed in small pieces cost seconds of event loop that
    way. The scan jumps between the characters that matter (in C), and a long text that
    is still open is remembered, so the next call on the same text grown longer resumes."""
    key = (start, text[start : start + 32])
    saved = _RESUME.pop(key, None)
    if saved is not None and len(text) >= len(saved[0]) and text.startswith(saved[0]):
        pos, depth, in_string = saved[1], saved[2], saved[3]
    else:
        pos, depth, in_string = start, 0, False
    size = len(text)
    while True:
        if in_string:
            found = _IN_STRING.search(text, pos)
            if found is None:
                pos = size
                break
            if found.group() == "\\":
                if found.end() >= size:  # the escaped character has not arrived yet
                    pos = found.start()
                    break
                pos = found.end() + 1
                continue
            in_string, pos = False, found.end()
            continue
        found = _STRUCTURE.search(text, pos)
        if found is None:
            pos = size
            break
        char, pos = found.group(), found.end()
        if char == '"':
            in_string = True
        elif char in "{[":
            depth += 1
        else:
            depth -= 1
            if depth == 0:
                return pos
    if size - start >= _RESUME_FROM:
        _RESUME[key] = (text, pos, depth, in_string)
        while len(_RESUME) > _RESUME_SIZE:
            del _RESUME[next(iter(_RESUME))]
    return None


def load_json(text: str) -> Any:
    """JSON, else near-JSON repaired; None when it is not even that."""
    text = text.strip()
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # nested past the decoder's depth: judged below, never a crash
        pass
    if not text.startswith(("{", "[")):
        return None
    try:
        return json_repair.loads(text)
    except Exception:  # json_repair raises on some inputs; then it is not a call
        return None


def json_calls(value: Any, tools: Tools) -> Calls | None:
    """Calls from a decoded ``{"name": …, "arguments": …}`` or a list of them; None unless
    every one names an offered tool."""
    items = value if isinstance(value, list) else [value]
    calls: list[tuple[str, Any]] = []
    for item in items:
        if not isinstance(item, dict):
            return None
        if isinstance(item.get("function"), dict):  # OpenAI's {"type": "function", "function": {…}}
            item = item["function"]
        name = next((tools.get(item[k]) for k in NAME_KEYS if isinstance(item.get(k), str)), None)
        if name is None or not item.keys() <= _CALL_KEYS:  # other keys: data that has a "name"
            return None
        calls.append((name, next((item[k] for k in ARG_KEYS if k in item), {})))
    return tuple(calls) or None


_SPACE = " \t\r\n"
#: every key a printed call object may have
_CALL_KEYS = frozenset(NAME_KEYS + ARG_KEYS + ("type", "id", "tool_call_id", "index"))
#: keys some families print before the name; such an object is judged whole
_LEADING_KEYS = ("type", "id", "tool_call_id")


def json_header_possible(text: str, pos: int, tools: Tools) -> bool:
    """Whether ``text[pos:]`` may still begin ``{"name": "<an offered tool>"`` (or a list of
    such objects): the cheap early test that lets a non-call be released at once."""

    def skip(p: int) -> int:
        while p < len(text) and text[p] in _SPACE:
            p += 1
        return p

    pos = skip(pos)
    if pos < len(text) and text[pos] == "[":
        pos = skip(pos + 1)
    if pos == len(text):
        return True
    if text[pos] != "{":
        return False
    pos = skip(pos + 1)
    if pos == len(text):
        return True
    if text[pos] != '"':
        return False
    end = text.find('"', pos + 1)
    key = text[pos + 1 : end if end >= 0 else len(text)]
    if end < 0:
        return any(k.startswith(key) for k in NAME_KEYS + _LEADING_KEYS)
    if key in _LEADING_KEYS:  # {"type": "function", "function": {…}}, {"tool_call_id": …, "tool_name": …}
        return True
    if key not in NAME_KEYS:
        return False
    pos = skip(end + 1)
    if pos == len(text):
        return True
    if text[pos] != ":":
        return False
    pos = skip(pos + 1)
    if pos == len(text):
        return True
    if text[pos] == "{" and key == "function":
        return True
    if text[pos] != '"':
        return False
    end = text.find('"', pos + 1)
    if end < 0:
        return tools.may_start(text[pos + 1 :])
    return tools.get(text[pos + 1 : end]) is not None


def name_possible(text: str, start: int, stop_chars: str, tools: Tools) -> Any:
    """For formats that print the bare tool name first: ``MORE`` while the name may still
    be an offered one, ``NO`` when it cannot, else (offered name, index past the name)."""
    end = start
    while end < len(text) and text[end] not in stop_chars:
        end += 1
    word = text[start:end].strip()
    if end == len(text):
        return MORE if tools.may_start(word) else NO
    name = tools.get(word)
    return (name, end) if name is not None else NO


def block(buf: str, opener: str, closer: str, final: bool) -> Any:
    """``(inside, consumed)`` of ``opener … closer`` at the start of ``buf``; at the end of
    the answer an unclosed block runs to the end; else ``MORE`` until the closer comes."""
    end = buf.find(closer, len(opener))
    if end < 0:
        return (buf[len(opener) :], len(buf)) if final else MORE
    return buf[len(opener) : end], end + len(closer)


def split_prefix(text: str, marker: str) -> bool:
    """Whether ``text`` ends inside ``marker`` (a proper prefix of it is all that came)."""
    return len(text) < len(marker) and marker.startswith(text)


# -- pythonic calls: [name(a=1, b="x"), …] -------------------------------------------------

_PY_CONSTANTS = {"true": True, "false": False, "null": None, "True": True, "False": False, "None": None}


def _py_value(node: ast.AST) -> Any:
    if isinstance(node, ast.Name) and node.id in _PY_CONSTANTS:
        return _PY_CONSTANTS[node.id]
    if isinstance(node, ast.Dict):
        return {_py_value(k): _py_value(v) for k, v in zip(node.keys, node.values) if k is not None}
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_py_value(e) for e in node.elts]
    return ast.literal_eval(node)


def pythonic_calls(text: str, tools: Tools) -> Calls | None:
    """Calls from ``[a(x=1), b(y="z")]``, ``a(x=1)`` or one such call per line; None unless
    every call names an offered tool with keyword arguments of literal values."""
    text = text.strip()
    if not text:
        return None
    try:
        tree = ast.parse(text, mode="eval").body
    except SyntaxError:
        try:  # one call per line
            tree = ast.List(elts=[ast.parse(line.strip(), mode="eval").body for line in text.splitlines() if line.strip()])
        except SyntaxError:
            return None
    nodes = tree.elts if isinstance(tree, (ast.List, ast.Tuple)) else [tree]
    calls = []
    for node in nodes:
        if not isinstance(node, ast.Call) or node.args:
            return None
        func = node.func
        dotted = []
        while isinstance(func, ast.Attribute):
            dotted.append(func.attr)
            func = func.value
        if not isinstance(func, ast.Name):
            return None
        name = tools.get(".".join([func.id] + dotted[::-1])) or (tools.get(dotted[0]) if dotted else None)
        if name is None:
            return None
        try:
            arguments = {kw.arg: _py_value(kw.value) for kw in node.keywords if kw.arg is not None}
        except (ValueError, TypeError, SyntaxError):
            return None
        calls.append((name, arguments))
    return tuple(calls) or None

