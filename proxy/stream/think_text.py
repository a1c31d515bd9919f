"""Thinking a model printed into its content as ``<think>…</think>``, split out. Sans-I/O.

When Ollama does not separate a model's reasoning (an older Ollama, a custom Modelfile), it
arrives in the content: ``<think>…</think>`` at the start of the answer, or — when the chat
template itself wrote ``<think>`` at the end of the prompt — everything up to ``</think>``.
:class:`ThinkTagFilter` splits that off while streaming, holding back only a possible
``<think>`` or ``</think>`` cut off at the end of a piece.

Only the *start* of the answer can open thinking (after nothing but blank text): a
``<think>`` tag mentioned later in prose stays text.
"""

from __future__ import annotations

__all__ = ["ThinkTagFilter"]

_OPEN, _CLOSE = "<think>", "</think>"


def _cut(text: str, tag: str) -> int:
    """Where a prefix of ``tag`` cut off by the end of ``text`` starts (len if none)."""
    for i in range(max(0, len(text) - len(tag) + 1), len(text)):
        if tag.startswith(text[i:]):
            return i
    return len(text)


class ThinkTagFilter:
    """``feed(text)`` / ``finish()`` → ``(thinking, text)`` to emit now."""

    def __init__(self, *, starts_inside: bool = False) -> None:
        self._state = "inside" if starts_inside else "before"
        self._held = ""
        #: characters of thinking split off (for the log when they are dropped)
        self.thinking_chars = 0

    @property
    def done(self) -> bool:
        """Nothing more can open or close thinking: everything is text from now on."""
        return self._state == "done"

    def feed(self, text: str) -> tuple[str, str]:
        if self._state == "done":
            return "", text
        buf, self._held = self._held + text, ""
        if self._state == "before":
            stripped = buf.lstrip()
            if not stripped or _OPEN.startswith(stripped):
                self._held = buf  # blank so far, or a cut-off <think>: may still open
                return "", ""
            if not stripped.startswith(_OPEN):
                self._state = "done"
                return "", buf
            self._state, buf = "inside", stripped[len(_OPEN) :].lstrip("\n")
        if self._state == "inside":
            end = buf.find(_CLOSE)
            if end < 0:
                cut = _cut(buf, _CLOSE)
                self._held = buf[cut:]
                self.thinking_chars += cut
                return buf[:cut], ""
            self.thinking_chars += end
            self._state = "after"
            thinking, buf = buf[:end].rstrip("\n"), buf[end + len(_CLOSE) :]
            return thinking, self._after(buf)
        return "", self._after(buf)

    def _after(self, buf: str) -> str:
        """Just after ``</think>``: the blank lines before the answer are layout."""
        answer = buf.lstrip()
        if answer:
            self._state = "done"
        return answer

    def finish(self) -> tuple[str, str]:
        """The end of the answer: what is held goes out (unclosed thinking stays thinking)."""
        held, self._held = self._held, ""
        state, self._state = self._state, "done"
        if state == "inside":
            self.thinking_chars += len(held)
            return held, ""
        return "", held
