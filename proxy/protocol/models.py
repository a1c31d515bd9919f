"""Which Ollama model serves a model name the client asked for."""

from __future__ import annotations

from typing import Mapping

__all__ = ["resolve_model"]

_TIERS = ("haiku", "sonnet", "opus")


def resolve_model(requested: str, model_map: Mapping[str, str], default_model: str) -> str:
    """Return the Ollama model for ``requested``.

    An exact key of ``model_map`` wins; then a tier key (``haiku``, ``sonnet``, ``opus``)
    matches any ``claude-*`` name containing that word; any other ``claude-*`` name gets
    ``default_model``; every other name passes through unchanged (so
    ``ANTHROPIC_MODEL=qwen3-coder:30b`` reaches Ollama as it is).
    """
    if requested in model_map:
        return model_map[requested]
    lowered = requested.lower()
    if lowered.startswith("claude"):
        for tier in _TIERS:
            if tier in lowered and tier in model_map:
                return model_map[tier]
        return default_model
    return requested
