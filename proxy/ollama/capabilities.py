"""What each Ollama model can do, asked of ``/api/show`` once and cached.

:class:`CapabilityCache` keeps one :class:`~proxy.ollama.admin.ModelDetails` per model for
``ttl`` seconds. When Ollama's chat answer contradicts it (a 400 ``does not support
thinking`` or ``does not support tools`` for a model ``/api/show`` said could), Ollama is
believed: ``contradicted`` removes the capability and keeps that for ``ttl`` seconds, so
the next requests are shaped right at once instead of each being refused first. When
``/api/show`` itself fails, a guess from the model's name stands in, and is not cached.
"""

from __future__ import annotations

import dataclasses
import logging

import httpx
import trio

from ..errors import ProxyError, UpstreamModelNotFound, UpstreamUnreachable
from .admin import ModelDetails, list_models, show_model
from ..protocol.bounded import BoundedDict
from ..protocol.thinking import NAME_FALLBACK_THINKERS

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
    """``await cache.get(model)`` → ModelDetails; ``contradicted(...)`` when Ollama disagrees."""

    def __init__(self, client: httpx.AsyncClient, *, ttl: float = 300.0, timeout: float = 10.0) -> None:
        self._client = client
        self._ttl = ttl
        self._timeout = timeout
        # Bounded (see proxy.protocol.bounded): only models /api/show described are kept.
        self._entries: BoundedDict[str, tuple[float, ModelDetails]] = BoundedDict()
        self._warned_no_thinking: BoundedDict[str, bool] = BoundedDict()

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
            if isinstance(exc, (UpstreamModelNotFound, UpstreamUnreachable)):
                # The chat request that follows fails the same way, and its end record
                # says so: one failure, one record.
                log.debug("could not ask Ollama what %s can do (%s)", model, exc.message)
                return guess
            log.warning(
                "could not ask Ollama what %s can do (%s); guessing from its name: %s",
                model, getattr(exc, "message", None) or type(exc).__name__, ", ".join(guess.capabilities),
            )
            return guess
        self._entries[model] = (now, details)
        return details

    def contradicted(self, model: str, capability: str, why: str) -> None:
        """Ollama refused ``capability`` for ``model``: it lacks it for the next ``ttl`` s."""
        entry = self._entries.get(model)
        details = entry[1] if entry is not None else guess_from_name(model)
        if capability in details.capabilities:
            kept = tuple(c for c in details.capabilities if c != capability)
            log.info("%s: %s; treating it as without %s for %g s", model, why, capability, self._ttl)
            details = dataclasses.replace(details, capabilities=kept)
        self._entries[model] = (trio.current_time(), details)

    def warn_thinking_dropped(self, model: str) -> None:
        """Log once per model that a request's thinking was dropped."""
        if model not in self._warned_no_thinking:
            self._warned_no_thinking[model] = True
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
