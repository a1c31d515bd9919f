"""A tool call a reasoning model wrote only in its thinking. Sans-I/O.

Some reasoning models put their one tool call inside the thinking and then answer with
nothing: no text, no call. Claude Code then nudges "[Your previous response had no visible
output…]" and the turn is wasted. When — and only when — the final answer is empty, the
translator asks :func:`call_in_thinking` for the call, using the same recognizers as calls
printed as text (``proxy/stream/text_calls.py``). An answer with any text or call keeps its
thinking as thinking: what a model wrote there beside a real answer is never run.

This is the one place that reaches the text-call recognizers for thinking: point it at
another recognizer (a dialect registry) here.
"""

from __future__ import annotations

from .text_calls import TextCall, TextCallFilter

__all__ = ["call_in_thinking", "MAX_THINKING"]

#: thinking kept for the search (its end: the call comes last)
MAX_THINKING = 64 * 1024


def call_in_thinking(thinking: str, tool_names: list[str]) -> TextCall | None:
    """The last call to an offered tool written in ``thinking``, or None."""
    recognizer = TextCallFilter(tool_names)
    pieces = recognizer.feed(thinking) + recognizer.finish()
    calls = [piece for piece in pieces if isinstance(piece, TextCall)]
    return calls[-1] if calls else None
