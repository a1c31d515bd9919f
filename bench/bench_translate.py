"""Translation and count_tokens time for Claude Code-sized requests: 50 KB, 1 MB, 5 MB.

    .venv/bin/python bench/bench_translate.py [--repeat N] [--json PATH] [--stall]

``--stall`` also measures how long one huge request (16 MB: 120,000 short user messages)
stalls the event loop, for the three ways of running its CPU work: inline on the loop, in
slices (a checkpoint between parse, validate, estimate and translate), or in a worker thread
(``trio.to_thread.run_sync``, what proxy/server/app.py does from OFF_LOOP_BYTES on); and what the
thread's hand-off costs for ordinary sizes.

Bigger requests are built from the captured first turn by appending turns of tool calls and
results (as a long session grows). Prints the median and p90 of each step, in milliseconds.
Not a test: targets live here, behaviour in tests/.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from pathlib import Path

import trio

from proxy.protocol.tokens import estimate_tokens
from proxy.protocol.translate import translate_request, validate_request

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "data" / "claude-code" / "01-first-turn-streaming.json"


def grown(body: dict, size: int) -> dict:
    """``body`` plus tool-call rounds until its JSON is about ``size`` bytes."""
    body = copy.deepcopy(body)
    n = 0
    output = "line of command output with some code in it: def f(x): return x * 2\n" * 40
    while len(json.dumps(body)) < size:
        n += 1
        body["messages"] += [
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "Checking the next file.", "signature": "sig"},
                {"type": "text", "text": f"Reading file {n}."},
                {"type": "tool_use", "id": f"toolu_{n:024x}", "name": "Bash",
                 "input": {"command": f"cat src/module_{n}.py", "description": "read"}},
            ]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"toolu_{n:024x}", "content": output}]},
        ]
    return body


def timed(fn, repeat: int) -> tuple[float, float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.9) - 1 if len(samples) > 1 else 0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--stall", action="store_true", help="also measure event-loop stalls (see above)")
    parser.add_argument("--json", type=Path, help="also write the numbers here (bench/run_all.py reads them)")
    args = parser.parse_args()
    results = {}
    base = json.loads(FIXTURE.read_text())["body"]
    print(f"{'request':>8} {'bytes':>9} {'messages':>8} | {'parse+validate+translate ms (p50/p90)':>38} | {'count_tokens ms (p50/p90)':>26}")
    for label, size in (("50 KB", 50_000), ("1 MB", 1_000_000), ("5 MB", 5_000_000)):
        body = grown(base, size)
        raw = json.dumps(body).encode()
        translate = lambda: translate_request(validate_request(json.loads(raw)), ollama_model="qwen3:8b")
        count = lambda: estimate_tokens(json.loads(raw))
        repeat = max(3, args.repeat if size < 1_000_000 else args.repeat // 5)
        t50, t90 = timed(translate, repeat)
        c50, c90 = timed(count, repeat)
        print(f"{label:>8} {len(raw):>9} {len(body['messages']):>8} | {t50:>18.2f} / {t90:<17.2f} | {c50:>12.2f} / {c90:<11.2f}")
        results[label] = {"bytes": len(raw), "messages": len(body["messages"]), "repeat": repeat,
                          "translate_p50_ms": t50, "translate_p90_ms": t90,
                          "count_tokens_p50_ms": c50, "count_tokens_p90_ms": c90}
    if args.stall:
        results["stall"] = stall(base)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


def _steps(raw: bytes) -> list:
    """The request's CPU work as steps, each taking the previous step's result."""
    return [
        json.loads,
        lambda body: validate_request(body),
        lambda body: (estimate_tokens(body), body)[1],
        lambda body: translate_request(body, ollama_model="qwen3:8b"),
    ]


async def _measure(raw: bytes, mode: str) -> tuple[float, float]:
    """(total ms, the event loop's longest stall in ms) while ``raw`` is processed."""
    worst = 0.0
    done = False

    async def ticker() -> None:
        nonlocal worst
        last = time.perf_counter()
        while not done:
            await trio.sleep(0.001)
            now = time.perf_counter()
            worst = max(worst, now - last)
            last = now

    def run_all(value):
        for step in _steps(raw):
            value = step(value)
        return value

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ticker)
        await trio.sleep(0.01)
        start = time.perf_counter()
        if mode == "inline":
            run_all(raw)
        elif mode == "slices":
            value = raw
            for step in _steps(raw):
                value = step(value)
                await trio.sleep(0)
        else:
            await trio.to_thread.run_sync(run_all, raw)
        total = time.perf_counter() - start
        done = True
    return total * 1000, worst * 1000


def stall(base: dict) -> dict:
    huge = {"model": "m", "max_tokens": 100,
            "messages": [{"role": "user", "content": f"line {i} of a long paste, padded out to size...... "
                          + "x" * 60} for i in range(120_000)]}
    results = {}
    print("\none huge request (120,000 same-role messages): total ms / longest event-loop stall ms")
    for label, raw in (("16 MB", json.dumps(huge).encode()),
                       ("512 KB", json.dumps(grown(base, 512_000)).encode()),
                       ("50 KB", json.dumps(grown(base, 50_000)).encode())):
        for mode in ("inline", "slices", "thread"):
            runs = [trio.run(_measure, raw, mode) for _ in range(3 if len(raw) > 1_000_000 else 15)]
            total = statistics.median(r[0] for r in runs)
            worst = max(r[1] for r in runs)
            print(f"{label:>8} {mode:>7}: total {total:9.2f} ms   longest stall {worst:9.2f} ms")
            results[f"{label} {mode}"] = {"total_ms": total, "stall_ms": worst}
    return results


if __name__ == "__main__":
    main()
