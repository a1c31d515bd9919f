"""Spotting a model caught in a loop: the same span of text, over and over. Sans-I/O.

A small model can fall into a degenerate loop — one line, one paragraph, one word repeated
— and with Claude Code's ``max_tokens`` of 128000 go on for an hour, holding the GPU and
growing the conversation. :class:`RepetitionGuard` watches the last ``window`` characters
of the answer (thinking and text alike) and reports when all of them are one span repeated
at least ``MIN_REPEATS`` times: a window of 4000 characters is about a thousand tokens of
nothing new, which no real answer writes (a long rule of ``=`` is 80, a table a few
hundred characters of varied cells).

Theory of operation: the window is periodic with period ``p`` exactly when it equals itself
shifted by ``p`` (``tail[p:] == tail[:-p]``). That is tried for every ``p`` up to a quarter
of the window, at most once per ``CHECK_EVERY`` new characters, cheapest test first (the
last characters one period back), so the cost is a few string comparisons per chunk.
"""

from __future__ import annotations

import dataclasses

__all__ = ["RepetitionGuard", "Repetition", "MIN_REPEATS"]

#: a span must fill the window this many times over
MIN_REPEATS = 4
#: characters between two checks
CHECK_EVERY = 128


@dataclasses.dataclass(frozen=True, slots=True)
class Repetition:
    #: length of the repeated span, in characters
    span: int
    #: how many times it filled the window
    repeats: int
    #: the span itself, cut to 80 characters (for the log)
    sample: str


class RepetitionGuard:
    """``feed(text)`` → a :class:`Repetition` once the last ``window`` characters are one
    span repeated, else None. ``window`` ≤ 0 turns the guard off."""

    def __init__(self, window: int) -> None:
        self.window = window
        self._tail = ""
        self._unchecked = 0

    def feed(self, text: str) -> Repetition | None:
        if self.window <= 0 or not text:
            return None
        self._tail = (self._tail + text)[-self.window:]
        self._unchecked += len(text)
        if len(self._tail) < self.window or self._unchecked < CHECK_EVERY:
            return None
        self._unchecked = 0
        return self._check()

    def _check(self) -> Repetition | None:
        tail = self._tail
        last = tail[-16:]
        for span in range(1, len(tail) // MIN_REPEATS + 1):
            if tail[-1 - span] != tail[-1] or tail[-16 - span:-span] != last:
                continue
            if tail[span:] == tail[:-span]:
                return Repetition(span=span, repeats=len(tail) // span, sample=tail[-span:][:80])
        return None
