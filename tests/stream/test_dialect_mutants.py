"""The dialect recognizers one by one, fast: what the client gets for a call printed in each
family's format, for its near-misses and for examples (text, byte for byte), and when held text
is released. Each row runs one dialect alone through the streaming filter, whole and one
character at a time, so a fault in one family's recognizer is not hidden by another that
shares its opener. No server: these are the tests the mutation run reaches first."""

from __future__ import annotations

import json
from typing import Any

import pytest

from proxy.stream.dialects import BY_NAME, DIALECTS, dialects_for_template, native_dialect, template_opens_think
from proxy.stream.dialects import base
from proxy.stream.dialects.base import MORE, NO, Dialect, Found, Tools, json_end, load_json
from proxy.stream.message import MessageBuilder
from proxy.stream.text_calls import TextCall, TextCallFilter, TextPiece
from proxy.stream.translator import ResponseTranslator

TOOL_NAMES = ["Bash", "Write", "Edit"]
TEXT = "text"


def run(text: str, dialects: tuple[Dialect, ...] | None, step: int | None = None, tools: list[str] = TOOL_NAMES) -> list[tuple]:
    """What the client gets: text merged, calls as (name, arguments, dialect)."""
    filt = TextCallFilter(tools, dialects)
    pieces = [text] if step is None else [text[i : i + step] for i in range(0, len(text), step)]
    out = [item for piece in pieces for item in filt.feed(piece)] + filt.finish()
    merged: list[tuple] = []
    for item in out:
        if isinstance(item, TextPiece):
            if merged and merged[-1][0] == "text":
                merged[-1] = ("text", merged[-1][1] + item.text)
            elif item.text:
                merged.append(("text", item.text))
        else:
            assert isinstance(item, TextCall)
            merged.append(("call", item.name, item.arguments, item.dialect))
    return merged


def released(text: str, dialects: tuple[Dialect, ...]) -> str:
    """The text the client has seen once ``text`` arrived (the answer not over yet)."""
    filt = TextCallFilter(TOOL_NAMES, dialects)
    return "".join(item.text for item in filt.feed(text) if isinstance(item, TextPiece))


# -- every sample, each dialect alone ----------------------------------------------------------

SAMPLES = [(d, s) for d in DIALECTS for s in d.samples]


SCHEMAS = {
    "Bash": {"type": "object", "properties": {"command": {"type": "string"}, "timeout": {"type": "number"}}},
    "Write": {"type": "object", "properties": {"file_path": {"type": "string"}, "content": {"type": "string"},
                                               "options": {"type": "object"}}},
    "Edit": {"type": "object", "properties": {"file_path": {"type": "string"}}},
}


def client_blocks(pieces: list[str], dialects: tuple[Dialect, ...]) -> list[tuple]:
    """The content blocks the client gets from the stream translator (schema repair included)."""
    translator = ResponseTranslator(client_model="claude-sonnet-4-5", input_tokens=1, tools=SCHEMAS,
                                    message_id="msg_test", dialects=dialects)
    builder = MessageBuilder()
    builder.add(translator.start())
    for piece in pieces + [""]:
        line = {"model": "m", "message": {"role": "assistant", "content": piece}, "done": piece == ""}
        builder.add(translator.feed(json.dumps(line).encode() + b"\n"))
    return [("text", b["text"]) if b["type"] == "text" else ("call", b["name"], b["input"]) for b in builder.message()["content"]]


@pytest.mark.parametrize(("dialect", "sample"), SAMPLES, ids=[f"{d.name}-{s.id}" for d, s in SAMPLES])
def test_a_sample_is_recognized_by_its_dialect_alone_whole_and_byte_by_byte(dialect, sample):
    want = [e if e[0] == "text" else ("call", e[1], e[2]) for e in sample.expected]
    for step in (len(sample.text), 1, 5):
        pieces = [sample.text[i : i + step] for i in range(0, len(sample.text), step)]
        assert client_blocks(pieces, (dialect,)) == want, step


# -- what each dialect writes (to describe its format to an emulated model) comes back ------

ROUND_TRIP = {"command": 'echo "a, b; c" > naïve-☃.txt', "description": "it's <b>bold</b> & [x]"}


@pytest.mark.parametrize("dialect", DIALECTS, ids=[d.name for d in DIALECTS])
def test_what_a_dialect_writes_is_read_back_exactly(dialect):
    printed = dialect.write("Bash", ROUND_TRIP)
    owner = dialect.name
    for step in (None, 1):
        assert run(printed, (dialect,), step) == [("call", "Bash", ROUND_TRIP, owner)], (printed, step)
        # among every dialect, the same call comes back (whichever recognizer gets it first)
        assert [g[:3] for g in run(printed, None, step)] == [("call", "Bash", ROUND_TRIP)], (printed, step)


def test_the_default_format_is_hermes():
    class Plain(Dialect):
        name = "plain"

    assert Plain().write("Bash", {"command": "ü"}) == '<tool_call>{"name": "Bash", "arguments": {"command": "ü"}}</tool_call>'
    assert repr(BY_NAME["hermes"]) == "<dialect hermes>"
    with pytest.raises(NotImplementedError):
        Plain().parse("x", Tools([]), True)


@pytest.mark.parametrize("dialect", [BY_NAME[n] for n in ("qwen3_coder", "glm", "minimax_m2")], ids=str)
def test_the_xml_families_write_non_string_values_as_json(dialect):
    printed = dialect.write("Write", {"file_path": "a", "options": {"n": [1, "x"]}, "count": 3})
    assert '{"n": [1, "x"]}' in printed and ">3<" in printed.replace("\n", "").replace("\n", "") or ">\n3\n<" in printed
    got = run(printed, (dialect,))
    assert got == [("call", "Write", {"file_path": "a", "options": '{"n": [1, "x"]}', "count": "3"}, dialect.name)]


def test_gemma_and_pythonic_write_typed_values():
    args = {"file_path": "a", "options": {"n": [1, "x"], "b": True}, "count": 3, "none": None}
    for name in ("functiongemma", "pythonic", "lfm2", "olmo3", "hermes", "json", "fenced", "mistral", "llama3", "kimi"):
        dialect = BY_NAME[name]
        got = run(dialect.write("Write", args), (dialect,))
        assert got == [("call", "Write", args, name)], (name, dialect.write("Write", args))


# -- near-misses and examples: each dialect alone, whole and byte by byte ------------------------

OUTCOMES = [
    ('hermes', '<tool_call>{"name": "Nope", "arguments": {}}</tool_call>', TEXT),
    ('hermes', '<tool_call>hello</tool_call>', TEXT),
    ('hermes', '<tool_call>{"name": "Bash", "arguments": {"command": "ls"}}; {"name": "Bash", "arguments": {"command": "pwd"}}</tool_call>', [('call', 'Bash', {'command': 'ls'}), ('call', 'Bash', {'command': 'pwd'})]),
    ('hermes', '<tool_call>{"name": "Bash", "arguments": {"command": "ls"}} then</tool_call>', TEXT),
    ('hermes', '<tool_call>{"name": "Bash", "arguments": {"command": "ls"}}\n{"name": "Nope", "arguments": {}}</tool_call>', TEXT),
    ('hermes', '<tool_call>{"name": "Bash", "arguments": {"command": "ls"}, "extra": 1}</tool_call>', TEXT),
    ('hermes', '<tool_call>{"name": "Bash", "arguments": {"command": "ls"}}\n{"name": "Bash", "arguments": {"command": "pwd"</tool_call>', [('call', 'Bash', {'command': 'ls'}), ('call', 'Bash', {'command': 'pwd'})]),
    ('hermes', '<tool_call>{"type": "function", "id": "c1", "function": {"name": "Bash", "arguments": {"command": "ls"}}}</tool_call>', [('call', 'Bash', {'command': 'ls'})]),
    ('hermes', '<tool_call>{"tool_call_id": "0", "tool_name": "bash", "args": {"command": "ls"}}</tool_call>', [('call', 'Bash', {'command': 'ls'})]),
    ('hermes', '<tool_call>{"tool": "Bash", "input": {"command": "ls"}}</tool_call>', [('call', 'Bash', {'command': 'ls'})]),
    ('hermes', '<tool_call>{"function": "Bash", "parameters": {"command": "ls"}}</tool_call>', [('call', 'Bash', {'command': 'ls'})]),
    ('hermes', '<tool_call>{"name": "Bash"}</tool_call>', [('call', 'Bash', {})]),
    ('hermes', '<tool_call>{"name": 3, "arguments": {}}</tool_call>', TEXT),
    ('hermes', '<tool_call>[]</tool_call>', TEXT),
    ('hermes', '<tool_call>[1, 2]</tool_call>', TEXT),
    ('hermes', "<tool_call>{'name': 'Bash', 'arguments': {'command': 'ls'}}</tool_call>", TEXT),
    ('hermes', '<tool_call>{"name": "Bash", "arguments": {"command": "a\\\\"b}"}}</tool_call>', [('call', 'Bash', {'command': 'a"b}'})]),
    ('hermes', '<tool_call>', TEXT),
    ('hermes', '<tool_call>   ', TEXT),
    ('qwen3_coder', '<function=Bash>\n<parameter=command>\nls\n</parameter>\n</function>', [('call', 'Bash', {'command': 'ls'})]),
    ('qwen3_coder', '<function=Nope>\n<parameter=command>\nls\n</parameter>\n</function>', TEXT),
    ('qwen3_coder', '<tool_call><function=Bash></function></tool_call>', [('call', 'Bash', {})]),
    ('qwen3_coder', '<tool_call><function=Bash><parameter= command >\n\nls\n\n</parameter></function></tool_call>', [('call', 'Bash', {'command': '\nls\n'})]),
    ('qwen3_coder', '<tool_call><function=Bash><parameter=command>ls</parameter>', [('call', 'Bash', {'command': 'ls'})]),
    ('qwen3_coder', '<tool_call>\n<func', TEXT),
    ('qwen3_coder', '<tool_call>hello</tool_call>', TEXT),
    ('qwen3_coder', '<tool_call><function=Zz>x</function></tool_call>', TEXT),
    ('qwen3_coder', '<tool_call><function=Ba', TEXT),
    ('qwen3_coder', '<seed:tool_call><function=Bash>{"command": "ls"}</function></seed:tool_call>', [('call', 'Bash', '{"command": "ls"}')]),
    ('qwen3_coder', '<function= bash >{"command": "ls"}</function>', [('call', 'Bash', '{"command": "ls"}')]),
    ('glm', '<tool_call>Bash</tool_call>', [('call', 'Bash', {})]),
    ('glm', '<tool_call>Bash\n<arg_key> command </arg_key>\n<arg_value>ls</arg_value></tool_call>', [('call', 'Bash', {'command': 'ls'})]),
    ('glm', '<tool_call>Bash hello</tool_call>', TEXT),
    ('glm', '<tool_call>Bash\nhello</tool_call>', TEXT),
    ('glm', '<tool_call>Bash{"command": "ls"}</tool_call>', TEXT),
    ('glm', '<tool_call>\nBash\n<arg_key>command</arg_key><arg_value>ls</arg_value></tool_call>', TEXT),
    ('glm', '<tool_call> Bash <arg_key>command</arg_key><arg_value>ls</arg_value></tool_call>', [('call', 'Bash', {'command': 'ls'})]),
    ('glm', '<tool_call>Bash\n<arg_key>command</arg_key><arg_value>ls</arg_value>', [('call', 'Bash', {'command': 'ls'})]),
    ('glm', '<tool_call>Ba', TEXT),
    ('llama3', '<|python_tag|>{"name": "Bash", "parameters": {"command": "ls"}}', [('call', 'Bash', {'command': 'ls'})]),
    ('llama3', '<|python_tag|>{"name": "Bash", "parameters": {"command": "ls"}}; {"name": "Nope", "parameters": {}}', [('call', 'Bash', {'command': 'ls'}), ('text', ' {"name": "Nope", "parameters": {}}')]),
    ('llama3', '<|python_tag|>{"name": "Bash", "parameters": {"command": "ls"}} and more', [('call', 'Bash', {'command': 'ls'}), ('text', ' and more')]),
    ('llama3', '<|python_tag|>{"name": "Bash", "parameters": {"command": "ls"}} ;{"name": "Bash", "parameters": {"command": "pwd"}}', [('call', 'Bash', {'command': 'ls'}), ('call', 'Bash', {'command': 'pwd'})]),
    ('llama3', '<|python_tag|>', TEXT),
    ('llama3', '<|python_tag|>hello', TEXT),
    ('llama3', '<|python_tag|>{"name": "Nope"}', TEXT),
    ('mistral', '[TOOL_CALLS]', TEXT),
    ('mistral', '[TOOL_CALLS]Bash', TEXT),
    ('mistral', '[TOOL_CALLS]Bash[ARGS]', TEXT),
    ('mistral', '[TOOL_CALLS]Bash[ARGS]hello', TEXT),
    ('mistral', '[TOOL_CALLS]Bash {"command": "ls"}', [('call', 'Bash', {'command': 'ls'})]),
    ('mistral', '[TOOL_CALLS]Bash[ARGS]{"command": "ls"', [('call', 'Bash', {'command': 'ls'})]),
    ('mistral', '[TOOL_CALLS]Bash[ARGS]{"command": ls}', [('call', 'Bash', {'command': 'ls'})]),
    ('mistral', '[TOOL_CALLS]Nope[ARGS]{"command": "ls"}', TEXT),
    ('mistral', '[TOOL_CALLS][{"name": "Nope", "arguments": {}}]', TEXT),
    ('mistral', '[TOOL_CALLS] {"name": "Bash", "arguments": {"command": "ls"}}', [('call', 'Bash', {'command': 'ls'})]),
    ('mistral', '[TOOL_CALLS]Bash[CALL_ID]abc', TEXT),
    ('mistral', '[TOOL_CALLS]Bash[CALL_ID]abc[ARGS]{"command": "ls"} done', [('call', 'Bash', {'command': 'ls'}), ('text', ' done')]),
    ('deepseek', '<｜tool▁call▁begin｜>Bash<｜tool▁sep｜>{"command": "ls"}<｜tool▁call▁end｜>', [('call', 'Bash', {'command': 'ls'})]),
    ('deepseek', '<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>Nope<｜tool▁sep｜>{}<｜tool▁call▁end｜><｜tool▁calls▁end｜>', TEXT),
    ('deepseek', '<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>Bash\n{"command": "ls"}<｜tool▁call▁end｜><｜tool▁calls▁end｜>', [('call', 'Bash', {'command': 'ls'})]),
    ('deepseek', '<｜tool▁calls▁begin｜><｜tool▁call▁begin｜> Bash <｜tool▁sep｜>not json<｜tool▁call▁end｜><｜tool▁calls▁end｜>', [('call', 'Bash', 'not json')]),
    ('deepseek', '<｜tool▁calls▁begin｜>nothing<｜tool▁calls▁end｜>', TEXT),
    ('deepseek', '<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>Bash<｜tool▁sep｜>{"command": "ls"}', [('call', 'Bash', {'command': 'ls'})]),
    ('harmony', '<|channel|>commentary to=Bash<|message|>{"command": "ls"}<|call|>', [('call', 'Bash', {'command': 'ls'})]),
    ('harmony', '<|channel|>commentary to=functions.Nope<|message|>{"command": "ls"}<|call|>', TEXT),
    ('harmony', '<|channel|>commentary<|message|>{"command": "ls"}<|call|>', TEXT),
    ('harmony', '<|channel|>commentary to=functions.Bash<|message|>ls -la<|call|>', TEXT),
    ('harmony', '<|channel|>commentary to=functions.Bash<|message|>{"command": "ls"', [('call', 'Bash', {'command': 'ls'})]),
    ('harmony', '<|channel|>commentary to=functions.Bash<|message|>  ', TEXT),
    ('harmony', '<|start|>assistant<|channel|>commentary to=functions.Bash<|message|>{"command": "ls"}', [('call', 'Bash', {'command': 'ls'})]),
    ('harmony', '<|start|>assistant says hi', TEXT),
    ('harmony', '<|start|>assistant<|chan', TEXT),
    ('harmony', '<|channel|>commentary to=functions.Bash', TEXT),
    ('granite', '<function_call>{"name": "Nope", "arguments": {}}', TEXT),
    ('granite', '<|tool_call|>hello', TEXT),
    ('functools', 'functools is a module', TEXT),
    ('functools', 'functools', TEXT),
    ('functools', 'functools [{"name": "Bash", "arguments": {"command": "ls"}}]', [('call', 'Bash', {'command': 'ls'})]),
    ('functools', 'functools{"name": "Bash", "arguments": {"command": "ls"}}', TEXT),
    ('tool_calls_tag', '<tool_calls>hello</tool_calls>', TEXT),
    ('tool_calls_tag', '<tool_calls>', TEXT),
    ('tool_calls_tag', '<tool_calls>{"name": "Nope", "arguments": {}}</tool_calls>', TEXT),
    ('nemotron', '<TOOLCALL>{"name": "Bash", "arguments": {"command": "ls"}}', [('call', 'Bash', {'command': 'ls'})]),
    ('internlm', '<|action_start|><|plugin|>{"name": "Bash", "parameters": {"command": "ls"}}', [('call', 'Bash', {'command': 'ls'})]),
    ('kimi', '<|tool_call_begin|>functions.Bash:0<|tool_call_argument_begin|>{"command": "ls"}<|tool_call_end|>', [('call', 'Bash', {'command': 'ls'})]),
    ('kimi', '<|tool_call_begin|>Bash<|tool_call_argument_begin|>{"command": "ls"}<|tool_call_end|>', [('call', 'Bash', {'command': 'ls'})]),
    ('kimi', '<|tool_calls_section_begin|><|tool_call_begin|>functions.Nope:0<|tool_call_argument_begin|>{}<|tool_call_end|><|tool_calls_section_end|>', TEXT),
    ('kimi', '<|tool_calls_section_begin|><|tool_call_begin|>functions.Bash:0<|tool_call_argument_begin|>ls -la<|tool_call_end|><|tool_calls_section_end|>', [('call', 'Bash', 'ls -la')]),
    ('kimi', '<|tool_calls_section_begin|>nothing<|tool_calls_section_end|>', TEXT),
    ('kimi', '<|tool_calls_section_begin|><|tool_call_begin|>functions.Bash:0<|tool_call_argument_begin|>{"command": "ls"}', [('call', 'Bash', {'command': 'ls'})]),
    ('command_r', 'Action: none needed', TEXT),
    ('command_r', 'Action:', TEXT),
    ('command_r', 'Action: [{"tool_name": "Bash", "parameters": {"command": "ls"}}]', [('call', 'Bash', {'command': 'ls'})]),
    ('command_r', 'Action: ```python\n[{"tool_name": "Bash", "parameters": {"command": "ls"}}]\n```', TEXT),
    ('command_r', 'Action: ```\n[{"tool_name": "Bash", "parameters": {"command": "ls"}}]\n```', [('call', 'Bash', {'command': 'ls'})]),
    ('command_r', 'Action: ```json\n[{"tool_name": "Bash", "parameters": {"command": "ls"}}]', [('call', 'Bash', {'command': 'ls'})]),
    ('command_r', 'Action: ```json\n[{"tool_name": "Bash", "parameters": {"command": "ls"}}]\n``` and done', [('call', 'Bash', {'command': 'ls'}), ('text', ' and done')]),
    ('command_r', 'Action: ```json\n[{"tool_name": "Bash", "parameters": {"command": "ls"}}] trailing words', [('call', 'Bash', {'command': 'ls'}), ('text', ' trailing words')]),
    ('command_r', 'Action: ```js', TEXT),
    ('command_r', '<|START_ACTION|>hello<|END_ACTION|>', TEXT),
    ('command_r', '<|START_ACTION|>', TEXT),
    ('command_r', '<|START_ACTION|>{"name": "Nope"}<|END_ACTION|>', TEXT),
    ('command_r', '<|START_ACTION|>{"tool_name": "Bash", "parameters": {"command": "ls"}}<|END_ACTION|>', [('call', 'Bash', {'command': 'ls'})]),
    ('functiongemma', '<start_function_call>call:Bash{}<end_function_call>', [('call', 'Bash', {})]),
    ('functiongemma', '<start_function_call>call:Nope{}<end_function_call>', TEXT),
    ('functiongemma', '<start_function_call>Bash{}<end_function_call>', TEXT),
    ('functiongemma', '<start_function_call>call:Bash{command:<escape>a, b: c<escape>, n-x : 3}<end_function_call>', [('call', 'Bash', {'command': 'a, b: c', 'n-x': 3})]),
    ('functiongemma', '<start_function_call>call:Bash{command:<escape>ls<escape>}', [('call', 'Bash', {'command': 'ls'})]),
    ('functiongemma', '<start_function_call>call:Bash not json<end_function_call>', TEXT),
    ('functiongemma', '<start_function_call>ca', TEXT),
    ('pythonic', '[Bash(command="ls")]', [('call', 'Bash', {'command': 'ls'})]),
    ('pythonic', '[Nope(command="ls")]', TEXT),
    ('pythonic', '[Bash("ls")]', TEXT),
    ('pythonic', '[Bash(command=ls)]', TEXT),
    ('pythonic', '[Bash]', TEXT),
    ('pythonic', '[Bash(command="ls", flag=true, other=None, n=null, f=False, l=[1, (2)], d={"a": {"b": True}})]', [('call', 'Bash', {'command': 'ls', 'flag': True, 'other': None, 'n': None, 'f': False, 'l': [1, 2], 'd': {'a': {'b': True}}})]),
    ('pythonic', '[functions.Bash(command="ls")]', TEXT),
    ('pythonic', '[tools.bash(command="ls")]', TEXT),
    ('pythonic', '[Bash(command="ls"), Nope()]', TEXT),
    ('pythonic', '[Bash(command="a)]\'\\"(")]', [('call', 'Bash', {'command': 'a)]\'"('})]),
    ('pythonic', "[Bash(command='it\\'s')]", [('call', 'Bash', {'command': "it's"})]),
    ('pythonic', '[Bash(command="ls")', TEXT),
    ('pythonic', '[Bash(command=f(x))]', TEXT),
    ('pythonic', '[x.y(command=1)]', TEXT),
    ('pythonic', '<|python_start|>Bash(command="ls")<|python_end|>', [('call', 'Bash', {'command': 'ls'})]),
    ('pythonic', '<|python_start|>nothing<|python_end|>', TEXT),
    ('pythonic', '<|python_start|>[Bash(command="ls")]', [('call', 'Bash', {'command': 'ls'})]),
    ('lfm2', '<|tool_call_start|>Bash(command="ls")<|tool_call_end|>', [('call', 'Bash', {'command': 'ls'})]),
    ('lfm2', '<|tool_call_start|>[Nope()]<|tool_call_end|>', TEXT),
    ('lfm2', '<|tool_call_start|>', TEXT),
    ('lfm2', '<|tool_call_start|> [ Bash(command="ls")]', [('call', 'Bash', {'command': 'ls'})]),
    ('lfm2', '<|tool_call_start|>[Ba', TEXT),
    ('olmo3', '<function_calls>hello</function_calls>', TEXT),
    ('minimax_m2', '<minimax:tool_call><invoke name="Nope"></invoke></minimax:tool_call>', TEXT),
    ('minimax_m2', '<minimax:tool_call>nothing</minimax:tool_call>', TEXT),
    ('minimax_m2', '<minimax:tool_call><invoke name=" Bash "><parameter name=" command ">ls</parameter>', [('call', 'Bash', {'command': 'ls'})]),
    ('json', '{"name": "Bash", "arguments": {"command": "ls"}} is what I would run', TEXT),
    ('json', '{"name": "Bash", "arguments": {"command": "ls"}}\nDone.', [('call', 'Bash', {'command': 'ls'}), ('text', '\nDone.')]),
    ('json', '{"name": "Bash", "arguments": {"command": "ls"}}<|eot_id|>', [('call', 'Bash', {'command': 'ls'})]),
    ('json', '[1, 2, 3]', TEXT),
    ('json', '[ {"name": "Bash", "arguments": {"command": "ls"}}]', [('call', 'Bash', {'command': 'ls'})]),
    ('json', '[]', TEXT),
    ('json', '[', TEXT),
    ('json', '{"name": "Bash", "arguments": {"command": "ls"}', [('call', 'Bash', {'command': 'ls'})]),
    ('fenced', '```json\n{"name": "Bash", "arguments": {"command": "ls"}}\n```', [('call', 'Bash', {'command': 'ls'})]),
    ('fenced', '```JSON \n{"name": "Bash", "arguments": {"command": "ls"}}\n```', [('call', 'Bash', {'command': 'ls'})]),
    ('fenced', '```python\n{"name": "Bash", "arguments": {"command": "ls"}}\n```', TEXT),
    ('fenced', '```json\n{"name": "Bash", "arguments": {"command": "ls"}}\n', [('call', 'Bash', {'command': 'ls'})]),
    ('fenced', '```json\n{"name": "Bash", "arguments": {"command": "ls"}}\nand text\n```', TEXT),
    ('fenced', '```json\n{"name": "Nope", "arguments": {}}\n```', TEXT),
    ('fenced', '```\n<tool_call>{"name": "Bash", "arguments": {"command": "ls"}}</tool_call>\n```', [('call', 'Bash', {'command': 'ls'})]),
    ('fenced', '```xml\n<function=Bash><parameter=command>ls</parameter></function>\n```', [('call', 'Bash', {'command': 'ls'})]),
    ('fenced', '```json', TEXT),
    ('fenced', '```tool_code\nBash(command="ls")\nBash(command="pwd")\n```', [('call', 'Bash', {'command': 'ls'}), ('call', 'Bash', {'command': 'pwd'})]),
    ('fenced', '```tool_code\nNope(command="ls")\n```', TEXT),
    ('fenced', '```tool_code\nBash(command="ls")', [('call', 'Bash', {'command': 'ls'})]),
    ('fenced', '```tool_code\n', TEXT),
    ('fenced', '```jsonl\n{"name": "Bash", "arguments": {"command": "ls"}}\n{"name": "Bash", "arguments": {"command": "pwd"}}\n```', [('call', 'Bash', {'command': 'ls'}), ('call', 'Bash', {'command': 'pwd'})]),
    ('fenced', '```tool_calls\n[{"name": "Bash", "arguments": {"command": "ls"}}]\n```', [('call', 'Bash', {'command': 'ls'})]),
]
RELEASES = [
    ('hermes', '<tool_call>', False),
    ('hermes', '<tool_call>{"na', False),
    ('hermes', '<tool_call>{"x', True),
    ('hermes', '<tool_call>{"name": "Nope"', True),
    ('hermes', '<tool_call>{"name": "Ba', False),
    ('hermes', '<tool_call>{"name": "Zz', True),
    ('hermes', '<tool_call>{"name" x', True),
    ('hermes', '<tool_call>{"name": 3', True),
    ('hermes', '<tool_call>{"type": "x', False),
    ('hermes', '<tool_call>{"function": {', False),
    ('hermes', '<tool_call>{"name":', False),
    ('hermes', '<tool_call>{"name"', False),
    ('hermes', '<tool_call>{ ', False),
    ('hermes', '<tool_call>{x', True),
    ('hermes', '<tool_call>[ ', False),
    ('hermes', '<tool_call>[x', True),
    ('hermes', '<tool_call>x', True),
    ('hermes', '<tool_call>{"arguments": {}, "name": "Bash"', True),
    ('qwen3_coder', '<tool_call>\n<func', False),
    ('qwen3_coder', '<tool_call>\nhello', True),
    ('qwen3_coder', '<tool_call><function=Ba', False),
    ('qwen3_coder', '<tool_call><function=Zz', True),
    ('qwen3_coder', '<function=Bash>', False),
    ('qwen3_coder', '<function=Zz>', True),
    ('qwen3_coder', '<seed:tool_call> <function=Bash>x', False),
    ('glm', '<tool_call>Ba', False),
    ('glm', '<tool_call>Zz', True),
    ('glm', '<tool_call>Bash\n<arg_', False),
    ('glm', '<tool_call>Bash\n</tool_', False),
    ('glm', '<tool_call>Bash\nx', True),
    ('glm', '<tool_call>Bash\n<arg_key>command</arg_key>', False),
    ('llama3', '<|python_tag|>{"name": "Bash", "parameters": {"command": "ls"}}', False),
    ('llama3', '<|python_tag|>{"name": "Bash", "parameters": {"command": "ls"}} and', ' and'),
    ('llama3', '<|python_tag|>x', True),
    ('mistral', '[TOOL_CALLS]', False),
    ('mistral', '[TOOL_CALLS]Ba', False),
    ('mistral', '[TOOL_CALLS]Zz', True),
    ('mistral', '[TOOL_CALLS]Bash[AR', False),
    ('mistral', '[TOOL_CALLS]Bash[CA', False),
    ('mistral', '[TOOL_CALLS]Bash[CALL_ID]abcdef', False),
    ('mistral', '[TOOL_CALLS]Bash[CALL_ID]0123456789012345678901234567890123456789012345678901234567890123456789', True),
    ('mistral', '[TOOL_CALLS]Bash[ARGS]', False),
    ('mistral', '[TOOL_CALLS]Bash[ARGS]x', True),
    ('mistral', '[TOOL_CALLS]Bash[ARGS]{"c', False),
    ('deepseek', '<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>Bash<｜tool▁sep｜>{"command": "ls"}<｜tool▁call▁end｜>', False),
    ('harmony', '<|start|>assistant<|chan', False),
    ('harmony', '<|start|>assistant hi', True),
    ('harmony', '<|channel|>commentary to=functions.Bash', False),
    ('harmony', '<|channel|>commentary to=functions.Bash <|call|>', True),
    ('harmony', '<|channel|>final xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx', True),
    ('harmony', '<|channel|>commentary to=functions.Bash<|message|>', False),
    ('harmony', '<|channel|>commentary to=functions.Bash<|message|>x', True),
    ('harmony', '<|channel|>commentary to=functions.Bash<|message|>{"c', False),
    ('granite', '<|tool_call|>', False),
    ('granite', '<|tool_call|>x', True),
    ('functools', 'functools', False),
    ('functools', 'functools x', True),
    ('tool_calls_tag', '<tool_calls>', False),
    ('tool_calls_tag', '<tool_calls>x', True),
    ('tool_calls_tag', '<tool_calls>{"name": "Nope"', True),
    ('kimi', '<|tool_calls_section_begin|><|tool_call_begin|>functions.Bash:0<|tool_call_argument_begin|>{"command": "ls"}<|tool_call_end|>', False),
    ('command_r', 'Action:', False),
    ('command_r', 'Action: ``', False),
    ('command_r', 'Action: ```js', False),
    ('command_r', 'Action: ```jsx', True),
    ('command_r', 'Action: ```json\n[{"tool_name": "Bash", "parameters": {"command": "ls"}}]', False),
    ('command_r', 'Action: ```json\n[{"tool_name": "Bash", "parameters": {"command": "ls"}}]\n``', False),
    ('command_r', 'Action: ```json\n[{"tool_name": "Bash", "parameters": {"command": "ls"}}] x', ' x'),
    ('command_r', '<|START_ACTION|>', False),
    ('command_r', '<|START_ACTION|>x', True),
    ('command_r', '<|START_ACTION|>{"x', True),
    ('functiongemma', '<start_function_call>ca', False),
    ('functiongemma', '<start_function_call>x', True),
    ('functiongemma', '<start_function_call>call:Ba', False),
    ('functiongemma', '<start_function_call>call:Zz', True),
    ('functiongemma', '<start_function_call>call:Bash{command:', False),
    ('pythonic', '[Ba', False),
    ('pythonic', '[Zz', True),
    ('pythonic', '[Bash', False),
    ('pythonic', '[Bash x', True),
    ('pythonic', '[Bash(command="ls"', False),
    ('pythonic', '<|python_start|>[Bash(command="ls")]', False),
    ('lfm2', '<|tool_call_start|>', False),
    ('lfm2', '<|tool_call_start|>[Ba', False),
    ('lfm2', '<|tool_call_start|>[Zz', True),
    ('lfm2', '<|tool_call_start|>Bash(command="ls")', False),
    ('minimax_m2', '<minimax:tool_call><invoke name="Bash">', False),
    ('json', '{"name": "Bash", "arguments": {"command": "ls"}}', False),
    ('json', '{"name": "Bash", "arguments": {"command": "ls"}}  ', False),
    ('json', '{"name": "Bash", "arguments": {"command": "ls"}} x', True),
    ('json', '[1', True),
    ('json', '[', False),
    ('json', '[ ', False),
    ('json', '{"name": "Bash", "arguments": {"command": "ls"}}\n', '\n'),
    ('fenced', '```', False),
    ('fenced', '```js', False),
    ('fenced', '```py', True),
    ('fenced', '```tool_code\nBa', False),
    ('fenced', '```tool_code\nZz', True),
    ('fenced', '```tool_code\n', False),
    ('fenced', '```json\n{"name": "Ba', False),
    ('fenced', '```json\n{"name": "Zz', True),
    ('fenced', '```json\nhello', True),
    ('fenced', '```json\n', False),
]


def _expected(row_want: Any, text: str, name: str) -> list[tuple]:
    if row_want == TEXT:
        return [("text", text)]
    owner = "mistral" if name == "mistral_args" else name
    return [w if w[0] == "text" else ("call", w[1], w[2], owner) for w in row_want]


@pytest.mark.parametrize(("name", "text", "want"), OUTCOMES, ids=[f"{r[0]}-{i}" for i, r in enumerate(OUTCOMES)])
def test_what_the_client_gets_for_a_near_miss_or_a_variant(name, text, want):
    for step in (None, 1):
        assert run(text, (BY_NAME[name],), step) == _expected(want, text, name), step


@pytest.mark.parametrize(("name", "text", "want"), RELEASES, ids=[f"{r[0]}-{i}" for i, r in enumerate(RELEASES)])
def test_text_that_cannot_be_a_call_is_released_at_once_and_a_possible_call_is_held(name, text, want):
    """``True``: the client has it all at once (not a call); ``False``: all of it is held (may
    still be a call); a string: the call was recognized and only that trails as text."""
    expected = text if want is True else "" if want is False else want
    assert released(text, (BY_NAME[name],)) == expected


# -- the shared helpers, through what they decide -------------------------------------------------


def test_a_long_call_held_piece_by_piece_is_scanned_to_its_true_end():
    """json_end resumes a long open text where it stopped: strings, escapes and brackets inside
    strings must not end (or fail to end) the object early, however the text was cut."""
    content = ('x = {"a": [1, 2]} # \\" ] } \\\\ \n' * 400)
    call = {"name": "Write", "arguments": {"file_path": "/tmp/a.py", "content": content}}
    text = "<tool_call>" + json.dumps(call) + "</tool_call> after"
    for step in (7, 4096, 5000):
        filt = TextCallFilter(TOOL_NAMES)
        out = [i for k in range(0, len(text), step) for i in filt.feed(text[k : k + step])] + filt.finish()
        assert [(o.name, o.arguments) for o in out if isinstance(o, TextCall)] == [("Write", call["arguments"])], step
        assert "".join(o.text for o in out if isinstance(o, TextPiece)) == " after"


@pytest.mark.parametrize(("text", "end"), [
    ('{"a": "}"}', 10), ('{"a": "\\"}"}', 12), ('{"a": "\\\\"} x', 11), ('[1, [2], {"x": "]"}] y', 20),
    ('{"a": 1', None), ('{"a": "\\', None), ("[]", 2), ('{"k": "\\u00fc"}', 15),
])
def test_json_end_finds_where_a_json_value_closes(text, end):
    assert json_end(text) == end
    assert json_end("pre " + text, 4) == (None if end is None else end + 4)


def test_json_end_resumes_a_long_text_only_when_it_grew_from_the_same_start():
    start = '{"a": "' + "x" * 5000
    assert json_end(start) is None
    assert json_end(start + '"}') == len(start) + 2
    assert json_end(start + '\\"}') is None  # an escaped quote: still open
    other = '{"a": ' + "[" * 5000  # same first characters would be a different text
    assert json_end(other + "]" * 5000 + "}") == len(other) + 5001
    for n in range(20):  # many long texts: the memory of open texts stays bounded
        json_end('{"k%d": "' % n + "y" * 4100)
    assert len(base._RESUME) <= base._RESUME_SIZE


def test_load_json_reads_json_then_near_json_else_nothing():
    assert load_json(' {"a": 1} ') == {"a": 1}
    assert load_json("[1, 2") == [1, 2]
    assert load_json("{'a': 'b'}") == {"a": "b"}
    assert load_json("hello") is None
    assert load_json("") is None


def test_tools_match_names_without_regard_to_case():
    tools = Tools(["Bash", "WebFetch"])
    assert tools.get("bash") == "Bash" and tools.get("WEBFETCH") == "WebFetch"
    assert tools.get("Bas") is None and tools.get(3) is None
    assert tools.may_start("web") and tools.may_start("") and not tools.may_start("x")


def test_found_and_the_verdicts():
    assert (MORE, NO) == ("more", "no")
    assert Found((("Bash", {}),), 3).consumed == 3


# -- the registry ---------------------------------------------------------------------------------


def test_a_template_puts_its_dialects_first_then_only_the_universal_ones():
    got = dialects_for_template("{{ .Prompt }} [TOOL_CALLS] [ARGS] <|python_tag|>")
    names = [d.name for d in got]
    assert names == ["llama3", "mistral", "mistral_args", "hermes", "qwen3_coder", "json", "fenced"]
    assert dialects_for_template(None) == DIALECTS and dialects_for_template("") == DIALECTS
    assert dialects_for_template("{{ .Prompt }}") == DIALECTS
    # a universal dialect the template names is not listed twice
    assert [d.name for d in dialects_for_template("<tool_call>")] == ["hermes", "qwen3_coder", "json", "fenced"]


@pytest.mark.parametrize(("template", "name"), [
    (None, None), ("", None), ("nothing known", None),
    ("<tool_call><function=x><parameter=y>", "qwen3_coder"),
    ("<tool_call>x<arg_key>k</arg_key>", "glm"),
    ("[TOOL_CALLS]x[ARGS]", "mistral_args"),
    ("<|python_tag|>", "llama3"), ("<|tool_call_start|>", "lfm2"), ("<minimax:tool_call>", "minimax_m2"),
])
def test_the_native_dialect_is_the_most_specific_one_the_template_names(template, name):
    found = native_dialect(template)
    assert (found.name if found else None) == name


def test_template_opens_think_reads_the_end_outside_go_actions():
    assert template_opens_think("x<think>{{ if .X }}\n{{ end }}  \n")
    assert template_opens_think("<think>{{- /* multi\nline */ -}}")
    assert not template_opens_think("<think>{{ .Thinking }}</think>")
    assert not template_opens_think(None)


def test_a_fenced_block_of_calls_in_another_dialect_is_read_by_that_dialect():
    fenced = (BY_NAME["fenced"],)
    body = '```\n<tool_call>{"name": "Bash", "arguments": {"command": "ls"}}</tool_call>\n```'
    assert run(body, fenced) == [("call", "Bash", {"command": "ls"}, "fenced")]
    body = '```json\n{"name": "Bash", "arguments": {"command": "ls"}}\n``` done'
    for step in (1, 2, 3):  # the closing fence arriving a backtick at a time
        assert run(body, fenced, step) == [("call", "Bash", {"command": "ls"}, "fenced"), ("text", " done")], step
    # the fence's body is more than calls: it is an example, all text
    example = '```json\n{"name": "Bash", "arguments": {"command": "ls"}}\nrun this\n```'
    assert run(example, fenced, 1) == [("text", example)]
    # while the fence is open, a body that cannot be a call is released before the fence closes
    assert released('```json\n{"name": "Nope"', fenced) == '```json\n{"name": "Nope"'
    assert released('```json\n{"name": "Bash", "arguments": {}}\n``', fenced) == ""


@pytest.mark.parametrize(("name", "prefix", "held_up_to"), [
    ("mistral", "[TOOL_CALLS]Bash[CALL_ID]", 55),  # a call id of up to 55 characters may still lead to [ARGS]
    ("harmony", "<|channel|>", 189),  # a header of up to 200 characters may still reach <|message|>
])
def test_a_marker_whose_header_runs_too_long_is_released_as_text(name, prefix, held_up_to):
    for n in (held_up_to - 1, held_up_to):
        assert released(prefix + "a" * n, (BY_NAME[name],)) == ""
    text = prefix + "a" * (held_up_to + 1)
    assert released(text, (BY_NAME[name],)) == text


def test_an_open_fence_is_judged_on_its_first_512_characters_then_held_to_its_end():
    fenced = (BY_NAME["fenced"],)
    text = "```json\n" + "h" * 512
    assert released(text, fenced) == text  # not a call: the client has it at once
    assert released(text + "h", fenced) == ""  # past the judged start: held until the fence closes
    assert run(text + "h\n``` ok", fenced) == [("text", text + "h\n``` ok")]


# -- the format an emulated model is told to print (what Ollama receives in the prompt) ----------

WRITTEN = [
    ('hermes', '<tool_call>{"name": "Edit", "arguments": {"file_path": "ü.txt", "n": [1, true], "x": null}}</tool_call>'),
    ('qwen3_coder', '<tool_call>\n<function=Edit>\n<parameter=file_path>\nü.txt\n</parameter>\n<parameter=n>\n[1, true]\n</parameter>\n<parameter=x>\nnull\n</parameter>\n</function>\n</tool_call>'),
    ('glm', '<tool_call>Edit\n<arg_key>file_path</arg_key>\n<arg_value>ü.txt</arg_value>\n<arg_key>n</arg_key>\n<arg_value>[1, true]</arg_value>\n<arg_key>x</arg_key>\n<arg_value>null</arg_value>\n</tool_call>'),
    ('llama3', '<|python_tag|>{"name": "Edit", "parameters": {"file_path": "ü.txt", "n": [1, true], "x": null}}'),
    ('mistral', '[TOOL_CALLS][{"name": "Edit", "arguments": {"file_path": "ü.txt", "n": [1, true], "x": null}}]'),
    ('mistral_args', '[TOOL_CALLS]Edit[ARGS]{"file_path": "ü.txt", "n": [1, true], "x": null}'),
    ('deepseek', '<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>Edit<｜tool▁sep｜>{"file_path": "ü.txt", "n": [1, true], "x": null}<｜tool▁call▁end｜><｜tool▁calls▁end｜>'),
    ('harmony', '<|channel|>commentary to=functions.Edit <|constrain|>json<|message|>{"file_path": "ü.txt", "n": [1, true], "x": null}<|call|>'),
    ('granite', '<|tool_call|>[{"name": "Edit", "arguments": {"file_path": "ü.txt", "n": [1, true], "x": null}}]'),
    ('functools', 'functools[{"name": "Edit", "arguments": {"file_path": "ü.txt", "n": [1, true], "x": null}}]'),
    ('kimi', '<|tool_calls_section_begin|><|tool_call_begin|>functions.Edit:0<|tool_call_argument_begin|>{"file_path": "ü.txt", "n": [1, true], "x": null}<|tool_call_end|><|tool_calls_section_end|>'),
    ('command_r', 'Action: ```json\n[{"tool_name": "Edit", "parameters": {"file_path": "ü.txt", "n": [1, true], "x": null}}]\n```'),
    ('functiongemma', '<start_function_call>call:Edit{file_path:<escape>ü.txt<escape>,n:[1,true],x:null}<end_function_call>'),
    ('minimax_m2', '<minimax:tool_call>\n<invoke name="Edit">\n<parameter name="file_path">ü.txt</parameter>\n<parameter name="n">[1, true]</parameter>\n<parameter name="x">null</parameter>\n</invoke>\n</minimax:tool_call>'),
    ('tool_calls_tag', '<tool_calls>[{"name": "Edit", "arguments": {"file_path": "ü.txt", "n": [1, true], "x": null}}]</tool_calls>'),
    ('nemotron', '<TOOLCALL>[{"name": "Edit", "arguments": {"file_path": "ü.txt", "n": [1, true], "x": null}}]</TOOLCALL>'),
    ('internlm', '<|action_start|><|plugin|>[{"name": "Edit", "arguments": {"file_path": "ü.txt", "n": [1, true], "x": null}}]<|action_end|>'),
    ('lfm2', "<|tool_call_start|>[Edit(file_path='ü.txt', n=[1, True], x=None)]<|tool_call_end|>"),
    ('olmo3', '<function_calls>Edit(file_path="ü.txt", n=[1, true], x=null)</function_calls>'),
    ('pythonic', "[Edit(file_path='ü.txt', n=[1, True], x=None)]"),
    ('json', '{"name": "Edit", "arguments": {"file_path": "ü.txt", "n": [1, true], "x": null}}'),
    ('fenced', '```json\n{"name": "Edit", "arguments": {"file_path": "ü.txt", "n": [1, true], "x": null}}\n```'),
]


@pytest.mark.parametrize(("name", "printed"), WRITTEN, ids=[w[0] for w in WRITTEN])
def test_each_dialect_writes_a_call_exactly_as_its_family_prints_it(name, printed):
    """Byte for byte: non-ASCII kept, JSON values as JSON (Python literals for the pythonic
    family), each argument on its own line where the family's template puts it there."""
    assert BY_NAME[name].write("Edit", {"file_path": "ü.txt", "n": [1, True], "x": None}) == printed


# -- pythonic calls: where the bracketed call ends ------------------------------------------------


@pytest.mark.parametrize(("text", "want"), [
    ('[Bash(command="")]', [("call", "Bash", {"command": ""}, "pythonic")]),
    ("[Bash(command='')]", [("call", "Bash", {"command": ""}, "pythonic")]),
    ('[Bash(command="ls")]\nDone.', [("call", "Bash", {"command": "ls"}, "pythonic"), ("text", "\nDone.")]),
    ('[Bash(command="ls")]  \t\r\nok', [("call", "Bash", {"command": "ls"}, "pythonic"), ("text", "  \t\r\nok")]),
    ('[Xcode(scheme="App", n=[1, {"a": (2)}])]', [("call", "Xcode", {"scheme": "App", "n": [1, {"a": 2}]}, "pythonic")]),
    ('[Bash(command="a\\"b)]")]\nx', [("call", "Bash", {"command": 'a"b)]'}, "pythonic"), ("text", "\nx")]),
])
def test_a_pythonic_call_ends_at_its_closing_bracket(text, want):
    for step in (None, 1):
        assert run(text, (BY_NAME["pythonic"],), step, tools=["Bash", "Xcode"]) == want, step


# -- a bug the mutation work found: a pythonic call mentioned mid-sentence was run ----------------

MENTIONED = [
    'You could run [Bash(command="rm -rf build")] to clean up.',
    '[Bash(command="ls")] lists the files.',
    "Either [Bash(command='ls')] or [Bash(command='pwd')], as you like.",
]


@pytest.mark.parametrize("text", MENTIONED)
def test_a_pythonic_call_mentioned_mid_sentence_stays_text(text):
    """Like bare JSON, ``[name(…)]`` has no marker: it is a call only at the end of its line."""
    for step in (None, 1, 3):
        assert run(text, None, step) == [("text", text)], step
        assert run(text, (BY_NAME["pythonic"],), step) == [("text", text)], step


async def test_a_pythonic_call_mentioned_mid_sentence_reaches_the_client_as_text(fake_ollama, proxy):
    import trio

    from tests.fake_ollama import Chunk, text_stream

    tool = {"name": "Bash", "description": "run", "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}}
    example = MENTIONED[0] + '\nOr list first:\n[Bash(command="ls")]'
    fake_ollama.script_chat([Chunk(content=example[i : i + 4]) for i in range(0, len(example), 4)] + text_stream("", eval_count=9))
    with trio.fail_after(20):
        def call() -> Any:
            with proxy.client().messages.stream(model="claude-opus-5-5", max_tokens=99, tools=[tool],
                                                messages=[{"role": "user", "content": "clean up?"}]) as stream:
                return stream.get_final_message()
        message = await trio.to_thread.run_sync(call)
    # the mention stays text; the call on its own line at the end is the one call made
    assert [(b.type, getattr(b, "text", None) or getattr(b, "input", None)) for b in message.content] == [
        ("text", MENTIONED[0] + "\nOr list first:\n"), ("tool_use", {"command": "ls"})]
    assert message.stop_reason == "tool_use"


# -- held text when the answer ends: never lost, a call only when the call is all there --------

AT_THE_END = [
    ('hermes', '<tool_call>', TEXT),
    ('hermes', '<tool_call>{"na', TEXT),
    ('hermes', '<tool_call>{"name": "Ba', TEXT),
    ('hermes', '<tool_call>{"type": "x', TEXT),
    ('hermes', '<tool_call>{"function": {', TEXT),
    ('hermes', '<tool_call>{"name":', TEXT),
    ('hermes', '<tool_call>{"name"', TEXT),
    ('hermes', '<tool_call>{ ', TEXT),
    ('hermes', '<tool_call>[ ', TEXT),
    ('qwen3_coder', '<tool_call>\n<func', TEXT),
    ('qwen3_coder', '<tool_call><function=Ba', TEXT),
    ('qwen3_coder', '<function=Bash>', [('call', 'Bash', {})]),
    ('glm', '<tool_call>Ba', TEXT),
    ('glm', '<tool_call>Bash\n<arg_', [('call', 'Bash', {})]),
    ('glm', '<tool_call>Bash\n</tool_', [('call', 'Bash', {})]),
    ('glm', '<tool_call>Bash\n<arg_key>command</arg_key>', [('call', 'Bash', {})]),
    ('llama3', '<|python_tag|>{"name": "Bash", "parameters": {"command": "ls"}}', [('call', 'Bash', {'command': 'ls'})]),
    ('mistral', '[TOOL_CALLS]', TEXT),
    ('mistral', '[TOOL_CALLS]Ba', TEXT),
    ('mistral', '[TOOL_CALLS]Bash[AR', TEXT),
    ('mistral', '[TOOL_CALLS]Bash[CA', TEXT),
    ('mistral', '[TOOL_CALLS]Bash[CALL_ID]abcdef', TEXT),
    ('mistral', '[TOOL_CALLS]Bash[ARGS]', TEXT),
    ('deepseek', '<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>Bash<｜tool▁sep｜>{"command": "ls"}<｜tool▁call▁end｜>', [('call', 'Bash', {'command': 'ls'})]),
    ('harmony', '<|start|>assistant<|chan', TEXT),
    ('harmony', '<|channel|>commentary to=functions.Bash', TEXT),
    ('harmony', '<|channel|>commentary to=functions.Bash<|message|>', TEXT),
    ('granite', '<|tool_call|>', TEXT),
    ('functools', 'functools', TEXT),
    ('tool_calls_tag', '<tool_calls>', TEXT),
    ('kimi', '<|tool_calls_section_begin|><|tool_call_begin|>functions.Bash:0<|tool_call_argument_begin|>{"command": "ls"}<|tool_call_end|>', [('call', 'Bash', {'command': 'ls'})]),
    ('command_r', 'Action:', TEXT),
    ('command_r', 'Action: ``', TEXT),
    ('command_r', 'Action: ```js', TEXT),
    ('command_r', 'Action: ```json\n[{"tool_name": "Bash", "parameters": {"command": "ls"}}]', [('call', 'Bash', {'command': 'ls'})]),
    ('command_r', 'Action: ```json\n[{"tool_name": "Bash", "parameters": {"command": "ls"}}]\n``', [('call', 'Bash', {'command': 'ls'}), ('text', '\n``')]),
    ('command_r', '<|START_ACTION|>', TEXT),
    ('functiongemma', '<start_function_call>ca', TEXT),
    ('functiongemma', '<start_function_call>call:Ba', TEXT),
    ('pythonic', '[Ba', TEXT),
    ('pythonic', '[Bash', TEXT),
    ('pythonic', '[Bash(command="ls"', TEXT),
    ('pythonic', '<|python_start|>[Bash(command="ls")]', [('call', 'Bash', {'command': 'ls'})]),
    ('lfm2', '<|tool_call_start|>', TEXT),
    ('lfm2', '<|tool_call_start|>[Ba', TEXT),
    ('lfm2', '<|tool_call_start|>Bash(command="ls")', [('call', 'Bash', {'command': 'ls'})]),
    ('minimax_m2', '<minimax:tool_call><invoke name="Bash">', [('call', 'Bash', {})]),
    ('json', '{"name": "Bash", "arguments": {"command": "ls"}}', [('call', 'Bash', {'command': 'ls'})]),
    ('json', '{"name": "Bash", "arguments": {"command": "ls"}}  ', [('call', 'Bash', {'command': 'ls'}), ('text', '  ')]),
    ('json', '[', TEXT),
    ('json', '[ ', TEXT),
    ('fenced', '```', TEXT),
    ('fenced', '```js', TEXT),
    ('fenced', '```tool_code\nBa', TEXT),
    ('fenced', '```tool_code\n', TEXT),
    ('fenced', '```json\n{"name": "Ba', TEXT),
    ('fenced', '```json\n', TEXT),
    ('qwen3_coder', '<function=Ba', TEXT),
    ('mistral', '[TOOL_CALLS]Bash[CALL_ID]x', TEXT),
    ('json', '{', TEXT),
    ('functools', 'functools ', TEXT),
    ('granite', '<|tool_call|> ', TEXT),
]


@pytest.mark.parametrize(("name", "text", "want"), AT_THE_END, ids=[f"{r[0]}-{i}" for i, r in enumerate(AT_THE_END)])
def test_what_was_held_when_the_answer_ends_reaches_the_client(name, text, want):
    """The start of a call that Ollama's last chunk cuts off: the client gets the text (or the
    call, when what arrived is a whole call in a family that needs no closing marker)."""
    for step in (None, 1):
        assert run(text, (BY_NAME[name],), step) == _expected(want, text, name), step


def test_a_tool_whose_name_has_capitals_anywhere_is_found_in_each_name_first_family():
    tools = ["Xcode", "Bash"]
    for name, printed in [
        ("functiongemma", "<start_function_call>call:Xcode{scheme:<escape>App<escape>}<end_function_call>"),
        ("glm", "<tool_call>Xcode\n<arg_key>scheme</arg_key>\n<arg_value>App</arg_value>\n</tool_call>"),
        ("mistral", '[TOOL_CALLS]Xcode[ARGS]{"scheme": "App"}'),
        ("qwen3_coder", "<tool_call>\n<function=Xcode>\n<parameter=scheme>\nApp\n</parameter>\n</function>\n</tool_call>"),
        ("lfm2", '<|tool_call_start|>[Xcode(scheme="App")]<|tool_call_end|>'),
        ("fenced", '```tool_code\nXcode(scheme="App")\n```'),
    ]:
        for step in (None, 1):
            assert run(printed, (BY_NAME[name],), step, tools=tools) == [("call", "Xcode", {"scheme": "App"}, name)], (name, step)


@pytest.mark.parametrize("printed", [
    "<start_function_call>call:Bash<end_function_call>",
    "<start_function_call>call:Bash<escape>ls<escape><end_function_call>",
])
def test_a_function_gemma_call_without_an_argument_object_gets_empty_arguments(printed):
    for step in (None, 1):
        assert run(printed, (BY_NAME["functiongemma"],), step) == [("call", "Bash", {}, "functiongemma")], step


def test_a_fence_whose_answer_ends_before_its_closing_backticks_are_all_there_stays_text():
    """Two of the three closing backticks, then the answer ends: not a closed block of calls."""
    text = '```json\n{"name": "Bash", "arguments": {"command": "ls"}}\n``'
    for dialects in ((BY_NAME["fenced"],), None):
        for step in (None, 1):
            assert run(text, dialects, step) == [("text", text)], (dialects, step)


def test_a_pythonic_call_may_name_its_tool_with_a_namespace():
    """``functions.Bash(…)`` is Bash; a tool whose own name has dots is matched whole."""
    text = '<|python_start|>[mcp.fs.read(path="a"), functions.Bash(command="ls")]<|python_end|>'
    for step in (None, 1):
        assert run(text, (BY_NAME["pythonic"],), step, tools=["Bash", "mcp.fs.read"]) == [
            ("call", "mcp.fs.read", {"path": "a"}, "pythonic"), ("call", "Bash", {"command": "ls"}, "pythonic")], step
    other = '<|python_start|>[fs.mcp.read(path="a")]<|python_end|>'  # the parts in another order: no such tool
    assert run(other, (BY_NAME["pythonic"],), tools=["Bash", "mcp.fs.read"]) == [("text", other)]


def test_a_fence_whose_body_starts_with_inline_code_is_released_before_it_closes():
    """The body's first backtick opens inline code: whatever follows is an example, so the
    client gets the fence at once instead of after the closing fence."""
    text = '```json\n`{"name": "Bash", "arguments": {}}\n'
    assert released(text, (BY_NAME["fenced"],)) == text
