"""Tool-call repair at the edges mutation testing found unguarded (docs/TESTING.md).

What the client's tool receives for union and nullable schema types, for a value of the
wrong kind where an array, string or object is expected, and what the repair log says.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from proxy.protocol.tool_repair import parse_arguments, repair_tool_call
from proxy.stream.message import MessageBuilder
from proxy.stream.translator import ResponseTranslator

SCHEMA = {
    "type": "object",
    "properties": {
        "limit": {"type": ["integer", "null"]},
        "offset": {"type": ["null", "integer"]},
        "ratio": {"type": "number"},
        "count": {"type": "integer"},
        "flag": {"type": "boolean"},
        "paths": {"type": "array"},
        "text": {"type": "string"},
        "meta": {"type": "object"},
        "anything": {},
        "weird": {"type": ["x-custom"]},
        "both": {"type": ["string", "integer"]},
    },
}
TOOLS = {"Tool": SCHEMA}


def healed(**arguments: Any) -> tuple[dict[str, Any], tuple[str, ...]]:
    repaired = repair_tool_call("Tool", arguments, TOOLS)
    assert repaired.name == "Tool"
    return repaired.arguments, repaired.changes


@pytest.mark.parametrize(
    "given, expected",
    [
        # union and nullable types: the first non-null type is the one to aim for
        ({"limit": "100"}, {"limit": 100}),
        ({"offset": "7"}, {"offset": 7}),
        ({"limit": None, "offset": None}, {"limit": None, "offset": None}),
        ({"both": 3, "weird": "x", "anything": [1]}, {"both": 3, "weird": "x", "anything": [1]}),
        # numbers
        ({"ratio": "2"}, {"ratio": 2}),
        ({"ratio": "-2.50"}, {"ratio": -2.5}),
        ({"ratio": "2."}, {"ratio": 2.0}),
        ({"ratio": ".5"}, {"ratio": 0.5}),
        ({"ratio": "1e3"}, {"ratio": 1000}),
        ({"ratio": "1.5e1"}, {"ratio": 15.0}),
        ({"ratio": "many"}, {"ratio": "many"}),
        ({"count": " +42 "}, {"count": 42}),
        ({"count": "4.2"}, {"count": "4.2"}),
        ({"count": 3.0}, {"count": 3}),
        ({"count": 3.5}, {"count": 3.5}),
        ({"count": True}, {"count": True}),
        # booleans
        ({"flag": "YES"}, {"flag": True}),
        ({"flag": "1"}, {"flag": True}),
        ({"flag": "no"}, {"flag": False}),
        ({"flag": "0"}, {"flag": False}),
        ({"flag": "maybe"}, {"flag": "maybe"}),
        # a number, object or string where an array is expected
        ({"paths": 5}, {"paths": [5]}),
        ({"paths": {"a": 1}}, {"paths": [{"a": 1}]}),
        ({"paths": '["a", "b"]'}, {"paths": ["a", "b"]}),
        ({"paths": "a.py"}, {"paths": ["a.py"]}),
        ({"paths": '{"a": 1}'}, {"paths": ['{"a": 1}']}),
        # a number, boolean, array or object where a string is expected
        ({"text": 5}, {"text": "5"}),
        ({"text": 2.5}, {"text": "2.5"}),
        ({"text": True}, {"text": "true"}),
        ({"text": False}, {"text": "false"}),
        ({"text": ["a", "b"]}, {"text": "a\nb"}),
        ({"text": ["a", 1]}, {"text": '["a", 1]'}),
        ({"text": {"k": "é"}}, {"text": '{"k": "é"}'}),
        # an object given as JSON text; text that is no object stays as it came
        ({"meta": '{"a": [1]}'}, {"meta": {"a": [1]}}),
        ({"meta": "[1]"}, {"meta": "[1]"}),
        ({"meta": "plain"}, {"meta": "plain"}),
        ({"meta": 5}, {"meta": 5}),
    ],
)
def test_values_are_coerced_to_what_the_schema_says(given, expected):
    arguments, changes = healed(**given)
    assert arguments == expected
    assert [type(v) for v in arguments.values()] == [type(v) for v in expected.values()]
    assert bool(changes) == (given != expected or any(type(given[k]) is not type(expected[k]) for k in given))


def test_the_repair_log_says_what_changed():
    _, changes = healed(limit="100", text=["a"], paths="x")
    assert changes == ("coerced 'limit' from str to int", "coerced 'text' from list to str",
                       "coerced 'paths' from str to list")


@pytest.mark.parametrize(
    "arguments, value, changes",
    [
        ('{"a": 1}', {"a": 1}, ["decoded arguments sent as a JSON string"]),
        ('{\\"a\\": 1}', {"a": 1}, ["unescaped quotes in the arguments"]),
        ('{"a": 1,}', {"a": 1}, ["removed trailing commas in the arguments"]),
        ('[1, 2,]', [1, 2], ["removed trailing commas in the arguments"]),
        ("{'a': 1}", {"a": 1}, ["repaired near-JSON arguments"]),
        ("[1, 2", [1, 2], ["repaired near-JSON arguments"]),
        ("```\n{\"a\": 1}\n```", {"a": 1}, ["removed a code fence around the arguments",
                                             "decoded arguments sent as a JSON string"]),
        (json.dumps(json.dumps({"a": 1})), {"a": 1}, ["decoded arguments sent as a JSON string"] * 2),
        ("a: 1, b: 2", "a: 1, b: 2", []),  # not JSON-looking: not guessed at
        ("(1, 2)", "(1, 2)", []),
        ("", "", []),
        ({"a": 1}, {"a": 1}, []),
    ],
)
def test_arguments_are_decoded_and_the_log_says_how(arguments, value, changes):
    assert parse_arguments(arguments) == (value, changes)


def test_arguments_that_are_no_object_become_empty_and_are_logged():
    repaired = repair_tool_call("Tool", "a: 1, b: 2", TOOLS)
    assert repaired.arguments == {}
    assert repaired.changes == ("arguments 'a: 1, b: 2' are not an object: sent {}",)
    repaired = repair_tool_call("Tool", "[1, 2]", TOOLS)
    assert repaired.arguments == {}
    assert repaired.changes == ("decoded arguments sent as a JSON string", "arguments '[1, 2]' are not an object: sent {}")
    assert repair_tool_call("Tool", "", TOOLS).changes == ()


def test_a_repaired_call_reaches_the_client_healed_and_is_logged(caplog):
    caplog.set_level(logging.INFO, logger="proxy.stream")
    translator = ResponseTranslator(client_model="m", input_tokens=1, tools=TOOLS, tool_id_factory=lambda: "toolu_1")
    lines = [{"message": {"role": "assistant", "content": "",
                          "tool_calls": [{"function": {"name": "tool", "arguments": {"limit": "5", "txt": 7}}}]},
              "done": False},
             {"message": {"role": "assistant", "content": ""}, "done": True, "done_reason": "stop",
              "prompt_eval_count": 3, "eval_count": 4}]
    builder = MessageBuilder()
    builder.add(translator.start() + translator.feed("".join(json.dumps(x) + "\n" for x in lines).encode()))
    message = builder.message()
    assert message["content"] == [{"type": "tool_use", "id": "toolu_1", "name": "Tool",
                                   "input": {"limit": 5, "text": "7"}}]
    assert message["stop_reason"] == "tool_use"
    assert translator.repairs == 1
    expected = ("renamed tool 'tool' to 'Tool'", "renamed parameter 'txt' to 'text'",
                "coerced 'limit' from str to int", "coerced 'text' from int to str")
    assert translator.repair_log == [("Tool", expected, "")]  # "": Ollama's own tool_calls, no printed dialect
    assert [r.getMessage() for r in caplog.records] == ["repaired tool call Tool: " + "; ".join(expected)]


BASH = {"type": "object", "properties": {"command": {"type": "string"}, "timeout": {"type": "number"},
                                         "run_in_background": {"type": "boolean"}, "description": {"type": "string"}}}


@pytest.mark.parametrize(
    "properties, given, expected",
    [
        (BASH["properties"], {"kommand": "ls"}, {"command": "ls"}),  # only a close spelling matches
        (BASH["properties"], {"command_line": "ls"}, {"command": "ls"}),  # a longer name starting with it
        (BASH["properties"], {"tmeuot": 5}, {"tmeuot": 5}),  # not close enough to guess
        (BASH["properties"], {"cwd": "/tmp"}, {"cwd": "/tmp"}),  # same first letter is not enough
        ({"path": {}, "file_path": {}}, {"filePath": "x"}, {"file_path": "x"}),  # exact but for case wins
        ({"file_path": {}, "mode": {}}, {"FILE-PATH": "x"}, {"file_path": "x"}),
        ({"path": {}, "mode": {}}, {"p.a.t.h": "x"}, {"path": "x"}),  # separators never count
        ({"file_path": {}, "old_path": {}, "path_x": {}}, {"path": "x"}, {"path": "x"}),  # ambiguous: left alone
    ],
)
def test_parameter_names_are_matched_only_when_the_match_is_clear(properties, given, expected):
    assert repair_tool_call("T", given, {"T": {"type": "object", "properties": properties}}).arguments == expected


def test_text_before_an_object_is_not_guessed_into_arguments():
    assert parse_arguments('X {"a": 1}') == ('X {"a": 1}', [])
    assert repair_tool_call("Tool", 'X {"a": 1}', TOOLS).arguments == {}


@pytest.mark.parametrize(
    "schema, given, expected",
    [
        # a value that fits any of the listed types is left as it is
        (["integer", "string"], "5", "5"),
        (["string", "number"], 5, 5),
        (["string", "boolean"], True, True),
        (["string", "array"], ["a"], ["a"]),
        (["string", "object"], {"a": 1}, {"a": 1}),
        (["array", "null"], None, None),
        (["integer", "x-custom"], "5", "5"),  # a type the proxy does not know accepts anything
        (["null", "null"], "5", "5"),
        # JSON numbers and booleans as models write them
        ("number", "1E3", 1000),
        ("boolean", "true", True),
        ("boolean", "True", True),
        ("boolean", "false", False),
        ("string", ["é", 1], '["é", 1]'),
    ],
)
def test_union_types_and_spellings(schema, given, expected):
    repaired = repair_tool_call("T", {"v": given}, {"T": {"type": "object", "properties": {"v": {"type": schema}}}})
    assert repaired.arguments == {"v": expected}
    assert type(repaired.arguments["v"]) is type(expected)


def test_arguments_encoded_up_to_four_times_are_healed_and_no_deeper():
    value: Any = {"a": 1}
    for _ in range(4):
        value = json.dumps(value)
    assert repair_tool_call("Other", value, TOOLS).arguments == {"a": 1}
    assert repair_tool_call("Other", json.dumps(value), TOOLS).arguments == {}


def test_the_log_quotes_at_most_80_characters_of_arguments_that_are_no_object():
    changes = repair_tool_call("Tool", "z" * 100, TOOLS).changes
    assert changes == (f"arguments {'z' * 80!r} are not an object: sent {{}}",)


def test_a_schema_whose_properties_are_not_an_object_leaves_the_arguments_alone():
    tools = {"T": {"type": "object", "properties": ["a"]}}
    assert repair_tool_call("T", {"a": "1", "b": 2}, tools).arguments == {"a": "1", "b": 2}
