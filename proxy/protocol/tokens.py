"""A fast, local estimate of a request's input tokens. Sans-I/O.

Used for ``message_start.usage.input_tokens`` and ``/v1/messages/count_tokens``. The real
count comes later from Ollama's ``prompt_eval_count`` (reported in ``message_delta``).
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["estimate_tokens", "IMAGE_TOKENS", "CHARS_PER_TOKEN"]

#: A fixed cost per image: local vision encoders use a few hundred tokens per image.
IMAGE_TOKENS = 768
#: Typical for BPE tokenizers on English prose and code.
CHARS_PER_TOKEN = 3.6


def _count(value: Any, acc: list[int]) -> None:
    """Add the characters of every string in ``value`` to acc[0], images to acc[1]."""
    if isinstance(value, str):
        acc[0] += len(value)
    elif isinstance(value, list):
        for item in value:
            _count(item, acc)
    elif isinstance(value, dict):
        kind = value.get("type")
        if kind == "image":
            acc[1] += 1
            return
        for key, item in value.items():
            if key in ("cache_control", "signature", "id", "tool_use_id", "type"):
                continue
            _count(item, acc)


def estimate_tokens(body: dict[str, Any], *, chars_per_token: float = CHARS_PER_TOKEN) -> int:
    """Estimate the prompt tokens of a Messages request: system, messages and tools."""
    acc = [0, 0]
    _count(body.get("system"), acc)
    _count(body.get("messages"), acc)
    tools = body.get("tools")
    if isinstance(tools, list):
        acc[0] += len(json.dumps(tools, separators=(",", ":")))
    messages = body.get("messages")
    overhead = 4 * len(messages) if isinstance(messages, list) else 0
    return int(acc[0] / chars_per_token) + acc[1] * IMAGE_TOKENS + overhead + 1
