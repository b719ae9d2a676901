"""Order events for subscriptions: one shared upstream per gateway process, fanned out.

`OrderEventHub` holds ONE order-svc `WatchOrderEvents` stream (no filter) per process,
opened with the first subscriber and kept until shutdown. Each event goes to the
subscribers of its order and of its (pickup) store, and into a ring of the last
`ring_size` events, indexed by resume token and by (order, sequence).

**Resuming.** A subscriber that gives `after` (a resume token it was handed) continues
right after that event with no gap and no duplicate:

- the token is in the ring: the ring's later events for its key are queued and it is
  registered for live ones in the same step (no await in between, so nothing slips past);
- else (an older token, another gateway's, a restarted gateway): a private upstream stream
  filtered by its order or store, resumed at the token, until that stream delivers an
  event the hub has too; then the same hand-over as above and the private stream is closed.
  A quiet key keeps its private stream until its next event.

**Bounded memory.** Each subscriber queues at most `queue_size` events. A consumer that
falls that far behind (a slow or stalled client: its WebSocket send blocks, so the queue
stops draining) is ended with RESUME_REQUIRED and the token of the last event it took;
it resubscribes with that token and misses nothing. An idle subscriber holds a queue with
nothing in it. The ring is bounded; a hand-over that would queue more than `queue_size`
events stays on the private stream.

**Upstream failures.** The hub reopens its stream from the last token it saw (back-off up
to 5 s); if order-svc no longer has that history (FAILED_PRECONDITION), it starts from now
and ends every subscriber with RESUME_REQUIRED (their own tokens go to private streams,
which report the loss to them as order-svc does).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncGenerator, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import grpc

from retail.order.v1 import order_pb2

if TYPE_CHECKING:
    from retail.order.v1.order_pb2_grpc import OrderServiceAsyncStub

log = logging.getLogger(__name__)

RING_SIZE = 4096
QUEUE_SIZE = 256
RETRY_SECONDS = (0.2, 0.5, 1.0, 2.0, 5.0)
WATCH_OPEN_HEADER = "x-watch-open"


class ResumeRequired(Exception):
    """The subscriber must resubscribe after `token` (it fell behind, or history was lost)."""

    def __init__(self, token: str, why: str) -> None:
        super().__init__(why)
        self.token = token
        self.why = why


@dataclass(frozen=True, slots=True)
class Key:
    """What a subscriber follows: one order, or one store's orders."""

    order_id: str = ""
    store_id: str = ""

    def matches(self, event: order_pb2.OrderEvent) -> bool:
        if self.order_id:
            return event.order_id == self.order_id
        return event.store_id == self.store_id

    def request(self, after: str) -> order_pb2.WatchOrderEventsRequest:
        return order_pb2.WatchOrderEventsRequest(
            order_id=self.order_id, store_id=self.store_id, resume_token=after
        )


@dataclass(eq=False, slots=True)
class Subscriber:
    key: Key
    limit: int
    last_token: str = ""
    queue: deque[order_pb2.OrderEvent] = field(default_factory=deque)
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    ended: ResumeRequired | None = None

    def offer(self, event: order_pb2.OrderEvent) -> None:
        if self.ended is not None:
            return
        if len(self.queue) >= self.limit:
            self.queue.clear()
            self.end(ResumeRequired(self.last_token, "the subscriber fell too far behind"))
            return
        self.queue.append(event)
        self.wakeup.set()

    def end(self, reason: ResumeRequired) -> None:
        self.ended = reason
        self.wakeup.set()

    async def next(self) -> order_pb2.OrderEvent:
        while not self.queue:
            if self.ended is not None:
                raise self.ended
            self.wakeup.clear()
            await self.wakeup.wait()
        event = self.queue.popleft()
        self.last_token = event.resume_token
        return event


@dataclass(slots=True)
class HubStats:
    upstream_opens: int = 0
    private_streams: int = 0
    events: int = 0
    handovers: int = 0


class OrderEventHub:
    def __init__(
        self,
        order: Callable[[], OrderServiceAsyncStub],
        *,
        ring_size: int = RING_SIZE,
        queue_size: int = QUEUE_SIZE,
    ) -> None:
        self._order = order
        self._ring: deque[order_pb2.OrderEvent] = deque()
        self._ring_size = ring_size
        self.queue_size = queue_size
        self._first = 0  # absolute position of _ring[0]
        self._by_token: dict[str, int] = {}
        self._by_seq: dict[tuple[str, int], int] = {}
        self._subscribers: dict[Key, set[Subscriber]] = {}
        self._task: asyncio.Task[None] | None = None
        self._open = asyncio.Event()
        self._last_token = ""
        self.stats = HubStats()

    # -- the shared upstream --------------------------------------------------------------

    async def start(self) -> None:
        """Opens the upstream stream if it is not open, and waits until order-svc says it
        is (events written from then on reach the hub)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="order-event-hub")
        await self._open.wait()

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for subscribers in self._subscribers.values():
            for subscriber in subscribers:
                subscriber.end(ResumeRequired(subscriber.last_token, "the gateway is stopping"))

    async def _run(self) -> None:
        failures = 0
        while True:
            call = self._order().WatchOrderEvents(
                order_pb2.WatchOrderEventsRequest(resume_token=self._last_token)
            )
            try:
                metadata = await call.initial_metadata()
                if metadata is not None and WATCH_OPEN_HEADER in dict(metadata):
                    self.stats.upstream_opens += 1
                    self._open.set()
                    failures = 0
                async for reply in call:
                    self._publish(reply.event)
            except asyncio.CancelledError:
                call.cancel()
                raise
            except grpc.aio.AioRpcError as error:
                if error.code() is grpc.StatusCode.FAILED_PRECONDITION and self._last_token:
                    log.warning("order event history lost after %s; from now on", error.details())
                    self._last_token = ""
                    self._reset_ring()
                    for subscribers in self._subscribers.values():
                        for subscriber in subscribers:
                            subscriber.end(
                                ResumeRequired(subscriber.last_token, "order events were lost")
                            )
                    continue
                log.warning("order event stream ended: %s %s", error.code(), error.details())
            delay = RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)]
            failures += 1
            await asyncio.sleep(delay)

    def _reset_ring(self) -> None:
        self._first += len(self._ring)
        self._ring.clear()
        self._by_token.clear()
        self._by_seq.clear()

    def _publish(self, event: order_pb2.OrderEvent) -> None:
        self.stats.events += 1
        self._last_token = event.resume_token
        position = self._first + len(self._ring)
        self._ring.append(event)
        self._by_token[event.resume_token] = position
        self._by_seq[(event.order_id, event.sequence)] = position
        while len(self._ring) > self._ring_size:
            old = self._ring.popleft()
            self._first += 1
            self._by_token.pop(old.resume_token, None)
            self._by_seq.pop((old.order_id, old.sequence), None)
        for key in (Key(order_id=event.order_id), Key(store_id=event.store_id)):
            for subscriber in self._subscribers.get(key, ()):
                subscriber.offer(event)

    # -- subscribers ----------------------------------------------------------------------

    def subscriber_count(self) -> int:
        return sum(len(s) for s in self._subscribers.values())

    def _after(self, key: Key, position: int) -> list[order_pb2.OrderEvent] | None:
        """The ring's events for `key` after `position`, or None if they would overflow."""
        later = [e for e in list(self._ring)[position - self._first + 1 :] if key.matches(e)]
        return later if len(later) < self.queue_size else None

    def _register(
        self, key: Key, backlog: Iterable[order_pb2.OrderEvent], last_token: str
    ) -> Subscriber:
        subscriber = Subscriber(key, self.queue_size, last_token)
        for event in backlog:
            subscriber.offer(event)
        self._subscribers.setdefault(key, set()).add(subscriber)
        return subscriber

    def _unregister(self, subscriber: Subscriber) -> None:
        subscribers = self._subscribers.get(subscriber.key)
        if subscribers is not None:
            subscribers.discard(subscriber)
            if not subscribers:
                del self._subscribers[subscriber.key]

    def _handover(self, key: Key, token: str) -> Subscriber | None:
        """Registered after the event of `token` if the ring has it (synchronously)."""
        position = self._by_token.get(token)
        if position is None:
            return None
        backlog = self._after(key, position)
        if backlog is None:
            return None
        return self._register(key, backlog, token)

    async def events(self, key: Key, after: str = "") -> AsyncGenerator[order_pb2.OrderEvent, None]:
        """Every event of `key` after the token `after` (or from now on), in order; raises
        ResumeRequired when the subscriber must come back with a token. Registered with the
        hub (or its private stream open) before the first `__anext__` returns."""
        await self.start()
        subscriber = self._handover(key, after) if after else self._register(key, (), "")
        private: Any = None
        try:
            if subscriber is None:
                self.stats.private_streams += 1
                private = self._order().WatchOrderEvents(key.request(after))
                async for reply in private:
                    event = reply.event
                    position = self._by_seq.get((event.order_id, event.sequence))
                    if position is not None and (backlog := self._after(key, position)) is not None:
                        subscriber = self._register(key, backlog, event.resume_token)
                        self.stats.handovers += 1
                        private.cancel()
                        private = None
                        yield event
                        break
                    yield event
            while subscriber is not None:
                yield await subscriber.next()
        finally:
            if private is not None:
                private.cancel()
            if subscriber is not None:
                self._unregister(subscriber)
