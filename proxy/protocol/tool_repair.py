"""Healing a tool call as a small model produced it into one Claude Code can run. Sans-I/O.

:func:`repair_tool_call` takes the name and arguments Ollama reported and the tools the
client offered (name → ``input_schema``), and returns a :class:`RepairedCall` whose
``changes`` says, in words, everything it changed (the caller logs them). In order:

1. **Name**: a name that matches an offered tool only case-insensitively is renamed to it.
2. **Arguments to an object**: an object is kept; a JSON string is parsed, also when it was
   encoded twice, wrapped in a fenced code block, or has escaped quotes; near-JSON (trailing
   commas, single quotes, Python literals, a missing closing brace) is repaired with
   ``json_repair``. What still is not an object becomes ``{}``.
3. **Parameter names** against the tool's ``input_schema``: an unknown key with exactly one
   near match among the schema's properties (``path`` → ``file_path``, ``filePath`` →
   ``file_path``) is renamed, unless that property is already given.
4. **Types** where the schema says so: string ↔ number / integer / boolean, an array where a
   string is expected (joined by newlines when every item is a string, else JSON), and a JSON
   string where an array or object is expected.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import re
from typing import Any, Callable

import json_repair

__all__ = ["RepairedCall", "repair_tool_call", "parse_arguments"]

_TRAILING_COMMA = re.compile(r",\s*([}\]])")
_FENCE = re.compile(r"^\s*```[\w-]*\s*\n?(.*?)\n?\s*```\s*$", re.DOTALL)


@dataclasses.dataclass(frozen=True, slots=True)
class RepairedCall:
    name: str
    arguments: dict[str, Any]
    #: what was changed, in words; empty when the call was fine as it came
    changes: tuple[str, ...] = ()


def _loads_strict(text: str) -> tuple[bool, Any]:
    try:
        return True, json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nested past the decoder's depth
        return False, None


def _decode_once(text: str) -> tuple[bool, Any, str]:
    """Try ever more forgiving decodings of one string: (ok, value, what it took)."""
    ok, parsed = _loads_strict(text)
    if ok:
        return True, parsed, "decoded arguments sent as a JSON string"
    if '\\"' in text:
        ok, parsed = _loads_strict(text.replace('\\"', '"'))
        if ok:
            return True, parsed, "unescaped quotes in the arguments"
    if text[:1] in "{[":
        ok, parsed = _loads_strict(_TRAILING_COMMA.sub(r"\1", text))
        if ok:
            return True, parsed, "removed trailing commas in the arguments"
        try:
            parsed = json_repair.loads(text)
        except RecursionError:  # nested past Python's depth: not arguments anyone can use
            return False, None, ""
        if isinstance(parsed, (dict, list)):
            return True, parsed, "repaired near-JSON arguments"
    return False, None, ""


def parse_arguments(arguments: Any) -> tuple[Any, list[str]]:
    """Arguments as Ollama sent them → (a value, what was done). Sans-I/O, never raises."""
    changes: list[str] = []
    value = arguments
    for _ in range(4):  # a string may hold a string that holds the object
        if not isinstance(value, str):
            break
        text = value.strip()
        fenced = _FENCE.match(text)
        if fenced:
            text = fenced.group(1).strip()
            changes.append("removed a code fence around the arguments")
        ok, parsed, how = _decode_once(text)
        if not ok:
            break
        changes.append(how)
        value = parsed
    return value, changes


def _normalize(key: str) -> str:
    return re.sub(r"[^a-z0-9]", "", key.lower())


def _near_match(key: str, properties: dict[str, Any], given: dict[str, Any]) -> str | None:
    """The one schema property ``key`` most plausibly meant, or None when not unique."""
    free = [p for p in properties if p not in given]
    norm = _normalize(key)
    if not norm:
        return None
    rules: tuple[Callable[[str], bool], ...] = (
        lambda p: _normalize(p) == norm,  # filePath, file-path, FILE_PATH
        lambda p: _normalize(p).endswith(norm) or norm.endswith(_normalize(p)),  # path → file_path
        lambda p: _normalize(p).startswith(norm) or norm.startswith(_normalize(p)),  # desc → description
        lambda p: p[:1].lower() == norm[:1] and _is_subsequence(norm, _normalize(p)),  # cmd → command
    )
    for rule in rules:
        matches = [p for p in free if rule(p)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            return None
    close = difflib.get_close_matches(key, free, n=2, cutoff=0.8)
    return close[0] if len(close) == 1 else None


def _is_subsequence(short: str, long: str) -> bool:
    letters = iter(long)
    return all(letter in letters for letter in short)


def _types(schema: Any) -> tuple[str, ...]:
    if not isinstance(schema, dict):
        return ()
    kind = schema.get("type")
    if isinstance(kind, str):
        return (kind,)
    if isinstance(kind, list):
        return tuple(k for k in kind if isinstance(k, str))
    return ()


def _coerce(value: Any, schema: Any) -> tuple[bool, Any]:
    """(changed, value) for one parameter against its schema."""
    types = _types(schema)
    if not types or _fits(value, types):
        return False, value
    want = types[0] if len(types) == 1 else next((t for t in types if t != "null"), types[0])
    if isinstance(value, str):
        text = value.strip()
        if want == "integer" and re.fullmatch(r"[-+]?\d+", text):
            return True, int(text)
        if want == "number" and re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", text):
            number = float(text)
            return True, int(number) if number.is_integer() and "." not in text else number
        if want == "boolean" and text.lower() in ("true", "false", "yes", "no", "1", "0"):
            return True, text.lower() in ("true", "yes", "1")
        if want in ("array", "object"):
            parsed, _ = parse_arguments(text)
            if (want == "array" and isinstance(parsed, list)) or (want == "object" and isinstance(parsed, dict)):
                return True, parsed
            if want == "array":
                return True, [value]
        return False, value
    if want == "string":
        if isinstance(value, bool):
            return True, "true" if value else "false"
        if isinstance(value, (int, float)):
            return True, str(value)
        if isinstance(value, list):
            if all(isinstance(item, str) for item in value):
                return True, "\n".join(value)
            return True, json.dumps(value, ensure_ascii=False)
        if isinstance(value, dict):
            return True, json.dumps(value, ensure_ascii=False)
    if want == "integer" and isinstance(value, float) and value.is_integer():
        return True, int(value)
    if want == "array" and not isinstance(value, list):
        return True, [value]
    return False, value


def _fits(value: Any, types: tuple[str, ...]) -> bool:
    checks = {
        "string": lambda v: isinstance(v, str),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        "array": lambda v: isinstance(v, list),
        "object": lambda v: isinstance(v, dict),
        "null": lambda v: v is None,
    }
    return any(checks.get(t, lambda v: True)(value) for t in types)


def repair_tool_call(name: str, arguments: Any, tools: dict[str, dict[str, Any]]) -> RepairedCall:
    """Heal one tool call against the offered ``tools`` (name → input_schema)."""
    changes: list[str] = []
    if tools and name not in tools:
        folded = [t for t in tools if t.lower() == name.strip().lower()]
        if len(folded) == 1:
            changes.append(f"renamed tool {name!r} to {folded[0]!r}")
            name = folded[0]

    value, parse_changes = parse_arguments(arguments)
    changes += parse_changes
    if value is None or value == "":
        value = {}
    if not isinstance(value, dict):
        changes.append(f"arguments {str(arguments)[:80]!r} are not an object: sent {{}}")
        value = {}

    schema = tools.get(name)
    properties = schema.get("properties") if isinstance(schema, dict) else None
    if isinstance(properties, dict) and properties:
        healed: dict[str, Any] = {}
        for key, item in value.items():
            if key not in properties:
                target = _near_match(key, properties, {**value, **healed})
                if target is not None:
                    changes.append(f"renamed parameter {key!r} to {target!r}")
                    key = target
            healed[key] = item
        for key, item in list(healed.items()):
            if key in properties:
                changed, coerced = _coerce(item, properties[key])
                if changed:
                    changes.append(
                        f"coerced {key!r} from {type(item).__name__} to {type(coerced).__name__}"
                    )
                    healed[key] = coerced
        value = healed
    return RepairedCall(name=name, arguments=value, changes=tuple(changes))
