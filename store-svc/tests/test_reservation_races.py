"""Races between concurrent ReserveStock calls for the same order id (a client retry racing its
original, possibly on two replicas) while stock for a short line arrives between them.

The deterministic tests drive two `ReservationBook.reserve` calls ("A" and "B") over the real
database, each through its own view of the database whose writes can be held at a
breakpoint, so a chosen interleaving of their steps is replayed exactly. The stochastic test
fires many rounds of concurrent replays over gRPC with the missing stock arriving at random
moments. All of them then check the invariants on the documents themselves.
"""

from __future__ import annotations

import asyncio
import contextvars
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest

from retail.store.v1 import store_pb2
from retail_kit.errors import RpcErrorDetails, ServiceError
from retail_kit.mongo import Document
from store_svc.domain import ReservationLine, ReservationStatus
from store_svc.inventory import INVENTORY, OPS_KEPT, InventoryBook
from store_svc.reservations import RESERVATIONS, ReservationBook

from .conftest import Service
from .test_inventory_and_reservations import (
    assert_invariants,
    level,
    line,
    new_store,
    receive,
    reserve_request,
)

ACTOR: contextvars.ContextVar[str] = contextvars.ContextVar("actor", default="")
STEP_TIMEOUT = 10.0
ORDERS = 12  # per round of the stochastic test

Predicate = Callable[[str, str, Document, Document], bool]
"""(collection, method, filter, update) -> hold this command here?"""


@dataclass
class Breakpoint:
    actor: str
    predicate: Predicate
    reached: asyncio.Event = field(default_factory=asyncio.Event)
    go: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait_reached(self) -> None:
        await asyncio.wait_for(self.reached.wait(), STEP_TIMEOUT)


class Breakpoints:
    def __init__(self) -> None:
        self.points: list[Breakpoint] = []

    def add(self, actor: str, predicate: Predicate) -> Breakpoint:
        point = Breakpoint(actor, predicate)
        self.points.append(point)
        return point

    async def check(self, collection: str, method: str, query: Document, update: Document) -> None:
        for point in self.points:
            if point.reached.is_set() or point.actor != ACTOR.get():
                continue
            if point.predicate(collection, method, query, update):
                point.reached.set()
                await point.go.wait()
                return


class GatedCollection:
    """A collection whose single-document commands first pass the breakpoints."""

    def __init__(self, collection: Any, gates: Breakpoints) -> None:
        self._collection = collection
        self._gates = gates

    def __getattr__(self, name: str) -> Any:
        return getattr(self._collection, name)

    async def update_one(self, query: Document, update: Document, *args: Any, **kw: Any) -> Any:
        await self._gates.check(self._collection.name, "update_one", query, update)
        return await self._collection.update_one(query, update, *args, **kw)

    async def insert_one(self, document: Document, *args: Any, **kw: Any) -> Any:
        await self._gates.check(self._collection.name, "insert_one", document, {})
        return await self._collection.insert_one(document, *args, **kw)

    async def find_one(self, query: Document, *args: Any, **kw: Any) -> Any:
        await self._gates.check(self._collection.name, "find_one", query, {})
        return await self._collection.find_one(query, *args, **kw)


class GatedDatabase:
    def __init__(self, database: Any, gates: Breakpoints) -> None:
        self._database = database
        self._gates = gates

    def __getattr__(self, name: str) -> Any:
        return getattr(self._database, name)

    def __getitem__(self, name: str) -> GatedCollection:
        return GatedCollection(self._database[name], self._gates)


def gated_book(service: Service, gates: Breakpoints) -> ReservationBook:
    database: Any = GatedDatabase(service.database, gates)
    return ReservationBook(database, InventoryBook(database))


def sets(collection: str, **fields: Any) -> Predicate:
    """An update of `collection` that `$set`s every one of `fields` (value None: any value)."""

    def predicate(name: str, method: str, query: Document, update: Document) -> bool:
        if name != collection or method != "update_one":
            return False
        written = update.get("$set", {})
        return all(
            key in written and (value is None or written[key] == value)
            for key, value in fields.items()
        )

    return predicate


def takes(inventory_key: str) -> Predicate:
    """The conditional update that reserves stock on one inventory document."""

    def predicate(name: str, method: str, query: Document, update: Document) -> bool:
        increments = update.get("$inc", {})
        return (
            name == INVENTORY
            and method == "update_one"
            and query.get("_id") == inventory_key
            and increments.get("reserved", 0) > 0
        )

    return predicate


async def run_as(actor: str, call: Any) -> Any:
    ACTOR.set(actor)
    try:
        return await call
    except ServiceError as error:
        return error


def outcome(result: object) -> str:
    if isinstance(result, ServiceError):
        meta = result.metadata
        return f"{result.reason} {meta.get('sku_id')} {meta.get('available')}"
    assert result is not None
    return str(getattr(result, "status", result))


@dataclass
class Scene:
    store_id: str
    plenty: str  # line 0: in stock
    short: str  # line 1: stocked once, none available now
    order_id: str
    lines: tuple[ReservationLine, ...]


async def scene(service: Service, name: str) -> Scene:
    store_id = await new_store(service)
    plenty, short = "p_0300_s1", "p_0301_s1"
    await receive(service, store_id, plenty, 5)
    await receive(service, store_id, short, 1)
    await service.stub.AdjustInventory(
        store_pb2.AdjustInventoryRequest(
            store_id=store_id,
            sku_id=short,
            delta=-1,
            reason=store_pb2.ADJUSTMENT_REASON_DAMAGE,
            actor_id="as_test",
            idempotency_key=f"damage-{store_id}-{short}",
        )
    )
    lines = (ReservationLine(plenty, 2), ReservationLine(short, 1))
    return Scene(store_id, plenty, short, f"o-{store_id}-{name}", lines)


def reserve(book: ReservationBook, s: Scene) -> Any:
    now = datetime.now(UTC)
    return book.reserve(s.order_id, s.store_id, s.lines, now + timedelta(days=3), now)


async def assert_consistent(service: Service, s: Scene, *answers: object) -> None:
    """Every answer agrees with the stored reservation, and stock matches what is live."""
    doc = await service.database[RESERVATIONS].find_one({"_id": s.order_id})
    assert doc is not None
    status = doc["status"]
    expected = status
    if status == ReservationStatus.FAILED.value:
        expected = f"OUT_OF_STOCK {doc['failure']['sku_id']} {doc['failure']['available']}"
    assert [outcome(answer) for answer in answers] == [expected] * len(answers), doc
    await assert_invariants(service, s.store_id, [s.plenty, s.short])


async def test_late_take_cannot_mark_reserved_while_the_failure_is_unwound(
    service: Service,
) -> None:
    """A finds line 1 short and records the failure; B read the reservation before that and
    is about to take line 1. A gives back line 0; stock for line 1 arrives; B takes it and
    tries to mark the order RESERVED; then A goes on. Before the fix B's RESERVED landed (A
    had not written FAILED yet) and A, finding it RESERVED, answered it too: a RESERVED
    reservation whose line 0 stock had been given back."""
    s = await scene(service, "a")
    gates = Breakpoints()
    a_records_failure = gates.add("A", sets(RESERVATIONS, failure=None))
    b_takes_short_line = gates.add("B", takes(f"{s.store_id}:{s.short}"))
    a_marks_line_0_released = gates.add("A", sets(RESERVATIONS, **{"lines.0.state": "released"}))
    first = asyncio.create_task(run_as("A", reserve(gated_book(service, gates), s)))
    await a_records_failure.wait_reached()
    second = asyncio.create_task(run_as("B", reserve(gated_book(service, gates), s)))
    await b_takes_short_line.wait_reached()  # B read the reservation: PENDING, no failure
    a_records_failure.go.set()
    await a_marks_line_0_released.wait_reached()  # A gave line 0's stock back
    assert (await level(service, s.store_id, s.plenty)).reserved == 0
    await receive(service, s.store_id, s.short, 1)  # stock arrives for line 1
    b_takes_short_line.go.set()
    b = await asyncio.wait_for(second, STEP_TIMEOUT)
    a_marks_line_0_released.go.set()
    a = await asyncio.wait_for(first, STEP_TIMEOUT)
    await assert_consistent(service, s, a, b)


async def test_late_take_after_the_failure_is_unwound_is_not_kept(service: Service) -> None:
    """A finds line 1 short and unwinds to FAILED while B, which read the reservation while it
    was still PENDING without a failure, waits with its take of line 1; stock arrives, then B
    takes. Before the fix B's take landed (same operation id, never applied) and B, finding
    the order FAILED, answered OUT_OF_STOCK: one unit held by no live reservation."""
    s = await scene(service, "b")
    gates = Breakpoints()
    a_records_failure = gates.add("A", sets(RESERVATIONS, failure=None))
    b_takes_short_line = gates.add("B", takes(f"{s.store_id}:{s.short}"))
    first = asyncio.create_task(run_as("A", reserve(gated_book(service, gates), s)))
    await a_records_failure.wait_reached()
    second = asyncio.create_task(run_as("B", reserve(gated_book(service, gates), s)))
    await b_takes_short_line.wait_reached()
    a_records_failure.go.set()
    a = await asyncio.wait_for(first, STEP_TIMEOUT)
    assert outcome(a).startswith("OUT_OF_STOCK")
    await receive(service, s.store_id, s.short, 1)
    b_takes_short_line.go.set()
    b = await asyncio.wait_for(second, STEP_TIMEOUT)
    await assert_consistent(service, s, a, b)
    assert (await level(service, s.store_id, s.short)).reserved == 0


async def test_take_landing_before_the_unwind_of_its_line_is_given_back(
    service: Service,
) -> None:
    """B's take of line 1 lands first (stock arrived) but its progress write waits; A records
    the failure and unwinds: A must give back what B took, and B then answers the failure."""
    s = await scene(service, "c")
    gates = Breakpoints()
    a_records_failure = gates.add("A", sets(RESERVATIONS, failure=None))
    b_takes_short_line = gates.add("B", takes(f"{s.store_id}:{s.short}"))
    b_marks_line_1 = gates.add("B", sets(RESERVATIONS, **{"lines.1.state": "reserved"}))
    first = asyncio.create_task(run_as("A", reserve(gated_book(service, gates), s)))
    await a_records_failure.wait_reached()
    second = asyncio.create_task(run_as("B", reserve(gated_book(service, gates), s)))
    await b_takes_short_line.wait_reached()
    await receive(service, s.store_id, s.short, 1)
    b_takes_short_line.go.set()
    await b_marks_line_1.wait_reached()  # B holds the unit, not yet recorded
    assert (await level(service, s.store_id, s.short)).reserved == 1
    a_records_failure.go.set()
    a = await asyncio.wait_for(first, STEP_TIMEOUT)
    b_marks_line_1.go.set()
    b = await asyncio.wait_for(second, STEP_TIMEOUT)
    await assert_consistent(service, s, a, b)
    assert outcome(a).startswith("OUT_OF_STOCK")


@pytest.mark.parametrize("round_number", range(3))
async def test_concurrent_replays_with_stock_arriving_keep_the_invariants(
    service: Service, round_number: int
) -> None:
    """Many orders, each replayed concurrently, whose second line is short until a receipt
    lands at a random moment among the calls: every replay of an order answers the same, and
    stock matches the live reservations."""
    rng = random.Random(round_number)
    store_id = await new_store(service)
    plenty, short = "p_0310_s1", "p_0311_s1"
    await receive(service, store_id, plenty, 500)
    await receive(service, store_id, short, 1)
    await service.stub.AdjustInventory(
        store_pb2.AdjustInventoryRequest(
            store_id=store_id,
            sku_id=short,
            delta=-1,
            reason=store_pb2.ADJUSTMENT_REASON_DAMAGE,
            actor_id="as_test",
            idempotency_key=f"damage-{store_id}",
        )
    )

    async def call(order_id: str, delay: float) -> str:
        await asyncio.sleep(delay)
        try:
            reply = await service.stub.ReserveStock(
                reserve_request(order_id, store_id, line(plenty, 1), line(short, 1))
            )
        except grpc.aio.AioRpcError as error:
            return RpcErrorDetails.from_rpc_error(error).reason
        return store_pb2.ReservationStatus.Name(reply.reservation.status)

    async def arrive(delay: float) -> None:
        await asyncio.sleep(delay)
        await receive(service, store_id, short, 1)

    orders = [f"o-{store_id}-{n}" for n in range(ORDERS)]
    for order_id in orders:
        calls = [call(order_id, rng.uniform(0, 0.01)) for _ in range(4)]
        answers, _ = await asyncio.gather(asyncio.gather(*calls), arrive(rng.uniform(0, 0.015)))
        assert len(set(answers)) == 1, (order_id, answers)
    await assert_invariants(service, store_id, [plenty, short])


# -- resumed after the inventory document's last OPS_KEPT operation ids moved on ------------


async def churn(service: Service, store_id: str, sku_id: str) -> None:
    """More adjustments of one SKU than its document keeps operation ids for."""
    for _ in range(OPS_KEPT + 5):
        await receive(service, store_id, sku_id, 1)


async def crash_at(service: Service, actor: str, where: Predicate, call: Any) -> None:
    """Runs `call` through a gated book and kills it just before the command `where`."""
    gates = Breakpoints()
    point = gates.add(actor, where)
    task = asyncio.create_task(run_as(actor, call(gated_book(service, gates))))
    await point.wait_reached()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.parametrize("second_line", ["in_stock", "short"])
async def test_a_take_resumed_after_the_ops_window_is_not_taken_twice(
    service: Service, second_line: str
) -> None:
    """A call takes line 0 and dies before recording it; the SKU then sees more operations
    than its document keeps ids for; a replay resumes the order. Line 0's hold is still
    known (it is held, not just a recent operation id), so it is not taken again, and a
    failure on line 1 gives back exactly what line 0 holds."""
    s = await scene(service, f"crash-take-{second_line}")
    if second_line == "in_stock":
        await receive(service, s.store_id, s.short, 1)
    now = datetime.now(UTC)
    await crash_at(
        service,
        "A",
        sets(RESERVATIONS, **{"lines.0.state": "reserved"}),
        lambda book: book.reserve(s.order_id, s.store_id, s.lines, now + timedelta(days=3), now),
    )
    assert (await level(service, s.store_id, s.plenty)).reserved == 2
    await churn(service, s.store_id, s.plenty)
    answer = await run_as("B", reserve(gated_book(service, Breakpoints()), s))
    await assert_consistent(service, s, answer)
    expected = 2 if second_line == "in_stock" else 0
    assert (await level(service, s.store_id, s.plenty)).reserved == expected


async def test_a_commit_resumed_after_the_ops_window_is_not_applied_twice(
    service: Service,
) -> None:
    s = await scene(service, "crash-commit")
    await receive(service, s.store_id, s.short, 1)
    request = reserve_request(s.order_id, s.store_id, line(s.plenty, 2), line(s.short, 1))
    await service.stub.ReserveStock(request)
    await crash_at(
        service,
        "A",
        sets(RESERVATIONS, **{"lines.0.state": "committed"}),
        lambda book: book.commit(s.order_id, datetime.now(UTC)),
    )
    await churn(service, s.store_id, s.plenty)
    reply = await service.stub.CommitReservation(
        store_pb2.CommitReservationRequest(order_id=s.order_id)
    )
    assert reply.reservation.status == store_pb2.RESERVATION_STATUS_COMMITTED
    after = await level(service, s.store_id, s.plenty)
    assert (after.on_hand, after.reserved) == (5 + OPS_KEPT + 5 - 2, 0)
    await assert_invariants(service, s.store_id, [s.plenty, s.short])


async def test_a_release_resumed_after_the_ops_window_gives_back_once(service: Service) -> None:
    s = await scene(service, "crash-release")
    await receive(service, s.store_id, s.short, 1)
    request = reserve_request(s.order_id, s.store_id, line(s.plenty, 2), line(s.short, 1))
    await service.stub.ReserveStock(request)
    await service.stub.ReserveStock(
        reserve_request(f"{s.order_id}-other", s.store_id, line(s.plenty, 1))
    )
    await crash_at(
        service,
        "A",
        sets(RESERVATIONS, **{"lines.0.state": "released"}),
        lambda book: book.release(s.order_id, datetime.now(UTC)),
    )
    await churn(service, s.store_id, s.plenty)
    reply = await service.stub.ReleaseReservation(
        store_pb2.ReleaseReservationRequest(order_id=s.order_id)
    )
    assert reply.reservation.status == store_pb2.RESERVATION_STATUS_RELEASED
    assert (await level(service, s.store_id, s.plenty)).reserved == 1  # the other order's
    await assert_invariants(service, s.store_id, [s.plenty, s.short])
