"""The live feed's broadcast: publishing never waits; a full buffer drops its oldest events
and says how many; close wakes every reader."""

from __future__ import annotations

import pytest
import trio

from proxy.errors import FeedClosed
from proxy.live.broadcast import Broadcast


def clock() -> float:
    return 1_800_000_000.0


async def test_every_subscriber_gets_every_event_in_order_with_seq_and_time():
    feed = Broadcast(buffer=10, clock=clock)
    a, b = feed.subscribe(), feed.subscribe()
    for i in range(3):
        feed.publish({"type": "progress", "n": i})
    for sub in (a, b):
        batch = await sub.get()
        assert [(e["type"], e["n"], e["seq"]) for e in batch] == [("progress", 0, 1), ("progress", 1, 2), ("progress", 2, 3)]
        assert all(e["time"] == 1_800_000_000.0 for e in batch)


async def test_a_full_buffer_drops_the_oldest_and_reports_the_count_once():
    feed = Broadcast(buffer=3, clock=clock)
    sub = feed.subscribe()
    for i in range(10):
        feed.publish({"type": "progress", "n": i})  # never blocks, nobody reads
    batch = await sub.get()
    assert batch[0]["type"] == "dropped" and batch[0]["count"] == 7 and batch[0]["total"] == 7
    assert [e["n"] for e in batch[1:]] == [7, 8, 9]
    feed.publish({"type": "progress", "n": 10})
    assert [e.get("n") for e in await sub.get()] == [10]  # no second notice
    for i in range(5):
        feed.publish({"type": "progress", "n": 11 + i})
    batch = await sub.get()
    assert (batch[0]["count"], batch[0]["total"]) == (2, 9)


async def test_a_reader_waits_for_the_next_event():
    feed = Broadcast(clock=clock)
    sub = feed.subscribe()
    got: list[dict] = []

    async def read() -> None:
        got.extend(await sub.get())

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(read)
            await trio.sleep(0.05)
            assert got == []
            feed.publish({"type": "started"})
    assert [e["type"] for e in got] == ["started"]


async def test_close_wakes_readers_and_refuses_new_subscribers():
    feed = Broadcast(clock=clock)
    sub = feed.subscribe()
    feed.publish({"type": "started"})
    feed.close()
    assert [e["type"] for e in await sub.get()] == ["started"]  # what was buffered still comes
    with pytest.raises(FeedClosed):
        await sub.get()
    with pytest.raises(FeedClosed):
        feed.subscribe()
    feed.publish({"type": "ignored"})  # publishing after close is harmless


async def test_an_unsubscribed_viewer_gets_nothing_more():
    feed = Broadcast(clock=clock)
    with feed.subscribe() as sub:
        assert feed.subscribers == 1
    assert feed.subscribers == 0
    feed.publish({"type": "started"})
    assert not sub._events


def test_a_buffer_holds_at_least_one_event():
    with pytest.raises(ValueError):
        Broadcast(buffer=0)
