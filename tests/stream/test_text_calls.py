"""Tool calls printed as text become real tool_use blocks, streaming, under any chunk split."""

from __future__ import annotations

import json

import pytest
import trio

from proxy.stream.text_calls import TextCall, TextCallFilter, TextPiece
from tests.fake_ollama import Chunk, text_stream

TOOLS = ["Write", "Bash"]
WRITE = {"file_path": "/tmp/a.txt", "content": "hi {there}\n"}
BASH = {"command": "ls -la"}

SAMPLES = [
    # (id, printed text, expected pieces as ("text", s) / ("call", name, arguments))
    ("tool_call-tag", f'I will write it.\n<tool_call>\n{json.dumps({"name": "Write", "arguments": WRITE})}\n</tool_call>',
     [("text", "I will write it.\n"), ("call", "Write", WRITE)]),
    ("function-tag-json", f"<function=Bash>{json.dumps(BASH)}</function>", [("call", "Bash", json.dumps(BASH))]),
    ("function-tag-parameters", "<function=Write>\n<parameter=file_path>\n/tmp/a.txt\n</parameter>\n"
     "<parameter=content>\nhi {there}\n\n</parameter>\n</function>",
     # the template's layout is one newline after <parameter=…> and one before </parameter>
     [("call", "Write", {"file_path": "/tmp/a.txt", "content": "hi {there}\n"})]),
    ("bare-json", f'Running: {json.dumps({"name": "Bash", "arguments": BASH})}',
     [("text", "Running: "), ("call", "Bash", BASH)]),
    ("bare-parameters", json.dumps({"name": "bash", "parameters": BASH}), [("call", "Bash", BASH)]),
    ("fenced", f'```json\n{json.dumps({"name": "Write", "arguments": WRITE}, indent=2)}\n```\nDone.',
     [("call", "Write", WRITE), ("text", "\nDone.")]),
    ("unclosed-tag-at-end", f'<tool_call>{json.dumps({"name": "Bash", "arguments": BASH})}',
     [("call", "Bash", BASH)]),
    ("two-calls", f'<tool_call>{json.dumps({"name": "Bash", "arguments": BASH})}</tool_call>'
     f'<tool_call>{json.dumps({"name": "Write", "arguments": WRITE})}</tool_call>',
     [("call", "Bash", BASH), ("call", "Write", WRITE)]),
    # not calls: released as text exactly
    ("plain-json", 'The config is {"name": "server", "port": 80}.', [("text", 'The config is {"name": "server", "port": 80}.')]),
    ("html-and-braces", "Use <b>x</b> and f(){ return 1; } and `code`.", [("text", "Use <b>x</b> and f(){ return 1; } and `code`.")]),
    ("other-fence", "```python\nprint({'a': 1})\n```\n", [("text", "```python\nprint({'a': 1})\n```\n")]),
    ("unknown-tool", '<tool_call>{"name": "Nope", "arguments": {}}</tool_call>', [("text", '<tool_call>{"name": "Nope", "arguments": {}}</tool_call>')]),
]


def normalize(items) -> list[tuple]:
    """Merge adjacent text pieces; calls as (call, name, arguments)."""
    out: list[tuple] = []
    for item in items:
        if isinstance(item, TextPiece):
            if out and out[-1][0] == "text":
                out[-1] = ("text", out[-1][1] + item.text)
            elif item.text:
                out.append(("text", item.text))
        else:
            assert isinstance(item, TextCall)
            out.append(("call", item.name, item.arguments))
    return out


def run(pieces: list[str]) -> list[tuple]:
    filt = TextCallFilter(TOOLS)
    items = []
    for piece in pieces:
        items += filt.feed(piece)
    return normalize(items + filt.finish())


@pytest.mark.parametrize("sample", SAMPLES, ids=[s[0] for s in SAMPLES])
def test_every_split_gives_the_same_result(sample):
    _, text, expected = sample
    assert run([text]) == expected
    assert run(list(text)) == expected  # one character at a time
    for cut in range(1, len(text)):  # every split in two
        assert run([text[:cut], text[cut:]]) == expected, cut
    for size in (2, 3, 7, 13):
        assert run([text[i : i + size] for i in range(0, len(text), size)]) == expected


def test_text_is_released_as_soon_as_it_cannot_be_a_call():
    filt = TextCallFilter(TOOLS)
    assert normalize(filt.feed("Hello {")) == [("text", "Hello ")]
    assert filt.holding == "{"
    assert normalize(filt.feed('"x')) == [("text", '{"x')]  # no tool call starts with {"x
    assert filt.holding == ""
    assert normalize(filt.feed("a <tool")) == [("text", "a ")]
    assert normalize(filt.feed("tip>")) == [("text", "<tooltip>")]


async def test_printed_call_through_the_sdk(fake_ollama, proxy):
    printed = '<tool_call>\n{"name": "Write", "arguments": {"path": "/tmp/x", "content": "y"}}\n</tool_call>'
    fake_ollama.script_chat([Chunk(content=printed[i : i + 5]) for i in range(0, len(printed), 5)]
                            + text_stream("", eval_count=9))
    tool = {"name": "Write", "description": "w", "input_schema": {
        "type": "object", "properties": {"file_path": {"type": "string"}, "content": {"type": "string"}}}}
    with trio.fail_after(20):
        def call():
            with proxy.client().messages.stream(model="claude-opus-5-5", max_tokens=99, tools=[tool],
                                                messages=[{"role": "user", "content": "go"}]) as stream:
                return stream.get_final_message()
        message = await trio.to_thread.run_sync(call)
    assert [b.type for b in message.content] == ["tool_use"]
    assert message.content[0].name == "Write"
    assert message.content[0].input == {"file_path": "/tmp/x", "content": "y"}  # and repaired
    assert message.stop_reason == "tool_use"


async def test_no_tools_offered_means_text_stays_text(fake_ollama, proxy):
    printed = '<tool_call>{"name": "Write", "arguments": {}}</tool_call>'
    fake_ollama.script_chat(text_stream(printed))
    with trio.fail_after(20):
        message = await trio.to_thread.run_sync(lambda: proxy.client().messages.create(
            model="claude-opus-5-5", max_tokens=9, messages=[{"role": "user", "content": "go"}]))
    assert message.content[0].text == printed


BASH_TOOL = {"name": "Bash", "description": "run", "input_schema": {
    "type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}}
EXAMPLES = [
    # A call shown as an example in prose: Claude Code would run it if it became a tool_use.
    'To call a tool, a model prints `{"name": "Bash", "arguments": {"command": "ls"}}` in its answer.',
    'Models print `<tool_call>{"name": "Bash", "arguments": {"command": "ls"}}</tool_call>` to call Bash.',
    'An example:\n```python\nreply = {"name": "Bash", "arguments": {"command": "rm -rf /tmp/x"}}\n```\nThat is all.',
    'The call {"name": "Bash", "arguments": {"command": "ls"}} would list the files.',
]


@pytest.mark.parametrize("example", EXAMPLES)
async def test_a_call_shown_as_an_example_stays_text_byte_for_byte(fake_ollama, proxy, example):
    fake_ollama.script_chat([Chunk(content=example[i : i + 4]) for i in range(0, len(example), 4)]
                            + text_stream("", eval_count=9))
    with trio.fail_after(20):
        def call():
            with proxy.client().messages.stream(model="claude-opus-5-5", max_tokens=99, tools=[BASH_TOOL],
                                                messages=[{"role": "user", "content": "how do tools work?"}]) as stream:
                return stream.get_final_message()
        message = await trio.to_thread.run_sync(call)
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == example
    assert message.stop_reason == "end_turn"


CALL = '<tool_call>{"name": "Bash", "arguments": {"command": "ls"}}</tool_call>'
LS = ("call", "Bash", {"command": "ls"})


@pytest.mark.parametrize(
    "text, expected",
    [
        # an end-of-turn token right after a call is dropped; anywhere else it is text
        (CALL + "<|im_end|>", [LS]),
        (CALL + "</s></s>", [LS]),
        (CALL + "\n<|eot_id|>", [LS, ("text", "\n")]),
        (CALL + " ok <|eot_id|>", [LS, ("text", " ok <|eot_id|>")]),
        ("Hello <|im_end|>", [("text", "Hello <|im_end|>")]),
        ("<|eot_id|>" + CALL, [("text", "<|eot_id|>"), LS]),
        # an example in inline code or in a fence of another language stays text
        ("a `" + CALL + "` b", [("text", "a `" + CALL + "` b")]),
        ("x\n```python\n" + CALL + "\n```\n" + CALL, [("text", "x\n```python\n" + CALL + "\n```\n"), LS]),
        ("``" + CALL + "`` then " + CALL, [("text", "``" + CALL + "`` then "), LS]),
        ("a `code`\n" + CALL, [("text", "a `code`\n"), LS]),
        ("an unclosed `code\n" + CALL, [("text", "an unclosed `code\n"), LS]),
        ("text ```" + CALL + "```", [("text", "text ```" + CALL + "```")]),
        # backticks after other text on their line open no fence (markdown): what follows
        # on the next line is no example ("\xa0" is no indentation either)
        ('a\nX```python\n{"name": "Bash", "arguments": {"command": "ls"}}\n```',
         [("text", "a\nX```python\n"), LS, ("text", "\n```")]),
        ('a\n\xa0```python\n{"name": "Bash", "arguments": {"command": "ls"}}\n```',
         [("text", "a\n\xa0```python\n"), LS, ("text", "\n```")]),
        ("X```python\n" + CALL + "\n```", [("text", "X```python\n"), LS, ("text", "\n```")]),
        ("\xa0```python\n" + CALL + "\n```", [("text", "\xa0```python\n"), LS, ("text", "\n```")]),
        # a fenced call whose closing fence never came is still the call at the end
        ('```json\n{"name": "Bash", "arguments": {"command": "ls"}}', [LS]),
        ('```json\n{"name": "Bash", "arguments": {"command": "ls"}}\n', [LS]),
        # a fence holding anything beside the call is an example
        ('```json\n{"name": "Bash", "arguments": {"command": "ls"}}\nX```',
         [("text", '```json\n{"name": "Bash", "arguments": {"command": "ls"}}\nX```')]),
    ],
)
def test_trailers_and_code_around_printed_calls_at_every_split(text, expected):
    assert run([text]) == expected
    assert run(list(text)) == expected
    for cut in range(1, len(text)):
        assert run([text[:cut], text[cut:]]) == expected, cut


def test_a_call_cut_off_after_the_hold_limit_is_released_as_text(monkeypatch):
    from proxy.stream import text_calls

    monkeypatch.setattr(text_calls, "MAX_HOLD", 200)
    start = '<tool_call>{"name": "Bash", "arguments": {"command": "'
    filt = TextCallFilter(TOOLS)
    out = filt.feed(start + "x" * 100)
    assert out == [] and filt.holding == start + "x" * 100  # may still be a call: held
    # past the limit: no real call is this long; all of it goes out as text, in order
    assert normalize(filt.feed("x" * 100)) == [("text", start + "x" * 200)]
    assert filt.holding == ""
    assert normalize(filt.feed('"}}</tool_call>') + filt.finish()) == [("text", '"}}</tool_call>')]


@pytest.mark.parametrize("step", [1, 2, 3])
def test_an_example_in_a_fence_stays_text_when_its_backticks_arrive_one_by_one(step):
    """With a template that leaves out the fenced dialect, backticks are no opener: a
    fence whose three backticks came in separate pieces was read as three inline-code
    marks, and a call shown in a ```python example streamed token by token was run."""
    from proxy.stream.dialects import BY_NAME

    text = "Example:\n```python\n" + CALL + "\n```\nDone."
    filt = TextCallFilter(["Bash"], (BY_NAME["hermes"],))
    items = []
    for i in range(0, len(text), step):
        items += filt.feed(text[i : i + step])
    assert normalize(items + filt.finish()) == [("text", text)]
