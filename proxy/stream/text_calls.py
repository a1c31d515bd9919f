"""Tool calls a model printed as text, turned into real calls while the text streams. Sans-I/O.

Small models, or Ollama when its template parser misses, put a call into the content in the
model family's own dialect (``<tool_call>{…}</tool_call>``, ``[TOOL_CALLS]…``, DeepSeek's
``<｜tool▁calls▁begin｜>``, harmony, pythonic lists, bare JSON, …). :class:`TextCallFilter`
sits between Ollama's content and the state machine and recognizes them with the dialect
recognizers of :mod:`proxy.stream.dialects`, for tools the client offered only.

Theory of operation: text flows through untouched until one of the dialects' *openers*
(found with one compiled regex, or cut off at the end of what came so far). From there the
filter holds the text and asks the dialects sharing that opener: still possibly a call
(keep holding), certainly not (release the opener as text and look again after it), or
whole calls (emit them). So only text that may still become a call is held back, and it is
released the moment it cannot. :meth:`TextCallFilter.finish` releases or completes what is
held at the end.

An *example* is never a call: the filter follows the markdown of the text it released, and
nothing inside an inline code span or a fenced block that is not a call block (say
```` ```python ````) is recognized; a call with no marker at all (bare JSON, a pythonic
list) counts only at the end of its line, not mid-sentence; and a call naming a tool the
request did not offer stays text byte for byte.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from typing import Any, Iterable

from .dialects.base import MORE, NO, Dialect, Found, Tools
from .dialects.registry import DIALECTS

__all__ = ["TextCallFilter", "TextPiece", "TextCall", "recover_calls_from_text"]

#: Held text beyond this is released as text: no real call is this long before it parses.
MAX_HOLD = 256 * 1024
#: Held text longer than this (a big Write still arriving) is judged again only after it grew
#: by an eighth, or when a tag may have closed: so a long call costs O(n log n), not O(n²).
#: Shorter text is judged on every piece, so a non-call is released at once.
RECHECK_FROM = 1024

#: end-of-turn tokens a model may print right after its call; dropped there, text elsewhere
TRAILERS = (
    "<|eom_id|>", "<|eot_id|>", "<|call|>", "<|end|>", "<|return|>", "</s>", "<|im_end|>",
    "<｜end▁of▁sentence｜>", "<|END_OF_TURN_TOKEN|>", "<end_of_turn>", "<|tool_calls_section_end|>",
)


@dataclasses.dataclass(frozen=True, slots=True)
class TextPiece:
    text: str


@dataclasses.dataclass(frozen=True, slots=True)
class TextCall:
    name: str
    arguments: Any
    #: the text the model printed for it (for the log)
    source: str
    #: the dialect it was printed in (for the log and the live view)
    dialect: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class _Table:
    """Openers of a set of dialects, compiled once per set."""

    search: re.Pattern[str]
    #: any character an opener starts with (text without one passes straight through)
    firsts: re.Pattern[str]
    #: every proper prefix of an opener (text ending in one may still become it)
    prefixes: frozenset[str]
    longest: int
    #: first character → (opener, dialects with it), longest opener first
    by_first: dict[str, tuple[tuple[str, tuple[Dialect, ...]], ...]]


@functools.lru_cache(maxsize=64)
def _table(dialects: tuple[Dialect, ...]) -> _Table:
    owners: dict[str, list[Dialect]] = {}
    for dialect in dialects:
        for opener in dialect.openers:
            owners.setdefault(opener, []).append(dialect)
    for trailer in TRAILERS:
        owners.setdefault(trailer, [])
    openers = sorted(owners, key=len, reverse=True)
    by_first: dict[str, list[tuple[str, tuple[Dialect, ...]]]] = {}
    for opener in openers:
        by_first.setdefault(opener[0], []).append((opener, tuple(owners[opener])))
    return _Table(
        search=re.compile("|".join(re.escape(o) for o in openers)),
        firsts=re.compile("[" + re.escape("".join(sorted({o[0] for o in openers} | {"`"}))) + "]"),
        prefixes=frozenset(o[:i] for o in openers for i in range(1, len(o))),
        longest=max(len(o) for o in openers),
        by_first={k: tuple(v) for k, v in by_first.items()},
    )


_MARKDOWN = re.compile(r"`+|\n")


class TextCallFilter:
    """``feed(text)`` and ``finish()`` → a list of :class:`TextPiece` and :class:`TextCall`.

    ``tool_names``: the tools the request offered (or a :class:`Tools`); ``dialects``: the
    recognizers to use, best first (default: all; see
    :func:`~proxy.stream.dialects.dialects_for_template`)."""

    def __init__(self, tool_names: Iterable[str] | Tools, dialects: tuple[Dialect, ...] | None = None) -> None:
        self._tools = tool_names if isinstance(tool_names, Tools) else Tools(tool_names)
        self._table = _table(tuple(dialects) if dialects else DIALECTS)
        self._held = ""
        self._recheck_at = 0
        self._after_call = False
        # the markdown context of the text released so far
        self._in_fence = False
        self._in_code = False
        self._blank_line = True

    @property
    def holding(self) -> str:
        return self._held

    def feed(self, text: str) -> list[TextPiece | TextCall]:
        if len(self._held) >= RECHECK_FROM and len(self._held) + len(text) < self._recheck_at and ">" not in text:
            # a long call still arriving: judged again once it grew by an eighth, or at a tag's end
            self._held += text
            return []
        if self._held or not (
            self._table.firsts.search(text) is None
            or "`" not in text and (self._in_fence or self._in_code and "\n" not in text)
        ):
            self._held += text
            return self._drain(final=False)
        if not text:
            return []
        # the common case: nothing held and nothing that may start a call
        if self._after_call and text.strip():
            self._after_call = False
        if "\n" in text:
            self._in_code = False
            self._blank_line = not text[text.rfind("\n") + 1 :].strip(" \t")
        elif self._blank_line and text.strip(" \t"):
            self._blank_line = False
        return [TextPiece(text)]

    def finish(self) -> list[TextPiece | TextCall]:
        return self._drain(final=True)

    # -- scanning ----------------------------------------------------------------------

    def _drain(self, *, final: bool) -> list[TextPiece | TextCall]:
        out: list[TextPiece | TextCall] = []
        text: list[str] = []
        buf = self._held
        table = self._table
        while buf:
            if self._in_fence or self._in_code:  # inside code nothing is a call: skip to a backtick
                stop = re.search("`" if self._in_fence else "[`\n]", buf)
                if stop is None or stop.start():
                    self._release(text, buf[: stop.start() if stop else len(buf)])
                    buf = buf[stop.start() :] if stop else ""
                    continue
            found = table.search.search(buf)
            if found is None:
                start = len(buf) if final else self._cut_opener(buf)
                if start:
                    self._release(text, buf[:start])
                buf = buf[start:]
                break
            if found.start():
                self._release(text, buf[: found.start()])
                buf = buf[found.start() :]
            verdict, opener = self._classify(buf, final=final)
            if verdict == MORE and len(buf) <= MAX_HOLD:
                self._recheck_at = len(buf) + len(buf) // 8
                break
            if isinstance(verdict, Found):
                if text:
                    out.append(TextPiece("".join(text)))
                    text = []
                source = buf[: verdict.consumed]
                out += [TextCall(name, arguments, source, opener) for name, arguments in verdict.calls]
                self._after_call = True
                buf = buf[verdict.consumed :]
                continue
            # not a call (or held too long): the opener is text; a bare '{' or '[' one char
            self._release(text, buf[: len(opener) if len(opener) > 1 else 1])
            buf = buf[len(opener) if len(opener) > 1 else 1 :]
        if text:
            out.append(TextPiece("".join(text)))
        self._held = buf
        return out

    def _cut_opener(self, buf: str) -> int:
        """Where an opener cut off by the end of ``buf`` starts (``len(buf)`` if none)."""
        prefixes = self._table.prefixes
        for i in range(max(0, len(buf) - self._table.longest + 1), len(buf)):
            if buf[i:] in prefixes:
                return i
        return len(buf)

    def _classify(self, buf: str, *, final: bool) -> tuple[Any, str]:
        """(MORE | NO | Found | a trailer's Found, the opener or dialect name)."""
        candidates = self._table.by_first.get(buf[0], ())
        opener = next(o for o, _ in candidates if buf.startswith(o))
        if self._in_fence or self._in_code:
            return NO, opener  # an example inside code, never a call
        if not final and len(buf) < self._table.longest and buf in self._table.prefixes:
            return MORE, opener  # "[T" may still become "[TOOL_CALLS]"
        result: Any = NO
        for start, dialects in candidates:
            if not buf.startswith(start):
                continue
            if not dialects:  # an end-of-turn token: dropped right after a call
                if self._after_call:
                    return Found((), len(start)), start
                continue
            for dialect in dialects:
                verdict = dialect.parse(buf, self._tools, final)
                if isinstance(verdict, Found):
                    return verdict, dialect.name
                if verdict == MORE and result == NO:
                    result = MORE
        return result, opener

    def _release(self, parts: list[str], text: str) -> None:
        """``text`` goes out as text; keep track of the markdown it opens or closes."""
        parts.append(text)
        if self._after_call and text.strip():
            self._after_call = False
        if "`" not in text:
            if "\n" in text:
                self._in_code = False
                self._blank_line = not text[text.rfind("\n") + 1 :].strip(" \t")
            elif text.strip(" \t"):
                self._blank_line = False
            return
        blank, last = self._blank_line, 0
        for mark in _MARKDOWN.finditer(text):
            if text[last : mark.start()].strip(" \t"):
                blank = False
            token = mark.group()
            if token == "\n":
                self._in_code, blank = False, True
            elif len(token) >= 3 and blank and not self._in_code:
                self._in_fence, blank = not self._in_fence, False
            else:
                if not self._in_fence:
                    self._in_code = not self._in_code
                blank = False
            last = mark.end()
        if text[last:].strip(" \t"):
            blank = False
        self._blank_line = blank


def recover_calls_from_text(
    text: str, tool_names: Iterable[str] | Tools, *, dialects: tuple[Dialect, ...] | None = None
) -> list[TextPiece | TextCall]:
    """The calls in a complete text (and the text around them), for the offered tools: the
    same recognizers and safety rules as the streaming filter, given the whole text at once.
    For example a call a model wrote in its thinking when its answer came out empty."""
    recognizer = TextCallFilter(tool_names, dialects)
    return recognizer.feed(text) + recognizer.finish()
