"""Which Ollama host answers a request. Sans-I/O: no trio, no httpx, no ``async``.

Theory of operation
-------------------
The proxy may front several Ollama hosts (``--ollama-url`` given more than once). For each
request it makes a *plan*: the eligible hosts in the order to try them. The I/O layer
(``proxy/ollama/hosts.py``) tries them in that order while nothing has been sent to the client and
reports each outcome back here; the polls of ``/api/tags`` and ``/api/ps`` report here too.
Time is an argument (``now``, seconds on any monotonic clock), never read here.

The order of a plan, for a model and a session key:

1. **Model.** Only hosts that have the model installed (or whose list is not known yet).
2. **Health.** Hosts marked down (a refused, reset or timed-out connection) go last; each
   comes back on its own when its backoff expires (then it is tried again, and one success
   clears it).
3. **Load.** Hosts at their saturation limit (``limit`` in flight, or learned from a 503)
   go after the ones with room.
4. **Loaded model.** A host that has the model loaded (``/api/ps``, or it just answered for
   it) goes before one that would have to load it.
5. **Affinity.** Within each group, rendezvous (highest-random-weight) hashing of the
   session key and the host's URL: every replica of the proxy computes the same order with
   no shared state, and removing a host moves only the sessions that were on it.

The scores use BLAKE2b of the key and the URL (never Python's salted ``hash``), so two
processes agree. Weighted HRW: score = -weight / ln(u), u in (0, 1) from the hash.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import math
from typing import Any, Iterable, Mapping

__all__ = [
    "HostSpec",
    "parse_host_spec",
    "parse_host_list",
    "format_host_list",
    "host_urls",
    "HostState",
    "Host",
    "HostTable",
    "rendezvous_score",
    "session_key",
    "normalize_model",
]

#: backoff of a down host: first retry after BASE s, doubling, at most MAX s
BACKOFF_BASE = 1.0
BACKOFF_MAX = 60.0
#: how long a limit learned from a 503 holds before the host is given more again
BUSY_MEMORY = 30.0


# -- configuration ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class HostSpec:
    """One configured Ollama: its base URL (its identity, hashed for affinity) and weight."""

    url: str
    weight: float = 1.0

    def __str__(self) -> str:
        return self.url if self.weight == 1.0 else f"{self.url}={self.weight:g}"


def parse_host_spec(text: str) -> tuple[str, float]:
    """``URL`` or ``URL=WEIGHT`` → (URL as written, weight). Raises ValueError.

    The weight is a positive number: a host of weight 2 gets about twice the sessions of a
    host of weight 1. Only a number after the *last* ``=`` counts as a weight, so a URL with
    a query string stays whole.
    """
    text = text.strip()
    url, sep, tail = text.rpartition("=")
    if sep and url:
        try:
            weight = float(tail)
        except ValueError:
            return text, 1.0
        if not math.isfinite(weight) or weight <= 0:
            raise ValueError(f"weight {tail!r} of {url}: expected a number > 0")
        return url, weight
    return text, 1.0


def parse_host_list(value: str) -> list[HostSpec]:
    """The normalized setting (comma-separated ``URL[=WEIGHT]``) → specs, in order."""
    specs = []
    for part in value.split(","):
        if part.strip():
            url, weight = parse_host_spec(part)
            specs.append(HostSpec(url, weight))
    return specs


def host_urls(value: str) -> list[str]:
    """The URLs of the ``ollama_url`` setting, in order, without weights."""
    return [spec.url for spec in parse_host_list(value)]


def format_host_list(specs: Iterable[HostSpec]) -> str:
    return ",".join(str(spec) for spec in specs)


# -- sessions ---------------------------------------------------------------------------


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            block.get("text", "") for block in content if isinstance(block, dict) and isinstance(block.get("text"), str)
        )
    return ""


def session_key(header: str | None, body: Mapping[str, Any]) -> str:
    """The key that keeps a Claude Code session on one host.

    ``X-Claude-Code-Session-Id`` when sent; else the ``session_id`` inside the JSON string
    ``metadata.user_id``; else a digest of the system prompt and the first user message
    (both stay the same for every turn of a conversation, whichever client sent it).
    """
    if header and header.strip():
        return "session:" + header.strip()
    metadata = body.get("metadata")
    user_id = metadata.get("user_id") if isinstance(metadata, dict) else None
    if isinstance(user_id, str) and user_id:
        try:
            parsed = json.loads(user_id)
        except (ValueError, RecursionError):  # RecursionError: nested past the decoder's depth
            parsed = None
        session_id = parsed.get("session_id") if isinstance(parsed, dict) else None
        if isinstance(session_id, str) and session_id:
            return "session:" + session_id
    digest = hashlib.blake2b(digest_size=16)
    digest.update(_text_of(body.get("system")).encode("utf-8", "replace"))
    digest.update(b"\0")
    messages = body.get("messages")
    if isinstance(messages, list):
        first_user = next((m for m in messages if isinstance(m, dict) and m.get("role") == "user"), None)
        if first_user is not None:
            digest.update(_text_of(first_user.get("content")).encode("utf-8", "replace"))
    return "prompt:" + digest.hexdigest()


def rendezvous_score(key: str, url: str, weight: float = 1.0) -> float:
    """Weighted highest-random-weight score of ``url`` for ``key`` (higher wins)."""
    raw = hashlib.blake2b(f"{key}\0{url}".encode("utf-8", "replace"), digest_size=8).digest()
    return -weight / math.log(unit_interval(raw))


#: the largest float below 1.0
_BELOW_ONE = 1.0 - 2.0**-53


def unit_interval(raw: bytes) -> float:
    """Eight hash bytes as u in (0, 1), never 0 or 1, so ln(u) is finite and negative.

    ``(n + 0.5) / 2**64`` rounds to exactly 1.0 for the top ~2**10 values of n: that
    (key, host) pair would divide by zero on every request. Those few values take the
    largest float below 1.0 instead; every other value is unchanged."""
    return min((int.from_bytes(raw, "big") + 0.5) / 2.0**64, _BELOW_ONE)


def normalize_model(name: str) -> str:
    """Ollama's names: ``qwen3`` is ``qwen3:latest``; case does not matter."""
    name = name.strip().lower()
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


# -- hosts ------------------------------------------------------------------------------


class HostState(enum.Enum):
    UNKNOWN = "unknown"  # not heard from yet
    UP = "up"
    DOWN = "down"  # refused, reset or timed out; skipped until its backoff expires


@dataclasses.dataclass(slots=True)
class Host:
    """What the proxy knows of one Ollama. Changed only through :class:`HostTable`."""

    url: str
    weight: float = 1.0
    state: HostState = HostState.UNKNOWN
    #: installed models (normalized); None until the first /api/tags answer
    installed: frozenset[str] | None = None
    #: models in memory (normalized), from /api/ps and from the answers it gave
    loaded: frozenset[str] = frozenset()
    in_flight: int = 0
    #: consecutive failures; the backoff doubles with each
    failures: int = 0
    #: while down: when it may be tried again
    retry_at: float = 0.0
    last_error: str | None = None
    #: in flight when it last answered 503, and until when that limit holds
    busy_limit: int | None = None
    busy_until: float = 0.0
    #: requests it answered (any status) since start
    served: int = 0

    def is_down(self, now: float) -> bool:
        return self.state is HostState.DOWN and now < self.retry_at

    def limit(self, configured: int, now: float) -> int | None:
        """The in-flight count at which this host counts as saturated (None: no limit)."""
        if configured > 0:
            return configured
        if self.busy_limit is not None and now < self.busy_until:
            return self.busy_limit
        return None

    def is_saturated(self, configured: int, now: float) -> bool:
        limit = self.limit(configured, now)
        return limit is not None and self.in_flight >= limit

    def has_model(self, model: str) -> bool | None:
        """True/False when known; None while the host's list is unknown."""
        if self.installed is None:
            return None
        return normalize_model(model) in self.installed

    def snapshot(self, configured_limit: int, now: float) -> dict[str, Any]:
        """For /health, the live view and the log."""
        return {
            "url": self.url,
            "weight": self.weight,
            "state": "down" if self.is_down(now) else ("retrying" if self.state is HostState.DOWN else self.state.value),
            "in_flight": self.in_flight,
            "limit": self.limit(configured_limit, now),
            "models_installed": None if self.installed is None else len(self.installed),
            "models_loaded": sorted(self.loaded),
            "served": self.served,
            "failures": self.failures,
            "last_error": self.last_error,
            "retry_in": round(max(0.0, self.retry_at - now), 1) if self.state is HostState.DOWN else None,
        }


class HostTable:
    """Every host, and the plan for each request. ``saturation``: in flight per host at
    which it counts as full (0: only what a 503 taught)."""

    def __init__(self, specs: Iterable[HostSpec], *, saturation: int = 0) -> None:
        self.hosts: list[Host] = [Host(spec.url, spec.weight) for spec in specs]
        if not self.hosts:
            raise ValueError("at least one Ollama host is needed")
        urls = [h.url for h in self.hosts]
        if len(set(urls)) != len(urls):
            raise ValueError("the same Ollama URL is listed twice")
        self.saturation = saturation

    def __len__(self) -> int:
        return len(self.hosts)

    def by_url(self, url: str) -> Host:
        return next(h for h in self.hosts if h.url == url)

    # -- plans ------------------------------------------------------------------------

    def hosts_with(self, model: str) -> list[Host]:
        """Hosts that have ``model`` or might (list unknown)."""
        return [h for h in self.hosts if h.has_model(model) is not False]

    def model_is_nowhere(self, model: str) -> bool:
        """True when every host's list is known and none has ``model``."""
        return all(h.has_model(model) is False for h in self.hosts)

    def plan(self, model: str, key: str, now: float) -> list[Host]:
        """The hosts to try for ``model`` and session ``key``, best first (see the module
        docstring). Empty when no host has the model. One host: always that host."""
        if len(self.hosts) == 1:
            return list(self.hosts)
        wanted = normalize_model(model)

        def rank(host: Host) -> tuple[int, int, int, float]:
            return (
                1 if host.is_down(now) else 0,
                1 if host.is_saturated(self.saturation, now) else 0,
                0 if wanted in host.loaded else 1,
                -rendezvous_score(key, host.url, host.weight),
            )

        return sorted(self.hosts_with(model), key=rank)

    # -- outcomes ---------------------------------------------------------------------

    def started(self, host: Host) -> None:
        host.in_flight += 1

    def finished(self, host: Host, *, answered: bool = True) -> None:
        """A request on ``host`` ended; ``answered``: the host answered it (any status)."""
        host.in_flight = max(0, host.in_flight - 1)
        if answered:
            host.served += 1

    def succeeded(self, host: Host, now: float, *, model: str | None = None) -> None:
        """The host answered (any HTTP status): it is up; with ``model``, that model is loaded."""
        host.state = HostState.UP
        host.failures = 0
        host.retry_at = 0.0
        host.last_error = None
        if model is not None:
            host.loaded = host.loaded | {normalize_model(model)}

    def failed(self, host: Host, now: float, reason: str) -> None:
        """Refused, reset or timed out: down until its backoff expires (doubling each time)."""
        host.failures += 1
        host.state = HostState.DOWN
        host.retry_at = now + min(BACKOFF_BASE * 2 ** (host.failures - 1), BACKOFF_MAX)
        host.last_error = reason
        host.loaded = frozenset()  # a restarted Ollama has nothing in memory

    def busy(self, host: Host, now: float) -> None:
        """A 503: the host is up but full at what it has in flight now (counting this one)."""
        self.succeeded(host, now)
        host.busy_limit = max(1, host.in_flight - 1)
        host.busy_until = now + BUSY_MEMORY

    def lacks(self, host: Host, model: str) -> None:
        """The host answered 404 for ``model``: it is not installed there (any more)."""
        if host.installed is not None:
            host.installed = host.installed - {normalize_model(model)}
        host.loaded = host.loaded - {normalize_model(model)}

    def observe_tags(self, host: Host, names: Iterable[str], now: float) -> None:
        self.succeeded(host, now)
        host.installed = frozenset(normalize_model(n) for n in names)

    def observe_ps(self, host: Host, names: Iterable[str], now: float) -> None:
        self.succeeded(host, now)
        host.loaded = frozenset(normalize_model(n) for n in names)

    def snapshot(self, now: float) -> list[dict[str, Any]]:
        return [h.snapshot(self.saturation, now) for h in self.hosts]
