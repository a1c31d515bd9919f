"""What the real Claude Code does with the proxy's failures: how often it asks again, and
what it prints (docs/STREAMING.md, "Who retries").

Claude Code retries a 5xx, a 529 or a failed stream ten times with backoff (about three
minutes) unless told ``x-should-retry: false``. These tests run the real binary with
``-p`` against the proxy and a fake Ollama that fails on purpose, and assert the number of
requests Ollama got and the message Claude Code printed. Claude Code's own retry count is
left as it is (its retries are what is being tested): a regression shows as a run that
takes minutes, which the ``fail_after`` bound turns into a failure.
"""

from __future__ import annotations

import json
import logging
import subprocess
from typing import Any

import pytest
import trio

from tests.claude_code import claude_code_env, is_agent_turn
from tests.fake_ollama import Chunk, Close, Line, Recorded, Sleep, Status, text_stream

#: A run that Claude Code does not retry ends in seconds; ten retries take minutes.
RUN_LIMIT = 60

CRASH = {"error": "llama runner process has terminated: exit status 2"}






async def run_claude(claude_bin, proxy, tmp_path, prompt: str = "say hello") -> dict[str, Any]:
    """``claude -p PROMPT --output-format json`` through ``proxy``; its parsed output (with
    ``elapsed``), or a failure naming what Claude Code printed."""
    work = tmp_path / "project"
    work.mkdir(exist_ok=True)
    command = [str(claude_bin), "-p", prompt, "--output-format", "json"]
    started = trio.current_time()
    with trio.fail_after(RUN_LIMIT):
        result = await trio.run_process(
            command, cwd=work, env=claude_code_env(proxy.url, tmp_path / "home"),
            capture_stdout=True, capture_stderr=True, check=False, stdin=subprocess.DEVNULL,
        )
    stdout, stderr = result.stdout.decode(), result.stderr.decode()
    try:
        output = json.loads(stdout)
    except ValueError:
        pytest.fail(f"Claude Code printed no JSON (exit {result.returncode}):\n{stdout[-2000:]}\n{stderr[-2000:]}")
    output["elapsed"] = trio.current_time() - started
    print(json.dumps(output)[:3000])
    return output


def agent_requests(fake_ollama) -> list[Recorded]:
    return [r for r in fake_ollama.chat_requests if is_agent_turn(r)]


def answer_side_requests(fault):
    """An ``on_chat`` that plays ``fault(index_among_agent_turns)`` for agent turns and a
    short answer for side requests."""
    count = {"agent": 0}

    def answer(record: Recorded, index: int):
        if not is_agent_turn(record):
            return text_stream("Side answer", prompt_eval_count=20, eval_count=2)
        count["agent"] += 1
        return fault(count["agent"])

    return answer


async def test_runner_crash_is_retried_once_by_the_proxy_and_not_by_claude_code(
    fake_ollama, proxy, claude_bin, tmp_path
):
    fake_ollama.on_chat = answer_side_requests(lambda n: [Status(500, body=CRASH)])
    output = await run_claude(claude_bin, proxy, tmp_path)
    assert output["is_error"] is True
    assert "llama runner process has terminated" in output["result"]
    assert "ollama ps" in output["result"]  # what to do next reaches the user
    assert len(agent_requests(fake_ollama)) == 2  # the proxy's one quick retry, no more


async def test_a_stream_that_failed_for_good_gives_claude_codes_fallback_the_same_verdict(
    fake_ollama, start_proxy, claude_bin, tmp_path, caplog
):
    """The crash comes after the 200 was sent (a slow model load): the client gets an
    ``event: error``, retries without streaming, and that retry gets the verdict at once."""
    caplog.set_level(logging.INFO, logger="proxy.app")
    proxy = await start_proxy(commit_grace=0.1)
    fake_ollama.on_chat = answer_side_requests(lambda n: [Sleep(0.4), Status(500, body=CRASH)])
    output = await run_claude(claude_bin, proxy, tmp_path)
    assert output["is_error"] is True
    assert "llama runner process has terminated" in output["result"]
    assert len(agent_requests(fake_ollama)) == 2  # the first stream and the proxy's quick retry
    repeats = [r for r in caplog.records if "non-streaming retry of request" in r.getMessage()]
    assert len(repeats) == 1


async def test_missing_model_is_one_request_and_its_advice_reaches_the_user(
    fake_ollama, start_proxy, claude_bin, tmp_path
):
    proxy = await start_proxy(default_model="qwen3-coder:30b")  # not installed in the fake
    output = await run_claude(claude_bin, proxy, tmp_path)
    assert output["is_error"] is True
    assert "ollama pull qwen3-coder:30b" in output["result"]
    assert "issue with the selected model" not in output["result"]
    assert output["api_error_status"] == 400
    # Claude Code sends variants of a refused request at once (six in two seconds): Ollama
    # was asked once, the proxy answered the rest from what it had just learned.
    assert len(fake_ollama.chat_requests) == 1


async def test_ollama_down_is_one_quick_retry_then_the_advice(start_proxy, claude_bin, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="proxy.relay")  # the quick retry is an INFO line
    with trio.socket.socket() as sock:  # a port nobody listens on
        await sock.bind(("127.0.0.1", 0))
        dead_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    proxy = await start_proxy(ollama_url=dead_url)
    output = await run_claude(claude_bin, proxy, tmp_path)
    assert output["is_error"] is True
    assert "Cannot reach Ollama" in output["result"] and "ollama serve" in output["result"]
    retries = [r for r in caplog.records if "retrying once" in r.getMessage()]
    finals = [r for r in caplog.records if "Cannot reach Ollama" in r.getMessage() and "failed:" in r.getMessage()]
    # Each request Claude Code sent (its turn, and any side request) was tried twice by the
    # proxy and then answered for good: no request came back a third time.
    assert finals and len(retries) == len(finals)
    assert len(finals) <= 3


async def test_busy_ollama_is_retried_by_claude_code_alone(fake_ollama, start_proxy, claude_bin, tmp_path):
    proxy = await start_proxy(busy_retry_after=1)
    busy = {"error": "server busy, please try again.  maximum pending requests exceeded"}
    fake_ollama.on_chat = answer_side_requests(
        lambda n: [Status(503, body=busy)] if n == 1 else text_stream("Hello after the wait.")
    )
    output = await run_claude(claude_bin, proxy, tmp_path)
    assert output["is_error"] is False, output
    assert "Hello after the wait." in output["result"]
    assert len(agent_requests(fake_ollama)) == 2  # Claude Code's one retry; the proxy made none


async def test_error_line_mid_answer_gets_one_retry_in_all(fake_ollama, proxy, claude_bin, tmp_path):
    """After output the proxy cannot retry; Claude Code's non-streaming retry is the one
    retry, and its failure is final."""
    fake_ollama.on_chat = answer_side_requests(
        lambda n: [Chunk(content="The answer starts here and"), Line({"error": "CUDA error: out of memory"})]
    )
    output = await run_claude(claude_bin, proxy, tmp_path)
    assert output["is_error"] is True
    assert "CUDA error: out of memory" in output["result"]
    assert len(agent_requests(fake_ollama)) == 2
    assert [r.body["stream"] for r in agent_requests(fake_ollama)] == [True, True]  # Ollama always streams


# -- what the user sees on screen --------------------------------------------------------


class Screen:
    """Interactive Claude Code in a tmux session of its own (its name says issue 16)."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def tmux(self, *args: str) -> str:
        result = await trio.run_process(["tmux", *args], capture_stdout=True, capture_stderr=True, check=False)
        return result.stdout.decode(errors="replace")

    async def start(self, claude_bin, proxy, tmp_path) -> None:
        work = tmp_path / "project"
        work.mkdir(exist_ok=True)
        home = tmp_path / "home"
        home.mkdir(exist_ok=True)
        # A user who has used Claude Code before: no onboarding, the folder trusted.
        (home / ".claude.json").write_text(json.dumps({
            "hasCompletedOnboarding": True, "theme": "dark", "numStartups": 5,
            "projects": {str(work): {"hasTrustDialogAccepted": True, "hasCompletedProjectOnboarding": True}},
        }))
        env = {**claude_code_env(proxy.url, home), "TERM": "xterm-256color"}
        command = ["env", "-i", *(f"{k}={v}" for k, v in env.items()), str(claude_bin)]
        await self.tmux("new-session", "-d", "-s", self.name, "-x", "200", "-y", "50", "-c", str(work),
                        " ".join(_quote(part) for part in command))
        await self.wait_for("auto mode")

    async def text(self) -> str:
        return await self.tmux("capture-pane", "-p", "-J", "-S", "-500", "-t", self.name)

    async def wait_for(self, words: str, *, after: str | None = None, limit: float = 30) -> str:
        """The screen once ``words`` is on it (below ``after``, when given)."""
        screen = ""
        with trio.move_on_after(limit):
            while True:
                screen = await self.text()
                tail = screen.rsplit(after, 1)[-1] if after and after in screen else ("" if after else screen)
                if words in tail:
                    return tail
                await trio.sleep(0.3)
        pytest.fail(f"{words!r} never appeared on Claude Code's screen:\n{screen[-4000:]}")

    async def type(self, text: str) -> None:
        await self.tmux("send-keys", "-t", self.name, "-l", text)
        await trio.sleep(0.3)
        await self.tmux("send-keys", "-t", self.name, "Enter")

    async def close(self) -> None:
        with trio.move_on_after(5, shield=True):
            await self.tmux("kill-session", "-t", self.name)


def _quote(part: str) -> str:
    import shlex
    return shlex.quote(part)


#: fault → (what Ollama does for Claude Code's turn, words the user must see)
SCREEN_SAMPLES = {
    "runner crash": ([Status(500, body=CRASH)], "llama runner process has terminated"),
    "refused": ([Status(400, body={"error": "invalid option provided"})], "Ollama rejected the request for 'qwen3:8b': invalid option provided"),
    "error line": ([Chunk(content="Working on it"), Line({"error": "CUDA error: out of memory"})], "CUDA error: out of memory"),
    "closed early": ([Close()], "closed the connection before answering"),
    # last: the proxy then answers "not installed" for a few seconds without asking Ollama
    "missing model": ([Status(404, body={"error": "model 'qwen3:8b' not found"})], "ollama pull qwen3:8b"),
}


async def test_every_error_kind_reaches_the_screen_intact(fake_ollama, start_proxy, claude_bin, tmp_path):
    proxy = await start_proxy(commit_grace=5)
    fault: dict[str, list] = {"actions": []}
    fake_ollama.on_chat = answer_side_requests(lambda n: fault["actions"])
    screen = Screen(f"i16-errors-{trio.current_time():.0f}")
    try:
        with trio.fail_after(150):
            await screen.start(claude_bin, proxy, tmp_path)
            for kind, (actions, words) in SCREEN_SAMPLES.items():
                fault["actions"] = actions
                before = len(agent_requests(fake_ollama))
                prompt = f"sample {kind.replace(' ', '-')} now"
                await screen.type(prompt)
                shown = await screen.wait_for(words, after=prompt)
                assert "issue with the selected model" not in shown, shown
                # No retry storm behind the message: at most the one retry of each kind. (A
                # 400 of Ollama's own is the exception: Claude Code answers any 400 with up
                # to eight variants of its request, each refused at once, for no prefill.)
                if kind != "refused":
                    await trio.sleep(1)
                    assert len(agent_requests(fake_ollama)) - before <= 2, kind
    finally:
        await screen.close()
