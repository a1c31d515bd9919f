"""What the client receives (and the operator's log says) where mutation testing of the
translator and its filters found nothing watching.

Everything goes through :class:`ResponseTranslator` (Ollama's NDJSON in, Anthropic events
out) or, for the filters' own verdicts, through their public ``feed``/``finish``.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from proxy.errors import UpstreamError, UpstreamProtocolError
from proxy.stream.events import Event, MessageDelta
from tests.stream.test_stream_edges import events_to_message, line, translator


def message_delta(events: list[Event]) -> MessageDelta:
    (delta,) = [e for e in events if isinstance(e, MessageDelta)]
    return delta


def texts(events: list[Event]) -> str:
    return "".join(e.delta.get("text", "") for e in events if e.NAME == "content_block_delta")


def thinkings(events: list[Event]) -> str:
    return "".join(e.delta.get("thinking", "") for e in events if e.NAME == "content_block_delta")


def block_types(events: list[Event]) -> list[str]:
    return [e.content_block["type"] for e in events if e.NAME == "content_block_start"]


# --- an answer the proxy ends itself: a stop sequence, a loop ---------------------------------


def test_an_answer_ended_at_a_stop_sequence_reports_the_estimate_and_its_reason():
    t = translator(tools=None, stop_sequences=["</severity>"])
    events = t.start() + t.feed(line("<severity>7</severity> and more"))
    delta = message_delta(events)
    # 11 characters of text sent → 3 tokens (chars / 4); the input tokens are the estimate
    assert (delta.stop_reason, delta.stop_sequence) == ("stop_sequence", "</severity>")
    assert (delta.input_tokens, delta.output_tokens) == (42, round(len("<severity>7") / 4))
    # what the request log says
    assert (t.done_reason, t.output_tokens, t.done) == ("stop_sequence", delta.output_tokens, True)


def test_an_answer_ended_as_a_loop_reports_the_estimate_and_its_reason():
    t = translator(tools=None, loop_guard_chars=400)
    events = t.start()
    for _ in range(100):
        events += t.feed(line("again and again\n"))
        if t.done:
            break
    delta = message_delta(events)
    assert delta.stop_reason == "max_tokens"
    assert delta.input_tokens == 42
    assert delta.output_tokens == round(t.output_chars / 4) > 0
    assert (t.done_reason, t.output_tokens) == ("loop", delta.output_tokens)


# --- a retry on another attempt: restart() ---------------------------------------------------


def test_a_restarted_translator_forgets_the_failed_attempts_bytes():
    t = translator(tools=None)
    events = t.start()
    with pytest.raises(UpstreamError):
        t.feed(b'{"error": "model is loading"}\n{"model": "m", "mess')  # an error line, then half a line
    assert t.bytes_fed > 0 and not t.produced_output
    t.restart()
    assert t.bytes_fed == 0  # the relay may still try another host
    events += t.feed(line("fresh")) + t.feed(line("", done=True)) + t.end()
    assert texts(events) == "fresh"  # the half line of the failed attempt is gone
    assert events_to_message(events)["stop_reason"] == "end_turn"


def test_a_translator_that_produced_output_cannot_restart():
    t = translator(tools=None)
    t.start()
    t.feed(line("some text"))
    with pytest.raises(RuntimeError, match="^cannot restart a response that produced output$"):
        t.restart()


# --- a broken stream: what the filters still hold goes out as what it is ----------------------


@pytest.mark.parametrize("asked", [True, False])
def test_a_broken_stream_sends_a_cut_off_close_tag_as_thinking_only_when_asked(asked):
    t = translator(thinking=asked)
    events = t.start() + t.feed(line("<think>planning</th"))
    events += t.fail(UpstreamProtocolError("cut"))
    assert thinkings(events) == ("planning</th" if asked else "")
    assert block_types(events) == (["thinking"] if asked else [])
    assert texts(events) == ""
    assert events[-1].NAME == "error"


def test_a_broken_stream_after_the_thinking_sends_only_the_held_text():
    t = translator(thinking=True)
    events = t.start() + t.feed(line("<think>plan</think>Running ")) + t.feed(line("<tool_call>{"))
    events += t.fail(UpstreamProtocolError("cut"))
    assert thinkings(events) == "plan"
    assert texts(events) == "Running <tool_call>{"
    assert block_types(events) == ["thinking", "text"]


def test_a_retry_that_fails_again_still_sends_the_client_an_error():
    t = translator(tools=None)
    t.start()
    with pytest.raises(UpstreamError):
        t.feed(b'{"error": "model is loading"}\n')
    t.restart()
    # the next host cannot be reached either: nothing more is fed
    events = t.fail(UpstreamError("Ollama is unreachable"))
    assert [e.NAME for e in events] == ["error"]


# --- a call written only in the thinking: counted as output -----------------------------------


def test_a_call_recovered_from_the_thinking_counts_as_output_until_ollama_counts():
    thinking = 'Plan. <tool_call>{"name": "Bash", "arguments": {"command": "ls -la"}}</tool_call>'
    t = translator()
    events = t.start() + t.feed(line(thinking=thinking))
    final = json.loads(line("", done=True))
    del final["eval_count"]  # Ollama omits a zero count
    events += t.feed(json.dumps(final).encode() + b"\n")
    assert block_types(events) == ["thinking", "tool_use"]
    produced = len(thinking) + len("Bash") + len(str({"command": "ls -la"}))
    assert t.approx_output_tokens == round(produced / 4)  # what the live view and the log show
    assert t.repairs == 1


# --- examples in markdown are never run (proxy/stream/text_calls.py's markdown tracking) -------

CALL = '<tool_call>{"name": "Bash", "arguments": {"command": "ls"}}</tool_call>'


@pytest.mark.parametrize(
    "text",
    [
        # backticks after text on the same line open no fence: the block below is a fence
        "x```\nthen:\n```python\n" + CALL + "\n```\n",
        "X```\nthen:\n```python\n" + CALL + "\n```\n",
        "\u00a0```\nthen:\n```python\n" + CALL + "\n```\n",
        "see ```\nthen:\n```python\n" + CALL + "\n```\n",
        # a fence after a newline in the same piece as inline code
        "Use `ls`:\n```python\n" + CALL + "\n```\n",
        "Use `ls`:\n\n```python\n" + CALL + "\n```\n",
        "`ls` ```\nthen:\n```python\n" + CALL + "\n```\n",
        "`a`\nX```\nthen:\n```python\n" + CALL + "\n```\n",
        "`a`\n\u00a0```\nthen:\n```python\n" + CALL + "\n```\n",
        # a line that opens a fence stays open to its end, whatever else it holds
        "``` ```\n" + CALL + "\n```\n",
    ],
)
@pytest.mark.parametrize("dialects", ["hermes", None])
@pytest.mark.parametrize("step", [0, 1, 5])
def test_a_call_in_a_markdown_example_is_never_run(text, dialects, step):
    from proxy.stream.dialects import BY_NAME

    t = translator(dialects=(BY_NAME[dialects],) if dialects else None)
    events = t.start()
    pieces = [text] if step == 0 else [text[i : i + step] for i in range(0, len(text), step)]
    for piece in pieces:
        events += t.feed(line(piece))
    events += t.feed(line("", done=True)) + t.end()
    message = events_to_message(events)
    assert message["content"] == [{"type": "text", "text": text}]
    assert message["stop_reason"] == "end_turn"


def test_the_same_call_outside_markdown_is_run():
    # (the examples above fail for the right reason: this call is recognized)
    t = translator()
    events = t.start() + t.feed(line("Listing:\n" + CALL + "\n")) + t.feed(line("", done=True))
    assert block_types(events) == ["text", "tool_use"]


def test_a_call_printed_as_text_is_logged_as_recovered_in_its_dialect(caplog):
    caplog.set_level(logging.INFO, logger="proxy.stream")
    t = translator()
    events = t.start() + t.feed(line(CALL)) + t.feed(line("", done=True))
    assert block_types(events) == ["tool_use"]
    assert (t.repairs, t.repair_log) == (1, [("Bash", ("recovered a call the model printed as text (hermes)",), "hermes")])
    assert "repaired tool call Bash: recovered a call the model printed as text (hermes)" in [
        r.getMessage() for r in caplog.records]


def test_a_call_printed_in_another_familys_dialect_stays_text():
    from proxy.stream.dialects import BY_NAME

    printed = '[TOOL_CALLS][{"name": "Bash", "arguments": {"command": "ls"}}]'
    for dialects, calls in [((BY_NAME["hermes"],), 0), ((BY_NAME["mistral"],), 1)]:
        t = translator(dialects=dialects)
        events = t.start() + t.feed(line(printed)) + t.feed(line("", done=True))
        message = events_to_message(events)
        assert len([b for b in message["content"] if b["type"] == "tool_use"]) == calls, dialects
        if not calls:
            assert message["content"] == [{"type": "text", "text": printed}]


@pytest.mark.parametrize(
    "think_open, asked, pieces, thinking, text",
    [
        # the template opened <think>: the content starts inside it
        (True, True, ["plan", "</think>", "answer"], "plan", "answer"),
        (True, False, ["plan", "</think>", "answer"], "", "answer"),
        # not asked and never closed: it was the answer
        (True, False, ["just the answer"], "", "just the answer"),
        # asked and never closed: it stays thinking
        (True, True, ["plan"], "plan", ""),
        # the template did not open it: a close tag alone is text
        (False, True, ["plan</think>answer"], "", "plan</think>answer"),
        (False, False, ["plan</think>answer"], "", "plan</think>answer"),
    ],
)
def test_thinking_the_template_opened_reaches_the_client_as_asked(think_open, asked, pieces, thinking, text):
    t = translator(think_open=think_open, thinking=asked)
    events = t.start()
    for piece in pieces:
        events += t.feed(line(piece))
    events += t.feed(line("", done=True))
    assert (thinkings(events), texts(events)) == (thinking, text)


def test_the_answers_head_is_its_first_256_characters_of_text():
    # (what an auto-mode check's verdict is looked for in, and logged when it has none)
    t = translator(tools=None)
    t.start()
    t.feed(line(thinking="not this"))
    t.feed(line("<block>no</block>"))
    assert t.text_head == "<block>no</block>"
    t.feed(line("x" * 300))
    assert t.text_head == "<block>no</block>" + "x" * (256 - 17)


def test_a_bare_json_call_that_is_all_the_thinking_is_taken():
    t = translator()
    events = t.start() + t.feed(line(thinking='{"name": "Bash", "arguments": {"command": "ls"}}'))
    events += t.feed(line("", done=True))
    message = events_to_message(events)
    assert [b for b in message["content"] if b["type"] == "tool_use"] == [
        {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}}]


def test_a_call_in_a_python_example_that_opens_the_thinking_is_never_run():
    t = translator()
    events = t.start() + t.feed(line(thinking="```python\n" + CALL + "\n```\nNothing to do."))
    events += t.feed(line("", done=True))
    assert block_types(events) == ["thinking"]
    assert events_to_message(events)["stop_reason"] == "end_turn"


def test_lines_only_the_reference_parser_reads_still_reach_the_client():
    # a null content is not a plain chunk for the fast parser: the line-by-line path reads it
    t = translator(tools=None)
    data = b'{"model": "m", "message": {"role": "assistant", "content": null}, "done": false}\n' + line("hi")
    events = t.start() + t.feed(data[:30]) + t.feed(data[30:]) + t.feed(b"") + t.feed(line("", done=True)) + t.end()
    assert texts(events) == "hi"
    assert t.bytes_fed == len(data) + len(line("", done=True))  # every byte counts, an empty read too


@pytest.mark.parametrize("content, taken", [("", True), ("\n\n", True), ("Done.", False), (CALL.replace("ls", "pwd"), False)])
def test_a_call_in_the_thinking_is_taken_only_when_the_answer_is_blank(content, taken):
    t = translator()
    events = t.start() + t.feed(line(thinking="Plan: " + CALL)) + t.feed(line(content)) + t.feed(line("", done=True))
    calls = [b["input"] for b in events_to_message(events)["content"] if b["type"] == "tool_use"]
    expected = [{"command": "ls"}] if taken else [{"command": "pwd"}] if "pwd" in content else []
    assert calls == expected


def test_an_error_before_the_first_token_says_so():
    t = translator(tools=None)
    t.start()
    with pytest.raises(UpstreamError, match="^Ollama failed before its first token: model 'x' not found$"):
        t.feed(b'{"error": "model \'x\' not found"}\n')
    t = translator(tools=None)
    t.start()
    t.feed(line("Hel"))
    with pytest.raises(UpstreamError, match="^Ollama failed mid-stream: out of memory$"):
        t.feed(b'{"error": "out of memory"}\n')


def test_the_final_chunks_own_text_reaches_the_client_when_stop_sequences_are_set():
    t = translator(tools=None, stop_sequences=["END"])
    events = t.start() + t.feed(line("abc E")) + t.feed(line("xyz", done=True)) + t.end()
    assert texts(events) == "abc Exyz"
    assert (message_delta(events).stop_reason, t.done_reason) == ("end_turn", "stop")


def test_thinking_and_text_of_one_chunk_both_reach_the_client_after_the_answer_began():
    t = translator(tools=None)
    events = t.start() + t.feed(line("Hi")) + t.feed(line(" there", thinking="more thought"))
    events += t.feed(line("", done=True))
    assert (thinkings(events), texts(events)) == ("more thought", "Hi there")


def test_an_answer_ended_at_once_by_a_stop_sequence_counts_as_produced():
    t = translator(tools=None, stop_sequences=["</severity>"])
    t.start()
    t.feed(line("<severity>7</severity>"))
    assert t.produced_output  # the relay must not retry it on another host


def test_blank_text_before_a_call_taken_from_the_thinking_still_reaches_the_client():
    t = translator()
    events = t.start() + t.feed(line(thinking="Plan: " + CALL)) + t.feed(line("\n\n")) + t.feed(line("", done=True))
    assert block_types(events) == ["thinking", "text", "tool_use"]
    assert texts(events) == "\n\n"
