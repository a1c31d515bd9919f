"""Settings: one table of every setting, resolved flag > environment > config file > default.

Hypercorn passes no flags to an app, so ``hypercorn proxy.app:app`` reads the environment
and the config file; the console script adds its flags on top (``overrides``).
"""

from __future__ import annotations

import copy
import dataclasses
import ipaddress
import json
import logging
import os
from pathlib import Path
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

from .errors import ConfigError

__all__ = [
    "Settings",
    "SETTINGS",
    "Setting",
    "load_settings",
    "ollama_url_from_host",
    "running_in_container",
    "default_value",
    "config_file_defaults",
    "CONTAINER_OLLAMA_URL",
    "is_loopback_host",
    "host_port",
    "local_url",
    "describe_source",
    "CONTAINER_DEFAULT",
]

log = logging.getLogger("proxy.config")

DEFAULT_CONFIG_FILE = "proxy.config.json"

#: Files that container runtimes create: Docker ``/.dockerenv``, Podman ``/run/.containerenv``.
CONTAINER_MARKERS = ("/.dockerenv", "/run/.containerenv")
#: Inside a container, loopback is the container itself; Ollama usually runs on the host.
CONTAINER_OLLAMA_URL = "http://host.docker.internal:11434"
#: the origin of the container default (see :func:`describe_source`)
CONTAINER_DEFAULT = "the container default"


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and loopback addresses; False for ``0.0.0.0``, ``::`` and
    every other name or address (which other machines may reach)."""
    name = host.strip().strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def host_port(host: str, port: int) -> str:
    """``host:port`` as a URL and Hypercorn's bind write it: an IPv6 address in brackets
    (``[::1]:3000``), whether ``host`` came with them or not."""
    name = host.strip().strip("[]")
    return f"[{name}]:{port}" if ":" in name else f"{name}:{port}"


def local_url(host: str, port: int) -> str:
    """The URL by which this machine reaches a server bound to ``host``:``port``: a
    bind-all address (``0.0.0.0``, ``::``, empty) is reached on loopback."""
    name = host.strip().strip("[]")
    name = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(name, name)
    return f"http://{host_port(name, port)}"


def running_in_container(markers: tuple[str, ...] = CONTAINER_MARKERS) -> bool:
    """True when one of the container runtimes' marker files exists."""
    return any(Path(marker).exists() for marker in markers)


def _parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("expected true or false")


def _parse_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("expected a whole number")
    if isinstance(value, int):
        result = value
    elif isinstance(value, str):
        try:
            result = int(value.strip())
        except ValueError:
            raise ValueError("expected a whole number") from None
    else:
        raise ValueError("expected a whole number")
    if result < 0:
        raise ValueError("expected a whole number >= 0")
    return result


def _parse_port(value: Any) -> int:
    port = _parse_int(value)
    if port > 65535:
        raise ValueError("expected a port from 0 to 65535 (0: any free port)")
    return port


def _parse_positive_int(value: Any) -> int:
    result = _parse_int(value)
    if result < 1:
        raise ValueError("expected a whole number >= 1")
    return result


def _parse_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("expected a number of seconds")
    if isinstance(value, (int, float)):
        result = float(value)
    elif isinstance(value, str):
        try:
            result = float(value.strip())
        except ValueError:
            raise ValueError("expected a number of seconds") from None
    else:
        raise ValueError("expected a number of seconds")
    if result < 0:
        raise ValueError("expected a number >= 0")
    return result


def _parse_str(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("expected a string")
    return value


def _parse_optional_str(value: Any) -> str | None:
    if value is None:
        return None
    return _parse_str(value) or None


def _parse_optional_path(value: Any) -> str | None:
    if value is None:
        return None
    path = _parse_str(value).strip()
    if path and path.endswith(("/", os.sep)):
        raise ValueError("expected a file path, not a directory")
    return path or None


def _parse_model_map(value: Any) -> dict[str, str]:
    """A JSON object (or a dict), or a list of ``claude-name=ollama-model`` strings."""
    if isinstance(value, str):
        value = value.strip()
        if not value:
            return {}
        try:
            value = json.loads(value)
        except ValueError as exc:
            if value.startswith(("{", "[")):  # meant as JSON: say what is wrong with it
                raise ValueError(
                    f"not valid JSON ({exc}); expected a JSON object such as"
                    ' {"haiku": "qwen3:4b"}, or claude-name=ollama-model pairs'
                ) from None
            value = [part for part in value.split(",") if part.strip()]
    if isinstance(value, list):
        result = {}
        for item in value:
            if not isinstance(item, str) or "=" not in item:
                raise ValueError("expected claude-name=ollama-model (e.g. haiku=qwen3:4b)")
            key, _, target = item.partition("=")
            if not key.strip() or not target.strip():
                raise ValueError("expected claude-name=ollama-model (e.g. haiku=qwen3:4b)")
            result[key.strip()] = target.strip()
        return result
    if isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        return dict(value)
    raise ValueError("expected a JSON object of claude-name to ollama-model strings")


def _parse_str_list(value: Any) -> list[str]:
    """A list of strings, a JSON array of them, or one comma-separated string."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except ValueError:
                raise ValueError("expected a JSON array of strings or a comma-separated list") from None
        else:
            value = text.split(",")
    if isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value):
        return [item.strip() for item in value if item.strip()]
    raise ValueError("expected a list of strings (comma-separated)")


def _parse_log_level(value: Any) -> str:
    level = _parse_str(value).strip().upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ValueError("expected one of debug, info, warning, error, critical")
    return level


def _parse_log_format(value: Any) -> str:
    style = _parse_str(value).strip().lower()
    if style not in ("auto", "text", "json"):
        raise ValueError("expected auto, text or json")
    return style


def ollama_url_from_host(host: str) -> str:
    """Turn an ``OLLAMA_HOST`` value into a base URL, the way Ollama's own client does.

    ``OLLAMA_HOST`` may lack a scheme (``http`` is assumed) or a port (11434 without a
    scheme, 80 for ``http://``, 443 for ``https://``). A bind-all address means loopback.
    """
    host = host.strip()
    scheme, sep, hostport = host.partition("://")
    if not sep:
        scheme, hostport, default_port = "http", host, 11434
    else:
        default_port = 443 if scheme == "https" else 80
    parts = urlsplit(f"{scheme}://{hostport}")
    try:
        port = parts.port or default_port
    except ValueError:  # urlsplit: a port that is not a number in 0..65535
        raise ValueError("expected a port from 1 to 65535") from None
    hostname = parts.hostname or "127.0.0.1"
    if hostname in ("0.0.0.0", "::"):
        hostname = "127.0.0.1"
    path = parts.path.rstrip("/")
    return f"{scheme}://{host_port(hostname, port)}{path}"


def _parse_url(value: Any) -> str:
    url = _parse_str(value).strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("expected an http:// or https:// URL")
    return url


def _parse_ollama_urls(value: Any) -> str:
    """One URL, or several: a list (flags, config file) or a comma-separated string (env),
    each ``URL`` or ``URL=WEIGHT``. Returns them normalized, comma-separated: one URL
    comes back exactly as :func:`_parse_url` makes it."""
    from .protocol.routing import HostSpec, format_host_list, parse_host_spec

    if not isinstance(value, list):
        value = [_parse_str(value)]
    # a flag's value may itself be a comma-separated list
    items = [part for item in value for part in (item.split(",") if isinstance(item, str) else [item])]
    specs: list[HostSpec] = []
    for item in items:
        if isinstance(item, dict) and set(item) <= {"url", "weight"} and "url" in item:
            url, weight = _parse_url(item["url"]), item.get("weight", 1.0)
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight <= 0:
                raise ValueError(f"weight of {url}: expected a number > 0")
        elif isinstance(item, str):
            if not item.strip():
                continue
            raw_url, weight = parse_host_spec(item)
            url = _parse_url(raw_url)
        else:
            raise ValueError("expected URL, URL=WEIGHT, or {\"url\": …, \"weight\": …}")
        if any(spec.url == url for spec in specs):
            raise ValueError(f"{url} is listed twice")
        specs.append(HostSpec(url, float(weight)))
    if not specs:
        raise ValueError("expected an http:// or https:// URL")
    return format_host_list(specs)


@dataclasses.dataclass(frozen=True, slots=True)
class Setting:
    """One row of the settings table. Its default and what its parser returns are of the
    type of the :class:`Settings` field of the same name (tests/test_settings_types.py)."""

    name: str
    default: Any
    #: raw value (a flag's string or strings, an environment string, a JSON value) to the
    #: setting's value; raises ValueError saying what was expected
    parse: Callable[[Any], Any]
    help: str
    #: defaults to PROXY_<NAME>
    env: str | None = None

    @property
    def env_var(self) -> str:
        return self.env or f"PROXY_{self.name.upper()}"

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def is_bool(self) -> bool:
        """A yes/no setting: the CLI gives it ``--name`` and ``--no-name``."""
        return self.parse is _parse_bool


#: Every setting of the proxy. The config file uses ``name`` as its key.
SETTINGS: tuple[Setting, ...] = (
    Setting("host", "127.0.0.1", _parse_str, "address to listen on"),
    Setting("port", 3000, _parse_port, "port to listen on"),
    Setting(
        "ollama_url", "http://127.0.0.1:11434", _parse_ollama_urls,
        "Ollama base URL; repeatable (env: comma-separated) for several hosts, each URL[=WEIGHT]",
    ),
    Setting("default_model", "qwen3:8b", _parse_str, "Ollama model for claude-* names"),
    Setting("model_map", {}, _parse_model_map, "claude-name=ollama-model mapping"),
    Setting("log_level", "INFO", _parse_log_level, "log level"),
    Setting("log_file", None, _parse_optional_path, "also append the log records to this file"),
    Setting(
        "log_format", "auto", _parse_log_format,
        "log records on stdout: text (one readable line each), json (OpenTelemetry NDJSON),"
        " or auto (text on a terminal, json into a file or pipe); the log file is always json",
    ),
    Setting("quiet", False, _parse_bool, "print only warnings and errors on stdout"),
    Setting("api_key", None, _parse_optional_str, "key clients must present"),
    Setting(
        "allowed_origins", [], _parse_str_list,
        "web origins (scheme://host[:port], or *) whose pages may call the proxy besides its own",
    ),
    Setting(
        "allowed_hosts", [], _parse_str_list,
        "Host names the proxy answers to besides loopback names and IP addresses (or *);"
        " with an API key set every Host is answered",
    ),
    Setting("body_limit", 32 * 1024 * 1024, _parse_int, "largest request body in bytes"),
    Setting(
        "body_timeout", 30.0, _parse_float,
        "seconds a request body may take to arrive, then a 408 and the connection is closed (0: no limit)",
    ),
    Setting("connect_timeout", 5.0, _parse_float, "seconds to connect to Ollama"),
    Setting(
        "ollama_connections", 256, _parse_positive_int,
        "the most connections the proxy opens to Ollama at once; a request waiting connect_timeout for one gets 529",
    ),
    Setting(
        "first_content_timeout", 900.0, _parse_float, "seconds to wait for the first token"
    ),
    Setting("idle_timeout", 300.0, _parse_float, "seconds allowed between two chunks"),
    Setting("commit_grace", 1.0, _parse_float, "seconds before the stream is committed"),
    Setting("ping_interval", 10.0, _parse_float, "seconds between keepalive pings"),
    Setting("busy_retries", 1, _parse_int, "tries when Ollama answers 503 (1: Claude Code retries, not the proxy)"),
    Setting("busy_retry_window", 10.0, _parse_float, "seconds all busy retries may take"),
    Setting("busy_retry_after", 5, _parse_int, "seconds the client is told to wait (retry-after) when Ollama is busy"),
    Setting(
        "crash_retries", 1, _parse_int,
        "quick retries when Ollama fails before any output (runner crash, unreachable, connection lost)",
    ),
    Setting("graceful_timeout", 30.0, _parse_float, "seconds in-flight streams get on shutdown"),
    Setting(
        "sequential_tools", True, _parse_bool,
        "rewrite parallel tool calls in the history as rounds of one call and its result",
    ),
    Setting(
        "tool_emulation", True, _parse_bool,
        "describe tools in the prompt for models without native tool calling (off: a 400)",
    ),
    Setting("num_ctx", 0, _parse_int, "pin Ollama's num_ctx for every request (0: size each request to fit)"),
    Setting("max_num_ctx", 0, _parse_int, "the largest num_ctx the proxy asks for (0: the model's own maximum)"),
    Setting(
        "cap_num_predict", True, _parse_bool,
        "limit Ollama's num_predict to what the context window leaves after the prompt",
    ),
    Setting(
        "loop_guard_chars", 4000, _parse_int,
        "end an answer whose last N characters are one span repeated (stop_reason max_tokens; 0: off)",
    ),
    Setting("keep_alive", None, _parse_optional_str, "how long Ollama keeps the model loaded (e.g. 30m, -1); unset: Ollama's default"),
    Setting(
        "strict_thinking", False, _parse_bool,
        "refuse (400) thinking requests to models that cannot think, instead of dropping thinking",
    ),
    Setting(
        "host_saturation", 0, _parse_int,
        "requests in flight on one Ollama host before a session's next host is preferred"
        " (0: only what the host's 503s show); several hosts only",
    ),
    Setting("host_poll_interval", 10.0, _parse_float, "seconds between polls of each Ollama host's models; several hosts only"),
    Setting(
        "events_buffer", 1000, _parse_positive_int,
        "live-view events buffered per /v1/events viewer; a slow viewer loses its oldest ones",
    ),
)

_BY_NAME = {setting.name: setting for setting in SETTINGS}


@dataclasses.dataclass(frozen=True)
class Settings:
    """Resolved settings: one field per row of :data:`SETTINGS`, in its order, typed as the
    row's parser returns (``tests/test_settings_types.py`` holds the two together).

    The defaults live in the table, not here: :func:`load_settings` makes every Settings.
    ``sources`` says which layer gave each value (flag, env, file, default), ``origins``
    says it for people (``from OLLAMA_HOST``, ``the container default``).
    """

    host: str
    port: int
    #: one URL, or several comma-separated ``URL[=WEIGHT]`` (:func:`proxy.protocol.routing.parse_host_list`)
    ollama_url: str
    default_model: str
    model_map: dict[str, str]
    log_level: str
    log_file: str | None
    log_format: str
    quiet: bool
    api_key: str | None
    allowed_origins: list[str]
    allowed_hosts: list[str]
    body_limit: int
    body_timeout: float
    connect_timeout: float
    ollama_connections: int
    first_content_timeout: float
    idle_timeout: float
    commit_grace: float
    ping_interval: float
    busy_retries: int
    busy_retry_window: float
    busy_retry_after: int
    crash_retries: int
    graceful_timeout: float
    sequential_tools: bool
    tool_emulation: bool
    num_ctx: int
    max_num_ctx: int
    cap_num_predict: bool
    loop_guard_chars: int
    keep_alive: str | None
    strict_thinking: bool
    host_saturation: int
    host_poll_interval: float
    events_buffer: int
    sources: dict[str, str] = dataclasses.field(default_factory=dict)
    origins: dict[str, str] = dataclasses.field(default_factory=dict)


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from exc
    except ValueError as exc:
        raise ConfigError(f"{path}: not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object of settings")
    unknown = sorted(set(data) - set(_BY_NAME))
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(unknown)}")
    return data


def default_value(setting: Setting, *, in_container: bool = False) -> Any:
    """The default of ``setting`` on this machine (a fresh copy)."""
    if setting.name == "ollama_url" and in_container:
        return CONTAINER_OLLAMA_URL
    return copy.deepcopy(setting.default)


def config_file_defaults(*, in_container: bool | None = None) -> dict[str, Any]:
    """Every key of the config file with its default, in table order (for ``--init``)."""
    if in_container is None:
        in_container = running_in_container()
    return {s.name: default_value(s, in_container=in_container) for s in SETTINGS}


def _shown(raw: Any) -> str:
    """A raw value as its user wrote it: repeated flags as they were typed, not a Python list."""
    if isinstance(raw, list) and all(isinstance(item, str) for item in raw):
        return " ".join(repr(item) for item in raw)
    if isinstance(raw, str):
        return repr(raw)
    return json.dumps(raw, ensure_ascii=False, default=str)


def load_settings(
    overrides: Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    config_path: str | os.PathLike[str] | None = None,
    read_config_file: bool = True,
    in_container: bool | None = None,
) -> Settings:
    """Resolve every setting: ``overrides`` (flags) > environment > config file > default.

    The config file is ``config_path``, else ``$PROXY_CONFIG``, else ``./proxy.config.json``
    when it exists. Raises :class:`ConfigError` naming the source, the key and what was
    expected. ``read_config_file=False`` ignores every config file (tests use it).
    ``in_container`` (default: look for the runtimes' marker files) makes the default
    Ollama URL ``http://host.docker.internal:11434``.
    """
    environ = os.environ if environ is None else environ
    if in_container is None:
        in_container = running_in_container()
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    file_data: dict[str, Any] = {}
    path_value = config_path or environ.get("PROXY_CONFIG")
    if not read_config_file:
        file_path = None
    elif path_value:
        file_path = Path(path_value)
        file_data = _read_config_file(file_path)
    elif Path(DEFAULT_CONFIG_FILE).is_file():
        file_path = Path(DEFAULT_CONFIG_FILE)
        file_data = _read_config_file(file_path)
    else:
        file_path = None

    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    origins: dict[str, str] = {}
    for setting in SETTINGS:
        # (source kind, where it came from for messages, raw value, parser)
        candidates: list[tuple[str, str, Any, Callable[[Any], Any]]] = []
        if setting.name in overrides:
            candidates.append(("flag", setting.flag, overrides[setting.name], setting.parse))
        if setting.env_var in environ:
            candidates.append(("env", setting.env_var, environ[setting.env_var], setting.parse))
        if setting.name in file_data:
            candidates.append(("file", f"{file_path}: key {setting.name!r}", file_data[setting.name], setting.parse))
        if setting.name == "ollama_url" and environ.get("OLLAMA_HOST", "").strip():
            # Ollama's own variable is the last resort: many set OLLAMA_HOST=0.0.0.0 for the
            # server, which must not override a URL configured for the proxy. Parsed only
            # when it is the one used, so a value meant for the server cannot break us.
            candidates.append(
                ("env", "OLLAMA_HOST", environ["OLLAMA_HOST"], lambda raw: _parse_url(ollama_url_from_host(raw)))
            )
        if candidates:
            kind, where, raw, parse = candidates[0]
            try:
                values[setting.name] = parse(raw)
            except ValueError as exc:
                raise ConfigError(f"{where}: invalid value {_shown(raw)}: {exc}") from exc
            sources[setting.name] = kind
            origins[setting.name] = f"from {file_path}" if kind == "file" else f"from {where}"
        else:
            values[setting.name] = default_value(setting, in_container=in_container)
            sources[setting.name] = "default"
            container = in_container and setting.name == "ollama_url"
            origins[setting.name] = CONTAINER_DEFAULT if container else "the default"
    return Settings(**values, sources=sources, origins=origins)


def describe_source(settings: Settings, name: str) -> str:
    """Where setting ``name`` came from, for people: ``from --ollama-url``, ``from
    OLLAMA_HOST``, ``from proxy.config.json``, ``the container default``, ``the default``."""
    return settings.origins.get(name) or "the default"
