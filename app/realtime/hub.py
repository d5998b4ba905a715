"""In-process fan-out with bounded per-subscriber queues.

`publish` never awaits: it offers each event to every subscriber's `select` function and queues
the result. A subscriber whose queue is full is closed with `SubscriberOverflow` (its client must
refetch), so a slow or stuck client can neither delay the others nor grow memory without bound.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Generic, TypeVar

from app.realtime.events import RecipeEvent

log = logging.getLogger("larder.hub")

T = TypeVar("T")


class SubscriptionEnded(Exception):
    """Base for the reasons the hub ends a subscription."""

    code = "SUBSCRIPTION_ENDED"


class SubscriberOverflow(SubscriptionEnded):
    code = "SUBSCRIPTION_OVERFLOW"


class ResyncRequired(SubscriptionEnded):
    code = "RESYNC_REQUIRED"


class HubStats:
    __slots__ = ("delivered",)

    def __init__(self) -> None:
        self.delivered = 0


class Mailbox(Generic[T]):
    """A bounded queue drained by one consumer. Overflowing it ends it (SubscriberOverflow):
    its items are dropped and the consumer is told to refetch.

    An idle mailbox holds no buffer (an empty deque allocates ~600 bytes, and most of a
    server's mailboxes are empty most of the time): one exists only while items wait."""

    __slots__ = ("_error", "_items", "_limit", "_waiter")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._items: deque[T] | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._error: SubscriptionEnded | None = None

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def error(self) -> SubscriptionEnded | None:
        """Why the mailbox ended; None while it is open."""
        return self._error

    def put(self, item: T) -> bool:
        """Queue `item`; False if this overflowed (and so ended) the mailbox."""
        if self._error is not None:
            return True
        if self._items is None:
            self._items = deque()
        elif len(self._items) >= self._limit:
            self.end(
                SubscriberOverflow(
                    f"Subscriber fell more than {self._limit} changes behind; "
                    "refetch and subscribe again"
                )
            )
            return False
        self._items.append(item)
        self._wake()
        return True

    def end(self, error: SubscriptionEnded) -> None:
        self._error = error
        self._items = None
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _pop(self) -> T:
        assert self._items
        item = self._items.popleft()
        if not self._items:
            self._items = None
        return item

    def take_one(self) -> T | None:
        """The next item, or None if nothing is queued or the mailbox ended; never waits
        (for mailboxes whose items are never None)."""
        if self._items is None or self._error is not None:
            return None
        return self._pop()

    def take_ready(self, limit: int = 100) -> list[T]:
        """Everything already queued (up to `limit`), without waiting."""
        taken: list[T] = []
        while self._items and len(taken) < limit and self._error is None:
            taken.append(self._pop())
        return taken

    async def get(self) -> T:
        """The next item; raises the reason once the mailbox has ended."""
        while True:
            if self._error is not None:
                raise self._error
            if self._items:
                return self._pop()
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None


class Subscription(Mailbox[T]):
    """One subscriber: an async iterator over what `select` kept of each event."""

    __slots__ = ("_select", "_stats", "delivered")

    def __init__(
        self, select: Callable[[RecipeEvent], T | None], limit: int, stats: HubStats
    ) -> None:
        super().__init__(limit)
        self._select = select
        self._stats = stats
        self.delivered = 0

    def offer(self, event: RecipeEvent) -> bool:
        """Queue what `select` keeps of `event`; False if this overflowed the subscriber."""
        if self._error is not None:
            return True
        item = self._select(event)
        return True if item is None else self.put(item)

    def take_ready(self, limit: int = 100) -> list[T]:
        """Lets a subscriber send a burst of changes as one message."""
        taken = super().take_ready(limit)
        self.delivered += len(taken)
        self._stats.delivered += len(taken)
        return taken

    def __aiter__(self) -> Subscription[T]:
        return self

    async def __anext__(self) -> T:
        item = await self.get()
        self.delivered += 1
        self._stats.delivered += 1
        return item


class Hub:
    def __init__(self, queue_limit: int = 256, replay: int = 256) -> None:
        self.queue_limit = queue_limit
        # The latest events, offered to subscribers that ask for a replay: a sync stream
        # that starts while its client pulls cannot then miss a change committed in between.
        self._recent: deque[RecipeEvent] = deque(maxlen=replay)
        self._subscribers: set[Subscription[object]] = set()
        self._internal: set[Subscription[object]] = set()
        self._changed = asyncio.Condition()
        self.published = 0
        self.overflowed = 0
        self.stats = HubStats()
        # Synchronous consumers that see every event first (the grouped fan-out), and how
        # many client subscriptions they serve.
        self._listeners: list[Callable[[RecipeEvent], None]] = []
        self._external = 0
        self._reset_listeners: list[Callable[[ResyncRequired], None]] = []

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers) + self._external

    @property
    def recent(self) -> tuple[RecipeEvent, ...]:
        return tuple(self._recent)

    def listen(
        self,
        listener: Callable[[RecipeEvent], None],
        on_reset: Callable[[ResyncRequired], None] | None = None,
    ) -> None:
        self._listeners.append(listener)
        if on_reset is not None:
            self._reset_listeners.append(on_reset)

    async def count_external(self, delta: int) -> None:
        """A listener gained or lost a client subscription (for counts and readiness)."""
        self._external += delta
        await self._notify()

    @asynccontextmanager
    async def subscribe(
        self,
        select: Callable[[RecipeEvent], T | None],
        *,
        replay: bool = False,
        internal: bool = False,
    ) -> AsyncIterator[Subscription[T]]:
        """Register a subscriber. `internal` ones (the server's own consumers) are not
        counted as client subscriptions."""
        subscription: Subscription[T] = Subscription(select, self.queue_limit, self.stats)
        if replay:
            for event in self._recent:
                subscription.offer(event)
        group = self._internal if internal else self._subscribers
        group.add(subscription)  # type: ignore[arg-type]
        await self._notify()
        try:
            yield subscription
        finally:
            group.discard(subscription)
            await self._notify()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_for_subscribers(self, count: int) -> None:
        """Return once exactly `count` subscriptions are registered (readiness checks)."""
        async with self._changed:
            await self._changed.wait_for(lambda: self.subscriber_count == count)

    def publish(self, event: RecipeEvent) -> None:
        self.published += 1
        self._recent.append(event)
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:
                log.exception("change listener failed")
        for subscription in [*self._subscribers, *self._internal]:
            try:
                if not subscription.offer(event):
                    self.overflowed += 1
            except Exception:
                log.exception("subscriber filter failed; ending that subscription")
                subscription.end(SubscriptionEnded("Internal server error"))

    def reset(self, reason: str) -> None:
        """The feed lost its place (e.g. resume token too old): every subscriber must refetch."""
        for subscription in [*self._subscribers, *self._internal]:
            subscription.end(ResyncRequired(reason))
        for on_reset in self._reset_listeners:
            on_reset(ResyncRequired(reason))
