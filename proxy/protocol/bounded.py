"""Bounded tables and cut-short values: nothing a client sends grows memory or logs without
bound. Sans-I/O.

* :class:`BoundedDict` — a per-model table that keeps the most recently set entries, at most
  :data:`MODEL_TABLE_SIZE` of them (the proxy's tables hold only models Ollama confirmed;
  the cap bounds even those).
* :func:`utf8`, :func:`valid_text` — text any encoder takes: a lone surrogate (JSON's
  ``"\\ud800"``, which Python's parser accepts) becomes U+FFFD instead of raising.
* :func:`too_deep` — a parsed JSON value nested deeper than :data:`DEPTH_LIMIT`: refused
  before any recursive walk (estimate, translation, encoding, logging) can hit Python's
  recursion limit.
* :func:`clip` — a value cut to a sane length before it is echoed into a log record or an
  error message (a model name, a block type, an id, Ollama's own error text).
"""

from __future__ import annotations

import collections
from typing import Any, TypeVar

__all__ = ["BoundedDict", "MODEL_TABLE_SIZE", "clip", "ECHO_LIMIT", "utf8", "valid_text", "too_deep", "DEPTH_LIMIT"]

#: entries per per-model table (models a proxy serves: a handful; this is a safety cap)
MODEL_TABLE_SIZE = 256
#: characters of a client's (or Ollama's) value echoed into a log record or an error
ECHO_LIMIT = 200

#: arrays and objects inside each other: real requests (tool schemas, tool inputs) nest ~20
DEPTH_LIMIT = 128

K = TypeVar("K")
V = TypeVar("V")


class BoundedDict(collections.OrderedDict[K, V]):
    """A dict that forgets its least recently set entry beyond ``size`` entries
    (default: :data:`MODEL_TABLE_SIZE`, read when the table is made)."""

    def __init__(self, size: int | None = None) -> None:
        super().__init__()
        self.size = size if size is not None else MODEL_TABLE_SIZE

    def __setitem__(self, key: K, value: V) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)


def clip(value: Any, limit: int = ECHO_LIMIT) -> str:
    """``value`` as text of at most about ``limit`` characters: a longer one keeps its start
    and says how much was cut. Lone surrogates become U+FFFD, so any encoder takes it."""
    text = value if isinstance(value, str) else repr(value)
    if len(text) > limit:
        text = f"{text[:limit]}… ({len(text) - limit} more characters)"
    return valid_text(text)


def valid_text(text: str) -> str:
    """``text`` with each lone surrogate replaced by U+FFFD (itself when it has none)."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def utf8(text: str) -> bytes:
    """``text`` as UTF-8; a lone surrogate becomes U+FFFD instead of raising."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return valid_text(text).encode("utf-8")


def too_deep(value: Any, limit: int = DEPTH_LIMIT) -> bool:
    """Whether ``value`` nests arrays and objects more than ``limit`` deep. Iterative (no
    recursion to overflow), linear in the number of arrays and objects."""
    stack = [(value, 1)]
    pop, push = stack.pop, stack.append
    while stack:
        item, depth = pop()
        kind = type(item)
        if kind is dict:
            children: Any = item.values()
        elif kind is list:
            children = item
        else:
            continue
        if depth > limit:
            return True
        depth += 1
        for child in children:
            if type(child) in (dict, list):
                push((child, depth))
    return False
