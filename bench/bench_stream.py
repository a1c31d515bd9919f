"""Streaming benchmarks of this proxy against the floor (a direct call to the fake Ollama).

    .venv/bin/python bench/bench_stream.py [--repeat N]

Client, proxy and fake Ollama share one process and one trio loop here, so the numbers are
pessimistic (the proxy competes with its own load generator for the CPU). Measures:
added time to first token for the captured 50 KB Claude Code request, relay throughput for
one stream sent as fast as the fake can, and cancel latency (client hang-up → the fake sees
its connection closed). Not a test: it prints numbers and asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import httpx
import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from proxy.config import load_settings  # noqa: E402
from proxy.server import serve  # noqa: E402
from tests.fake_ollama import Chunk, FakeOllama, Model, Stall, text_stream  # noqa: E402

FIXTURE = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "claude-code" / "01-first-turn-streaming.json"


def pct(samples: list[float], p: float) -> float:
    samples = sorted(samples)
    return samples[min(len(samples) - 1, int(round(p / 100 * (len(samples) - 1))))]


async def first_byte(client: httpx.AsyncClient, url: str, body: dict, marker: bytes) -> float:
    start = trio.current_time()
    async with client.stream("POST", url, json=body) as response:
        seen = b""
        async for data in response.aiter_raw():
            seen += data
            if marker in seen:
                return trio.current_time() - start
    raise RuntimeError("no first token")


async def main(repeat: int) -> None:
    body = json.loads(FIXTURE.read_text())["body"]
    fake = FakeOllama(models=[Model("qwen3:8b", capabilities=("completion", "tools", "thinking"), context_length=131072)])
    async with trio.open_nursery() as nursery:
        await nursery.start(fake.serve)
        settings = load_settings({"port": 0, "ollama_url": fake.url, "log_level": "WARNING", "quiet": True},
                                 environ={}, read_config_file=False)
        proxy_url = (await nursery.start(serve, settings))[0]
        ollama_body = {"model": "qwen3:8b", "messages": [{"role": "user", "content": "hi"}], "stream": True}
        async with httpx.AsyncClient(timeout=30) as client:
            # -- added time to first token ------------------------------------------------
            direct, proxied = [], []
            for _ in range(repeat):
                fake.script_chat(text_stream("Hello"))
                direct.append(await first_byte(client, f"{fake.url}/api/chat", ollama_body, b'He"'))
                fake.script_chat(text_stream("Hello"))
                proxied.append(await first_byte(client, f"{proxy_url}/v1/messages", body, b"text_delta"))
            ttft = (statistics.median(proxied) - statistics.median(direct)) * 1000
            print(f"time to first token, 50 KB Claude Code request: direct p50 {statistics.median(direct)*1000:.2f} ms,"
                  f" proxied p50 {statistics.median(proxied)*1000:.2f} ms, added {ttft:.2f} ms")

            # -- relay throughput ----------------------------------------------------------
            n = 20000
            fake.script_chat([Chunk(content="tok ") for _ in range(n)] + text_stream("", eval_count=n))
            start = trio.current_time()
            async with client.stream("POST", f"{proxy_url}/v1/messages", json={**body, "stream": True}) as response:
                async for _ in response.aiter_raw():
                    pass
            elapsed = trio.current_time() - start
            fake.script_chat([Chunk(content="tok ") for _ in range(n)] + text_stream("", eval_count=n))
            start = trio.current_time()
            async with client.stream("POST", f"{fake.url}/api/chat", json=ollama_body) as response:
                async for _ in response.aiter_raw():
                    pass
            floor = trio.current_time() - start
            print(f"relay throughput, one stream of {n} chunks: {n/elapsed:,.0f} chunks/s through the proxy"
                  f" (the fake alone: {n/floor:,.0f} chunks/s)")

            # -- cancel latency ------------------------------------------------------------
            latencies = []
            for _ in range(repeat):
                fake.script_chat([Chunk(content="working "), Stall()])
                seen = len(fake.disconnects)
                async with client.stream("POST", f"{proxy_url}/v1/messages", json={**body, "stream": True}) as response:
                    async for data in response.aiter_raw():
                        if b"working" in data:
                            break
                closed = trio.current_time()  # leaving the block closed the client connection
                await fake.wait_disconnected(seen + 1)
                latencies.append((fake.disconnects[-1].at - closed) * 1000)
            print(f"cancel latency (client hang-up → Ollama connection closed): p50 {pct(latencies, 50):.2f} ms,"
                  f" p99 {pct(latencies, 99):.2f} ms over {len(latencies)}")
        nursery.cancel_scope.cancel()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=50)
    trio.run(main, parser.parse_args().repeat)
