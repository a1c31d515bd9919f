"""Benchmarks of this proxy side by side with the floor and its alternatives. ``make bench``.

    .venv/bin/python bench/run_all.py [--runs N] [--targets floor,proxy,litellm,claude-code-router]
                                      [--phases ttft,throughput,concurrency,cancel,memory,count_tokens,translate]
                                      [--requests N] [--out PATH] [--no-render]

Theory of operation
-------------------
Every server is its own process on 127.0.0.1, port 0: the fake Ollama
(``bench/fake_server.py``), this proxy (``claude-code-ollama-proxy serve``, default settings),
and each peer that ``bench/peers.py`` can install and start (LiteLLM's proxy,
claude-code-router), all pointed at the same fake. This process is the load generator: trio
with raw sockets and h11 framing (``bench/client.py``), not httpx, so that the client costs
less per chunk than any relay it measures. The *floor* is the same load sent straight to
the fake's ``/api/chat`` with the Ollama body this proxy would have sent.

Phases (each repeated ``--runs`` times unless said otherwise; a run's percentiles, then
the median over runs):

- ``ttft``: the captured Claude Code first turn (50 KB); request sent → the read that
  brought the first token's text. Targets interleaved sample by sample.
- ``throughput``: one stream of N chunks that the fake sends as fast as the socket takes
  them (64 per send); N sized so the stream lasts about a second; chunks/s = N / time to the
  response's end.
- ``concurrency``: 64 streams started over one second, 100 tokens/s each, every token
  stamped with the fake's CLOCK_MONOTONIC at its send; latency per chunk = read time − stamp;
  CPU = utime+stime of the server's processes (``/proc/<pid>/stat``) over the phase.
- ``cancel``: a stream that stalls after 3 tokens; the client closes its socket once it read
  them; latency = the fake's time of seeing its connection closed − the client's close time.
- ``memory`` (once): VmRSS of the server's processes fresh, after 100 requests, and after
  ``--requests`` (10,000) small streaming requests over 4 connections.
- ``count_tokens`` (end to end, HTTP) and ``translate`` (this proxy's own functions, in a
  separate ``bench/bench_translate.py`` process) for 50 KB, 1 MB and 5 MB requests.

Results go to ``.cache/bench/results-<UTC time>.json`` (and ``results-latest.json``);
``bench/report.py`` renders ``docs/BENCHMARKS.md`` and ``docs/benchmarks.png`` from them.
A peer that cannot be installed or started is reported as "not measured: <reason>". Every
process started here is stopped here (``finally``).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from client import Connection, HTTPFailure  # noqa: E402

CACHE = ROOT / ".cache" / "bench"
LOGS = CACHE / "logs"
FIXTURE = ROOT / "tests" / "data" / "claude-code" / "01-first-turn-streaming.json"
PYTHON = ROOT / ".venv" / "bin" / "python"
PROXY_BIN = ROOT / ".venv" / "bin" / "claude-code-ollama-proxy"
#: how the proxy is started (bench/run_all.py --proxy-cmd overrides, e.g. to profile it)
PROXY_CMD = [str(PROXY_BIN)]
OLLAMA_MODEL = "qwen3:8b"
PEER_NAMES = ("litellm", "claude-code-router")
ALL_PHASES = ("memory", "ttft", "throughput", "throughput1", "concurrency", "cancel", "count_tokens", "translate")
ANTHROPIC_HEADERS = [
    ("content-type", "application/json"),
    ("accept", "application/json"),
    ("x-api-key", "sk-bench"),
    ("anthropic-version", "2023-06-01"),
    ("anthropic-beta", "claude-code-20250219,interleaved-thinking-2025-05-14"),
    ("user-agent", "claude-cli/2.1.328 (external, cli)"),
]


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def pct(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


# -- processes ------------------------------------------------------------------------------


def spawn(name: str, cmd: list[str], env: dict[str, str] | None = None) -> tuple[subprocess.Popen, Path]:
    LOGS.mkdir(parents=True, exist_ok=True)
    path = LOGS / f"{name}.log"
    out = open(path, "wb")
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env={**os.environ, **(env or {})}, cwd=ROOT, start_new_session=True)
    out.close()
    return proc, path


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL after 10 s: this process group only (what ``spawn`` started)."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


async def wait_for_line(path: Path, pattern: str, proc: subprocess.Popen, timeout: float) -> re.Match:
    regex = re.compile(pattern)
    with trio.fail_after(timeout):
        while True:
            match = regex.search(path.read_text(errors="replace"))
            if match:
                return match
            if proc.poll() is not None:
                raise RuntimeError(f"{path.stem} exited with {proc.returncode}; see {path}")
            await trio.sleep(0.05)


def listening_pids(port: int) -> list[int]:
    """The processes holding the listening socket on ``port``, and their descendants."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                cols = line.split()
                if cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(cols[9])
    holders, parents = set(), {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            parents[pid] = int(stat.rsplit(")", 1)[1].split()[1])
            if inodes:
                for fd in (entry / "fd").iterdir():
                    with contextlib.suppress(OSError):
                        if os.readlink(fd)[8:-1] in inodes:
                            holders.add(pid)
                            break
    found = set(holders)
    changed = True
    while changed:
        changed = False
        for pid, ppid in parents.items():
            if ppid in found and pid not in found:
                found.add(pid)
                changed = True
    return sorted(found)


def cpu_seconds(pids: list[int]) -> float:
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total / 1024


#: every process of the bench (this one, the fake, the targets): the rest is background load
OUR_PIDS: set[int] = {os.getpid()}


def machine_ticks() -> tuple[int, int]:
    """(busy ticks of the whole machine, busy ticks of the bench's own processes)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    busy = sum(fields) - fields[3] - fields[4]  # minus idle and iowait
    return busy, round(cpu_seconds(sorted(OUR_PIDS)) * os.sysconf("SC_CLK_TCK"))


def background_pct(before: tuple[int, int], after: tuple[int, int], wall: float) -> float:
    """CPU used by processes that are not the bench's, in % of one core, over ``wall`` s."""
    other = (after[0] - before[0]) - (after[1] - before[1])
    return max(0.0, 100 * other / os.sysconf("SC_CLK_TCK") / wall)


# -- targets --------------------------------------------------------------------------------


@dataclass
class Target:
    name: str
    label: str
    kind: str  # "ollama" (the floor) or "anthropic"
    host: str = "127.0.0.1"
    port: int = 0
    pids: list[int] = field(default_factory=list)
    model: str | None = None  # replaces the body's model (a peer that routes by name)
    note: str | None = None

    def path(self) -> str:
        return "/api/chat" if self.kind == "ollama" else "/v1/messages?beta=true"

    def headers(self) -> list[tuple[str, str]]:
        return [("content-type", "application/json")] if self.kind == "ollama" else ANTHROPIC_HEADERS

    def connection(self) -> Connection:
        return Connection(self.host, self.port)


class Bodies:
    """The request bodies, as each kind of target receives them, encoded once."""

    def __init__(self) -> None:
        from proxy.protocol.translate import translate_request, validate_request

        self.claude_code = json.loads(FIXTURE.read_text())["body"]
        self.claude_code["stream"] = True
        self.small = {
            "model": self.claude_code["model"], "max_tokens": 32000, "stream": True,
            "system": [{"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude."}],
            "tools": copy.deepcopy(self.claude_code["tools"][:2]),
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Say hello."}]}],
        }
        self._translate = lambda body: translate_request(validate_request(copy.deepcopy(body)),
                                                         ollama_model=OLLAMA_MODEL).ollama
        self._cache: dict[tuple, bytes] = {}

    def encoded(self, which: str, target: Target) -> bytes:
        key = (which, target.kind, target.model)
        if key not in self._cache:
            body = getattr(self, which)
            if target.kind == "ollama":
                body = self._translate(body)
            elif target.model:
                body = {**body, "model": target.model}
            self._cache[key] = json.dumps(body).encode()
        return self._cache[key]


class Fake:
    """The fake Ollama's control endpoints."""

    def __init__(self, port: int, pid: int) -> None:
        self.port = port
        self.pid = pid
        self.url = f"http://127.0.0.1:{port}"
        self._control = Connection("127.0.0.1", port)

    async def call(self, method: str, path: str, obj: Any = None) -> Any:
        body = json.dumps(obj).encode() if obj is not None else b""
        response = await self._control.request(method, path, body, [("content-type", "application/json")])
        data = await response.read_all()
        if response.status != 200:
            raise RuntimeError(f"fake {path}: {response.status} {data[:200]!r}")
        return json.loads(data)

    async def scenario(self, **fields: Any) -> None:
        await self.call("POST", "/_bench/scenario", fields)


# -- phases ---------------------------------------------------------------------------------


async def one_stream(target: Target, conn: Connection, body: bytes, *, marker: bytes | None = None,
                     end_marker: bytes | None = None) -> dict[str, Any]:
    """One request; returns the times (monotonic ns) of the head, of the piece holding
    ``marker``, of the end, and whether ``end_marker`` was seen."""
    start = time.monotonic_ns()
    response = await conn.request("POST", target.path(), body, target.headers())
    if response.status != 200:
        data = await response.read_all()
        raise RuntimeError(f"{target.label}: HTTP {response.status}: {data[:300]!r}")
    first = None
    tail = b""
    seen_end = end_marker is None
    pieces = 0
    while (piece := await response.next_piece()) is not None:
        pieces += 1
        window = tail + piece
        if first is None and marker is not None and marker in window:
            first = response.received_ns
        if not seen_end and end_marker in window:
            seen_end = True
        tail = window[-48:]
    return {"start": start, "first": first, "end": time.monotonic_ns(), "seen_end": seen_end, "pieces": pieces}


async def phase_ttft(targets: list[Target], fake: Fake, bodies: Bodies, samples: int) -> dict[str, list[float]]:
    """Time to first token (ms) per target, samples interleaved across targets."""
    await fake.scenario(tokens=5, rate=0, batch=64)
    conns = {t.name: t.connection() for t in targets}
    out: dict[str, list[float]] = {t.name: [] for t in targets}
    try:
        for t in targets:  # warm-up: connection, caches (capabilities), JIT-free but lazy imports
            for _ in range(3):
                await one_stream(t, conns[t.name], bodies.encoded("claude_code", t), marker=b"t0 ")
        for _ in range(samples):
            for t in targets:
                r = await one_stream(t, conns[t.name], bodies.encoded("claude_code", t), marker=b"t0 ")
                if r["first"] is None:
                    raise RuntimeError(f"{t.label}: no first token in the answer")
                out[t.name].append((r["first"] - r["start"]) / 1e6)
    finally:
        for c in conns.values():
            await c.aclose()
    return out


async def phase_throughput(target: Target, fake: Fake, bodies: Bodies, seconds: float = 1.0,
                           batch: int = 64) -> dict[str, Any]:
    """One stream as fast as it goes; ``batch``: chunks per send of the fake (1 = as Ollama,
    one write per token; 64 = the relay finds many chunks in every read)."""
    conn = target.connection()
    body = bodies.encoded("claude_code", target)

    async def stream(n: int) -> float:
        await fake.scenario(tokens=n, rate=0, batch=batch)
        r = await one_stream(target, conn, body, end_marker=b"t%d " % (n - 1))
        if not r["seen_end"]:
            raise RuntimeError(f"{target.label}: the last token never arrived")
        return n / ((r["end"] - r["start"]) / 1e9)

    try:
        probe = await stream(2000)
        n = int(min(300_000, max(2000, probe * seconds)))
        rate = await stream(n)
    finally:
        await conn.aclose()
    return {"chunks_per_s": rate, "chunks": n}


STAMP = re.compile(rb"t(\d+)@(\d+) ")


async def phase_concurrency(target: Target, fake: Fake, bodies: Bodies, streams: int = 64, rate: float = 100,
                            tokens: int = 300, stagger: float = 1.0) -> dict[str, Any]:
    await fake.scenario(tokens=tokens, rate=rate, stamp=True)
    body = bodies.encoded("claude_code", target)
    latencies: list[float] = []
    counts: list[int] = []
    errors: list[str] = []

    async def one(i: int) -> None:
        await trio.sleep(i * stagger / streams)
        conn = target.connection()
        try:
            response = await conn.request("POST", target.path(), body, target.headers())
            if response.status != 200:
                raise RuntimeError(f"HTTP {response.status}: {(await response.read_all())[:200]!r}")
            tail = b""
            seen = 0
            while (piece := await response.next_piece()) is not None:
                now = response.received_ns
                window = tail + piece
                end = 0
                for m in STAMP.finditer(window):
                    latencies.append((now - int(m.group(2))) / 1e6)
                    seen += 1
                    end = m.end()
                tail = window[max(end, len(window) - 48):]
            counts.append(seen)
        except Exception as exc:  # noqa: BLE001 — reported, not hidden
            errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            await conn.aclose()

    pids = target.pids
    cpu0, fake0, me0, t0 = cpu_seconds(pids), cpu_seconds([fake.pid]), cpu_seconds([os.getpid()]), time.monotonic()
    with trio.fail_after(stagger + tokens / rate * 4 + 30):
        async with trio.open_nursery() as nursery:
            for i in range(streams):
                nursery.start_soon(one, i)
    wall = time.monotonic() - t0
    cpu = cpu_seconds(pids) - cpu0
    return {
        "p50_ms": pct(latencies, 50), "p99_ms": pct(latencies, 99), "max_ms": max(latencies, default=float("nan")),
        "chunks": len(latencies), "expected_chunks": streams * tokens, "streams_ok": len(counts),
        "errors": errors[:5], "cpu_s": cpu, "wall_s": wall, "cpu_pct": 100 * cpu / wall,
        "fake_cpu_pct": 100 * (cpu_seconds([fake.pid]) - fake0) / wall,
        "client_cpu_pct": 100 * (cpu_seconds([os.getpid()]) - me0) / wall,
    }


async def phase_cancel(target: Target, fake: Fake, bodies: Bodies, samples: int, wait: float = 2.0) -> dict[str, Any]:
    await fake.scenario(tokens=100_000, rate=0, stall_after=3)
    body = bodies.encoded("claude_code", target)
    latencies: list[float] = []
    missed = 0
    for _ in range(samples):
        await fake.call("POST", "/_bench/reset")
        conn = target.connection()
        response = await conn.request("POST", target.path(), body, target.headers())
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {(await response.read_all())[:200]!r}")
        tail = b""
        while (piece := await response.next_piece()) is not None:
            window = tail + piece
            if b"t2 " in window:
                break
            tail = window[-16:]
        closed = time.monotonic()
        conn.abort()
        deadline = closed + wait
        gone = None
        while time.monotonic() < deadline:
            stats = await fake.call("GET", "/_bench/stats")
            if stats["disconnects"]:
                gone = stats["disconnects"][0]["at"]
                break
            await trio.sleep(0.001)
        if gone is None:
            missed += 1
            if missed >= 3 and not latencies:
                break  # this target does not close Ollama's connection: no need to wait 30 times
        else:
            latencies.append((gone - closed) * 1000)
        await trio.sleep(0.02)
    result = {"p50_ms": pct(latencies, 50) if latencies else None, "p99_ms": pct(latencies, 99) if latencies else None,
              "samples": len(latencies), "not_closed": missed, "wait_s": wait}
    if missed:
        # a peer that keeps generating until Ollama ends: open connections pile up in the fake
        await trio.sleep(0.1)
    return result


async def phase_memory(target: Target, fake: Fake, bodies: Bodies, requests: int, seconds: float,
                       connections: int = 4) -> dict[str, Any]:
    """RSS fresh, after 100 requests, and after ``requests`` more (or as many as ``seconds``
    allow: a slow peer would take the whole run; the count done is reported)."""
    await fake.scenario(tokens=20, rate=0, batch=64)
    body = bodies.encoded("small", target)
    result: dict[str, Any] = {"rest_mb": rss_mb(target.pids)}
    done = 0

    async def worker(n: int, deadline: float) -> None:
        nonlocal done
        conn = target.connection()
        try:
            for _ in range(n):
                if time.monotonic() > deadline:
                    return
                r = await one_stream(target, conn, body, end_marker=b"t19 ")
                if not r["seen_end"]:
                    raise RuntimeError("an answer ended early")
                done += 1
        finally:
            await conn.aclose()

    async def batch(total: int, limit: float) -> float:
        t0 = time.monotonic()
        async with trio.open_nursery() as nursery:
            for i in range(connections):
                nursery.start_soon(worker, total // connections + (1 if i < total % connections else 0), t0 + limit)
        return time.monotonic() - t0

    await batch(100, seconds)
    await trio.sleep(0.5)
    result["warm_mb"] = rss_mb(target.pids)
    done = 0
    wall = await batch(requests, seconds)
    await trio.sleep(0.5)
    result.update(after_mb=rss_mb(target.pids), requests=done, requests_per_s=done / wall,
                  cut_short=done < requests)
    result["growth_mb"] = result["after_mb"] - result["rest_mb"]
    result["growth_from_warm_mb"] = result["after_mb"] - result["warm_mb"]
    return result


async def phase_count_tokens(target: Target, sizes: dict[str, bytes], repeat: int) -> dict[str, Any]:
    conn = target.connection()
    out: dict[str, Any] = {}
    try:
        for label, raw in sizes.items():
            if target.model:
                obj = json.loads(raw)
                obj["model"] = target.model
                raw = json.dumps(obj).encode()
            samples = []
            for i in range(repeat if len(raw) < 1_000_000 else max(3, repeat // 3)):
                start = time.monotonic_ns()
                response = await conn.request("POST", "/v1/messages/count_tokens?beta=true", raw, ANTHROPIC_HEADERS)
                data = await response.read_all()
                elapsed = (time.monotonic_ns() - start) / 1e6
                if response.status != 200 or b"input_tokens" not in data:
                    out[label] = {"error": f"HTTP {response.status}: {data[:160].decode(errors='replace')}"}
                    break
                samples.append(elapsed)
            else:
                out[label] = {"p50_ms": pct(samples, 50), "samples": len(samples),
                              "input_tokens": json.loads(data).get("input_tokens")}
    finally:
        await conn.aclose()
    return out


def phase_translate(repeat: int) -> dict[str, Any]:
    """This proxy's own functions, timed in a process of their own."""
    path = CACHE / "translate.json"
    subprocess.run([str(PYTHON), str(ROOT / "bench" / "bench_translate.py"), "--repeat", str(repeat),
                    "--json", str(path)], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return json.loads(path.read_text())


# -- starting the servers --------------------------------------------------------------------


async def start_fake(stack: contextlib.ExitStack) -> Fake:
    port_file = CACHE / "fake.port"
    port_file.unlink(missing_ok=True)
    proc, path = spawn("fake_server", [str(PYTHON), str(ROOT / "bench" / "fake_server.py"),
                                        "--port", "0", "--port-file", str(port_file)])
    stack.callback(stop, proc)
    with trio.fail_after(20):
        while not port_file.exists():
            if proc.poll() is not None:
                raise RuntimeError(f"the fake exited; see {path}")
            await trio.sleep(0.02)
    return Fake(int(port_file.read_text()), proc.pid)


async def start_proxy(stack: contextlib.ExitStack, fake: Fake, source: Path | None = None,
                      name: str = "proxy") -> Target:
    """This proxy with its default settings; ``source``: a folder holding another ``proxy/``
    package (say, an older commit's, from ``git archive``) to run instead of the checkout's."""
    cmd, env = [*PROXY_CMD], None
    if source is not None:
        # -P: not the current folder (the checkout) first on sys.path
        cmd, env = [str(PYTHON), "-P", "-m", "proxy"], {"PYTHONPATH": str(source.resolve())}
    proc, path = spawn(name, [*cmd, "serve", "--port", "0", "--ollama-url", fake.url,
                                 "--default-model", OLLAMA_MODEL], env=env)
    stack.callback(stop, proc)
    match = await wait_for_line(path, r"listening on http://127\.0\.0\.1:(\d+)", proc, 30)
    port = int(match.group(1))
    label = "this proxy" if name == "proxy" else f"this proxy from {source}"
    return Target(name, label, "anthropic", port=port, pids=listening_pids(port) or [proc.pid])


def load_peers() -> tuple[Any, str | None]:
    try:
        import peers  # bench/peers.py
    except Exception as exc:  # noqa: BLE001 — any failure means "not measured", with the reason
        return None, f"bench/peers.py could not be imported ({type(exc).__name__}: {exc})"
    if not hasattr(peers, "start_peer"):
        return None, "bench/peers.py has no start_peer()"
    return peers, None


async def start_peer(stack: contextlib.AsyncExitStack, peers: Any, name: str, fake: Fake) -> Target:
    """Start peer ``name`` through ``bench/peers.py`` (which installs it into the cache first)."""
    label = {"litellm": "LiteLLM proxy", "claude-code-router": "claude-code-router"}[name]
    log(f"{name}: installing if needed and starting (cache {CACHE})")
    peer = await stack.enter_async_context(peers.start_peer(name, fake.url, cache_dir=CACHE))
    match = re.match(r"https?://([^:/]+):(\d+)", str(peer.base_url))
    if not match:
        raise RuntimeError(f"start_peer gave an URL without a port: {peer.base_url!r}")
    port = int(match.group(2))
    pids = listening_pids(port) or [peer.pid]
    label = f"{label} {peer.version}"
    return Target(name, label, "anthropic", port=port, pids=pids,
                  note=getattr(peers, "DESCRIPTIONS", {}).get(name))


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = 0
    with contextlib.suppress(OSError):
        mem = int(Path("/proc/meminfo").read_text().split()[1]) // 1024
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    if len(sys.argv) and "--proxy-source" in " ".join(sys.argv):
        commit = f"(--proxy-source {sys.argv[sys.argv.index('--proxy-source') + 1]})"
    dirty = bool(subprocess.run(["git", "status", "--porcelain", "proxy"], cwd=ROOT, capture_output=True, text=True).stdout.strip())
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_mb": mem, "kernel": platform.release(),
            "python": platform.python_version(), "commit": commit + ("+dirty" if dirty else ""),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


# -- the run ------------------------------------------------------------------------------


async def measure(name: str, results: dict[str, Any], key: tuple[str, ...], coro_fn, *args, timeout: float = 600) -> Any:
    """Run one measurement; a failure is recorded (with its reason), never invented away."""
    ticks0, t0 = machine_ticks(), time.monotonic()
    try:
        with trio.fail_after(timeout):
            value = await coro_fn(*args)
    except Exception as exc:  # noqa: BLE001
        log(f"{name} failed: {type(exc).__name__}: {exc}")
        traceback.print_exc(limit=3)
        value = {"error": f"{type(exc).__name__}: {exc}"}
    if isinstance(value, dict) and "error" not in value and name.split()[0] != "ttft":
        value["background_cpu_pct"] = background_pct(ticks0, machine_ticks(), time.monotonic() - t0)
    node = results
    for part in key[:-1]:
        node = node.setdefault(part, {})
    node[key[-1]] = value
    return value


async def run(args: argparse.Namespace) -> dict[str, Any]:
    CACHE.mkdir(parents=True, exist_ok=True)
    wanted = args.targets.split(",")
    phases = args.phases.split(",")
    results: dict[str, Any] = {"machine": machine(), "config": vars(args).copy(), "targets": {}, "not_measured": {},
                               "runs": []}
    with contextlib.ExitStack() as stack:
        async with contextlib.AsyncExitStack() as astack:
            fake = await start_fake(stack)
            log(f"fake Ollama on {fake.url}")
            targets: list[Target] = []
            if "floor" in wanted:
                targets.append(Target("floor", "floor (direct to the fake)", "ollama", port=fake.port, pids=[fake.pid]))
            if "proxy" in wanted:
                targets.append(await start_proxy(stack, fake, args.proxy_source))
                log(f"this proxy on :{targets[-1].port} (pids {targets[-1].pids})")
            if args.baseline_source is not None:
                # the same proxy from another source tree, measured in the same run (before/after)
                targets.append(await start_proxy(stack, fake, args.baseline_source, name="baseline"))
                log(f"baseline proxy on :{targets[-1].port} (pids {targets[-1].pids})")
            peers, why = load_peers()
            for name in PEER_NAMES:
                if name not in wanted:
                    continue
                if peers is None:
                    results["not_measured"][name] = why
                    continue
                try:
                    with trio.fail_after(args.peer_start_timeout):
                        targets.append(await start_peer(astack, peers, name, fake))
                    log(f"{name} on :{targets[-1].port} (pids {targets[-1].pids})")
                except Exception as exc:  # noqa: BLE001
                    results["not_measured"][name] = f"could not be started: {type(exc).__name__}: {exc}"
                    log(f"{name}: not measured: {results['not_measured'][name]}")
            for t in targets:
                results["targets"][t.name] = {"label": t.label, "kind": t.kind, "pids": t.pids, "note": t.note}
                OUR_PIDS.update(t.pids)
            OUR_PIDS.add(fake.pid)
            bodies = Bodies()

            if "memory" in phases:
                for t in targets:
                    log(f"memory: {t.name} ({args.requests} requests)")
                    await measure(f"memory {t.name}", results, ("memory", t.name), phase_memory, t, fake, bodies,
                                  args.requests, args.memory_seconds, timeout=2 * args.memory_seconds + 60)
            for r in range(args.runs):
                run: dict[str, Any] = {}
                results["runs"].append(run)
                if "ttft" in phases:
                    log(f"run {r + 1}/{args.runs}: time to first token")
                    ticks0, t0 = machine_ticks(), time.monotonic()
                    value = await measure("ttft", run, ("ttft",), phase_ttft, targets, fake, bodies, args.ttft_samples)
                    if "error" not in value:
                        run["ttft"] = {name: {"p50_ms": pct(s, 50), "p99_ms": pct(s, 99), "samples": len(s)}
                                       for name, s in value.items()}
                        run["ttft_background_cpu_pct"] = background_pct(ticks0, machine_ticks(), time.monotonic() - t0)
                for t in targets:
                    if "throughput" in phases:
                        log(f"run {r + 1}/{args.runs}: throughput {t.name}")
                        await measure(f"throughput {t.name}", run, ("throughput", t.name), phase_throughput, t, fake, bodies)
                    if "throughput1" in phases:
                        log(f"run {r + 1}/{args.runs}: throughput, one chunk per send, {t.name}")
                        await measure(f"throughput1 {t.name}", run, ("throughput1", t.name), phase_throughput, t, fake,
                                      bodies, 1.0, 1)
                    if "concurrency" in phases:
                        log(f"run {r + 1}/{args.runs}: 64 streams {t.name}")
                        await measure(f"concurrency {t.name}", run, ("concurrency", t.name), phase_concurrency, t, fake,
                                      bodies, args.streams, args.rate, args.stream_tokens)
                    if "cancel" in phases:
                        log(f"run {r + 1}/{args.runs}: cancel {t.name}")
                        await measure(f"cancel {t.name}", run, ("cancel", t.name), phase_cancel, t, fake, bodies,
                                      args.cancel_samples)
            if "count_tokens" in phases:
                from bench_translate import grown

                base = json.loads(FIXTURE.read_text())["body"]
                sizes = {label: json.dumps(grown(base, size)).encode()
                         for label, size in (("50 KB", 50_000), ("1 MB", 1_000_000), ("5 MB", 5_000_000))}
                for t in targets:
                    if t.kind == "ollama":
                        continue
                    log(f"count_tokens {t.name}")
                    await measure(f"count_tokens {t.name}", results, ("count_tokens", t.name), phase_count_tokens, t,
                                  sizes, args.count_repeat)
            if "translate" in phases and "proxy" in wanted:
                log("translation and count_tokens functions")
                results["translate"] = await trio.to_thread.run_sync(phase_translate, args.translate_repeat)
            results["summary"] = summarize(results, [t.name for t in targets])
    return results


def summarize(results: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """Medians over runs of each run's statistics; added = target − floor per run."""
    runs = results["runs"]
    out: dict[str, Any] = {}

    def series(phase: str, name: str, key: str) -> list[float]:
        values = []
        for run in runs:
            v = run.get(phase, {}).get(name)
            if isinstance(v, dict) and v.get(key) is not None and "error" not in v:
                values.append(v[key])
        return values

    def added(phase: str, name: str, key: str) -> list[float]:
        values = []
        for run in runs:
            v, f = run.get(phase, {}).get(name), run.get(phase, {}).get("floor")
            if all(isinstance(x, dict) and "error" not in x and x.get(key) is not None for x in (v, f)):
                values.append(v[key] - f[key])
        return values

    def errors(phase: str, name: str) -> str | None:
        for run in runs:
            v = run.get(phase, {}).get(name)
            if isinstance(v, dict) and "error" in v:
                return v["error"]
        v = runs[0].get(phase) if runs else None
        if isinstance(v, dict) and "error" in v:
            return v["error"]
        return None

    for name in names:
        s: dict[str, Any] = {}
        s["ttft_p50_ms"] = median(series("ttft", name, "p50_ms"))
        s["ttft_p99_ms"] = median(series("ttft", name, "p99_ms"))
        s["ttft_added_p50_ms"] = median(added("ttft", name, "p50_ms")) if name != "floor" else None
        s["ttft_added_p99_ms"] = median(added("ttft", name, "p99_ms")) if name != "floor" else None
        s["throughput_chunks_per_s"] = median(series("throughput", name, "chunks_per_s"))
        s["throughput1_chunks_per_s"] = median(series("throughput1", name, "chunks_per_s"))
        for key in ("p50_ms", "p99_ms", "cpu_pct"):
            s[f"concurrency_{key}"] = median(series("concurrency", name, key))
        s["concurrency_added_p50_ms"] = median(added("concurrency", name, "p50_ms")) if name != "floor" else None
        s["concurrency_added_p99_ms"] = median(added("concurrency", name, "p99_ms")) if name != "floor" else None
        s["concurrency_chunks"] = median(series("concurrency", name, "chunks"))
        s["concurrency_expected_chunks"] = median(series("concurrency", name, "expected_chunks"))
        s["cancel_p50_ms"] = median(series("cancel", name, "p50_ms"))
        s["cancel_p99_ms"] = median(series("cancel", name, "p99_ms"))
        s["cancel_not_closed"] = sum(series("cancel", name, "not_closed"))
        mem = results.get("memory", {}).get(name, {})
        for key in ("rest_mb", "warm_mb", "after_mb", "growth_mb", "growth_from_warm_mb", "requests", "requests_per_s"):
            s[f"memory_{key}"] = mem.get(key) if isinstance(mem, dict) else None
        s["errors"] = {p: e for p in ("ttft", "throughput", "throughput1", "concurrency", "cancel")
                       if (e := errors(p, name))}
        if isinstance(mem, dict) and "error" in mem:
            s["errors"]["memory"] = mem["error"]
        out[name] = s
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description="Benchmarks: this proxy, the floor and the peers, side by side.")
    parser.add_argument("--runs", type=int, default=int(os.environ.get("BENCH_RUNS", 3)))
    parser.add_argument("--targets", default=os.environ.get("BENCH_TARGETS", "floor,proxy,litellm,claude-code-router"))
    parser.add_argument("--phases", default=os.environ.get("BENCH_PHASES", ",".join(ALL_PHASES)))
    parser.add_argument("--requests", type=int, default=int(os.environ.get("BENCH_REQUESTS", 10_000)))
    parser.add_argument("--memory-seconds", type=float, default=float(os.environ.get("BENCH_MEMORY_SECONDS", 120)),
                        help="at most this long for the memory phase's requests, per target")
    parser.add_argument("--ttft-samples", type=int, default=40)
    parser.add_argument("--cancel-samples", type=int, default=30)
    parser.add_argument("--streams", type=int, default=64)
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--stream-tokens", type=int, default=300)
    parser.add_argument("--count-repeat", type=int, default=9)
    parser.add_argument("--translate-repeat", type=int, default=15)
    parser.add_argument("--peer-start-timeout", type=float, default=600)
    parser.add_argument("--proxy-source", type=Path,
                        help="run the proxy package found in this folder (e.g. an older commit's) instead")
    parser.add_argument("--baseline-source", type=Path,
                        help="also measure, as target 'baseline', the proxy package in this folder (before/after)")
    parser.add_argument("--out", type=Path, help="results JSON (default .cache/bench/results-<time>.json)")
    parser.add_argument("--no-render", action="store_true", help="do not rewrite docs/BENCHMARKS.md and the plot")
    args = parser.parse_args()
    results = trio.run(run, args)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = args.out or CACHE / f"results-{stamp}.json"
    results["config"]["out"] = str(out)
    out.write_text(json.dumps(results, indent=1, default=str))
    (CACHE / "results-latest.json").write_text(out.read_text())
    log(f"results: {out}")
    import report

    report.print_summary(results)
    if not args.no_render:
        report.render(results, ROOT / "docs" / "BENCHMARKS.md", ROOT / "docs" / "benchmarks.png")


if __name__ == "__main__":
    main()
