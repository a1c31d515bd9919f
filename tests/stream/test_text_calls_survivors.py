"""When a long printed call reaches the client: as soon as it is complete, not at the end.

A call over ``RECHECK_FROM`` characters is judged again only as it grows by an eighth or
when a piece holds a ``>`` (a closing tag may have come). Claude Code runs a call as soon as
its block is complete; a call held until Ollama's last chunk would run only after the model
stopped talking, and text the model prints after it would wait behind it."""

from __future__ import annotations

import json

from proxy.stream.dialects import DIALECTS
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
