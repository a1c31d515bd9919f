"""The operator commands that talk to Ollama: ``doctor``, ``models`` and ``pull``.

Each is an async function that prints to ``out`` (default stdout) and returns the exit
code; :mod:`proxy.cli.main` runs them with ``trio.run``.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import Any, TextIO

import trio

from . import doctor as doctor_checks
from ..config import Settings, describe_source
from ..errors import ProxyError
from ..ollama.admin import InstalledModel, PullProgress, describe_models, list_models, pull_model
from ..ollama.client import open_client
from ..protocol.routing import host_urls

__all__ = ["doctor", "models", "pull", "PullPrinter", "format_size"]


def format_size(size: int | None) -> str:
    """Bytes as Ollama prints them: ``5.2 GB``, ``640 MB``."""
    if not size:
        return "-"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


async def doctor(settings: Settings, *, as_json: bool = False, out: TextIO | None = None, **gather: Any) -> int:
    """Every check; with several Ollama hosts, each host is asked and checked."""
    out = out or sys.stdout
    urls = host_urls(settings.ollama_url)
    if len(urls) == 1:
        checks = doctor_checks.evaluate(settings, await doctor_checks.gather_facts(settings, **gather))
    else:
        found: dict[str, doctor_checks.Facts] = {}

        async def one(url: str) -> None:
            found[url] = await doctor_checks.gather_facts(dataclasses.replace(settings, ollama_url=url), **gather)

        async with trio.open_nursery() as nursery:
            for url in urls:
                nursery.start_soon(one, url)
        checks = doctor_checks.evaluate_hosts(settings, [found[url] for url in urls])
    if as_json:
        print(json.dumps([c.as_dict() for c in checks], indent=2, ensure_ascii=False), file=out)
    else:
        print(doctor_checks.render_table(checks), file=out)
    return doctor_checks.exit_code(checks)


async def models(settings: Settings, *, as_json: bool = False, out: TextIO | None = None, timeout: float = 30.0) -> int:
    """Installed models with capabilities, context length and the roles the settings give them."""
    out = out or sys.stdout
    roles = doctor_checks.model_roles(settings)
    urls = host_urls(settings.ollama_url)
    origin = describe_source(settings, "ollama_url")
    installed: list[InstalledModel] = []
    details: dict[str, Any] = {}
    #: model name → the hosts that have it (several hosts only)
    where: dict[str, list[str]] = {}
    for url in urls:
        try:
            async with open_client(url, origin=origin) as client:
                with trio.fail_after(timeout):
                    on_host = await list_models(client)
                    new = [m for m in on_host if m.name not in details]
                    details.update(await describe_models(client, [m.name for m in new]))
        except ProxyError as exc:
            print(f"claude-code-ollama-proxy: {exc.message}", file=sys.stderr)
            if len(urls) == 1:
                return 1
            continue
        except trio.TooSlowError:
            print(f"claude-code-ollama-proxy: Ollama at {url} did not answer within {timeout:g} s", file=sys.stderr)
            if len(urls) == 1:
                return 1
            continue
        installed += new
        for model in on_host:
            where.setdefault(model.name, []).append(url)
    if not where and len(urls) > 1:
        return 1  # no host answered: each said why
    rows: list[dict[str, Any]] = []  # the JSON output's objects
    for model in sorted(installed, key=lambda m: m.name):
        found = details.get(model.name)
        caps = found.capabilities if not isinstance(found, ProxyError) and found is not None else ()
        used_as = roles.get(model.name) or roles.get(model.name.removesuffix(":latest")) or []
        rows.append(
            {
                "name": model.name,
                "size": model.size,
                "parameters": model.parameter_size,
                "quantization": model.quantization,
                "context_length": getattr(found, "context_length", None),
                "capabilities": list(caps),
                "roles": used_as,
            }
        )
        if len(urls) > 1:
            rows[-1]["hosts"] = where.get(model.name, [])
    if as_json:
        print(json.dumps(rows, indent=2, ensure_ascii=False), file=out)
        return 0
    if not rows:
        print("no models installed; pull one with `claude-code-ollama-proxy pull qwen3:8b`", file=out)
        return 0
    table = [("NAME", "SIZE", "PARAMS", "CONTEXT", "TOOLS", "THINKING", "VISION", "ROLES", *(("HOSTS",) if len(urls) > 1 else ()))]
    for row in rows:
        caps = row["capabilities"]
        table.append(
            (
                row["name"],
                format_size(row["size"]),
                row["parameters"] or "-",
                str(row["context_length"] or "-"),
                "yes" if "tools" in caps else "no",
                "yes" if "thinking" in caps else "no",
                "yes" if "vision" in caps else "no",
                ", ".join(row["roles"]) or "-",
                *([f"{len(row['hosts'])}/{len(urls)}"] if len(urls) > 1 else []),
            )
        )
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    for r in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip(), file=out)
    return 0


class PullPrinter:
    """Renders ``/api/pull`` progress: a bar redrawn in place on a terminal, plain lines
    (each status once, downloads every 10 %) otherwise, e.g. in CI logs."""

    BAR = 30

    def __init__(self, out: TextIO, *, tty: bool | None = None) -> None:
        self.out = out
        self.tty = out.isatty() if tty is None else tty
        self._last_status: str | None = None
        self._last_decile: dict[str, int] = {}
        self._bar_open = False

    def __call__(self, progress: PullProgress) -> None:
        if progress.total and progress.completed is not None:
            self._download(progress)
        elif progress.status != self._last_status:
            self._end_bar()
            print(progress.status, file=self.out, flush=True)
        self._last_status = progress.status

    def _download(self, progress: PullProgress) -> None:
        total, done = progress.total or 1, min(progress.completed or 0, progress.total or 0)
        fraction = done / total
        label = progress.status
        if self.tty:
            filled = int(fraction * self.BAR)
            bar = "#" * filled + "-" * (self.BAR - filled)
            self.out.write(f"\r{label[:40]:<40} [{bar}] {fraction:6.1%} {format_size(done)}/{format_size(total)}")
            self.out.flush()
            self._bar_open = True
            return
        decile = int(fraction * 10)
        key = progress.digest or label
        if self._last_decile.get(key) != decile:
            self._last_decile[key] = decile
            print(f"{label}: {decile * 10}% of {format_size(total)}", file=self.out, flush=True)

    def _end_bar(self) -> None:
        if self._bar_open:
            self.out.write("\n")
            self._bar_open = False

    def close(self) -> None:
        self._end_bar()


async def pull(settings: Settings, model: str, *, out: TextIO | None = None, tty: bool | None = None) -> int:
    """Pull ``model`` on every Ollama host, one after the other (1 if any failed)."""
    out = out or sys.stdout
    urls = host_urls(settings.ollama_url)
    origin = describe_source(settings, "ollama_url")
    code = 0
    for url in urls:
        if len(urls) > 1:
            print(f"Ollama at {url}:", file=out, flush=True)
        printer = PullPrinter(out, tty=tty)
        try:
            async with open_client(url, origin=origin) as client:
                await pull_model(client, model, printer)
        except ProxyError as exc:
            printer.close()
            where = f" on {url}" if len(urls) > 1 else ""
            print(f"claude-code-ollama-proxy: pull {model}{where} failed: {exc.message}", file=sys.stderr)
            code = 1
            continue
        printer.close()
    return code
