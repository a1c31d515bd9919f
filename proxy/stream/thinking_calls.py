"""A tool call a reasoning model wrote only in its thinking. Sans-I/O.

Some reasoning models put their one tool call inside the thinking and then answer with
nothing: no text, no call. Claude Code then nudges "[Your previous response had no visible
output…]" and the turn is wasted. When — and only when — the final answer is empty, the
translator asks :func:`call_in_thinking` for the call, using the same recognizers as calls
printed as text (``proxy/stream/text_calls.py``). An answer with any text or call keeps its
thinking as thinking: what a model wrote there beside a real answer is never run.

This is the one place that reaches the text-call recognizers (the dialect registry of
``proxy/stream/dialects/``) for thinking.
"""

from __future__ import annotations

from .dialects import Dialect
from .text_calls import TextCall, recover_calls_from_text

__all__ = ["call_in_thinking", "MAX_THINKING"]

#: thinking kept for the search (its end: the call comes last)
MAX_THINKING = 64 * 1024


def call_in_thinking(
    thinking: str, tool_names: list[str], dialects: tuple[Dialect, ...] | None = None
) -> TextCall | None:
    """The last call to an offered tool written in ``thinking``, in one of ``dialects``
    (the model's own, best first; None: all), or None."""
    calls = [piece for piece in recover_calls_from_text(thinking, tool_names, dialects=dialects)
             if isinstance(piece, TextCall)]
    return calls[-1] if calls else None
