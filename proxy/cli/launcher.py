"""``claude-code-ollama-proxy claude [ARGS…]``: Claude Code on local models in one command.

1. Find the proxy: one already listening at the configured host and port (its
   ``GET /health`` answers with a ``proxy_version``), else start one in this process on a
   free loopback port, logging to a file only (Claude Code owns the terminal).
2. Ask Ollama for the context window of the models Claude Code will converse with.
3. Run Claude Code with the environment :func:`claude_environment` builds, the arguments
   passed through, stdin/stdout/stderr inherited; return its exit code.

Ctrl-C belongs to Claude Code (it uses it to interrupt and to quit), so this process
ignores SIGINT while Claude Code runs; SIGTERM is passed on to it.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import shutil
import signal
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

import httpx
import trio

from ..config import Settings, describe_source, local_url
from ..errors import ProxyError
from ..ollama.admin import describe_models
from ..ollama.client import open_client
from ..protocol.auto_mode import AUTO_MODE_MODEL
from ..protocol.models import resolve_model
from ..protocol.routing import host_urls

__all__ = ["claude_models", "claude_environment", "find_running_proxy", "context_window", "run_claude"]

log = logging.getLogger("proxy.launcher")


def claude_models(settings: Settings) -> dict[str, str]:
    """The Ollama model for each of Claude Code's model variables.

    The main model is the default model; each tier is what the proxy would resolve for a
    ``claude-<tier>`` name (the tier key of the map, else the default); subagents use the
    sonnet tier, as Claude Code's own subagents do by default. Ollama names are passed
    as they are, so Claude Code shows the real model and the proxy forwards it unchanged.
    """
    tier = {t: resolve_model(f"claude-{t}", settings.model_map, settings.default_model) for t in ("haiku", "sonnet", "opus")}
    return {
        "ANTHROPIC_MODEL": settings.default_model,
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": tier["haiku"],
        "ANTHROPIC_DEFAULT_SONNET_MODEL": tier["sonnet"],
        "ANTHROPIC_DEFAULT_OPUS_MODEL": tier["opus"],
        "CLAUDE_CODE_SUBAGENT_MODEL": tier["sonnet"],
        # the name older Claude Code versions read for the background (haiku) model
        "ANTHROPIC_SMALL_FAST_MODEL": tier["haiku"],
    }


#: The variables Claude Code reads for its context window. CLAUDE_CODE_AUTO_COMPACT_WINDOW
#: is documented ("context capacity in tokens used for auto-compaction calculations",
#: capped at what Claude Code believes the model holds: 200k for an unknown id);
#: CLAUDE_CODE_MAX_CONTEXT_TOKENS is what it reads for model ids it does not know (not
#: claude-*), which is what we pass. A value the user already exported is kept.
CONTEXT_VARIABLES = ("CLAUDE_CODE_AUTO_COMPACT_WINDOW", "CLAUDE_CODE_MAX_CONTEXT_TOKENS")


def claude_environment(
    environ: Mapping[str, str],
    *,
    base_url: str,
    settings: Settings,
    context_tokens: int | None,
) -> dict[str, str]:
    """The environment Claude Code runs with: ``environ`` plus the proxy's variables."""
    env = dict(environ)
    # A real Anthropic key would take precedence over the token and be sent to us instead.
    env.pop("ANTHROPIC_API_KEY", None)
    env["ANTHROPIC_BASE_URL"] = base_url
    env["ANTHROPIC_AUTH_TOKEN"] = settings.api_key or "ollama-local"
    env.update(claude_models(settings))
    env["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] = "1"  # no telemetry, no update checks
    env["CLAUDE_CODE_ATTRIBUTION_HEADER"] = "0"  # the per-request billing header defeats Ollama's prefix cache
    # Auto mode's safety check runs on Anthropic's servers; behind the proxy Claude Code
    # makes the check itself, through the proxy, with a model name of its own (a model-map
    # entry: claude-auto-mode=MODEL). See proxy/protocol/auto_mode.py.
    env.setdefault("CLAUDE_CODE_AUTO_MODE_SERVER", "0")
    env.setdefault("CLAUDE_CODE_AUTO_MODE_MODEL", AUTO_MODE_MODEL)
    if context_tokens:
        for name in CONTEXT_VARIABLES:
            env.setdefault(name, str(context_tokens))
    return env


async def find_running_proxy(host: str, port: int, *, timeout: float = 1.5) -> str | None:
    """The base URL of a claude-code-ollama-proxy answering at host:port, else None."""
    if not port:
        return None
    url = local_url(host, port)
    with trio.move_on_after(timeout):
        try:
            async with open_client(url, connect_timeout=timeout) as client:
                response = await client.get("/health")
                if response.status_code == 200 and "proxy_version" in response.json():
                    return url
        except (httpx.HTTPError, ValueError, TypeError):
            return None
    return None


def _effective_window(settings: Settings, context_length: int) -> int:
    """What the proxy will actually give a model: its context length, or less when the
    settings pin or cap num_ctx (``num_ctx``/``max_num_ctx``; 0 means not set)."""
    window = context_length
    for value in (settings.num_ctx, settings.max_num_ctx):
        if value > 0:
            window = min(window, value)
    return window


async def context_window(settings: Settings, *, timeout: float = 10.0) -> int | None:
    """The smallest context window among the main and the subagent model, the two that
    carry long conversations; None when Ollama cannot tell (a warning says why)."""
    models = claude_models(settings)
    names = [models["ANTHROPIC_MODEL"], models["CLAUDE_CODE_SUBAGENT_MODEL"]]
    # the first host: every host is expected to run the same models' builds
    async with open_client(
        host_urls(settings.ollama_url)[0], connect_timeout=min(5.0, timeout),
        origin=describe_source(settings, "ollama_url"),
    ) as client:
        with trio.move_on_after(timeout):
            details = await describe_models(client, names)
            windows = []
            for name in dict.fromkeys(names):
                found = details[name]
                if isinstance(found, ProxyError):
                    _warn(f"cannot read the context window of {name}: {found.message}")
                    return None
                if found.context_length:
                    windows.append(_effective_window(settings, found.context_length))
            return min(windows) if windows else None
    _warn(f"Ollama at {settings.ollama_url} did not describe the models within {timeout:g} s")
    return None


def _warn(message: str) -> None:
    print(f"claude-code-ollama-proxy: warning: {message}", file=sys.stderr)


def default_log_file(environ: Mapping[str, str] | None = None) -> str:
    """Where the in-process proxy logs when no log_file is set:
    ``$XDG_STATE_HOME/claude-code-ollama-proxy/claude.log`` (``~/.local/state`` by default)."""
    environ = os.environ if environ is None else environ
    state = environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return str(Path(state) / "claude-code-ollama-proxy" / "claude.log")


def _exit_code(returncode: int) -> int:
    """A child killed by signal N exits like a shell reports it: 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


async def _run_child(command: list[str], env: dict[str, str]) -> int:
    # The signal receiver is open before the child starts: no Ctrl-C may slip through as a
    # KeyboardInterrupt that would kill Claude Code under the user's hands.
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            process: trio.Process = await nursery.start(
                functools.partial(trio.run_process, command, env=env, stdin=None, check=False)
            )

            async def relay_signals() -> None:
                async for signum in signals:
                    if signum == signal.SIGTERM:
                        process.send_signal(signal.SIGTERM)
                    # SIGINT: the terminal sent it to Claude Code too; it decides.

            nursery.start_soon(relay_signals)
            returncode = await process.wait()
            nursery.cancel_scope.cancel()
    return _exit_code(returncode)


async def run_claude(
    settings: Settings,
    args: Sequence[str],
    *,
    claude_bin: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    """Run Claude Code through the proxy; return its exit code (127 when not found)."""
    environ = dict(os.environ if environ is None else environ)
    executable = shutil.which(claude_bin or "claude", path=environ.get("PATH"))
    if executable is None:
        print(
            f"claude-code-ollama-proxy: Claude Code ({claude_bin or 'claude'}) is not on PATH."
            " Install it with `npm install -g @anthropic-ai/claude-code`, or name it with --claude-bin.",
            file=sys.stderr,
        )
        return 127

    async with trio.open_nursery() as nursery:
        url = await find_running_proxy(settings.host, settings.port)
        where = "running proxy"
        if url is None:
            from ..server.runner import serve

            log_file = settings.log_file or default_log_file(environ)
            inner = dataclasses.replace(settings, host="127.0.0.1", port=0, log_file=log_file)
            urls = await nursery.start(functools.partial(serve, inner, console_log=False))
            url, where = urls[0], f"in-process proxy, log {log_file}"
        tokens = await context_window(settings)
        env = claude_environment(environ, base_url=url, settings=settings, context_tokens=tokens)
        if not settings.quiet:
            print(
                f"claude-code-ollama-proxy: Claude Code → {url} ({where}) → Ollama at {settings.ollama_url}"
                f" ({describe_source(settings, 'ollama_url')});"
                f" model {env['ANTHROPIC_MODEL']}, context window {tokens or 'unknown'}",
                file=sys.stderr,
            )
        code = await _run_child([executable, *args], env)
        nursery.cancel_scope.cancel()  # Claude Code is gone: stop the in-process proxy now
    return code

