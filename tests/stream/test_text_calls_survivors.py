"""When a long printed call reaches the client: as soon as it is complete, not at the end.

A call over ``RECHECK_FROM`` characters is judged again only as it grows by an eighth or
when a piece holds a ``>`` (a closing tag may have come). Claude Code runs a call as soon as
its block is complete; a call held until Ollama's last chunk would run only after the model
stopped talking, and text the model prints after it would wait behind it."""

from __future__ import annotations

import json

import pytest

from proxy.stream.dialects import BY_NAME, DIALECTS
from proxy.stream.text_calls import RECHECK_FROM, TRAILERS, TextCall, TextCallFilter, TextPiece

CONTENT = "x = 1\n" * (RECHECK_FROM // 3)  # a call well past RECHECK_FROM
CALL = "<tool_call>" + json.dumps({"name": "Write", "arguments": {"file_path": "a.py", "content": CONTENT}}) + "</tool_call>"


def test_a_long_call_comes_out_with_the_piece_that_closes_it() -> None:
    recognizer = TextCallFilter(["Write"])
    body, closer = CALL[: -len("</tool_call>")], "</tool_call>"
    for start in range(0, len(body), 16):
        assert recognizer.feed(body[start : start + 16]) == []  # held: not complete yet
    out = recognizer.feed(closer)
    assert [type(item) for item in out] == [TextCall]
    assert (out[0].name, out[0].arguments) == ("Write", {"file_path": "a.py", "content": CONTENT})
    assert recognizer.feed(" Done.") == [TextPiece(" Done.")]
    assert recognizer.finish() == []


def test_text_after_a_long_call_is_not_held_behind_it() -> None:
    recognizer = TextCallFilter(["Write"])
    out = []
    for start in range(0, len(CALL), 16):
        out += recognizer.feed(CALL[start : start + 16])
    out += recognizer.feed("\nI wrote a.py.")
    assert [type(item) for item in out][:1] == [TextCall]
    assert "".join(item.text for item in out if isinstance(item, TextPiece)) == "\nI wrote a.py."


def test_an_end_of_turn_token_without_a_call_before_it_is_text() -> None:
    # An end-of-turn token the model prints mid-answer is its text, byte for byte; only
    # right after a call is it dropped. No dialect's opener (nor another such token) is a
    # prefix of one, so no recognizer could claim it either.
    openers = [opener for dialect in DIALECTS for opener in dialect.openers] + list(TRAILERS)
    assert not [(t, o) for t in TRAILERS for o in openers if t != o and t.startswith(o)]
    for trailer in TRAILERS:
        recognizer = TextCallFilter(["Bash"])
        text = f"The model ends with {trailer} here."
        out = recognizer.feed(text) + recognizer.finish()
        assert "".join(item.text for item in out if isinstance(item, TextPiece)) == text
        assert not [item for item in out if isinstance(item, TextCall)]


def test_a_long_bare_json_call_comes_out_once_an_eighth_more_text_arrived() -> None:
    # A call with no closing tag cannot say it is complete: past RECHECK_FROM it is judged
    # again once the held text grew by an eighth of what was judged last (docs/TOOLS.md),
    # so the text after it waits at most that long, not until Ollama's last chunk.
    call = json.dumps({"name": "Bash", "arguments": {"command": "echo " + "x" * 2 * RECHECK_FROM}})
    recognizer = TextCallFilter(["Bash"])
    assert recognizer.feed(call[:-1]) == []  # judged: still open
    judged = len(call) - 1
    out = recognizer.feed(call[-1]) + recognizer.feed("\n")  # complete: may come out now
    held, pieces = judged + 2, 0
    while not out and pieces < judged:
        out = recognizer.feed("D")
        held, pieces = held + 1, pieces + 1
    assert held <= judged + judged // 8, (held, judged)  # at the latest
    assert isinstance(out[0], TextCall) and out[0].arguments == {"command": "echo " + "x" * 2 * RECHECK_FROM}
    assert "".join(item.text for item in out[1:] + recognizer.finish() if isinstance(item, TextPiece)) == "\n" + "D" * pieces


@pytest.mark.parametrize("before", [
    ["Run this:\nthen this\n"],  # one piece of several lines: the last line is the one that counts
    ["Run this:\n", "  "],  # an indented fence: spaces keep the line blank
], ids=["lines-in-one-piece", "indented"])
def test_a_call_in_a_fence_after_plain_text_pieces_stays_text(before: list[str]) -> None:
    # Plain pieces (no opener, no backtick) skip the scan; the fence after them must still
    # be seen as one: opened at the start of a line. Read as inline code, the example's
    # call would be run.
    example = "```\n" + '<tool_call>{"name": "Bash", "arguments": {"command": "rm -rf build"}}</tool_call>' + "\n```\nDone."
    recognizer = TextCallFilter(["Bash"], (BY_NAME["hermes"],))
    out = [item for piece in before + [example] for item in recognizer.feed(piece)] + recognizer.finish()
    assert not [item for item in out if isinstance(item, TextCall)]
    assert "".join(item.text for item in out if isinstance(item, TextPiece)) == "".join(before) + example


def test_text_inside_a_fence_streams_at_once_even_ending_like_a_tag() -> None:
    # Inside code nothing is a call, so nothing there is held back: a "<" at the end of a
    # piece could start a tag outside code, not inside.
    code = "```python\nx = 1 <"
    recognizer = TextCallFilter(["Bash"])
    out = recognizer.feed(code)
    assert "".join(item.text for item in out if isinstance(item, TextPiece)) == code
    assert recognizer.holding == ""


def test_a_call_exactly_at_the_hold_limit_is_still_held_and_run(monkeypatch: pytest.MonkeyPatch) -> None:
    from proxy.stream import text_calls

    monkeypatch.setattr(text_calls, "MAX_HOLD", 200)
    start = '<tool_call>{"name": "Bash", "arguments": {"command": "'
    recognizer = TextCallFilter(["Bash"])
    assert recognizer.feed(start + "x" * (200 - len(start))) == []  # 200 characters: held
    out = recognizer.feed('"}}</tool_call>') + recognizer.finish()
    assert [(item.name, item.arguments) for item in out if isinstance(item, TextCall)] == [
        ("Bash", {"command": "x" * (200 - len(start))})]


def test_openers_are_one_character_or_three_and_more() -> None:
    # A call's opener that turned out not to start one goes out as text whole, or one
    # character of it for "{" and "[" (the next may start a call). The length-2 case is
    # never met; a dialect bringing one would make TextCallFilter._drain's survivors 90
    # and 96 (docs/TESTING.md) meaningful again.
    assert {len(opener) for dialect in DIALECTS for opener in dialect.openers} & {0, 2} == set()
