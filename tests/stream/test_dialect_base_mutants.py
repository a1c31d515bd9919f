"""The dialects' shared helpers (proxy/stream/dialects/base.py), through what the client gets:
a printed call object with every key a call may carry is run; text whose start can no longer
be a call's header is released at once; a long call streamed in pieces ends where its JSON
does. No server: the streaming filter and the stream translator, as a model's text arrives."""

from __future__ import annotations

import json

from proxy.stream.dialects import BY_NAME
from proxy.stream.dialects.base import json_end
from proxy.stream.text_calls import TextCall, TextCallFilter, TextPiece
from tests.stream.test_dialect_mutants import client_blocks

TOOL_NAMES = ["Bash", "Write", "Edit"]


def released(text: str, dialect: str, tools: list[str] = TOOL_NAMES) -> str:
    """The text the client has seen once ``text`` arrived (the answer not over yet)."""
    filt = TextCallFilter(tools, (BY_NAME[dialect],))
    return "".join(item.text for item in filt.feed(text) if isinstance(item, TextPiece))


# -- json_calls: which keys a printed call object may have -----------------------------------------


def test_a_call_object_carrying_every_key_a_call_may_have_is_run():
    """A call object may name its tool under every spelling, carry its arguments under every
    spelling and its type, id and index: all of them at once is still a call (the arguments
    under the first spelling), not data that happens to have a "name"."""
    call = {"type": "function", "id": "call_1", "tool_call_id": "call_1", "index": 0,
            "name": "Bash", "tool_name": "Bash", "tool": "Bash", "function": "Bash",
            "arguments": {"command": "ls"}, "parameters": {"command": "pwd"}, "args": {}, "input": {}}
    printed = "<tool_call>" + json.dumps(call) + "</tool_call>"
    for step in (len(printed), 1):
        pieces = [printed[i : i + step] for i in range(0, len(printed), step)]
        assert client_blocks(pieces, (BY_NAME["hermes"],)) == [("call", "Bash", {"command": "ls"})], step
        assert client_blocks(pieces, None) == [("call", "Bash", {"command": "ls"})], step
    # one key more than a call has: data with a "name", given back as text
    data = dict(call, extra=1)
    text = json.dumps(data)
    assert client_blocks([text], (BY_NAME["json"],)) == [("text", text)]


# -- json_header_possible: released the moment it cannot be a call's header ------------------------


def test_a_name_key_holding_an_object_is_released_at_once():
    """Only the "function" key may hold an object (OpenAI's shape); "name": {…} is data."""
    text = '{"name": {"first": "Ada", "last": "Lovelace"'
    assert released(text, "json") == text
    assert released('<tool_call>' + text, "hermes") == '<tool_call>' + text


def test_a_function_key_naming_no_offered_tool_is_released_at_once():
    """"function": "cat" names a tool that was not offered: text, without waiting for the end."""
    text = '{"function": "cat", "arguments": {"path": "/etc/hosts"'
    assert released(text, "json") == text
    assert released('{"function": 3, "x": 1', "json") == '{"function": 3, "x": 1'


def test_the_possible_headers_are_still_held():
    """The counterpart of the two tests above: what may still become a call stays held."""
    assert released('{"type": "function", "function": {"name": "Ba', "json") == ""
    assert released('{"function": {"name": "Ba', "json") == ""
    assert released('{"function": "Bash", "arguments": {"command": "l', "json") == ""


def test_an_empty_tool_name_is_released_at_once_whatever_the_offered_names_start_with():
    """``"name": ""`` names no tool, even when the client offered one whose name begins
    with a quote (the proxy accepts any string as a tool's name)."""
    tools = ['"q', "Bash"]
    text = '{"name": ""q", "arguments"'
    assert released(text, "json", tools) == text
    assert released('{"name": "\\"q', "json", tools) == '{"name": "\\"q'  # escaped: not the name "q


# -- json_end: a long call streamed in pieces ends where its JSON does --------------------------------


def test_a_long_call_grown_piece_by_piece_ends_exactly_where_its_json_does():
    """Every way of growing a long open call (held text is scanned again from where the last
    scan stopped) gives the end a fresh JSON decoder finds, at every cut of the text."""
    content = 'q = {"a": "]}"} # \\" [ { \\\\ \n' * 160
    value = json.dumps({"name": "Write", "arguments": {"file_path": "/tmp/a.py", "content": content}})
    text = "[TOOL_CALLS]" + value + " tail"
    start = len("[TOOL_CALLS]")
    want = start + json.JSONDecoder().raw_decode(value)[1]
    assert want - start > 4096
    for step in (1, 97, 4096):
        for cut in range(start + 1, len(text) + 1, step):
            got = json_end(text[:cut], start)
            assert got == (want if cut >= want else None), (step, cut)
