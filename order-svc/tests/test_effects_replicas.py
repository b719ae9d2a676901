"""Several order-svc replicas run the outbox worker at once over one database: each effect is
claimed by exactly one of them (a conditional update moves its next try one lease ahead), so
the passes together deliver every effect once and member-svc's ledger shows each order's
points once. A stock release that store-svc refuses because the reservation was committed
meanwhile (the goods left) ends with that outcome instead of being retried forever."""

from __future__ import annotations

import asyncio
from collections import Counter

from retail.order.v1 import order_pb2
from retail.store.v1 import store_pb2

from .aftersale_support import (
    CallCounter,
    dead_address,
    handed_over_many,
    ledger,
    maintenance,
    member_service_on,
    replica,
    stored_effect,
)
from .conftest import PICKUP_STORE, OrderService, Stack, level
from .lifecycle_support import customer, paid_pickup

ORDERS = 12


async def test_replicas_racing_over_the_same_effects_deliver_each_once(
    stack: Stack, orders: OrderService
) -> None:
    placed = await handed_over_many(stack, orders, ORDERS)
    ours = {one.order.id for one in placed}
    # member-svc counts every RecordOrderCompleted it receives, per order.
    counter = CallCounter("RecordOrderCompleted", "order_id")
    address = dead_address()
    async with (
        member_service_on(stack, address, interceptors=[counter]),
        replica(orders, stack, member_addr=address) as first,
        replica(orders, stack, member_addr=address) as second,
        replica(orders, stack, member_addr=address) as third,
    ):
        workers = [first, second, third]
        for worker in workers:
            worker.clock.offset = orders.clock.offset
        rounds = await asyncio.gather(*(maintenance(w) for w in workers))
        again = await asyncio.gather(*(maintenance(w) for w in workers))
    # Effects of this module's other orders may have been due too; ours went out once each.
    assert sum(r.effects_delivered for r in rounds) >= ORDERS
    assert sum(r.effects_delivered for r in again) == 0
    assert {order_id: counter.calls[order_id] for order_id in ours} == dict.fromkeys(ours, 1)
    claimers: Counter[str] = Counter()
    for one in placed:
        done = await stored_effect(orders, one.order.id, "record_completed")
        assert done["state"] == "done" and done["attempts"] == 0
        claimers[done["claimed_by"]] += 1
        earns = [
            e
            for e in await ledger(stack, one.member_id)
            if e.reference == one.order.id and e.kind == "earn"
        ]
        assert len(earns) == 1 and earns[0].delta == done["result"]["points_earned"]
    assert sum(claimers.values()) == ORDERS


async def test_a_release_refused_because_the_goods_left_is_recorded_not_retried(
    stack: Stack, orders: OrderService
) -> None:
    placed = await paid_pickup(stack, orders, quantity=2, stock=5)
    order_id = placed.order.id
    # Cancelled through a replica that cannot reach store-svc: the release stays pending.
    async with replica(orders, stack, store_addr=dead_address()) as cut_off:
        reply = await cut_off.stub.CancelOrder(
            order_pb2.CancelOrderRequest(id=order_id, actor=customer(placed.member_id))
        )
        assert reply.order.status == order_pb2.ORDER_STATUS_CANCELLED
    pending = await stored_effect(orders, order_id, "release_stock:f1")
    assert pending["state"] == "pending" and pending["attempts"] == 1
    # Meanwhile the reservation was committed in the store (the goods were handed out).
    await stack.store.CommitReservation(store_pb2.CommitReservationRequest(order_id=order_id))
    committed = await level(stack, PICKUP_STORE, placed.skus[0])
    assert (committed.on_hand, committed.reserved) == (3, 0)

    orders.clock.advance(seconds=2)
    await maintenance(orders)
    done = await stored_effect(orders, order_id, "release_stock:f1")
    assert done["state"] == "done"
    assert done["result"]["outcome"] == "committed"
    # Not due any more, and the stock is as the commit left it.
    orders.clock.advance(seconds=600)
    await maintenance(orders)
    assert (await stored_effect(orders, order_id, "release_stock:f1"))["attempts"] == 1
    after = await level(stack, PICKUP_STORE, placed.skus[0])
    assert (after.on_hand, after.reserved) == (3, 0)
