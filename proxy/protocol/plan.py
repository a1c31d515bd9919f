"""What to send Ollama for one request, decided before anything is sent.

:func:`make_plan` turns a validated request, what the model can do (as plain facts), the
settings it needs, the calibration and the ``num_ctx`` high-water mark into a frozen
:class:`Plan`: the Ollama request as made, and the fallbacks the relay may use, in order,
when Ollama refuses (400) what the cached capabilities allowed:

``without think``
    Ollama says the model does not support thinking, and the request asked it to think:
    the same request without ``think`` (and the client is told in ``x-proxy-thinking``).
``tools emulated``
    Ollama says the model does not support tools, the request has native tools and tool
    emulation is on: the request translated again with the tools described in the prompt
    (its ``options``, ``keep_alive`` and ``think`` as decided for this request).

Each fallback removes what was refused, so none repeats; both may apply, in the order
Ollama's errors come. Nothing changes a plan once made: :meth:`Plan.request` builds a new
Ollama body for each combination of fallbacks.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

from .context import ContextPolicy, choose_num_ctx
from .history import CallWriter
from .known_tools import KnownTools
from .tokens import Calibration, estimate_tokens
from .translate import TranslatedRequest, translate_request

__all__ = ["Fallback", "Plan", "PlanSettings", "make_plan", "MIN_NUM_PREDICT"]

#: the least num_predict a capped request gets, even when the estimate fills the window
MIN_NUM_PREDICT = 256


class Fallback(enum.Enum):
    WITHOUT_THINK = "without think"
    TOOLS_EMULATED = "tools emulated"


#: what Ollama says in its 400 when the fallback applies
TRIGGERS: dict[Fallback, bytes] = {
    Fallback.WITHOUT_THINK: b"does not support thinking",
    Fallback.TOOLS_EMULATED: b"does not support tools",
}

#: the response header a fallback adds (the client asked for something it does not get)
HEADERS: dict[Fallback, tuple[str, str]] = {
    Fallback.WITHOUT_THINK: ("x-proxy-thinking", "dropped"),
}


@dataclasses.dataclass(frozen=True, slots=True)
class PlanSettings:
    """The settings a plan depends on (proxy.config's values of the same names)."""

    num_ctx: int = 0
    max_num_ctx: int = 0
    cap_num_predict: bool = True
    #: Ollama's keep_alive as sent: a duration string or seconds; None: Ollama's default
    keep_alive: str | int | None = None
    sequential_tools: bool = True
    tool_emulation: bool = True


@dataclasses.dataclass(frozen=True, slots=True)
class Plan:
    """One request's Ollama request as made, and its fallbacks in order."""

    #: the request as made (num_ctx, num_predict and keep_alive set)
    made: TranslatedRequest
    #: the fallbacks Ollama's 400 may call for, in the order they are looked for
    fallbacks: tuple[Fallback, ...]
    #: the prompt's size: as estimated, and after calibration
    raw_estimate: int
    estimate: int
    num_ctx: int
    #: what a re-translation needs (TOOLS_EMULATED only)
    _body: dict[str, Any] = dataclasses.field(repr=False, compare=False)
    _known_tools: KnownTools | None = dataclasses.field(repr=False, compare=False)
    _call_dialect: CallWriter | None = dataclasses.field(repr=False, compare=False)
    _can_think: bool = dataclasses.field(repr=False, compare=False)
    _sequential_tools: bool = dataclasses.field(repr=False, compare=False)

    def fallback_for(self, ollama_error: bytes, used: tuple[Fallback, ...]) -> Fallback | None:
        """The fallback Ollama's 400 body calls for, not yet used; None: give the error."""
        for fallback in self.fallbacks:
            if fallback not in used and TRIGGERS[fallback] in ollama_error:
                return fallback
        return None

    def request(self, used: tuple[Fallback, ...] = ()) -> TranslatedRequest:
        """The request to send with the fallbacks ``used``: a new one, the plan unchanged."""
        if not used:
            return self.made
        made = self.made.ollama
        if Fallback.TOOLS_EMULATED in used:
            emulated = translate_request(
                self._body, ollama_model=made["model"], can_think=self._can_think,
                sequential_tools=self._sequential_tools, native_tools=False,
                known_tools=self._known_tools, call_dialect=self._call_dialect,
            )
            base = dict(emulated.ollama)
            for key in ("options", "keep_alive", "think"):  # as decided for this request
                if key in made:
                    base[key] = made[key]
                else:
                    base.pop(key, None)
            request = dataclasses.replace(emulated, ollama=base)
        else:
            request = dataclasses.replace(self.made, ollama=dict(made))
        if Fallback.WITHOUT_THINK in used:
            request.ollama.pop("think", None)  # a dict of its own, made just above
        return request


def make_plan(
    body: dict[str, Any],
    *,
    ollama_model: str,
    settings: PlanSettings,
    can_think: bool,
    can_call_tools: bool,
    context_length: int | None,
    call_dialect: CallWriter | None,
    calibration: Calibration,
    high_water: int = 0,
    known_tools: KnownTools | None = None,
) -> Plan:
    """Size and translate a request that passed validation. Raises PromptTooLong (a
    RequestError) when the prompt cannot fit: the cheap check first, before translating.

    ``can_call_tools`` False with tools in the body: the tools are emulated from the start
    (the caller refuses the request beforehand when tool emulation is off).
    """
    raw_estimate = estimate_tokens(body, known_tools=known_tools)
    estimate = calibration.apply(ollama_model, raw_estimate)
    num_ctx = choose_num_ctx(
        estimate=estimate,
        max_tokens=body["max_tokens"],
        model_max=context_length,
        policy=ContextPolicy(pinned=settings.num_ctx, maximum=settings.max_num_ctx),
        high_water=high_water,
    )
    native_tools = can_call_tools or not body.get("tools")
    translated = translate_request(
        body,
        ollama_model=ollama_model,
        can_think=can_think,
        sequential_tools=settings.sequential_tools,
        native_tools=native_tools,
        known_tools=known_tools,
        call_dialect=call_dialect,
    )
    options = {**translated.ollama["options"], "num_ctx": num_ctx}
    if settings.cap_num_predict:
        # Claude Code asks for 128000 output tokens whatever the window: past the window
        # Ollama shifts the context and a looping model never stops.
        options["num_predict"] = min(body["max_tokens"], max(num_ctx - estimate, MIN_NUM_PREDICT))
    ollama = {**translated.ollama, "options": options}
    if settings.keep_alive is not None:
        ollama["keep_alive"] = settings.keep_alive
    made = dataclasses.replace(translated, ollama=ollama)
    fallbacks: list[Fallback] = []
    if ollama.get("think"):
        fallbacks.append(Fallback.WITHOUT_THINK)
    if ollama.get("tools") and settings.tool_emulation:
        fallbacks.append(Fallback.TOOLS_EMULATED)
    return Plan(
        made=made,
        fallbacks=tuple(fallbacks),
        raw_estimate=raw_estimate,
        estimate=estimate,
        num_ctx=num_ctx,
        _body=body,
        _known_tools=known_tools,
        _call_dialect=call_dialect,
        _can_think=can_think,
        _sequential_tools=settings.sequential_tools,
    )
