"""Logging: every record as one line of JSON in the OpenTelemetry log data model.

Built on the standard :mod:`logging` module: :class:`OTelJSONFormatter` turns a
``LogRecord`` into an object with the data model's field names, and
:func:`configure_logging` installs it on stdout and, optionally, on a log file::

    {"Timestamp": "1732470000123456789", "SeverityNumber": 9, "SeverityText": "INFO",
     "Body": "request req_… done: 200 in 1.20 s …", "EventName": "proxy.request.end",
     "Attributes": {"proxy.request_id": "req_…", …},
     "Resource": {"service.name": "claude-code-ollama-proxy", …},
     "InstrumentationScope": {"Name": "proxy.app"},
     "TraceId": "4bf92f3577b34da6a3ce929d0e0e4736", "SpanId": "00f067aa0ba902b7", "TraceFlags": 1}

A record gets attributes through ``extra={"attributes": {...}}`` and an event name through
``extra={"event_name": "..."}``. While a request is served, :func:`request_context` binds
its id and the W3C ``traceparent`` it came with, so every record logged by that request's
tasks (trio tasks inherit context variables) carries ``proxy.request_id`` and the trace ids.
docs/LOGGING.md lists the fields and shows an OpenTelemetry Collector config.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import json
import logging
import logging.handlers
import os
import re
import socket
import sys
import traceback
from pathlib import Path
from typing import Any, Iterator, Mapping, TextIO
from urllib.parse import unquote

from . import __version__
from .errors import ConfigError
from .protocol.bounded import valid_text

__all__ = [
    "configure_logging",
    "OTelJSONFormatter",
    "TextFormatter",
    "RequestContext",
    "request_context",
    "current_request",
    "parse_traceparent",
    "severity_number",
    "redact",
    "resource_attributes",
]

SERVICE_NAME = "claude-code-ollama-proxy"
_HANDLER_PREFIX = "claude-code-ollama-proxy:"
#: the loggers our handlers are installed on
LOGGERS = ("proxy", "hypercorn.error")


# -- request context ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class RequestContext:
    request_id: str
    trace_id: str | None = None
    span_id: str | None = None
    trace_flags: int | None = None


_current_request: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar(
    "proxy_request", default=None
)

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")


def parse_traceparent(value: str | None) -> tuple[str, str, int] | None:
    """``(trace_id, parent span_id, flags)`` of a W3C ``traceparent`` header, or None when
    it is absent or invalid (all-zero ids, version ``ff``, wrong shape: the W3C rules)."""
    if not value:
        return None
    match = _TRACEPARENT.match(value.strip().lower())
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest):
        return None
    if trace_id == "0" * 32 or span_id == "0" * 16:
        return None
    return trace_id, span_id, int(flags, 16)


@contextlib.contextmanager
def request_context(request_id: str, traceparent: str | None = None) -> Iterator[RequestContext]:
    """Bind a request's id and trace to every record logged inside the block."""
    parsed = parse_traceparent(traceparent)
    if parsed is None:
        context = RequestContext(request_id)
    else:
        context = RequestContext(request_id, *parsed)
    token = _current_request.set(context)
    try:
        yield context
    finally:
        _current_request.reset(token)


def current_request() -> RequestContext | None:
    return _current_request.get()


# -- the formatter -----------------------------------------------------------------------


def severity_number(levelno: int) -> int:
    """The data model's SeverityNumber for a :mod:`logging` level (DEBUG 5, INFO 9,
    WARNING 13, ERROR 17, CRITICAL 21; levels in between round down within their range)."""
    if levelno < logging.DEBUG:
        return 1  # TRACE
    if levelno >= logging.CRITICAL:
        return 21
    base = {1: 5, 2: 9, 3: 13, 4: 17}[levelno // 10]
    return base + min(3, (levelno % 10) * 4 // 10)


def resource_attributes(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The Resource of every record: service, version, host and process, plus the standard
    ``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES`` (``k=v,k2=v2``) when set."""
    environ = os.environ if environ is None else environ
    resource: dict[str, Any] = {
        "service.name": SERVICE_NAME,
        "service.version": __version__,
        "host.name": socket.gethostname(),
        "process.pid": os.getpid(),
    }
    for pair in environ.get("OTEL_RESOURCE_ATTRIBUTES", "").split(","):
        key, sep, value = pair.partition("=")
        if sep and key.strip():
            resource[unquote(key.strip())] = unquote(value.strip())
    if environ.get("OTEL_SERVICE_NAME", "").strip():
        resource["service.name"] = environ["OTEL_SERVICE_NAME"].strip()
    return resource


class OTelJSONFormatter(logging.Formatter):
    """Formats a record as one JSON object in the OpenTelemetry log data model."""

    def __init__(self, resource: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.resource = dict(resource if resource is not None else resource_attributes())

    def to_dict(self, record: logging.LogRecord) -> dict[str, Any]:
        attributes: dict[str, Any] = {}
        context = getattr(record, "request_context", None) or _current_request.get()
        if context is not None:
            attributes["proxy.request_id"] = context.request_id
        given = getattr(record, "attributes", None)
        if isinstance(given, Mapping):
            attributes.update(given)
        if record.exc_info and record.exc_info[0] is not None:
            kind, value, tb = record.exc_info
            attributes["exception.type"] = kind.__qualname__
            attributes["exception.message"] = str(value)
            attributes["exception.stacktrace"] = "".join(traceback.format_exception(kind, value, tb))
        out: dict[str, Any] = {
            "Timestamp": str(int(record.created * 1_000_000_000)),
            "SeverityNumber": severity_number(record.levelno),
            "SeverityText": record.levelname,
            "Body": record.getMessage(),
        }
        event_name = getattr(record, "event_name", None)
        if event_name:
            out["EventName"] = event_name
        out["Attributes"] = attributes
        out["Resource"] = self.resource
        out["InstrumentationScope"] = {"Name": record.name}
        if context is not None and context.trace_id is not None:
            out["TraceId"] = context.trace_id
            out["SpanId"] = context.span_id
            out["TraceFlags"] = context.trace_flags
        return out

    def format(self, record: logging.LogRecord) -> str:
        # valid_text: the handlers write UTF-8, which a lone surrogate in client text breaks
        return valid_text(json.dumps(self.to_dict(record), ensure_ascii=False, separators=(",", ":"), default=str))


class TextFormatter(logging.Formatter):
    """One readable line per record, for a person at a terminal::

        01:40:12 WARNING  request req_3f… failed: 404 in 0.01 s: not_found_error: Ollama has no model …

    The request id is added when the message does not name it; an exception adds its type
    and message (and, from ERROR up, its traceback on the lines below)."""

    def format(self, record: logging.LogRecord) -> str:
        clock = self.formatTime(record, "%H:%M:%S")
        line = f"{clock} {record.levelname:<8} {record.getMessage()}"
        context = getattr(record, "request_context", None) or _current_request.get()
        if context is not None and context.request_id not in line:
            line += f" [{context.request_id}]"
        if record.exc_info and record.exc_info[0] is not None:
            kind, value, tb = record.exc_info
            line += f" ({kind.__qualname__}: {value})" if str(value) else f" ({kind.__qualname__})"
            if record.levelno >= logging.ERROR:
                line += "\n" + "".join(traceback.format_exception(kind, value, tb)).rstrip()
        return line


def console_is_text(style: str, stream: TextIO) -> bool:
    """``text``, ``json``, or ``auto``: text when ``stream`` is a terminal."""
    if style == "auto":
        isatty = getattr(stream, "isatty", None)
        try:
            return bool(isatty and isatty())
        except ValueError:  # a closed stream
            return False
    return style == "text"


# -- redaction for debug bodies ----------------------------------------------------------

REDACTED = "[REDACTED]"
_SECRET_KEYS = re.compile(
    r"^(x-api-key|api[-_]?key|authorization|proxy-authorization|cookie|set-cookie|password|passwd"
    r"|secret|client[-_]?secret|token|access[-_]?token|refresh[-_]?token|auth[-_]?token|id[-_]?token"
    r"|private[-_]?key)$",
    re.IGNORECASE,
)
_SECRET_VALUES = re.compile(
    r"(sk-ant-[A-Za-z0-9_\-]{8,}|sk-[A-Za-z0-9_\-]{20,}|(?<=[Bb]earer )[A-Za-z0-9._~+/=\-]{8,}"
    r"|gh[pousr]_[A-Za-z0-9]{20,}|xox[abprs]-[A-Za-z0-9\-]{10,}|AKIA[0-9A-Z]{16}"
    r"|eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]+)"
)


def redact(value: Any) -> Any:
    """A copy of a JSON value fit for a debug log: values under secret-looking keys and
    strings that look like keys or tokens become ``[REDACTED]``; base64 payloads (images,
    documents) are replaced by their size."""
    if isinstance(value, dict):
        if value.get("type") == "base64" and isinstance(value.get("data"), str):
            return {**value, "data": f"[base64, {len(value['data'])} chars]"}
        out: dict[Any, Any] = {}
        for key, item in value.items():
            if isinstance(key, str) and _SECRET_KEYS.match(key):
                out[key] = REDACTED
            elif key == "images" and isinstance(item, list):
                out[key] = [f"[base64, {len(i)} chars]" if isinstance(i, str) else redact(i) for i in item]
            else:
                out[key] = redact(item)
        return out
    if isinstance(value, list):
        return [redact(item) for item in value]
    if isinstance(value, str):
        return _SECRET_VALUES.sub(REDACTED, value)
    return value


# -- installing the handlers -------------------------------------------------------------


def _open_log_file(path: str) -> logging.Handler:
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        # WatchedFileHandler reopens the file after logrotate moved it away.
        return logging.handlers.WatchedFileHandler(path, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"log_file {path}: cannot open it for appending: {exc.strerror or exc}") from exc


def configure_logging(
    level: str = "INFO",
    *,
    log_file: str | None = None,
    quiet: bool = False,
    console: bool = True,
    stream: TextIO | None = None,
    style: str = "auto",
) -> None:
    """Install the proxy's handlers on the ``proxy`` and ``hypercorn.error`` loggers.

    Records at ``level`` and above go to ``stream`` (default stdout; only WARNING and above
    when ``quiet``; none when ``console`` is false) and to ``log_file`` when given. The file
    always gets NDJSON; ``stream`` gets one readable line per record when ``style`` is
    ``text``, or ``auto`` and it is a terminal, else NDJSON too. Calling
    it again replaces the handlers it installed before. Raises ConfigError when the log
    file cannot be opened.
    """
    formatter = OTelJSONFormatter()
    handlers: list[logging.Handler] = []
    if log_file:
        file_handler = _open_log_file(log_file)
        file_handler.set_name(_HANDLER_PREFIX + "file")
        handlers.append(file_handler)
    for handler in handlers:
        handler.setFormatter(formatter)
    if console:
        target = stream if stream is not None else sys.stdout
        console_handler = logging.StreamHandler(target)
        console_handler.set_name(_HANDLER_PREFIX + "console")
        console_handler.setFormatter(TextFormatter() if console_is_text(style, target) else formatter)
        if quiet:
            console_handler.setLevel(logging.WARNING)
        handlers.append(console_handler)
    for name in LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(level)
        for old in [h for h in logger.handlers if (h.get_name() or "").startswith(_HANDLER_PREFIX)]:
            logger.removeHandler(old)
            if old not in handlers:
                old.close()
        for handler in handlers:
            logger.addHandler(handler)
