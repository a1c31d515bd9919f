"""Tool calls as small models really produce them, each healed to what Claude Code needs."""

from __future__ import annotations

import json

import pytest

from proxy.protocol.tool_repair import repair_tool_call
from proxy.stream.message import MessageBuilder
from proxy.stream.translator import ResponseTranslator

WRITE = {
    "type": "object",
    "properties": {"file_path": {"type": "string"}, "content": {"type": "string"}},
    "required": ["file_path", "content"],
}
READ = {
    "type": "object",
    "properties": {"file_path": {"type": "string"}, "offset": {"type": "integer"}, "limit": {"type": "number"}},
}
BASH = {
    "type": "object",
    "properties": {
        "command": {"type": "string"}, "timeout": {"type": "number"},
        "run_in_background": {"type": "boolean"}, "description": {"type": "string"},
    },
}
TODO = {"type": "object", "properties": {"todos": {"type": "array", "items": {"type": "object"}},
                                         "meta": {"type": "object"}}}
TOOLS = {"Write": WRITE, "Read": READ, "Bash": BASH, "TodoWrite": TODO}

GOOD = {"file_path": "/tmp/a.py", "content": "print('hi')\n"}

CORPUS = [
    # (id, name, arguments as the model sent them, expected name, expected input)
    ("object", "Write", GOOD, "Write", GOOD),
    ("json-string", "Write", json.dumps(GOOD), "Write", GOOD),
    ("double-encoded", "Write", json.dumps(json.dumps(GOOD)), "Write", GOOD),
    ("escaped-quotes", "Write", json.dumps(GOOD).replace('"', '\\"'), "Write", GOOD),
    ("fenced", "Write", "```json\n" + json.dumps(GOOD) + "\n```", "Write", GOOD),
    ("trailing-comma", "Write", '{"file_path": "/tmp/a.py", "content": "print(\'hi\')\\n",}', "Write", GOOD),
    ("single-quotes", "Read", "{'file_path': '/tmp/a.py'}", "Read", {"file_path": "/tmp/a.py"}),
    ("unclosed", "Read", '{"file_path": "/tmp/a.py"', "Read", {"file_path": "/tmp/a.py"}),
    ("name-case", "write", GOOD, "Write", GOOD),
    ("near-key-suffix", "Write", {"path": "/tmp/a.py", "content": "x"}, "Write", {"file_path": "/tmp/a.py", "content": "x"}),
    ("near-key-camel", "Write", {"filePath": "/tmp/a.py", "content": "x"}, "Write", {"file_path": "/tmp/a.py", "content": "x"}),
    ("near-key-prefix", "Bash", {"cmd": "ls"}, "Bash", {"command": "ls"}),
    ("string-to-int", "Read", {"file_path": "/a", "offset": "10"}, "Read", {"file_path": "/a", "offset": 10}),
    ("string-to-number", "Read", {"file_path": "/a", "limit": "2.5"}, "Read", {"file_path": "/a", "limit": 2.5}),
    ("string-to-bool", "Bash", {"command": "ls", "run_in_background": "false"}, "Bash",
     {"command": "ls", "run_in_background": False}),
    ("number-to-string", "Bash", {"command": 42}, "Bash", {"command": "42"}),
    ("array-to-string", "Write", {"file_path": "/a", "content": ["line 1", "line 2"]}, "Write",
     {"file_path": "/a", "content": "line 1\nline 2"}),
    ("json-string-to-array", "TodoWrite", {"todos": '[{"content": "x"}]'}, "TodoWrite", {"todos": [{"content": "x"}]}),
    ("json-string-to-object", "TodoWrite", {"todos": [], "meta": '{"a": 1}'}, "TodoWrite", {"todos": [], "meta": {"a": 1}}),
    ("not-an-object", "Bash", "just some words", "Bash", {}),
    ("none", "Bash", None, "Bash", {}),
]


@pytest.mark.parametrize("case", CORPUS, ids=[c[0] for c in CORPUS])
def test_each_shape_is_healed(case):
    _, name, arguments, want_name, want_input = case
    repaired = repair_tool_call(name, arguments, TOOLS)
    assert repaired.name == want_name
    assert repaired.arguments == want_input
    assert bool(repaired.changes) is (case[0] not in ("object", "none"))  # every repair is said, none invented


def test_an_ambiguous_key_is_left_alone():
    schema = {"type": "object", "properties": {"old_string": {"type": "string"}, "new_string": {"type": "string"}}}
    repaired = repair_tool_call("Edit", {"string": "x"}, {"Edit": schema})
    assert repaired.arguments == {"string": "x"}


def test_a_key_already_given_is_not_overwritten():
    repaired = repair_tool_call("Write", {"file_path": "/a", "path": "/b", "content": "c"}, TOOLS)
    assert repaired.arguments == {"file_path": "/a", "path": "/b", "content": "c"}


def test_unknown_tools_keep_their_arguments():
    repaired = repair_tool_call("Mystery", '{"a": "1"}', TOOLS)
    assert repaired.name == "Mystery" and repaired.arguments == {"a": "1"}


def test_the_stream_carries_the_healed_call():
    translator = ResponseTranslator(client_model="claude-x", input_tokens=1, tools=TOOLS)
    builder = MessageBuilder()
    builder.add(translator.start())
    line = {"message": {"role": "assistant", "content": "", "tool_calls": [
        {"function": {"name": "write", "arguments": json.dumps({"path": "/a", "content": ["1", "2"]})}}]},
        "done": True, "done_reason": "stop"}
    builder.add(translator.feed(json.dumps(line).encode() + b"\n"))
    block = builder.message()["content"][0]
    assert block["name"] == "Write" and block["input"] == {"file_path": "/a", "content": "1\n2"}
    assert translator.repairs == 1
