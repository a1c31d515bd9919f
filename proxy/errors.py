"""The proxy's exception trees, every class drawn, and the one place upstream failures are mapped.

Every error a client can see is a :class:`ProxyError`. Each subclass fixes the HTTP
status and the Anthropic error type, so the boundary (the ASGI app) renders any of
them the same way: a JSON body before the stream started, an ``event: error`` frame
after it. The other roots never reach a client as themselves: each is caught by the one
layer that knows what it means (`tests/test_errors.py` checks this drawing against the
classes)::

    ProxyError                      (500 api_error)
    ├── RequestError                (400 invalid_request_error)
    │   ├── PromptTooLong           (400 invalid_request_error, "prompt is too long: …")
    │   ├── RequestTooLarge         (413 request_too_large)
    │   ├── RequestTimeout          (408 invalid_request_error)  the body did not arrive in time
    │   └── MethodNotAllowed        (405 invalid_request_error)
    ├── AuthenticationError         (401 authentication_error)
    ├── Forbidden                   (403 permission_error)  a foreign Origin or Host
    ├── NotFound                    (404 not_found_error)
    ├── ShuttingDown                (529 overloaded_error) a request cut by the proxy's shutdown
    ├── PoolExhausted               (529 overloaded_error) the proxy's own Ollama connection limit
    └── UpstreamError               (500 api_error)        Ollama failed us: another status, an error line
        ├── UpstreamUnreachable     (502 api_error)        connect refused / DNS / connect timeout
        ├── UpstreamModelNotFound   (400 invalid_request_error)  Ollama 404
        ├── UpstreamBadRequest      (400 invalid_request_error)  Ollama 400
        ├── UpstreamBusy            (529 overloaded_error) Ollama 503
        ├── UpstreamTimeout         (504 api_error)        first-content or idle timeout
        └── UpstreamProtocolError   (502 api_error)        reset, truncation, garbage
    ConfigError                     a setting's value is of the wrong kind: exit 2, or no start
    ClientDisconnected              the client went away while its request was being read
    MachineError                    an input the content-block machine does not allow: a bug
    LifecycleError                  a request lifecycle transition its table does not allow: a bug
    FeedClosed                      the live feed's broadcast closed: the proxy is shutting down
    TailRefused                     the proxy refused ``tail`` its feed (a key): retrying cannot help
    PidFileTaken                    ``serve --pid-file`` names another live process

An ``{"error": "…"}`` line from Ollama is an :class:`UpstreamError` (500), like the status
Ollama sends for the same failure before it streams (a runner crash, out of memory): Ollama
said what went wrong, and the message is passed on. A 502 means Ollama's answer itself was
broken or missing (:class:`UpstreamProtocolError`, :class:`UpstreamUnreachable`).

Ollama's statuses and transport failures are mapped to these in one place:
:mod:`proxy.ollama.client`.

Retries: Claude Code retries a 5xx or 529 up to ten times with backoff unless the answer
says ``x-should-retry: false``. Each error class says which side retries it
(``should_retry``): only being busy (``UpstreamBusy``, ``PoolExhausted``, with
``retry-after``) and ``ShuttingDown`` are left to the client;
every other answer is final, the proxy having already made the one quick retry that can
help (docs/STREAMING.md, "Who retries").
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ProxyError",
    "RequestError",
    "PromptTooLong",
    "RequestTooLarge",
    "RequestTimeout",
    "MethodNotAllowed",
    "AuthenticationError",
    "Forbidden",
    "NotFound",
    "ShuttingDown",
    "PoolExhausted",
    "UpstreamError",
    "UpstreamUnreachable",
    "UpstreamModelNotFound",
    "UpstreamBadRequest",
    "UpstreamBusy",
    "UpstreamTimeout",
    "UpstreamProtocolError",
    "ConfigError",
    "ClientDisconnected",
    "MachineError",
    "LifecycleError",
    "FeedClosed",
    "TailRefused",
    "PidFileTaken",
    "error_body",
]


class ProxyError(Exception):
    """Base of every client-visible error. ``status`` and ``error_type`` are class-level."""

    status: int = 500
    error_type: str = "api_error"
    #: False: the answer is final, and says so (``x-should-retry: false``) so that the
    #: client does not send the same request again
    should_retry: bool = False

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        #: extra response headers (e.g. ``retry-after``) used when answering before the stream.
        self.headers = dict(headers or {})
        if not self.should_retry:
            self.headers.setdefault("x-should-retry", "false")

    def to_body(self) -> dict[str, Any]:
        return error_body(self.error_type, self.message)


class RequestError(ProxyError):
    status = 400
    error_type = "invalid_request_error"


class PromptTooLong(RequestError):
    """Claude Code compacts its conversation when it sees exactly this message shape."""

    def __init__(self, tokens: int, maximum: int) -> None:
        super().__init__(f"prompt is too long: {tokens} tokens > {maximum} maximum")
        self.tokens = tokens
        self.maximum = maximum


class RequestTooLarge(RequestError):
    status = 413
    error_type = "request_too_large"


class RequestTimeout(RequestError):
    """The request's body did not arrive within the body timeout; the connection is closed."""

    status = 408

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"connection": "close"})


class MethodNotAllowed(RequestError):
    status = 405


class AuthenticationError(ProxyError):
    status = 401
    error_type = "authentication_error"


class Forbidden(ProxyError):
    status = 403
    error_type = "permission_error"


class NotFound(ProxyError):
    status = 404
    error_type = "not_found_error"


class ShuttingDown(ProxyError):
    """The server's graceful shutdown ran out of time for this request: the last thing it
    gets (an HTTP 529, or an ``event: error`` on a stream), so a cut is not a mystery."""

    status = 529
    error_type = "overloaded_error"
    should_retry = True  # the retry reaches the proxy once it is back (or another replica)

    def __init__(self) -> None:
        super().__init__("the proxy is shutting down")


class PoolExhausted(ProxyError):
    """Every connection the proxy may open to Ollama stayed busy for the pool timeout."""

    status = 529
    error_type = "overloaded_error"
    should_retry = True  # busy like UpstreamBusy: the client waits retry-after and tries again


class UpstreamError(ProxyError):
    status = 500
    error_type = "api_error"


class UpstreamUnreachable(UpstreamError):
    status = 502


class UpstreamModelNotFound(UpstreamError):
    """A 400, not a 404: Claude Code replaces the message of any 404 with its own "issue
    with the selected model (claude-…)", which names the Claude model and drops the fix
    (``ollama pull …``); a 400's message is shown as it is."""

    status = 400
    error_type = "invalid_request_error"


class UpstreamBadRequest(UpstreamError):
    status = 400
    error_type = "invalid_request_error"


class UpstreamBusy(UpstreamError):
    """The one failure the client retries (after ``retry-after``): Ollama's queue is full."""

    status = 529
    error_type = "overloaded_error"
    should_retry = True


class UpstreamTimeout(UpstreamError):
    status = 504


class UpstreamProtocolError(UpstreamError):
    status = 502


class ConfigError(Exception):
    """A setting has a value of the wrong kind. The message names where it came from."""


class ClientDisconnected(Exception):
    """The client went away while we were still reading its request."""


class MachineError(Exception):
    """An input the content-block machine (:mod:`proxy.stream.machine`) does not allow in
    its current state."""


class LifecycleError(Exception):
    """A transition the request lifecycle's table (:mod:`proxy.protocol.lifecycle`) does not
    allow: a bug of the proxy's, never the client's."""


class FeedClosed(Exception):
    """The broadcast was closed (the proxy is shutting down)."""


class TailRefused(Exception):
    """The proxy refused the feed (a wrong or missing key): retrying cannot help."""


class PidFileTaken(Exception):
    """The PID file names another live process: `make stop` would stop that one."""


def error_body(error_type: str, message: str) -> dict[str, Any]:
    """The Anthropic error envelope."""
    return {"type": "error", "error": {"type": error_type, "message": message}}
