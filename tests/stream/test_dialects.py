"""Every dialect's sample table, streamed: whole, byte by byte and at every split point,
through the stream translator and through the real server with the SDK; the negative cases
(examples, mentions, tools not offered) arrive byte for byte as text; printed thinking."""

from __future__ import annotations

import itertools
import json
import logging
from typing import Any

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.protocol.history import emulate_tools
from proxy.protocol.tool_repair import repair_tool_call
from proxy.stream.dialects import BY_NAME, DIALECTS, dialects_for_template, native_dialect, template_opens_think
from proxy.stream.message import MessageBuilder
from proxy.stream.text_calls import TextCall, TextCallFilter, TextPiece, recover_calls_from_text
from proxy.stream.translator import ResponseTranslator
from tests.fake_ollama import Chunk, Model, text_stream

SCHEMAS = {
    "Bash": {"type": "object", "properties": {"command": {"type": "string"}, "timeout": {"type": "number"}}, "required": ["command"]},
    "Write": {"type": "object", "properties": {
        "file_path": {"type": "string"}, "content": {"type": "string"}, "options": {"type": "object"}}},
    "Edit": {"type": "object", "properties": {"file_path": {"type": "string"}, "old_string": {"type": "string"}}},
}
TOOLS = [{"name": name, "description": name, "input_schema": schema} for name, schema in SCHEMAS.items()]
SAMPLES = [(dialect, sample) for dialect in DIALECTS for sample in dialect.samples]
IDS = [f"{dialect.name}-{sample.id}" for dialect, sample in SAMPLES]


def test_every_dialect_has_the_four_kinds_of_sample():
    for dialect in DIALECTS:
        if dialect.name == "mistral_args":  # parsed by Mistral's code: Mistral's table covers it
            continue
        kinds = {sample.id.split("-")[0] for sample in dialect.samples}
        assert {"single", "two", "text", "nested"} <= kinds, dialect
        two = next(s for s in dialect.samples if s.id == "two")
        assert len([e for e in two.expected if e[0] == "call"]) == 2, dialect


def expected_blocks(expected: tuple) -> list[tuple]:
    return [("text", e[1]) if e[0] == "text" else ("tool_use", e[1], e[2]) for e in expected]


def translate(pieces: list[str], *, tools: dict | None = SCHEMAS, thinking: bool = False, think_open: bool = False,
              dialects=None) -> dict[str, Any]:
    ids = (f"toolu_{n:024x}" for n in itertools.count(1))
    translator = ResponseTranslator(client_model="claude-sonnet-4-5", input_tokens=9, tools=tools,
                                    tool_id_factory=lambda: next(ids), message_id="msg_test",
                                    dialects=dialects, thinking=thinking, think_open=think_open)
    builder = MessageBuilder()
    builder.add(translator.start())
    for piece in pieces:
        line = {"model": "m", "created_at": "x", "message": {"role": "assistant", "content": piece}, "done": False}
        builder.add(translator.feed(json.dumps(line).encode() + b"\n"))
    done = {"model": "m", "created_at": "x", "message": {"role": "assistant", "content": ""}, "done": True,
            "done_reason": "stop", "prompt_eval_count": 9, "eval_count": 9}
    builder.add(translator.feed(json.dumps(done).encode() + b"\n"))
    message = builder.message()
    message["repair_log"] = translator.repair_log
    return message


def blocks(message: dict[str, Any]) -> list[tuple]:
    out = []
    for block in message["content"]:
        if block["type"] == "text":
            out.append(("text", block["text"]))
        elif block["type"] == "thinking":
            out.append(("thinking", block["thinking"].strip()))
        else:
            out.append(("tool_use", block["name"], block["input"]))
    return out


def splits(text: str):
    yield [text]
    yield list(text)  # one character at a time
    for cut in range(1, len(text)):
        yield [text[:cut], text[cut:]]
    for size in (2, 3, 7, 13):
        yield [text[i : i + size] for i in range(0, len(text), size)]


@pytest.mark.parametrize(("dialect", "sample"), SAMPLES, ids=IDS)
def test_sample_through_the_translator_at_every_split(dialect, sample):
    want = expected_blocks(sample.expected)
    for pieces in splits(sample.text):
        message = translate(pieces)
        assert blocks(message) == want, pieces
        assert message["stop_reason"] == "tool_use"
    # the repair log (and so the log line and the live view's repair event) names the dialect
    said = [change for _, changes, _ in message["repair_log"] for change in changes if "printed as text" in change]
    assert said and all(c.endswith(f"({dialect.name})") for c in said), said
    assert {name for _, _, name in message["repair_log"]} == {dialect.name}


@pytest.mark.parametrize(("dialect", "sample"), SAMPLES, ids=IDS)
def test_sample_is_recognized_when_the_template_names_the_dialect(dialect, sample):
    """Restricted to what a model's template says (plus the universal forms), still found."""
    template = " ".join(dialect.template_markers) or "no markers"
    message = translate([sample.text], dialects=dialects_for_template(template))
    assert blocks(message) == expected_blocks(sample.expected)


def sdk_message(proxy, *, thinking: dict | None = None, model: str = "claude-opus-5-5", tools=TOOLS) -> Any:
    def call():
        extra = {"thinking": thinking} if thinking else {}
        with proxy.client().messages.stream(model=model, max_tokens=2000, tools=tools, **extra,
                                            messages=[{"role": "user", "content": "go"}]) as stream:
            return stream.get_final_message()
    return trio.to_thread.run_sync(call)


def sdk_blocks(message) -> list[tuple]:
    out = []
    for block in message.content:
        if block.type == "text":
            out.append(("text", block.text))
        elif block.type == "thinking":
            out.append(("thinking", block.thinking.strip()))
        else:
            out.append(("tool_use", block.name, block.input))
    return out


@pytest.mark.parametrize(("dialect", "sample"), SAMPLES, ids=IDS)
async def test_sample_through_the_server_whole_and_byte_by_byte(fake_ollama, proxy, dialect, sample, caplog):
    text = sample.text
    fake_ollama.script_chat([Chunk(content=text)] + text_stream("", eval_count=9))
    fake_ollama.script_chat([Chunk(content=c) for c in text] + text_stream("", eval_count=9))
    with trio.fail_after(30), caplog.at_level(logging.INFO, logger="proxy.stream"):
        for _ in range(2):
            message = await sdk_message(proxy)
            assert sdk_blocks(message) == expected_blocks(sample.expected)
            assert message.stop_reason == "tool_use"
    assert f"recovered a call the model printed as text ({dialect.name})" in caplog.text


# -- must stay text ----------------------------------------------------------------------------


def _unknown(text: str) -> str:
    return text.replace("Bash", "Nope").replace("Write", "Nope")


NEGATIVE = [
    'To call a tool, a model prints `{"name": "Bash", "arguments": {"command": "ls"}}` in its answer.',
    "Qwen wraps calls in `<tool_call>` tags; Mistral starts them with `[TOOL_CALLS]`.",
    "Mistral models start a call with [TOOL_CALLS] and then the JSON.",
    'Write `<tool_call>{"name": "Bash", "arguments": {"command": "ls"}}</tool_call>` to call Bash.',
    'Example:\n```python\ncall = {"name": "Bash", "arguments": {"command": "rm -rf /"}}\n```\nDo not run it.',
    'In markdown:\n```text\n[Bash(command="ls")]\n```\n',
    'The object {"name": "Bash", "arguments": {"command": "ls"}} would list the files.',
    'The config is {"name": "server", "port": 80}.',
    "Use <b>x</b> and f(){ return 1; } and `code` and [a link](http://x) and [x(1)].",
    "functools is a Python module; Action: none needed. <|channel|> is harmony's marker.",
    "A list: [1, 2, 3] and a dict {'a': [1]} and <think> in the middle.",
    "Use `[Bash(command='ls')]` to run it.",
] + [_unknown(sample.text) for _, sample in SAMPLES if "Bash" in sample.text or "Write" in sample.text]


@pytest.mark.parametrize("text", NEGATIVE)
def test_not_a_call_stays_text_through_the_translator_at_every_split(text):
    for pieces in splits(text):
        message = translate(pieces)
        assert blocks(message) == [("text", text)], pieces
        assert message["stop_reason"] == "end_turn"


@pytest.mark.parametrize("text", NEGATIVE[:12])
async def test_not_a_call_stays_text_through_the_server(fake_ollama, proxy, text):
    fake_ollama.script_chat([Chunk(content=c) for c in text] + text_stream("", eval_count=9))
    with trio.fail_after(30):
        message = await sdk_message(proxy)
    assert sdk_blocks(message) == [("text", text)]
    assert message.stop_reason == "end_turn"


def test_a_template_restricts_the_dialects():
    llama = "<|start_header_id|>assistant<|end_header_id|>{{ if .ToolCalls }}<|python_tag|>{{ end }}<|eom_id|>"
    mistral_text = '[TOOL_CALLS]Bash[ARGS]{"command": "ls -la"}'
    assert blocks(translate([mistral_text], dialects=dialects_for_template(llama))) == [("text", mistral_text)]
    assert blocks(translate([mistral_text], dialects=dialects_for_template("[AVAILABLE_TOOLS] [TOOL_CALLS]"))) == [
        ("tool_use", "Bash", {"command": "ls -la"})]
    assert dialects_for_template(llama)[0].name == "llama3"
    assert dialects_for_template("plain") == DIALECTS  # unknown template: every dialect


@pytest.mark.parametrize(("template", "name"), [
    ("{{ .Prompt }}", None),
    ("<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call>", "hermes"),
    ("<tool_call>\n<function=example_function_name>\n<parameter=example_parameter_1>\nvalue_1\n</parameter>", "qwen3_coder"),
    ("<tool_call>{{ .Name }}\n<arg_key>{{ $k }}</arg_key>\n<arg_value>{{ $v }}</arg_value>", "glm"),
    ("[AVAILABLE_TOOLS]{{ json $.Tools }}[/AVAILABLE_TOOLS] [TOOL_CALLS]", "mistral"),
    ("[TOOL_CALLS]{{ .Function.Name }}[ARGS]{{ .Function.Arguments }}", "mistral_args"),
    ("<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>", "deepseek"),
])
def test_the_native_dialect_comes_from_the_template(template, name):
    found = native_dialect(template)
    assert (found.name if found else None) == name


def test_emulated_tools_are_described_and_written_in_the_models_dialect():
    functions = [{"type": "function", "function": {"name": "Bash", "description": "run", "parameters": SCHEMAS["Bash"]}}]
    history = [{"role": "user", "content": "go"},
               {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "Bash", "arguments": {"command": "ls"}}}]},
               {"role": "tool", "tool_name": "Bash", "content": "a.txt"}]
    for dialect in DIALECTS:
        messages = emulate_tools(history, functions, dialect)
        printed = messages[2]["content"]
        assert printed == dialect.write("Bash", {"command": "ls"})
        # what the model is told to print is what the proxy recovers
        got = recover_calls_from_text(printed, ["Bash"], dialects=dialects_for_template(" ".join(dialect.template_markers)))
        assert [(c.name, c.arguments) for c in got if isinstance(c, TextCall)] == [("Bash", {"command": "ls"})], dialect
        assert dialect.write("Bash", {"command": "…"}) in messages[0]["content"] or dialect.name == "hermes"


async def test_an_emulated_model_is_told_its_own_dialect_and_its_calls_come_back(fake_ollama, proxy):
    fake_ollama.models.append(Model("devstral:24b", capabilities=("completion",),
                                    template="[AVAILABLE_TOOLS]{{ json $.Tools }}[/AVAILABLE_TOOLS][TOOL_CALLS]{{ .Name }}[ARGS]"))
    printed = 'I will look.[TOOL_CALLS]Bash[ARGS]{"command": "ls -la"}</s>'
    fake_ollama.script_chat([Chunk(content=printed[i : i + 3]) for i in range(0, len(printed), 3)] + text_stream(""))
    with trio.fail_after(30):
        message = await sdk_message(proxy, model="devstral:24b")
    assert sdk_blocks(message) == [("text", "I will look."), ("tool_use", "Bash", {"command": "ls -la"})]
    system = fake_ollama.chat_requests[-1].body["messages"][0]["content"]
    assert '[TOOL_CALLS]Bash[ARGS]{"command": "…"}' in system
    assert "tools" not in fake_ollama.chat_requests[-1].body


async def test_the_models_template_keeps_other_dialects_out(fake_ollama, proxy):
    fake_ollama.models.append(Model("llama3.1:8b", capabilities=("completion", "tools"),
                                    template="{{ if .ToolCalls }}<|python_tag|>{{ end }}<|eom_id|><|eot_id|>"))
    printed = '[TOOL_CALLS]Bash[ARGS]{"command": "ls -la"}'
    fake_ollama.script_chat(text_stream(printed))
    with trio.fail_after(30):
        message = await sdk_message(proxy, model="llama3.1:8b")
    assert sdk_blocks(message) == [("text", printed)]


# -- thinking printed as text -------------------------------------------------------------------

THINK_CASES = [
    # (id, content, template opens <think>, thinking, text)
    ("tags", "<think>\nThe user wants files.\n</think>\n\nHere they are.", False, "The user wants files.", "Here they are."),
    ("opened-by-template", "The user wants files.\n</think>\n\nHere they are.", True, "The user wants files.", "Here they are."),
    ("unclosed", "<think>Still thinking when it stopped", False, "Still thinking when it stopped", ""),
    ("tag-later-is-text", "Answer first. <think>not thinking</think>", False, "", "Answer first. <think>not thinking</think>"),
]
# the template opened <think> but the model never closed it: without client thinking it was the answer
NEVER_CLOSED = "Just the answer, no thinking."


@pytest.mark.parametrize("size", [1, 3, 100])
def test_a_template_opened_think_never_closed_is_the_answer_when_thinking_was_not_asked(size):
    pieces = [NEVER_CLOSED[i : i + size] for i in range(0, len(NEVER_CLOSED), size)]
    assert blocks(translate(pieces, think_open=True)) == [("text", NEVER_CLOSED)]
    assert blocks(translate(pieces, think_open=True, thinking=True)) == [("thinking", NEVER_CLOSED)]


@pytest.mark.parametrize(("content", "opened", "thinking", "text"), [c[1:] for c in THINK_CASES], ids=[c[0] for c in THINK_CASES])
@pytest.mark.parametrize("asked", [True, False], ids=["client-thinking", "no-client-thinking"])
def test_printed_thinking_at_every_split(content, opened, thinking, text, asked):
    want = ([("thinking", thinking)] if thinking and asked else []) + ([("text", text)] if text else [])
    for pieces in splits(content):
        assert blocks(translate(pieces, thinking=asked, think_open=opened, tools=None)) == want, pieces
        assert blocks(translate(pieces, thinking=asked, think_open=opened)) == want, pieces


def test_thinking_then_a_printed_call():
    content = '<think>I should list.</think>\n<tool_call>{"name": "Bash", "arguments": {"command": "ls -la"}}</tool_call>'
    for pieces in splits(content):
        assert blocks(translate(pieces, thinking=True)) == [("thinking", "I should list."), ("tool_use", "Bash", {"command": "ls -la"})]


@pytest.mark.parametrize("asked", [True, False])
async def test_printed_thinking_through_the_server(fake_ollama, proxy, asked, caplog):
    # a custom Modelfile: Ollama does not know it thinks, so it does not parse its thinking
    fake_ollama.models.append(Model("deepseek-r1:8b", capabilities=("completion", "tools"),
                                    template="{{- range .Messages }}{{ .Content }}{{ end }}<｜Assistant｜><think>\n"))
    content = "Hmm, the user greets me.\n</think>\n\nHello!"
    fake_ollama.script_chat([Chunk(content=c) for c in content] + text_stream(""))
    with trio.fail_after(30), caplog.at_level(logging.INFO, logger="proxy.stream"):
        message = await sdk_message(proxy, model="deepseek-r1:8b",
                                    thinking={"type": "enabled", "budget_tokens": 1024} if asked else None)
    assert sdk_blocks(message) == ([("thinking", "Hmm, the user greets me.")] if asked else []) + [("text", "Hello!")]
    if not asked:
        assert "removed 25 characters of thinking" in caplog.text


def test_template_opens_think():
    assert template_opens_think("{{ .Prompt }}<｜Assistant｜><think>\n")
    assert template_opens_think("<|im_start|>assistant\n<think>\n{{ end }}")
    assert not template_opens_think("{{ if .Thinking }}<think>{{ .Thinking }}</think>{{ end }}{{ .Content }}")
    assert not template_opens_think("")


# -- properties ---------------------------------------------------------------------------------

MARKER_FREE = st.text(st.characters(blacklist_characters="{[<`", blacklist_categories=("Cs",)), max_size=300)


@settings(max_examples=200, deadline=None)
@given(MARKER_FREE, st.lists(st.integers(0, 300), max_size=6))
def test_text_without_markers_passes_unchanged(text, cuts):
    points = sorted({c for c in cuts if c <= len(text)})
    pieces = [text[a:b] for a, b in zip([0] + points, points + [len(text)])]
    message = translate(pieces)
    assert "".join(b[1] for b in blocks(message)) == text
    assert all(b[0] == "text" for b in blocks(message))


FRAGMENTS = sorted({o for d in DIALECTS for o in d.openers} | {
    "{", "}", "[", "]", '"name": ', '"nope"', '"arguments": ', "(", ")", "nope", "=", "`", "```", "```json\n", "\n", " ",
    "</tool_call>", "<|eom_id|>", "</s>", "<｜tool▁sep｜>", "[ARGS]", "<|message|>", "to=functions.nope", "call:", "ok",
})


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=40), st.lists(st.integers(0, 400), max_size=6))
def test_markers_without_an_offered_tool_pass_byte_for_byte(fragments, cuts):
    text = "".join(fragments)
    points = sorted({c for c in cuts if c <= len(text)})
    pieces = [text[a:b] for a, b in zip([0] + points, points + [len(text)])]
    filt = TextCallFilter(["Bash", "Write"])
    out = [item for piece in pieces for item in filt.feed(piece)] + filt.finish()
    assert all(isinstance(item, TextPiece) for item in out)
    assert "".join(item.text for item in out) == text


def test_the_whole_text_entry_point():
    text = 'Plan.\n<tool_call>{"name": "Bash", "arguments": {"command": "ls"}}</tool_call>'
    out = recover_calls_from_text(text, ["Bash"])
    assert out[0] == TextPiece("Plan.\n")
    assert (out[1].name, out[1].arguments, out[1].dialect) == ("Bash", {"command": "ls"}, "hermes")
    assert recover_calls_from_text(text, ["Write"]) == [TextPiece(text)]
    assert recover_calls_from_text(text, ["Bash"], dialects=(BY_NAME["mistral"],)) == [TextPiece(text)]


async def test_a_model_ollama_knows_thinks_is_not_read_as_starting_inside_think(fake_ollama, proxy):
    """Ollama parses the thinking of a model with the thinking capability: its content is the
    answer even though the template opens <think>."""
    fake_ollama.models.append(Model("deepseek-r1:14b", capabilities=("completion", "tools", "thinking"),
                                    template="{{ .Prompt }}<｜Assistant｜><think>\n"))
    fake_ollama.script_chat(text_stream("Hello there!", thinking="The user greets me."))
    with trio.fail_after(30):
        message = await sdk_message(proxy, model="deepseek-r1:14b", thinking={"type": "enabled", "budget_tokens": 1024})
    assert sdk_blocks(message) == [("thinking", "The user greets me."), ("text", "Hello there!")]


BIG_FILE = "".join(f"def f{i}(x):\n    return {{'k': [x, {i}], \"s\": \"ü>\"}}\n" for i in range(3000))  # ~150 KB


@pytest.mark.parametrize("form", ["hermes", "fenced", "qwen3_coder", "mistral_args"])
def test_a_big_call_streamed_in_small_pieces_is_recovered_whole(form):
    """Past RECHECK_FROM the held call is judged again only as it grows: still found, exactly."""
    arguments = {"file_path": "/tmp/big.py", "content": BIG_FILE}
    text = {
        "hermes": f"<tool_call>{json.dumps({'name': 'Write', 'arguments': arguments})}</tool_call>",
        "fenced": f"```json\n{json.dumps({'name': 'Write', 'arguments': arguments})}\n```",
        "qwen3_coder": BY_NAME["qwen3_coder"].write("Write", arguments),
        "mistral_args": BY_NAME["mistral_args"].write("Write", arguments),
    }[form]
    filt = TextCallFilter(["Write"])
    out = [item for i in range(0, len(text), 5) for item in filt.feed(text[i : i + 5])] + filt.finish()
    assert [(o.name, o.arguments, o.dialect) for o in out] == [("Write", arguments, form if form != "mistral_args" else "mistral")]


def test_a_big_fenced_block_that_is_no_call_is_released_whole_at_its_end():
    text = '```json\n{"name": "Write", "data": [' + ", ".join(str(i) for i in range(2000)) + "]}\n```\nThat is the data."
    filt = TextCallFilter(["Write"])
    out = [item for i in range(0, len(text), 5) for item in filt.feed(text[i : i + 5])] + filt.finish()
    assert all(isinstance(o, TextPiece) for o in out) and "".join(o.text for o in out) == text


@pytest.mark.parametrize("held", ['Running <tool_call>{"name": "Bash", "argu', "  ", "<thi"])
def test_a_stream_that_breaks_releases_what_was_held_as_text_and_runs_nothing(held):
    from proxy.errors import UpstreamError

    translator = ResponseTranslator(client_model="claude-x", input_tokens=1, tools=SCHEMAS)
    builder = MessageBuilder()
    builder.add(translator.start())
    line = {"model": "m", "message": {"role": "assistant", "content": held}, "done": False}
    builder.add(translator.feed(json.dumps(line).encode() + b"\n"))
    with pytest.raises(UpstreamError):
        translator.feed(b'{"error": "the model crashed"}\n')
    events = translator.fail(UpstreamError("the model crashed"))
    builder.add(events)
    assert events[-1].NAME == "error"
    assert [(b["type"], b.get("text")) for b in builder.message()["content"]] == [("text", held)]


def filtered(pieces: list[str]) -> list[tuple]:
    """What the stream filter and the repair make of ``pieces``: the blocks the translator
    sends, without the translator (a tenth of its cost per split). As in the translator,
    blank text right after a call is layout: kept only when more text follows it."""
    recognizer = TextCallFilter(list(SCHEMAS))
    out = [item for piece in pieces for item in recognizer.feed(piece)] + recognizer.finish()
    got: list[tuple] = []
    blank: str | None = None  # blank text since the last call
    for item in out:
        if isinstance(item, TextCall):
            repaired = repair_tool_call(item.name, item.arguments, SCHEMAS)
            got.append(("tool_use", repaired.name, repaired.arguments))
            blank = ""
            continue
        if blank is not None and not item.text.strip():
            blank += item.text
            continue
        text, blank = (blank or "") + item.text, None
        if got and got[-1][0] == "text":
            got[-1] = ("text", got[-1][1] + text)
        elif text:
            got.append(("text", text))
    return got


@pytest.mark.parametrize(("dialect", "sample"), SAMPLES, ids=IDS)
def test_sample_through_the_filter_at_every_split(dialect, sample):
    want = expected_blocks(sample.expected)
    for pieces in splits(sample.text):
        assert filtered(pieces) == want, pieces


@pytest.mark.parametrize("text", NEGATIVE)
def test_not_a_call_stays_text_through_the_filter_at_every_split(text):
    for pieces in splits(text):
        assert filtered(pieces) == [("text", text)], pieces
