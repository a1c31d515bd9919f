"""Translation and count_tokens time for Claude Code-sized requests: 50 KB, 1 MB, 5 MB.

    .venv/bin/python bench/bench_translate.py [--repeat N] [--json PATH]

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
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
