"""The outbox worker delivers completion over real gRPC: a hand-over (PICKED_UP) or a till
sale leaves `record_completed` pending in the same write; the worker (RunMaintenance here,
the jobs loop in production) calls member-svc RecordOrderCompleted once, and the member's
points appear as pending until the return window ends. The associate credited is pinned on
the effect: the member's exclusive guide for online orders, the serving associate at the
till. Failures are retried with exponential back-off; replays deliver nothing twice."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta

from retail.common.v1 import common_pb2
from retail.member.v1 import member_pb2
from retail.order.v1 import order_pb2

from .aftersale_support import (
    assign_guide,
    dead_address,
    handed_over,
    ledger,
    maintenance,
    member_service_on,
    replica,
    stored_effect,
)
from .conftest import PICKUP_STORE, OrderService, Stack, new_member, points, set_stock
from .lifecycle_support import stored

GUIDE = "as_st_001_07"
RECONNECT_TIMEOUT = 30.0
BACKOFF_CAP = 300
CASHIER = "as_st_001_02"


def earned(entries: list[member_pb2.PointsEntry], order_id: str) -> list[member_pb2.PointsEntry]:
    return [e for e in entries if e.reference == order_id and e.delta > 0 and e.kind == "earn"]


async def test_hand_over_then_the_worker_makes_pending_points_appear_once(
    stack: Stack, orders: OrderService
) -> None:
    placed = await handed_over(stack, orders, quantity=3, stock=5)
    order = placed.order
    await assign_guide(stack, placed.member_id, GUIDE, PICKUP_STORE)
    before = await points(stack, placed.member_id)
    doc = await stored(orders, order.id)
    assert [e["kind"] for e in doc["events"]][-1] == "picked_up"
    pending = await stored_effect(orders, order.id, "record_completed")
    assert pending["state"] == "pending"
    assert before.pending == 0

    reply = await maintenance(orders)
    assert reply.effects_delivered >= 1
    done = await stored_effect(orders, order.id, "record_completed")
    assert done["state"] == "done" and done["result"]["points_earned"] > 0
    attribution = done["data"]["attribution"]
    assert (attribution["associate_id"], attribution["source"]) == (GUIDE, "exclusive_guide")
    after = await points(stack, placed.member_id)
    assert after.pending == before.pending + done["result"]["points_earned"]
    assert after.available == before.available
    entries = earned(await ledger(stack, placed.member_id), order.id)
    assert len(entries) == 1 and entries[0].delta == done["result"]["points_earned"]
    # Pending until the return window (7 days after the hand-over) ends.
    picked_up = doc["pickup"]["picked_up_time"]
    window_end = entries[0].available_time.ToDatetime()
    assert window_end - picked_up.replace(tzinfo=None) == timedelta(days=7)

    # Nothing is due any more: another pass delivers nothing and the ledger is unchanged.
    again = await maintenance(orders)
    assert again.effects_delivered == 0
    assert (await points(stack, placed.member_id)).pending == after.pending
    assert len(earned(await ledger(stack, placed.member_id), order.id)) == 1
    assert (await stored(orders, order.id)).get("effects_due") is None


async def test_online_order_without_a_guide_credits_nobody(
    stack: Stack, orders: OrderService
) -> None:
    placed = await handed_over(stack, orders)
    await maintenance(orders)
    done = await stored_effect(orders, placed.order.id, "record_completed")
    assert done["state"] == "done"
    assert done["data"]["attribution"]["source"] == "none"
    assert done["result"]["associate_id"] == ""


async def test_till_sale_credits_the_serving_associate(stack: Stack, orders: OrderService) -> None:
    (sku,) = stack.take_skus(1)
    await set_stock(stack, PICKUP_STORE, sku, 4)
    member = await new_member(stack)
    # A guide elsewhere does not take the till's sale.
    await assign_guide(stack, member, GUIDE, PICKUP_STORE)
    request = order_pb2.PlaceOrderRequest(
        idempotency_key=f"till-{uuid.uuid4().hex}",
        member_id=member,
        store_id=PICKUP_STORE,
        fulfillment=order_pb2.FULFILLMENT_TYPE_IN_STORE_PURCHASE,
        lines=[order_pb2.PlaceOrderLine(sku_id=sku, quantity=2)],
        channel=common_pb2.CHANNEL_POS,
        associate_id=CASHIER,
    )
    preview = await orders.stub.PreviewOrder(order_pb2.PreviewOrderRequest(order=request))
    request.till_payment.CopyFrom(
        order_pb2.Payment(provider="till", transaction_id="t1", amount=preview.total)
    )
    order = (await orders.stub.PlaceOrder(request)).order
    assert order.status == order_pb2.ORDER_STATUS_COMPLETED
    await maintenance(orders)
    done = await stored_effect(orders, order.id, "record_completed")
    assert done["state"] == "done"
    assert (done["data"]["attribution"]["associate_id"], done["data"]["attribution"]["source"]) == (
        CASHIER,
        "serving_associate",
    )
    entries = earned(await ledger(stack, member), order.id)
    assert len(entries) == 1 and (await points(stack, member)).pending == entries[0].delta


async def test_a_failing_member_service_is_retried_with_back_off_then_applied_once(
    stack: Stack, orders: OrderService
) -> None:
    placed = await handed_over(stack, orders)
    order_id = placed.order.id
    address = dead_address()
    async with replica(orders, stack, member_addr=address) as worker:
        worker.clock.offset = orders.clock.offset
        waits = []
        for attempt in range(1, 4):
            reply = await maintenance(worker)
            assert reply.effects_delivered == 0
            failed = await stored_effect(worker, order_id, "record_completed")
            assert failed["state"] == "pending" and failed["attempts"] == attempt
            assert "UNAVAILABLE" in failed["error"]
            now = worker.clock()
            waits.append(round((failed["next_time"] - now).total_seconds()))
            # Not due again before its back-off has passed.
            assert (await maintenance(worker)).effects_delivered == 0
            worker.clock.advance(seconds=waits[-1] + 1)
        assert waits == [1, 2, 4]
        assert earned(await ledger(stack, placed.member_id), order_id) == []

        # member-svc comes up at that address: a later try delivers it, once (the worker's
        # channel reconnects on its own back-off, so tries may still fail for a moment).
        async with member_service_on(stack, address):
            delivered = 0
            deadline = time.monotonic() + RECONNECT_TIMEOUT
            while delivered == 0 and time.monotonic() < deadline:
                worker.clock.advance(seconds=BACKOFF_CAP + 1)
                delivered += (await maintenance(worker)).effects_delivered
                await asyncio.sleep(0.2)
            assert delivered == 1
            worker.clock.advance(seconds=BACKOFF_CAP + 1)
            assert (await maintenance(worker)).effects_delivered == 0
    done = await stored_effect(orders, order_id, "record_completed")
    assert done["state"] == "done" and done["attempts"] >= 3
    entries = earned(await ledger(stack, placed.member_id), order_id)
    assert len(entries) == 1
    assert (await points(stack, placed.member_id)).pending == entries[0].delta
