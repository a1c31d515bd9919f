"""Turning a tool call as Ollama sent it into a name and an input object. Sans-I/O."""

from __future__ import annotations

import json
import logging
from typing import Any

__all__ = ["coerce_arguments"]

log = logging.getLogger("proxy.tool_repair")


def coerce_arguments(name: str, arguments: Any) -> dict[str, Any]:
    """Return the tool input as an object.

    Ollama sends an object; some models double-encode it as a JSON string. Anything that
    is still not an object becomes ``{}``, with a log line (Claude Code would turn an
    unparsable input into ``{}`` silently; we at least say so).
    """
    value = arguments
    for _ in range(3):  # a string may hold a string that holds the object
        if not isinstance(value, str):
            break
        try:
            value = json.loads(value)
        except ValueError:
            break
    if isinstance(value, dict):
        if value is not arguments:
            log.info("repaired tool call %s: arguments were a JSON string", name)
        return value
    if value is None:
        return {}
    log.warning("tool call %s: arguments %r are not an object; sent {} instead", name, arguments)
    return {}
