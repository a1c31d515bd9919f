"""History rewrites as Ollama receives them: the cases mutation testing found unguarded
(docs/TESTING.md). Every test goes through translate_request and asserts the messages
Ollama gets (or the operator's log line), not how proxy/protocol/history.py builds them.
"""

from __future__ import annotations

import logging
from typing import Any

from proxy.protocol.history import INTERRUPTED
from proxy.protocol.translate import translate_request, validate_request
from proxy.stream.dialects.families import Llama3, Qwen3Coder

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
BASH = {"name": "Bash", "description": "Run a command",
        "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}}


def sent(messages: list[dict[str, Any]], **extra: Any) -> list[dict[str, Any]]:
    """The ``messages`` Ollama receives for ``messages`` (options of translate_request in ``extra``)."""
    options = {k: extra.pop(k) for k in ("native_tools", "sequential_tools", "call_dialect") if k in extra}
    body = {"model": "claude-sonnet-4-5", "max_tokens": 100, "messages": messages, **extra}
    return translate_request(validate_request(body), ollama_model="m", **options).ollama["messages"]


def use(tool_id: str, name: str = "Bash", **arguments: Any) -> dict[str, Any]:
    return {"type": "tool_use", "id": tool_id, "name": name, "input": arguments}


def result(tool_id: str, content: str) -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": tool_id, "content": content}


def interrupted(tool_id: str, name: str = "Bash") -> dict[str, Any]:
    return {"role": "tool", "content": f"Error: {INTERRUPTED}", "tool_name": name, "tool_call_id": tool_id}


def call(tool_id: str, name: str = "Bash", **arguments: Any) -> dict[str, Any]:
    return {"id": tool_id, "function": {"name": name, "arguments": arguments}}


# --- pair_tool_results ------------------------------------------------------------------------


def test_an_assistant_turn_right_after_calls_gets_their_interrupted_results_first():
    out = sent([
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [use("a", command="ls"), use("b", command="pwd")]},
        {"role": "assistant", "content": "Stopped."},
        {"role": "user", "content": "ok"},
    ], sequential_tools=False)
    assert out == [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": "", "tool_calls": [call("a", command="ls"), call("b", command="pwd")]},
        interrupted("a"), interrupted("b"),
        {"role": "assistant", "content": "Stopped."},
        {"role": "user", "content": "ok"},
    ]


def test_a_result_answering_a_call_of_an_older_turn_or_twice_is_dropped_and_logged(caplog):
    caplog.set_level(logging.INFO, logger="proxy")
    out = sent([
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [use("a", command="ls")]},
        {"role": "user", "content": [result("a", "A")]},
        {"role": "assistant", "content": [use("b", command="pwd")]},
        {"role": "user", "content": [result("a", "late A"), result("b", "B"), result("b", "B again"),
                                     {"type": "text", "text": "next"}]},
    ])
    assert out[-3:] == [
        {"role": "assistant", "content": "", "tool_calls": [call("b", command="pwd")]},
        {"role": "tool", "content": "B", "tool_name": "Bash", "tool_call_id": "b"},
        {"role": "user", "content": "next"},
    ]
    dropped = [r.getMessage() for r in caplog.records if "dropped a tool_result" in r.getMessage()]
    assert dropped == ["dropped a tool_result for a (messages.4): it answers no call",
                       "dropped a tool_result for b (messages.4): it answers no call"]


def test_a_turn_whose_results_are_all_there_reaches_ollama_unchanged(caplog):
    caplog.set_level(logging.INFO, logger="proxy")
    out = sent([
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [use("a", command="ls")]},
        {"role": "user", "content": [result("a", "A"), {"type": "text", "text": "and?"}]},
    ])
    assert out[2:] == [{"role": "tool", "content": "A", "tool_name": "Bash", "tool_call_id": "a"},
                       {"role": "user", "content": "and?"}]
    assert not [r for r in caplog.records if r.name == "proxy.history"]


def test_calls_at_the_end_of_the_conversation_get_no_invented_results():
    out = sent([
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [{"type": "text", "text": "Running"}, use("a", command="ls")]},
    ])
    assert out[-1] == {"role": "assistant", "content": "Running", "tool_calls": [call("a", command="ls")]}
    assert all(m["role"] != "tool" for m in out)


def test_a_system_message_between_calls_and_the_next_turn_waits_for_their_results():
    out = sent([
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [use("a", command="ls")]},
        {"role": "system", "content": "Mind the budget."},
        {"role": "user", "content": [result("a", "A")]},
    ])
    assert out[2:] == [
        {"role": "tool", "content": "A", "tool_name": "Bash", "tool_call_id": "a"},
        {"role": "user", "content": "<system-reminder>\nMind the budget.\n</system-reminder>"},
    ]


# --- sequentialize ----------------------------------------------------------------------------


THREE_CALLS = [
    {"role": "user", "content": "go"},
    {"role": "assistant", "content": [{"type": "thinking", "thinking": "three", "signature": "s"},
                                      {"type": "text", "text": "All three."},
                                      use("a", command="1"), use("b", command="2"), use("c", command="3")]},
    {"role": "user", "content": [result("c", "C"), {"type": "text", "text": "note"}, result("a", "A"),
                                 result("b", "B")]},
]


def test_three_parallel_calls_become_three_rounds():
    assert sent(THREE_CALLS)[1:] == [
        {"role": "assistant", "content": "All three.", "thinking": "three", "tool_calls": [call("a", command="1")]},
        {"role": "tool", "content": "A", "tool_name": "Bash", "tool_call_id": "a"},
        {"role": "assistant", "content": "", "tool_calls": [call("b", command="2")]},
        {"role": "tool", "content": "B", "tool_name": "Bash", "tool_call_id": "b"},
        {"role": "assistant", "content": "", "tool_calls": [call("c", command="3")]},
        {"role": "tool", "content": "C", "tool_name": "Bash", "tool_call_id": "c"},
        {"role": "user", "content": "note"},
    ]


def test_without_sequential_tools_the_calls_stay_one_turn():
    assert sent(THREE_CALLS, sequential_tools=False)[1:] == [
        {"role": "assistant", "content": "All three.", "thinking": "three",
         "tool_calls": [call("a", command="1"), call("b", command="2"), call("c", command="3")]},
        {"role": "tool", "content": "C", "tool_name": "Bash", "tool_call_id": "c"},
        {"role": "tool", "content": "A", "tool_name": "Bash", "tool_call_id": "a"},
        {"role": "tool", "content": "B", "tool_name": "Bash", "tool_call_id": "b"},
        {"role": "user", "content": "note"},
    ]


def test_parallel_calls_without_their_results_yet_stay_one_turn():
    messages = THREE_CALLS[:2]
    out = sent(messages)
    assert out[1:] == [{"role": "assistant", "content": "All three.", "thinking": "three",
                        "tool_calls": [call("a", command="1"), call("b", command="2"), call("c", command="3")]}]


def test_a_single_call_and_its_result_are_one_round():
    out = sent([THREE_CALLS[0],
                {"role": "assistant", "content": [{"type": "text", "text": "One."}, use("a", command="1")]},
                {"role": "user", "content": [result("a", "A"), {"type": "text", "text": "note"}]}])
    assert out[1:] == [{"role": "assistant", "content": "One.", "tool_calls": [call("a", command="1")]},
                       {"role": "tool", "content": "A", "tool_name": "Bash", "tool_call_id": "a"},
                       {"role": "user", "content": "note"}]


# --- tool_choice ------------------------------------------------------------------------------


def test_tool_choice_any_and_named_become_an_instruction_at_the_end_of_the_system_prompt():
    user = [{"role": "user", "content": "x"}]
    assert sent(user, tools=[BASH], tool_choice={"type": "any"})[0] == {
        "role": "system", "content": "In this reply you must call one of the available tools."}
    assert sent(user, tools=[BASH], tool_choice={"type": "tool", "name": "Bash"}, system="Be brief.")[0] == {
        "role": "system", "content": "Be brief.\n\nIn this reply you must call the tool Bash."}


def test_tool_choice_auto_a_nameless_tool_choice_or_no_tools_add_nothing():
    user = [{"role": "user", "content": "x"}]
    for choice in ({"type": "auto"}, {"type": "tool"}, {"type": "tool", "name": 3}, "any", {"type": "none"}):
        assert sent(user, tools=[BASH], tool_choice=choice) == user, choice
    assert sent(user, tool_choice={"type": "any"}) == user
    assert sent(user, tools=[], tool_choice={"type": "any"}) == user


# --- emulated tools ---------------------------------------------------------------------------


def emulated(*after: dict[str, Any], dialect: Any = None, tools: list[dict[str, Any]] | None = None,
             **extra: Any) -> list[dict[str, Any]]:
    messages = [{"role": "user", "content": "list"},
                {"role": "assistant", "content": [{"type": "text", "text": "Looking."}, use("t1", command="ls")]},
                {"role": "user", "content": [result("t1", "a.txt")]}, *after]
    return sent(messages, tools=tools or [BASH], native_tools=False, call_dialect=dialect, **extra)


def test_a_model_with_its_own_call_format_is_shown_that_format_with_the_first_argument():
    out = emulated(dialect=Qwen3Coder())
    header = out[0]["content"].split("Available tools")[0]
    assert header == (
        "# Tools\n\nYou can call tools. To call one, write the call in your own tool-call format, on its own, like\n"
        'this call of the tool Bash with the arguments {"command": "…"}:\n'
        "<tool_call>\n<function=Bash>\n<parameter=command>\n…\n</parameter>\n</function>\n</tool_call>\n"
        "After your calls, stop writing: the results come back as <tool_response> messages.\n\n"
    )
    # the past call is printed in that format too, after the turn's text
    assert out[2] == {"role": "assistant", "content": "Looking.\n<tool_call>\n<function=Bash>\n<parameter=command>\n"
                                                      "ls\n</parameter>\n</function>\n</tool_call>"}
    assert out[3] == {"role": "user", "content": '<tool_response name="Bash">\na.txt\n</tool_response>'}


def test_a_tool_without_properties_is_shown_with_a_placeholder_argument():
    tool = {"name": "Now", "input_schema": {"type": "object"}}
    out = emulated(dialect=Llama3(), tools=[tool, BASH])
    assert 'this call of the tool Now with the arguments {"argument": "…"}:\n' \
           '<|python_tag|>{"name": "Now", "parameters": {"argument": "…"}}\n' in out[0]["content"]
    assert out[2]["content"] == 'Looking.\n<|python_tag|>{"name": "Bash", "parameters": {"command": "ls"}}'


def test_the_hermes_dialect_gets_the_plain_tool_call_header():
    from proxy.stream.dialects.families import Hermes
    with_hermes, without = emulated(dialect=Hermes()), emulated()
    assert with_hermes == without
    assert without[0]["content"].startswith(
        "# Tools\n\nYou can call tools. To call one, write exactly one line per call, with nothing else on it:\n"
        '<tool_call>{"name": "<tool name>", "arguments": {<the arguments as JSON>}}</tool_call>\n')
    assert without[2]["content"] == 'Looking.\n<tool_call>{"name": "Bash", "arguments": {"command": "ls"}}</tool_call>'


def test_emulated_results_and_the_next_words_are_one_user_message_with_all_images():
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    messages = [{"role": "user", "content": "shoot"},
                {"role": "assistant", "content": [use("t1", command="a"), use("t2", command="b")]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "one"}, image]},
                    {"type": "tool_result", "tool_use_id": "t2", "content": "two"},
                    {"type": "text", "text": "and this"}, image]},
                {"role": "assistant", "content": "Seen."}]
    out = sent(messages, tools=[BASH], native_tools=False, sequential_tools=False)
    assert out.pop() == {"role": "assistant", "content": "Seen."}
    assert out[-1] == {
        "role": "user",
        "content": '<tool_response name="Bash">\none\n</tool_response>\n\n'
                   '<tool_response name="Bash">\ntwo\n</tool_response>\n\nand this',
        "images": [PNG, PNG],
    }
    assert out[-2]["role"] == "assistant"


def test_emulated_tools_append_to_the_system_prompt_after_a_blank_line_and_keep_the_other_turns():
    out = emulated({"role": "assistant", "content": "Done."}, {"role": "user", "content": "thanks"},
                   system="Be brief.")
    assert out[0]["content"].startswith("Be brief.\n\n# Tools\n")
    assert out[0]["content"].endswith(
        '\n{"name":"Bash","description":"Run a command","parameters":{"type":"object","properties":'
        '{"command":{"type":"string"}}}}')
    assert out[1] == {"role": "user", "content": "list"}
    assert out[-2:] == [{"role": "assistant", "content": "Done."}, {"role": "user", "content": "thanks"}]
    assert len(out) == 6


def test_an_emulated_result_and_the_users_words_are_joined_and_the_reply_after_them_kept():
    out = emulated({"role": "user", "content": "now sort"}, {"role": "assistant", "content": "Sorted."},
                   {"role": "user", "content": "ok"})
    assert out[1:] == [
        {"role": "user", "content": "list"},
        {"role": "assistant", "content": 'Looking.\n<tool_call>{"name": "Bash", "arguments": {"command": "ls"}}</tool_call>'},
        {"role": "user", "content": '<tool_response name="Bash">\na.txt\n</tool_response>\n\nnow sort'},
        {"role": "assistant", "content": "Sorted."},
        {"role": "user", "content": "ok"},
    ]


def test_a_stray_result_before_any_call_or_in_a_second_user_turn_is_dropped():
    out = sent([
        {"role": "user", "content": [result("x", "stray"), {"type": "text", "text": "hi"}]},
        {"role": "assistant", "content": [use("a", command="ls")]},
        {"role": "user", "content": [result("a", "A")]},
        {"role": "user", "content": [result("a", "A again"), {"type": "text", "text": "more"}]},
    ])
    assert out == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "", "tool_calls": [call("a", command="ls")]},
        {"role": "tool", "content": "A", "tool_name": "Bash", "tool_call_id": "a"},
        {"role": "user", "content": "more"},
    ]
