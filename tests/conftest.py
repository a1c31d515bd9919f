"""Shared fixtures: a fake Ollama and the real proxy under Hypercorn, both on port 0."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterator

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


#: Hypercorn's per-connection tasks, by the names trio gives them (see :class:`ProxyTasks`)
CONNECTION_TASKS = ("trio._highlevel_serve_listeners._run_handler", "hypercorn.trio.tcp_server.TCPServer._idle_timeout")


class ProxyTasks(trio.abc.Instrument):
    """The tasks the proxy spawned while this instrument was installed and that have not
    exited yet. "The proxy": a task below a running ``proxy.server.runner.serve`` (its
    Hypercorn connections, request nurseries, lifespan), or one spawned by such a task
    anywhere else (a system task, a nursery it was handed). Installed around requests,
    what is left once they are over outlived its request: a leak.

    A trio instrument sees every spawn and exit as it happens, so nothing depends on the
    names of the proxy's functions. Hypercorn's two tasks per connection are not counted
    (:data:`CONNECTION_TASKS`): they live as long as the client keeps its connection, and
    when a client leaves while the app is still finishing, Hypercorn restarts its idle
    timer and holds them until ``keep_alive_timeout`` (75 s) — its own bounded timer, not
    a task of a request. The request's task (Hypercorn's ``_handle``, which calls the app)
    and everything below it are counted."""

    def __init__(self) -> None:
        #: task → its name, while it lives
        self.live: dict[trio.lowlevel.Task, str] = {}

    def task_spawned(self, task: trio.lowlevel.Task) -> None:
        try:
            spawner: trio.lowlevel.Task | None = trio.lowlevel.current_task()
        except RuntimeError:  # spawned by the run itself, outside any task
            spawner = None
        if task.name in CONNECTION_TASKS:
            return
        if _below_serve(task) or (spawner is not None and _below_serve(spawner)):
            self.live[task] = task.name

    def task_exited(self, task: trio.lowlevel.Task) -> None:
        self.live.pop(task, None)

    def names(self) -> list[str]:
        return sorted(self.live.values())


def _below_serve(task: trio.lowlevel.Task | None) -> bool:
    """Whether ``task`` is ``proxy.server.runner.serve`` or runs in a nursery below it."""
    while task is not None:
        if getattr(task.coro, "cr_code", None) is serve.__code__:
            return True
        task = task.parent_nursery.parent_task if task.parent_nursery is not None else None
    return False


@contextlib.contextmanager
def proxy_tasks() -> Iterator[ProxyTasks]:
    """``with proxy_tasks() as tasks:`` around requests; then ``await no_task_left(tasks)``."""
    instrument = ProxyTasks()
    trio.lowlevel.add_instrument(instrument)
    try:
        yield instrument
    finally:
        trio.lowlevel.remove_instrument(instrument)


async def no_task_left(tasks: ProxyTasks, *, timeout: float = 5.0, also: Callable[[], bool] = lambda: True) -> None:
    """Wait (at most ``timeout`` seconds) until every task in ``tasks`` has exited and
    ``also()`` holds; else fail naming the tasks still alive."""
    with trio.move_on_after(timeout):
        while tasks.live or not also():
            await trio.sleep(0.01)
        return
    raise AssertionError(f"still alive {timeout:g} s after the requests: {tasks.names()} (also: {also()})")


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
