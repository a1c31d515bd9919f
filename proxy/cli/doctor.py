"""``claude-code-ollama-proxy doctor``: is this machine ready to run Claude Code locally?

Two halves: :func:`gather_facts` asks Ollama (version, installed models, ``/api/show`` of
each mapped model), looks for a running proxy and for Claude Code on PATH;
:func:`evaluate` turns those facts into checks — each a line with a verdict and, when
something is wrong, the fix. Evaluation does no I/O, so every verdict is easy to test.

What Claude Code needs from a model, and why the thresholds are what they are:

* **tool calling** — Claude Code is an agent: every action (read, edit, run) is a tool
  call. A model without Ollama's ``tools`` capability cannot drive it.
* **context** — its first request alone is 15–60k tokens (system prompt, ~20 tool
  schemas, CLAUDE.md). Below 32k tokens it cannot even start (FAIL); below 64k it will
  compact very often (WARN).
* **thinking** — optional: requests asking for it are answered without (WARN).

The haiku tier serves short side requests (titles, summaries), so its shortcomings are
warnings, not failures, when no other role uses the same model.
"""

from __future__ import annotations

import dataclasses
import enum
import shutil
import textwrap
from typing import Any, Callable

import trio

from ..config import Settings, describe_source, is_loopback_host
from ..errors import ProxyError
from ..ollama.admin import (
    InstalledModel,
    ModelDetails,
    canonical_name,
    describe_models,
    get_version,
    list_models,
    parse_version,
)
from ..ollama.client import open_client
from ..protocol.models import resolve_model

__all__ = [
    "Verdict", "Check", "Facts", "model_roles", "evaluate", "evaluate_hosts", "gather_facts", "render_table", "exit_code",
]

#: Below this Claude Code cannot hold its first request.
MIN_CONTEXT = 32_768
#: Below this it compacts every few turns.
GOOD_CONTEXT = 65_536
#: The oldest Ollama whose wire behaviour the proxy was built against (see WIRE.md).
MIN_OLLAMA = (0, 12, 0)


class Verdict(enum.Enum):
    OK = "ok"
    INFO = "info"
    WARN = "warn"
    FAIL = "fail"


@dataclasses.dataclass(frozen=True, slots=True)
class Check:
    subject: str
    verdict: Verdict
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"check": self.subject, "verdict": self.verdict.value, "detail": self.detail, "fix": self.fix}


@dataclasses.dataclass(frozen=True, slots=True)
class Facts:
    ollama_url: str
    #: Ollama's version, or None when it could not be reached
    version: str | None
    #: why Ollama could not be reached
    unreachable: str | None = None
    installed: tuple[InstalledModel, ...] = ()
    details: dict[str, ModelDetails | ProxyError] = dataclasses.field(default_factory=dict)
    #: base URL of a proxy already answering at the configured host:port
    proxy_url: str | None = None
    #: where the ``claude`` executable is
    claude_path: str | None = None


def model_roles(settings: Settings) -> dict[str, list[str]]:
    """Each Ollama model the settings use → the roles it plays (``default``, the tiers,
    and ``map KEY`` for every other key of the model map), in a stable order."""
    roles: dict[str, list[str]] = {}
    roles.setdefault(settings.default_model, []).append("default")
    for tier in ("haiku", "sonnet", "opus"):
        roles.setdefault(resolve_model(f"claude-{tier}", settings.model_map, settings.default_model), []).append(tier)
    for key, target in settings.model_map.items():
        if key.lower() not in ("haiku", "sonnet", "opus"):
            roles.setdefault(target, []).append(f"map {key}")
    return roles


def _ollama_checks(settings: Settings, facts: Facts) -> list[Check]:
    subject = f"Ollama at {facts.ollama_url}"
    origin = describe_source(settings, "ollama_url")
    if facts.version is None:
        return [
            Check(
                subject,
                Verdict.FAIL,
                f"not reachable: {facts.unreachable or 'no answer'}; this URL is {origin}",
                "start Ollama (`ollama serve` or scripts/ollama-start), or point the proxy at it"
                " with --ollama-url / PROXY_OLLAMA_URL",
            )
        ]
    checks = [Check(subject, Verdict.OK, f"reachable, version {facts.version}; this URL is {origin}")]
    parsed = parse_version(facts.version)
    minimum = ".".join(map(str, MIN_OLLAMA))
    if parsed is None:
        checks.append(Check("Ollama version", Verdict.WARN, f"cannot read version {facts.version!r}", f"use Ollama {minimum} or newer"))
    elif parsed < MIN_OLLAMA:
        checks.append(
            Check("Ollama version", Verdict.WARN, f"{facts.version} is older than {minimum}, the oldest the proxy is built for",
                  "upgrade Ollama")
        )
    return checks


def _model_checks(settings: Settings, model: str, roles: list[str], facts: Facts, tool_models: list[str]) -> list[Check]:
    minor = roles == ["haiku"]  # only the haiku tier uses it: side requests
    hard = Verdict.WARN if minor else Verdict.FAIL
    subject = f"{model} ({', '.join(roles)})"
    installed = {canonical_name(m.name) for m in facts.installed}
    if canonical_name(model) not in installed:
        return [
            Check(subject, Verdict.FAIL, "not installed in Ollama",
                  f"claude-code-ollama-proxy pull {model}   (or map the role to an installed model)")
        ]
    found = facts.details.get(model)
    if not isinstance(found, ModelDetails):
        reason = found.message if isinstance(found, ProxyError) else "no answer"
        return [Check(subject, Verdict.WARN, f"installed; /api/show failed: {reason}", "check Ollama's log")]
    checks = [Check(subject, Verdict.OK, "installed")]

    if found.tools:
        checks.append(Check(f"{model} tool calling", Verdict.OK, "supported"))
    else:
        others = ", ".join(tool_models[:4]) or "none installed; e.g. qwen3:8b or qwen3-coder:30b"
        emulated = settings.tool_emulation
        verdict = Verdict.WARN if emulated or minor else Verdict.FAIL
        detail = "no native tool calling" + ("; the proxy emulates it in the prompt (less reliable)" if emulated else
                                              "; Claude Code acts only through tools")
        checks.append(Check(f"{model} tool calling", verdict, detail, f"map the role to a model with tools: {others}"))

    if found.thinking:
        checks.append(Check(f"{model} thinking", Verdict.OK, "supported"))
    else:
        strict = settings.strict_thinking
        verdict = Verdict.FAIL if strict else (Verdict.INFO if minor else Verdict.WARN)
        checks.append(
            Check(f"{model} thinking", verdict, "not supported: thinking requests are answered without thinking"
                  + (" (strict_thinking: rejected)" if strict else ""),
                  "fine for most work; for thinking pick e.g. qwen3 or deepseek-r1")
        )

    length = found.context_length
    if length is None:
        checks.append(Check(f"{model} context", Verdict.WARN, "Ollama did not report a context length", ""))
        return checks
    window = _effective_window(settings, length) if length else length
    capped = window < length
    if window < MIN_CONTEXT:
        checks.append(
            Check(f"{model} context", hard,
                  f"{window} tokens{_capped_note(settings, length) if capped else ''};"
                  " Claude Code's first request alone is 15–60k tokens",
                  f"raise max_num_ctx / num_ctx to at least {MIN_CONTEXT} (the model takes {length})" if capped
                  and length >= MIN_CONTEXT else f"use a model with at least {GOOD_CONTEXT} tokens of context")
        )
    elif window < GOOD_CONTEXT and capped and length >= GOOD_CONTEXT:
        checks.append(
            Check(f"{model} context", Verdict.WARN, f"{window} tokens{_capped_note(settings, length)}:"
                  " Claude Code will compact often", f"raise max_num_ctx / num_ctx (the model takes {length})")
        )
    elif window < GOOD_CONTEXT:
        # Enough to work: the launcher tells Claude Code this window, so it compacts when
        # the window fills instead of having its prompt cut. Longer sessions want more.
        checks.append(
            Check(f"{model} context", Verdict.INFO,
                  f"{window} tokens: enough; Claude Code compacts its history when they fill",
                  f"fewer compactions: a model with {GOOD_CONTEXT}+ tokens, e.g. qwen3-coder:30b (262144) if"
                  " it fits in memory (`claude-code-ollama-proxy pull qwen3-coder:30b`, then --default-model)")
        )
    else:
        checks.append(Check(f"{model} context", Verdict.OK, f"{window} tokens{_capped_note(settings, length) if capped else ''}"))
    return checks


def _effective_window(settings: Settings, context_length: int) -> int:
    from .launcher import _effective_window as effective

    return effective(settings, context_length)


def _capped_note(settings: Settings, length: int) -> str:
    return f" (num_ctx/max_num_ctx cap the model's {length})"


def evaluate_hosts(settings: Settings, hosts: list[Facts]) -> list[Check]:
    """Several Ollama hosts: each host's own checks, then the models as the proxy sees
    them (installed on any host), each with the hosts that have it, then the rest."""
    reachable = [facts for facts in hosts if facts.version is not None]
    installed: dict[str, InstalledModel] = {}
    details: dict[str, ModelDetails | ProxyError] = {}
    for facts in reachable:
        for entry in facts.installed:
            installed.setdefault(canonical_name(entry.name), entry)
        for name, found in facts.details.items():
            if isinstance(found, ModelDetails) or name not in details:
                details[name] = found
    merged = Facts(
        ", ".join(f.ollama_url for f in hosts),
        reachable[0].version if reachable else None,
        "no host answered" if not reachable else None,
        tuple(installed.values()),
        details,
        hosts[0].proxy_url,
        hosts[0].claude_path,
    )
    checks = [check for facts in hosts for check in _ollama_checks(settings, facts)]
    for check in evaluate(settings, merged, ollama=False):
        checks.append(check)
        model = next((m for m in model_roles(settings) if check.subject.startswith(f"{m} (")), None)
        if model is None or check.verdict is Verdict.FAIL:
            continue
        having = [f.ollama_url for f in reachable if canonical_name(model) in {canonical_name(m.name) for m in f.installed}]
        missing = [f.ollama_url for f in hosts if f.ollama_url not in having]
        if missing:
            checks.append(
                Check(f"{model} hosts", Verdict.INFO, f"on {', '.join(having)}; not on {', '.join(missing)}",
                      f"its sessions can fail over only among those; `claude-code-ollama-proxy pull {model}` puts it on every host")
            )
        else:
            checks.append(Check(f"{model} hosts", Verdict.OK, f"on all {len(hosts)} hosts"))
    return checks


def evaluate(settings: Settings, facts: Facts, *, ollama: bool = True) -> list[Check]:
    """Every check, in reading order: Ollama, each model, the proxy, Claude Code, exposure.
    ``ollama=False`` leaves out Ollama's own (evaluate_hosts checks each host)."""
    checks = _ollama_checks(settings, facts) if ollama else []
    roles = model_roles(settings)
    if facts.version is None:
        checks.append(Check("models", Verdict.INFO, f"not checked: {len(roles)} mapped, Ollama unreachable",
                            "fix Ollama first"))
    else:
        tool_models = sorted(
            name for name, found in facts.details.items() if isinstance(found, ModelDetails) and found.tools
        )
        for model, model_roles_ in roles.items():
            checks += _model_checks(settings, model, model_roles_, facts, tool_models)

    address = f"http://{settings.host}:{settings.port}"
    if facts.proxy_url:
        checks.append(Check(f"proxy at {address}", Verdict.OK, "running"))
    else:
        checks.append(Check(f"proxy at {address}", Verdict.INFO, "not running",
                            "`make run` starts it; `claude-code-ollama-proxy claude` starts one by itself"))
    if facts.claude_path:
        checks.append(Check("Claude Code", Verdict.OK, f"found at {facts.claude_path}"))
    else:
        checks.append(Check("Claude Code", Verdict.WARN, "`claude` is not on PATH",
                            "npm install -g @anthropic-ai/claude-code"))
    if not settings.api_key and not is_loopback_host(settings.host):
        checks.append(Check("exposure", Verdict.WARN, f"host {settings.host} is reachable from other machines and no API key is set",
                            "set --api-key (env PROXY_API_KEY), or bind 127.0.0.1"))
    return checks


async def gather_facts(
    settings: Settings,
    *,
    which: Callable[[str], str | None] = shutil.which,
    timeout: float = 15.0,
) -> Facts:
    """Ask Ollama and look around; never raises for an unreachable Ollama."""
    from .launcher import find_running_proxy

    claude_path = which("claude")
    proxy_url = await find_running_proxy(settings.host, settings.port)
    async with open_client(settings.ollama_url, connect_timeout=min(5.0, timeout)) as client:
        with trio.move_on_after(timeout):
            try:
                version = await get_version(client)
                installed = tuple(await list_models(client))
            except ProxyError as exc:
                return Facts(settings.ollama_url, None, exc.message, proxy_url=proxy_url, claude_path=claude_path)
            present = {canonical_name(m.name): m.name for m in installed}
            wanted = [present[canonical_name(m)] for m in model_roles(settings) if canonical_name(m) in present]
            # every installed model too, so a failing line can suggest one that has tools
            details = await describe_models(client, [*wanted, *(m.name for m in installed)])
            details.update({m: details[present[canonical_name(m)]] for m in model_roles(settings)
                            if canonical_name(m) in present})
            return Facts(settings.ollama_url, version, None, installed, details, proxy_url, claude_path)
    return Facts(settings.ollama_url, None, f"no answer within {timeout:g} s", proxy_url=proxy_url, claude_path=claude_path)


def exit_code(checks: list[Check]) -> int:
    """1 when any check failed, else 0."""
    return 1 if any(c.verdict is Verdict.FAIL for c in checks) else 0


def render_table(checks: list[Check], *, width: int = 44) -> str:
    """The checks as an aligned text table (DETAIL and FIX wrapped at ``width``), then a
    one-line summary."""
    rows = [("CHECK", "VERDICT", "DETAIL", "FIX")] + [(c.subject, c.verdict.name, c.detail, c.fix) for c in checks]
    cells = [[[row[0]], [row[1]], textwrap.wrap(row[2], width, break_on_hyphens=False) or [""], textwrap.wrap(row[3], width, break_on_hyphens=False) or [""]]
             for row in rows]
    widths = [max(len(line) for row in cells for line in row[i]) for i in range(4)]
    lines = []
    for row in cells:
        for n in range(max(len(column) for column in row)):
            parts = [(column[n] if n < len(column) else "").ljust(w) for column, w in zip(row, widths)]
            lines.append("  ".join(parts).rstrip())
    failed = sum(c.verdict is Verdict.FAIL for c in checks)
    warned = sum(c.verdict is Verdict.WARN for c in checks)
    if failed:
        summary = f"{failed} failed, {warned} warning(s): Claude Code will not work well until the failures are fixed."
    elif warned:
        summary = f"ready, with {warned} warning(s)."
    else:
        summary = "ready."
    return "\n".join([*lines, "", summary])
