"""The operator commands that talk to Ollama: ``doctor``, ``models`` and ``pull``.

Each is an async function that prints to ``out`` (default stdout) and returns the exit
code; :mod:`proxy.cli` runs them with ``trio.run``.
"""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

import trio

from . import doctor as doctor_checks
from .config import describe_source
from .errors import ProxyError
from .ollama_admin import PullProgress, describe_models, list_models, open_admin_client, pull_model

__all__ = ["doctor", "models", "pull", "PullPrinter", "format_size"]


def format_size(size: int | None) -> str:
    """Bytes as Ollama prints them: ``5.2 GB``, ``640 MB``."""
    if not size:
        return "-"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


async def doctor(settings: Any, *, as_json: bool = False, out: TextIO | None = None, **gather: Any) -> int:
    out = out or sys.stdout
    facts = await doctor_checks.gather_facts(settings, **gather)
    checks = doctor_checks.evaluate(settings, facts)
    if as_json:
        print(json.dumps([c.as_dict() for c in checks], indent=2, ensure_ascii=False), file=out)
    else:
        print(doctor_checks.render_table(checks), file=out)
    return doctor_checks.exit_code(checks)


async def models(settings: Any, *, as_json: bool = False, out: TextIO | None = None, timeout: float = 30.0) -> int:
    """Installed models with capabilities, context length and the roles the settings give them."""
    out = out or sys.stdout
    roles = doctor_checks.model_roles(settings)
    try:
        async with open_admin_client(settings.ollama_url, origin=describe_source(settings, "ollama_url")) as client:
            with trio.fail_after(timeout):
                installed = await list_models(client)
                details = await describe_models(client, [m.name for m in installed])
    except ProxyError as exc:
        print(f"claude-code-ollama-proxy: {exc.message}", file=sys.stderr)
        return 1
    except trio.TooSlowError:
        print(f"claude-code-ollama-proxy: Ollama at {settings.ollama_url} did not answer within {timeout:g} s",
              file=sys.stderr)
        return 1
    rows = []
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
    if as_json:
        print(json.dumps(rows, indent=2, ensure_ascii=False), file=out)
        return 0
    if not rows:
        print("no models installed; pull one with `claude-code-ollama-proxy pull qwen3:8b`", file=out)
        return 0
    table = [("NAME", "SIZE", "PARAMS", "CONTEXT", "TOOLS", "THINKING", "VISION", "ROLES")]
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


async def pull(settings: Any, model: str, *, out: TextIO | None = None, tty: bool | None = None) -> int:
    out = out or sys.stdout
    printer = PullPrinter(out, tty=tty)
    try:
        async with open_admin_client(settings.ollama_url, origin=describe_source(settings, "ollama_url")) as client:
            await pull_model(client, model, printer)
    except ProxyError as exc:
        printer.close()
        print(f"claude-code-ollama-proxy: pull {model} failed: {exc.message}", file=sys.stderr)
        return 1
    printer.close()
    return 0
