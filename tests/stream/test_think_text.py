"""Thinking a model printed into its content as <think>…</think>: what becomes thinking, what
becomes the answer, and what is held while it streams (proxy/stream/think_text.py)."""

from __future__ import annotations

import pytest

from proxy.stream import think_text
from proxy.stream.think_text import ThinkTagFilter


def split(pieces: list[str], **options) -> tuple[str, str, int]:
    f = ThinkTagFilter(**options)
    thinking = text = ""
    for piece in pieces:
        t, x = f.feed(piece)
        thinking, text = thinking + t, text + x
    t, x = f.finish()
    return thinking + t, text + x, f.thinking_chars


@pytest.mark.parametrize(
    "pieces, thinking, text",
    [
        (["<think>plan</think>answer"], "plan", "answer"),
        (["<think>\n\nplan</think>\n\nanswer"], "plan", "answer"),  # the layout newlines go
        (["  \n<think>plan</think>answer"], "plan", "answer"),  # blank text before it
        (["<thi", "nk>", "\n", "\nplan", "</thi", "nk>", "\n", "answer"], "plan", "answer"),
        (list("<think>plan</think>answer"), "plan", "answer"),
        (["<think>a < b </thinking> c</think>x"], "a < b </thinking> c", "x"),
        (["answer <think>x</think>"], "", "answer <think>x</think>"),  # only the start opens it
        (["<thinking>x"], "", "<thinking>x"),
        (["<thi"], "", "<thi"),  # a cut-off tag at the end is text
        (["  "], "", "  "),
        (["<think>never closed"], "never closed", ""),  # unclosed thinking stays thinking
        (["<think>never </thi"], "never </thi", ""),
        (["<think>\n", "\n", "plan</think>ok"], "plan", "ok"),
        (["<think>plan</think>", "\n\n", "answer </think> again"], "plan", "answer </think> again"),
        (["<think>plan</think>"], "plan", ""),
    ],
)
def test_thinking_at_the_start_is_split_from_the_answer(pieces, thinking, text):
    got_thinking, got_text, chars = split(pieces)
    assert (got_thinking, got_text) == (thinking, text)
    assert chars == len(thinking)


@pytest.mark.parametrize(
    "pieces, thinking, text",
    [
        (["plan</think>answer"], "plan", "answer"),  # the template opened it
        (["\nplan</think>\nanswer"], "\nplan", "answer"),
        (["plan</thi", "nk>answer"], "plan", "answer"),
        (["plan, no close"], "plan, no close", ""),
    ],
)
def test_thinking_the_template_opened_ends_at_the_close_tag(pieces, thinking, text):
    assert split(pieces, starts_inside=True)[:2] == (thinking, text)


def test_held_thinking_the_client_did_not_ask_for_is_removed_or_was_the_answer():
    # closed: out of the answer (what was held is dropped here; the last piece goes out as
    # thinking, which the translator sends only to a client that asked), counted for the log
    assert split(["plan", " more</think>", "answer"], starts_inside=True, keep_until_closed=True) == (" more", "answer", 9)
    # never closed: it was the answer, released whole at the end
    assert split(["just ", "the answer </thi"], starts_inside=True, keep_until_closed=True) == ("", "just the answer </thi", 0)
    # keep_until_closed alone (the template did not open thinking) changes nothing
    assert split(["<think>p</think>a"], keep_until_closed=True) == ("p", "a", 1)


def test_held_thinking_is_released_as_the_answer_beyond_the_limit(monkeypatch):
    monkeypatch.setattr(think_text, "MAX_KEPT", 10)
    f = ThinkTagFilter(starts_inside=True, keep_until_closed=True)
    assert f.feed("0123456789") == ("", "")  # 10: still held
    assert f.feed("a</th") == ("", "0123456789a</th")  # 11 > 10: it is the answer, all of it
    assert f.done
    assert f.feed("ink>x") == ("", "ink>x")


def test_only_a_possible_tag_is_held_while_streaming():
    f = ThinkTagFilter()
    assert f.feed("  ") == ("", "")
    assert f.feed("<th") == ("", "")
    assert f.feed("ink>ab</") == ("ab", "")
    assert f.feed("x") == ("</x", "")
    assert f.feed("</think>") == ("", "")
    assert not f.done  # blank so far after the close: the answer has not begun
    assert f.feed("\n") == ("", "")
    assert f.feed("ok") == ("", "ok")
    assert f.done
    assert f.feed("<think>") == ("", "<think>")
    assert f.finish() == ("", "")
    h = ThinkTagFilter()
    assert h.feed("<think>a</thi") == ("a", "")
    assert h.finish() == ("</thi", "")  # unclosed thinking stays thinking, given out once
    assert h.finish() == ("", "")
    assert h.done  # after the end everything is text, as it came
    assert h.feed("  x") == ("", "  x")
    g = ThinkTagFilter()
    assert g.feed("hi") == ("", "hi")
    assert g.done
