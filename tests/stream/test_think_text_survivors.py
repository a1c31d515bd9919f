"""The thinking a model prints as ``<think>…</think>`` in its content, as the client gets it,
where the last mutation run of proxy/stream/think_text.py found nothing watching.

Through :class:`ResponseTranslator` (Ollama's NDJSON in, Anthropic events out), and for the
filter's own verdict at the end of an answer, through :class:`ThinkTagFilter`'s ``feed``/``finish``.
"""

from __future__ import annotations

from proxy.stream.events import Event
from proxy.stream.think_text import MAX_KEPT, ThinkTagFilter
from tests.stream.test_stream_edges import line, translator


def texts(events: list[Event]) -> str:
    return "".join(e.delta.get("text", "") for e in events if e.NAME == "content_block_delta")


def thinkings(events: list[Event]) -> str:
    return "".join(e.delta.get("thinking", "") for e in events if e.NAME == "content_block_delta")


def test_printed_thinking_keeps_its_indentation_only_the_newlines_after_the_tag_are_layout():
    t = translator(tools=None, thinking=True)
    events = t.start() + t.feed(line("<think>\n\n  - step one\n  - step two</think>Done."))
    events += t.feed(line("", done=True)) + t.end()
    assert thinkings(events) == "  - step one\n  - step two"
    assert texts(events) == "Done."


def test_printed_thinking_that_starts_with_an_x_keeps_it():
    t = translator(tools=None, thinking=True)
    events = t.start() + t.feed(line("<think>\nXML first, then YAML.</think>Use XML."))
    events += t.feed(line("", done=True)) + t.end()
    assert thinkings(events) == "XML first, then YAML."
    assert texts(events) == "Use XML."


def test_the_first_close_tag_ends_the_printed_thinking_a_later_one_is_the_answers_text():
    t = translator(tools=None, thinking=True)
    events = t.start() + t.feed(line("<think>short</think>Close it with </think> on its own line."))
    events += t.feed(line("", done=True)) + t.end()
    assert thinkings(events) == "short"
    assert texts(events) == "Close it with </think> on its own line."


def test_an_answer_released_as_too_long_for_thinking_leaves_nothing_for_the_end():
    # The template said the answer starts inside thinking; no </think> in 1 MiB: it was the
    # answer, released whole (with the cut-off "</thi" it ended on) — and only once.
    tags = ThinkTagFilter(starts_inside=True, keep_until_closed=True)
    assert tags.feed("a" * 1000) == ("", "")
    answer = "b" * MAX_KEPT + " ends with </thi"
    assert tags.feed(answer) == ("", "a" * 1000 + answer)
    assert tags.done
    assert tags.feed("nk> more") == ("", "nk> more")
    assert tags.finish() == ("", "")
