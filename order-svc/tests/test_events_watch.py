"""WatchOrderEvents over real server streams: every status change, in order, filtered by
order / member / store (all set filters must match); resumable from any event's token with
no gap and no repeat; the same across two order-svc replicas; a bad token refused; the
server's change stream closed when the client cancels.

A watcher waits for the stream's initial metadata (sent once the change stream is open)
before driving orders, so no event can be written before it watches."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import bson
import grpc
import pytest

from order_svc.repository import ORDERS
from retail.order.v1 import order_pb2, order_pb2_grpc
from retail_kit.errors import RpcErrorDetails

from .aftersale_support import replica
from .conftest import PICKUP_STORE, OrderService, Stack, new_member, pickup_request, set_stock
from .lifecycle_support import OTHER_STORE, associate, customer, kiosk, pay

READ_TIMEOUT = 15.0
CLOSE_POLLS = 150
S = order_pb2  # statuses


class Watcher:
    def __init__(self, stub: order_pb2_grpc.OrderServiceStub, **fields: Any) -> None:
        self.call = stub.WatchOrderEvents(order_pb2.WatchOrderEventsRequest(**fields))

    async def opened(self) -> None:
        metadata = await asyncio.wait_for(self.call.initial_metadata(), READ_TIMEOUT)
        assert ("x-watch-open", "1") in list(metadata)

    async def take(self, count: int) -> list[order_pb2.OrderEvent]:
        got = []
        async with asyncio.timeout(READ_TIMEOUT):
            while len(got) < count:
                reply = await self.call.read()
                assert reply is not grpc.aio.EOF, "the stream ended"
                got.append(reply.event)
        return got


@asynccontextmanager
async def watching(stub: order_pb2_grpc.OrderServiceStub, **fields: Any) -> AsyncIterator[Watcher]:
    watcher = Watcher(stub, **fields)
    try:
        await watcher.opened()
        yield watcher
    finally:
        watcher.call.cancel()


def shape(events: list[order_pb2.OrderEvent]) -> list[tuple[str, int, str, int]]:
    return [(e.order_id, e.sequence, e.kind, e.status) for e in events]


async def stocked(stack: Stack) -> str:
    """One SKU for a test's orders (SKUs are a budget the whole suite shares), in stock
    in both stores the tests order from."""
    (sku,) = stack.take_skus(1)
    for store in (PICKUP_STORE, OTHER_STORE):
        await set_stock(stack, store, sku, 10)
    return sku


async def place(
    orders: OrderService, sku: str, member: str, store: str = PICKUP_STORE
) -> order_pb2.Order:
    reply = await orders.stub.PlaceOrder(pickup_request(member, [(sku, 1)], store_id=store))
    return reply.order


async def ready(orders: OrderService, order: order_pb2.Order, store: str = PICKUP_STORE) -> str:
    reply = await orders.stub.MarkReadyForPickup(
        order_pb2.MarkReadyForPickupRequest(order_id=order.id, actor=associate(store))
    )
    return reply.pickup_code


async def hand_over(orders: OrderService, order: order_pb2.Order, code: str) -> None:
    await orders.stub.ConfirmPickup(
        order_pb2.ConfirmPickupRequest(order_id=order.id, pickup_code=code, actor=kiosk())
    )


async def test_a_member_watcher_sees_every_status_change_in_order(
    stack: Stack, orders: OrderService
) -> None:
    member = await new_member(stack)
    sku = await stocked(stack)
    async with watching(orders.stub, member_id=member) as watcher:
        order = await place(orders, sku, member)
        order = await pay(orders, order)
        code = await ready(orders, order)
        await hand_over(orders, order, code)
        got = await watcher.take(4)
    assert shape(got) == [
        (order.id, 1, "placed", S.ORDER_STATUS_AWAITING_PAYMENT),
        (order.id, 2, "paid", S.ORDER_STATUS_CONFIRMED),
        (order.id, 3, "ready_for_pickup", S.ORDER_STATUS_READY_FOR_PICKUP),
        (order.id, 4, "picked_up", S.ORDER_STATUS_PICKED_UP),
    ]
    assert {(e.member_id, e.store_id) for e in got} == {(member, PICKUP_STORE)}
    assert len({e.resume_token for e in got}) == 4 and all(e.resume_token for e in got)
    # The stream's events are the order's own, with their times.
    doc = await orders.database[ORDERS].find_one({"_id": order.id})
    assert doc is not None
    assert [(e["seq"], e["kind"], e["occur_time"]) for e in doc["events"]] == [
        (e.sequence, e.kind, e.occur_time.ToDatetime(tzinfo=doc["create_time"].tzinfo)) for e in got
    ]


async def test_a_watcher_that_reconnects_with_its_token_misses_and_repeats_nothing(
    stack: Stack, orders: OrderService
) -> None:
    member = await new_member(stack)
    sku = await stocked(stack)
    async with watching(orders.stub, member_id=member) as first:
        order = await place(orders, sku, member)
        order = await pay(orders, order)
        seen = await first.take(2)
    assert [e.kind for e in seen] == ["placed", "paid"]
    token = seen[-1].resume_token

    # Disconnected: more changes, of this order and of a second one.
    code = await ready(orders, order)
    await hand_over(orders, order, code)
    second = await place(orders, sku, member)
    await orders.stub.CancelOrder(
        order_pb2.CancelOrderRequest(id=second.id, actor=customer(member), reason="changed mind")
    )

    missed = [
        (order.id, 3, "ready_for_pickup", S.ORDER_STATUS_READY_FOR_PICKUP),
        (order.id, 4, "picked_up", S.ORDER_STATUS_PICKED_UP),
        (second.id, 1, "placed", S.ORDER_STATUS_AWAITING_PAYMENT),
        (second.id, 2, "cancelled", S.ORDER_STATUS_CANCELLED),
    ]
    async with watching(orders.stub, member_id=member, resume_token=token) as resumed:
        assert shape(await resumed.take(4)) == missed
        # Live again: the next change follows at once, nothing repeated before it.
        third = await place(orders, sku, member)
        assert shape(await resumed.take(1)) == [
            (third.id, 1, "placed", S.ORDER_STATUS_AWAITING_PAYMENT)
        ]
    # Resuming from the middle of the missed ones gives exactly the rest.
    async with watching(orders.stub, member_id=member, resume_token=token) as again:
        replayed = await again.take(5)
    async with watching(
        orders.stub, member_id=member, resume_token=replayed[1].resume_token
    ) as middle:
        assert shape(await middle.take(3)) == shape(replayed[2:])


async def test_filters_must_all_match(stack: Stack, orders: OrderService) -> None:
    member = await new_member(stack)
    sku = await stocked(stack)
    other_member = await new_member(stack)
    async with (
        watching(orders.stub, member_id=member, store_id=OTHER_STORE) as member_elsewhere,
        watching(orders.stub, member_id=member, store_id=PICKUP_STORE) as member_here,
        watching(orders.stub, store_id=OTHER_STORE) as store_only,
    ):
        here = await place(orders, sku, member)
        await place(orders, sku, other_member)
        await pay(orders, here)
        elsewhere = await place(orders, sku, member, store=OTHER_STORE)
        # Ordered streams: what comes first proves what was filtered out before it.
        assert shape(await member_elsewhere.take(1)) == [
            (elsewhere.id, 1, "placed", S.ORDER_STATUS_AWAITING_PAYMENT)
        ]
        assert shape(await store_only.take(1)) == [
            (elsewhere.id, 1, "placed", S.ORDER_STATUS_AWAITING_PAYMENT)
        ]
        assert [(e.order_id, e.kind) for e in await member_here.take(2)] == [
            (here.id, "placed"),
            (here.id, "paid"),
        ]
    # One order: only its own events.
    async with watching(orders.stub, order_id=here.id) as one:
        await orders.stub.CancelOrder(
            order_pb2.CancelOrderRequest(id=elsewhere.id, actor=customer(member))
        )
        await orders.stub.CancelOrder(
            order_pb2.CancelOrderRequest(id=here.id, actor=customer(member))
        )
        assert shape(await one.take(1)) == [(here.id, 3, "cancelled", S.ORDER_STATUS_CANCELLED)]


async def test_events_written_through_one_replica_are_watched_through_another(
    stack: Stack, orders: OrderService
) -> None:
    member = await new_member(stack)
    sku = await stocked(stack)
    async with (
        replica(orders, stack) as other,
        watching(other.stub, member_id=member) as through_other,
        watching(orders.stub, member_id=member) as through_first,
    ):
        order = await place(orders, sku, member)
        await pay(orders, order)
        code = await ready(orders, order)
        await hand_over(other, order, code)  # the hand-over through the other replica
        via_other = await through_other.take(4)
        via_first = await through_first.take(4)
    assert shape(via_other) == shape(via_first)
    assert [e.kind for e in via_other] == ["placed", "paid", "ready_for_pickup", "picked_up"]
    # A token one replica issued resumes on the other.
    async with watching(orders.stub, member_id=member, resume_token=via_other[1].resume_token) as w:
        assert shape(await w.take(2)) == shape(via_other[2:])


def _encoded(document: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(bson.encode(document)).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "token",
    [
        "not a token!",
        base64.urlsafe_b64encode(b"\x05\x00\x00\x00").decode(),  # base64, not BSON
        _encoded({"_data": "zz"}),  # BSON the server refuses
        _encoded({"x": 1}),
    ],
)
async def test_an_invalid_token_is_refused(orders: OrderService, token: str) -> None:
    call = orders.stub.WatchOrderEvents(order_pb2.WatchOrderEventsRequest(resume_token=token))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await asyncio.wait_for(call.read(), READ_TIMEOUT)
    details = RpcErrorDetails.from_rpc_error(caught.value)
    assert details.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in details.violations] == ["resume_token"]


async def test_bad_filters_are_refused(orders: OrderService) -> None:
    call = orders.stub.WatchOrderEvents(
        order_pb2.WatchOrderEventsRequest(order_id="bad id", after_sequence=3)
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await asyncio.wait_for(call.read(), READ_TIMEOUT)
    details = RpcErrorDetails.from_rpc_error(caught.value)
    assert details.code == grpc.StatusCode.INVALID_ARGUMENT
    assert sorted(v.field for v in details.violations) == ["after_sequence", "order_id"]


async def open_cursors(orders: OrderService) -> int:
    status = await orders.database.client.admin.command("serverStatus")
    return int(status["metrics"]["cursor"]["open"]["total"])


async def test_cancelled_watchers_close_their_change_streams(orders: OrderService) -> None:
    before = await open_cursors(orders)
    watchers = [Watcher(orders.stub, store_id=PICKUP_STORE) for _ in range(4)]
    for watcher in watchers:
        await watcher.opened()
    assert await open_cursors(orders) >= before + 4
    for watcher in watchers:
        watcher.call.cancel()
    for watcher in watchers:
        assert await watcher.call.code() == grpc.StatusCode.CANCELLED
    # The server ends each handler and closes its change stream (killCursors).
    for _ in range(CLOSE_POLLS):
        if await open_cursors(orders) <= before:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError(f"{await open_cursors(orders) - before} change streams left open")
