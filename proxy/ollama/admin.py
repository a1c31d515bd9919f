"""Ollama's admin endpoints, for the operator commands and ``GET /v1/models``.

``/api/version``, ``/api/tags``, ``/api/show`` and ``/api/pull`` — everything the proxy asks
Ollama that is not a chat. Each function takes an ``httpx.AsyncClient`` whose base URL is
Ollama's and raises a :class:`~proxy.errors.ProxyError` (mapped by :mod:`proxy.ollama.client`,
so the messages say what to do) when Ollama cannot be reached or answers with an error.
Deadlines belong to the caller (``trio.fail_after`` around the call).
"""

from __future__ import annotations

import dataclasses
import datetime
import re
from contextlib import aclosing
from typing import Any, Callable, Iterable

import httpx
import trio

from ..config import Settings
from ..errors import ProxyError, UpstreamProtocolError
from ..stream.ndjson import NDJSONDecoder
from .client import ERROR_BODY_LIMIT, open_client, read_capped, status_error, transport_error

__all__ = [
    "InstalledModel",
    "ModelDetails",
    "PullProgress",
    "get_version",
    "probe_version",
    "list_models",
    "list_running",
    "show_model",
    "describe_models",
    "pull_model",
    "canonical_name",
    "parse_version",
]


@dataclasses.dataclass(frozen=True, slots=True)
class InstalledModel:
    """One entry of ``/api/tags``."""

    name: str
    size: int = 0
    #: RFC 3339 in UTC, seconds precision (``2025-01-31T12:00:00Z``); None when unknown
    modified_at: str | None = None
    family: str = ""
    parameter_size: str = ""
    quantization: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class ModelDetails:
    """What ``/api/show`` says about a model."""

    name: str
    capabilities: tuple[str, ...] = ()
    #: the model's trained context length (``<arch>.context_length``); None when not given
    context_length: int | None = None
    #: the model's chat template (names the markers it calls tools and thinks with)
    template: str = ""

    @property
    def tools(self) -> bool:
        return "tools" in self.capabilities

    @property
    def thinking(self) -> bool:
        return "thinking" in self.capabilities

    @property
    def vision(self) -> bool:
        return "vision" in self.capabilities


@dataclasses.dataclass(frozen=True, slots=True)
class PullProgress:
    """One line of ``/api/pull``'s stream."""

    status: str
    digest: str | None = None
    total: int | None = None
    completed: int | None = None


def canonical_name(name: str) -> str:
    """``qwen3`` and ``qwen3:latest`` are one model to Ollama: add the implicit tag."""
    last = name.rsplit("/", 1)[-1]
    return name if ":" in last else f"{name}:latest"


def parse_version(text: str) -> tuple[int, int, int] | None:
    """``0.12.3`` (also ``0.12.3-rc1``, ``v0.12``) → (0, 12, 3); None when unreadable."""
    match = re.match(r"^v?(\d+)\.(\d+)(?:\.(\d+))?", text.strip())
    if match is None:
        return None
    major, minor, patch = match.groups()
    return int(major), int(minor), int(patch or 0)


def _rfc3339(value: Any) -> str | None:
    """Ollama's ``modified_at`` (nanoseconds, any offset) → ``YYYY-MM-DDTHH:MM:SSZ``."""
    if not isinstance(value, str):
        return None
    match = re.match(r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:\.\d+)?(Z|[+-]\d{2}:?\d{2})?$", value.strip())
    if match is None:
        return None
    day, clock, offset = match.groups()
    offset = "+00:00" if offset in (None, "Z") else offset
    if ":" not in offset:
        offset = offset[:3] + ":" + offset[3:]
    try:
        moment = datetime.datetime.fromisoformat(f"{day}T{clock}{offset}")
    except ValueError:
        return None
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


async def _get_json(client: httpx.AsyncClient, method: str, path: str, **kwargs: Any) -> Any:
    try:
        response = await client.request(method, path, **kwargs)
    except httpx.HTTPError as exc:
        raise transport_error(exc, url=str(client.base_url), streaming=False, client=client) from exc
    if response.status_code != 200:
        model = (kwargs.get("json") or {}).get("model", "")
        raise status_error(response.status_code, response.content, model=model)
    try:
        return response.json()
    except ValueError:
        raise UpstreamProtocolError(f"Ollama's {path} answered something that is not JSON") from None


async def get_version(client: httpx.AsyncClient) -> str:
    """Ollama's version (``unknown`` when its answer names none); raises a ProxyError."""
    data = await _get_json(client, "GET", "/api/version")
    version = data.get("version") if isinstance(data, dict) else None
    return version if isinstance(version, str) else "unknown"


async def probe_version(client: httpx.AsyncClient, *, timeout: float = 2.0) -> str | None:
    """:func:`get_version`, or None when Ollama does not answer it within ``timeout``
    seconds (or answers with an error)."""
    with trio.move_on_after(timeout):
        try:
            return await get_version(client)
        except ProxyError:
            return None
    return None


async def _model_entries(client: httpx.AsyncClient, path: str) -> list[dict[str, Any]]:
    """The objects in the ``models`` list of ``/api/tags`` or ``/api/ps``."""
    data = await _get_json(client, "GET", path)
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, list):
        raise UpstreamProtocolError(f"Ollama's {path} answer has no models list")
    return [entry for entry in models if isinstance(entry, dict)]


async def list_models(client: httpx.AsyncClient) -> list[InstalledModel]:
    """The installed models, as ``/api/tags`` lists them."""
    result = []
    for entry in await _model_entries(client, "/api/tags"):
        name = entry.get("name") or entry.get("model")
        if not isinstance(name, str):
            continue
        given = entry.get("details")
        details = given if isinstance(given, dict) else {}
        size = entry.get("size")
        result.append(
            InstalledModel(
                name=name,
                size=size if isinstance(size, int) else 0,
                modified_at=_rfc3339(entry.get("modified_at")),
                family=str(details.get("family") or ""),
                parameter_size=str(details.get("parameter_size") or ""),
                quantization=str(details.get("quantization_level") or ""),
            )
        )
    return result


async def list_running(client: httpx.AsyncClient) -> list[str]:
    """The names of the models in memory, as ``/api/ps`` lists them."""
    names = (entry.get("name") or entry.get("model") for entry in await _model_entries(client, "/api/ps"))
    return [name for name in names if isinstance(name, str)]


def _context_length(model_info: Any) -> int | None:
    if not isinstance(model_info, dict):
        return None
    architecture = model_info.get("general.architecture")
    value = model_info.get(f"{architecture}.context_length") if isinstance(architecture, str) else None
    if not isinstance(value, int):
        # some architectures' keys don't match general.architecture: take any context_length
        value = next((v for k, v in model_info.items() if k.endswith(".context_length") and isinstance(v, int)), None)
    return value


async def show_model(client: httpx.AsyncClient, name: str) -> ModelDetails:
    """Capabilities and context length of ``name`` (404 → UpstreamModelNotFound)."""
    data = await _get_json(client, "POST", "/api/show", json={"model": name})
    if not isinstance(data, dict):
        raise UpstreamProtocolError("Ollama's /api/show answer is not an object")
    capabilities = data.get("capabilities")
    return ModelDetails(
        name=name,
        capabilities=tuple(c for c in capabilities if isinstance(c, str)) if isinstance(capabilities, list) else (),
        context_length=_context_length(data.get("model_info")),
        template=data["template"] if isinstance(data.get("template"), str) else "",
    )


async def describe_models(client: httpx.AsyncClient, names: Iterable[str]) -> dict[str, ModelDetails | ProxyError]:
    """``show_model`` for each name, concurrently; a failure is kept as that name's value."""
    results: dict[str, ModelDetails | ProxyError] = {}
    limiter = trio.CapacityLimiter(4)  # don't flood a small Ollama with dozens of /api/show

    async def one(name: str) -> None:
        async with limiter:
            try:
                results[name] = await show_model(client, name)
            except ProxyError as exc:
                results[name] = exc

    async with trio.open_nursery() as nursery:
        for name in dict.fromkeys(names):
            nursery.start_soon(one, name)
    return results


async def pull_model(client: httpx.AsyncClient, name: str, on_progress: Callable[[PullProgress], None]) -> None:
    """Pull ``name`` through ``/api/pull``, calling ``on_progress`` for every line of its
    stream. Returns once Ollama says ``success``; raises ProxyError otherwise."""
    decoder = NDJSONDecoder()
    success = False
    try:
        async with client.stream("POST", "/api/pull", json={"model": name, "stream": True}) as response:
            if response.status_code != 200:
                raise status_error(response.status_code, await read_capped(response, ERROR_BODY_LIMIT), model=name)
            # httpx annotates aiter_bytes(), an async generator, as an AsyncIterator (no aclose)
            async with aclosing(response.aiter_bytes()) as chunks:  # type: ignore[type-var]
                async for data in chunks:
                    for line in decoder.feed(data):
                        success = _handle_pull_line(line, on_progress) or success
            decoder.close()  # raises UpstreamProtocolError for a cut-off last line
    except httpx.HTTPError as exc:
        raise transport_error(exc, url=str(client.base_url), streaming=False, client=client) from exc
    if not success:
        raise UpstreamProtocolError(f"Ollama's pull of {name!r} ended without saying success")


def _handle_pull_line(line: Any, on_progress: Callable[[PullProgress], None]) -> bool:
    if not isinstance(line, dict):
        return False
    if isinstance(line.get("error"), str):
        raise ProxyError(f"Ollama could not pull the model: {line['error']}")
    status = str(line.get("status", ""))
    total, completed = line.get("total"), line.get("completed")
    on_progress(
        PullProgress(
            status=status,
            digest=line.get("digest") if isinstance(line.get("digest"), str) else None,
            total=total if isinstance(total, int) else None,
            completed=completed if isinstance(completed, int) else None,
        )
    )
    return status == "success"


#: Where Ollama listens on this machine when nothing says otherwise.
LOOPBACK_OLLAMA_URL = "http://127.0.0.1:11434"


async def settle_container_default(
    settings: Settings, *, loopback: str = LOOPBACK_OLLAMA_URL, timeout: float = 2.0
) -> Settings:
    """In a container the default Ollama URL is ``host.docker.internal``, which only some
    runtimes provide (Docker Desktop; Linux with ``--add-host``). When that name does not
    resolve and Ollama answers on ``loopback`` (``--network host``, or Ollama in the same
    container), use loopback; the settings' origin says which was chosen and why.

    Settings whose Ollama URL came from anywhere else are returned as they are.
    """
    from ..config import CONTAINER_DEFAULT

    if settings.origins.get("ollama_url") != CONTAINER_DEFAULT:
        return settings
    parts = httpx.URL(settings.ollama_url)
    resolves = False
    with trio.move_on_after(timeout):
        try:
            resolves = bool(await trio.socket.getaddrinfo(parts.host, parts.port or 80))
        except OSError:
            resolves = False
    if resolves:
        return settings
    async with open_client(loopback, connect_timeout=timeout) as client:
        answers = await probe_version(client, timeout=timeout) is not None
    origins = dict(settings.origins)
    if answers:
        origins["ollama_url"] = f"loopback, because {parts.host} (the container default) does not resolve here"
        return dataclasses.replace(settings, ollama_url=loopback, origins=origins)
    origins["ollama_url"] = f"the container default; {parts.host} does not resolve here, nor does {loopback} answer"
    return dataclasses.replace(settings, origins=origins)
