"""Shared fixtures: a fake Ollama and the real proxy under Hypercorn, both on port 0."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any, Awaitable, Callable

import anthropic
import pytest
import trio

from proxy.server.app import ProxyApp
from proxy.config import Settings, load_settings
from proxy.server.runner import serve
from tests.claude_code import claude_code_binary
from tests.fake_ollama import FakeOllama, Model

FIXTURES = Path(__file__).resolve().parent / "data" / "claude-code"

MODELS = [
    Model("qwen3:8b", capabilities=("completion", "tools", "thinking"), context_length=40960),
    Model("gemma3:4b", capabilities=("completion", "vision"), context_length=131072),
    Model("llama3.2:3b", capabilities=("completion", "tools"), context_length=131072),
]


@dataclasses.dataclass
class RunningProxy:
    url: str
    settings: Settings
    #: the served application, for tests that check its internal state (bounded tables)
    app: ProxyApp

    def client(self, **kwargs: Any) -> anthropic.Anthropic:
        """A synchronous SDK client (run it with ``trio.to_thread.run_sync``). No retries:
        a test must see the first answer."""
        kwargs.setdefault("max_retries", 0)
        kwargs.setdefault("timeout", 20)
        return anthropic.Anthropic(base_url=self.url, api_key="test-key", **kwargs)


@pytest.fixture
async def fake_ollama(nursery: trio.Nursery) -> FakeOllama:
    fake = FakeOllama(models=list(MODELS))
    await nursery.start(fake.serve)
    return fake


@pytest.fixture
def start_proxy(
    nursery: trio.Nursery, fake_ollama: FakeOllama
) -> Callable[..., Awaitable[RunningProxy]]:
    """``await start_proxy(commit_grace=0.2, ...)``: the real server on 127.0.0.1:0.

    Keyword arguments are settings; ``shutdown_trigger`` (an async callable) ends it
    gracefully when it returns."""

    async def start(*, shutdown_trigger: Any = None, **overrides: Any) -> RunningProxy:
        values = {"host": "127.0.0.1", "port": 0, "ollama_url": fake_ollama.url, "log_level": "DEBUG"}
        values.update(overrides)
        settings = load_settings(values, environ={}, read_config_file=False)
        app = ProxyApp(settings)
        urls = await nursery.start(
            functools.partial(serve, settings, shutdown_trigger=shutdown_trigger, app=app)
        )
        return RunningProxy(url=urls[0], settings=settings, app=app)

    return start


@pytest.fixture
async def proxy(start_proxy: Callable[..., Awaitable[RunningProxy]]) -> RunningProxy:
    return await start_proxy()


@pytest.fixture(scope="session")
def claude_bin():
    """The real Claude Code binary (installed from npm into .cache/ on first use)."""
    try:
        return claude_code_binary()
    except RuntimeError as exc:  # no npm, or the registry is unreachable
        # A failure, not a skip: a run that never started the real client proved nothing
        # about it. README says what `make test` needs (npm) and fetches.
        pytest.fail(f"{exc}\n(make test needs npm to fetch Claude Code into .cache/; see README)")
