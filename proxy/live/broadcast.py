"""An in-process broadcast of live events, with a bounded buffer per subscriber.

Theory of operation: :meth:`Broadcast.publish` is a plain function — it stamps the event
with the next ``seq`` and appends it to every subscriber's deque, never waiting. A deque
that is full drops its oldest event and counts the drop, so a viewer that reads slowly (or
not at all) costs a request nothing but that append. Each subscriber reads in its own
task with :meth:`Subscription.get`, which first reports the drops since its last read as a
``dropped`` event, then returns what is buffered.

    publisher ──publish()──▶ Broadcast ──append──▶ Subscription.deque (maxlen)
                                                      └──▶ get()  (the viewer's task)
"""

from __future__ import annotations

import collections
import time
from typing import Any, Callable

import trio

from ..errors import FeedClosed

__all__ = ["Broadcast", "Subscription"]


class Subscription:
    """One viewer's view of the feed. Use as a context manager to unsubscribe."""

    def __init__(self, broadcast: "Broadcast", maxlen: int) -> None:
        self._broadcast = broadcast
        self._events: collections.deque[dict[str, Any]] = collections.deque(maxlen=maxlen)
        self._wakeup = trio.Event()
        #: drops not yet reported, and all drops of this subscription
        self.pending_drops = 0
        self.total_drops = 0

    def _push(self, event: dict[str, Any]) -> None:
        if len(self._events) == self._events.maxlen:
            self.pending_drops += 1
            self.total_drops += 1
        self._events.append(event)
        self._wakeup.set()

    def _close(self) -> None:
        self._wakeup.set()

    async def get(self) -> list[dict[str, Any]]:
        """Wait for events; return them oldest first (a ``dropped`` event leads when some
        were lost). Raises FeedClosed once the broadcast is closed and nothing is left."""
        while not self._events and not self.pending_drops:
            if self._broadcast.closed:
                raise FeedClosed()
            await self._wakeup.wait()
            self._wakeup = trio.Event()
        batch: list[dict[str, Any]] = []
        if self.pending_drops:
            batch.append(self._broadcast.stamp(
                {"type": "dropped", "count": self.pending_drops, "total": self.total_drops}, count=False
            ))
            self.pending_drops = 0
        batch.extend(self._events)
        self._events.clear()
        return batch

    def __enter__(self) -> "Subscription":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._broadcast.unsubscribe(self)


class Broadcast:
    """Fan events out to every subscriber. ``clock`` gives the ``time`` field (Unix s)."""

    def __init__(self, *, buffer: int = 1000, clock: Callable[[], float] = time.time) -> None:
        if buffer < 1:
            raise ValueError("a subscriber's buffer holds at least one event")
        self.buffer = buffer
        self._clock = clock
        self._subscribers: list[Subscription] = []
        self._seq = 0
        self.closed = False

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def stamp(self, event: dict[str, Any], *, count: bool = True) -> dict[str, Any]:
        """Give ``event`` its ``seq`` and ``time``. A ``dropped`` notice is one viewer's,
        not the feed's: it carries the last seq issued and takes no number of its own."""
        if count:
            self._seq += 1
        return {"type": event["type"], "seq": self._seq, "time": round(self._clock(), 3), **event}

    def publish(self, event: dict[str, Any]) -> None:
        """Send ``event`` (a dict with ``type``) to every subscriber. Never blocks."""
        if self.closed:
            return
        stamped = self.stamp(event)
        for subscription in self._subscribers:
            subscription._push(stamped)

    def subscribe(self, *, buffer: int | None = None) -> Subscription:
        if self.closed:
            raise FeedClosed()
        subscription = Subscription(self, buffer or self.buffer)
        self._subscribers.append(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        if subscription in self._subscribers:
            self._subscribers.remove(subscription)

    def close(self) -> None:
        """Wake every subscriber; their next ``get`` on an empty buffer raises FeedClosed."""
        self.closed = True
        for subscription in self._subscribers:
            subscription._close()
