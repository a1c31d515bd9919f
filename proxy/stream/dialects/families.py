"""One recognizer per model family's printed call format. Sans-I/O.

Each class is one dialect: its openers, the template markers that say a model speaks it, its
``parse`` and its sample table. Formats were learned from the families' chat templates and
from what Ollama's ``model/parsers`` and vLLM's tool parsers accept (no code taken from them).
To add a dialect: a new class here with its samples, and its name in ``registry.DIALECTS``.
"""

from __future__ import annotations

import json
import re
from typing import Any, ClassVar

from .base import (
    MORE,
    NO,
    Calls,
    Dialect,
    Found,
    Piece,
    Sample,
    Tools,
    block,
    json_calls,
    json_end,
    json_header_possible,
    load_json,
    name_possible,
    pythonic_calls,
    split_prefix,
)

# Arguments used across the sample tables (the tests offer Bash, Write and Edit).
_LS = {"command": "ls -la"}
_PWD = {"command": "pwd"}
_NESTED = {"file_path": "/tmp/naïve-☃.json", "content": '{"k": [1, {"z": "ü"}]}\n', "options": {"mode": "a", "tags": ["日本", "x"]}}
def _J(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _call(name: str, arguments: dict[str, Any]) -> Piece:
    return ("call", name, arguments)


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _json_value_at(buf: str, pos: int, tools: Tools, final: bool) -> Any:
    """A JSON call object or list of them starting at ``buf[pos]`` (after spaces):
    ``MORE``, ``NO`` or (calls, index past the value)."""
    pos = _skip_space(buf, pos)
    if pos == len(buf):
        return NO if final else MORE
    if buf[pos] not in "{[" or not json_header_possible(buf, pos, tools):
        return NO
    end = json_end(buf, pos)
    if end is None:
        if not final:
            return MORE
        end = len(buf)
    calls = json_calls(load_json(buf[pos:end]), tools)
    return (calls, end) if calls else NO


def _json_sequence(text: str, tools: Tools) -> Calls | None:
    """Calls from one JSON value, or from several objects in a row (newlines, ``;`` or
    commas between them), as some models print inside one block."""
    try:
        return json_calls(json.loads(text), tools)
    except (ValueError, RecursionError):  # RecursionError: nested past the decoder's depth
        pass
    found: list[tuple[str, Any]] = []
    pos = _skip_space(text, 0)
    while pos < len(text):
        if text[pos] not in "{[":
            return None
        end = json_end(text, pos)
        if end is None:
            end = len(text)  # unclosed at the end of the answer: repaired
        one = json_calls(load_json(text[pos:end]), tools)
        if not one:
            return None
        found += one
        pos = end
        while pos < len(text) and text[pos] in " \t\r\n;,":
            pos += 1
    return tuple(found) or None


def _body_start(buf: str, opener: str, final: bool, firsts: str) -> Any:
    """After ``opener`` and spaces, the body must start with one of ``firsts``."""
    pos = _skip_space(buf, len(opener))
    if pos == len(buf):
        return NO if final else MORE
    return pos if buf[pos] in firsts else NO


# -- Hermes / Qwen ------------------------------------------------------------------------


class Hermes(Dialect):
    name = "hermes"
    families = "Hermes, Qwen 2.5, Qwen 3, xLAM (tagged), most fine-tunes"
    openers = ("<tool_call>",)
    template_markers = ("<tool_call>",)
    universal = True
    samples = (
        Sample("single", '<tool_call>\n{"name": "Bash", "arguments": {"command": "ls -la"}}\n</tool_call>', (_call("Bash", _LS),)),
        Sample("two", '<tool_call>\n{"name": "Bash", "arguments": {"command": "ls -la"}}\n</tool_call>\n'
               '<tool_call>\n{"name": "Bash", "arguments": {"command": "pwd"}}\n</tool_call>', (_call("Bash", _LS), _call("Bash", _PWD))),
        Sample("text-before", 'Let me look.\n\n<tool_call>\n{"name": "Bash", "arguments": {"command": "ls -la"}}\n</tool_call>',
               (("text", "Let me look.\n\n"), _call("Bash", _LS))),
        Sample("nested-unicode", f'<tool_call>\n{_J({"name": "Write", "arguments": _NESTED})}\n</tool_call>', (_call("Write", _NESTED),)),
        Sample("unclosed-at-end", '<tool_call>{"name": "Bash", "arguments": {"command": "ls -la"}}', (_call("Bash", _LS),)),
        Sample("list-inside", '<tool_call>[{"name": "Bash", "arguments": {"command": "ls -la"}}, '
               '{"name": "Bash", "arguments": {"command": "pwd"}}]</tool_call>', (_call("Bash", _LS), _call("Bash", _PWD))),
    )

    def parse(self, buf: str, tools: Tools, final: bool) -> Any:
        pos = _body_start(buf, self.openers[0], final, "{[")
        if not isinstance(pos, int):
            return pos
        if not json_header_possible(buf, pos, tools):
            return NO
        inner = block(buf, "<tool_call>", "</tool_call>", final)
        if inner == MORE:
            return MORE
        calls = _json_sequence(inner[0], tools)
        return Found(calls, inner[1]) if calls else NO


# -- Qwen3-Coder (and Nemotron 3, Seed-OSS): XML functions and parameters -------------------

_PARAMETER = re.compile(r"<parameter=([^>\n]+)>(.*?)</parameter>", re.DOTALL)
_FUNCTION = re.compile(r"<function=([^>\n]+)>(.*?)(?:</function>|\Z)", re.DOTALL)


def _xml_value(value: str) -> str:
    """A parameter's text: one newline after the opening tag and before the closing one is
    layout, not value. Typing it (numbers, objects) is the schema repair's job."""
    if value.startswith("\n"):
        value = value[1:]
    if value.endswith("\n"):
        value = value[:-1]
    return value


def _xml_arguments(body: str, pattern: re.Pattern[str]) -> Any:
    pairs = pattern.findall(body)
    if pairs:
        return {key.strip(): _xml_value(value) for key, value in pairs}
    return body.strip() or {}  # JSON text (or nothing) between the tags: the repair decodes it


class Qwen3Coder(Dialect):
    name = "qwen3_coder"
    families = "Qwen3-Coder, Qwen 3.5, Nemotron 3 Nano, Seed-OSS"
    openers = ("<tool_call>", "<function=", "<seed:tool_call>")
    template_markers = ("<function=", "<parameter=")
    universal = True
    samples = (
        Sample("single", "<tool_call>\n<function=Bash>\n<parameter=command>\nls -la\n</parameter>\n</function>\n</tool_call>",
               (_call("Bash", _LS),)),
        Sample("two", "<tool_call>\n<function=Bash>\n<parameter=command>\nls -la\n</parameter>\n</function>\n</tool_call>\n"
               "<tool_call>\n<function=Bash>\n<parameter=command>\npwd\n</parameter>\n</function>\n</tool_call>",
               (_call("Bash", _LS), _call("Bash", _PWD))),
        Sample("text-before", "I'll list it.\n<tool_call>\n<function=Bash>\n<parameter=command>\nls -la\n</parameter>\n"
               "<parameter=timeout>\n30\n</parameter>\n</function>\n</tool_call>",
               (("text", "I'll list it.\n"), _call("Bash", {"command": "ls -la", "timeout": 30}))),
        Sample("nested-unicode", "<tool_call>\n<function=Write>\n<parameter=file_path>\n/tmp/naïve-☃.json\n</parameter>\n"
               '<parameter=content>\n{"k": [1, {"z": "ü"}]}\n\n</parameter>\n'
               f"<parameter=options>\n{_J(_NESTED['options'])}\n</parameter>\n</function>\n</tool_call>",
               (_call("Write", _NESTED),)),
        Sample("function-tag-json", f"<function=Bash>{_J(_LS)}</function>", (_call("Bash", _LS),)),
        Sample("seed", "<seed:tool_call>\n<function=Bash>\n<parameter=command>\nls -la\n</parameter>\n</function>\n</seed:tool_call>",
               (_call("Bash", _LS),)),
    )
    _CLOSERS = {"<tool_call>": "</tool_call>", "<seed:tool_call>": "</seed:tool_call>", "<function=": "</function>"}

    def parse(self, buf: str, tools: Tools, final: bool) -> Any:
        opener = next(o for o in self.openers if buf.startswith(o))
        if opener == "<function=":
            start = 0
        else:
            start = _skip_space(buf, len(opener))
            rest = buf[start:]
            if split_prefix(rest, "<function="):
                return NO if final else MORE
            if not rest.startswith("<function="):
                return NO
        head = name_possible(buf, start + len("<function="), ">\n", tools)
        if not isinstance(head, tuple):
            return NO if final and head == MORE else head
        inner = block(buf, opener, self._CLOSERS[opener], final)
        if inner == MORE:
            return MORE
        body = buf[start : inner[1]] if opener == "<function=" else inner[0]
        calls = []
        for name, arguments in _FUNCTION.findall(body):
            offered = tools.get(name.strip())
            if offered is None:
                return NO
            calls.append((offered, _xml_arguments(arguments, _PARAMETER)))
        return Found(tuple(calls), inner[1]) if calls else NO

    def write(self, name: str, arguments: dict[str, Any]) -> str:
        params = "".join(
            f"<parameter={key}>\n{value if isinstance(value, str) else _J(value)}\n</parameter>\n" for key, value in arguments.items()
        )
        return f"<tool_call>\n<function={name}>\n{params}</function>\n</tool_call>"


# -- GLM-4.5 / 4.6 / 4.7 --------------------------------------------------------------------

_ARG_PAIR = re.compile(r"<arg_key>(.*?)</arg_key>\s*<arg_value>(.*?)</arg_value>", re.DOTALL)


class GLM(Dialect):
    name = "glm"
    families = "GLM-4.5, GLM-4.6, GLM-4.7"
    openers = ("<tool_call>",)
    template_markers = ("<arg_key>",)
    samples = (
        Sample("single", "<tool_call>Bash\n<arg_key>command</arg_key>\n<arg_value>ls -la</arg_value>\n</tool_call>", (_call("Bash", _LS),)),
        Sample("two", "<tool_call>Bash\n<arg_key>command</arg_key>\n<arg_value>ls -la</arg_value>\n</tool_call>"
               "<tool_call>Bash\n<arg_key>command</arg_key>\n<arg_value>pwd</arg_value>\n</tool_call>",
               (_call("Bash", _LS), _call("Bash", _PWD))),
        Sample("text-before", "Listing.\n<tool_call>Bash\n<arg_key>command</arg_key>\n<arg_value>ls -la</arg_value>\n"
               "<arg_key>timeout</arg_key>\n<arg_value>30</arg_value>\n</tool_call>",
               (("text", "Listing.\n"), _call("Bash", {"command": "ls -la", "timeout": 30}))),
        Sample("nested-unicode", "<tool_call>Write\n<arg_key>file_path</arg_key>\n<arg_value>/tmp/naïve-☃.json</arg_value>\n"
               '<arg_key>content</arg_key>\n<arg_value>{"k": [1, {"z": "ü"}]}\n</arg_value>\n'
               f"<arg_key>options</arg_key>\n<arg_value>{_J(_NESTED['options'])}</arg_value>\n</tool_call>",
               (_call("Write", _NESTED),)),
    )

    def parse(self, buf: str, tools: Tools, final: bool) -> Any:
        head = name_possible(buf, len("<tool_call>"), "<\n{[", tools)
        if not isinstance(head, tuple):
            return NO if final and head == MORE else head
        name, end = head
        if not buf[len("<tool_call>") : end].strip():
            return NO
        after = _skip_space(buf, end)
        rest = buf[after:]
        if not (rest.startswith(("<arg_key>", "</tool_call>")) or split_prefix(rest, "<arg_key>") or split_prefix(rest, "</tool_call>")):
            return NO
        inner = block(buf, "<tool_call>", "</tool_call>", final)
        if inner == MORE:
            return MORE
        arguments = {key.strip(): value for key, value in _ARG_PAIR.findall(inner[0])}
        return Found(((name, arguments),), inner[1])

    def write(self, name: str, arguments: dict[str, Any]) -> str:
        pairs = "".join(
            f"<arg_key>{key}</arg_key>\n<arg_value>{value if isinstance(value, str) else _J(value)}</arg_value>\n"
            for key, value in arguments.items()
        )
        return f"<tool_call>{name}\n{pairs}</tool_call>"


# -- Llama 3.1 / 3.2 / 3.3 --------------------------------------------------------------------


class Llama3(Dialect):
    name = "llama3"
    families = "Llama 3.1, 3.2, 3.3 (also bare JSON: see json)"
    openers = ("<|python_tag|>",)
    template_markers = ("<|python_tag|>", "<|eom_id|>")
    samples = (
        Sample("single", '<|python_tag|>{"name": "Bash", "parameters": {"command": "ls -la"}}<|eom_id|>', (_call("Bash", _LS),)),
        Sample("two", '<|python_tag|>{"name": "Bash", "parameters": {"command": "ls -la"}}; '
               '{"name": "Bash", "parameters": {"command": "pwd"}}<|eot_id|>', (_call("Bash", _LS), _call("Bash", _PWD))),
        Sample("text-before", 'Sure.\n<|python_tag|>{"name": "Bash", "parameters": {"command": "ls -la"}}',
               (("text", "Sure.\n"), _call("Bash", _LS))),
        Sample("nested-unicode", f'<|python_tag|>{_J({"name": "Write", "parameters": _NESTED})}<|eom_id|>', (_call("Write", _NESTED),)),
    )

    def parse(self, buf: str, tools: Tools, final: bool) -> Any:
        calls: list[tuple[str, Any]] = []
        pos = len(self.openers[0])
        while True:
            value = _json_value_at(buf, pos, tools, final)
            if not isinstance(value, tuple):
                return value if not calls or value == MORE else Found(tuple(calls), pos)
            calls += value[0]
            pos = value[1]
            after = _skip_space(buf, pos)
            if after == len(buf) and not final:
                return MORE  # a ';' and another call may follow
            if after < len(buf) and buf[after] == ";":
                pos = after + 1
                continue
            return Found(tuple(calls), pos)

    def write(self, name: str, arguments: dict[str, Any]) -> str:
        return "<|python_tag|>" + _J({"name": name, "parameters": arguments})


# -- Mistral, Mistral-Nemo, Devstral, Magistral, Ministral ------------------------------------


class Mistral(Dialect):
    name = "mistral"
    families = "Mistral, Mistral-Nemo, Mistral Small, Devstral, Magistral, Ministral"
    openers = ("[TOOL_CALLS]",)
    template_markers = ("[TOOL_CALLS]",)
    samples: ClassVar[tuple[Sample, ...]] = (
        Sample("single", '[TOOL_CALLS][{"name": "Bash", "arguments": {"command": "ls -la"}}]', (_call("Bash", _LS),)),
        Sample("two", '[TOOL_CALLS][{"name": "Bash", "arguments": {"command": "ls -la"}}, {"name": "Bash", "arguments": {"command": "pwd"}}]</s>',
               (_call("Bash", _LS), _call("Bash", _PWD))),
        Sample("text-before", 'Checking.[TOOL_CALLS]Bash[ARGS]{"command": "ls -la"}', (("text", "Checking."), _call("Bash", _LS))),
        Sample("nested-unicode", f"[TOOL_CALLS]Write[ARGS]{_J(_NESTED)}", (_call("Write", _NESTED),)),
        Sample("args-two", '[TOOL_CALLS]Bash[ARGS]{"command": "ls -la"}[TOOL_CALLS]Bash[ARGS]{"command": "pwd"}',
               (_call("Bash", _LS), _call("Bash", _PWD))),
        Sample("call-id", '[TOOL_CALLS]Bash[CALL_ID]a1b2c3d4e[ARGS]{"command": "ls -la"}', (_call("Bash", _LS),)),
    )

    def parse(self, buf: str, tools: Tools, final: bool) -> Any:
        pos = _skip_space(buf, len("[TOOL_CALLS]"))
        if pos == len(buf):
            return NO if final else MORE
        if buf[pos] in "[{":
            value = _json_value_at(buf, pos, tools, final)
            return Found(value[0], value[1]) if isinstance(value, tuple) else value
        head = name_possible(buf, pos, "[{ \n", tools)
        if not isinstance(head, tuple):
            return NO if final and head == MORE else head
        name, pos = head
        if buf.startswith("[CALL_ID]", pos):
            args_at = buf.find("[ARGS]", pos)
            if args_at < 0:
                return NO if final or len(buf) - pos > 64 else MORE
            pos = args_at
        for marker in ("[ARGS]", "[CALL_ID]"):
            if split_prefix(buf[pos:], marker):
                return NO if final else MORE
        if buf.startswith("[ARGS]", pos):
            pos += len("[ARGS]")
        pos = _skip_space(buf, pos)
        if pos == len(buf):
            return NO if final else MORE
        if buf[pos] != "{":
            return NO
        end = json_end(buf, pos)
        if end is None:
            if not final:
                return MORE
            end = len(buf)
        arguments = load_json(buf[pos:end])
        return Found(((name, arguments if arguments is not None else buf[pos:end]),), end)

    def write(self, name: str, arguments: dict[str, Any]) -> str:
        return "[TOOL_CALLS]" + _J([{"name": name, "arguments": arguments}])


class MistralArgs(Mistral):
    """The newer Mistral tokenizers' form; parsed the same, written ``NAME[ARGS]{…}``."""

    name = "mistral_args"
    families = "Mistral Small 3.2+, Devstral 2, Magistral, Ministral 3 (newer tokenizers)"
    template_markers = ("[ARGS]",)
    samples = ()

    def write(self, name: str, arguments: dict[str, Any]) -> str:
        return f"[TOOL_CALLS]{name}[ARGS]{_J(arguments)}"


# -- DeepSeek V3 / R1 / V3.1 ----------------------------------------------------------------

_DS_CALLS_BEGIN, _DS_CALLS_END = "<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>"
_DS_CALL_BEGIN, _DS_CALL_END, _DS_SEP = "<｜tool▁call▁begin｜>", "<｜tool▁call▁end｜>", "<｜tool▁sep｜>"
_DS_CALL = re.compile(re.escape(_DS_CALL_BEGIN) + r"(.*?)" + re.escape(_DS_SEP) + r"(.*?)(?:" + re.escape(_DS_CALL_END) + r"|\Z)", re.DOTALL)
_FENCED_JSON = re.compile(r"\s*([^\n`]*?)\s*\n\s*```(?:json)?\s*\n?(.*?)\n?\s*```\s*\Z", re.DOTALL)


class DeepSeek(Dialect):
    name = "deepseek"
    families = "DeepSeek V3, R1, V3.1, V3.2"
    openers = (_DS_CALLS_BEGIN, _DS_CALL_BEGIN)
    template_markers = ("tool▁calls▁begin",)
    samples = (
        Sample("single-v31", f'{_DS_CALLS_BEGIN}{_DS_CALL_BEGIN}Bash{_DS_SEP}{{"command": "ls -la"}}{_DS_CALL_END}{_DS_CALLS_END}',
               (_call("Bash", _LS),)),
        Sample("single-v3", f'{_DS_CALLS_BEGIN}{_DS_CALL_BEGIN}function{_DS_SEP}Bash\n```json\n{{"command": "ls -la"}}\n```'
               f"{_DS_CALL_END}{_DS_CALLS_END}", (_call("Bash", _LS),)),
        Sample("two", f'{_DS_CALLS_BEGIN}{_DS_CALL_BEGIN}Bash{_DS_SEP}{{"command": "ls -la"}}{_DS_CALL_END}'
               f'{_DS_CALL_BEGIN}Bash{_DS_SEP}{{"command": "pwd"}}{_DS_CALL_END}{_DS_CALLS_END}', (_call("Bash", _LS), _call("Bash", _PWD))),
        Sample("text-before", f'I\'ll check.{_DS_CALLS_BEGIN}{_DS_CALL_BEGIN}function{_DS_SEP}Bash\n```json\n{{"command": "ls -la"}}\n```'
               f"{_DS_CALL_END}{_DS_CALLS_END}", (("text", "I'll check."), _call("Bash", _LS))),
        Sample("nested-unicode", f"{_DS_CALLS_BEGIN}{_DS_CALL_BEGIN}Write{_DS_SEP}{_J(_NESTED)}{_DS_CALL_END}{_DS_CALLS_END}",
               (_call("Write", _NESTED),)),
    )

    def parse(self, buf: str, tools: Tools, final: bool) -> Any:
        opener = _DS_CALLS_BEGIN if buf.startswith(_DS_CALLS_BEGIN) else _DS_CALL_BEGIN
        inner = block(buf, opener, _DS_CALLS_END if opener == _DS_CALLS_BEGIN else _DS_CALL_END, final)
        if inner == MORE:
            return MORE
        body = inner[0] if opener == _DS_CALLS_BEGIN else _DS_CALL_BEGIN + inner[0] + _DS_CALL_END
        calls = []
        for left, right in _DS_CALL.findall(body):
            left = left.strip()
            if left == "function":
                fenced = _FENCED_JSON.match(right)
                name, arguments = (fenced.group(1), fenced.group(2)) if fenced else (right.split("\n", 1)[0], right.partition("\n")[2])
            else:
                name, arguments = left, right
            offered = tools.get(name.strip())
            if offered is None:
                return NO
            calls.append((offered, load_json(arguments) if load_json(arguments) is not None else arguments.strip()))
        return Found(tuple(calls), inner[1]) if calls else NO

    def write(self, name: str, arguments: dict[str, Any]) -> str:
        return f"{_DS_CALLS_BEGIN}{_DS_CALL_BEGIN}{name}{_DS_SEP}{_J(arguments)}{_DS_CALL_END}{_DS_CALLS_END}"


# -- gpt-oss (harmony) --------------------------------------------------------------------

_HARMONY_TO = re.compile(r"\bto=(?:functions\.)?([^\s<]+)")


class Harmony(Dialect):
    name = "harmony"
    families = "gpt-oss (harmony format leaking into content)"
    openers = ("<|channel|>", "<|start|>assistant")
    template_markers = ("<|channel|>", "<|constrain|>")
    samples = (
        Sample("single", '<|channel|>commentary to=functions.Bash <|constrain|>json<|message|>{"command": "ls -la"}<|call|>',
               (_call("Bash", _LS),)),
        Sample("two", '<|channel|>commentary to=functions.Bash <|constrain|>json<|message|>{"command": "ls -la"}<|call|>'
               '<|start|>assistant<|channel|>commentary to=functions.Bash <|constrain|>json<|message|>{"command": "pwd"}<|call|>',
               (_call("Bash", _LS), _call("Bash", _PWD))),
        Sample("text-before", 'Let me see. <|channel|>commentary to=functions.Bash<|message|>{"command": "ls -la"}',
               (("text", "Let me see. "), _call("Bash", _LS))),
        Sample("nested-unicode", f"<|channel|>commentary to=functions.Write <|constrain|>json<|message|>{_J(_NESTED)}<|call|>",
               (_call("Write", _NESTED),)),
    )

    def parse(self, buf: str, tools: Tools, final: bool) -> Any:
        pos = 0
        if buf.startswith("<|start|>assistant"):
            pos = len("<|start|>assistant")
            if split_prefix(buf[pos:], "<|channel|>"):
                return NO if final else MORE
            if not buf.startswith("<|channel|>", pos):
                return NO
        message = buf.find("<|message|>", pos)
        header = buf[pos : message if message >= 0 else len(buf)]
        if message < 0:
            if final or len(header) > 200 or "<|call|>" in header:
                return NO
            return MORE
        found = _HARMONY_TO.search(header)
        name = tools.get(found.group(1)) if found else None
        if name is None:
            return NO
        start = message + len("<|message|>")
        value = _skip_space(buf, start)
        if value == len(buf):
            return NO if final else MORE
        end = json_end(buf, value) if buf[value] in "{[" else None
        if end is None:
            if not final:
                return MORE if buf[value] in "{[" else NO
            end = len(buf)
        arguments = load_json(buf[value:end])
        return Found(((name, arguments if arguments is not None else buf[value:end]),), end)

    def write(self, name: str, arguments: dict[str, Any]) -> str:
        return f"<|channel|>commentary to=functions.{name} <|constrain|>json<|message|>{_J(arguments)}<|call|>"


# -- JSON after a single marker: Granite, FireFunction / Phi-4-mini ----------------------------


class _MarkedJSON(Dialect):
    """A marker, then a JSON call object or list, with no closing marker."""

    def parse(self, buf: str, tools: Tools, final: bool) -> Any:
        opener = next(o for o in self.openers if buf.startswith(o))
        value = _json_value_at(buf, len(opener), tools, final)
        return Found(value[0], value[1]) if isinstance(value, tuple) else value


class Granite(_MarkedJSON):
    name = "granite"
    families = "Granite 3.x (also Granite 20B FC's <function_call>)"
    openers = ("<|tool_call|>", "<function_call>")
    template_markers = ("<|tool_call|>",)
    samples = (
        Sample("single", '<|tool_call|>[{"name": "Bash", "arguments": {"command": "ls -la"}}]', (_call("Bash", _LS),)),
        Sample("two", '<|tool_call|>[{"name": "Bash", "arguments": {"command": "ls -la"}}, {"name": "Bash", "arguments": {"command": "pwd"}}]',
               (_call("Bash", _LS), _call("Bash", _PWD))),
        Sample("text-before", 'OK. <|tool_call|>[{"name": "Bash", "arguments": {"command": "ls -la"}}]', (("text", "OK. "), _call("Bash", _LS))),
        Sample("nested-unicode", f'<|tool_call|>[{_J({"name": "Write", "arguments": _NESTED})}]', (_call("Write", _NESTED),)),
        Sample("function-call", '<function_call> {"name": "Bash", "arguments": {"command": "ls -la"}}', (_call("Bash", _LS),)),
    )

    def write(self, name: str, arguments: dict[str, Any]) -> str:
        return "<|tool_call|>" + _J([{"name": name, "arguments": arguments}])


class Functools(_MarkedJSON):
    name = "functools"
    families = "FireFunction v2, Phi-4-mini"
    openers = ("functools",)
    template_markers = ("functools",)
    samples = (
        Sample("single", 'functools[{"name": "Bash", "arguments": {"command": "ls -la"}}]', (_call("Bash", _LS),)),
        Sample("two", 'functools[{"name": "Bash", "arguments": {"command": "ls -la"}}, {"name": "Bash", "arguments": {"command": "pwd"}}]',
               (_call("Bash", _LS), _call("Bash", _PWD))),
        Sample("text-before", 'Running it. functools[{"name": "Bash", "arguments": {"command": "ls -la"}}]',
               (("text", "Running it. "), _call("Bash", _LS))),
        Sample("nested-unicode", f'functools[{_J({"name": "Write", "arguments": _NESTED})}]', (_call("Write", _NESTED),)),
    )

    def parse(self, buf: str, tools: Tools, final: bool) -> Any:
        pos = _skip_space(buf, len("functools"))
        if pos < len(buf) and buf[pos] != "[":
            return NO  # the word in prose
        return super().parse(buf, tools, final)

    def write(self, name: str, arguments: dict[str, Any]) -> str:
        return "functools" + _J([{"name": name, "arguments": arguments}])


# -- tagged JSON blocks: MiniMax-M1 / Jamba / Hunyuan, Llama-Nemotron, InternLM ---------------


class _TaggedJSON(Dialect):
    closer: str

    def parse(self, buf: str, tools: Tools, final: bool) -> Any:
        opener = self.openers[0]
        pos = _body_start(buf, opener, final, "{[")
        if not isinstance(pos, int):
            return pos
        if not json_header_possible(buf, pos, tools):
            return NO
        inner = block(buf, opener, self.closer, final)
        if inner == MORE:
            return MORE
        calls = _json_sequence(inner[0], tools)
        return Found(calls, inner[1]) if calls else NO

    def write(self, name: str, arguments: dict[str, Any]) -> str:
        return f"{self.openers[0]}{_J([{'name': name, 'arguments': arguments}])}{self.closer}"


class ToolCallsTag(_TaggedJSON):
    name = "tool_calls_tag"
    families = "MiniMax-M1, Jamba, Hunyuan"
    openers = ("<tool_calls>",)
    closer = "</tool_calls>"
    template_markers = ("<tool_calls>",)
    samples = (
        Sample("single", '<tool_calls>\n{"name": "Bash", "arguments": {"command": "ls -la"}}\n</tool_calls>', (_call("Bash", _LS),)),
        Sample("two", '<tool_calls>\n{"name": "Bash", "arguments": {"command": "ls -la"}}\n{"name": "Bash", "arguments": {"command": "pwd"}}\n</tool_calls>',
               (_call("Bash", _LS), _call("Bash", _PWD))),
        Sample("text-before", 'Hm.\n<tool_calls>[{"name": "Bash", "arguments": {"command": "ls -la"}}]</tool_calls>',
               (("text", "Hm.\n"), _call("Bash", _LS))),
        Sample("nested-unicode", f'<tool_calls>[{_J({"name": "Write", "arguments": _NESTED})}]</tool_calls>', (_call("Write", _NESTED),)),
    )


class Nemotron(_TaggedJSON):
    name = "nemotron"
    families = "Llama-Nemotron (Llama 3.x Nemotron)"
    openers = ("<TOOLCALL>",)
    closer = "</TOOLCALL>"
    template_markers = ("<TOOLCALL>",)
    samples = (
        Sample("single", '<TOOLCALL>[{"name": "Bash", "arguments": {"command": "ls -la"}}]</TOOLCALL>', (_call("Bash", _LS),)),
        Sample("two", '<TOOLCALL>[{"name": "Bash", "arguments": {"command": "ls -la"}}, {"name": "Bash", "arguments": {"command": "pwd"}}]</TOOLCALL>',
               (_call("Bash", _LS), _call("Bash", _PWD))),
        Sample("text-before", 'Sure.\n<TOOLCALL>[{"name": "Bash", "arguments": {"command": "ls -la"}}]</TOOLCALL>',
               (("text", "Sure.\n"), _call("Bash", _LS))),
        Sample("nested-unicode", f'<TOOLCALL>[{_J({"name": "Write", "arguments": _NESTED})}]</TOOLCALL>', (_call("Write", _NESTED),)),
    )


class InternLM(_TaggedJSON):
    name = "internlm"
    families = "InternLM 2.5 / 3"
    openers = ("<|action_start|><|plugin|>",)
    closer = "<|action_end|>"
    template_markers = ("<|plugin|>",)
    samples = (
        Sample("single", '<|action_start|><|plugin|>\n{"name": "Bash", "parameters": {"command": "ls -la"}}<|action_end|>', (_call("Bash", _LS),)),
        Sample("two", '<|action_start|><|plugin|>\n{"name": "Bash", "parameters": {"command": "ls -la"}}<|action_end|>\n'
               '<|action_start|><|plugin|>\n{"name": "Bash", "parameters": {"command": "pwd"}}<|action_end|>',
               (_call("Bash", _LS), _call("Bash", _PWD))),
        Sample("text-before", 'I will run it.<|action_start|><|plugin|>\n{"name": "Bash", "parameters": {"command": "ls -la"}}<|action_end|>',
               (("text", "I will run it."), _call("Bash", _LS))),
        Sample("nested-unicode", f'<|action_start|><|plugin|>\n{_J({"name": "Write", "parameters": _NESTED})}<|action_end|>', (_call("Write", _NESTED),)),
    )


# -- Kimi K2 ------------------------------------------------------------------------------

_KIMI_CALL = re.compile(r"<\|tool_call_begin\|>\s*(.*?)\s*<\|tool_call_argument_begin\|>(.*?)(?:<\|tool_call_end\|>|\Z)", re.DOTALL)


class Kimi(Dialect):
    name = "kimi"
    families = "Kimi K2"
    openers = ("<|tool_calls_section_begin|>", "<|tool_call_begin|>")
    template_markers = ("<|tool_calls_section_begin|>",)
    samples = (
        Sample("single", '<|tool_calls_section_begin|><|tool_call_begin|>functions.Bash:0<|tool_call_argument_begin|>{"command": "ls -la"}'
               "<|tool_call_end|><|tool_calls_section_end|>", (_call("Bash", _LS),)),
        Sample("two", '<|tool_calls_section_begin|><|tool_call_begin|>functions.Bash:0<|tool_call_argument_begin|>{"command": "ls -la"}'
               '<|tool_call_end|><|tool_call_begin|>functions.Bash:1<|tool_call_argument_begin|>{"command": "pwd"}<|tool_call_end|>'
               "<|tool_calls_section_end|>", (_call("Bash", _LS), _call("Bash", _PWD))),
        Sample("text-before", 'Let me check. <|tool_calls_section_begin|><|tool_call_begin|>functions.Bash:0<|tool_call_argument_begin|>'
               '{"command": "ls -la"}<|tool_call_end|><|tool_calls_section_end|>', (("text", "Let me check. "), _call("Bash", _LS))),
        Sample("nested-unicode", f"<|tool_calls_section_begin|><|tool_call_begin|>functions.Write:0<|tool_call_argument_begin|>{_J(_NESTED)}"
               "<|tool_call_end|><|tool_calls_section_end|>", (_call("Write", _NESTED),)),
    )

    def parse(self, buf: str, tools: Tools, final: bool) -> Any:
        section = buf.startswith("<|tool_calls_section_begin|>")
        opener = self.openers[0] if section else self.openers[1]
        inner = block(buf, opener, "<|tool_calls_section_end|>" if section else "<|tool_call_end|>", final)
        if inner == MORE:
            return MORE
        body = inner[0] if section else "<|tool_call_begin|>" + inner[0]
        calls = []
        for ident, arguments in _KIMI_CALL.findall(body):
            name = ident.split(":", 1)[0]
            offered = tools.get(name) or tools.get(name.removeprefix("functions."))
            if offered is None:
                return NO
            decoded = load_json(arguments)
            calls.append((offered, decoded if decoded is not None else arguments.strip()))
        return Found(tuple(calls), inner[1]) if calls else NO

    def write(self, name: str, arguments: dict[str, Any]) -> str:
        return (f"<|tool_calls_section_begin|><|tool_call_begin|>functions.{name}:0<|tool_call_argument_begin|>"
                f"{_J(arguments)}<|tool_call_end|><|tool_calls_section_end|>")


# -- Command-R / Command-A ---------------------------------------------------------------


class CommandR(Dialect):
    name = "command_r"
    families = "Command-R, Command-R+, Command-A"
    openers = ("Action:", "<|START_ACTION|>")
    template_markers = ("<|START_ACTION|>", "Action: ```json")
    samples = (
        Sample("single", 'Action: ```json\n[\n    {\n        "tool_name": "Bash",\n        "parameters": {"command": "ls -la"}\n    }\n]\n```',
               (_call("Bash", _LS),)),
        Sample("two", 'Action: ```json\n[{"tool_name": "Bash", "parameters": {"command": "ls -la"}}, '
               '{"tool_name": "Bash", "parameters": {"command": "pwd"}}]\n```', (_call("Bash", _LS), _call("Bash", _PWD))),
        Sample("text-before", 'Plan: list files.\nAction: ```json\n[{"tool_name": "Bash", "parameters": {"command": "ls -la"}}]\n```',
               (("text", "Plan: list files.\n"), _call("Bash", _LS))),
        Sample("nested-unicode", f'<|START_ACTION|>[\n    {_J({"tool_call_id": "0", "tool_name": "Write", "parameters": _NESTED})}\n]<|END_ACTION|>',
               (_call("Write", _NESTED),)),
    )

    def parse(self, buf: str, tools: Tools, final: bool) -> Any:
        if buf.startswith("<|START_ACTION|>"):
            pos = _body_start(buf, "<|START_ACTION|>", final, "[{")
            if not isinstance(pos, int):
                return pos
            if not json_header_possible(buf, pos, tools):
                return NO
            inner = block(buf, "<|START_ACTION|>", "<|END_ACTION|>", final)
            if inner == MORE:
                return MORE
            calls = _json_sequence(inner[0], tools)
            return Found(calls, inner[1]) if calls else NO
        pos = _skip_space(buf, len("Action:"))
        rest = buf[pos:]
        if not rest or split_prefix(rest, "```"):
            return NO if final else MORE
        if rest.startswith("```"):
            newline = buf.find("\n", pos)
            lang = buf[pos + 3 : newline if newline >= 0 else len(buf)].strip()
            if newline < 0:
                return NO if final or not "json".startswith(lang) else MORE
            if lang not in ("", "json"):
                return NO
            pos = newline + 1
        value = _json_value_at(buf, pos, tools, final)
        if not isinstance(value, tuple):
            return value
        end = value[1]
        if rest.startswith("```"):
            closing = re.match(r"\s*```", buf[end:])
            if closing:
                end += closing.end()
            elif not final and re.fullmatch(r"\s*`{0,2}", buf[end:]):
                return MORE
        return Found(value[0], end)

    def write(self, name: str, arguments: dict[str, Any]) -> str:
        return "Action: ```json\n" + _J([{"tool_name": name, "parameters": arguments}]) + "\n```"


# -- FunctionGemma ------------------------------------------------------------------------

_GEMMA_ESCAPED = re.compile(r"<escape>(.*?)<escape>", re.DOTALL)
_GEMMA_KEY = re.compile(r"([{,]\s*)([A-Za-z_][\w\-]*)\s*:")


def _gemma_arguments(text: str) -> Any:
    """``{city:<escape>Paris<escape>,days:3}`` → an object: escaped strings, bare keys."""
    strings: list[str] = []

    def keep(match: re.Match[str]) -> str:
        strings.append(match.group(1))
        return f"\x00{len(strings) - 1}\x00"

    text = _GEMMA_ESCAPED.sub(keep, text)
    text = _GEMMA_KEY.sub(lambda m: f'{m.group(1)}"{m.group(2)}":', text)
    text = re.sub(r"\x00(\d+)\x00", lambda m: json.dumps(strings[int(m.group(1))]), text)
    return load_json(text)


class FunctionGemma(Dialect):
    name = "functiongemma"
    families = "FunctionGemma"
    openers = ("<start_function_call>",)
    template_markers = ("<start_function_call>",)
    samples = (
        Sample("single", "<start_function_call>call:Bash{command:<escape>ls -la<escape>}<end_function_call>", (_call("Bash", _LS),)),
        Sample("two", "<start_function_call>call:Bash{command:<escape>ls -la<escape>}<end_function_call>"
               "<start_function_call>call:Bash{command:<escape>pwd<escape>}<end_function_call>", (_call("Bash", _LS), _call("Bash", _PWD))),
        Sample("text-before", "Sure: <start_function_call>call:Bash{command:<escape>ls -la<escape>,timeout:30}<end_function_call>",
               (("text", "Sure: "), _call("Bash", {"command": "ls -la", "timeout": 30}))),
        Sample("nested-unicode", "<start_function_call>call:Write{file_path:<escape>/tmp/naïve-☃.json<escape>,"
               'content:<escape>{"k": [1, {"z": "ü"}]}\n<escape>,options:{mode:<escape>a<escape>,tags:[<escape>日本<escape>,<escape>x<escape>]}}'
               "<end_function_call>", (_call("Write", _NESTED),)),
    )

    def parse(self, buf: str, tools: Tools, final: bool) -> Any:
        pos = len("<start_function_call>")
        rest = buf[pos:]
        if split_prefix(rest, "call:"):
            return NO if final else MORE
        if not rest.startswith("call:"):
            return NO
        head = name_possible(buf, pos + len("call:"), "{<", tools)
        if not isinstance(head, tuple):
            return NO if final and head == MORE else head
        name, start = head
        inner = block(buf, "<start_function_call>", "<end_function_call>", final)
        if inner == MORE:
            return MORE
        arguments = _gemma_arguments(buf[start : pos + len(inner[0])].strip())
        return Found(((name, arguments if isinstance(arguments, dict) else {}),), inner[1])

    def write(self, name: str, arguments: dict[str, Any]) -> str:
        def value(v: Any) -> str:
            if isinstance(v, str):
                return f"<escape>{v}<escape>"
            if isinstance(v, dict):
                return "{" + ",".join(f"{k}:{value(x)}" for k, x in v.items()) + "}"
            if isinstance(v, list):
                return "[" + ",".join(value(x) for x in v) + "]"
            return json.dumps(v)

        return f"<start_function_call>call:{name}{value(arguments)}<end_function_call>"


# -- pythonic: Llama 3.2 / 4, ToolACE, LFM2, OLMo 3 ------------------------------------------


def _py_end(text: str, start: int) -> int | None:
    """Index past the bracketed Python expression at ``text[start]``; None if not closed."""
    depth, quote, escaped = 0, "", False
    for i in range(start, len(text)):
        char = text[i]
        if quote:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
            if depth == 0:
                return i + 1
    return None


class Pythonic(Dialect):
    name = "pythonic"
    families = "Llama 3.2 / 4, ToolACE, Gemma (tool_code)"
    openers = ("[", "<|python_start|>")
    template_markers = ("<|python_start|>", "[func_name1(")
    samples = (
        Sample("single", '[Bash(command="ls -la")]', (_call("Bash", _LS),)),
        Sample("two", "[Bash(command='ls -la'), Bash(command='pwd')]", (_call("Bash", _LS), _call("Bash", _PWD))),
        Sample("text-before", 'Listing:\n[Bash(command="ls -la", timeout=30)]', (("text", "Listing:\n"), _call("Bash", {"command": "ls -la", "timeout": 30}))),
        Sample("nested-unicode", '<|python_start|>[Write(file_path="/tmp/naïve-☃.json", content=\'{"k": [1, {"z": "ü"}]}\\n\', '
               'options={"mode": "a", "tags": ["日本", "x"]})]<|python_end|>', (_call("Write", _NESTED),)),
    )

    def parse(self, buf: str, tools: Tools, final: bool) -> Any:
        if buf.startswith("<|python_start|>"):
            inner = block(buf, "<|python_start|>", "<|python_end|>", final)
            if inner == MORE:
                return MORE
            calls = pythonic_calls(inner[0], tools)
            return Found(calls, inner[1]) if calls else NO
        head = name_possible(buf, 1, "(,[]{}\"' \n", tools)
        if not isinstance(head, tuple):
            return NO if final and head == MORE else head
        if head[1] == len(buf):
            return NO if final else MORE
        if buf[head[1]] != "(":
            return NO
        end = _py_end(buf, 0)
        if end is None:
            return NO if final else MORE
        calls = pythonic_calls(buf[:end], tools)
        # no marker, like bare JSON: a call mentioned mid-sentence is prose, not a call
        return _at_line_end(buf, calls, end, final) if calls else NO

    def write(self, name: str, arguments: dict[str, Any]) -> str:
        return f"[{name}(" + ", ".join(f"{k}={v!r}" for k, v in arguments.items()) + ")]"


class _TaggedPythonic(Dialect):
    closer: str

    def parse(self, buf: str, tools: Tools, final: bool) -> Any:
        opener = self.openers[0]
        pos = _skip_space(buf, len(opener))
        if pos == len(buf):
            return NO if final else MORE
        if buf[pos] == "[":
            pos = _skip_space(buf, pos + 1)
        if pos < len(buf):
            head = name_possible(buf, pos, "(", tools)
            if head == NO or (final and head == MORE):
                return NO
        inner = block(buf, opener, self.closer, final)
        if inner == MORE:
            return MORE
        calls = pythonic_calls(inner[0], tools)
        return Found(calls, inner[1]) if calls else NO

    def write(self, name: str, arguments: dict[str, Any]) -> str:
        return f"{self.openers[0]}[{name}(" + ", ".join(f"{k}={v!r}" for k, v in arguments.items()) + f")]{self.closer}"


class LFM2(_TaggedPythonic):
    name = "lfm2"
    families = "LFM2 (Liquid)"
    openers = ("<|tool_call_start|>",)
    closer = "<|tool_call_end|>"
    template_markers = ("<|tool_call_start|>",)
    samples = (
        Sample("single", '<|tool_call_start|>[Bash(command="ls -la")]<|tool_call_end|>', (_call("Bash", _LS),)),
        Sample("two", '<|tool_call_start|>[Bash(command="ls -la")]<|tool_call_end|><|tool_call_start|>[Bash(command="pwd")]<|tool_call_end|>',
               (_call("Bash", _LS), _call("Bash", _PWD))),
        Sample("text-before", 'I\'ll check.<|tool_call_start|>[Bash(command="ls -la")]<|tool_call_end|>',
               (("text", "I'll check."), _call("Bash", _LS))),
        Sample("nested-unicode", '<|tool_call_start|>[Write(file_path="/tmp/naïve-☃.json", content=\'{"k": [1, {"z": "ü"}]}\\n\', '
               "options={'mode': 'a', 'tags': ['日本', 'x']})]<|tool_call_end|>", (_call("Write", _NESTED),)),
    )


class OLMo3(_TaggedPythonic):
    name = "olmo3"
    families = "OLMo 3"
    openers = ("<function_calls>",)
    closer = "</function_calls>"
    template_markers = ("<function_calls>",)
    samples = (
        Sample("single", '<function_calls>Bash(command="ls -la")</function_calls>', (_call("Bash", _LS),)),
        Sample("two", '<function_calls>Bash(command="ls -la")\nBash(command="pwd")</function_calls>', (_call("Bash", _LS), _call("Bash", _PWD))),
        Sample("text-before", 'Let me check.<function_calls>Bash(command="ls -la", timeout=30)</function_calls>',
               (("text", "Let me check."), _call("Bash", {"command": "ls -la", "timeout": 30}))),
        Sample("nested-unicode", '<function_calls>Write(file_path="/tmp/naïve-☃.json", content=\'{"k": [1, {"z": "ü"}]}\\n\', '
               'options={"mode": "a", "tags": ["日本", "x"]})</function_calls>', (_call("Write", _NESTED),)),
    )

    def write(self, name: str, arguments: dict[str, Any]) -> str:
        return f"<function_calls>{name}(" + ", ".join(f"{k}={_J(v)}" for k, v in arguments.items()) + ")</function_calls>"


# -- MiniMax-M2 -----------------------------------------------------------------------------

_MINIMAX_INVOKE = re.compile(r'<invoke name="([^"]+)">(.*?)(?:</invoke>|\Z)', re.DOTALL)
_MINIMAX_PARAMETER = re.compile(r'<parameter name="([^"]+)">(.*?)</parameter>', re.DOTALL)


class MiniMaxM2(Dialect):
    name = "minimax_m2"
    families = "MiniMax-M2"
    openers = ("<minimax:tool_call>",)
    template_markers = ("<minimax:tool_call>",)
    samples = (
        Sample("single", '<minimax:tool_call>\n<invoke name="Bash">\n<parameter name="command">ls -la</parameter>\n</invoke>\n</minimax:tool_call>',
               (_call("Bash", _LS),)),
        Sample("two", '<minimax:tool_call>\n<invoke name="Bash">\n<parameter name="command">ls -la</parameter>\n</invoke>\n'
               '<invoke name="Bash">\n<parameter name="command">pwd</parameter>\n</invoke>\n</minimax:tool_call>',
               (_call("Bash", _LS), _call("Bash", _PWD))),
        Sample("text-before", 'Checking.\n<minimax:tool_call>\n<invoke name="Bash">\n<parameter name="command">ls -la</parameter>\n'
               '<parameter name="timeout">30</parameter>\n</invoke>\n</minimax:tool_call>',
               (("text", "Checking.\n"), _call("Bash", {"command": "ls -la", "timeout": 30}))),
        Sample("nested-unicode", '<minimax:tool_call>\n<invoke name="Write">\n<parameter name="file_path">/tmp/naïve-☃.json</parameter>\n'
               '<parameter name="content">{"k": [1, {"z": "ü"}]}\n</parameter>\n'
               f'<parameter name="options">{_J(_NESTED["options"])}</parameter>\n</invoke>\n</minimax:tool_call>',
               (_call("Write", _NESTED),)),
    )

    def parse(self, buf: str, tools: Tools, final: bool) -> Any:
        inner = block(buf, "<minimax:tool_call>", "</minimax:tool_call>", final)
        if inner == MORE:
            return MORE
        calls = []
        for name, body in _MINIMAX_INVOKE.findall(inner[0]):
            offered = tools.get(name.strip())
            if offered is None:
                return NO
            calls.append((offered, {k.strip(): v for k, v in _MINIMAX_PARAMETER.findall(body)}))
        return Found(tuple(calls), inner[1]) if calls else NO

    def write(self, name: str, arguments: dict[str, Any]) -> str:
        params = "".join(
            f'<parameter name="{k}">{v if isinstance(v, str) else _J(v)}</parameter>\n' for k, v in arguments.items()
        )
        return f'<minimax:tool_call>\n<invoke name="{name}">\n{params}</invoke>\n</minimax:tool_call>'


# -- no marker at all: bare JSON, and a fenced block of calls -------------------------------


class BareJSON(Dialect):
    """A call object (or a list of them) with no marker: the weakest evidence. It must stand
    at the end of its line (a call mentioned mid-sentence is prose)."""

    name = "json"
    families = "Llama 3.x without <|python_tag|>, xLAM, any model writing a JSON call"
    openers = ("{", "[")
    universal = True
    samples = (
        Sample("single", '{"name": "Bash", "parameters": {"command": "ls -la"}}', (_call("Bash", _LS),)),
        Sample("two", '{"name": "Bash", "arguments": {"command": "ls -la"}}\n{"name": "Bash", "arguments": {"command": "pwd"}}',
               (_call("Bash", _LS), _call("Bash", _PWD))),
        Sample("text-before", 'Running: {"name": "Bash", "arguments": {"command": "ls -la"}}', (("text", "Running: "), _call("Bash", _LS))),
        Sample("nested-unicode", _J({"name": "Write", "arguments": _NESTED}), (_call("Write", _NESTED),)),
        Sample("xlam-list", '[{"name": "Bash", "arguments": {"command": "ls -la"}}, {"name": "Bash", "arguments": {"command": "pwd"}}]',
               (_call("Bash", _LS), _call("Bash", _PWD))),
        Sample("openai-shape", '{"type": "function", "function": {"name": "Bash", "arguments": "{\\"command\\": \\"ls -la\\"}"}}',
               (_call("Bash", _LS),)),
    )

    def parse(self, buf: str, tools: Tools, final: bool) -> Any:
        if buf[0] == "[" and len(buf) > 1 and buf[_skip_space(buf, 1):][:1] not in ("{", ""):
            return NO
        value = _json_value_at(buf, 0, tools, final)
        if not isinstance(value, tuple):
            return value
        return _at_line_end(buf, value[0], value[1], final)

    def write(self, name: str, arguments: dict[str, Any]) -> str:
        return _J({"name": name, "arguments": arguments})


def _at_line_end(buf: str, calls: Any, end: int, final: bool) -> Any:
    """A marker-less call counts only when nothing but spaces follows it on its line (or
    another call, or an end-of-turn token): ``MORE`` until that is known."""
    pos = end
    while pos < len(buf) and buf[pos] in " \t":
        pos += 1
    if pos == len(buf):
        return Found(calls, end) if final else MORE
    if buf[pos] in "\r\n{[<":
        return Found(calls, end)
    return NO


#: a fenced block's start is judged (call or not) on its first characters only
_FENCE_EARLY = 512
_FENCE_LANGS = ("", "json", "tool_call", "tool_calls", "tool_code", "xml", "jsonl")


class Fenced(Dialect):
    """A fenced code block whose whole content is calls (in any dialect)."""

    name = "fenced"
    families = "any model wrapping its call in ```json … ``` (also Gemma's ```tool_code)"
    openers = ("```",)
    universal = True
    samples = (
        Sample("single", '```json\n{"name": "Bash", "arguments": {"command": "ls -la"}}\n```', (_call("Bash", _LS),)),
        Sample("two", '```json\n{"name": "Bash", "arguments": {"command": "ls -la"}}\n{"name": "Bash", "arguments": {"command": "pwd"}}\n```',
               (_call("Bash", _LS), _call("Bash", _PWD))),
        Sample("text-before", 'I will list the files.\n```json\n{"name": "Bash", "arguments": {"command": "ls -la"}}\n```\nDone.',
               (("text", "I will list the files.\n"), _call("Bash", _LS), ("text", "\nDone."))),
        Sample("nested-unicode", f'```json\n{json.dumps({"name": "Write", "arguments": _NESTED}, indent=2, ensure_ascii=False)}\n```',
               (_call("Write", _NESTED),)),
        Sample("tool-code", '```tool_code\nBash(command="ls -la")\n```', (_call("Bash", _LS),)),
    )

    def __init__(self, inner: Any = None) -> None:
        #: recognizes the fence's content: (text, final) → MORE | NO | calls (set by the registry)
        self.inner = inner

    def parse(self, buf: str, tools: Tools, final: bool) -> Any:
        newline = buf.find("\n", 3)
        lang = buf[3 : newline if newline >= 0 else len(buf)].strip().lower()
        if newline < 0:
            if final or not any(known.startswith(lang) for known in _FENCE_LANGS):
                return NO
            return MORE
        if lang not in _FENCE_LANGS:
            return NO
        close = buf.find("```", newline + 1)
        body = buf[newline + 1 : close if close >= 0 else len(buf)]
        if lang == "tool_code":  # Gemma: one Python call per line, no brackets
            start = _skip_space(body, 0)
            head = name_possible(body, start, "(", tools) if start < len(body) else MORE
            if close < 0 and not final:
                return NO if head == NO else MORE
            calls = pythonic_calls(body, tools) or NO
        elif close < 0 and not final:
            if len(body) > _FENCE_EARLY:  # the start was judged already: wait for the closing fence
                return MORE
            return MORE if self.inner(body, tools, False, lang) != NO else NO
        else:
            calls = self.inner(body, tools, True, lang)
        if isinstance(calls, str):  # MORE or NO
            return NO
        return Found(calls, close + 3 if close >= 0 else len(buf))

    def write(self, name: str, arguments: dict[str, Any]) -> str:
        return "```json\n" + _J({"name": name, "arguments": arguments}) + "\n```"
