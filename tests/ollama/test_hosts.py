"""Several fake Ollamas behind one real proxy: routing by model, loaded models, session
affinity, a host dying and coming back, failover before the commit, ``event: error``
after it, 503 spill-over, and two proxies agreeing with no shared state."""

from __future__ import annotations

import collections
import json
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest
import trio

from tests.conftest import MODELS
from tests.fake_ollama import Chunk, Close, FakeOllama, Line, Model, Recorded, Reset, Sleep, Status, text_stream

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

QWEN, GEMMA, LLAMA = MODELS
USER = [{"role": "user", "content": "hi"}]


class Box:
    """A fake Ollama that can be stopped (connections refused) and started again at its URL."""

    def __init__(self, name: str, models: list[Model], *, loaded: tuple[str, ...] = ()) -> None:
        self.name = name
        self.fake = FakeOllama(models=models)
        for model in loaded:
            self.fake.loaded[model] = 4096
        self.scope: trio.CancelScope | None = None

    @property
    def url(self) -> str:
        return self.fake.url

    @property
    def chats(self) -> int:
        return len(self.fake.chat_requests)

    async def start(self, nursery: trio.Nursery) -> None:
        self.scope = trio.CancelScope()

        async def run(*, task_status: trio.TaskStatus[None]) -> None:
            with self.scope:
                await self.fake.serve(port=self.fake.port, task_status=task_status)

        await nursery.start(run)

    def stop(self) -> None:
        self.scope.cancel()


async def boxes(nursery: trio.Nursery, *specs: tuple[str, list[Model], tuple[str, ...]]) -> list[Box]:
    result = []
    for name, models, loaded in specs:
        box = Box(name, models, loaded=loaded)
        await box.start(nursery)
        result.append(box)
    return result


_clients: dict[str, anthropic.Anthropic] = {}


def ask(proxy: Any, *, session: str | None = None, model: str = "qwen3:8b", stream: bool = False, text: str = "hi") -> Any:
    """One request through the SDK (run in a thread); the message, or the SDK's error."""
    headers = {"X-Claude-Code-Session-Id": session} if session else {}
    client = _clients.get(proxy.url)
    if client is None:  # one SDK client per proxy: making one costs ~0.1 s
        client = _clients[proxy.url] = proxy.client()
    try:
        if stream:
            with client.messages.stream(
                model=model, max_tokens=32, messages=[{"role": "user", "content": text}], extra_headers=headers
            ) as events:
                for _ in events:
                    pass
                return events.get_final_message()
        return client.messages.create(
            model=model, max_tokens=32, messages=[{"role": "user", "content": text}], extra_headers=headers
        )
    except anthropic.APIError as exc:
        return exc


async def asks(proxy: Any, **kwargs: Any) -> Any:
    return await trio.to_thread.run_sync(lambda: ask(proxy, **kwargs))


def served_by(all_boxes: list[Box], before: dict[str, int]) -> list[str]:
    return [b.name for b in all_boxes if b.chats > before[b.name]]


def counts(all_boxes: list[Box]) -> dict[str, int]:
    return {b.name: b.chats for b in all_boxes}


async def health(proxy: Any) -> dict[str, Any]:
    async with httpx.AsyncClient() as client:
        return (await client.get(proxy.url + "/health")).json()


async def host_state(proxy: Any, url: str) -> str:
    return next(h["state"] for h in (await health(proxy))["hosts"] if h["url"] == url)


async def test_requests_go_only_to_hosts_with_the_model(nursery, start_proxy):
    a, b, c = await boxes(
        nursery, ("a", [QWEN], ("qwen3:8b",)), ("b", [GEMMA], ("gemma3:4b",)), ("c", [QWEN, GEMMA], ("gemma3:4b",))
    )
    proxy = await start_proxy(ollama_url=[a.url, b.url, c.url])
    with trio.fail_after(30):
        for i in range(12):
            before = counts([a, b, c])
            message = await asks(proxy, session=f"s{i}", model="gemma3:4b")
            assert message.content[0].text == "Hello"
            assert served_by([a, b, c], before) in (["b"], ["c"])
        assert a.chats == 0 and b.chats and c.chats  # affinity spreads over the two that have it
        error = await asks(proxy, model="mistral:7b")
    assert isinstance(error, anthropic.BadRequestError)  # a missing model is a 400 (issue 16): Claude Code shows its message
    message = error.body["error"]["message"]
    assert "mistral:7b" in message and a.url in message and c.url in message and "ollama pull" in message


async def test_a_model_pulled_after_start_is_found_at_once(nursery, start_proxy):
    a, b = await boxes(nursery, ("a", [QWEN], ()), ("b", [QWEN], ()))
    proxy = await start_proxy(ollama_url=[a.url, b.url])  # polled at start; next poll in 10 s
    b.fake.models.append(LLAMA)  # `ollama pull llama3.2:3b` on b
    with trio.fail_after(20):
        message = await asks(proxy, model="llama3.2:3b")
    assert message.content[0].text == "Hello" and b.chats == 1 and a.chats == 0


async def test_a_host_with_the_model_loaded_wins_over_one_that_would_load_it(nursery, start_proxy):
    slow, warm = await boxes(nursery, ("slow", [QWEN], ()), ("warm", [QWEN], ("qwen3:8b",)))
    # "slow" would take a long cold load: it must never be asked while "warm" has room
    slow.fake.default_script = [Sleep(30), *text_stream("Hello")]
    proxy = await start_proxy(ollama_url=[slow.url, warm.url])
    with trio.fail_after(30):
        for i in range(20):
            assert (await asks(proxy, session=f"s{i}")).content[0].text == "Hello"
    assert slow.chats == 0 and warm.chats == 20


async def test_a_session_stays_on_one_host_for_50_turns(nursery, start_proxy):
    from proxy.protocol.routing import rendezvous_score

    all_boxes = await boxes(nursery, *((n, [QWEN], ("qwen3:8b",)) for n in "abc"))
    proxy = await start_proxy(ollama_url=[b.url for b in all_boxes])

    def owner(session: str) -> str:  # the documented formula, computed here on its own
        return max(all_boxes, key=lambda b: rendezvous_score(f"session:{session}", b.url)).name

    # four sessions, at least two of them at home on different hosts
    candidates = [f"session-{i}" for i in range(100)]
    sessions = candidates[:3] + [next(c for c in candidates if owner(c) != owner(candidates[0]))]
    homes: dict[str, set[str]] = collections.defaultdict(set)
    with trio.fail_after(60):
        for turn in range(50):
            for session in sessions:
                before = counts(all_boxes)
                await asks(proxy, session=session, text=f"turn {turn}")
                homes[session].update(served_by(all_boxes, before))
    assert {s: h for s, h in homes.items()} == {s: {owner(s)} for s in sessions}


async def test_a_dead_host_moves_only_its_sessions_and_they_come_back(nursery, start_proxy):
    all_boxes = await boxes(nursery, *((n, [QWEN], ("qwen3:8b",)) for n in "abc"))
    proxy = await start_proxy(ollama_url=[b.url for b in all_boxes], host_poll_interval=0.5)
    sessions = [f"s{i}" for i in range(24)]

    async def placement() -> dict[str, str]:
        where = {}
        for session in sessions:
            before = counts(all_boxes)
            message = await asks(proxy, session=session, stream=True)
            assert not isinstance(message, Exception), message  # one clean answer each
            assert message.content[0].text == "Hello"
            (where[session],) = served_by(all_boxes, before)
        return where

    with trio.fail_after(60):
        first = await placement()
        victim = next(b for b in all_boxes if b.name == collections.Counter(first.values()).most_common(1)[0][0])
        victim.stop()
        during = await placement()
        moved = {s for s in sessions if first[s] != during[s]}
        assert moved == {s for s in sessions if first[s] == victim.name}
        assert await host_state(proxy, victim.url) in ("down", "retrying")
        await victim.start(nursery)  # the same URL again: the monitor's probe finds it
        while await host_state(proxy, victim.url) != "up":
            await trio.sleep(0.1)
        assert await placement() == first


async def test_failover_before_the_commit_gives_one_clean_answer(nursery, start_proxy, tmp_path):
    all_boxes = await boxes(nursery, *((n, [QWEN], ("qwen3:8b",)) for n in "ab"))
    log_file = tmp_path / "proxy.log"
    proxy = await start_proxy(
        ollama_url=[b.url for b in all_boxes], commit_grace=0.05, log_file=str(log_file)
    )
    with trio.fail_after(30):
        before = counts(all_boxes)
        await asks(proxy, session="s")
        (home_name,) = served_by(all_boxes, before)
        home = next(b for b in all_boxes if b.name == home_name)
        other = next(b for b in all_boxes if b is not home)
        # reset before any answer; then a 200 whose body ends before its first byte, after
        # the proxy already committed its 200 and message_start (commit_grace 0.05 s)
        for script in ([Reset()], [Status(200), Sleep(0.3), Close()]):
            while await host_state(proxy, home.url) != "up":  # back from the last failure
                await trio.sleep(0.05)
            home.fake.script_chat(script)
            other.fake.script_chat(text_stream("from the other host"))
            message = await asks(proxy, session="s", stream=True)
            assert not isinstance(message, Exception), message
            assert [b.type for b in message.content] == ["text"]
            assert message.content[0].text == "from the other host"
            assert home.fake.pending_scripts == 0  # the home host was tried first
            state = next(h for h in (await health(proxy))["hosts"] if h["url"] == home.url)
            assert state["state"] in ("down", "retrying") and state["last_error"]
    records = [json.loads(line) for line in log_file.read_text().splitlines() if line.strip()]
    ends = [r["Attributes"] for r in records if r.get("EventName") == "proxy.request.end"]
    assert [e.get("proxy.ollama_hosts_tried") for e in ends[-2:]] == [[f"{home.url} api_error", f"{other.url} ok"]] * 2
    assert all(e["proxy.ollama_host"] == other.url and e["http.response.status_code"] == 200 for e in ends[-2:])


async def test_a_failure_after_output_is_an_error_event(nursery, start_proxy):
    all_boxes = await boxes(nursery, *((n, [QWEN], ("qwen3:8b",)) for n in "ab"))
    proxy = await start_proxy(ollama_url=[b.url for b in all_boxes])
    with trio.fail_after(30):
        before = counts(all_boxes)
        await asks(proxy, session="s")
        (home_name,) = served_by(all_boxes, before)
        home = next(b for b in all_boxes if b.name == home_name)
        home.fake.script_chat([Chunk(content="Half an ans"), Reset()])
        before = counts(all_boxes)
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.post(
                proxy.url + "/v1/messages",
                headers={"x-claude-code-session-id": "s"},
                json={"model": "qwen3:8b", "max_tokens": 32, "stream": True, "messages": USER},
            )
    assert response.status_code == 200
    assert "Half an ans" in response.text
    assert response.text.rstrip().split("\n\n")[-1].startswith("event: error")
    assert served_by(all_boxes, before) == [home.name]  # no second host: the answer had begun


async def test_503_spills_to_the_next_host_and_all_busy_is_a_529(nursery, start_proxy):
    all_boxes = await boxes(nursery, *((n, [QWEN], ("qwen3:8b",)) for n in "ab"))
    proxy = await start_proxy(ollama_url=[b.url for b in all_boxes], busy_retries=1)
    busy = [Status(503, body={"error": "server busy, please try again.  maximum pending requests exceeded"})]
    with trio.fail_after(30):
        before = counts(all_boxes)
        await asks(proxy, session="s")
        (home_name,) = served_by(all_boxes, before)
        home = next(b for b in all_boxes if b.name == home_name)
        other = next(b for b in all_boxes if b is not home)
        home.fake.script_chat(busy)
        message = await asks(proxy, session="s", stream=True)
        assert message.content[0].text == "Hello" and other.chats == 1
        home.fake.script_chat(busy)
        other.fake.script_chat(busy)
        error = await asks(proxy, session="s")
    assert isinstance(error, anthropic.APIStatusError) and error.status_code == 529
    assert error.body["error"]["type"] == "overloaded_error"
    state = next(h for h in (await health(proxy))["hosts"] if h["url"] == home.url)
    assert state["state"] == "up"  # busy is not down


async def test_failing_over_is_the_quick_retry_and_the_last_host_gets_crash_retries(nursery, start_proxy):
    """Issue 16's quick crash retry with several hosts: a host that fails before any output
    (an error line after its 200, or a 500) hands the request to the next at once, without
    a retry of its own; only the plan's last host is retried once, then the answer is final
    (x-should-retry: false)."""
    all_boxes = await boxes(nursery, *((n, [QWEN], ("qwen3:8b",)) for n in "ab"))
    proxy = await start_proxy(ollama_url=[b.url for b in all_boxes], commit_grace=0.05)
    crash = [Status(500, body={"error": "llama runner process has terminated: signal: killed"})]
    with trio.fail_after(30):
        before = counts(all_boxes)
        await asks(proxy, session="s")
        (home_name,) = served_by(all_boxes, before)
        home = next(b for b in all_boxes if b.name == home_name)
        other = next(b for b in all_boxes if b is not home)
        # an error line once the 200 is out (the proxy has committed its 200 and
        # message_start): the translator was fed bytes, but no output came, so the next
        # host answers in full
        home.fake.script_chat([Status(200), Sleep(0.2), Line({"error": "out of memory"})])
        other.fake.script_chat(text_stream("from the other host"))
        before = counts(all_boxes)
        message = await asks(proxy, session="s", stream=True)
        assert not isinstance(message, Exception), message
        assert message.content[0].text == "from the other host"
        assert counts(all_boxes) == {home.name: before[home.name] + 1, other.name: before[other.name] + 1}
        # every host crashes: home once (failing over is its retry), the last host twice
        while await host_state(proxy, home.url) != "up":
            await trio.sleep(0.05)
        home.fake.script_chat(crash)
        other.fake.script_chat(crash)
        other.fake.script_chat(crash)
        before = counts(all_boxes)
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.post(
                proxy.url + "/v1/messages",
                headers={"x-claude-code-session-id": "s"},
                json={"model": "qwen3:8b", "max_tokens": 32, "messages": USER},
            )
    assert response.status_code == 500
    assert response.headers["x-should-retry"] == "false"
    assert "llama runner process has terminated" in response.json()["error"]["message"]
    assert counts(all_boxes) == {home.name: before[home.name] + 1, other.name: before[other.name] + 2}
    assert home.fake.pending_scripts == 0 and other.fake.pending_scripts == 0


async def test_a_saturated_host_sends_the_session_to_the_next(nursery, start_proxy):
    all_boxes = await boxes(nursery, *((n, [QWEN], ("qwen3:8b",)) for n in "ab"))
    proxy = await start_proxy(ollama_url=[b.url for b in all_boxes], host_saturation=1)
    with trio.fail_after(30):
        before = counts(all_boxes)
        await asks(proxy, session="s")
        (home_name,) = served_by(all_boxes, before)
        home = next(b for b in all_boxes if b.name == home_name)
        other = next(b for b in all_boxes if b is not home)
        home.fake.script_chat([Sleep(2.0), *text_stream("slow")])
        first_done = trio.Event()

        async def first() -> None:
            await asks(proxy, session="s")
            first_done.set()

        async with trio.open_nursery() as requests:
            requests.start_soon(first)
            await home.fake.wait_until(lambda: home.fake.active_chats == 1)
            message = await asks(proxy, session="s")  # home has 1 in flight: full
            assert not first_done.is_set()
    assert message.content[0].text == "Hello" and other.chats == 1
    assert home.chats == 2  # the session's first turn and the slow one


async def test_the_num_ctx_high_water_mark_is_per_host(nursery, start_proxy):
    """A larger num_ctx reloads the model; one host's large prompt must not make the
    other host reload for its small ones."""
    all_boxes = await boxes(nursery, *((n, [QWEN], ("qwen3:8b",)) for n in "ab"))
    proxy = await start_proxy(ollama_url=[b.url for b in all_boxes])

    def last_num_ctx(box: Box) -> int:
        return box.fake.chat_requests[-1].body["options"]["num_ctx"]

    with trio.fail_after(30):
        homes: dict[str, str] = {}
        for i in range(40):  # a session for each host
            before = counts(all_boxes)
            await asks(proxy, session=f"s{i}")
            homes.setdefault(served_by(all_boxes, before)[0], f"s{i}")
            if len(homes) == 2:
                break
        (big_box, big_session), (small_box, small_session) = (
            (next(b for b in all_boxes if b.name == name), session) for name, session in homes.items()
        )
        small_start = last_num_ctx(small_box)
        assert (await asks(proxy, session=big_session, text="word " * 10000)).content  # ~23k tokens, estimated
        large = last_num_ctx(big_box)
        await asks(proxy, session=big_session)  # small again, same host: the mark holds
        assert last_num_ctx(big_box) == large > small_start
        await asks(proxy, session=small_session)
    assert last_num_ctx(small_box) == small_start < large


async def test_two_proxies_pick_the_same_host_for_each_session(nursery, start_proxy):
    all_boxes = await boxes(nursery, *((n, [QWEN], ("qwen3:8b",)) for n in "abcd"))
    urls = [b.url for b in all_boxes]
    first = await start_proxy(ollama_url=urls)
    second = await start_proxy(ollama_url=list(reversed(urls)))  # order does not matter
    with trio.fail_after(60):
        for i in range(16):
            picks = []
            for proxy in (first, second):
                before = counts(all_boxes)
                await asks(proxy, session=f"session-{i}")
                picks.append(served_by(all_boxes, before))
            assert picks[0] == picks[1]


async def test_health_log_and_live_view_name_the_hosts(nursery, start_proxy, tmp_path):
    from trio_websocket import open_websocket_url

    from tests.live.test_live import Viewer, ws_url  # the live feed's own test client

    a, b = await boxes(nursery, ("a", [QWEN], ("qwen3:8b",)), ("b", [QWEN, GEMMA], ()))
    log_file = tmp_path / "proxy.log"
    proxy = await start_proxy(ollama_url=[a.url, f"{b.url}=2"], log_file=str(log_file), log_level="INFO")
    with trio.fail_after(30):
        report = await health(proxy)
        assert report["status"] == "ok"
        assert [(h["url"], h["weight"], h["state"]) for h in report["hosts"]] == [(a.url, 1.0, "up"), (b.url, 2.0, "up")]
        assert report["hosts"][0]["models_loaded"] == ["qwen3:8b"] and report["hosts"][1]["models_installed"] == 2
        async with open_websocket_url(ws_url(proxy)) as ws:
            viewer = Viewer(ws)
            hello = await viewer.next()
            assert [h["url"] for h in hello["hosts"]] == [a.url, b.url]
            await asks(proxy, model="gemma3:4b")
            finished = await viewer.until(lambda e: e["type"] == "finished")
            assert finished["host"] == b.url
            hosts = await viewer.until(lambda e: e["type"] == "hosts")
            assert "gemma3:4b" in next(h for h in hosts["hosts"] if h["url"] == b.url)["models_loaded"]
        b.stop()
        report = await health(proxy)
        assert report["status"] == "degraded"
        assert [h["reachable"] for h in report["hosts"]] == [True, False]
    records = [json.loads(line) for line in Path(log_file).read_text().splitlines() if line.strip()]
    ends = [r["Attributes"] for r in records if r.get("EventName") == "proxy.request.end"]
    starts = [r["Attributes"] for r in records if r.get("EventName") == "proxy.request.start"]
    assert starts[-1]["proxy.ollama_host"] == b.url and ends[-1]["proxy.ollama_host"] == b.url


async def test_one_url_sends_nothing_but_the_requests(fake_ollama, proxy):
    """One host: no background polls, exactly as before several hosts were possible
    (main's one start-up probe of /api/version, issue 13, then only the requests')."""
    with trio.fail_after(20):
        await asks(proxy)
        await trio.sleep(0.3)
    assert [r.path for r in fake_ollama.requests] == ["/api/version", "/api/show", "/api/chat"]


async def test_a_client_that_leaves_closes_the_one_open_connection(nursery, start_proxy):
    from tests.fake_ollama import Stall

    all_boxes = await boxes(nursery, *((n, [QWEN], ("qwen3:8b",)) for n in "ab"))
    proxy = await start_proxy(ollama_url=[b.url for b in all_boxes])
    for box in all_boxes:
        box.fake.script_chat([Chunk(content="thinking about it"), Stall()])
    with trio.fail_after(20):
        async with httpx.AsyncClient(timeout=10) as client:
            async with client.stream(
                "POST", proxy.url + "/v1/messages",
                json={"model": "qwen3:8b", "max_tokens": 32, "stream": True, "messages": USER},
            ) as response:
                async for chunk in response.aiter_text():
                    if "thinking about it" in chunk:
                        break
        (home,) = [b for b in all_boxes if b.chats]
        await home.fake.wait_disconnected()
        while (await health(proxy))["hosts"][all_boxes.index(home)]["in_flight"]:
            await trio.sleep(0.05)
    assert sum(b.chats for b in all_boxes) == 1  # the other host was never asked
    assert [h["state"] for h in (await health(proxy))["hosts"]] == ["up", "up"]


async def test_the_model_list_is_every_hosts_models(nursery, start_proxy):
    a, b = await boxes(nursery, ("a", [QWEN], ()), ("b", [GEMMA, QWEN], ()))
    proxy = await start_proxy(ollama_url=[a.url, b.url])
    with trio.fail_after(20):
        async with httpx.AsyncClient(timeout=10) as client:
            listed = (await client.get(proxy.url + "/v1/models")).json()
        b.stop()  # a host that does not answer is left out, the others still listed
        async with httpx.AsyncClient(timeout=10) as client:
            partial = (await client.get(proxy.url + "/v1/models")).json()
    assert {"qwen3:8b", "gemma3:4b"} <= {m["id"] for m in listed["data"]}
    assert "gemma3:4b" not in {m["id"] for m in partial["data"]} and "qwen3:8b" in {m["id"] for m in partial["data"]}


# -- operator commands ------------------------------------------------------------------


async def test_doctor_models_and_pull_cover_every_host(nursery, capsys):
    import io

    from proxy.cli import admin as admin_commands
    from proxy.config import load_settings

    a, b, dead = await boxes(nursery, ("a", [QWEN, LLAMA], ()), ("b", [QWEN], ()), ("dead", [QWEN], ()))
    dead.stop()
    settings = load_settings(
        {"host": "127.0.0.1", "port": 0, "ollama_url": [a.url, b.url, dead.url], "model_map": ["haiku=llama3.2:3b"]},
        environ={}, read_config_file=False,
    )
    out = io.StringIO()
    with trio.fail_after(30):
        code = await admin_commands.doctor(settings, as_json=True, out=out, which=lambda name: "/bin/claude")
    checks = {c["check"]: c for c in json.loads(out.getvalue())}
    assert code == 1  # one host is down
    assert checks[f"Ollama at {a.url}"]["verdict"] == "ok" and checks[f"Ollama at {b.url}"]["verdict"] == "ok"
    assert checks[f"Ollama at {dead.url}"]["verdict"] == "fail"
    assert checks["qwen3:8b (default, sonnet, opus)"]["verdict"] == "ok"
    assert checks["qwen3:8b hosts"]["detail"] == f"on {a.url}, {b.url}; not on {dead.url}"
    assert checks["llama3.2:3b hosts"]["detail"] == f"on {a.url}; not on {b.url}, {dead.url}"

    out = io.StringIO()
    with trio.fail_after(30):
        assert await admin_commands.models(settings, as_json=True, out=out) == 0
    rows = {row["name"]: row for row in json.loads(out.getvalue())}
    assert rows["qwen3:8b"]["hosts"] == [a.url, b.url] and rows["llama3.2:3b"]["hosts"] == [a.url]
    assert dead.url in capsys.readouterr().err  # the host that failed is named

    out = io.StringIO()
    with trio.fail_after(30):
        assert await admin_commands.pull(settings, "qwen3:8b", out=out, tty=False) == 1  # the fakes have no /api/pull
    assert out.getvalue().splitlines() == [f"Ollama at {u}:" for u in (a.url, b.url, dead.url)]
    err = capsys.readouterr().err
    assert all(f"pull qwen3:8b on {u} failed" in err for u in (a.url, b.url, dead.url))


# -- the dashboard ----------------------------------------------------------------------

from tests.live.test_dashboard import browser, open_dashboard, rows, wait_for_row  # noqa: E402,F401 - a fixture too

HOSTS_JS = """[...document.querySelectorAll('#host-rows tr')].map(tr => ({
    url: tr.dataset.url, state: tr.dataset.state, cells: [...tr.cells].map(td => td.innerText.trim())}))"""


async def test_the_dashboard_shows_the_hosts_and_each_requests_host(nursery, start_proxy, browser):  # noqa: F811
    a, b = await boxes(nursery, ("a", [QWEN], ("qwen3:8b",)), ("b", [GEMMA], ()))
    proxy = await start_proxy(ollama_url=[a.url, b.url], host_poll_interval=0.5)
    with trio.fail_after(30):
        page = await open_dashboard(browser, proxy)
        # "live" comes before the first render: wait for it rather than look once
        await page.wait_for("document.getElementById('hosts').hidden === false")
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.post(
                proxy.url + "/v1/messages", json={"model": "gemma3:4b", "max_tokens": 8, "messages": USER}
            )
        row = await wait_for_row(page, response.headers["request-id"], "ok")
        assert row["model"].splitlines()[-1] == f"on {b.url}"
        await page.wait_for(
            f"[...document.querySelectorAll('#host-rows tr')].some(tr => tr.dataset.url === {json.dumps(b.url)}"
            " && tr.cells[3].innerText.includes('gemma3:4b'))"
        )
        a.stop()
        await page.wait_for(
            f"[...document.querySelectorAll('#host-rows tr')].some(tr => tr.dataset.url === {json.dumps(a.url)}"
            " && tr.dataset.state !== 'up')",
            timeout=10,
        )
    shown = {h["url"]: h for h in await page.evaluate(HOSTS_JS)}
    assert shown[a.url]["cells"][1].startswith(("down", "retrying"))
    assert shown[b.url]["state"] == "up" and shown[b.url]["cells"][4] == "1"


# -- the real Claude Code ---------------------------------------------------------------


async def test_real_claude_code_sessions_each_keep_to_one_host(nursery, start_proxy, tmp_path):
    """Claude Code's own requests carry its session: every request of a `claude -p` run,
    and of a second run that continues the conversation (`--continue`, another process),
    lands on one host."""
    import subprocess

    from tests.claude_code import claude_code_binary, claude_code_env
    from tests.e2e.test_claude_code import _offers_write

    try:
        claude_bin = claude_code_binary()
    except RuntimeError as exc:  # no npm, or the registry is unreachable
        pytest.skip(str(exc))
    all_boxes = await boxes(nursery, *((n, [QWEN], ("qwen3:8b",)) for n in "abcd"))
    proxy = await start_proxy(ollama_url=[b.url for b in all_boxes])
    work = tmp_path / "project"
    work.mkdir()

    def answer(record: Recorded, index: int):
        body = record.body
        if body["messages"][-1]["role"] == "tool":  # the Write's result came back
            return text_stream("Done.")
        if _offers_write(body):
            name = "second.txt" if "second" in json.dumps(body["messages"][-1]) else "first.txt"
            call = {"function": {"name": "Write", "arguments": {"file_path": str(work / name), "content": "hello\n"}}}
            return text_stream("Writing the file.", tool_calls=[call])
        return text_stream("A title")  # a side request

    for box in all_boxes:
        box.fake.on_chat = answer
    used: dict[str, int] = collections.Counter()
    for prompt, extra in (("write hello to first.txt", []), ("now write hello to second.txt", ["--continue"])):
        before = counts(all_boxes)
        with trio.fail_after(180):
            result = await trio.run_process(
                [str(claude_bin), *extra, "-p", prompt, "--output-format", "json", "--allowedTools", "Write"],
                cwd=work, env=claude_code_env(proxy.url, tmp_path / "home"),
                capture_stdout=True, capture_stderr=True, check=False, stdin=subprocess.DEVNULL,
            )
        assert result.returncode == 0, result.stderr.decode()[-2000:]
        used.update({b.name: b.chats - before[b.name] for b in all_boxes if b.chats > before[b.name]})
    assert (work / "first.txt").exists() and (work / "second.txt").exists()
    assert len(used) == 1 and sum(used.values()) >= 4, used  # two processes, one session, one host
