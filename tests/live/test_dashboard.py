"""The dashboard, GET /dashboard, in headless Chromium while real requests run.

Each test loads the page from the real server, runs requests against the fake Ollama
(httpx, so a test can hang up at an exact moment) and asserts what a user sees in the page:
rows with their status and numbers, the counts, the key prompt, the connection state. The
numbers are compared with what the feed itself sent (a test-side viewer of /v1/events):
the page must show the feed, nothing else. Chromium is driven by tests/browser.py.
"""

from __future__ import annotations

import json
import re
import struct
import zlib
from pathlib import Path

import httpx
import pytest
import trio
from trio_websocket import open_websocket_url

from tests.browser import Page, find_chromium, launch_chromium
from tests.fake_ollama import Chunk, Sleep, Stall, Status, text_stream, tool_call
from tests.e2e.test_e2e_sdk import WRITE_TOOL

BODY = {"model": "claude-sonnet-5-5", "max_tokens": 100, "stream": True,
        "messages": [{"role": "user", "content": "hi"}]}
PAGE = Path(__file__).resolve().parents[2] / "proxy" / "live" / "dashboard.html"
COLUMNS = ["id", "model", "status", "ttft", "tps", "in", "out", "context", "repairs", "duration", "started"]

#: Every row as the user reads it: its data attributes and each cell's visible text.
ROWS_JS = """[...document.querySelectorAll('#request-rows tr')].map(tr => ({
    id: tr.dataset.requestId, status: tr.dataset.status, http: tr.dataset.httpStatus || null,
    visible: tr.offsetParent !== null, cells: [...tr.cells].map(td => td.innerText.trim())}))"""


@pytest.fixture
async def browser():
    if find_chromium() is None:
        # A failure, not a skip: CI must never pass without having looked at the page.
        pytest.fail("no Chromium: `make test` installs Debian's chromium, or set CHROMIUM=/path/to/chrome")
    async with launch_chromium() as running:
        yield running


class Viewer:
    """The test's own /v1/events connection: the truth the page is compared with."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.events: list[dict] = []

    async def until(self, predicate, *, timeout: float = 10.0, limit: int = 500) -> dict:
        with trio.fail_after(timeout):
            for _ in range(limit):
                event = json.loads(await self.ws.get_message())
                self.events.append(event)
                if predicate(event):
                    return event
        raise AssertionError(f"no matching event in {limit}: {self.events[-5:]}")


def feed_url(proxy) -> str:
    return proxy.url.replace("http://", "ws://") + "/v1/events"


async def rows(page: Page) -> dict[str, dict]:
    """request id → {"state" (data-status), "http", "visible", and each column's text}."""
    found = {}
    for row in await page.evaluate(ROWS_JS):
        found[row["id"]] = {"state": row["status"], "http": row["http"], "visible": row["visible"],
                            **dict(zip(COLUMNS, row["cells"]))}
    return found


async def wait_for_row(page: Page, request_id: str, status: str, *, timeout: float = 10) -> dict:
    """The row of ``request_id`` once it shows ``status`` (data-status)."""
    await page.wait_for(
        f"document.querySelector('tr[data-request-id=\"{request_id}\"][data-status=\"{status}\"]') !== null",
        timeout=timeout,
    )
    return (await rows(page))[request_id]


async def counts(page: Page) -> dict[str, int]:
    names = ["live", "done", "cancelled", "errors", "repairs", "dropped"]
    texts = await page.evaluate(f"{json.dumps(names)}.map(n => document.getElementById('count-' + n).innerText)")
    return {name: number(text) for name, text in zip(names, texts)}


async def open_dashboard(browser, proxy, fragment: str = "") -> Page:
    page = await browser.open_page(proxy.url + "/dashboard" + fragment)
    await page.wait_for("document.getElementById('connection').dataset.state === 'live'")
    return page


async def page_after_one_answer(browser, proxy, fake_ollama) -> Page:
    """The dashboard, open and live, once it shows one answered request."""
    fake_ollama.script_chat(text_stream("ok"))
    page = await open_dashboard(browser, proxy)
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.post(proxy.url + "/v1/messages", json=BODY)
    await wait_for_row(page, response.headers["request-id"], "ok")
    return page


def number(text: str) -> int:
    return int(re.sub(r"\D", "", text))


def shows_duration(text: str) -> bool:
    return re.fullmatch(r"\d[\d,]* ms|\d+\.\d+ s|\d+ min \d\d s", text) is not None


# -- requests as they run ------------------------------------------------------------


async def test_a_streaming_request_shows_running_then_finished_with_its_numbers(fake_ollama, proxy, browser):
    # About 2.4 s of output, so the page sees it running and gets progress events.
    fake_ollama.script_chat(
        [Status(200)]
        + [a for i in range(8) for a in (Chunk(content=f"word{i} "), Sleep(0.3))]
        + [Chunk(done=True, done_reason="stop", prompt_eval_count=1234, eval_count=40)]
    )
    request_id: list[str] = []
    headed = trio.Event()

    async def stream_request() -> None:
        async with httpx.AsyncClient(timeout=20) as client:
            async with client.stream("POST", proxy.url + "/v1/messages", json=BODY) as response:
                request_id.append(response.headers["request-id"])
                headed.set()
                await response.aread()

    with trio.fail_after(30):
        page = await open_dashboard(browser, proxy)
        assert await page.evaluate("document.getElementById('empty').hidden") is False  # "No requests yet"
        async with open_websocket_url(feed_url(proxy)) as ws:
            viewer = Viewer(ws)
            await viewer.until(lambda e: e["type"] == "hello")
            async with trio.open_nursery() as nursery:
                nursery.start_soon(stream_request)
                await headed.wait()
                running = await wait_for_row(page, request_id[0], "running")
                assert running["visible"] and running["status"].startswith("running")
                assert running["model"].split() == ["claude-sonnet-5-5", "→", "qwen3:8b"]
                assert (await rows(page))[request_id[0]]["id"] in request_id[0]
                assert (await counts(page))["live"] == 1
                # while it streams, progress reaches the page: tokens out and tokens/s
                await page.wait_for(
                    f"(() => {{ const tr = document.querySelector('tr[data-request-id=\"{request_id[0]}\"]');"
                    " return tr.dataset.status === 'running' && tr.cells[6].innerText.trim() !== '—'; })()"
                )
            finished = await viewer.until(lambda e: e["type"] == "finished")
        done = await wait_for_row(page, request_id[0], "ok")

    assert done["state"] == "ok" and done["http"] == "200" and done["status"] == "200 · end_turn"
    cells = (await rows(page))[request_id[0]]
    assert cells["in"] == "1,234" and cells["out"] == "40"  # Ollama's counts, as the feed sent them
    assert finished["input_tokens"] == 1234 and finished["output_tokens"] == 40
    assert shows_duration(cells["ttft"]) and shows_duration(cells["duration"])
    assert float(cells["tps"]) == pytest.approx(finished["tokens_per_second"], abs=0.05)
    num_ctx = finished["num_ctx"]
    assert cells["context"] == f"1,234 / {num_ctx:,} · {round(1234 / num_ctx * 100)} %"
    assert await counts(page) == {"live": 0, "done": 1, "cancelled": 0, "errors": 0, "repairs": 0, "dropped": 0}
    # the charts plotted this one request
    assert await page.evaluate("document.getElementById('chart-tps-figure').dataset.points") == "1"
    assert await page.evaluate("document.getElementById('chart-ttft-figure').dataset.points") == "1"
    assert "latest" in await page.evaluate("document.getElementById('chart-tps-summary').innerText")


async def test_a_client_hang_up_is_shown_cancelled(fake_ollama, proxy, browser):
    fake_ollama.script_chat([Chunk(content="one "), Chunk(content="two "), Stall()])
    with trio.fail_after(20):
        page = await open_dashboard(browser, proxy)
        async with httpx.AsyncClient(timeout=10) as client:
            async with client.stream("POST", proxy.url + "/v1/messages", json=BODY) as response:
                request_id = response.headers["request-id"]
                await wait_for_row(page, request_id, "running")
                async for data in response.aiter_raw():
                    if b"two" in data:
                        break
            # leaving the block hangs up: Esc in Claude Code
        row = await wait_for_row(page, request_id, "cancelled")
        await fake_ollama.wait_disconnected(1)
    assert row["status"] == "cancelled · streaming"
    assert number(row["out"]) >= 1
    assert (await counts(page))["cancelled"] == 1 and (await counts(page))["done"] == 0


async def test_a_repaired_tool_call_counts_a_repair(fake_ollama, proxy, browser):
    # "path" for the Write tool's "file_path": repaired by the proxy
    fake_ollama.script_chat(text_stream("", tool_calls=[tool_call("Write", {"path": "/tmp/a.py", "content": "x"})]))
    with trio.fail_after(20):
        page = await open_dashboard(browser, proxy)
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.post(proxy.url + "/v1/messages", json={**BODY, "tools": [WRITE_TOOL]})
        assert response.status_code == 200
        row = await wait_for_row(page, response.headers["request-id"], "ok")
        await page.wait_for("document.getElementById('count-repairs').innerText === '1'")
    assert row["repairs"] == "1"
    title = await page.evaluate(
        f"document.querySelector('tr[data-request-id=\"{response.headers['request-id']}\"] td.repairs').title"
    )
    assert title.startswith("Write: ") and "file_path" in title  # what was repaired, on hover
    assert row["status"] == "200 · tool_use"


async def test_recent_requests_and_errors_come_from_the_snapshot(fake_ollama, proxy, browser):
    # Three requests before the page is opened: a success, an Ollama error, a refused body.
    fake_ollama.script_chat(text_stream("fine", prompt_eval_count=77, eval_count=3))
    fake_ollama.script_chat([Status(404, body={"error": "model 'qwen3:8b' not found"})])
    with trio.fail_after(20):
        async with httpx.AsyncClient(timeout=10) as client:
            ok = await client.post(proxy.url + "/v1/messages", json={**BODY, "stream": False})
            missing = await client.post(proxy.url + "/v1/messages", json=BODY)
            refused = await client.post(proxy.url + "/v1/messages", json={"model": "claude-x", "messages": []})
        assert (ok.status_code, missing.status_code, refused.status_code) == (200, 400, 400)
        page = await open_dashboard(browser, proxy)
        await page.wait_for("document.querySelectorAll('#request-rows tr').length === 3")
        shown = await rows(page)
    ids = [ok.headers["request-id"], missing.headers["request-id"], refused.headers["request-id"]]
    assert list(shown) == ids[::-1]  # newest first
    assert shown[ids[0]]["state"] == "ok" and shown[ids[0]]["in"] == "77" and shown[ids[0]]["out"] == "3"
    assert shown[ids[1]]["state"] == "error" and shown[ids[1]]["http"] == "400"
    assert shown[ids[2]]["state"] == "error" and shown[ids[2]]["model"] == "claude-x"
    assert [shown[i]["status"] for i in ids] == ["200 · end_turn", "invalid_request_error · 400", "invalid_request_error · 400"]
    assert await counts(page) == {"live": 0, "done": 1, "cancelled": 0, "errors": 2, "repairs": 0, "dropped": 0}


# -- access ----------------------------------------------------------------------------


async def test_with_an_api_key_the_page_asks_for_it_and_then_shows_requests(fake_ollama, start_proxy, browser):
    proxy = await start_proxy(api_key="sekrit")
    fake_ollama.script_chat(text_stream("ok"))
    with trio.fail_after(30):
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.post(proxy.url + "/v1/messages", json=BODY, headers={"x-api-key": "sekrit"})
        request_id = response.headers["request-id"]

        page = await browser.open_page(proxy.url + "/dashboard")
        await page.wait_for("document.getElementById('connection').dataset.state === 'needs-key'")
        assert await page.evaluate("document.getElementById('connection-text').innerText") == "the proxy wants an API key"
        assert await page.evaluate("document.getElementById('key-form').offsetParent !== null")  # the input shows
        assert await page.evaluate(ROWS_JS) == []  # nothing without the key
        # The user types the key and presses Connect.
        await page.evaluate(
            "document.getElementById('key-input').value = 'sekrit';"
            " document.getElementById('key-form').requestSubmit()"
        )
        await page.wait_for("document.getElementById('connection').dataset.state === 'live'")
        assert await page.evaluate("location.hash") == "#key=sekrit"
        assert await page.evaluate("document.getElementById('key-form').offsetParent") is None
        await wait_for_row(page, request_id, "ok")

        # A wrong key in the address: asked again, and told this one was refused.
        wrong = await browser.open_page(proxy.url + "/dashboard#key=wrong")
        await wrong.wait_for("document.getElementById('connection').dataset.state === 'needs-key'")
        assert "refused this API key" in await wrong.evaluate("document.getElementById('key-label').innerText")

        # The key in the address from the start: straight to the requests.
        keyed = await open_dashboard(browser, proxy, "#key=sekrit")
        await wait_for_row(keyed, request_id, "ok")


async def test_the_page_loads_nothing_from_anywhere_else(fake_ollama, proxy, browser):
    with trio.fail_after(20):
        page = await page_after_one_answer(browser, proxy, fake_ollama)
        await trio.sleep(0.3)  # a late font or image request would show up by now
        await page.evaluate("1")  # read the Network events that came meanwhile
        resources = await page.evaluate("performance.getEntriesByType('resource').map(e => e.name)")
    requested = page.requested_urls() + resources
    origin, ws_origin = proxy.url, proxy.url.replace("http://", "ws://")
    assert origin + "/dashboard" in requested and ws_origin + "/v1/events" in requested  # the check saw them
    elsewhere = [u for u in requested if not (u.startswith((origin + "/", ws_origin + "/")) or u.startswith("data:"))]
    assert elsewhere == []
    # and the file itself names no other host: no src/href/url()/@import but our own
    html = PAGE.read_text()
    references = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)["']""", html) + re.findall(r"url\(([^)]*)\)", html)
    assert all(ref.startswith("data:") for ref in references), references
    assert "@import" not in html and not re.search(r"\b(?:https?|wss?|ftp)://", html)


async def test_a_stopped_proxy_shows_disconnected_and_reconnecting(fake_ollama, start_proxy, browser):
    stop = trio.Event()
    proxy = await start_proxy(shutdown_trigger=stop.wait, graceful_timeout=10)
    with trio.fail_after(20):
        page = await open_dashboard(browser, proxy)
        stop.set()
        await page.wait_for("document.getElementById('connection').dataset.state === 'disconnected'")
        text = await page.evaluate("document.getElementById('connection-text').innerText")
    assert text.startswith("disconnected — reconnecting")


# -- the screenshot ------------------------------------------------------------------


def png_size_and_pixels(data: bytes) -> tuple[int, int, bytes]:
    """Width, height and the raw (filtered) scanlines of a PNG; asserts every chunk's CRC."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", data[:8]
    offset, chunks = 8, []
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind, body = data[offset + 4 : offset + 8], data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])
        assert zlib.crc32(kind + body) == crc, kind
        chunks.append((kind, body))
        offset += 12 + length
    assert chunks[0][0] == b"IHDR" and chunks[-1][0] == b"IEND"
    width, height = struct.unpack(">II", chunks[0][1][:8])
    return width, height, zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))


async def test_a_screenshot_is_a_png_of_the_page(fake_ollama, proxy, browser):
    with trio.fail_after(20):
        page = await page_after_one_answer(browser, proxy, fake_ollama)
        data = await page.screenshot()
    width, height, pixels = png_size_and_pixels(data)
    assert (width, height) == (1280, 800)  # the page's viewport
    assert len(set(pixels)) > 16  # not a blank image


# -- trouble in plain sight, and charts that read well --------------------------------------


async def test_an_unreachable_ollama_is_said_above_everything(start_proxy, browser):
    with trio.socket.socket() as probe:  # a port where nothing listens
        await probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    proxy = await start_proxy(ollama_url=dead)
    with trio.fail_after(30):
        page = await open_dashboard(browser, proxy)
        await page.wait_for("document.getElementById('ollama-status').dataset.reachable === 'false'")
        shown = await page.evaluate(
            "(() => { const el = document.getElementById('ollama-status'); const box = el.getBoundingClientRect();"
            " return {visible: el.offsetParent !== null, text: el.innerText, top: box.top, height: box.height,"
            " role: el.getAttribute('role'), charts: document.querySelector('.charts').getBoundingClientRect().top}; })()"
        )
    assert shown["visible"] and shown["height"] > 10 and shown["role"] == "alert"
    assert shown["top"] < shown["charts"]  # above the charts and the table, not in a tooltip
    assert shown["text"] == (
        f"Ollama unreachable. Ollama at {dead} (from --ollama-url) does not answer: every request fails"
        " until it does. Start it with `ollama serve`, or point the proxy at it with --ollama-url."
    )


async def test_a_reachable_ollama_shows_no_warning(fake_ollama, proxy, browser):
    with trio.fail_after(20):
        page = await page_after_one_answer(browser, proxy, fake_ollama)
        await page.wait_for("document.getElementById('ollama-status').dataset.reachable === 'true'")
        assert await page.evaluate("document.getElementById('ollama-status').offsetParent") is None


def chart(name: str, field: str) -> str:
    return f"JSON.parse(document.getElementById('chart-{name}').dataset.{field} || 'null')"


async def test_empty_charts_have_a_readable_scale(proxy, browser):
    with trio.fail_after(20):
        page = await open_dashboard(browser, proxy)
        await page.wait_for("document.getElementById('chart-ttft').dataset.yLabels !== undefined")
        ttft, tps = await page.evaluate(f"[{chart('ttft', 'yLabels')}, {chart('tps', 'yLabels')}]")
    assert ttft == ["0 ms", "1 s", "2 s"]
    assert tps == ["0", "25", "50"]


async def test_requests_close_together_stay_apart_and_labels_read_well(fake_ollama, proxy, browser):
    # Four answers within a fraction of a second, at made-up rates Ollama reports.
    for evals in (40, 41, 80, 3):
        fake_ollama.script_chat(text_stream("ok", eval_count=evals))
    with trio.fail_after(30):
        page = await open_dashboard(browser, proxy)
        async with httpx.AsyncClient(timeout=10) as client:
            for _ in range(4):
                assert (await client.post(proxy.url + "/v1/messages", json=BODY)).status_code == 200
        await page.wait_for("document.getElementById('chart-tps-figure').dataset.points === '4'")
        await page.wait_for("document.getElementById('chart-ttft-figure').dataset.points === '4'")
        tps_labels, ttft_labels, xs, x_labels = await page.evaluate(
            f"[{chart('tps', 'yLabels')}, {chart('ttft', 'yLabels')}, {chart('tps', 'xs')}, {chart('tps', 'xLabels')}]"
        )
        width = await page.evaluate("document.getElementById('chart-tps').clientWidth")
    assert len(set(tps_labels)) == 3 and len(set(ttft_labels)) == 3  # three distinct ticks
    assert not any(label.endswith(".0") for label in tps_labels + ttft_labels)
    assert tps_labels[0] == "0" and ttft_labels[0] == "0 ms"
    assert sorted(xs) == xs and min(b - a for a, b in zip(xs, xs[1:])) >= width / 8  # apart, in order
    assert len(x_labels) == len(set(x_labels)) >= 1  # one time, not the same time twice
