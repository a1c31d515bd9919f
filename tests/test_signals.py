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
