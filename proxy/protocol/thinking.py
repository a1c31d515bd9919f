"""What to send as Ollama's ``think`` for a request, given what the model can do. Sans-I/O.

Claude Code sends ``thinking: {"type": "adaptive"}`` on nearly every request. Ollama answers
400 (``"m" does not support thinking``) when ``think`` is sent to a model that cannot think,
and newer Ollama turns thinking *on* for a thinking model when the field is absent. So:

==========================  ======================  ==========================
client ``thinking.type``    model can think         model cannot think
==========================  ======================  ==========================
``enabled``                 on (a level from         not sent; *dropped*
                            ``budget_tokens`` for
                            models that take levels)
``adaptive``                on (a level from         not sent; *dropped*
                            ``output_config.effort``
                            for models that take
                            levels)
``disabled`` / absent       ``false``                not sent
==========================  ======================  ==========================

Models that take levels (``"low" | "medium" | "high"``) instead of a boolean: gpt-oss.
"""

from __future__ import annotations

import dataclasses
from typing import Any

__all__ = ["ThinkDecision", "decide_think", "takes_think_levels", "NAME_FALLBACK_THINKERS"]

#: Used only when Ollama's /api/show cannot be asked: families known to think.
NAME_FALLBACK_THINKERS = ("qwen3", "deepseek-r1", "gpt-oss", "magistral", "qwq", "deepseek-v3.1", "phi4-reasoning")

_EFFORT_LEVELS = {"low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "high"}


@dataclasses.dataclass(frozen=True, slots=True)
class ThinkDecision:
    #: the value of Ollama's ``think``; None means the field is not sent
    think: bool | str | None
    #: the client asked for thinking and the model cannot think
    dropped: bool = False


def takes_think_levels(model: str) -> bool:
    """Whether ``model`` takes ``think: "low"|"medium"|"high"`` rather than a boolean."""
    return model.split("/")[-1].lower().startswith("gpt-oss")


def _level_from_budget(budget: Any) -> str:
    if not isinstance(budget, int) or isinstance(budget, bool):
        return "medium"
    if budget < 4096:
        return "low"
    if budget < 16384:
        return "medium"
    return "high"


def wants_thinking(body: dict[str, Any]) -> bool:
    """Whether the client asked for thinking (``thinking.type`` enabled or adaptive)."""
    thinking = body.get("thinking")
    return isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")


def decide_think(body: dict[str, Any], *, model: str, can_think: bool) -> ThinkDecision:
    """The ``think`` value for a validated request to ``model`` (see the module table)."""
    thinking = body.get("thinking")
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    wants = wants_thinking(body)
    if not can_think:
        return ThinkDecision(None, dropped=wants)
    if not wants:
        return ThinkDecision(False)
    if not takes_think_levels(model):
        return ThinkDecision(True)
    if kind == "enabled" and isinstance(thinking, dict):
        return ThinkDecision(_level_from_budget(thinking.get("budget_tokens")))
    output_config = body.get("output_config")
    effort = output_config.get("effort") if isinstance(output_config, dict) else None
    return ThinkDecision(_EFFORT_LEVELS.get(effort, "medium") if isinstance(effort, str) else "medium")
