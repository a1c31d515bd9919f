"""The peers this proxy is benchmarked against: LiteLLM's proxy and claude-code-router.

    python bench/peers.py [--upstream URL] [--cache-dir DIR] [--peer NAME ...]

``ensure_installed(name, cache_dir)`` installs a pinned peer into ``cache_dir`` (once);
``start_peer(name, upstream_url, cache_dir=...)`` runs it on a free loopback port, pointed
at an Ollama-like upstream (``bench/fake_server.py``), and yields a :class:`Peer` whose
``base_url`` answers ``POST /v1/messages`` with Anthropic SSE and whose ``pid`` is the
process that owns the listening socket (read its CPU and RSS from ``/proc``).

- **litellm** — ``litellm[proxy]`` in ``cache_dir/litellm-venv``, run as ``litellm --config
  ... --host 127.0.0.1 --port P`` (uvicorn in the same process, one worker). One wildcard
  route ``*`` → ``ollama_chat/qwen3:8b`` with ``api_base`` = upstream, so every client model
  name goes to Ollama's ``/api/chat``. No master key (started with LiteLLM's explicit
  "permit unset master key" switch), so any ``x-api-key`` is accepted.
- **claude-code-router** — the npm package in ``cache_dir/ccr``, run in the foreground as
  ``node .../dist/cli.js start`` with ``HOME`` set to a run folder under ``cache_dir``
  holding ``.claude-code-router/config.json``: one OpenAI-compatible provider at
  ``upstream + "/v1/chat/completions"`` with model ``qwen3:8b``, and every Router slot
  (default, background — which catches ``*haiku*`` —, think, longContext, webSearch) set to
  it. No ``APIKEY``, so any key is accepted and it binds 127.0.0.1 only.

Peers' output goes to ``cache_dir/logs/<name>.log`` (appended, one header per start).
Without ``--upstream`` the self-check starts ``bench/fake_server.py`` itself.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import AsyncIterator

import httpx
import trio

PEERS = ("litellm", "claude-code-router")

#: newest litellm whose ``[proxy]`` extra resolves from the package index this project
#: uses (1.108.8 and later pin litellm-enterprise / litellm-proxy(-extras) releases that
#: are not there); its proxy serves Anthropic's ``POST /v1/messages``.
LITELLM_VERSION = "1.108.7"
#: 3.x needs Node >= 22 and a dependency absent from the registry; 2.0.0 is one bundled
#: file for Node >= 20.
CCR_VERSION = "2.0.0"
CCR_PACKAGE = "@musistudio/claude-code-router"
VERSIONS = {"litellm": LITELLM_VERSION, "claude-code-router": CCR_VERSION}
#: one line per peer for a report: what runs and how it reaches the upstream
DESCRIPTIONS = {
    "litellm": f"LiteLLM proxy {LITELLM_VERSION} (litellm[proxy], uvicorn, 1 worker): /v1/messages → "
               "wildcard route * → ollama_chat/qwen3:8b → upstream /api/chat",
    "claude-code-router": f"claude-code-router {CCR_VERSION} (Node, `ccr start` in the foreground): /v1/messages → "
                          "Router default/background → OpenAI provider → upstream /v1/chat/completions",
}

UPSTREAM_MODEL = "qwen3:8b"
INSTALL_TIMEOUT = 1800.0
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
REPO = Path(__file__).resolve().parents[1]
DEFAULT_CACHE = REPO / ".cache" / "peers"


class PeerError(RuntimeError):
    """A peer could not be installed or started; the message says why and what to do."""


@dataclasses.dataclass(frozen=True)
class Peer:
    name: str
    version: str
    base_url: str
    #: the process that owns the listening socket (the one doing the work)
    pid: int
    #: the process group the whole peer runs in (its leader's pid)
    pgid: int
    log_path: Path


# -- installing -----------------------------------------------------------------------------


def _run(cmd: list[str], log: Path, *, env: dict[str, str] | None = None, timeout: float = INSTALL_TIMEOUT) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as out:
        since = out.tell()
        out.write(f"\n=== {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} $ {' '.join(cmd)}\n")
        out.flush()
        try:
            done = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                  env=env, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise PeerError(f"{cmd[0]} did not finish within {timeout:.0f} s; see {log}") from None
    if done.returncode != 0:
        raise PeerError(f"`{' '.join(cmd)}` failed (exit {done.returncode}):\n{_tail(log, since=since)}\nfull log: {log}")


def _litellm_python(cache_dir: Path) -> Path:
    return cache_dir / "litellm-venv" / "bin" / "python"


def _ccr_cli(cache_dir: Path) -> Path:
    return cache_dir / "ccr" / "node_modules" / CCR_PACKAGE / "dist" / "cli.js"


def _node() -> str:
    node = shutil.which("node")
    if not node:
        raise PeerError("claude-code-router needs Node.js >= 20 on PATH (apt-get install nodejs npm)")
    return node


def ensure_installed(name: str, cache_dir: Path) -> None:
    """Install peer ``name`` at its pinned version into ``cache_dir`` unless it is there."""
    cache_dir = Path(cache_dir).resolve()
    log = cache_dir / "logs" / f"install-{name}.log"
    if name == "litellm":
        venv = cache_dir / "litellm-venv"
        marker = venv / f".installed-litellm-{LITELLM_VERSION}"
        if marker.exists():
            return
        if venv.exists():
            shutil.rmtree(venv)
        print(f"installing litellm[proxy]=={LITELLM_VERSION} into {venv} (a few minutes; log {log})",
              file=sys.stderr, flush=True)
        _run([sys.executable, "-m", "venv", str(venv)], log)
        _run([str(_litellm_python(cache_dir)), "-m", "pip", "install", "--disable-pip-version-check", "-q",
              f"litellm[proxy]=={LITELLM_VERSION}"], log)
        marker.write_text(f"{LITELLM_VERSION}\n")
    elif name == "claude-code-router":
        prefix = cache_dir / "ccr"
        pkg_json = prefix / "node_modules" / CCR_PACKAGE / "package.json"
        try:
            if json.loads(pkg_json.read_text())["version"] == CCR_VERSION and _ccr_cli(cache_dir).exists():
                return
        except (OSError, ValueError, KeyError):
            pass
        npm = shutil.which("npm")
        if not npm:
            raise PeerError("claude-code-router is installed with npm: put Node.js >= 20 and npm on PATH")
        _node()
        prefix.mkdir(parents=True, exist_ok=True)
        print(f"installing {CCR_PACKAGE}@{CCR_VERSION} into {prefix} (log {log})", file=sys.stderr, flush=True)
        env = {**os.environ, "NO_UPDATE_NOTIFIER": "1", "npm_config_update_notifier": "false",
               "npm_config_fund": "false", "npm_config_audit": "false"}
        # --ignore-scripts: 2.0.0 is one bundled file with no dependencies and no install step.
        _run([npm, "install", "--prefix", str(prefix), "--ignore-scripts", "--no-audit", "--no-fund",
              "--save-exact", f"{CCR_PACKAGE}@{CCR_VERSION}"], log, env=env)
        if not _ccr_cli(cache_dir).exists():
            raise PeerError(f"npm installed {CCR_PACKAGE} but {_ccr_cli(cache_dir)} is missing; see {log}")
    else:
        raise PeerError(f"unknown peer {name!r}; known: {', '.join(PEERS)}")


# -- processes ------------------------------------------------------------------------------


def _tail(path: Path, lines: int = 30, since: int = 0) -> str:
    """The last ``lines`` lines of ``path`` written after byte ``since``."""
    try:
        with path.open("rb") as f:
            f.seek(since)
            text = f.read().decode(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(nothing logged)"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _group_pids(pgid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid:  # state, ppid, pgrp, ...
            pids.append(int(entry))
    return pids


def _listen_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(cols[9])
    return inodes


def listener_pid(port: int, pgid: int) -> int | None:
    """The process of group ``pgid`` that holds the socket listening on ``port``, if any.

    With several holders (a pre-fork server) the one that is not the group leader wins.
    """
    inodes = {f"socket:[{i}]" for i in _listen_inodes(port)}
    if not inodes:
        return None
    owners = []
    for pid in _group_pids(pgid):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                    owners.append(pid)
                    break
            except OSError:
                continue
    if not owners:
        return None
    workers = [p for p in owners if p != pgid]
    return max(workers) if workers else owners[0]


def _killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


async def _stop(proc: trio.Process) -> None:
    """SIGTERM the whole group, wait up to STOP_TIMEOUT, then SIGKILL what is left."""
    pgid = proc.pid
    if proc.returncode is None:
        _killpg(pgid, signal.SIGTERM)
        with trio.move_on_after(STOP_TIMEOUT):
            await proc.wait()
    if _group_pids(pgid):
        _killpg(pgid, signal.SIGKILL)
    if proc.returncode is None:
        with trio.move_on_after(5):
            await proc.wait()
    with trio.move_on_after(5):
        while _group_pids(pgid):
            await trio.sleep(0.05)


def _base_env() -> dict[str, str]:
    env = dict(os.environ)
    # The benchmark talks to 127.0.0.1 only: never through a proxy.
    for key in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        env.pop(key, None)
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


def _litellm_command(cache_dir: Path, run_dir: Path, upstream_url: str, port: int) -> tuple[list[str], dict[str, str]]:
    config = {
        "model_list": [{
            "model_name": "*",
            "litellm_params": {"model": f"ollama_chat/{UPSTREAM_MODEL}", "api_base": upstream_url},
        }],
        "litellm_settings": {"telemetry": False, "drop_params": True},
        "general_settings": {"dangerously_permit_weak_or_unset_master_key": True},
    }
    path = run_dir / "config.yaml"
    path.write_text(json.dumps(config, indent=2) + "\n")  # JSON is YAML
    env = _base_env()
    for key in ("DATABASE_URL", "LITELLM_MASTER_KEY", "LITELLM_SALT_KEY", "REDIS_HOST", "REDIS_URL"):
        env.pop(key, None)
    env.update({
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # else it fetches the cost map from the internet at import
        "LITELLM_TELEMETRY": "False",
        "LITELLM_LOG": "ERROR",
        "LITELLM_MODE": "PRODUCTION",  # do not read a .env from the working directory
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONUNBUFFERED": "1",
    })
    cmd = [str(cache_dir / "litellm-venv" / "bin" / "litellm"), "--config", str(path),
           "--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"]
    return cmd, env


def _ccr_command(cache_dir: Path, run_dir: Path, upstream_url: str, port: int) -> tuple[list[str], dict[str, str]]:
    route = f"ollama,{UPSTREAM_MODEL}"
    config = {
        "HOST": "127.0.0.1",
        "PORT": port,
        "LOG": False,  # its pino logger writes every request at debug level otherwise
        "API_TIMEOUT_MS": 600000,
        "Providers": [{
            "name": "ollama",
            "api_base_url": upstream_url.rstrip("/") + "/v1/chat/completions",
            "api_key": "ollama",  # required non-empty; the fake ignores it
            "models": [UPSTREAM_MODEL],
        }],
        "Router": {slot: route for slot in ("default", "background", "think", "longContext", "webSearch")},
    }
    home = run_dir / "home"
    conf_dir = home / ".claude-code-router"
    conf_dir.mkdir(parents=True, exist_ok=True)
    (conf_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    # `start` refuses to run when the pid file names a live process.
    (conf_dir / ".claude-code-router.pid").unlink(missing_ok=True)
    env = _base_env()
    env.update({"HOME": str(home), "SERVICE_PORT": str(port), "NO_UPDATE_NOTIFIER": "1",
                "NODE_ENV": "production"})
    return [_node(), str(_ccr_cli(cache_dir)), "start"], env


HEALTH = {"litellm": "/health/liveliness", "claude-code-router": "/health"}


@contextlib.asynccontextmanager
async def start_peer(name: str, upstream_url: str, *, cache_dir: Path,
                     ready_timeout: float = READY_TIMEOUT) -> AsyncIterator[Peer]:
    """Run peer ``name`` against ``upstream_url`` until the block ends; yields a :class:`Peer`.

    Installs the peer first if needed. Raises :class:`PeerError` (with the tail of the
    peer's log) when it exits or is not ready within ``ready_timeout`` seconds.
    """
    if name not in PEERS:
        raise PeerError(f"unknown peer {name!r}; known: {', '.join(PEERS)}")
    cache_dir = Path(cache_dir).resolve()
    await trio.to_thread.run_sync(ensure_installed, name, cache_dir)
    upstream_url = upstream_url.rstrip("/")
    log_path = cache_dir / "logs" / f"{name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    build = _litellm_command if name == "litellm" else _ccr_command
    for attempt in range(3):
        port = _free_port()
        run_dir = cache_dir / "run" / f"{name}-{port}"
        if run_dir.exists():
            shutil.rmtree(run_dir)
        run_dir.mkdir(parents=True)
        cmd, env = build(cache_dir, run_dir, upstream_url, port)
        base_url = f"http://127.0.0.1:{port}"
        with log_path.open("a") as log:
            since = log.tell()
            log.write(f"\n=== {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {name} {VERSIONS[name]} on "
                      f"{base_url}, upstream {upstream_url}\n$ {' '.join(cmd)}\n")
            log.flush()
            proc = await trio.lowlevel.open_process(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                                    env=env, cwd=str(run_dir), start_new_session=True)
        try:
            pid = await _wait_ready(name, proc, port, base_url + HEALTH[name], log_path, since, ready_timeout)
        except BaseException as exc:
            with trio.CancelScope(shield=True):
                await _stop(proc)
                shutil.rmtree(run_dir, ignore_errors=True)
            # Someone took the free port between our probe and the peer's bind: try another.
            if isinstance(exc, PeerError) and proc.returncode is not None and attempt < 2 and not _port_free(port):
                continue
            raise
        break
    try:
        yield Peer(name=name, version=VERSIONS[name], base_url=base_url, pid=pid, pgid=proc.pid, log_path=log_path)
    finally:
        with trio.CancelScope(shield=True):
            await _stop(proc)
            shutil.rmtree(run_dir, ignore_errors=True)


async def _wait_ready(name: str, proc: trio.Process, port: int, health_url: str, log_path: Path,
                      since: int, timeout: float) -> int:
    started = time.monotonic()
    last = "no answer yet"
    async with httpx.AsyncClient(timeout=2.0, trust_env=False) as client:
        with trio.move_on_after(timeout):
            while True:
                if proc.returncode is not None or proc.poll() is not None:
                    raise PeerError(f"{name} exited with code {proc.returncode} while starting; "
                                    f"last lines of {log_path}:\n{_tail(log_path, since=since)}")
                try:
                    response = await client.get(health_url)
                    last = f"{response.status_code} {response.text[:100]!r}"
                    if response.status_code == 200:
                        pid = listener_pid(port, proc.pid)
                        if pid is not None:
                            print(f"{name} ready on 127.0.0.1:{port} in {time.monotonic() - started:.1f} s "
                                  f"(server pid {pid})", file=sys.stderr, flush=True)
                            return pid
                        last = f"health answered but no process of group {proc.pid} holds port {port}"
                except httpx.HTTPError as exc:
                    last = f"{type(exc).__name__}: {exc}"
                await trio.sleep(0.2)
    raise PeerError(f"{name} was not ready within {timeout:.0f} s (GET {health_url}: {last}); "
                    f"last lines of {log_path}:\n{_tail(log_path, since=since)}")


# -- self-check -----------------------------------------------------------------------------

HEADERS = {"x-api-key": "bench", "anthropic-version": "2023-06-01", "content-type": "application/json"}


def _body(stream: bool, model: str = "claude-sonnet-4-5") -> dict:
    return {"model": model, "max_tokens": 100, "stream": stream,
            "messages": [{"role": "user", "content": "Say hello."}]}


async def _read_events(response: httpx.Response, limit: int | None = None) -> list[tuple[str, dict]]:
    events: list[tuple[str, dict]] = []
    name = None
    async with contextlib.aclosing(response.aiter_lines()) as lines:
        async for line in lines:
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data = json.loads(line[5:])
                events.append((name or data.get("type", "?"), data))
                name = None
                if limit is not None and len(events) >= limit:
                    break
    return events


def _grammar_problems(events: list[tuple[str, dict]]) -> list[str]:
    names = [n for n, _ in events]
    problems = []
    if not names or names[0] != "message_start":
        problems.append("first event is not message_start")
    if not names or names[-1] != "message_stop":
        problems.append("last event is not message_stop")
    if not any(n == "message_delta" and d.get("delta", {}).get("stop_reason") for n, d in events):
        problems.append("no message_delta with a stop_reason")
    if "content_block_delta" not in names:
        problems.append("no content_block_delta")
    for n, d in events:
        if n != d.get("type"):
            problems.append(f"event {n!r} carries data of type {d.get('type')!r}")
    return problems


async def _disconnect_probe(client: httpx.AsyncClient, peer: Peer, upstream: str) -> str:
    """Hang up mid-stream; report whether the peer closes its upstream connection."""
    try:
        r = await client.post(f"{upstream}/_bench/scenario", json={"tokens": 200, "rate": 0, "stall_after": 5})
        r.raise_for_status()
        (await client.post(f"{upstream}/_bench/reset")).raise_for_status()
    except httpx.HTTPError as exc:
        return f"skipped (the upstream has no /_bench/ control: {exc})"
    try:
        async with client.stream("POST", peer.base_url + "/v1/messages", json=_body(True), headers=HEADERS) as response:
            await _read_events(response, limit=3)  # message_start, content_block_start, first delta
            hung_up = time.monotonic()
        with trio.move_on_after(5.0):
            while True:
                stats = (await client.get(f"{upstream}/_bench/stats")).json()
                if stats["disconnects"]:
                    gone = stats["disconnects"][0]["at"]
                    return (f"the peer closed its upstream connection {1000 * (gone - hung_up):.0f} ms after the "
                            f"client hung up (upstream had sent {stats['disconnects'][0]['sent']} chunks)")
                await trio.sleep(0.05)
        return "the peer did NOT close its upstream connection within 5 s of the client hanging up"
    finally:
        with trio.CancelScope(shield=True), contextlib.suppress(httpx.HTTPError):
            await client.post(f"{upstream}/_bench/scenario", json={})


def _short(data: dict, width: int = 150) -> str:
    text = json.dumps(data, separators=(",", ":"))
    return text if len(text) <= width else text[: width - 3] + "..."


async def self_check(upstream: str, cache_dir: Path, names: list[str]) -> bool:
    ok = True
    async with httpx.AsyncClient(timeout=httpx.Timeout(30.0), trust_env=False) as client:
        for name in names:
            print(f"\n## {name} {VERSIONS[name]}")
            try:
                async with start_peer(name, upstream, cache_dir=cache_dir) as peer:
                    print(f"base_url {peer.base_url}, server pid {peer.pid} (group {peer.pgid}), log {peer.log_path}")
                    for model in ("claude-sonnet-4-5", "claude-haiku-4-5"):
                        with trio.fail_after(30):
                            async with client.stream("POST", peer.base_url + "/v1/messages", json=_body(True, model),
                                                     headers=HEADERS) as response:
                                print(f"streaming ({model}): HTTP {response.status_code} "
                                      f"{response.headers.get('content-type')}")
                                if response.status_code != 200:
                                    await response.aread()
                                    print("  " + response.text[:500])
                                    ok = False
                                    continue
                                events = await _read_events(response)
                        for event, data in events[:4] + ([("...", {})] if len(events) > 8 else []) + events[max(4, len(events) - 4):]:
                            print(f"  {event:<20} {_short(data) if data else ''}")
                        problems = _grammar_problems(events)
                        text = "".join(d.get("delta", {}).get("text", "") for n, d in events if n == "content_block_delta")
                        print(f"  {len(events)} events, text {text[:60]!r}{'...' if len(text) > 60 else ''}: "
                              f"{'OK' if not problems else 'PROBLEMS ' + '; '.join(problems)}")
                        ok &= not problems
                    with trio.fail_after(30):
                        response = await client.post(peer.base_url + "/v1/messages", json=_body(False), headers=HEADERS)
                    print(f"non-streaming: HTTP {response.status_code} {_short(response.json(), 400)}")
                    ok &= response.status_code == 200 and response.json().get("type") == "message"
                    with trio.fail_after(30):
                        print("disconnect:", await _disconnect_probe(client, peer, upstream))
                    cpu, rss = _cpu_rss(peer.pid)
                    print(f"server process {peer.pid}: {cpu:.2f} s CPU so far, RSS {rss / 2**20:.0f} MiB")
            except (PeerError, httpx.HTTPError, trio.TooSlowError) as exc:
                print(f"FAILED: {type(exc).__name__}: {exc}")
                ok = False
    return ok


def _cpu_rss(pid: int) -> tuple[float, int]:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    rss = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
    return cpu, rss


@contextlib.asynccontextmanager
async def _own_fake() -> AsyncIterator[str]:
    fake = REPO / "bench" / "fake_server.py"
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(__import__("tempfile").TemporaryDirectory()))
        port_file = tmp / "port"
        proc = await trio.lowlevel.open_process([sys.executable, str(fake), "--port", "0", "--port-file", str(port_file)],
                                                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            with trio.fail_after(20):
                while not port_file.exists():
                    if proc.poll() is not None:
                        raise PeerError(f"{fake} exited with code {proc.returncode}")
                    await trio.sleep(0.05)
            yield f"http://127.0.0.1:{int(port_file.read_text())}"
        finally:
            with trio.CancelScope(shield=True):
                await _stop(proc)


async def _main(args: argparse.Namespace) -> int:
    names = args.peer or list(PEERS)
    if args.upstream:
        ok = await self_check(args.upstream.rstrip("/"), args.cache_dir, names)
    else:
        async with _own_fake() as upstream:
            print(f"started bench/fake_server.py at {upstream}")
            ok = await self_check(upstream, args.cache_dir, names)
    print("\nall peers OK" if ok else "\nsome peer FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Install, start and check the benchmark's peers.")
    parser.add_argument("--upstream", help="base URL of a fake Ollama (default: start bench/fake_server.py)")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help=f"default {DEFAULT_CACHE}")
    parser.add_argument("--peer", action="append", choices=PEERS, help="check only this peer (repeatable)")
    parsed = parser.parse_args()
    try:
        sys.exit(trio.run(_main, parsed))
    except PeerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
