"""``claude-code-ollama-proxy tail``: print the live feed, one line per event.

:func:`format_event` turns one event (docs/LIVE.md) into a line a person reads; it is a
plain function so every kind of event has a table test. :func:`tail` is the client: a
``trio-websocket`` connection to ``/v1/events`` that prints what arrives and, when the
proxy goes away (a restart, a crash, not started yet), says so once and reconnects with
backoff until it is back. It ends only when interrupted, or after ``max_events``.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any, TextIO
from urllib.parse import urlsplit, urlunsplit

import trio
from trio_websocket import ConnectionClosed, ConnectionRejected, HandshakeError, open_websocket_url

from ..errors import TailRefused

__all__ = ["events_url", "format_event", "tail"]

#: reconnect delays: the first retry is quick (a restart), then it backs off
FIRST_RETRY = 0.25
MAX_RETRY = 5.0


def events_url(base: str) -> str:
    """``http://h:p`` (or ``ws://…``, with or without ``/v1/events``) → ``ws://h:p/v1/events``."""
    parts = urlsplit(base if "://" in base else f"http://{base}")
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme)
    if scheme is None:
        raise ValueError(f"{base}: expected an http://, https://, ws:// or wss:// URL")
    path = parts.path.rstrip("/")
    if not path.endswith("/v1/events"):
        path += "/v1/events"
    return urlunsplit((scheme, parts.netloc, path, parts.query, ""))


def _short(request_id: Any) -> str:
    text = str(request_id or "-")
    return text[:12] if text.startswith("req_") else text


def _num(value: Any, unit: str = "", spec: str = "g") -> str:
    return "-" if value is None else f"{value:{spec}}{unit}"


def _clock(event: dict[str, Any]) -> str:
    return time.strftime("%H:%M:%S", time.localtime(event.get("time", 0)))


def _on(event: dict[str, Any]) -> str:
    """`` on HOST`` when the request names its Ollama host."""
    return f" on {event['host']}" if event.get("host") else ""


def _hosts(hosts: list[dict[str, Any]]) -> str:
    """Each host: ``URL state in-flight/limit [loaded models]``."""
    return "; ".join(
        f"{h.get('url')} {h.get('state')} {h.get('in_flight', 0)} in flight"
        + (f" [{', '.join(h.get('models_loaded') or [])}]" if h.get("models_loaded") else "")
        for h in hosts
    )


def format_event(event: dict[str, Any]) -> str:
    """One readable line for ``event``; an unknown type is shown with its fields."""
    kind = event.get("type", "?")
    rid = _short(event.get("request_id"))
    head = f"{_clock(event)} {rid:<12} {kind:<11}"
    if kind == "hello":
        requests = event.get("requests") or []
        running = sum(1 for r in requests if r.get("status") == "running")
        hosts = event.get("hosts") or []
        return (f"{_clock(event)} connected to claude-code-ollama-proxy {event.get('proxy_version', '?')}:"
                f" {running} running, {len(requests) - running} recent"
                + (f"; hosts: {_hosts(hosts)}" if len(hosts) > 1 else ""))
    if kind == "hosts":
        return f"{_clock(event)} {'':<12} {kind:<11} {_hosts(event.get('hosts') or [])}"
    if kind == "started":
        return (f"{head} {event.get('model')} → {event.get('ollama_model')}"
                f"  {event.get('messages')} msgs, {event.get('tools')} tools,"
                f" ~{event.get('input_tokens')} tokens in, num_ctx {event.get('num_ctx')}"
                f"{'' if event.get('stream') else ', no stream'}"
                f"{_on(event)}")
    if kind == "first_token":
        return f"{head} after {_num(event.get('ttft_ms'), ' ms', '.0f')}"
    if kind == "progress":
        return (f"{head} {event.get('output_tokens')} tokens out,"
                f" {_num(event.get('tokens_per_second'), ' tok/s', '.1f')}")
    if kind == "repair":
        return f"{head} {event.get('tool')}: {'; '.join(event.get('changes') or ())}"
    if kind == "cancel":
        return f"{head} client left during {event.get('phase')} after {event.get('output_tokens')} tokens out"
    if kind == "error":
        return f"{head} {event.get('status')} {event.get('error_type')}: {event.get('message')}"
    if kind == "finished":
        fill = event.get("context_fill")
        verdict = "cancelled" if event.get("cancelled") else (event.get("error_type") or event.get("stop_reason") or "-")
        return (f"{head} {event.get('status')} {verdict} in {_num(event.get('duration_ms'), ' ms', '.0f')},"
                f" ttft {_num(event.get('ttft_ms'), ' ms', '.0f')},"
                f" {_num(event.get('input_tokens'))} in / {_num(event.get('output_tokens'))} out,"
                f" {_num(event.get('tokens_per_second'), ' tok/s', '.1f')},"
                f" ctx {_num(None if fill is None else fill * 100, '%', '.0f')},"
                f" {event.get('repairs', 0)} repairs{_on(event)}")
    if kind == "dropped":
        return f"{_clock(event)} {'':<12} {kind:<11} this viewer fell behind: {event.get('count')} events lost"
    extra = {k: v for k, v in event.items() if k not in ("type", "seq", "time", "request_id")}
    return f"{head} {json.dumps(extra, ensure_ascii=False)}"


async def tail(
    url: str,
    *,
    api_key: str | None = None,
    as_json: bool = False,
    out: TextIO | None = None,
    err: TextIO | None = None,
    max_events: int | None = None,
) -> int:
    """Print the feed at ``url`` (see :func:`events_url`) until interrupted. Returns the
    number of events printed once ``max_events`` were; raises TailRefused on a 401/403/404."""
    out = out or sys.stdout
    err = err or sys.stderr
    target = events_url(url)
    headers = [(b"x-api-key", api_key.encode())] if api_key else []
    printed = 0
    delay = FIRST_RETRY
    announced = False  # say "waiting" once per outage, not once per try
    while True:
        try:
            async with open_websocket_url(target, extra_headers=headers, connect_timeout=5) as ws:
                delay = FIRST_RETRY
                if announced:
                    print(f"reconnected to {target}", file=err, flush=True)
                announced = False
                while True:
                    event = json.loads(await ws.get_message())
                    print(json.dumps(event, ensure_ascii=False) if as_json else format_event(event), file=out, flush=True)
                    printed += 1
                    if max_events is not None and printed >= max_events:
                        return printed
        except ConnectionRejected as exc:
            if exc.status_code in (401, 403, 404):
                raise TailRefused(_rejection_message(target, exc)) from None
            reason = f"the proxy answered {exc.status_code}"
        except ConnectionClosed as exc:
            close = exc.reason
            detail = "" if close is None else f" ({close.code}{' ' + close.reason if close.reason else ''})"
            reason = f"the proxy closed the feed{detail}"
        except (HandshakeError, OSError, trio.TooSlowError) as exc:
            if _refused(exc):
                reason = "connection refused — is the proxy running? (`make run`)"
            else:
                cause = exc.__cause__ if isinstance(exc, HandshakeError) and exc.__cause__ else exc
                reason = f"cannot connect ({type(cause).__name__}: {cause})" if str(cause) else f"cannot connect ({type(cause).__name__})"
        except ValueError as exc:  # a message that is not JSON: not our proxy
            reason = f"the feed sent something that is not JSON ({exc})"
        if not announced:
            print(f"{reason}; reconnecting to {target} …", file=err, flush=True)
            announced = True
        await trio.sleep(delay)
        delay = min(MAX_RETRY, delay * 2)


def _refused(error: BaseException | None, depth: int = 0) -> bool:
    """True when ``error`` (a HandshakeError, trio's OSError, their causes and exception
    groups) comes down to a refused connection: nothing listens there."""
    if error is None or depth > 8:
        return False
    if isinstance(error, ConnectionRefusedError):
        return True
    if isinstance(error, BaseExceptionGroup) and any(_refused(e, depth + 1) for e in error.exceptions):
        return True
    return _refused(error.__cause__, depth + 1)


def _rejection_message(target: str, exc: ConnectionRejected) -> str:
    try:
        message = json.loads(exc.body or b"{}")["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = f"HTTP {exc.status_code}"
    if exc.status_code == 401:
        return f"{target}: {message} (pass the key with --api-key or PROXY_API_KEY)"
    return f"{target}: {message}"

