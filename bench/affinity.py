"""What session affinity buys: prompt prefill with four Ollama hosts, affinity vs round-robin.

    .venv/bin/python bench/affinity.py [--sessions 20] [--turns 10]
                                       [--slots 1,4,8,16] [--runs 3] [--prefill-rate 1500]
                                       [--out docs/DEPLOYMENT.md]

Theory of operation
-------------------
Four fake Ollamas (``tests/fake_ollama.py``) on 127.0.0.1, each with a prefix cache like
Ollama's: ``slots`` cached prompts (``OLLAMA_NUM_PARALLEL``); a request continues in the slot
whose tokens its prompt extends, else takes the least recently used slot (with the longest
shared prefix any slot has copied in), and is *charged* prefill for the tokens after that prefix only (at ``prefill-rate``
tokens/s: a time that is counted, not slept, so the run takes seconds). The slot then holds
the prompt and the answer, as Ollama's does. Tokens are characters / 4.

The workload is Claude Code's shape: ``sessions`` conversations at once, each with its
own system prompt (~12k tokens, the per-session part first: the working directory, the
date, git status — as Claude Code's is) and ``turns`` turns; each turn adds the model's
answer and a ~600-token tool result. All sessions send turn 1, then all send turn 2, …,
each round in a shuffled order (seeded: every run and both routings see the same order), as
independent users' requests interleave; one request at a time, so that what is measured is
the cache, not the queueing.

Two ways to spread the same requests over the same four fakes:

- **affinity**: one proxy with the four URLs (rendezvous hashing on the session id);
- **round-robin**: four single-host proxies, request *k* to proxy *k mod 4*, what a
  plain TCP load balancer in front of the Ollamas (or of one proxy each) does.

Printed: a Markdown table per slot count (prompt tokens sent, tokens prefilled, prefill
time charged, cache hit share). ``--out FILE`` also replaces the block between
``<!-- affinity:begin -->`` and ``<!-- affinity:end -->`` in FILE with it.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import itertools
import json
import random
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import trio  # noqa: E402

from proxy.config import load_settings  # noqa: E402
from proxy.server.runner import serve  # noqa: E402
from tests.fake_ollama import FakeOllama, Model, Recorded, text_stream  # noqa: E402

HOSTS = 4
ANSWER = "I read the file and changed the function as asked; the tests pass now. " * 10  # ~180 tokens
TOOL_RESULT = "line of a file the model asked to read, with some code in it\n" * 40  # ~600 tokens
COMMON_SYSTEM = "You are Claude Code, Anthropic's official CLI for Claude. Rules and tool descriptions follow. " * 500


def tokens(text: str) -> int:
    return len(text) // 4


@dataclasses.dataclass
class CachingHost:
    """A fake Ollama's prefix cache and what it charged."""

    slots: int
    rate: float
    cache: list[str] = dataclasses.field(default_factory=list)  # most recently used last
    prompt_tokens: int = 0
    prefilled_tokens: int = 0
    requests: int = 0

    def on_chat(self, record: Recorded, index: int) -> list[Any]:
        body = record.body or {}
        prompt = json.dumps(body.get("messages"), ensure_ascii=False)
        best, best_len = None, 0
        for cached in self.cache:
            length = _common_prefix(prompt, cached)
            if length > best_len:
                best, best_len = cached, length
        if best is not None and best_len == len(best):
            self.cache.remove(best)  # the prompt extends this slot's tokens: it continues there
        elif len(self.cache) >= self.slots:
            # A new prompt, or one that shares only part of a slot: it goes to the least
            # recently used slot (the shared prefix copied, as Ollama's runner does), and the
            # slot it matched keeps its tokens for its own conversation.
            self.cache.pop(0)
        # the slot now holds this prompt and the answer the model generates after it
        self.cache.append(prompt[:-1] + json.dumps(ANSWER))
        total = tokens(prompt)
        self.requests += 1
        self.prompt_tokens += total
        self.prefilled_tokens += total - tokens(prompt[:best_len])
        return text_stream(ANSWER, prompt_eval_count=total, eval_count=tokens(ANSWER))

    @property
    def prefill_seconds(self) -> float:
        return self.prefilled_tokens / self.rate


def _common_prefix(a: str, b: str) -> int:
    limit = min(len(a), len(b))
    lo, hi = 0, limit
    while lo < hi:  # binary search on slices: C speed on long prompts
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def system_prompt(session: int) -> str:
    return (f"Working directory: /home/dev/project-{session}\nToday's date: 2026-12-{session % 28 + 1:02d}\n"
            f"gitStatus: branch feature-{session}, {session * 7 % 13} files changed\n") + COMMON_SYSTEM


async def run_workload(proxies: list[str], *, sessions: int, turns: int, affinity: bool) -> None:
    histories = [[{"role": "user", "content": f"Task {s}: fix the failing test in module {s}."}] for s in range(sessions)]
    counter = itertools.count()
    order = random.Random(19)
    async with httpx.AsyncClient(timeout=60) as client:
        for _turn in range(turns):
            async def one(s: int) -> None:
                url = proxies[0] if affinity else proxies[next(counter) % len(proxies)]
                response = await client.post(
                    url + "/v1/messages",
                    headers={"x-claude-code-session-id": f"bench-session-{s}"},
                    json={"model": "qwen3:8b", "max_tokens": 1024, "system": system_prompt(s), "messages": histories[s]},
                )
                response.raise_for_status()
                histories[s] += [
                    {"role": "assistant", "content": response.json()["content"][0]["text"]},
                    {"role": "user", "content": TOOL_RESULT},
                ]

            for s in order.sample(range(sessions), sessions):
                await one(s)


async def measure(*, affinity: bool, sessions: int, turns: int, slots: int, rate: float) -> list[CachingHost]:
    hosts = [CachingHost(slots, rate) for _ in range(HOSTS)]
    async with trio.open_nursery() as nursery:
        fakes = []
        for host in hosts:
            fake = FakeOllama(models=[Model("qwen3:8b", capabilities=("completion", "tools"), context_length=262144)])
            fake.loaded["qwen3:8b"] = 4096
            fake.on_chat = host.on_chat
            await nursery.start(fake.serve)
            fakes.append(fake)
        base = {"host": "127.0.0.1", "port": 0, "log_level": "WARNING", "quiet": True, "num_ctx": 65536}
        groups = [[f.url for f in fakes]] if affinity else [[f.url] for f in fakes]
        proxies = []
        for urls in groups:
            settings = load_settings({**base, "ollama_url": urls}, environ={}, read_config_file=False)
            proxies.append((await nursery.start(functools.partial(serve, settings, console_log=False)))[0])
        await run_workload(proxies, sessions=sessions, turns=turns, affinity=affinity)
        nursery.cancel_scope.cancel()
    return hosts


def row(name: str, runs: list[list[CachingHost]]) -> tuple[str, int]:
    """One table row: means over the runs."""
    n = len(runs)
    sent = sum(h.prompt_tokens for hosts in runs for h in hosts) / n
    filled = sum(h.prefilled_tokens for hosts in runs for h in hosts) / n
    seconds = sum(h.prefill_seconds for hosts in runs for h in hosts) / n
    busiest = max(max(h.requests for h in hosts) / sum(h.requests for h in hosts) for hosts in runs)
    return (
        f"| {name} | {sent:,.0f} | {filled:,.0f} | {seconds:,.0f} s | {1 - filled / sent:.0%} | {busiest:.0%} |",
        filled,
    )


def table(results: dict[str, list[list[CachingHost]]], *, slots: int, rate: float) -> list[str]:
    lines = [
        f"**{slots} cache slot{'s' if slots > 1 else ''} per host** (`OLLAMA_NUM_PARALLEL={slots}`):",
        "",
        "| routing | prompt tokens sent | tokens prefilled | prefill time (GPU, all hosts) | served from cache | busiest host's share (worst run) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    filled = {}
    for name, runs in results.items():
        line, filled[name] = row(name, runs)
        lines.append(line)
    ratio = filled["round-robin"] / filled["affinity"]
    lines += ["", f"Round-robin prefills **{ratio:.2f}×** the tokens affinity does.", ""]
    return lines


async def main(args: argparse.Namespace) -> None:
    slot_counts = [int(s) for s in args.slots.split(",")]
    lines = [
        f"`bench/affinity.py --sessions {args.sessions} --turns {args.turns} --slots {args.slots}"
        f" --prefill-rate {args.prefill_rate:g} --runs {args.runs}`: {args.sessions} Claude Code-shaped sessions"
        f" ({tokens(system_prompt(0)):,}-token system prompt each), {args.turns} turns each, on {HOSTS} hosts;"
        f" prefill charged at {args.prefill_rate:g} tokens/s; means over {args.runs} runs (each run: new"
        " hosts on new ports, so another placement of the sessions).",
        "",
    ]
    for slots in slot_counts:
        results: dict[str, list[list[CachingHost]]] = {"affinity": [], "round-robin": []}
        for _ in range(args.runs):
            for name, affinity in (("affinity", True), ("round-robin", False)):
                results[name].append(await measure(
                    affinity=affinity, sessions=args.sessions, turns=args.turns, slots=slots, rate=args.prefill_rate
                ))
        lines += table(results, slots=slots, rate=args.prefill_rate)
    text = "\n".join(lines).rstrip() + "\n"
    print(text)
    if args.out:
        path = Path(args.out)
        doc = path.read_text(encoding="utf-8")
        begin, end = "<!-- affinity:begin -->\n", "<!-- affinity:end -->"
        head, found, rest = doc.partition(begin)
        if not found or end not in rest:
            raise SystemExit(f"{path}: no {begin.strip()} … {end} block to replace")
        path.write_text(head + begin + text + end + rest.split(end, 1)[1], encoding="utf-8")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--slots", default="1,4,8,16", help="cache slots per host, comma-separated (one table each)")
    parser.add_argument("--runs", type=int, default=3, help="runs per routing and slot count (means reported)")
    parser.add_argument("--prefill-rate", type=float, default=1500.0, help="tokens/s a host prefills")
    parser.add_argument("--out", help="a Markdown file whose affinity block is replaced by the result")
    trio.run(main, parser.parse_args())
