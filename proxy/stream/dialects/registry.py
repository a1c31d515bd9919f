"""The registry: every dialect, in the order they are tried, and which ones a model speaks.

``DIALECTS`` is the one list. :func:`dialects_for_template` ranks and restricts it for one
model from its chat template (``/api/show``): the dialects whose markers the template names
come first, followed only by the universal ones (JSON, fenced, Hermes, Qwen3-Coder XML) —
so a Llama model that mentions ``[TOOL_CALLS]`` in prose is not read as Mistral. A template
that names no known marker (or none known) gets every dialect. :func:`native_dialect` is the
one to describe the calling format in when tools are emulated.
"""

from __future__ import annotations

import functools
import re

from .base import Calls, Dialect, Tools
from .families import (
    GLM,
    LFM2,
    BareJSON,
    CommandR,
    DeepSeek,
    Fenced,
    FunctionGemma,
    Functools,
    Granite,
    Harmony,
    Hermes,
    InternLM,
    Kimi,
    Llama3,
    MiniMaxM2,
    Mistral,
    MistralArgs,
    Nemotron,
    OLMo3,
    Pythonic,
    Qwen3Coder,
    ToolCallsTag,
)

__all__ = ["DIALECTS", "BY_NAME", "dialects_for_template", "native_dialect", "template_opens_think"]

_FENCED = Fenced()

#: every dialect, in the order they are tried when several share an opener
DIALECTS: tuple[Dialect, ...] = (
    Hermes(), Qwen3Coder(), GLM(), Llama3(), Mistral(), MistralArgs(), DeepSeek(), Harmony(),
    Granite(), Functools(), Kimi(), CommandR(), FunctionGemma(), MiniMaxM2(), ToolCallsTag(),
    Nemotron(), InternLM(), LFM2(), OLMo3(), Pythonic(), BareJSON(), _FENCED,
)
BY_NAME = {dialect.name: dialect for dialect in DIALECTS}

#: a more specific dialect whose template markers include a more general one's
_REFINES = {"qwen3_coder": "hermes", "glm": "hermes", "mistral_args": "mistral"}


def _fence_inner(body: str, tools: Tools, final: bool, lang: str) -> Calls | str:
    """What a fenced block holds, read by every other dialect: calls only, or not a call."""
    from ..text_calls import TextCall, TextCallFilter  # the engine; imported late (it imports us)
    from .base import MORE, NO

    if not final:
        body = body.rstrip("`")  # the closing fence may be arriving
    recognizer = TextCallFilter(tools, dialects=_NOT_FENCED)
    pieces = recognizer.feed(body) + (recognizer.finish() if final else [])
    if any(not isinstance(p, TextCall) and p.text.strip() for p in pieces):
        return NO
    calls = tuple((p.name, p.arguments) for p in pieces if isinstance(p, TextCall))
    if final:
        return calls or NO
    return MORE


_NOT_FENCED = tuple(d for d in DIALECTS if d is not _FENCED)
_FENCED.inner = _fence_inner


@functools.lru_cache(maxsize=128)
def dialects_for_template(template: str | None) -> tuple[Dialect, ...]:
    """The dialects to try for a model with this chat template, best first."""
    if not template:
        return DIALECTS
    matched = [d for d in DIALECTS if any(marker in template for marker in d.template_markers)]
    if not matched:
        return DIALECTS
    return tuple(matched + [d for d in DIALECTS if d.universal and d not in matched])


@functools.lru_cache(maxsize=128)
def native_dialect(template: str | None) -> Dialect | None:
    """The dialect the model was trained to call tools in, per its template; None if unknown."""
    if not template:
        return None
    matched = [d for d in DIALECTS if any(marker in template for marker in d.template_markers)]
    names = {d.name for d in matched}
    for dialect in matched:
        if not any(_REFINES.get(other) == dialect.name for other in names):
            return dialect
    return None


_GO_ACTION = re.compile(r"\{\{.*?\}\}", re.DOTALL)


@functools.lru_cache(maxsize=128)
def template_opens_think(template: str | None) -> bool:
    """Whether the template itself writes ``<think>`` at the end of the prompt, so the model's
    content starts inside an unclosed thinking block (DeepSeek-R1, Nemotron, Qwen3 thinking)."""
    if not template:
        return False
    return _GO_ACTION.sub("", template).rstrip().endswith("<think>")
