"""`claude-code-ollama-proxy claude …` with a stand-in for Claude Code: a small script that
records its arguments and environment, optionally calls the proxy it was pointed at, and
exits with a chosen code."""

from __future__ import annotations

import json
import os
import signal
import stat
import sys
from pathlib import Path

import pytest
import trio

from proxy.config import load_settings
from proxy.cli.launcher import claude_environment, claude_models, find_running_proxy, run_claude
from tests.fake_ollama import text_stream

STAND_IN = f"""#!{sys.executable}
import json, os, signal, sys, time, urllib.request

record = {{"argv": sys.argv[1:], "env": dict(os.environ)}}
base = os.environ["ANTHROPIC_BASE_URL"]
if os.environ.get("STAND_IN_ASK"):
    # talk to the proxy the way Claude Code does: Bearer token, ?beta=true, non-streaming
    request = urllib.request.Request(
        base + "/v1/messages?beta=true",
        data=json.dumps({{"model": os.environ["ANTHROPIC_MODEL"], "max_tokens": 50,
                          "messages": [{{"role": "user", "content": "hi"}}]}}).encode(),
        headers={{"content-type": "application/json",
                  "authorization": "Bearer " + os.environ["ANTHROPIC_AUTH_TOKEN"]}},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        record["answer"] = json.loads(response.read())
with open(os.environ["STAND_IN_RECORD"], "w") as f:
    json.dump(record, f)
time.sleep(float(os.environ.get("STAND_IN_SLEEP", "0")))
if os.environ.get("STAND_IN_SIGNAL"):
    os.kill(os.getpid(), int(os.environ["STAND_IN_SIGNAL"]))
sys.exit(int(os.environ.get("STAND_IN_EXIT", "0")))
"""


@pytest.fixture
def stand_in(tmp_path) -> Path:
    path = tmp_path / "claude"
    path.write_text(STAND_IN)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def environ_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "STAND_IN_RECORD": str(tmp_path / "record.json"),
            **extra}


def settings_for(fake_ollama, tmp_path: Path, **values):
    base = {"host": "127.0.0.1", "port": 0, "ollama_url": fake_ollama.url, "log_file": str(tmp_path / "claude.log"),
            "quiet": True}
    base.update(values)
    return load_settings(base, environ={}, read_config_file=False)


async def test_in_process_proxy_environment_arguments_and_exit_code(fake_ollama, stand_in, tmp_path, capsys):
    settings = settings_for(fake_ollama, tmp_path, model_map=["haiku=llama3.2:3b"], api_key="secret-key")
    fake_ollama.script_chat(text_stream("hello from the fake"))
    environ = environ_for(tmp_path, STAND_IN_ASK="1", STAND_IN_EXIT="3", ANTHROPIC_API_KEY="sk-ant-real-key",
                          CLAUDE_CODE_ATTRIBUTION_HEADER="1")
    with trio.fail_after(30):
        code = await run_claude(settings, ["-p", "do it", "--model", "x"], claude_bin=str(stand_in), environ=environ)
    assert code == 3
    record = json.loads((tmp_path / "record.json").read_text())
    assert record["argv"] == ["-p", "do it", "--model", "x"]
    env = record["env"]
    assert env["ANTHROPIC_BASE_URL"].startswith("http://127.0.0.1:")
    assert env["ANTHROPIC_AUTH_TOKEN"] == "secret-key"
    assert "ANTHROPIC_API_KEY" not in env  # it would win over the token
    assert env["ANTHROPIC_MODEL"] == "qwen3:8b"
    assert env["ANTHROPIC_DEFAULT_HAIKU_MODEL"] == "llama3.2:3b"
    assert env["ANTHROPIC_DEFAULT_SONNET_MODEL"] == "qwen3:8b"
    assert env["ANTHROPIC_DEFAULT_OPUS_MODEL"] == "qwen3:8b"
    assert env["CLAUDE_CODE_SUBAGENT_MODEL"] == "qwen3:8b"
    assert env["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] == "1"
    assert env["CLAUDE_CODE_ATTRIBUTION_HEADER"] == "0"
    # auto mode's check runs through the proxy, on the model-map entry claude-auto-mode
    assert env["CLAUDE_CODE_AUTO_MODE_SERVER"] == "0"
    assert env["CLAUDE_CODE_AUTO_MODE_MODEL"] == "claude-auto-mode"
    assert env["CLAUDE_CODE_AUTO_COMPACT_WINDOW"] == "40960"  # qwen3:8b's context length in the fake
    assert env["CLAUDE_CODE_MAX_CONTEXT_TOKENS"] == "40960"
    assert env["HOME"] == str(tmp_path)  # the rest of the environment passes through
    # the stand-in reached the in-process proxy, which reached the fake Ollama
    assert record["answer"]["content"][0]["text"] == "hello from the fake"
    assert fake_ollama.chat_requests[-1].body["model"] == "qwen3:8b"
    # the in-process proxy logged to its file, not to the terminal Claude Code owns
    assert '"EventName":"proxy.request.end"' in (tmp_path / "claude.log").read_text()
    assert "proxy.request" not in capsys.readouterr().out


async def test_uses_a_proxy_that_is_already_running(fake_ollama, proxy, stand_in, tmp_path):
    port = int(proxy.url.rsplit(":", 1)[1])
    assert await find_running_proxy("127.0.0.1", port) == proxy.url
    settings = settings_for(fake_ollama, tmp_path, port=port)
    with trio.fail_after(30):
        code = await run_claude(settings, [], claude_bin=str(stand_in), environ=environ_for(tmp_path))
    assert code == 0
    env = json.loads((tmp_path / "record.json").read_text())["env"]
    assert env["ANTHROPIC_BASE_URL"] == proxy.url
    assert env["ANTHROPIC_AUTH_TOKEN"] == "ollama-local"  # no key configured
    assert not (tmp_path / "claude.log").exists()  # no in-process proxy was started


async def test_something_else_on_the_port_is_not_taken_for_the_proxy(fake_ollama):
    # the fake Ollama answers /health with 404: not a proxy
    assert await find_running_proxy("127.0.0.1", fake_ollama.port) is None
    assert await find_running_proxy("127.0.0.1", 0) is None


async def test_context_window_is_the_smallest_of_main_and_subagent_models(fake_ollama, stand_in, tmp_path):
    # sonnet (and so the subagents) on llama3.2:3b (131072), main on qwen3:8b (40960)
    settings = settings_for(fake_ollama, tmp_path, model_map=["sonnet=llama3.2:3b"], default_model="llama3.2:3b")
    with trio.fail_after(30):
        await run_claude(settings, [], claude_bin=str(stand_in), environ=environ_for(tmp_path))
    env = json.loads((tmp_path / "record.json").read_text())["env"]
    assert env["CLAUDE_CODE_AUTO_COMPACT_WINDOW"] == "131072"
    settings = settings_for(fake_ollama, tmp_path, model_map=["sonnet=llama3.2:3b"])
    with trio.fail_after(30):
        await run_claude(settings, [], claude_bin=str(stand_in), environ=environ_for(tmp_path))
    env = json.loads((tmp_path / "record.json").read_text())["env"]
    assert env["CLAUDE_CODE_AUTO_COMPACT_WINDOW"] == "40960"
    assert env["CLAUDE_CODE_SUBAGENT_MODEL"] == "llama3.2:3b"


async def test_a_window_the_user_set_is_kept(fake_ollama, stand_in, tmp_path):
    settings = settings_for(fake_ollama, tmp_path)
    environ = environ_for(tmp_path, CLAUDE_CODE_AUTO_COMPACT_WINDOW="30000")
    with trio.fail_after(30):
        await run_claude(settings, [], claude_bin=str(stand_in), environ=environ)
    env = json.loads((tmp_path / "record.json").read_text())["env"]
    assert env["CLAUDE_CODE_AUTO_COMPACT_WINDOW"] == "30000"
    assert env["CLAUDE_CODE_MAX_CONTEXT_TOKENS"] == "40960"


async def test_an_uninstalled_model_still_launches_without_a_window(fake_ollama, stand_in, tmp_path, capsys):
    settings = settings_for(fake_ollama, tmp_path, default_model="missing:1b")
    with trio.fail_after(30):
        code = await run_claude(settings, [], claude_bin=str(stand_in), environ=environ_for(tmp_path))
    assert code == 0
    env = json.loads((tmp_path / "record.json").read_text())["env"]
    assert "CLAUDE_CODE_AUTO_COMPACT_WINDOW" not in env
    assert "missing:1b" in capsys.readouterr().err


async def test_a_signal_death_exits_like_a_shell_reports_it(fake_ollama, stand_in, tmp_path):
    settings = settings_for(fake_ollama, tmp_path)
    with trio.fail_after(30):
        code = await run_claude(settings, [], claude_bin=str(stand_in),
                                environ=environ_for(tmp_path, STAND_IN_SIGNAL="15"))
    assert code == 128 + 15


@pytest.mark.parametrize(("signum", "expected"), [(signal.SIGINT, 0), (signal.SIGTERM, 128 + signal.SIGTERM)])
async def test_ctrl_c_belongs_to_claude_code_and_sigterm_is_passed_on(fake_ollama, stand_in, tmp_path, signum, expected):
    settings = settings_for(fake_ollama, tmp_path)
    record = tmp_path / "record.json"
    result: list[int] = []

    async def launch() -> None:
        result.append(await run_claude(settings, [], claude_bin=str(stand_in),
                                       environ=environ_for(tmp_path, STAND_IN_SLEEP="1")))

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(launch)
            while not record.exists():  # Claude Code is running
                await trio.sleep(0.02)
            os.kill(os.getpid(), signum)  # what a terminal or a service manager sends us
    # SIGINT: ignored by the launcher, Claude Code finished its work; SIGTERM: passed to it
    assert result == [expected]


async def test_claude_not_found_exits_127(fake_ollama, tmp_path, capsys):
    settings = settings_for(fake_ollama, tmp_path)
    with trio.fail_after(10):
        code = await run_claude(settings, [], claude_bin=str(tmp_path / "no-such-claude"), environ=environ_for(tmp_path))
    assert code == 127
    assert "npm install -g @anthropic-ai/claude-code" in capsys.readouterr().err


def test_claude_models_follow_the_model_map():
    settings = load_settings({"default_model": "big:30b", "model_map": ["haiku=small:4b", "opus=huge:70b"]},
                             environ={}, read_config_file=False)
    assert claude_models(settings) == {
        "ANTHROPIC_MODEL": "big:30b",
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": "small:4b",
        "ANTHROPIC_DEFAULT_SONNET_MODEL": "big:30b",
        "ANTHROPIC_DEFAULT_OPUS_MODEL": "huge:70b",
        "CLAUDE_CODE_SUBAGENT_MODEL": "big:30b",
        "ANTHROPIC_SMALL_FAST_MODEL": "small:4b",
    }


def test_claude_environment_without_a_known_window():
    settings = load_settings({}, environ={}, read_config_file=False, in_container=False)
    env = claude_environment({"ANTHROPIC_BASE_URL": "https://elsewhere"}, base_url="http://127.0.0.1:1",
                             settings=settings, context_tokens=None)
    assert env["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:1"
    assert "CLAUDE_CODE_AUTO_COMPACT_WINDOW" not in env


# -- Claude Code itself ------------------------------------------------------------------


@pytest.fixture
def no_stdin():
    """Claude Code inherits our stdin; in print mode it reads a piped stdin to the end.
    Give it /dev/null, as a terminal-less run (CI) has."""
    saved = os.dup(0)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    try:
        yield
    finally:
        os.dup2(saved, 0)
        os.close(saved)
        os.close(null)


async def test_claude_code_itself_accepts_the_launchers_environment(fake_ollama, claude_bin, tmp_path, capfd, no_stdin):
    from tests.claude_code import claude_code_env

    def answer(record, index):
        return text_stream("Hello from the local model.", prompt_eval_count=500, eval_count=7)

    fake_ollama.on_chat = answer
    settings = settings_for(fake_ollama, tmp_path, model_map=["haiku=llama3.2:3b"])
    environ = {k: v for k, v in claude_code_env("http://unused", tmp_path / "home").items()
               if not k.startswith(("ANTHROPIC_", "CLAUDE_CODE_"))}
    work = tmp_path / "project"
    work.mkdir()
    cwd = os.getcwd()
    os.chdir(work)
    try:
        with trio.fail_after(180):
            code = await run_claude(settings, ["-p", "say hello", "--output-format", "json"],
                                    claude_bin=str(claude_bin), environ=environ)
    finally:
        os.chdir(cwd)
    out, err = capfd.readouterr()
    diagnostics = f"exit {code}\nstdout: {out[-2000:]}\nstderr: {err[-2000:]}"
    assert code == 0, diagnostics
    result = json.loads(out.strip().splitlines()[-1])
    assert result["is_error"] is False, diagnostics
    assert "Hello from the local model." in result["result"]
    models = {r.body["model"] for r in fake_ollama.chat_requests}
    assert "qwen3:8b" in models and models <= {"qwen3:8b", "llama3.2:3b"}, models
