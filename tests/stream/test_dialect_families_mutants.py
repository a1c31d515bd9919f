"""The model families' recognizers (proxy/stream/dialects/families.py), through what the
client gets: each dialect alone through the streaming filter, whole and a character at a
time. Rows the mutation run asked for: calls printed the way each family really prints them
(DeepSeek V3's fenced arguments, Mistral's parallel calls with call ids, Kimi and MiniMax
blocks followed by prose, Command-R's ``Action:`` on its own line), and near-misses that must
stay text byte for byte."""

from __future__ import annotations

import json
import logging

import pytest

from proxy.stream.dialects import BY_NAME
from proxy.stream.message import MessageBuilder
from proxy.stream.text_calls import TextCallFilter, TextPiece
from proxy.stream.translator import ResponseTranslator
from tests.stream.test_dialect_mutants import run as client_run

TOOL_NAMES = ["Bash", "Write", "Edit"]
TEXT = "text"

DS_CALLS, DS_CALLS_END = "<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>"
DS_CALL, DS_CALL_END, DS_SEP = "<｜tool▁call▁begin｜>", "<｜tool▁call▁end｜>", "<｜tool▁sep｜>"
KIMI_CALL = '<|tool_call_begin|>functions.Bash:0<|tool_call_argument_begin|>{"command": "ls"}<|tool_call_end|>'
LS_CALL = '{"name": "Bash", "arguments": {"command": "ls"}}'
PWD_CALL = '{"name": "Bash", "arguments": {"command": "pwd"}}'


def run(text: str, name: str, step: int | None = None, tools: list[str] = TOOL_NAMES) -> list[tuple]:
    """What the client gets from one dialect alone: text merged, calls as (name, arguments)."""
    out = client_run(text, (BY_NAME[name],), step, tools)
    dialect = "mistral" if name == "mistral_args" else name
    assert all(piece[3] == dialect for piece in out if piece[0] == "call"), out
    return [piece[:3] if piece[0] == "call" else piece for piece in out]


def released(text: str, name: str) -> str:
    """The text the client has seen once ``text`` arrived (the answer not over yet)."""
    filt = TextCallFilter(TOOL_NAMES, (BY_NAME[name],))
    return "".join(item.text for item in filt.feed(text) if isinstance(item, TextPiece))


ROWS = [
    # -- calls as the families print them ---------------------------------------------------
    # DeepSeek V3 / R1: "function", the name, then the arguments in a ```json fence
    ("deepseek", f'{DS_CALLS}{DS_CALL}function{DS_SEP}Bash\n```json\n{{"command": "ls -la"}}\n```{DS_CALL_END}{DS_CALLS_END}',
     [("call", "Bash", {"command": "ls -la"})]),
    # ... or unfenced, pretty-printed over several lines (and a newline before the end marker)
    ("deepseek", f'{DS_CALLS}{DS_CALL}function{DS_SEP}Bash\n{{\n  "command": "ls"\n}}\n{DS_CALL_END}{DS_CALLS_END}',
     [("call", "Bash", {"command": "ls"})]),
    # one call without the calls block around it, then prose: the call ends at its own end marker
    ("deepseek", f'{DS_CALL}Bash{DS_SEP}{{"command": "ls"}}{DS_CALL_END} Done.', [("call", "Bash", {"command": "ls"}), ("text", " Done.")]),
    # Mistral's newer tokenizers: one [TOOL_CALLS]name[CALL_ID]id[ARGS]{…} per parallel call
    ("mistral", '[TOOL_CALLS]Bash[CALL_ID]a1b2c3d4e[ARGS]{"command": "ls"}[TOOL_CALLS]Bash[CALL_ID]f5g6h7i8j[ARGS]{"command": "pwd"}',
     [("call", "Bash", {"command": "ls"}), ("call", "Bash", {"command": "pwd"})]),
    # Kimi K2: a block of calls, or one call alone, then prose
    ("kimi", f"<|tool_calls_section_begin|>{KIMI_CALL}<|tool_calls_section_end|>\nDone.", [("call", "Bash", {"command": "ls"}), ("text", "\nDone.")]),
    ("kimi", f"{KIMI_CALL} Done.", [("call", "Bash", {"command": "ls"}), ("text", " Done.")]),
    # ... a block with a call on each line: the lines between them are layout, not text
    ("kimi", f"<|tool_calls_section_begin|>\n{KIMI_CALL}\n{KIMI_CALL.replace('ls', 'pwd').replace(':0', ':1')}\n<|tool_calls_section_end|>",
     [("call", "Bash", {"command": "ls"}), ("call", "Bash", {"command": "pwd"})]),
    # MiniMax-M2: the block, then prose
    ("minimax_m2", '<minimax:tool_call>\n<invoke name="Bash">\n<parameter name="command">ls</parameter>\n</invoke>\n</minimax:tool_call>\nDone.',
     [("call", "Bash", {"command": "ls"}), ("text", "\nDone.")]),
    # Command-R: "Action:" on its own line, the fence on the next
    ("command_r", 'Action:\n```json\n[{"tool_name": "Bash", "parameters": {"command": "ls"}}]\n```', [("call", "Bash", {"command": "ls"})]),
    # Qwen3-Coder: JSON arguments in a function tag whose closing tag was forgotten
    ("qwen3_coder", '<tool_call><function=Bash>{"command": "ls"}</tool_call>', [("call", "Bash", '{"command": "ls"}')]),
    # a fenced call, then another code block later in the same answer: the call ends at its own fence
    ("fenced", f"```json\n{LS_CALL}\n```\nThen:\n```bash\npwd\n```",
     [("call", "Bash", {"command": "ls"}), ("text", "\nThen:\n```bash\npwd\n```")]),
    # gpt-oss: whatever the header holds before <|message|>, the arguments are the JSON after it
    ("harmony", '<|channel|>commentary [tool] to=functions.Bash<|message|>{"command": "ls"}<|call|>', [("call", "Bash", {"command": "ls"})]),
    # -- near-misses: text, byte for byte ----------------------------------------------------
    # words (not separators) between two call objects in one block: an example
    ("hermes", f"<tool_call>{LS_CALL} X {PWD_CALL}</tool_call>", TEXT),
    # a function tag whose name line has no '>': not a call, and the text is not lost
    ("qwen3_coder", "<tool_call><function=Bash\n<parameter=command>ls</parameter></tool_call>", TEXT),
    ("qwen3_coder", "<function=Bash\n<parameter=command>ls</parameter></function>", TEXT),
    # DeepSeek V3: a name line holding more than a tool name
    ("deepseek", f'{DS_CALLS}{DS_CALL}function{DS_SEP}Bash please\n{{"command": "ls"}}{DS_CALL_END}{DS_CALLS_END}', TEXT),
    # gpt-oss: a message with no recipient in its header, even one that mentions a tool
    ("harmony", '<|channel|>final<|message|>{"answer": "call it with to=functions.Bash next time"}<|return|>', TEXT),
    # gpt-oss: a recipient, but plain text (with braces) where the JSON arguments go
    ("harmony", "<|channel|>commentary to=functions.Bash<|message|>ls {a,b}<|call|>", TEXT),
    ("harmony", "<|channel|>commentary to=functions.Bash<|message|>Xvfb :99 {screen}<|call|>", TEXT),
    # a bare JSON call followed by a word on its line is prose
    ("json", f"{LS_CALL} X\nY", TEXT),
]


@pytest.mark.parametrize(("name", "text", "want"), ROWS, ids=[f"{r[0]}-{i}" for i, r in enumerate(ROWS)])
def test_what_the_client_gets_from_each_family(name, text, want):
    expected = [("text", text)] if want == TEXT else want
    for step in (None, 1):
        assert run(text, name, step) == expected, step


def test_a_kimi_call_index_is_what_follows_the_first_colon():
    text = '<|tool_call_begin|>functions.Bash:0:1<|tool_call_argument_begin|>{"command": "ls"}<|tool_call_end|>'
    for step in (None, 1):
        assert run(text, "kimi", step) == [("call", "Bash", {"command": "ls"})], step


def test_a_kimi_call_to_a_tool_whose_own_name_starts_with_functions_is_run():
    text = '<|tool_call_begin|>functions.lookup:0<|tool_call_argument_begin|>{"q": "x"}<|tool_call_end|>'
    for step in (None, 1):
        assert run(text, "kimi", step, tools=["functions.lookup", "lookup2"]) == [("call", "functions.lookup", {"q": "x"})], step


def test_a_glm_call_to_a_tool_with_a_short_name_keeps_its_arguments():
    """Claude Code's ``LS`` tool: the arguments start two characters after the opener."""
    text = "<tool_call>LS\n<arg_key>path</arg_key>\n<arg_value>/tmp</arg_value>\n</tool_call>"
    for step in (None, 1):
        assert run(text, "glm", step, tools=["LS", "Bash"]) == [("call", "LS", {"path": "/tmp"})], step


@pytest.mark.parametrize(("name", "text", "want"), [
    ("fenced", "```jsx", "```jsx"),  # a JSX code block: no call language begins so, released at once
    ("fenced", "```json\n```", "```json\n```"),  # an empty block closed at once: not a call
])
def test_what_cannot_start_a_call_is_released_before_the_answer_ends(name, text, want):
    assert released(text, name) == want


# -- a bug the mutation work found: JSON nested past the decoder's depth raised RecursionError ----

DEEP = '{"a": ' * 1000 + "1" + "}" * 1000


@pytest.mark.parametrize(("name", "text", "want"), [
    ("mistral", "[TOOL_CALLS]Bash[ARGS]" + DEEP, [("call", "Bash", DEEP)]),
    ("harmony", "<|channel|>commentary to=functions.Bash<|message|>" + DEEP + "<|call|>", [("call", "Bash", DEEP)]),
    ("hermes", '<tool_call>{"name": "Bash", "arguments": ' + DEEP + "}</tool_call>", TEXT),
])
def test_arguments_nested_too_deep_to_decode_do_not_break_the_stream(name, text, want):
    """A model stuck repeating ``{"a": `` a thousand times: the filter goes on (the arguments
    are passed on as the text they are, or the block stays text) instead of raising."""
    assert run(text, name) == ([("text", text)] if want == TEXT else want)


@pytest.mark.parametrize("name", ["mistral", "harmony"])
def test_a_call_with_arguments_nested_too_deep_reaches_the_client_with_the_repair_said(name, caplog):
    # The whole way, filter and repair: the client gets the call with empty arguments (Claude
    # Code then tells the model its input is invalid), the operator's log says why, and the
    # stream ends as a model's turn does. Before, the repair raised RecursionError: a 500.
    text = {"mistral": "[TOOL_CALLS]Bash[ARGS]" + DEEP,
            "harmony": "<|channel|>commentary to=functions.Bash<|message|>" + DEEP + "<|call|>"}[name]
    translator = ResponseTranslator(client_model="claude-sonnet-4-5", input_tokens=1, message_id="msg_test",
                                    tools={"Bash": {"type": "object", "properties": {"command": {"type": "string"}}}},
                                    dialects=(BY_NAME[name],))
    builder = MessageBuilder()
    builder.add(translator.start())
    with caplog.at_level(logging.INFO, logger="proxy"):
        for piece, done in ((text, False), ("", True)):
            line = {"model": "m", "message": {"role": "assistant", "content": piece}, "done": done}
            builder.add(translator.feed(json.dumps(line).encode() + b"\n"))
    message = builder.message()
    assert [(b["type"], b.get("name"), b.get("input")) for b in message["content"]] == [("tool_use", "Bash", {})]
    assert message["stop_reason"] == "tool_use"
    assert any("are not an object: sent {}" in r.getMessage() for r in caplog.records)
