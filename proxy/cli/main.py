"""The ``claude-code-ollama-proxy`` command (also ``python -m proxy``).

::

    claude-code-ollama-proxy [SETTINGS…] [serve]          run the proxy (the default)
    claude-code-ollama-proxy [SETTINGS…] claude [ARGS…]   run Claude Code through it
    claude-code-ollama-proxy [SETTINGS…] doctor           check Ollama and the models
    claude-code-ollama-proxy [SETTINGS…] models           list installed models
    claude-code-ollama-proxy [SETTINGS…] pull MODEL       pull a model with progress
    claude-code-ollama-proxy [SETTINGS…] --init [--force] write proxy.config.json

Every row of :data:`proxy.config.SETTINGS` becomes a flag here (``--name VALUE``; yes/no
rows get ``--name`` and ``--no-name``); flags win over the environment, which wins over
the config file, which wins over the defaults. Exit codes: 0 ok, 1 the command failed,
2 a usage or configuration error; ``claude`` exits with Claude Code's own code.
"""

from __future__ import annotations

import argparse
import difflib
import errno
import functools
import json
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any, Callable, NoReturn, Sequence

import trio

from .. import __version__
from ..config import (
    CONTAINER_DEFAULT,
    DEFAULT_CONFIG_FILE,
    SETTINGS,
    Setting,
    Settings,
    config_file_defaults,
    default_value,
    describe_source,
    host_port,
    load_settings,
    local_url,
    running_in_container,
)
from ..errors import ConfigError, PidFileTaken, TailRefused
from ..logs import configure_logging

__all__ = ["main", "build_parser", "split_claude_args"]

PROG = "claude-code-ollama-proxy"


#: the settings whose flag may be given several times: name → (metavar, help)
_REPEATABLE = {
    "model_map": (
        "CLAUDE=OLLAMA",
        "map a Claude model name (or haiku/sonnet/opus) to an Ollama model; repeatable, or one JSON object",
    ),
    "ollama_url": ("URL[=WEIGHT]", "Ollama base URL; repeat it for several Ollama hosts, each with an optional weight"),
}


def _add_setting_flags(parser: argparse.ArgumentParser, table: Sequence[Setting], *, suppress: bool) -> None:
    """One flag per row. ``suppress``: a subcommand's copy that must not overwrite a value
    given before the subcommand with its own default."""
    default = argparse.SUPPRESS if suppress else None
    group = parser.add_argument_group("settings (each also PROXY_<NAME> and a proxy.config.json key)")
    in_container = running_in_container()
    for setting in table:
        where = f"env {setting.env_var}, {_shown_default(setting, in_container=in_container)}"
        if setting.name == "ollama_url":
            where = f"env {setting.env_var}, else OLLAMA_HOST; {_shown_default(setting, in_container=in_container)}"
        options: dict[str, Any] = {"metavar": setting.name.upper(), "help": f"{setting.help} ({where})"}
        if setting.name in _REPEATABLE:
            metavar, text = _REPEATABLE[setting.name]
            options = {"action": "append", "metavar": metavar, "help": f"{text} ({where})"}
        elif setting.is_bool:
            options = {"action": argparse.BooleanOptionalAction, "help": f"{setting.help} ({where})"}
        group.add_argument(setting.flag, dest=setting.name, default=default, **options)


def _shown_default(setting: Setting, *, in_container: bool) -> str:
    """The default that really applies on this machine, in words (``--help``)."""
    value = default_value(setting, in_container=in_container)
    if value is None:
        return "unset by default"
    if setting.name == "ollama_url" and in_container:
        return f"default {value} (in this container; 127.0.0.1 when that name does not resolve)"
    if isinstance(value, str):
        return f"default {value}"
    if isinstance(value, bool):
        return "on by default" if value else "off by default"
    if value == {}:
        return "none by default"
    return f"default {json.dumps(value)}"


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors in this command's words: ``unknown option --prot (did you
    mean --port?)`` rather than ``unrecognized arguments: --prot 3001``."""

    # one signature where argparse's stub has overloads (a namespace of another type): never passed here
    def parse_args(self, args: Sequence[str] | None = None, namespace: None = None) -> argparse.Namespace:  # type: ignore[override]
        argv = list(sys.argv[1:] if args is None else args)
        actions = self._all_actions()
        known = {o for action in actions for o in action.option_strings}
        takes_value = {o for action in actions if action.nargs != 0 for o in action.option_strings}
        index = 0
        while index < len(argv):
            token = argv[index]
            if token == "--":
                break
            name = token.partition("=")[0]
            if token.startswith("-") and token != "-" and name not in known:
                close = difflib.get_close_matches(name, sorted(known), n=1)
                self.error(f"unknown option {name}" + (f" (did you mean {close[0]}?)" if close else ""))
            index += 2 if (name in takes_value and "=" not in token) else 1
        return super().parse_args(argv, namespace)

    def error(self, message: str) -> NoReturn:
        """One line and exit code 2, not argparse's usage block."""
        self.exit(2, f"{PROG}: {message}; see --help\n")

    def _all_actions(self) -> list[argparse.Action]:
        actions = list(self._actions)
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    actions += sub._actions
        return actions


def build_parser(table: Sequence[Setting] = SETTINGS) -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Serve the Anthropic Messages API from a local Ollama, for Claude Code.",
        epilog="Settings go before the command; `claude` passes everything after it to Claude Code"
        " (its own options --claude-bin PATH and `--` come first). docs/CLI.md has the details.",
        allow_abbrev=False,  # split_claude_args must know every option exactly
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--config", metavar="PATH", help="path of a proxy.config.json (env PROXY_CONFIG)")
    parser.add_argument(
        "--init", action="store_true",
        help="write a proxy.config.json with every key at its default (ollama_url only when given), then exit",
    )
    parser.add_argument("--force", action="store_true", help="with --init: overwrite an existing file")
    _add_setting_flags(parser, table, suppress=False)

    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", title="commands (default: serve)", parser_class=_Parser
    )
    serve = commands.add_parser("serve", help="run the proxy (the default)", allow_abbrev=False)
    serve.add_argument("--pid-file", metavar="PATH", help="write the process id here while serving (make stop)")
    _add_setting_flags(serve, table, suppress=True)
    commands.add_parser(
        "claude",
        help="run Claude Code through the proxy: claude [--claude-bin PATH] [--] [ARGS…]",
        add_help=False,
    )
    doctor = commands.add_parser("doctor", help="check Ollama, the mapped models and Claude Code", allow_abbrev=False)
    doctor.add_argument("--json", action="store_true", help="print the checks as JSON")
    _add_setting_flags(doctor, table, suppress=True)
    models = commands.add_parser("models", help="list installed Ollama models", allow_abbrev=False)
    models.add_argument("--json", action="store_true", help="print the list as JSON")
    _add_setting_flags(models, table, suppress=True)
    tail = commands.add_parser(
        "tail", help="print the live feed of requests, one line per event (reconnects)", allow_abbrev=False
    )
    tail.add_argument("--json", action="store_true", help="print each event as its raw JSON")
    tail.add_argument(
        "--url", metavar="URL", help="the proxy to watch (default: http://HOST:PORT from the settings)"
    )
    _add_setting_flags(tail, table, suppress=True)
    pull = commands.add_parser("pull", help="pull an Ollama model, with progress", allow_abbrev=False)
    pull.add_argument("model", metavar="MODEL")
    _add_setting_flags(pull, table, suppress=True)
    return parser


def split_claude_args(
    argv: Sequence[str], table: Sequence[Setting] = SETTINGS
) -> tuple[list[str], dict[str, Any] | None]:
    """Split off ``claude …``: everything after it belongs to Claude Code, whose options
    argparse must never see (``claude -p "hi" --model x``).

    Returns (our arguments, None) when there is no ``claude`` command, else (our
    arguments ending in ``claude``, {"claude_bin": …, "claude_args": [...]}).
    """
    takes_value = {"--config"} | {s.flag for s in table if not s.is_bool}
    index = 0
    while index < len(argv):
        token = argv[index]
        if token == "--":
            return list(argv), None
        if token.startswith("-"):
            if token in takes_value:
                index += 1  # skip its value, which may look like anything ("claude")
            index += 1
            continue
        if token != "claude":
            return list(argv), None  # another command: argparse handles the rest
        rest = list(argv[index + 1 :])
        claude_bin = None
        while rest:
            if rest[0] == "--claude-bin" and len(rest) > 1:
                claude_bin, rest = rest[1], rest[2:]
            elif rest[0].startswith("--claude-bin="):
                claude_bin, rest = rest[0].partition("=")[2], rest[1:]
            elif rest[0] == "--":
                rest = rest[1:]
                break
            else:
                break
        return list(argv[: index + 1]), {"claude_bin": claude_bin, "claude_args": rest}
    return list(argv), None


def flag_values(args: argparse.Namespace, table: Sequence[Setting] = SETTINGS) -> dict[str, Any]:
    """The settings given as flags (None: not given)."""
    values = {s.name: getattr(args, s.name, None) for s in table}
    maps = values.get("model_map")
    if maps is not None and len(maps) == 1 and maps[0].lstrip().startswith("{"):
        values["model_map"] = maps[0]  # one JSON object
    return values


#: Keys --init leaves out unless given: written, they would pin a value that otherwise
#: follows the machine (``OLLAMA_HOST``, the container default).
UNPINNED_KEYS = ("ollama_url",)


def write_initial_config(path: Path, flags: dict[str, Any], *, force: bool, in_container: bool | None = None) -> str:
    """Write every key with its default (flags given on the same command line win), except
    ``ollama_url``, which is written only when given: pinned in the file it would win over
    ``OLLAMA_HOST`` and the container default. Returns a message; raises FileExistsError
    without ``force``, ConfigError for a bad flag."""
    if path.exists() and not force:
        raise FileExistsError(f"{path} exists; add --force to overwrite it")
    data = config_file_defaults(in_container=in_container)
    given = {name: value for name, value in flags.items() if value is not None}
    for name in UNPINNED_KEYS:
        if name not in given:
            del data[name]
    if given:
        resolved = load_settings(given, environ={}, read_config_file=False, in_container=in_container)
        data.update({name: getattr(resolved, name) for name in given})
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    left_out = [name for name in UNPINNED_KEYS if name not in data]
    note = (
        f"; {', '.join(left_out)} left out so OLLAMA_HOST and the container default still apply"
        " (add the key to pin a URL)"
        if left_out else ""
    )
    return f"wrote {path} with {len(data)} settings{note}"


def _fail(message: str, code: int) -> int:
    print(f"{PROG}: {message}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ours, claude = split_claude_args(argv)
    parser = build_parser()
    args = parser.parse_args(ours)
    flags = flag_values(args)

    if args.init:
        path = Path(args.config or os.environ.get("PROXY_CONFIG") or DEFAULT_CONFIG_FILE)
        try:
            print(write_initial_config(path, flags, force=args.force))
        except FileExistsError as exc:
            return _fail(str(exc), 1)
        except ConfigError as exc:
            return _fail(str(exc), 2)
        except OSError as exc:
            return _fail(f"{path}: cannot write it: {exc.strerror or exc}", 1)
        return 0

    try:
        settings = load_settings(flags, config_path=args.config)
    except ConfigError as exc:
        return _fail(str(exc), 2)

    command = args.command or "serve"
    if command != "tail" and settings.origins.get("ollama_url") == CONTAINER_DEFAULT:
        from ..ollama.admin import settle_container_default

        settings = trio.run(settle_container_default, settings)
    try:
        if command == "serve":
            return _serve(settings, pid_file=getattr(args, "pid_file", None))
        if command == "claude":
            from .launcher import run_claude

            assert claude is not None
            return trio.run(
                lambda: run_claude(settings, claude["claude_args"], claude_bin=claude["claude_bin"])
            )
        from . import admin as admin_commands

        if command == "doctor":
            return trio.run(lambda: admin_commands.doctor(settings, as_json=args.json))
        if command == "models":
            return trio.run(lambda: admin_commands.models(settings, as_json=args.json))
        if command == "pull":
            return trio.run(lambda: admin_commands.pull(settings, args.model))
        if command == "tail":
            return _tail(settings, url=args.url, as_json=args.json)
    except ConfigError as exc:
        return _fail(str(exc), 2)
    except KeyboardInterrupt:
        return 130
    raise AssertionError(f"unhandled command {command}")


def _tail(settings: Settings, *, url: str | None, as_json: bool) -> int:
    from ..live.tail import tail

    if url is None:  # listening everywhere: watch it on loopback
        url = local_url(settings.host, settings.port)
    try:
        trio.run(lambda: tail(url, api_key=settings.api_key, as_json=as_json))
    except TailRefused as exc:
        return _fail(str(exc), 1)
    except ValueError as exc:
        return _fail(str(exc), 2)
    return 0


def _serve(settings: Settings, *, pid_file: str | None) -> int:
    from ..server.runner import first_signal, serve

    pid_path = Path(pid_file) if pid_file else None
    try:
        check_address_free(settings.host, settings.port)
        if pid_path is not None:
            check_pid_file(pid_path)
    except PidFileTaken as exc:
        return _fail(str(exc), 2)
    except OSError as exc:
        return _fail(_listen_failure(settings, exc), 2)
    configure_logging(settings.log_level, log_file=settings.log_file, quiet=settings.quiet, style=settings.log_format)
    if not settings.quiet:
        print(
            f"{PROG} {__version__}: http://{host_port(settings.host, settings.port)}"
            f" → Ollama at {settings.ollama_url} ({describe_source(settings, 'ollama_url')})",
            file=sys.stderr,
        )

    async def run() -> None:
        # Signals are caught from here on: a SIGTERM right after start-up (`make run`, then
        # at once `make stop`) is a graceful shutdown that removes the PID file.
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async with trio.open_nursery() as nursery:
                # Bound first, then the PID file: a proxy that cannot listen writes nothing,
                # so it cannot clobber the file of the one that holds the port.
                trigger = functools.partial(first_signal, signals)
                await nursery.start(functools.partial(serve, settings, shutdown_trigger=trigger))
                if pid_path is not None:
                    write_pid_file(pid_path)

    try:
        trio.run(run)
    except BaseException as error:
        if (taken := _find(error, lambda e: isinstance(e, PidFileTaken))) is not None:
            return _fail(str(taken), 2)
        if (busy := _find(error, lambda e: isinstance(e, OSError) and e.errno == errno.EADDRINUSE)) is None:
            raise
        return _fail(_listen_failure(settings, busy), 2)
    finally:
        if pid_path is not None:
            remove_own_pid_file(pid_path)
    return 0


def _find(error: BaseException, match: Callable[[BaseException], bool]) -> BaseException | None:
    """The first exception in ``error`` (an exception group from a nursery, or not) that matches."""
    if match(error):
        return error
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            if (found := _find(inner, match)) is not None:
                return found
    return None


def _listen_failure(settings: Settings, exc: BaseException) -> str:
    where = f"{settings.host}:{settings.port}"
    if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
        return (
            f"port {settings.port} is already in use ({where}): is a proxy already running?"
            " `make stop` stops the one `make run` started; or pick another port with --port N"
        )
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return f"cannot listen on {where}: {reason} (check --host and --port)"


def check_address_free(host: str, port: int) -> None:
    """Raise the OSError that binding ``host:port`` would raise (EADDRINUSE: another
    process listens there), before anything is started or written. Port 0 is always free."""
    if port == 0:
        return
    for family, kind, proto, _, address in socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE):
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Hypercorn binds
            probe.bind(address)
        return


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def check_pid_file(path: Path) -> None:
    """Raise PidFileTaken when ``path`` names another live process (a file left by a
    dead one does not count)."""
    try:
        other = int(path.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return
    if other != os.getpid() and _pid_alive(other):
        raise PidFileTaken(
            f"{path} names another running proxy (pid {other}); `make stop` stops it,"
            " or give this one its own --pid-file"
        )


def write_pid_file(path: Path) -> None:
    """Write our PID to ``path``, atomically (see :func:`check_pid_file`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    check_pid_file(path)
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    temporary.write_text(f"{os.getpid()}\n", encoding="ascii")
    os.replace(temporary, path)


def remove_own_pid_file(path: Path) -> None:
    """Remove ``path`` only when it still holds our PID: a PID file is only ever removed
    by the process that wrote it."""
    try:
        if int(path.read_text(encoding="ascii").strip()) == os.getpid():
            path.unlink(missing_ok=True)
    except (OSError, ValueError):
        pass
