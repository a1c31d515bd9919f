"""What recognizing printed tool calls costs on answers that print none.

    .venv/bin/python bench/bench_text_calls.py [--baseline-rev REV] [--repeat N] [--json PATH]

Streams answers with no call in them (and two with one big call) through :class:`~proxy.stream.translator.ResponseTranslator`
(the client offered Claude Code's tools, so the text-call filter is on), in Ollama-sized
chunks of about 4 characters, and prints the time per chunk. The same answers also go through
the translator and filter of ``--baseline-rev`` (default: the commit before the dialect
recognizers), loaded from git into this run only, interleaved with the current ones so both
see the same machine. Not a test: numbers live here, behaviour in tests/.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path

from proxy.stream.translator import ResponseTranslator

ROOT = Path(__file__).resolve().parents[1]

PROSE = (
    "I looked at the failing test and the cause is an off-by-one error in the loop that walks "
    "the list of pending jobs. The fix is small: start the index at one, not zero, and stop "
    "before the end. After that change the whole suite passes, including the slow tests. "
) * 40
MARKDOWN = (
    "The function `parse_config` reads the file and returns a dict; see **config.py**.\n\n"
    "```python\ndef parse_config(path):\n    with open(path) as f:\n        return {k: v for k, v in (l.split('=') for l in f)}\n```\n\n"
    "- item one: values like [1, 2, 3] and {\"a\": 1} are fine\n- item two: <b>html</b> too\n\n"
) * 25
_FILE = "".join(f"def f{i}(x):\n    return {{'k': [x, {i}]}}\n" for i in range(400))  # 16 KB of code
_WRITE = json.dumps({"name": "Write", "arguments": {"file_path": "/tmp/a.py", "content": _FILE}})
CORPORA = {
    "prose, no markers": PROSE,
    "markdown with code": MARKDOWN,
    # a big call printed as text: held until whole, so what matters is not re-reading it all per chunk
    "16 KB Write, <tool_call>": f"<tool_call>{_WRITE}</tool_call>",
    "16 KB Write, ```json": f"```json\n{_WRITE}\n```",
}
TOOLS = {name: {"type": "object", "properties": {"command": {"type": "string"}}}
         for name in ("Bash", "Read", "Edit", "Glob", "Grep", "Task", "WebFetch", "TodoWrite")}
TOOLS["Write"] = {"type": "object", "properties": {"file_path": {"type": "string"}, "content": {"type": "string"}}}


def _baseline_rev() -> str:
    added = subprocess.run(
        ["git", "log", "--diff-filter=A", "--format=%H", "--", "proxy/stream/dialects/base.py"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()
    return f"{added[-1]}^" if added else "HEAD"


def _load_baseline(rev: str) -> type:
    """The baseline's ResponseTranslator, its text_calls module beside it, from git."""

    def source(path: str) -> str:
        return subprocess.run(["git", "show", f"{rev}:{path}"], cwd=ROOT, capture_output=True, text=True, check=True).stdout

    package = types.ModuleType("_baseline_stream")
    package.__path__ = []  # type: ignore[attr-defined]
    sys.modules["_baseline_stream"] = package
    old_calls = types.ModuleType("_baseline_stream.text_calls")
    sys.modules["_baseline_stream.text_calls"] = old_calls
    exec(compile(source("proxy/stream/text_calls.py"), "baseline text_calls.py", "exec"), old_calls.__dict__)
    text = source("proxy/stream/translator.py")
    text = text.replace("from .text_calls import", "from _baseline_stream.text_calls import")
    text = text.replace("from ..", "from proxy.").replace("from .", "from proxy.stream.")
    module = types.ModuleType("_baseline_stream.translator")
    sys.modules["_baseline_stream.translator"] = module
    exec(compile(text, "baseline translator.py", "exec"), module.__dict__)
    return module.ResponseTranslator


def _lines(text: str) -> list[bytes]:
    chunks = [text[i : i + 4] for i in range(0, len(text), 4)]
    lines = [json.dumps({"model": "m", "created_at": "x", "message": {"role": "assistant", "content": c}, "done": False}).encode() + b"\n"
             for c in chunks]
    lines.append(json.dumps({"model": "m", "created_at": "x", "message": {"role": "assistant", "content": ""},
                             "done": True, "done_reason": "stop", "eval_count": 9}).encode() + b"\n")
    return lines


def _run(cls: type, lines: list[bytes]) -> float:
    translator = cls(client_model="claude-sonnet-4-5", input_tokens=9, tools=TOOLS)
    start = time.perf_counter()
    translator.start()
    for line in lines:
        translator.feed(line)
    return (time.perf_counter() - start) / len(lines) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--baseline-rev", default=None)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rev = args.baseline_rev or _baseline_rev()
    baseline = _load_baseline(rev)
    print(f"µs per ~4-character chunk, median (p90) of {args.repeat} interleaved runs; baseline {rev}")
    results = {}
    for label, text in CORPORA.items():
        lines = _lines(text)
        now, then = [], []
        for _ in range(args.repeat):
            then.append(_run(baseline, lines))
            now.append(_run(ResponseTranslator, lines))
        row = {}
        for name, samples in (("baseline", then), ("current", now)):
            samples.sort()
            row[name] = {"p50_us": statistics.median(samples), "p90_us": samples[int(len(samples) * 0.9) - 1]}
        print(f"{label:>20}: baseline {row['baseline']['p50_us']:.2f} ({row['baseline']['p90_us']:.2f})"
              f"  current {row['current']['p50_us']:.2f} ({row['current']['p90_us']:.2f})"
              f"  ratio {row['current']['p50_us'] / row['baseline']['p50_us']:.2f}")
        results[label] = row
    if args.json:
        args.json.write_text(json.dumps({"baseline_rev": rev, "results": results}, indent=1))


if __name__ == "__main__":
    main()
