"""The ``claude-code-ollama-proxy`` command (also ``python -m proxy``).

Every setting of :mod:`proxy.config` has a flag; flags win over the environment, which wins
over the config file, which wins over the defaults.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

import trio

from . import __version__
from .config import SETTINGS, ConfigError, load_settings
from .logs import configure_logging
from .server import serve, wait_for_signal

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="claude-code-ollama-proxy",
        description="Serve the Anthropic Messages API from a local Ollama, for Claude Code.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--config", help="path of a proxy.config.json (env PROXY_CONFIG)")
    for setting in SETTINGS:
        flag = "--" + setting.name.replace("_", "-")
        if setting.name == "model_map":
            parser.add_argument(
                flag,
                action="append",
                metavar="CLAUDE=OLLAMA",
                help="map a Claude model name (or haiku/sonnet/opus) to an Ollama model;"
                " repeatable, or one JSON object (env PROXY_MODEL_MAP)",
            )
        else:
            parser.add_argument(
                flag, dest=setting.name, help=f"{setting.help} (env {setting.env_var}, default {setting.default!r})"
            )
    return parser


def _flag_values(args: argparse.Namespace) -> dict:
    values = {s.name: getattr(args, s.name) for s in SETTINGS}
    maps = values.get("model_map")
    if maps is not None and len(maps) == 1 and maps[0].lstrip().startswith("{"):
        values["model_map"] = maps[0]  # one JSON object
    return values


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(_flag_values(args), config_path=args.config)
    except ConfigError as exc:
        print(f"claude-code-ollama-proxy: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    print(
        f"claude-code-ollama-proxy {__version__}: http://{settings.host}:{settings.port}"
        f" → Ollama at {settings.ollama_url}",
        file=sys.stderr,
    )
    trio.run(lambda: serve(settings, shutdown_trigger=wait_for_signal))
    return 0
