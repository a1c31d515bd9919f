"""Render a results JSON of bench/run_all.py into docs/BENCHMARKS.md and docs/benchmarks.png.

    .venv/bin/python bench/report.py [RESULTS.json]   (default .cache/bench/results-latest.json)
    .venv/bin/python bench/report.py --compare BEFORE.json AFTER.json   (a before/after table)
    .venv/bin/python bench/report.py --compare-baseline RESULTS.json [TITLE]   (run_all --baseline-source)

Only the part of BENCHMARKS.md between the ``<!-- bench:generated -->`` markers is rewritten;
the text around it (what the numbers mean, profiles, before/after) is kept. The plot is drawn
by ``bench/plot.py`` in a cache venv (``.cache/bench/plot-venv``, matplotlib pinned below),
created on first use: matplotlib is not a dependency of the proxy.
"""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache" / "bench"
PLOT_VENV = CACHE / "plot-venv"
MATPLOTLIB = "matplotlib==3.9.2"
BEGIN, END = "<!-- bench:generated:begin -->", "<!-- bench:generated:end -->"
ORDER = ("floor", "proxy", "baseline", "litellm", "claude-code-router")
PEERS = ("litellm", "claude-code-router")
COMMAND = "make bench    # = .venv/bin/python bench/run_all.py (--runs 3 --requests 10000 --memory-seconds 120)"

#: (summary key, label, unit, higher is better, target for this proxy, target is a maximum)
TARGETS = [
    ("ttft_added_p50_ms", "added time to first token, p50 (50 KB request)", "ms", False, 2.0),
    ("throughput_chunks_per_s", "relay throughput, one stream", "chunks/s", True, 20_000),
    ("throughput1_chunks_per_s", "relay throughput, one stream, one chunk per send", "chunks/s", True, 120_000),
    ("concurrency_added_p99_ms", "64 × 100 tokens/s: added latency per chunk, p99", "ms", False, 10.0),
    ("memory_growth_mb", "RSS growth over the requests of the memory phase", "MB", False, 5.0),
    ("cancel_p99_ms", "cancel latency, p99", "ms", False, 20.0),
]


def num(value: Any, digits: int = 2, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, (int, float)) and abs(value) >= 1000:
        text = f"{value:,.0f}"
    elif isinstance(value, (int, float)) and abs(value) >= 100:
        text = f"{value:.0f}"
    else:
        text = f"{value:.{digits}f}"
    return f"{text} {unit}".strip()


def times(a: Any, b: Any) -> str:
    """How many times a is b, for the ratio columns."""
    if a is None or b is None or not b or (isinstance(a, float) and math.isnan(a)):
        return "—"
    return f"{a / b:.2f}×" if a / b < 100 else f"{a / b:,.0f}×"


def rows(results: dict[str, Any]) -> list[tuple[str, str, bool, dict[str, Any]]]:
    """(label, unit, higher is better, value per target) for the main table."""
    s = results["summary"]

    def col(key: str) -> dict[str, Any]:
        return {name: s.get(name, {}).get(key) for name in ORDER}

    out = [
        ("time to first token, p50", "ms", False, col("ttft_p50_ms")),
        ("time to first token, p99", "ms", False, col("ttft_p99_ms")),
        ("added time to first token, p50", "ms", False, col("ttft_added_p50_ms")),
        ("added time to first token, p99", "ms", False, col("ttft_added_p99_ms")),
        ("relay throughput, one stream", "chunks/s", True, col("throughput_chunks_per_s")),
        ("relay throughput, one stream, one chunk per send", "chunks/s", True, col("throughput1_chunks_per_s")),
        ("64 × 100 tok/s: latency per chunk, p50", "ms", False, col("concurrency_p50_ms")),
        ("64 × 100 tok/s: latency per chunk, p99", "ms", False, col("concurrency_p99_ms")),
        ("64 × 100 tok/s: added latency, p50", "ms", False, col("concurrency_added_p50_ms")),
        ("64 × 100 tok/s: added latency, p99", "ms", False, col("concurrency_added_p99_ms")),
        ("64 × 100 tok/s: server CPU", "% of a core", False, col("concurrency_cpu_pct")),
        ("64 × 100 tok/s: server CPU per chunk relayed", "µs", False, cpu_per_chunk(results)),
        ("cancel latency, p50", "ms", False, col("cancel_p50_ms")),
        ("cancel latency, p99", "ms", False, col("cancel_p99_ms")),
        ("RSS at rest (fresh)", "MB", False, col("memory_rest_mb")),
        ("RSS after 100 requests", "MB", False, col("memory_warm_mb")),
        ("RSS after the memory phase", "MB", False, col("memory_after_mb")),
        ("RSS growth (after − at rest)", "MB", False, col("memory_growth_mb")),
        ("requests in the memory phase (after the first 100)", "requests", True, col("memory_requests")),
        ("requests/s in the memory phase (4 connections)", "req/s", True, col("memory_requests_per_s")),
    ]
    for label in ("50 KB", "1 MB", "5 MB"):
        out.append((f"count_tokens over HTTP, {label}, p50", "ms", False,
                    {name: (results.get("count_tokens", {}).get(name, {}).get(label) or {}).get("p50_ms")
                     for name in ORDER}))
    return out


def cpu_per_chunk(results: dict[str, Any]) -> dict[str, Any]:
    """Median over runs of the server's CPU time per stamped chunk in the 64-stream phase."""
    out = {}
    for name in ORDER:
        values = []
        for run in results.get("runs", []):
            v = run.get("concurrency", {}).get(name)
            if isinstance(v, dict) and v.get("chunks") and v.get("cpu_s") is not None:
                values.append(v["cpu_s"] / v["chunks"] * 1e6)
        out[name] = statistics.median(values) if values else None
    return out


def cell(results: dict[str, Any], name: str, value: Any, unit: str, label: str) -> str:
    if name in results.get("not_measured", {}):
        return "not measured"
    if name not in results["summary"]:
        return "—"
    if value is None and label.startswith("cancel") and results["summary"][name].get("cancel_not_closed"):
        return f"never closed ({results['summary'][name]['cancel_not_closed']} tried)"
    if value is None and label.startswith("count_tokens"):
        entry = results.get("count_tokens", {}).get(name, {})
        size = label.split(",")[1].strip()
        if name == "floor":
            return "n/a (Ollama has none)"
        if isinstance(entry, dict) and isinstance(entry.get(size), dict) and "error" in entry[size]:
            return "n/a (" + entry[size]["error"].split(":")[0] + ")"
    return num(value)


def better(proxy: Any, peer: Any, higher: bool) -> str:
    if proxy is None or peer is None or (isinstance(proxy, float) and math.isnan(proxy)):
        return "—"
    if higher:
        return times(proxy, peer)
    if proxy <= 0:
        return "ours ≤ 0" if peer > 0 else "—"
    return times(peer, proxy)


def background(results: dict[str, Any]) -> tuple[float | None, float | None]:
    values = []
    for run in results.get("runs", []):
        if run.get("ttft_background_cpu_pct") is not None:
            values.append(run["ttft_background_cpu_pct"])
        for phase in ("throughput", "throughput1", "concurrency", "cancel"):
            for v in run.get(phase, {}).values():
                if isinstance(v, dict) and v.get("background_cpu_pct") is not None:
                    values.append(v["background_cpu_pct"])
    for v in results.get("memory", {}).values():
        if isinstance(v, dict) and v.get("background_cpu_pct") is not None:
            values.append(v["background_cpu_pct"])
    if not values:
        return None, None
    return statistics.median(values), max(values)


def markdown(results: dict[str, Any]) -> str:
    m, cfg, s = results["machine"], results["config"], results["summary"]
    names = [n for n in ORDER if n in s or n in results.get("not_measured", {})]
    labels = {n: results["targets"].get(n, {}).get("label", n) for n in names}
    lines = [BEGIN, ""]
    lines += [
        f"Run of {m['date']} on {m['cpu']}, {m['cores']} cores, {m['memory_mb']:,} MB, Linux {m['kernel']},"
        f" Python {m['python']}; this proxy at commit `{m['commit']}`. {cfg['runs']} runs (medians over runs of"
        f" each run's percentiles), {cfg['ttft_samples']} time-to-first-token samples and {cfg['cancel_samples']}"
        f" cancels per run, {cfg['requests']:,} requests in the memory phase. Results file:"
        f" `{Path(cfg.get('out', '')).relative_to(ROOT) if cfg.get('out', '').startswith(str(ROOT)) else cfg.get('out')}`.",
        "",
    ]
    med, top = background(results)
    if med is not None:
        lines += [f"Other processes on the machine (not the bench's) used a median {med:.0f} % of a core during the"
                  f" phases (at most {top:.0f} %): on 2 cores, latencies are sensitive to that.", ""]
    lines += ["```sh", COMMAND, "```", ""]
    if results.get("not_measured"):
        for name, why in results["not_measured"].items():
            lines.append(f"- **{name}: not measured**: {why}")
        lines.append("")
    lines += ["### Targets (this proxy)", "", "| target | goal | measured | met |", "| --- | --- | --- | --- |"]
    for key, label, unit, higher, goal in TARGETS:
        value = s.get("proxy", {}).get(key)
        met = "—" if value is None else ("yes" if (value >= goal if higher else value <= goal) else "**no**")
        lines.append(f"| {label} | {'≥' if higher else '≤'} {num(goal, 0)} {unit} | {num(value)} {unit} | {met} |")
    for key, what in (("ttft_added_p50_ms", "time to first token"), ("throughput_chunks_per_s", "throughput"),
                      ("throughput1_chunks_per_s", "throughput, one chunk per send")):
        higher = key.startswith("throughput")
        ours = s.get("proxy", {}).get(key)
        verdicts = []
        for peer in PEERS:
            theirs = s.get(peer, {}).get(key)
            if peer in results.get("not_measured", {}) or theirs is None or ours is None:
                verdicts.append(f"{peer}: not measured")
            else:
                ahead = ours > theirs if higher else ours < theirs
                verdicts.append(f"{peer}: {'ahead' if ahead else '**behind**'}")
        lines.append(f"| ahead of every peer on {what} | ahead | {'; '.join(verdicts)} | "
                     f"{'yes' if all(v.endswith(': ahead') for v in verdicts) else '**no**'} |")
    lines += ["", "### All measurements", ""]
    head = "| measurement | unit | " + " | ".join(labels[n] for n in names) + " |"
    lines += [head, "| --- | --- | " + " | ".join("---:" for _ in names) + " |"]
    table = rows(results)
    for label, unit, _higher, values in table:
        lines.append(f"| {label} | {unit} | " + " | ".join(cell(results, n, values.get(n), unit, label) for n in names) + " |")
    lines += ["", "### Ratios", "",
              "*this proxy ÷ floor* is the plain ratio of the two numbers. *× better than …* is how many times"
              " better this proxy is than the peer on that line (peer ÷ ours for times and sizes, ours ÷ peer for"
              " rates): above 1 we are ahead, below 1 behind.", ""]
    peer_names = [p for p in PEERS if p in names]
    lines += ["| measurement | this proxy ÷ floor | " + " | ".join(f"× better than {p}" for p in peer_names) + " |",
              "| --- | ---: | " + " | ".join("---:" for _ in peer_names) + " |"]
    for label, unit, higher, values in table:
        if label.startswith(("added", "64 × 100 tok/s: added", "RSS growth")):
            vs_floor = "—"
        else:
            vs_floor = times(values.get("proxy"), values.get("floor")) if values.get("floor") is not None else "—"
        peer_cells = []
        for p in peer_names:
            if p in results.get("not_measured", {}):
                peer_cells.append("not measured")
            elif label.startswith("cancel") and values.get(p) is None and results["summary"].get(p, {}).get("cancel_not_closed"):
                peer_cells.append("theirs never closed")
            else:
                peer_cells.append(better(values.get("proxy"), values.get(p), higher))
        lines.append(f"| {label} | {vs_floor} | " + " | ".join(peer_cells) + " |")
    tr = results.get("translate")
    if tr:
        lines += ["", "### This proxy's own functions (in a process of their own)", "",
                  "| request | bytes | messages | parse + validate + translate, p50 / p90 | count_tokens estimate, p50 / p90 |",
                  "| --- | ---: | ---: | ---: | ---: |"]
        for label, v in tr.items():
            lines.append(f"| {label} | {v['bytes']:,} | {v['messages']:,} | {num(v['translate_p50_ms'])} / "
                         f"{num(v['translate_p90_ms'])} ms | {num(v['count_tokens_p50_ms'])} / {num(v['count_tokens_p90_ms'])} ms |")
    details = []
    for name in names:
        errs = s.get(name, {}).get("errors") or {}
        for phase, e in errs.items():
            details.append(f"- {labels[name]}, {phase}: failed: {e}")
        if s.get(name, {}).get("cancel_not_closed"):
            details.append(f"- {labels[name]}, cancel: {s[name]['cancel_not_closed']} cancelled streams were still open"
                           " at the fake 2 s after the client left (not in the percentiles; after 3 such in a run"
                           " with none closed, that run's cancel phase stops)")
        if results.get("memory", {}).get(name, {}).get("cut_short"):
            mem = results["memory"][name]
            details.append(f"- {labels[name]}, memory: {mem['requests']:,} of {cfg['requests']:,} requests done in the"
                           f" {cfg.get('memory_seconds', 120):g} s allowed ({mem['requests_per_s']:.1f} req/s); its RSS"
                           " is after those")
        chunks, expected = s.get(name, {}).get("concurrency_chunks"), s.get(name, {}).get("concurrency_expected_chunks")
        if chunks is not None and expected and chunks < expected:
            details.append(f"- {labels[name]}, 64 streams: {chunks:.0f} of {expected:.0f} stamped chunks arrived")
    notes = [f"- {results['targets'][n]['note']}" for n in names if results["targets"].get(n, {}).get("note")]
    if details or notes:
        lines += ["", "### Notes on this run", ""] + notes + details
    lines += ["", "![benchmarks](benchmarks.png)", "", END]
    return "\n".join(lines)


def panels(results: dict[str, Any]) -> dict[str, Any]:
    s = results["summary"]
    names = [n for n in ORDER if n in s or n in results.get("not_measured", {})]

    def vals(key: str) -> list[Any]:
        return [s.get(n, {}).get(key) for n in names]

    return {
        "title": f"claude-code-ollama-proxy benchmarks, {results['machine']['date']} ({results['machine']['cores']} cores)",
        "names": names,
        "labels": [{"floor": "floor", "proxy": "this proxy", "baseline": "before", "litellm": "LiteLLM",
                    "claude-code-router": "claude-code-router"}.get(n, n) for n in names],
        "panels": [
            {"title": "added time to first token, p50 (50 KB)", "unit": "ms", "values": vals("ttft_added_p50_ms"),
             "target": 2, "skip_floor": True, "log": True},
            {"title": "relay throughput, one stream", "unit": "chunks/s", "values": vals("throughput_chunks_per_s"),
             "target": 20_000, "log": True},
            {"title": "relay throughput, one chunk per send", "unit": "chunks/s",
             "values": vals("throughput1_chunks_per_s"), "target": 120_000, "log": True},
            {"title": "64 × 100 tok/s: added latency per chunk, p99", "unit": "ms",
             "values": vals("concurrency_added_p99_ms"), "target": 10, "skip_floor": True, "log": True},
            {"title": "64 × 100 tok/s: server CPU", "unit": "% of a core", "values": vals("concurrency_cpu_pct")},
            {"title": "RSS after the memory phase", "unit": "MB", "values": vals("memory_after_mb")},
            {"title": "cancel latency, p99", "unit": "ms", "values": vals("cancel_p99_ms"), "target": 20, "log": True,
             "notes": ["never closed" if s.get(n, {}).get("cancel_not_closed") else None for n in names]},
        ],
    }


def ensure_plot_venv() -> Path:
    python = PLOT_VENV / "bin" / "python"
    marker = PLOT_VENV / f".installed-{MATPLOTLIB}"
    if not marker.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PLOT_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        "--only-binary", ":all:", MATPLOTLIB], check=True)
        marker.touch()
    return python


def render(results: dict[str, Any], md_path: Path, png_path: Path) -> None:
    generated = markdown(results)
    text = md_path.read_text() if md_path.exists() else f"# Benchmarks\n\n{BEGIN}\n{END}\n"
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + generated + text[text.index(END) + len(END):]
    else:
        text = text.rstrip() + "\n\n" + generated + "\n"
    md_path.write_text(text)
    spec = CACHE / "panels.json"
    spec.write_text(json.dumps(panels(results)))
    try:
        python = ensure_plot_venv()
        subprocess.run([str(python), str(ROOT / "bench" / "plot.py"), str(spec), str(png_path)], check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"bench: the plot was not drawn ({exc}); {md_path} was written", file=sys.stderr)
    print(f"bench: wrote {md_path} and {png_path}", file=sys.stderr)


def print_summary(results: dict[str, Any]) -> None:
    s = results["summary"]
    for label, unit, _higher, values in rows(results):
        print(f"{label:<50} {unit:<12}" + "".join(f"{num(values.get(n)):>16}" for n in ORDER if n in s))
    for name, why in results.get("not_measured", {}).items():
        print(f"{name}: not measured: {why}")


def compare(before: dict[str, Any], after: dict[str, Any], name: str = "proxy", old_name: str = "proxy",
            old_title: str | None = None) -> str:
    """A markdown table of this proxy's numbers before → after a fix: from two results files,
    or (``old_name="baseline"``) from one run that measured both (``--baseline-source``)."""
    b_rows = {label: (unit, values.get(old_name)) for label, unit, _h, values in rows(before)}
    old_title = old_title or f"before (`{before['machine']['commit']}`, {before['machine']['date']})"
    out = [f"| measurement | unit | {old_title} | after (`{after['machine']['commit']}`) | floor |",
           "| --- | --- | ---: | ---: | ---: |"]
    for label, unit, _higher, values in rows(after):
        old = b_rows.get(label, (unit, None))[1]
        new = values.get(name)
        if old is None and new is None:
            continue
        out.append(f"| {label} | {unit} | {num(old)} | {num(new)} | {num(values.get('floor'))} |")
    return "\n".join(out)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--compare":
        print(compare(json.loads(Path(sys.argv[2]).read_text()), json.loads(Path(sys.argv[3]).read_text())))
        sys.exit(0)
    if len(sys.argv) > 1 and sys.argv[1] == "--compare-baseline":
        both = json.loads(Path(sys.argv[2]).read_text())
        print(compare(both, both, old_name="baseline", old_title=f"before ({sys.argv[3] if len(sys.argv) > 3 else 'baseline'})"))
        sys.exit(0)
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else CACHE / "results-latest.json"
    render(json.loads(path.read_text()), ROOT / "docs" / "BENCHMARKS.md", ROOT / "docs" / "benchmarks.png")
