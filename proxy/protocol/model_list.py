"""``GET /v1/models`` in Anthropic's shape, from Ollama's installed models. Sans-I/O.

What is listed, in this order:

1. every key of the model map that is a model name (the tier keys ``haiku``, ``sonnet``,
   ``opus`` are patterns, not names), with the Ollama model it maps to in its display name —
   Claude Code's gateway discovery only adds ids starting with ``claude`` or ``anthropic``
   to its ``/model`` picker, so a map key like ``claude-qwen3-coder`` is how a local model
   gets into that picker;
2. every installed Ollama model under its own name (a name that is not ``claude-*``
   reaches Ollama unchanged), newest first, as other Anthropic clients list models.

Pagination follows Anthropic's: ``limit`` (1–1000, default 20), ``after_id``, ``before_id``.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from ..errors import RequestError

__all__ = ["model_entries", "paginate", "parse_list_query", "EPOCH"]

EPOCH = "1970-01-01T00:00:00Z"
_TIER_KEYS = ("haiku", "sonnet", "opus")
DEFAULT_LIMIT = 20
MAX_LIMIT = 1000


def _describe(model: Any) -> str:
    extras = ", ".join(part for part in (model.parameter_size, model.quantization) if part)
    return f"{model.name} (Ollama{', ' + extras if extras else ''})"


def model_entries(installed: Iterable[Any], model_map: Mapping[str, str]) -> list[dict[str, Any]]:
    """Anthropic model objects: the map's named keys, then the installed models.

    ``installed`` holds :class:`~proxy.ollama.admin.InstalledModel`-like objects (``name``,
    ``modified_at``, ``parameter_size``, ``quantization``).
    """
    installed = list(installed)
    by_name = {m.name: m for m in installed}
    by_name.update({m.name.removesuffix(":latest"): m for m in installed})
    entries: list[dict[str, Any]] = []
    seen: set[str] = set()
    for key, target in model_map.items():
        if key.lower() in _TIER_KEYS or key in by_name:
            continue
        model = by_name.get(target)
        state = "" if model is not None else ", not installed"
        entries.append(
            {
                "type": "model",
                "id": key,
                "display_name": f"{key} → {target} (Ollama{state})",
                "created_at": (model.modified_at if model is not None else None) or EPOCH,
            }
        )
        seen.add(key)
    for model in sorted(installed, key=lambda m: (m.modified_at or EPOCH, m.name), reverse=True):
        if model.name in seen:
            continue
        entries.append(
            {
                "type": "model",
                "id": model.name,
                "display_name": _describe(model),
                "created_at": model.modified_at or EPOCH,
            }
        )
        seen.add(model.name)
    return entries


def parse_list_query(query: Mapping[str, list[str]]) -> tuple[int, str | None, str | None]:
    """``(limit, after_id, before_id)`` from a parsed query string; RequestError when bad."""
    raw = (query.get("limit") or [str(DEFAULT_LIMIT)])[-1]
    try:
        limit = int(raw)
    except ValueError:
        raise RequestError(f"limit: expected a whole number from 1 to {MAX_LIMIT}, got {raw!r}") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise RequestError(f"limit: expected a whole number from 1 to {MAX_LIMIT}, got {limit}")
    afters, befores = query.get("after_id"), query.get("before_id")
    after = afters[-1] if afters else None
    before = befores[-1] if befores else None
    if after and before:
        raise RequestError("after_id and before_id cannot be used together")
    return limit, after or None, before or None


def paginate(entries: list[dict[str, Any]], *, limit: int, after_id: str | None = None,
             before_id: str | None = None) -> dict[str, Any]:
    """One page of ``entries`` as Anthropic's list response."""
    ids = [entry["id"] for entry in entries]
    if after_id is not None:
        start = ids.index(after_id) + 1 if after_id in ids else len(ids)
        page = entries[start : start + limit]
        has_more = start + limit < len(entries)
    elif before_id is not None:
        end = ids.index(before_id) if before_id in ids else 0
        page = entries[max(0, end - limit) : end]
        has_more = end - limit > 0
    else:
        page = entries[:limit]
        has_more = limit < len(entries)
    return {
        "data": page,
        "has_more": has_more,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
    }
