"""The console script as a user runs it: a subprocess, its exit code and what it prints.

A second proxy on a busy port, the PID file and `make stop`; the start-up line naming where
the Ollama URL came from; log lines on a terminal and NDJSON into a pipe; the one-line
messages for an unknown option, a bad model map and a `tail` with no proxy to watch."""

from __future__ import annotations

import json
import os
import pty
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from proxy.config import SETTINGS, default_value, running_in_container

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = str(Path(sys.executable).parent / "claude-code-ollama-proxy")
PROG = "claude-code-ollama-proxy"


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without the developer's PROXY_* and OLLAMA_HOST."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROXY_") and k != "OLLAMA_HOST"}
    env.update(extra)
    return env


def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([SCRIPT, *args], capture_output=True, text=True, timeout=30,
                          env=env or clean_env(), cwd=cwd, stdin=subprocess.DEVNULL)


async def free_port() -> int:
    """A port nothing listens on (bound on port 0, then closed)."""
    with trio.socket.socket() as probe:
        await probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def start_serving(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
                        pid_file: Path | None = None) -> tuple[trio.Process, str, bytes]:
    """``[args…] serve --port 0 [--pid-file F]``; returns the process, its URL (from the
    NDJSON log on stdout) and the banner it printed on stderr."""
    extra = ["--pid-file", str(pid_file)] if pid_file else []
    process = await trio.lowlevel.open_process(
        [SCRIPT, *args, "serve", "--port", "0", *extra], env=env or clean_env(), cwd=cwd,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    seen = b""
    with trio.fail_after(20):
        while not (found := re.search(rb"listening on (http://[^\s\"]+)", seen)):
            data = await process.stdout.receive_some(4096)
            assert data, (seen + await process.stderr.receive_some(4096)).decode()
            seen += data
        banner = await process.stderr.receive_some(4096)
    return process, found.group(1).decode(), banner


async def stop(process: trio.Process) -> int:
    with trio.fail_after(20):
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        return await process.wait()


# -- a busy port, the PID file, make stop ---------------------------------------------------


async def test_a_second_proxy_on_a_busy_port_says_so_in_one_line_and_leaves_the_pid_file(fake_ollama, tmp_path):
    pid_file = tmp_path / ".cache" / "proxy.pid"
    first, url, _ = await start_serving("--ollama-url", fake_ollama.url, pid_file=pid_file)
    try:
        # the PID file is written once the port is bound
        with trio.fail_after(10):
            while not pid_file.exists():
                await trio.sleep(0.02)
        assert pid_file.read_text() == f"{first.pid}\n"
        port = url.rsplit(":", 1)[1]
        second = await trio.run_process(
            [SCRIPT, "--ollama-url", fake_ollama.url, "serve", "--port", port, "--pid-file", str(pid_file)],
            capture_stdout=True, capture_stderr=True, check=False, env=clean_env(),
        )
        assert second.returncode == 2
        assert second.stdout == b""  # no log records, no traceback
        (line,) = second.stderr.decode().splitlines()
        assert line == (
            f"{PROG}: port {port} is already in use (127.0.0.1:{port}): is a proxy already running?"
            " `make stop` stops the one `make run` started; or pick another port with --port N"
        )
        assert pid_file.read_text() == f"{first.pid}\n"  # the first proxy's file survives

        # another port, the same PID file: refused too, for `make stop` could stop only one
        third = await trio.run_process(
            [SCRIPT, "--ollama-url", fake_ollama.url, "serve", "--port", "0", "--pid-file", str(pid_file)],
            capture_stdout=True, capture_stderr=True, check=False, env=clean_env(),
        )
        assert third.returncode == 2
        assert f"names another running proxy (pid {first.pid})" in third.stderr.decode()
        assert pid_file.read_text() == f"{first.pid}\n"
    finally:
        assert await stop(first) == 0
    assert not pid_file.exists()  # removed by the process that wrote it


async def test_make_stop_waits_for_the_proxy_and_never_removes_the_file_itself(fake_ollama, tmp_path):
    make = shutil.which("make")
    assert make, "make is needed by make test itself"
    pid_file = tmp_path / "proxy.pid"
    process, _, _ = await start_serving("--ollama-url", fake_ollama.url, pid_file=pid_file)
    try:
        with trio.fail_after(10):
            while not pid_file.exists():
                await trio.sleep(0.02)
        exited: list[float] = []

        async def reap() -> None:  # as its real parent would (else it lingers as a zombie)
            await process.wait()
            exited.append(trio.current_time())

        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(reap)
                result = await trio.run_process([make, "-s", "-C", str(ROOT), "stop", f"PIDFILE={pid_file}"],
                                                capture_stdout=True, capture_stderr=True, check=False)
                returned = trio.current_time()
        assert (result.returncode, result.stdout.decode(), result.stderr) == (0, f"stopped {process.pid}\n", b"")
        # make stop returned only once the proxy was gone, and the proxy took its file away
        assert process.returncode == 0 and exited[0] <= returned
        assert not pid_file.exists()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    # a file left by a dead process: said, and left for the next proxy to replace
    pid_file.write_text(f"{process.pid}\n")
    result = await trio.run_process([make, "-s", "-C", str(ROOT), "stop", f"PIDFILE={pid_file}"],
                                    capture_stdout=True, check=False)
    assert result.returncode == 0 and b"left over" in result.stdout
    assert pid_file.exists()
    again, _, _ = await start_serving("--ollama-url", fake_ollama.url, pid_file=pid_file)
    try:
        with trio.fail_after(10):
            while pid_file.read_text() != f"{again.pid}\n":
                await trio.sleep(0.02)
    finally:
        assert await stop(again) == 0


def test_the_bind_itself_failing_is_the_same_one_line(monkeypatch, capsys, tmp_path):
    """The checks before start-up can lose a race (two proxies started at once); then the
    server's own bind error says the same, and the other proxy's PID file is left alone."""
    from proxy.cli import main as cli

    pid_file = tmp_path / "proxy.pid"
    pid_file.write_text(f"{os.getppid()}\n")  # a live process that is not this one
    with __import__("socket").socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setattr(cli, "check_address_free", lambda host, port: None)
        monkeypatch.setattr(cli, "check_pid_file", lambda path: None)
        assert cli.main(["--ollama-url", "http://127.0.0.1:9", "--quiet", "serve", "--port", str(port),
                         "--pid-file", str(pid_file)]) == 2
    assert pid_file.read_text() == f"{os.getppid()}\n"
    assert capsys.readouterr().err == (
        f"{PROG}: port {port} is already in use (127.0.0.1:{port}): is a proxy already running?"
        " `make stop` stops the one `make run` started; or pick another port with --port N\n"
    )


# -- where the Ollama URL came from ----------------------------------------------------------


@pytest.mark.parametrize(
    ("how", "origin"),
    [("flag", "from --ollama-url"), ("PROXY_OLLAMA_URL", "from PROXY_OLLAMA_URL"),
     ("OLLAMA_HOST", "from OLLAMA_HOST"), ("file", "from proxy.config.json")],
)
async def test_the_start_up_line_says_where_the_ollama_url_came_from(fake_ollama, tmp_path, how, origin):
    args, env = [], clean_env()
    if how == "flag":
        args = ["--ollama-url", fake_ollama.url]
    elif how == "file":
        (tmp_path / "proxy.config.json").write_text(json.dumps({"ollama_url": fake_ollama.url}))
    else:
        env[how] = fake_ollama.url if how == "PROXY_OLLAMA_URL" else fake_ollama.url.removeprefix("http://")
    process, _, banner = await start_serving(*args, env=env, cwd=tmp_path)
    assert await stop(process) == 0
    stderr = banner + await process.stderr.receive_some(65536)
    assert f"→ Ollama at {fake_ollama.url} ({origin})" in stderr.decode().splitlines()[0]


async def test_doctor_says_where_an_unreachable_url_came_from(tmp_path):
    port = await free_port()
    result = run("doctor", "--json", env=clean_env(OLLAMA_HOST=f"127.0.0.1:{port}"), cwd=tmp_path)
    assert result.returncode == 1
    (ollama,) = [c for c in json.loads(result.stdout) if c["check"].startswith("Ollama at")]
    assert ollama["check"] == f"Ollama at http://127.0.0.1:{port}"
    assert ollama["verdict"] == "fail" and ollama["detail"].endswith("this URL is from OLLAMA_HOST")


def test_help_shows_the_defaults_that_apply_and_never_null():
    result = run("--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())  # argparse wraps
    assert "null" not in text and "None" not in text
    url = default_value(next(s for s in SETTINGS if s.name == "ollama_url"), in_container=running_in_container())
    assert f"env PROXY_OLLAMA_URL, else OLLAMA_HOST; default {url}" in text
    assert "--log-file LOG_FILE also append the log records to this file (env PROXY_LOG_FILE, unset by default)" in text
    assert "(env PROXY_QUIET, off by default)" in text


# -- log lines: readable on a terminal, NDJSON into a pipe --------------------------------------


async def read_until(fd: int, pattern: bytes, seen: bytearray) -> None:
    with trio.fail_after(20):
        while not re.search(pattern, bytes(seen)):
            await trio.lowlevel.wait_readable(fd)
            try:
                data = os.read(fd, 4096)
            except OSError:  # the terminal's other end closed
                data = b""
            assert data, bytes(seen).decode(errors="replace")
            seen += data


@pytest.mark.parametrize(("choice", "text"), [(None, True), ("json", False)])
async def test_a_terminal_gets_readable_lines_unless_json_is_asked_for(fake_ollama, choice, text):
    leader, follower = pty.openpty()
    try:
        extra = ["--log-format", choice] if choice else []
        process = await trio.lowlevel.open_process(
            [SCRIPT, "--ollama-url", fake_ollama.url, *extra, "serve", "--port", "0"],
            env=clean_env(), stdin=subprocess.DEVNULL, stdout=follower, stderr=subprocess.DEVNULL,
        )
        os.close(follower)
        follower = -1
        seen = bytearray()
        try:
            await read_until(leader, rb"listening on http://\S+", seen)
        finally:
            assert await stop(process) == 0
    finally:
        os.close(leader)
        if follower >= 0:
            os.close(follower)
    lines = bytes(seen).decode().replace("\r\n", "\n").splitlines()
    ready = next(line for line in lines if "proxy ready" in line)
    if text:
        assert re.fullmatch(rf"\d\d:\d\d:\d\d INFO     proxy ready: Ollama at {re.escape(fake_ollama.url)}"
                            r" \(from --ollama-url\), default model qwen3:8b", ready)
        assert not any(line.startswith("{") for line in lines)
    else:
        assert json.loads(ready)["Body"].startswith("proxy ready")


async def test_a_pipe_gets_ndjson(fake_ollama):
    process, _, _ = await start_serving("--ollama-url", fake_ollama.url)
    assert await stop(process) == 0
    out = await process.stdout.receive_some(1 << 20)
    records = [json.loads(line) for line in out.decode().splitlines()]
    assert any(r["Body"].startswith("received SIGTERM") for r in records)


# -- small messages ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--prot", "3001"], "unknown option --prot (did you mean --port?); see --help"),
        (["serve", "--prot", "3001"], "unknown option --prot (did you mean --port?); see --help"),
        (["--prot=3001", "doctor"], "unknown option --prot (did you mean --port?); see --help"),
        (["doctor", "--jsno"], "unknown option --jsno (did you mean --json?); see --help"),
    ],
)
def test_an_unknown_option_is_named(args, message):
    result = run(*args)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"{PROG}: {message}\n"


def test_a_value_that_looks_like_an_option_is_still_a_value(tmp_path):
    result = run("--keep-alive", "-1", "--api-key=--not-an-option", "--init", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    written = json.loads((tmp_path / "proxy.config.json").read_text())
    assert (written["keep_alive"], written["api_key"]) == ("-1", "--not-an-option")


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--model-map", "haiku"], {},
         "--model-map: invalid value 'haiku': expected claude-name=ollama-model (e.g. haiku=qwen3:4b)"),
        (["--model-map", "haiku=a:1b", "--model-map", "opus"], {},
         "--model-map: invalid value 'haiku=a:1b' 'opus': expected claude-name=ollama-model (e.g. haiku=qwen3:4b)"),
        ([], {"PROXY_MODEL_MAP": '{"haiku": qwen3}'},
         "PROXY_MODEL_MAP: invalid value '{\"haiku\": qwen3}': not valid JSON (Expecting value: line 1 column 11"
         " (char 10)); expected a JSON object such as {\"haiku\": \"qwen3:4b\"}, or claude-name=ollama-model pairs"),
        ([], {"PROXY_MODEL_MAP": "haiku"},
         "PROXY_MODEL_MAP: invalid value 'haiku': expected claude-name=ollama-model (e.g. haiku=qwen3:4b)"),
    ],
)
def test_model_map_messages(tmp_path, args, env, message):
    result = run(*args, "models", env=clean_env(**env), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == f"{PROG}: {message}\n"
    assert "[" not in result.stderr.split(":", 2)[2].split("expected")[0]  # no Python list


async def test_tail_with_no_proxy_asks_whether_it_is_running():
    port = await free_port()
    process = await trio.lowlevel.open_process(
        [SCRIPT, "tail", "--port", str(port)], env=clean_env(),
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    seen = b""
    try:
        with trio.fail_after(20):
            while b"\n" not in seen:
                data = await process.stderr.receive_some(4096)
                assert data, seen
                seen += data
    finally:
        process.kill()
        await process.wait()
    assert seen.decode().splitlines()[0] == (
        f"connection refused — is the proxy running? (`make run`); reconnecting to ws://127.0.0.1:{port}/v1/events …"
    )
