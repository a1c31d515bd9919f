"""Where the last mutation run of proxy/stream/message.py and repetition.py found nothing
watching: the words of MessageBuilder's error, and the exact chunk at which the loop guard
(``loop_guard_chars``) ends the answer of a looping model — what the client has received
by then and what it is told.
"""

from __future__ import annotations

import pytest

from proxy.stream.events import Event
from proxy.stream.message import MessageBuilder
from proxy.stream.translator import ResponseTranslator
from tests.stream.test_stream_edges import events_to_message, line, translator


def test_a_message_asked_for_before_message_start_says_so():
    with pytest.raises(RuntimeError) as raised:
        MessageBuilder().message()
    assert str(raised.value) == "no message_start was seen"


def stream_char_by_char(t: ResponseTranslator, text: str) -> list[Event]:
    """Ollama sends ``text`` one character per chunk; stops feeding once the proxy ended it."""
    events = t.start()
    for char in text:
        events += t.feed(line(char))
        if t.done:
            break
    return events


def test_a_loop_guard_smaller_than_one_check_first_looks_after_128_characters():
    # loop_guard_chars 100: the window is full after 100 characters, but the guard checks
    # every 128 new characters, so the 128th chunk is the one that ends the answer
    t = translator(tools=None, loop_guard_chars=100)
    events = stream_char_by_char(t, "ab" * 200)
    message = events_to_message(events)
    assert message["content"] == [{"type": "text", "text": "ab" * 64}]
    assert message["stop_reason"] == "max_tokens"
    assert t.loop is not None and (t.loop.span, t.loop.sample) == (2, "ab")


def test_after_a_check_found_no_loop_the_next_comes_128_characters_later():
    # loop_guard_chars 200: checked at 200 characters (not a loop yet: 127 x's, then "ab"s),
    # then at 328; the last 200 characters are "ab"s from the 327th on
    t = translator(tools=None, loop_guard_chars=200)
    events = stream_char_by_char(t, "x" * 127 + "ab" * 200)
    message = events_to_message(events)
    assert message["content"] == [{"type": "text", "text": "x" * 127 + "ab" * 100 + "a"}]
    assert message["stop_reason"] == "max_tokens"
    assert t.loop is not None and t.loop.span == 2
