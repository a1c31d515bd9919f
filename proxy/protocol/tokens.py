"""A fast, local estimate of a request's input tokens. Sans-I/O.

Used for ``message_start.usage.input_tokens`` and ``/v1/messages/count_tokens``. The real
count comes later from Ollama's ``prompt_eval_count`` (reported in ``message_delta``).
"""

from __future__ import annotations

import json
from typing import Any

from .bounded import BoundedDict
from .known_tools import KnownTools

__all__ = ["estimate_tokens", "Calibration", "IMAGE_TOKENS", "CHARS_PER_TOKEN"]

#: A fixed cost per image: local vision encoders use a few hundred tokens per image.
IMAGE_TOKENS = 768
#: UTF-8 bytes per token, typical for BPE tokenizers on English prose and code.
CHARS_PER_TOKEN = 3.6


def _count(value: Any, acc: list[int]) -> None:
    """Add the UTF-8 bytes of every string in ``value`` to acc[0], images to acc[1]."""
    if isinstance(value, str):
        # UTF-8 bytes, not characters: BPE vocabularies are built on bytes, and a CJK
        # character (3 bytes) is about one token, where counting it as one character would
        # make a Chinese prompt look 3x shorter than it is (and slip past the overflow check).
        acc[0] += len(value) if value.isascii() else len(value.encode("utf-8", "surrogatepass"))
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


def estimate_tokens(
    body: dict[str, Any], *, chars_per_token: float = CHARS_PER_TOKEN, known_tools: KnownTools | None = None
) -> int:
    """Estimate the prompt tokens of a Messages request: system, messages and tools.

    ``known_tools``: the body's tools as :func:`~proxy.protocol.known_tools.parse_request_body`
    found them; their JSON length is then measured once for every request that has them.
    """
    acc = [0, 0]
    _count(body.get("system"), acc)
    _count(body.get("messages"), acc)
    tools = body.get("tools")
    if isinstance(tools, list):
        if known_tools is not None and tools is known_tools.tools:
            if known_tools.json_length is None:
                known_tools.json_length = _json_length(tools)
            acc[0] += known_tools.json_length
        else:
            acc[0] += _json_length(tools)
    messages = body.get("messages")
    overhead = 4 * len(messages) if isinstance(messages, list) else 0
    return int(acc[0] / chars_per_token) + acc[1] * IMAGE_TOKENS + overhead + 1


def _json_length(tools: list[Any]) -> int:
    return len(json.dumps(tools, separators=(",", ":")))


class Calibration:
    """Per-model correction of :func:`estimate_tokens`, learnt from Ollama's real counts.

    ``observe(model, estimate, actual)`` after a request whose ``prompt_eval_count`` is known;
    ``apply(model, estimate)`` before the next. The factor is a moving average of
    actual / estimate. Observations far off (Ollama counts only the uncached part of a
    prompt when it reuses its KV cache, which looks like a tiny count) are ignored.
    """

    #: weight of the newest observation
    ALPHA = 0.5
    #: ratios outside this range are not about the tokenizer: ignored
    PLAUSIBLE = (0.4, 3.0)

    def __init__(self) -> None:
        self._factors: BoundedDict[str, float] = BoundedDict()

    def factor(self, model: str) -> float:
        return self._factors.get(model, 1.0)

    def apply(self, model: str, estimate: int) -> int:
        return max(1, round(estimate * self.factor(model)))

    def observe(self, model: str, estimate: int, actual: int) -> bool:
        """Learn from one request; return whether the observation was used."""
        if estimate <= 0 or actual <= 0:
            return False
        ratio = actual / estimate
        if not self.PLAUSIBLE[0] <= ratio <= self.PLAUSIBLE[1]:
            return False
        previous = self._factors.get(model)
        self._factors[model] = ratio if previous is None else previous + self.ALPHA * (ratio - previous)
        return True
