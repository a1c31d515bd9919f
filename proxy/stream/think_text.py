"""Thinking a model printed into its content as ``<think>…</think>``, split out. Sans-I/O.

When Ollama does not separate a model's reasoning (an older Ollama, a custom Modelfile), it
arrives in the content: ``<think>…</think>`` at the start of the answer, or — when the chat
template itself wrote ``<think>`` at the end of the prompt — everything up to ``</think>``.
:class:`ThinkTagFilter` splits that off while streaming, holding back only a possible
``<think>`` or ``</think>`` cut off at the end of a piece.

Only the *start* of the answer can open thinking (after nothing but blank text): a
``<think>`` tag mentioned later in prose stays text. When only the template says the answer
starts inside thinking and the client did not ask for thinking, the text is held until
``</think>`` (then removed); if it never comes, it was the answer and is released as text.
"""

from __future__ import annotations

__all__ = ["ThinkTagFilter"]

_OPEN, _CLOSE = "<think>", "</think>"
#: thinking held (to be removed) beyond this is taken for the answer and released
MAX_KEPT = 1024 * 1024


def _cut(text: str, tag: str) -> int:
    """Where a prefix of ``tag`` cut off by the end of ``text`` starts (len if none)."""
    for i in range(max(0, len(text) - len(tag) + 1), len(text)):
        if tag.startswith(text[i:]):
            return i
    return len(text)


class ThinkTagFilter:
    """``feed(text)`` / ``finish()`` → ``(thinking, text)`` to emit now."""

    def __init__(self, *, starts_inside: bool = False, keep_until_closed: bool = False) -> None:
        self._state = "inside" if starts_inside else "before"
        self._opening = False
        self._held = ""
        #: ``starts_inside`` is only the template's word: with ``keep_until_closed`` the
        #: thinking is held, not emitted, and if ``</think>`` never comes it was the answer
        self._keep = starts_inside and keep_until_closed
        self._kept: list[str] = []
        self._kept_chars = 0
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
            self._state, buf, self._opening = "inside", stripped[len(_OPEN) :], True
        if self._state == "inside":
            if self._opening:  # the newlines right after <think> are layout
                buf = buf.lstrip("\n")
                self._opening = not buf
            end = buf.find(_CLOSE)
            if end < 0:
                cut = _cut(buf, _CLOSE)
                self._held = buf[cut:]
                if self._keep:
                    self._kept.append(buf[:cut])
                    self._kept_chars += cut
                    if self._kept_chars > MAX_KEPT:  # too long to be thinking: it is the answer
                        self._state, text = "done", "".join(self._kept) + self._held
                        self._kept, self._held = [], ""
                        return "", text
                    return "", ""
                self.thinking_chars += cut
                return buf[:cut], ""
            if self._keep:
                self.thinking_chars += self._kept_chars
                self._kept = []
            self.thinking_chars += end
            self._state = "after"
            thinking, buf = buf[:end], buf[end + len(_CLOSE) :]
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
        if state == "inside" and self._keep:  # the template opened thinking, the model never closed it
            kept, self._kept = "".join(self._kept) + held, []
            return "", kept
        if state == "inside":
            self.thinking_chars += len(held)
            return held, ""
        return "", held
