"""Generated streams through the real Hypercorn server, with clients hanging up at random.

Whatever the moment of the hang-up, the Ollama connection must be closed and no request task
left behind; a client that reads to the end gets a stream the validator accepts.
"""

from __future__ import annotations

from contextlib import aclosing

import httpx
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from fuzz.conftest import SERVER_EXAMPLES, running_proxy
from fuzz.test_stream_fuzz import streams
from fuzz.validator import parse_sse, validate
from tests.fake_ollama import Chunk, Line, Sleep, Stall
from tests.conftest import no_task_left, proxy_tasks

BODY = {"model": "claude-opus-5-5", "max_tokens": 100, "stream": True, "messages": [{"role": "user", "content": "hi"}]}


def script(stream, stall: bool) -> list:
    chunks, last, error_at, truncated = stream
    actions: list = []
    for i, c in enumerate(chunks):
        if error_at == i:
            return actions + [Line({"error": "the model crashed"})]
        actions += [Chunk(content=c.get("content", ""), thinking=c.get("thinking"), tool_calls=c.get("tool_calls")),
                    Sleep(0.001)]
    if stall:
        return actions + [Stall()]  # a model still generating when the client leaves
    if truncated:
        return actions
    return actions + [Chunk(content=last.get("content", ""), tool_calls=last.get("tool_calls"), done=True,
                            done_reason=last["done_reason"], prompt_eval_count=last.get("prompt_eval_count"),
                            eval_count=last.get("eval_count"))]


@settings(max_examples=SERVER_EXAMPLES)
@given(stream=streams, hang_up_after=st.one_of(st.none(), st.integers(0, 3000)), stall=st.booleans())
def test_random_disconnects_leave_nothing_behind(stream, hang_up_after, stall):
    async def scenario() -> None:
        with trio.fail_after(10):
            await exchange()

    async def exchange() -> None:
        actions = script(stream, stall)
        stalls = bool(actions) and isinstance(actions[-1], Stall)
        async with running_proxy(commit_grace=0.01) as (fake, url):
            with proxy_tasks() as tasks:
                fake.script_chat(actions)
                received = b""
                async with httpx.AsyncClient(base_url=url, timeout=10) as client:
                    async with client.stream("POST", "/v1/messages", json=BODY) as response:
                        chunks = response.aiter_raw()
                        async with aclosing(chunks):
                            while hang_up_after is None or len(received) < hang_up_after:
                                # a stalled model never ends: after a quiet moment the client gives up
                                with trio.move_on_after(0.2 if stall else 10) as quiet:
                                    data = await anext(chunks, b"")
                                if quiet.cancelled_caught or not data:
                                    break
                                received += data
                ended_by_client = (hang_up_after is not None and len(received) >= hang_up_after) or stall
                # Nothing is left streaming into the void: the fake's script either ran to its end
                # or saw its connection closed (a stalled script can only end that way).
                await no_task_left(tasks, also=lambda: not fake.active_chats)
                if stalls:
                    assert len(fake.disconnects) == 1
                if received.endswith(b"\n\n"):
                    validate(parse_sse(received), allow_incomplete=ended_by_client)

    trio.run(scenario)
