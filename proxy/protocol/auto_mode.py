"""Claude Code's auto-mode safety check, as it reaches the proxy. Sans-I/O.

Auto mode (Claude Code's default permission mode) checks each risky action before running
it. Anthropic's servers do that check; behind the proxy, with
``CLAUDE_CODE_AUTO_MODE_SERVER=0`` (the ``claude`` launcher sets it), Claude Code sends its
own check request instead: a long, fixed system prompt ("You are a security monitor for
autonomous AI coding agents…"), the transcript as the user message, no tools, thinking off,
a small ``max_tokens`` and a stop sequence: ``</severity>``, expecting
``<severity>N</severity>`` (0–100; 50 and above blocks), or — as 2.1.328 does unless its
server-side configuration says otherwise — ``</block>``, expecting ``<block>yes|no``; a
second stage without a stop sequence lets the model think first.
Any other answer leaves the action unchecked ("Not run · auto mode's check had no usable
answer"): the safe outcome, which the proxy never changes — it never writes or rewrites a
verdict. It only says so, in the log and the live view, because a model that cannot follow
the format makes auto mode stop at every checked action.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["AUTO_MODE_MODEL", "is_auto_mode_check", "has_verdict"]

#: The model name the launcher gives Claude Code for its checks: a model-map entry of its own
AUTO_MODE_MODEL = "claude-auto-mode"

#: the check's stop sequence → the verdict Claude Code reads in its answer
_VERDICTS = {
    "</severity>": re.compile(r"<severity>\s*\d+(?:\.\d+)?"),
    "</block>": re.compile(r"<block>\s*(?:yes|no)\b", re.IGNORECASE),
}
_THINKING = re.compile(r"<thinking>.*?</thinking>", re.DOTALL)


def is_auto_mode_check(body: dict[str, Any]) -> str | None:
    """The verdict's closing tag when a validated request is auto mode's check (known by
    its stop sequence), else None."""
    stop: str  # validated: a list of strings
    for stop in body.get("stop_sequences") or ():
        if stop in _VERDICTS:
            return stop
    return None


def has_verdict(text: str, form: str) -> bool:
    """Whether a check's answer holds a verdict of ``form`` (its closing tag) that Claude
    Code can read."""
    return _VERDICTS[form].search(_THINKING.sub("", text)) is not None
