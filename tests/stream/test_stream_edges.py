"""What the client receives at the stream's edges mutation testing found unguarded.

Everything goes through :class:`ResponseTranslator`'s public interface (Ollama's NDJSON in,
Anthropic events out), so these tests hold whatever recognizes printed tool calls inside.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import pytest

from proxy.errors import UpstreamError, UpstreamProtocolError
from proxy.stream.events import Event
from proxy.stream.message import MessageBuilder
from proxy.stream.translator import ResponseTranslator

READ = {"type": "object", "properties": {"file_path": {"type": "string"}, "limit": {"type": "integer"},
                                         "options": {"type": "object"}}}
BASH = {"type": "object", "properties": {"command": {"type": "string"}}}
TOOLS = {"Read": READ, "Bash": BASH}


def line(content: str = "", *, done: bool = False, **extra: Any) -> bytes:
    obj: dict[str, Any] = {"model": "m", "created_at": "2025-06-01T12:00:00Z",
                           "message": {"role": "assistant", "content": content}, "done": done}
    if done:
        obj.update(done_reason="stop", prompt_eval_count=10, eval_count=5)
    for key in ("thinking", "tool_calls"):
        if key in extra:
            obj["message"][key] = extra.pop(key)
    obj.update(extra)
    return json.dumps(obj, ensure_ascii=False).encode() + b"\n"


def translator(tools: dict[str, Any] | None = TOOLS, **kwargs: Any) -> ResponseTranslator:
    ids = iter(f"toolu_{n}" for n in range(1, 100))
    return ResponseTranslator(client_model="claude-sonnet-4-5", input_tokens=42, tools=tools,
                              tool_id_factory=lambda: next(ids), **kwargs)


def run(*lines: bytes, tools: dict[str, Any] | None = TOOLS) -> tuple[dict[str, Any], list[Event]]:
    t = translator(tools)
    events = t.start()
    for data in lines:
        events += t.feed(data)
    events += t.end()
    builder = MessageBuilder()
    builder.add(events)
    return builder.message(), events


# --- what is still held back when Ollama's final chunk arrives ------------------------------


@pytest.mark.parametrize(
    "pieces, expected",
    [
        # a brace might open a printed call: held, and released when the answer ends
        (["Use a dict like {"], "Use a dict like {"),
        (["Use ", "<tool_call>"], "Use <tool_call>"),
        (["see ```"], "see ```"),
        (["<function="], "<function="),
        # the final chunk's own content is part of the answer too
        (["a {", "b"], "a {b"),
    ],
)
def test_text_held_back_at_the_final_chunk_reaches_the_client(pieces, expected):
    *middle, last = pieces
    message, _ = run(*(line(p) for p in middle), line(last, done=True))
    assert message["content"] == [{"type": "text", "text": expected}]
    assert message["stop_reason"] == "end_turn"


@pytest.mark.parametrize(
    "pieces",
    [
        ['<tool_call>{"name": "Bash", "arguments": {"command": "ls"}}', "</tool_call>"],
        ['<tool_call>{"name": "Bash", "arguments": {"command": "ls"}}</tool_call>'],
        ['<tool_call>{"name": "Bash", "arguments": {"command": "ls"}}'],  # the closer never came
        ['{"name": "Bash", "arguments": {"command": "ls"}', "}"],
        ["<function=Bash><parameter=command>ls</parameter>", "</function>"],
    ],
)
def test_a_printed_call_completed_by_the_final_chunk_reaches_the_client(pieces):
    *middle, last = pieces
    message, _ = run(line("Listing.\n"), *(line(p) for p in middle), line(last, done=True))
    assert message["content"] == [{"type": "text", "text": "Listing.\n"},
                                  {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}}]
    assert message["stop_reason"] == "tool_use"


def test_a_printed_call_and_held_text_after_it_both_reach_the_client():
    message, _ = run(line('<tool_call>{"name": "Bash", "arguments": {"command": "ls"}}</tool_call>\n'),
                     line("then {", done=True))
    assert message["content"] == [{"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}},
                                  {"type": "text", "text": "\nthen {"}]


@pytest.mark.parametrize(
    "key, value, expected",
    [
        # a parameter the schema types is coerced to that type (the schema repair's job)
        ("limit", "100", 100),
        ("limit", " 100 ", 100),
        ("options", '{"a": [1]}', {"a": [1]}),
        # what does not fit the type stays the model's text: never null, never dropped
        ("limit", "null", "null"),
        ("limit", "-1.5", "-1.5"),
        ("limit", "100 lines", "100 lines"),
        # a parameter the schema does not type is the printed text, exactly
        ("anything", "100", "100"),
        ("anything", " 100 ", " 100 "),
        ("anything", "true", "true"),
        ("anything", "null", "null"),
        ("anything", '{"a": [1]}', '{"a": [1]}'),
        ("anything", "/tmp/a b.txt", "/tmp/a b.txt"),
    ],
)
def test_a_printed_parameter_value_reaches_the_tool_typed_by_the_schema_or_as_text(key, value, expected):
    printed = f"<function=Read><parameter={key}>{value}</parameter></function>"
    message, _ = run(line(printed), line("", done=True))
    assert message["content"] == [{"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {key: expected}}]


def test_printed_parameters_are_coerced_to_the_schema():
    printed = ("<function=Read>\n<parameter=file_path>\n/a.py\n</parameter>\n"
               "<parameter=limit>100</parameter>\n<parameter=options>{\"x\": 1}</parameter>\n</function>")
    message, _ = run(line(printed), line("", done=True))
    assert message["content"] == [{"type": "tool_use", "id": "toolu_1", "name": "Read",
                                   "input": {"file_path": "/a.py", "limit": 100, "options": {"x": 1}}}]


def test_without_tools_nothing_is_held_or_recognized():
    printed = '<tool_call>{"name": "Bash", "arguments": {"command": "ls"}}</tool_call> {'
    message, _ = run(line(printed), line("", done=True), tools=None)
    assert message["content"] == [{"type": "text", "text": printed}]


# --- message_start, tool input, usage, stop reason -------------------------------------------


def test_message_start_carries_a_fresh_message_id_when_none_is_given():
    ids = []
    for _ in range(2):
        t = ResponseTranslator(client_model="claude-sonnet-4-5", input_tokens=7)
        start = t.start()[0].payload()
        assert start["message"]["usage"]["input_tokens"] == 7
        ids.append(start["message"]["id"])
    assert all(isinstance(i, str) and i.startswith("msg_") and len(i) == 28 for i in ids)
    assert ids[0] != ids[1]
    given = ResponseTranslator(client_model="m", input_tokens=1, message_id="msg_given").start()[0].payload()
    assert given["message"]["id"] == "msg_given"


def test_tool_input_streams_as_compact_utf8_json():
    _, events = run(line(tool_calls=[{"function": {"name": "Bash", "arguments": {"command": "echo ä 🙂", "n": [1, 2]}}}]),
                    line("", done=True))
    deltas = [e.payload()["delta"] for e in events if e.NAME == "content_block_delta"]
    assert deltas == [{"type": "input_json_delta", "partial_json": '{"command":"echo ä 🙂","n":[1,2]}'}]


def test_the_output_token_estimate_counts_what_was_produced_until_ollama_counts():
    t = translator()
    t.start()
    assert t.approx_output_tokens == 0
    t.feed(line("x" * 40, thinking="y" * 40))
    assert t.approx_output_tokens == 20  # 80 characters at ~4 per token
    t.feed(line(tool_calls=[{"function": {"name": "Bash", "arguments": {"command": "ls"}}}]))
    assert t.approx_output_tokens == round((80 + len("Bash") + len(str({"command": "ls"}))) / 4)
    t.feed(line("", done=True))
    assert t.approx_output_tokens == 5  # Ollama's eval_count wins once known
    assert t.input_tokens == 10 and t.done_reason == "stop"


def test_the_stop_reason_is_recorded_for_the_request_log():
    for lines, expected in (
        ([line("hi"), line("", done=True)], "end_turn"),
        ([line("hi"), line("", done=True, done_reason="length")], "max_tokens"),
        ([line(tool_calls=[{"function": {"name": "Bash", "arguments": {}}}]), line("", done=True)], "tool_use"),
    ):
        t = translator()
        t.start()
        for data in lines:
            t.feed(data)
        assert t.machine.stop_reason == expected
    assert translator().machine.stop_reason is None


def test_a_missing_prompt_count_keeps_the_estimate_as_input_tokens():
    t = translator()
    events = t.start() + t.feed(line("hi") + line("", done=True, prompt_eval_count=0))
    delta = next(e.payload() for e in events if e.NAME == "message_delta")
    assert delta["usage"] == {"input_tokens": 42, "output_tokens": 5}


# --- faulty streams ------------------------------------------------------------------------


def test_a_stream_without_its_final_chunk_is_an_error_saying_so():
    t = translator()
    t.start()
    t.feed(line("partial"))
    with pytest.raises(UpstreamProtocolError) as caught:
        t.end()
    assert caught.value.message == "Ollama's stream ended before its final chunk"
    error = t.fail(caught.value)
    assert [e.NAME for e in error][-1] == "error"
    assert error[-1].payload()["error"]["message"] == "Ollama's stream ended before its final chunk"


def test_an_error_line_is_reported_with_ollamas_words():
    t = translator()
    t.start()
    with pytest.raises(UpstreamError) as caught:
        t.feed(line("ok") + json.dumps({"error": "model crashed"}).encode() + b"\n")
    assert caught.value.message == "Ollama failed mid-stream: model crashed"
    events = t.fail(caught.value)
    assert [e.NAME for e in events][-1] == "error"


def test_chunks_after_the_final_one_are_ignored_with_a_warning(caplog):
    caplog.set_level(logging.WARNING, logger="proxy.stream")
    message, _ = run(line("one"), line("", done=True), line("two"))
    assert message["content"] == [{"type": "text", "text": "one"}]
    assert [r.getMessage() for r in caplog.records] == ["ignored a chunk Ollama sent after its final chunk"]


def test_tool_ids_look_like_anthropics():
    t = ResponseTranslator(client_model="m", input_tokens=1, tools=TOOLS)
    events = t.start() + t.feed(line(tool_calls=[{"function": {"name": "Bash", "arguments": {}}}] * 2)
                                + line("", done=True))
    ids = [e.payload()["content_block"]["id"] for e in events if e.NAME == "content_block_start"]
    assert len(ids) == 2 and ids[0] != ids[1]
    assert all(re.fullmatch(r"toolu_[0-9a-f]{24}", i) for i in ids)


# --- printed calls and text in one chunk; counters the request log reads ---------------------


def test_text_and_a_printed_call_in_one_chunk_both_reach_the_client():
    message, _ = run(line('Listing.\n<tool_call>{"name": "Bash", "arguments": {"command": "ls"}}</tool_call>\nthen more'),
                     line("", done=True))
    assert message["content"] == [{"type": "text", "text": "Listing.\n"},
                                  {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}},
                                  {"type": "text", "text": "\nthen more"}]


def test_whitespace_between_text_pieces_is_kept():
    message, _ = run(line("Hello"), line("\n"), line(" "), line("world", done=True))
    assert message["content"] == [{"type": "text", "text": "Hello\n world"}]


def test_thinking_and_text_of_one_chunk_both_reach_the_client_when_tools_are_offered():
    message, _ = run(line("Answer.", thinking="Think."), line("", done=True))
    assert [b["type"] for b in message["content"]] == ["thinking", "text"]
    assert message["content"][1] == {"type": "text", "text": "Answer."}


def test_without_tools_text_is_streamed_at_once():
    t = translator(tools=None)
    t.start()
    deltas = [e.payload()["delta"] for e in t.feed(line("a {")) if e.NAME == "content_block_delta"]
    assert deltas == [{"type": "text_delta", "text": "a {"}]


def test_every_repaired_or_recovered_call_is_counted_and_logged():
    t = translator()
    t.start()
    t.feed(line('<tool_call>{"name": "Bash", "arguments": {"command": "ls"}}</tool_call>'))
    t.feed(line(tool_calls=[{"function": {"name": "bash", "arguments": {}}}]))
    t.feed(line(tool_calls=[{"function": {"name": "Bash", "arguments": {"command": "pwd"}}}]))
    t.feed(line("", done=True))
    assert t.repairs == 2
    # each entry names the dialect the call was printed in ("" for Ollama's own tool_calls)
    assert t.repair_log == [("Bash", ("recovered a call the model printed as text (hermes)",), "hermes"),
                            ("Bash", ("renamed tool 'bash' to 'Bash'",), "")]


def test_a_stream_cut_before_the_final_chunk_reports_no_counts():
    t = translator()
    t.start()
    assert (t.input_tokens, t.output_tokens, t.done_reason, t.done, t.produced_output) == (0, 0, "", False, False)
    t.feed(line(thinking="abcd"))
    t.feed(line(thinking="efgh"))
    assert t.approx_output_tokens == 2 and t.produced_output
    assert (t.input_tokens, t.output_tokens, t.done_reason, t.done) == (0, 0, "", False)


# --- a call written only in the thinking, and what a broken stream still delivers --------------


def events_to_message(events: list[Event]) -> dict[str, Any]:
    builder = MessageBuilder()
    builder.add(events)
    return builder.message()


def test_a_call_recovered_from_the_thinking_is_repaired_counted_and_logged(caplog):
    caplog.set_level(logging.INFO, logger="proxy.stream")
    t = translator(thinking=True)
    events = t.start()
    events += t.feed(line(thinking='First the file. <tool_call>{"name": "read", "arguments": {"file_path": "/a", "limit": "5"}}</tool_call>'))
    events += t.feed(line("", done=True)) + t.end()
    message = events_to_message(events)
    assert message["content"][1:] == [{"type": "tool_use", "id": "toolu_1", "name": "Read",
                                       "input": {"file_path": "/a", "limit": 5}}]
    assert message["stop_reason"] == "tool_use"
    assert t.repairs == 1
    # (the recognizer already matched the offered name's spelling)
    assert t.repair_log == [("Read", ("recovered a call the model wrote in its thinking",
                                      "coerced 'limit' from str to int"), "hermes")]
    assert "the answer was empty; recovered the call to Read that the model wrote in its thinking" in [
        r.getMessage() for r in caplog.records]


def test_the_last_call_in_the_thinking_is_the_one_taken():
    t = translator()
    events = t.start()
    events += t.feed(line(thinking='<tool_call>{"name": "Bash", "arguments": {"command": "ls"}}</tool_call> no, rather '
                                   '<tool_call>{"name": "Bash", "arguments": {"command": "pwd"}}</tool_call>'))
    events += t.feed(line("", done=True))
    message = events_to_message(events)
    assert [b for b in message["content"] if b["type"] == "tool_use"] == [
        {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "pwd"}}]


def test_thinking_without_a_call_and_an_empty_answer_stays_empty():
    t = translator()
    events = t.start() + t.feed(line(thinking="Hmm, nothing to do.")) + t.feed(line("", done=True))
    message = events_to_message(events)
    assert [b["type"] for b in message["content"]] == ["thinking"]
    assert message["stop_reason"] == "end_turn"
    assert (t.repairs, t.repair_log) == (0, [])


def test_a_broken_stream_sends_held_text_as_text_and_runs_no_half_call():
    t = translator()
    events = t.start() + t.feed(line("Running ")) + t.feed(line('<tool_call>{"name": "Bash", "arguments": {"comm'))
    events += t.fail(UpstreamProtocolError("Ollama's stream ended before its final chunk"))
    text = "".join(e.delta.get("text", "") for e in events if e.NAME == "content_block_delta")
    assert text == 'Running <tool_call>{"name": "Bash", "arguments": {"comm'
    assert not [e for e in events if e.NAME == "content_block_start" and e.content_block["type"] == "tool_use"]
    assert events[-1].NAME == "error"
    assert t.fail(UpstreamProtocolError("again")) == []  # once


def test_a_broken_stream_after_a_call_drops_only_the_blank_layout():
    t = translator()
    events = t.start() + t.feed(line('<tool_call>{"name": "Bash", "arguments": {"command": "ls"}}</tool_call>\n\n'))
    events += t.fail(UpstreamProtocolError("cut"))
    assert not [e for e in events if e.NAME == "content_block_delta" and e.delta.get("type") == "text_delta"]
    t = translator()
    events = t.start() + t.feed(line("\n\n"))
    events += t.fail(UpstreamProtocolError("cut"))
    text = "".join(e.delta.get("text", "") for e in events if e.NAME == "content_block_delta")
    assert text == "\n\n"  # blank text that follows no call is the answer so far


@pytest.mark.parametrize("asked", [True, False])
def test_a_broken_stream_inside_printed_thinking_keeps_it_thinking(asked):
    t = translator(thinking=asked)
    events = t.start() + t.feed(line("<think>planning the ste"))
    events += t.fail(UpstreamProtocolError("cut"))
    kinds = [e.content_block["type"] for e in events if e.NAME == "content_block_start"]
    thinking = "".join(e.delta.get("thinking", "") for e in events if e.NAME == "content_block_delta")
    assert kinds == (["thinking"] if asked else [])
    assert thinking == ("planning the ste" if asked else "")
    assert events[-1].NAME == "error"


def test_a_call_in_the_thinking_counts_only_in_the_models_own_dialects():
    from proxy.stream.dialects import BY_NAME

    hermes = '<tool_call>{"name": "Bash", "arguments": {"command": "ls"}}</tool_call>'
    for dialects, calls in [((BY_NAME["mistral"],), 0), ((BY_NAME["hermes"],), 1), (None, 1)]:
        t = translator(dialects=dialects)
        events = t.start() + t.feed(line(thinking="Plan: " + hermes)) + t.feed(line("", done=True))
        message = events_to_message(events)
        assert len([b for b in message["content"] if b["type"] == "tool_use"]) == calls, dialects
