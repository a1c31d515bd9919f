"""The client's ``stop_sequences``, matched by the proxy. Sans-I/O.

Ollama can stop at a string too (``options.stop``), but it then removes the string and
ends with ``done_reason: "stop"``, exactly as when the model ends on its own: the client
could not be told which sequence matched, and Anthropic's answer says it
(``stop_reason: "stop_sequence"``, ``stop_sequence: "…"``). Claude Code's auto-mode
check, for one, ends its verdict with the stop sequence ``</severity>``. So the proxy
matches the answer's text itself: :class:`StopMatcher` holds back only the text that may
still begin a sequence, and on a match returns the text before it (the sequence itself is
not part of the answer, as with Anthropic's API); the relay then closes Ollama's
connection, which stops the generation.
"""

from __future__ import annotations

__all__ = ["StopMatcher"]


class StopMatcher:
    """``feed(text)`` → (text to send now, the sequence that matched or None)."""

    def __init__(self, sequences: list[str]) -> None:
        self.sequences = [s for s in sequences if s]
        self._held = ""

    def feed(self, text: str) -> tuple[str, str | None]:
        buf = self._held + text
        first: tuple[int, str] | None = None
        for sequence in self.sequences:
            at = buf.find(sequence)
            if at >= 0 and (first is None or at < first[0]):
                first = (at, sequence)
        if first is not None:
            self._held = ""
            return buf[: first[0]], first[1]
        hold = 0
        for sequence in self.sequences:
            for size in range(min(len(sequence) - 1, len(buf)), hold, -1):
                if buf.endswith(sequence[:size]):
                    hold = size
                    break
        self._held = buf[len(buf) - hold:] if hold else ""
        return buf[: len(buf) - hold], None

    def finish(self) -> str:
        """What is still held when the answer ends: it never became a sequence."""
        held, self._held = self._held, ""
        return held
