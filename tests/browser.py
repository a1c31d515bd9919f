"""Headless Chromium for the dashboard tests: a small Chrome DevTools Protocol client over
trio-websocket. No selenium, no playwright, no driver binaries.

Theory of operation
-------------------
:func:`launch_chromium` starts Chromium in a fresh temporary profile with
``--remote-debugging-port=0``, in its own process group, its stderr going to a log file
beside the profile. Chromium prints ``DevTools listening on ws://…`` there once it is ready;
we poll the file for that line (bounded by count and by time), then open one WebSocket to
that browser endpoint.

CDP is JSON over that socket: a command ``{"id", "method", "params", "sessionId"?}`` is
answered by ``{"id", "result"}`` or ``{"id", "error"}``; events (``{"method", "params"}``)
arrive in between. The client is deliberately sequential: :meth:`CDP.command` sends one
command and reads messages until its answer comes, keeping the events it read on the way
per session. Events are therefore collected whenever a command runs — polling a page is
what a test does anyway — and no reader task is needed. A lock keeps two tasks from
interleaving commands.

:meth:`Browser.open_page` creates a page target and attaches to it with ``flatten: true``,
so the page's commands go over the same socket with its ``sessionId``. A :class:`Page`
evaluates JavaScript, polls for a condition, takes screenshots and lists every URL the page
requested (``Network`` events), which is how the tests prove that the dashboard loads
nothing from anywhere else.

On the way out — also when the test fails or is cancelled — ``Browser.close`` is asked
for, then the whole process group is killed, waited for, and the profile removed; every
step is shielded and time-bounded.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import trio
import trio_websocket

__all__ = ["CDPError", "JavaScriptError", "ChromiumNotStarted", "CDP", "Browser", "Page",
           "find_chromium", "launch_chromium", "CHROMIUM_FLAGS"]

#: Headless, sandbox-less (containers), and quiet: nothing of its own on the network.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--remote-debugging-port=0",
    "--remote-debugging-address=127.0.0.1",
)
_LISTENING = re.compile(rb"DevTools listening on (ws://\S+)")
#: a full-page screenshot is one base64 message of a few MB
_MAX_MESSAGE = 64 * 1024 * 1024


class CDPError(Exception):
    """Chromium answered a command with an error."""


class JavaScriptError(CDPError):
    """The evaluated expression threw."""


class ChromiumNotStarted(Exception):
    """Chromium did not announce its DevTools endpoint in time (the message has its log)."""


def find_chromium() -> str | None:
    """``$CHROMIUM`` if set, else the first Chromium or Chrome on ``PATH``; None if none."""
    if os.environ.get("CHROMIUM"):
        return os.environ["CHROMIUM"]
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome"):
        if path := shutil.which(name):
            return path
    return None


class CDP:
    """One DevTools WebSocket, used one command at a time."""

    def __init__(self, websocket: trio_websocket.WebSocketConnection) -> None:
        self._websocket = websocket
        self._next_id = 0
        self._lock = trio.Lock()
        #: session id ("" for the browser) → events read so far, oldest first
        self.events: dict[str, list[dict[str, Any]]] = {}

    async def command(self, method: str, params: dict[str, Any] | None = None, *, session_id: str | None = None) -> dict[str, Any]:
        """Send ``method`` and return its ``result``; raises CDPError for an error answer and
        trio_websocket.ConnectionClosed when Chromium goes away."""
        async with self._lock:
            self._next_id += 1
            message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
            if session_id:
                message["sessionId"] = session_id
            await self._websocket.send_message(json.dumps(message))
            while True:
                answer = json.loads(await self._websocket.get_message())
                if answer.get("id") == message["id"]:
                    if "error" in answer:
                        raise CDPError(f"{method}: {answer['error'].get('message')} ({answer['error']})")
                    return answer.get("result", {})
                if "method" in answer:
                    self.events.setdefault(answer.get("sessionId", ""), []).append(answer)


class Page:
    """A page target, attached with ``flatten: true``."""

    def __init__(self, cdp: CDP, target_id: str, session_id: str) -> None:
        self.cdp = cdp
        self.target_id = target_id
        self.session_id = session_id

    async def command(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return await self.cdp.command(method, params, session_id=self.session_id)

    @property
    def events(self) -> list[dict[str, Any]]:
        return self.cdp.events.setdefault(self.session_id, [])

    async def navigate(self, url: str, *, timeout: float = 10) -> None:
        """Load ``url`` and wait until its document has loaded. Raises CDPError when the
        navigation failed (say, connection refused)."""
        result = await self.command("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise CDPError(f"navigating to {url}: {result['errorText']}")
        await self.wait_for("document.readyState === 'complete'", timeout=timeout)

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression (a promise is awaited), as JSON would carry
        it. Raises JavaScriptError when it throws."""
        result = await self.command(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True}
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = (details.get("exception") or {}).get("description") or details.get("text")
            raise JavaScriptError(f"{expression!r} threw: {text}")
        return result.get("result", {}).get("value")

    async def wait_for(self, expression: str, *, timeout: float = 10, interval: float = 0.05) -> Any:
        """Evaluate ``expression`` until it is truthy and return that value. Raises
        AssertionError (with the last value) after ``timeout`` seconds."""
        last: Any = None
        with trio.move_on_after(timeout):
            for _ in range(int(timeout / interval) + 1):
                last = await self.evaluate(expression)
                if last:
                    return last
                await trio.sleep(interval)
        raise AssertionError(f"after {timeout} s, {expression!r} is still {last!r}")

    async def screenshot(self, *, full_page: bool = False) -> bytes:
        """A PNG of the viewport, or of the whole page."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            metrics = await self.command("Page.getLayoutMetrics")
            size = metrics.get("cssContentSize") or metrics["contentSize"]
            params["clip"] = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
            params["captureBeyondViewport"] = True
        result = await self.command("Page.captureScreenshot", params)
        return base64.b64decode(result["data"])

    def requested_urls(self) -> list[str]:
        """Every URL the page asked for so far: documents, scripts, images, fetches and
        WebSockets (from the Network events read until now)."""
        urls = []
        for event in self.events:
            if event["method"] == "Network.requestWillBeSent":
                urls.append(event["params"]["request"]["url"])
            elif event["method"] == "Network.webSocketCreated":
                urls.append(event["params"]["url"])
        return urls


class Browser:
    """A running Chromium and its DevTools connection."""

    def __init__(self, cdp: CDP) -> None:
        self.cdp = cdp

    async def open_page(
        self, url: str | None = None, *, width: int = 1280, height: int = 800, color_scheme: str | None = None
    ) -> Page:
        """A new page target of ``width`` × ``height`` CSS pixels, with Network events on,
        then loads ``url`` (if given). ``color_scheme`` ("light"/"dark") fixes
        ``prefers-color-scheme``."""
        target = await self.cdp.command("Target.createTarget", {"url": "about:blank"})
        attached = await self.cdp.command("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True})
        page = Page(self.cdp, target["targetId"], attached["sessionId"])
        await page.command("Page.enable")
        await page.command("Network.enable")
        await page.command("Runtime.enable")
        await page.command(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )
        if color_scheme:
            await page.command(
                "Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": color_scheme}]}
            )
        if url is not None:
            await page.navigate(url)
        return page


async def _wait_for_endpoint(process: trio.Process, log_path: Path, *, timeout: float) -> str:
    """Poll Chromium's stderr log for its DevTools URL: at most ``timeout`` seconds."""
    interval = 0.05
    with trio.move_on_after(timeout):
        for _ in range(int(timeout / interval) + 1):
            found = _LISTENING.search(log_path.read_bytes())
            if found:
                return found.group(1).decode()
            if process.poll() is not None:
                break
            await trio.sleep(interval)
    tail = log_path.read_bytes()[-2000:].decode(errors="replace")
    state = f"exited with {process.returncode}" if process.returncode is not None else "still running"
    raise ChromiumNotStarted(f"Chromium ({state}) did not print its DevTools URL within {timeout} s; its log ends:\n{tail}")


async def _stop(process: trio.Process) -> None:
    """Kill Chromium's whole process group (renderers, zygote, …) and reap it."""
    with trio.move_on_after(3, shield=True):
        await process.wait()  # after Browser.close it exits by itself
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if process.returncode is not None:
            break
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        with trio.move_on_after(5, shield=True):
            await process.wait()
    # Helpers (renderers, zygote) may outlive the browser process briefly: kill what is
    # left of the group and wait, bounded, until none of it runs (zombies awaiting their
    # reaper count as gone).
    with trio.move_on_after(2, shield=True):
        for _ in range(40):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            if not _running_in_group(process.pid):
                break
            await trio.sleep(0.05)


def _running_in_group(pgid: int) -> bool:
    """Whether a process of group ``pgid`` still runs (Linux /proc; elsewhere: False)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            # "pid (comm) state ppid pgrp ...": comm may hold spaces, so split after ")"
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
                return True
    return False


@contextlib.asynccontextmanager
async def launch_chromium(executable: str | None = None, *, start_timeout: float = 20) -> AsyncIterator[Browser]:
    """``async with launch_chromium() as browser:`` a headless Chromium in a fresh profile,
    gone (process group and profile) when the block ends, however it ends.

    Raises ChromiumNotStarted when it does not come up within ``start_timeout`` seconds,
    FileNotFoundError when there is no Chromium (see :func:`find_chromium`)."""
    executable = executable or find_chromium()
    if executable is None:
        raise FileNotFoundError("no Chromium found: install chromium or set CHROMIUM=/path/to/chrome")
    workdir = Path(tempfile.mkdtemp(prefix="dashboard-chromium-"))
    log_path = workdir / "chromium.log"
    process: trio.Process | None = None
    try:
        with open(log_path, "wb") as log_file:
            process = await trio.lowlevel.open_process(
                [executable, *CHROMIUM_FLAGS, f"--user-data-dir={workdir / 'profile'}", "about:blank"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log_file, start_new_session=True,
            )
        endpoint = await _wait_for_endpoint(process, log_path, timeout=start_timeout)
        async with trio_websocket.open_websocket_url(
            endpoint, max_message_size=_MAX_MESSAGE, connect_timeout=10, disconnect_timeout=2
        ) as websocket:
            cdp = CDP(websocket)
            try:
                yield Browser(cdp)
            finally:
                with trio.move_on_after(2, shield=True):
                    with contextlib.suppress(Exception):  # it may close the socket before answering
                        await cdp.command("Browser.close")
    finally:
        if process is not None:
            await _stop(process)
        shutil.rmtree(workdir, ignore_errors=True)
