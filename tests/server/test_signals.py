"""The console script under a real SIGTERM: in-flight streams finish, then it exits."""

from __future__ import annotations

import re
import signal
import subprocess
import sys

import httpx
import trio

from tests.fake_ollama import Chunk, Sleep, Stall, text_stream

BODY = {"model": "claude-opus-5-5", "max_tokens": 50, "stream": True,
        "messages": [{"role": "user", "content": "hi"}]}


async def start_cli(fake_url: str, *extra: str) -> tuple[trio.Process, str, list[bytes]]:
    """Run ``python -m proxy`` on port 0; return the process, its URL and its log so far
    (the log records are JSON lines on stdout)."""
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "proxy", "--port", "0", "--ollama-url", fake_url, *extra],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )
    seen: list[bytes] = []
    while True:
        data = await process.stdout.receive_some(4096)
        assert data, b"".join(seen).decode()
        seen.append(data)
        found = re.search(rb'listening on (http://[^\s"]+)', b"".join(seen))
        if found:
            return process, found.group(1).decode(), seen


async def drain(process: trio.Process, seen: list[bytes]) -> None:
    while data := await process.stdout.receive_some(4096):
        seen.append(data)


async def test_sigterm_lets_a_stream_finish_then_exits(fake_ollama):
    fake_ollama.script_chat([Chunk(content="working "), Sleep(1.0), *text_stream("done")])
    with trio.fail_after(30):
        process, url, seen = await start_cli(fake_ollama.url, "--graceful-timeout", "20")
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(drain, process, seen)
                async with httpx.AsyncClient(base_url=url, timeout=20) as client:
                    async with client.stream("POST", "/v1/messages", json=BODY) as response:
                        body = b""
                        async for data in response.aiter_raw():
                            if not body:
                                process.send_signal(signal.SIGTERM)  # mid-stream
                            body += data
                assert await process.wait() == 0
        finally:
            if process.returncode is None:
                process.kill()
    assert body.rstrip().endswith(b'data: {"type":"message_stop"}')
    assert b"received SIGTERM" in b"".join(seen)


async def test_sigterm_cancels_a_stream_after_the_grace_period(fake_ollama):
    fake_ollama.script_chat([Chunk(content="forever "), Stall()])
    with trio.fail_after(30):
        process, url, seen = await start_cli(fake_ollama.url, "--graceful-timeout", "0.5")
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(drain, process, seen)
                async with httpx.AsyncClient(base_url=url, timeout=20) as client:
                    async with client.stream("POST", "/v1/messages", json=BODY) as response:
                        body = b""
                        try:
                            async for data in response.aiter_raw():
                                if not body:
                                    process.send_signal(signal.SIGTERM)
                                body += data
                        except httpx.RemoteProtocolError:
                            pass  # cut at the end of the grace period
                await fake_ollama.wait_disconnected(1)  # the Ollama connection was closed
                assert await process.wait() == 0
        finally:
            if process.returncode is None:
                process.kill()
    assert b"message_stop" not in body


async def test_a_hypercorn_worker_exits_when_its_parent_is_killed(fake_ollama, tmp_path):
    """``hypercorn proxy.app:app``: SIGKILL the parent; its worker notices and stops serving."""
    import os

    env = {**os.environ, "PROXY_OLLAMA_URL": fake_ollama.url}
    env = {k: v for k, v in env.items() if not k.startswith("PROXY_") or k == "PROXY_OLLAMA_URL"}
    command = [sys.executable, "-m", "hypercorn", "proxy.app:app", "--worker-class", "trio",
               "--bind", "127.0.0.1:0", "--workers", "1"]
    with trio.fail_after(40):
        process = await trio.lowlevel.open_process(
            command, cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            seen: list[bytes] = []
            while not (found := re.search(rb"Running on (http://127\.0\.0\.1:\d+)", b"".join(seen))):
                data = await process.stdout.receive_some(4096)
                assert data, b"".join(seen).decode()
                seen.append(data)
            url = found.group(1).decode()
            async with httpx.AsyncClient(base_url=url, timeout=5) as client:
                assert (await client.get("/")).status_code == 200
            children = open(f"/proc/{process.pid}/task/{process.pid}/children").read().split()
            workers = [int(pid) for pid in children]
            assert workers, "hypercorn started no worker process"
            process.send_signal(signal.SIGKILL)
            await process.wait()
            # The worker is gone within a few checks, and the port no longer answers.
            for _ in range(100):
                if not any(os.path.exists(f"/proc/{pid}") and _alive(pid) for pid in workers):
                    break
                await trio.sleep(0.1)
            else:
                raise AssertionError(f"worker(s) {workers} still running after their parent was killed")
            async with httpx.AsyncClient(base_url=url, timeout=2) as client:
                try:
                    await client.get("/")
                    raise AssertionError("the port still answers")
                except httpx.TransportError:
                    pass
        finally:
            if process.returncode is None:
                process.kill()
            for pid in open(f"/proc/{process.pid}/task/{process.pid}/children").read().split() if os.path.exists(f"/proc/{process.pid}") else []:
                os.kill(int(pid), signal.SIGKILL)


def _alive(pid: int) -> bool:
    """False for a process that is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False
