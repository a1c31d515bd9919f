"""How large a context window (``options.num_ctx``) each request gets. Sans-I/O.

Ollama's default context is small (2048–8192 on most machines) and a longer prompt is
*silently truncated*: the system prompt and the tools are cut, and the agent goes mad.
Claude Code's first request is already 15–60k tokens. So the proxy sets ``num_ctx`` itself:

* the estimated prompt plus output headroom (``min(max_tokens, OUTPUT_HEADROOM)``: Claude
  Code asks for 32k–128k output tokens, but reserving that much would push every request to
  the model's maximum), rounded up to a step (8k, 16k, 32k, 64k, 128k, …);
* capped by the model's context length and by ``max_num_ctx``;
* never smaller than what this model already got while the proxy runs: a changed
  ``num_ctx`` makes Ollama reload the model, so the value only grows;
* ``num_ctx`` (a setting) pins it.

A prompt that leaves no room for the answer (``min(max_tokens, OUTPUT_HEADROOM, cap / 4)``)
is refused up front with the 400 Claude Code compacts on.
"""

from __future__ import annotations

import dataclasses

from ..errors import PromptTooLong

__all__ = ["ContextPolicy", "choose_num_ctx", "OUTPUT_HEADROOM", "looks_truncated"]

OUTPUT_HEADROOM = 8192
FIRST_STEP = 8192


@dataclasses.dataclass(frozen=True, slots=True)
class ContextPolicy:
    #: a fixed num_ctx for every request (0: size each request)
    pinned: int = 0
    #: the largest num_ctx the proxy will ask for (0: no cap but the model's)
    maximum: int = 0


def choose_num_ctx(
    *,
    estimate: int,
    max_tokens: int,
    model_max: int | None,
    policy: ContextPolicy,
    high_water: int = 0,
) -> int:
    """The ``num_ctx`` for one request. Raises PromptTooLong when the prompt cannot fit."""
    caps = [c for c in (model_max, policy.maximum or None) if c]
    limit = min(caps) if caps else None
    if limit is not None:
        # The answer needs room in the same window: a prompt that fills it leaves none.
        room = min(max_tokens, OUTPUT_HEADROOM, limit // 4)
        if estimate + room > limit:
            raise PromptTooLong(estimate, limit - room)
    if policy.pinned:
        return policy.pinned
    need = estimate + min(max_tokens, OUTPUT_HEADROOM)
    size = FIRST_STEP
    while size < need:
        size *= 2
    size = max(size, high_water)
    return min(size, limit) if limit is not None else size


def looks_truncated(prompt_eval_count: int, num_ctx: int) -> bool:
    """Ollama reports a prompt that (nearly) filled the window: it was most likely cut."""
    return num_ctx > 0 and prompt_eval_count >= 0.95 * num_ctx
