"""What the client receives where the last mutation run of the translator found nothing
watching: the blank lines after a printed call, the trailing text after the answer's
last call, and the final chunk that completes a repeated span.

Everything goes through :class:`ResponseTranslator`: Ollama's NDJSON in, Anthropic events out.
"""

from __future__ import annotations

from proxy.stream.events import Event
from tests.stream.test_stream_edges import events_to_message, line, translator

CALL = '<tool_call>{"name": "Bash", "arguments": {"command": "ls"}}</tool_call>'


def texts(events: list[Event]) -> str:
    return "".join(e.delta.get("text", "") for e in events if e.NAME == "content_block_delta")


# --- the text around a call the model printed ------------------------------------------------


def test_every_blank_line_between_a_printed_call_and_the_text_after_it_reaches_the_client():
    t = translator()
    events = t.start()
    for piece in (CALL, "\n", "\n", "Listed."):
        events += t.feed(line(piece))
    events += t.feed(line("", done=True)) + t.end()
    message = events_to_message(events)
    assert [b["type"] for b in message["content"]] == ["tool_use", "text"]
    # the newlines came one chunk each: held while they might be layout, all sent with the text
    assert message["content"][1]["text"] == "\n\nListed."


def test_blank_text_after_the_text_that_follows_a_call_is_sent_with_its_chunk():
    t = translator()
    events = t.start() + t.feed(line(CALL)) + t.feed(line("Listed."))
    assert texts(events) == "Listed."
    # once text followed the call, blank text is text like any other: not held back
    blank = t.feed(line("\n\n"))
    assert texts(blank) == "\n\n"
    events += blank + t.feed(line("", done=True)) + t.end()
    assert events_to_message(events)["content"][1]["text"] == "Listed.\n\n"


# --- the loop guard and Ollama's own final chunk -----------------------------------------------


def test_a_repeated_span_completed_by_ollamas_final_chunk_ends_as_ollama_ended_it():
    # Ollama itself ended the answer: its stop reason and its counts, not a loop verdict
    t = translator(tools=None, loop_guard_chars=400)
    events = t.start() + t.feed(line("ab" * 100))
    events += t.feed(line("ab" * 100, done=True)) + t.end()
    message = events_to_message(events)
    assert message["stop_reason"] == "end_turn"
    assert message["usage"]["output_tokens"] == 5  # Ollama's eval_count, not an estimate
    assert message["content"] == [{"type": "text", "text": "ab" * 200}]
    assert t.loop is None and t.done_reason == "stop"
