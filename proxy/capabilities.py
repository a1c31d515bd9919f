"""What each Ollama model can do, asked of ``/api/show`` once and cached.

:class:`CapabilityCache` keeps one :class:`~proxy.ollama_admin.ModelDetails` per model for
``ttl`` seconds. It is dropped early (``forget``) when Ollama's answer contradicts it, e.g.
a 400 ``does not support thinking`` for a model the cache said could think. When
``/api/show`` itself fails, a guess from the model's name stands in, and is not cached.
"""

from __future__ import annotations

import logging

import httpx
import trio

from .errors import ProxyError
from .ollama_admin import ModelDetails, list_models, show_model
from .protocol.thinking import NAME_FALLBACK_THINKERS

__all__ = ["CapabilityCache", "guess_from_name"]

log = logging.getLogger("proxy.capabilities")

#: Families known to call tools natively, for the name fallback only.
_NAME_FALLBACK_TOOLS = (
    "qwen", "llama3.1", "llama3.2", "llama3.3", "llama4", "mistral", "mixtral", "command-r",
    "granite", "gpt-oss", "deepseek", "devstral", "hermes", "firefunction", "smollm2",
)


def guess_from_name(model: str) -> ModelDetails:
    """Capabilities from the model's name alone: the fallback when /api/show fails."""
    base = model.split("/")[-1].lower()
    capabilities = ["completion"]
    if base.startswith(_NAME_FALLBACK_TOOLS):
        capabilities.append("tools")
    if base.startswith(NAME_FALLBACK_THINKERS):
        capabilities.append("thinking")
    return ModelDetails(name=model, capabilities=tuple(capabilities), context_length=None)


class CapabilityCache:
    """``await cache.get(model)`` → ModelDetails; ``forget(model)`` when contradicted."""

    def __init__(self, client: httpx.AsyncClient, *, ttl: float = 300.0, timeout: float = 10.0) -> None:
        self._client = client
        self._ttl = ttl
        self._timeout = timeout
        self._entries: dict[str, tuple[float, ModelDetails]] = {}
        self._warned_no_thinking: set[str] = set()

    async def get(self, model: str) -> ModelDetails:
        entry = self._entries.get(model)
        now = trio.current_time()
        if entry is not None and now - entry[0] < self._ttl:
            return entry[1]
        try:
            with trio.fail_after(self._timeout):
                details = await show_model(self._client, model)
        except (ProxyError, trio.TooSlowError) as exc:
            guess = guess_from_name(model)
            log.warning(
                "could not ask Ollama what %s can do (%s); guessing from its name: %s",
                model, getattr(exc, "message", None) or type(exc).__name__, ", ".join(guess.capabilities),
            )
            return guess
        self._entries[model] = (now, details)
        return details

    def forget(self, model: str, why: str) -> None:
        if self._entries.pop(model, None) is not None:
            log.info("forgot the cached capabilities of %s: %s", model, why)

    def warn_thinking_dropped(self, model: str) -> None:
        """Log once per model that a request's thinking was dropped."""
        if model not in self._warned_no_thinking:
            self._warned_no_thinking.add(model)
            log.warning("%s cannot think: requests' thinking is dropped for it (strict_thinking makes it a 400)", model)

    async def models_that(self, capability: str) -> list[str]:
        """Installed models having ``capability`` (for error messages). Empty on failure."""
        try:
            with trio.fail_after(self._timeout):
                installed = await list_models(self._client)
        except (ProxyError, trio.TooSlowError):
            return []
        found = []
        for model in installed:
            if capability in (await self.get(model.name)).capabilities:
                found.append(model.name)
        return found
