"""Claude Code itself, for end-to-end tests: installed from npm into a cache folder.

``@anthropic-ai/claude-code`` ships its native binary in a platform package
(``@anthropic-ai/claude-code-linux-x64`` …); its postinstall step only links it, so we
install with ``--ignore-scripts`` and run the platform binary directly.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import trio
from trio_websocket import open_websocket_url

__all__ = ["CLAUDE_CODE_VERSION", "claude_code_binary", "claude_code_env", "is_agent_turn", "run_watching_feed"]

#: The version the fixtures in tests/data/claude-code/ were captured from.
CLAUDE_CODE_VERSION = "2.1.328"
CACHE = Path(__file__).resolve().parents[1] / ".cache" / f"claude-code-{CLAUDE_CODE_VERSION}"


def _platform_package() -> str:
    machine = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine().lower(), platform.machine().lower()
    )
    system = {"linux": "linux", "darwin": "darwin"}.get(platform.system().lower(), platform.system().lower())
    return f"@anthropic-ai/claude-code-{system}-{machine}"


def claude_code_binary() -> Path:
    """The path of the Claude Code executable, installing it first if needed.

    Installs ``@anthropic-ai/claude-code@CLAUDE_CODE_VERSION`` into ``.cache/`` with npm,
    into a temporary folder renamed into place (so concurrent callers never see half an
    install). Raises RuntimeError when npm is missing or the install fails.
    """
    binary = CACHE / "node_modules" / _platform_package() / "claude"
    if binary.is_file():
        return binary
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is needed to install Claude Code for the end-to-end test")
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="claude-code-", dir=CACHE.parent))
    try:
        result = subprocess.run(
            [npm, "install", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error",
             "--prefix", str(staging), f"@anthropic-ai/claude-code@{CLAUDE_CODE_VERSION}"],
            capture_output=True, text=True, timeout=600,
        )
        if result.returncode != 0:
            raise RuntimeError(f"npm install of Claude Code failed:\n{result.stderr[-2000:]}")
        try:
            staging.rename(CACHE)
        except OSError:
            if not binary.is_file():  # not a concurrent install that won the race
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if not binary.is_file():
        raise RuntimeError(f"Claude Code installed, but {binary} is missing")
    return binary


def claude_code_env(base_url: str, home: Path) -> dict[str, str]:
    """The environment to run Claude Code non-interactively against ``base_url``."""
    env = {
        key: value for key, value in os.environ.items()
        if not key.startswith(("ANTHROPIC_", "CLAUDE_", "CLAUDECODE"))
    }
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        ANTHROPIC_BASE_URL=base_url,
        ANTHROPIC_AUTH_TOKEN="local-test",
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
        DISABLE_AUTOUPDATER="1",
        CLAUDE_CODE_ATTRIBUTION_HEADER="0",
    )
    return env


def is_agent_turn(record: Any) -> bool:
    """Claude Code's main loop offers tools; its side requests (titles, …) do not.
    ``record``: a request the fake Ollama recorded."""
    return bool(record.body and record.body.get("tools"))


async def run_watching_feed(
    command: list[str], *, cwd: Path, env: dict[str, str], proxy_url: str, timeout: float
) -> tuple[subprocess.CompletedProcess, list[dict]]:
    """Run Claude Code's ``command`` to its end (stdin closed, output captured) while
    listening to the proxy's live feed; return the finished process and the feed's events.
    Fails the test (trio.TooSlowError) after ``timeout`` seconds."""
    feed: list[dict] = []

    async def watch_feed(task_status=trio.TASK_STATUS_IGNORED) -> None:
        async with open_websocket_url(proxy_url.replace("http://", "ws://") + "/v1/events") as ws:
            task_status.started()
            while True:
                feed.append(json.loads(await ws.get_message()))

    with trio.fail_after(timeout):
        async with trio.open_nursery() as nursery:
            await nursery.start(watch_feed)
            result = await trio.run_process(
                command, cwd=cwd, env=env, capture_stdout=True, capture_stderr=True, check=False,
                stdin=subprocess.DEVNULL,
            )
            await trio.sleep(0.2)  # the last events are on their way
            nursery.cancel_scope.cancel()
    return result, feed
