"""The fake Ollama itself: other tests trust it, so it must speak Ollama's wire format and
misbehave exactly as scripted. Self-contained (its own fixture): it does not need the proxy."""

from __future__ import annotations

import datetime
import functools
import json
import time

import h11
import httpx
import pytest
import trio

from tests.fake_ollama import (
    Chunk, Close, FakeOllama, Line, Model, Raw, Reset, Sleep, Stall, Status, text_stream, tool_call,
)

MODELS = [
    Model("qwen3:8b", capabilities=("completion", "tools", "thinking"), context_length=40960),
    Model("gemma3:4b", capabilities=("completion", "vision"), context_length=131072),
]
CHAT = {"model": "qwen3:8b", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
async def fake(nursery: trio.Nursery) -> FakeOllama:
    fake = FakeOllama(models=MODELS, version="0.12.6")
    await nursery.start(fake.serve)
    return fake


def ndjson(body: bytes) -> list[dict]:
    return [json.loads(line) for line in body.splitlines()]


async def open_raw(fake: FakeOllama, body: dict = CHAT) -> trio.SocketStream:
    """A bare connection that has sent one ``POST /api/chat``: the test decides when it hangs up."""
    stream = await trio.open_tcp_stream("127.0.0.1", fake.port)
    await stream.send_all(chat_request_bytes(fake, body))
    return stream


def chat_request_bytes(fake: FakeOllama, body: dict = CHAT) -> bytes:
    payload = json.dumps(body).encode()
    return (
        f"POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1:{fake.port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    ).encode() + payload


async def read_responses(stream: trio.SocketStream, count: int) -> list[tuple[int, bytes]]:
    """Parse ``count`` responses off a raw connection with a client-side h11."""
    client = h11.Connection(h11.CLIENT)
    responses: list[tuple[int, bytes]] = []
    for _ in range(count):
        # The requests went out by hand; replay one into the machine so it expects its answer.
        client.send(h11.Request(method="POST", target="/api/chat", headers=[("host", "x"), ("content-length", "0")]))
        client.send(h11.EndOfMessage())
        status, parts = 0, []
        while True:
            event = client.next_event()
            if event is h11.NEED_DATA:
                client.receive_data(await stream.receive_some(65536))
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                parts.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                break
        responses.append((status, b"".join(parts)))
        client.start_next_cycle()
    return responses


# -- the happy path: Ollama's wire format ------------------------------------------------------


async def test_a_stream_is_ollama_ndjson_one_http_chunk_per_line(fake):
    fake.script_chat(text_stream("Hello there", thinking="hm, ok", prompt_eval_count=7, eval_count=3))
    with trio.fail_after(10):
        async with httpx.AsyncClient(base_url=fake.url) as client:
            async with client.stream("POST", "/api/chat", json=CHAT) as response:
                raw = [piece async for piece in response.aiter_raw()]
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-ndjson"
    assert response.headers["transfer-encoding"] == "chunked"
    lines = ndjson(b"".join(raw))
    assert "".join(line["message"].get("thinking", "") for line in lines) == "hm, ok"
    assert "".join(line["message"]["content"] for line in lines) == "Hello there"
    for line in lines:
        assert line["model"] == "qwen3:8b" and line["message"]["role"] == "assistant"
        assert datetime.datetime.fromisoformat(line["created_at"]).tzinfo is not None
    assert all(line == {k: line[k] for k in ("model", "created_at", "message", "done")} for line in lines[:-1])
    final = lines[-1]
    assert list(final)[:5] == ["model", "created_at", "message", "done_reason", "done"]
    assert final["done"] is True and final["done_reason"] == "stop"
    assert (final["prompt_eval_count"], final["eval_count"]) == (7, 3)
    assert all(isinstance(final[k], int) for k in ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration"))
    assert fake.chat_requests[-1].body == CHAT
    assert fake.chat_requests[-1].headers["content-type"] == "application/json"


async def test_chunk_fields_given_as_none_are_left_out_and_extra_fields_added(fake):
    call = tool_call("Write", {"file_path": "/tmp/a"}, id=None, index=None)
    fake.script_chat([
        Chunk(content=None, thinking="t"),
        Chunk(tool_calls=[call]),
        Chunk(done=True, done_reason=None, total_duration=None, prompt_eval_count=None, eval_count=2, remote_host="x"),
    ])
    with trio.fail_after(10):
        async with httpx.AsyncClient(base_url=fake.url) as client:
            response = await client.post("/api/chat", json=CHAT)
    first, second, final = ndjson(response.content)
    assert first["message"] == {"role": "assistant", "thinking": "t"}
    assert second["message"]["tool_calls"] == [{"function": {"name": "Write", "arguments": {"file_path": "/tmp/a"}}}]
    assert "done_reason" not in final and "total_duration" not in final and "prompt_eval_count" not in final
    assert final["eval_count"] == 2 and final["remote_host"] == "x" and final["done"] is True


async def test_the_default_script_says_hello_and_ends_the_body(fake):
    with trio.fail_after(10):
        async with httpx.AsyncClient(base_url=fake.url) as client:
            response = await client.post("/api/chat", json=CHAT)
    lines = ndjson(response.content)
    assert "".join(line["message"]["content"] for line in lines) == "Hello"
    assert lines[-1]["done"] is True


async def test_text_stream_puts_tool_calls_in_the_final_chunk():
    call = tool_call("Read", {"file_path": "/a"})
    actions = text_stream("abcdef", tool_calls=[call], pieces=2, done_reason="stop")
    assert [a.content for a in actions[:-1]] == ["abc", "def"]
    assert actions[-1].done and actions[-1].tool_calls == [call]
    assert call == {"id": "call_0", "function": {"index": 0, "name": "Read", "arguments": {"file_path": "/a"}}}


# -- errors before output ---------------------------------------------------------------------------


async def test_an_error_status_sends_its_json_body_and_ends(fake):
    fake.script_chat([Status(503, body={"error": "server busy, please try again.  maximum pending requests exceeded"})])
    fake.script_chat([Status(500, headers={"x-trace": "1"}, body="plain words")])
    with trio.fail_after(10):
        async with httpx.AsyncClient(base_url=fake.url) as client:
            busy = await client.post("/api/chat", json=CHAT)
            broken = await client.post("/api/chat", json=CHAT)
    assert busy.status_code == 503
    assert busy.headers["content-type"].startswith("application/json")
    assert busy.json() == {"error": "server busy, please try again.  maximum pending requests exceeded"}
    assert broken.status_code == 500 and broken.text == "plain words" and broken.headers["x-trace"] == "1"


async def test_ollamas_own_checks_answer_when_no_script_was_queued(fake):
    bad_arguments = {**CHAT, "messages": [{"role": "assistant", "content": "", "tool_calls": [
        {"function": {"name": "Write", "arguments": '{"a": 1}'}}]}]}
    with trio.fail_after(10):
        async with httpx.AsyncClient(base_url=fake.url) as client:
            async def chat(**body):
                return await client.post("/api/chat", json=body)

            unknown = await chat(model="nope:1b", messages=[])
            no_tools = await chat(model="gemma3:4b", messages=[], tools=[{"type": "function", "function": {"name": "f"}}])
            no_thinking = await chat(model="gemma3:4b", messages=[], think=True)
            blocks = await chat(model="qwen3:8b", messages=[{"role": "user", "content": [{"type": "text"}]}])
            string_arguments = await chat(**bad_arguments)
            no_model = await chat(messages=[])
            garbage = await client.post("/api/chat", content=b"{not json")
            fake.script_chat(text_stream("scripted"))
            scripted = await chat(model="nope:1b", messages=[])
    assert (unknown.status_code, unknown.json()) == (404, {"error": "model 'nope:1b' not found"})
    assert no_tools.status_code == 400 and no_tools.json()["error"].endswith("gemma3:4b does not support tools")
    assert (no_thinking.status_code, no_thinking.json()) == (400, {"error": '"gemma3:4b" does not support thinking'})
    assert blocks.status_code == 400 and "messages.content of type string" in blocks.json()["error"]
    assert string_arguments.status_code == 400 and "arguments" in string_arguments.json()["error"]
    assert (no_model.status_code, no_model.json()) == (400, {"error": "model is required"})
    assert garbage.status_code == 400
    assert scripted.status_code == 200  # a queued script always wins
    assert len(fake.chat_requests) == 8


async def test_on_chat_answers_from_the_request_after_the_queue(fake):
    fake.on_chat = lambda recorded, index: text_stream(f"#{index} {recorded.body['messages'][-1]['content']}")
    fake.script_chat([Status(404, body={"error": "queued"})])
    with trio.fail_after(10):
        async with httpx.AsyncClient(base_url=fake.url) as client:
            queued = await client.post("/api/chat", json=CHAT)
            dynamic = await client.post("/api/chat", json=CHAT)
    assert queued.status_code == 404
    assert "".join(line["message"]["content"] for line in ndjson(dynamic.content)) == "#1 hi"


def test_a_script_http_cannot_carry_is_refused_at_once():
    fake = FakeOllama()
    for script in ([Chunk("a"), Status(500)], [Status(404, body="x"), Chunk("a")], [Stall(), Chunk("a")],
                   [Reset(), Close()], ["not an action"]):
        with pytest.raises(ValueError):
            fake.script_chat(script)
    assert fake.pending_scripts == 0


# -- misbehaviour on purpose ---------------------------------------------------------------------


async def test_raw_pieces_arrive_byte_exact_even_inside_a_utf8_character(fake):
    line = '{"message":{"content":"é"}}\n'.encode()
    cut = line.index(b"\xc3") + 1
    fake.script_chat([Raw(line[:cut]), Sleep(0.05), Raw(line[cut:] + b"garbage\n"), Line({"error": "boom"})])
    with trio.fail_after(10):
        async with httpx.AsyncClient(base_url=fake.url) as client:
            async with client.stream("POST", "/api/chat", json=CHAT) as response:
                pieces = [piece async for piece in response.aiter_raw()]
    assert pieces[0] == line[:cut]  # the half character came alone: the client waited for the rest
    assert b"".join(pieces) == line + b'garbage\n{"error":"boom"}\n'


async def test_reset_makes_the_client_see_a_read_error(fake):
    fake.script_chat([Chunk(content="partial"), Reset()])
    with trio.fail_after(10):
        async with httpx.AsyncClient(base_url=fake.url) as client:
            with pytest.raises(httpx.ReadError):
                await client.post("/api/chat", json=CHAT)
        await fake.wait_until(lambda: fake.open_connections == 0)
    assert fake.disconnects == []  # our own reset is not the client leaving


async def test_close_truncates_the_chunked_body(fake):
    fake.script_chat([Chunk(content="partial"), Close()])
    fake.script_chat([Close()])
    received = b""
    with trio.fail_after(10):
        async with httpx.AsyncClient(base_url=fake.url) as client:
            async with client.stream("POST", "/api/chat", json=CHAT) as response:
                assert response.status_code == 200
                with pytest.raises(httpx.RemoteProtocolError, match="incomplete chunked read"):
                    async for piece in response.aiter_raw():
                        received += piece
            with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
                await client.post("/api/chat", json=CHAT)
        await fake.wait_until(lambda: fake.open_connections == 0)
    assert ndjson(received)[0]["message"]["content"] == "partial"
    assert fake.disconnects == []


# -- the client hanging up --------------------------------------------------------------------------


async def test_hang_up_before_any_byte_stops_the_script_at_once(fake):
    fake.script_chat([Stall()])
    with trio.fail_after(10):
        stream = await open_raw(fake)
        await fake.wait_until(lambda: fake.active_chats == 1)
        hung_up_at = trio.current_time()
        await stream.aclose()
        disconnect = await fake.wait_disconnected(1)
        await fake.wait_until(lambda: fake.active_chats == 0 and fake.open_connections == 0)
    assert disconnect.request_index == 0
    assert disconnect.during == "stall-before-head" and disconnect.body_bytes == 0
    assert 0 <= disconnect.at - hung_up_at < 0.5


async def test_hang_up_mid_stream_is_seen_while_stalled_or_sleeping(fake):
    fake.script_chat([Chunk(content="first"), Stall()])
    fake.script_chat([Status(200), Sleep(60), Chunk(content="never")])
    with trio.fail_after(10):
        async with httpx.AsyncClient(base_url=fake.url) as client:
            for _ in range(2):
                async with client.stream("POST", "/api/chat", json=CHAT) as response:
                    assert response.status_code == 200
                    await fake.wait_until(lambda: fake.active_chats == 1)
                # leaving the block closes the unfinished connection
        await fake.wait_disconnected(2)
        await fake.wait_until(lambda: fake.active_chats == 0 and fake.open_connections == 0)
    stalled, sleeping = fake.disconnects
    assert (stalled.request_index, stalled.during) == (0, "stall-after-head") and stalled.body_bytes > 0
    assert (sleeping.request_index, sleeping.during, sleeping.body_bytes) == (1, "sleep-after-head", 0)


async def test_cancelling_a_waiting_httpx_request_is_a_hang_up(fake):
    fake.script_chat([Sleep(30), *text_stream("late")])
    with trio.fail_after(10):
        async with httpx.AsyncClient(base_url=fake.url) as client:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(functools.partial(client.post, "/api/chat", json=CHAT))
                await fake.wait_until(lambda: fake.active_chats == 1)
                nursery.cancel_scope.cancel()
        disconnect = await fake.wait_disconnected()
        await fake.wait_until(lambda: fake.active_chats == 0)
    assert disconnect.during == "sleep-before-head"


async def test_a_pipelined_request_is_not_mistaken_for_a_hang_up(fake):
    fake.script_chat([Chunk(content="one"), Sleep(0.2), Chunk(content="two", done=True, done_reason="stop")])
    with trio.fail_after(10):
        stream = await open_raw(fake)
        await fake.wait_until(lambda: fake.active_chats == 1)
        await stream.send_all(chat_request_bytes(fake))  # while the first answer is playing
        (status1, body1), (status2, body2) = await read_responses(stream, 2)
        await stream.aclose()
    assert (status1, [line["message"]["content"] for line in ndjson(body1)]) == (200, ["one", "two"])
    assert status2 == 200 and ndjson(body2)[-1]["done"] is True
    assert fake.disconnects == []
    assert {r.connection for r in fake.chat_requests} == {0}


# -- connections ----------------------------------------------------------------------------------


async def test_keep_alive_serves_several_requests_on_one_connection(fake):
    with trio.fail_after(10):
        async with httpx.AsyncClient(base_url=fake.url) as client:
            first = await client.post("/api/chat", json=CHAT)
            second = await client.post("/api/chat", json=CHAT)
            version = await client.get("/api/version")
            assert fake.open_connections == 1
        await fake.wait_until(lambda: fake.open_connections == 0)
    assert first.status_code == second.status_code == version.status_code == 200
    assert [r.connection for r in fake.requests] == [0, 0, 0]


async def test_concurrent_connections_each_play_their_own_script(fake):
    fake.script_chat([Chunk(content="a"), Stall()])
    fake.script_chat([Chunk(content="b"), Stall()])
    with trio.fail_after(10):
        first, second = await open_raw(fake), await open_raw(fake)
        await fake.wait_until(lambda: fake.active_chats == 2)
        assert fake.open_connections == 2
        await first.aclose()
        await second.aclose()
        await fake.wait_disconnected(2)
        await fake.wait_until(lambda: fake.active_chats == 0 and fake.open_connections == 0)
    assert sorted(d.request_index for d in fake.disconnects) == [0, 1]
    assert len({r.connection for r in fake.chat_requests}) == 2


async def test_a_foreign_host_header_is_forbidden_and_recorded(fake):
    with trio.fail_after(10):
        async with httpx.AsyncClient(base_url=fake.url) as client:
            foreign = await client.post("/api/chat", json=CHAT, headers={"host": "proxy.example:4000"})
            localhost = await client.get("/api/version", headers={"host": f"localhost:{fake.port}"})
            ipv6 = await client.get("/api/version", headers={"host": "[::1]:11434"})
    assert foreign.status_code == 403 and foreign.content == b""
    assert localhost.status_code == ipv6.status_code == 200
    assert fake.requests[0].headers["host"] == "proxy.example:4000" and fake.requests[0].path == "/api/chat"
    assert fake.active_chats == 0 and fake.disconnects == []


# -- the other endpoints ----------------------------------------------------------------------------


async def test_the_other_endpoints_answer_like_ollama(fake):
    with trio.fail_after(10):
        async with httpx.AsyncClient(base_url=fake.url) as client:
            root = await client.get("/")
            head = await client.head("/")
            version = await client.get("/api/version")
            tags = await client.get("/api/tags")
            show = await client.post("/api/show", json={"model": "qwen3:8b"})
            missing = await client.post("/api/show", json={"model": "nope"})
            unknown = await client.post("/api/event_logging/batch", json={})
    assert (root.status_code, root.text) == (200, "Ollama is running")
    assert root.headers["content-type"].startswith("text/plain")
    assert head.status_code == 200 and head.content == b""
    assert version.json() == {"version": "0.12.6"}
    models = tags.json()["models"]
    assert [m["name"] for m in models] == ["qwen3:8b", "gemma3:4b"]
    assert {"name", "model", "modified_at", "size", "digest"} <= set(models[0])
    assert {"format", "family", "parameter_size", "quantization_level"} <= set(models[0]["details"])
    assert models[0]["details"]["parameter_size"] == "8B"
    info = show.json()
    assert info["capabilities"] == ["completion", "tools", "thinking"]
    arch = info["model_info"]["general.architecture"]
    assert info["model_info"][f"{arch}.context_length"] == 40960
    assert {"details", "template", "parameters"} <= set(info)
    assert (missing.status_code, missing.json()) == (404, {"error": "model 'nope' not found"})
    assert (unknown.status_code, unknown.text) == (404, "404 page not found")


async def test_ps_shows_what_chats_loaded_and_a_new_num_ctx_reloads(fake):
    with trio.fail_after(10):
        async with httpx.AsyncClient(base_url=fake.url) as client:
            before = (await client.get("/api/ps")).json()
            for num_ctx in (8192, 8192, 16384):
                await client.post("/api/chat", json={**CHAT, "options": {"num_ctx": num_ctx}})
            after = (await client.get("/api/ps")).json()
    assert before == {"models": []}
    assert [(m["name"], m["context_length"]) for m in after["models"]] == [("qwen3:8b", 16384)]
    assert fake.loads == [("qwen3:8b", 8192), ("qwen3:8b", 16384)]


# -- time --------------------------------------------------------------------------------------------


async def test_sleep_follows_trios_clock(fake, autojump_clock):
    fake.script_chat([Sleep(5), *text_stream("late")])
    started, real_start = trio.current_time(), time.monotonic()
    with trio.fail_after(10):
        async with httpx.AsyncClient(base_url=fake.url, timeout=None) as client:
            response = await client.post("/api/chat", json=CHAT)
    assert trio.current_time() - started >= 5
    assert time.monotonic() - real_start < 2  # the mock clock jumped; nobody waited 5 s
    assert "".join(line["message"]["content"] for line in ndjson(response.content)) == "late"
