"""Incremental NDJSON decoder for Ollama's streaming body. Sans-I/O.

Bytes go in as they arrive, in pieces split anywhere (inside a line, inside a multi-byte
UTF-8 character); complete lines come out parsed. Lines are split on ``\\n`` as bytes and
only a whole line is decoded, so a character split across two reads is never mangled.
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import UpstreamProtocolError

__all__ = ["NDJSONDecoder"]


class NDJSONDecoder:
    """``feed(data)`` → list of parsed JSON values; ``close()`` checks nothing is left over.

    Raises :class:`UpstreamProtocolError` for a line that is not UTF-8 JSON, for a line
    longer than ``max_line`` bytes, and (from ``close``) for a truncated last line.
    """

    def __init__(self, *, max_line: int = 64 * 1024 * 1024) -> None:
        self._buffer = bytearray()
        self._max_line = max_line

    def feed(self, data: bytes) -> list[Any]:
        return [self.parse(line) for line in self.feed_lines(data)]

    def feed_lines(self, data: bytes) -> list[bytearray]:
        """The complete, non-blank lines that ``data`` finished, unparsed (for a caller
        with a faster parser of its own; :meth:`parse` is the reference)."""
        if not data:
            return []
        self._buffer += data
        if b"\n" not in data:
            self._check_length(self._buffer)
            return []
        *lines, rest = self._buffer.split(b"\n")
        self._buffer = bytearray(rest)
        # A long line can end in the same read that brought most of it: check every line.
        for line in (*lines, rest):
            self._check_length(line)
        return [line for line in lines if line.strip()]

    def _check_length(self, line: bytes | bytearray) -> None:
        if len(line) > self._max_line:
            raise UpstreamProtocolError(f"Ollama sent a line longer than {self._max_line} bytes")

    def close(self) -> None:
        """End of body: a non-blank remainder means the last line was cut off."""
        if self._buffer.strip():
            preview = bytes(self._buffer[:80])
            self._buffer.clear()
            raise UpstreamProtocolError(
                f"Ollama's stream ended in the middle of a line: {preview!r}"
            )

    @staticmethod
    def parse(line: bytes | bytearray) -> Any:
        try:
            return json.loads(line)
        except ValueError:
            raise UpstreamProtocolError(
                f"Ollama sent a line that is not JSON: {bytes(line[:80])!r}"
            ) from None
        except RecursionError:  # a model's tool call arguments nested a thousand levels deep
            raise UpstreamProtocolError(
                f"Ollama sent a line nested too deep to read: {bytes(line[:80])!r}"
            ) from None
