"""ReturnItems over real gRPC: refunds of exactly the paid amount allocated to the units,
restock at the receiving store (an audited RETURN adjustment), points clawed back, one
return per id however often or concurrently it is sent, never more units than were bought,
and every refusal changing nothing."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import grpc
import pytest

from order_svc.domain import refund_for_units
from retail.common.v1 import common_pb2
from retail.member.v1 import member_pb2
from retail.order.v1 import order_pb2
from retail.store.v1 import store_pb2

from .aftersale_support import handed_over, ledger, maintenance, stored_effect
from .conftest import PICKUP_STORE, OrderService, Stack, error_of, level, points
from .lifecycle_support import (
    ADMIN_ACTOR,
    OTHER_STORE,
    Placed,
    associate,
    customer,
    kiosk,
    paid_pickup,
    stored,
)

POP_UP_STORE = "st_012"  # pickup only: no returns
CLOSED_STORE = "st_019"


def return_request(
    placed: Placed,
    lines: list[tuple[str, int]],
    *,
    return_id: str | None = None,
    store_id: str = PICKUP_STORE,
    actor: common_pb2.Actor | None = None,
    reason: str = "不合适",
) -> order_pb2.ReturnItemsRequest:
    return order_pb2.ReturnItemsRequest(
        order_id=placed.order.id,
        return_id=return_id or f"ret_{uuid.uuid4().hex[:12]}",
        store_id=store_id,
        lines=[order_pb2.PlaceOrderLine(sku_id=s, quantity=q) for s, q in lines],
        reason=reason,
        actor=actor or associate(store_id, f"as_{store_id}_05"),
    )


async def completed(stack: Stack, orders: OrderService, **options: Any) -> Placed:
    """Handed over, its completion delivered (points pending)."""
    placed = await handed_over(stack, orders, **options)
    await maintenance(orders)
    done = await stored_effect(orders, placed.order.id, "record_completed")
    assert done["state"] == "done"
    return placed


def line_of(order: order_pb2.Order, sku: str) -> order_pb2.OrderLine:
    return next(line for line in order.lines if line.sku_id == sku)


async def adjustments(stack: Stack, store_id: str, sku: str) -> list[store_pb2.InventoryAdjustment]:
    reply = await stack.store.ListInventoryAdjustments(
        store_pb2.ListInventoryAdjustmentsRequest(store_id=store_id, sku_id=sku, page_size=50)
    )
    return list(reply.adjustments)


def clawed(entries: list[member_pb2.PointsEntry], order_id: str) -> int:
    return -sum(
        e.delta for e in entries if e.kind == "claw_back" and e.reference.startswith(order_id)
    )


async def test_a_partial_return_refunds_exactly_the_allocated_amount(
    stack: Stack, orders: OrderService
) -> None:
    placed = await completed(
        stack, orders, quantity=3, lines=2, with_coupon=True, redeem_points=300
    )
    order = placed.order
    sku_a, sku_b = placed.skus
    line = line_of(order, sku_a)
    assert line.coupon_discount.amount > 0 and line.points_discount.amount > 0
    before_points = await points(stack, placed.member_id)
    before_stock = await level(stack, PICKUP_STORE, sku_a)
    request = return_request(placed, [(sku_a, 1)])

    reply = await orders.stub.ReturnItems(request)

    expected = refund_for_units(line.paid_amount.amount, 3, 0, 0, 1)
    assert expected == line.paid_amount.amount // 3
    returned = reply.order_return
    assert returned.id == request.return_id and returned.store_id == PICKUP_STORE
    assert [(r.sku_id, r.quantity, r.refund_amount.amount) for r in returned.lines] == [
        (sku_a, 1, expected)
    ]
    assert returned.refund_amount.amount == expected
    assert returned.actor.id == request.actor.id and returned.reason == "不合适"
    after = line_of(reply.order, sku_a)
    assert (after.returned_quantity, after.refunded_amount.amount) == (1, expected)
    assert line_of(reply.order, sku_b).returned_quantity == 0
    assert reply.order.status == order_pb2.ORDER_STATUS_PICKED_UP
    assert reply.order.payment_status == order_pb2.PAYMENT_STATUS_PAID
    refund = reply.order.refunds[-1]
    assert (refund.amount.amount, refund.reason, refund.return_id) == (
        expected,
        "returned",
        request.return_id,
    )
    # Restocked at the receiving store, audited with its reason, key and actor.
    stock = await level(stack, PICKUP_STORE, sku_a)
    assert (stock.on_hand, stock.reserved) == (before_stock.on_hand + 1, before_stock.reserved)
    newest = (await adjustments(stack, PICKUP_STORE, sku_a))[0]
    assert newest.reason == store_pb2.ADJUSTMENT_REASON_RETURN
    assert (newest.id, newest.delta, newest.actor_id) == (
        f"{request.return_id}:{sku_a}",
        1,
        request.actor.id,
    )
    # Points earned on the refunded part clawed back, and recorded on the return.
    entries = await ledger(stack, placed.member_id)
    taken = clawed(entries, order.id)
    assert taken > 0 and returned.points_clawed_back == taken
    assert (await points(stack, placed.member_id)).total == before_points.total - taken
    doc = await stored(orders, order.id)
    assert [e["kind"] for e in doc["events"]][-1] == "returned"
    assert {e["id"]: e["state"] for e in doc["effects"] if request.return_id in e["id"]} == {
        f"restock:{request.return_id}": "done",
        f"record_returned:{request.return_id}": "done",
        f"refund:{order.id}:return:{request.return_id}": "done",
    }


async def test_returning_everything_in_steps_refunds_exactly_what_was_paid(
    stack: Stack, orders: OrderService
) -> None:
    placed = await completed(
        stack, orders, quantity=3, lines=2, with_coupon=True, redeem_points=300
    )
    order = placed.order
    sku_a, sku_b = placed.skus
    earned = (await stored_effect(orders, order.id, "record_completed"))["result"]["points_earned"]
    steps = [[(sku_a, 1)], [(sku_b, 2), (sku_a, 1)], [(sku_a, 1)], [(sku_b, 1)]]
    refunds = []
    for lines in steps:
        reply = await orders.stub.ReturnItems(return_request(placed, lines))
        refunds.append(reply.order_return.refund_amount.amount)
    final = reply.order
    assert sum(refunds) == order.total.amount == sum(r.amount.amount for r in final.refunds)
    for sku in (sku_a, sku_b):
        line = line_of(final, sku)
        assert (line.returned_quantity, line.refunded_amount.amount) == (3, line.paid_amount.amount)
    assert final.payment_status == order_pb2.PAYMENT_STATUS_REFUNDED
    # Every point earned by the order is clawed back once all of it is refunded.
    assert clawed(await ledger(stack, placed.member_id), order.id) == earned
    assert sum(r.points_clawed_back for r in final.returns) == earned

    # Nothing is left to return: refused, nothing changed.
    doc = await stored(orders, order.id)
    error = await error_of(orders.stub.ReturnItems(return_request(placed, [(sku_a, 1)])))
    assert (error.code, error.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "RETURN_EXCEEDS_PURCHASE",
    )
    assert [v.field for v in error.violations] == ["lines[0].quantity"]
    assert await stored(orders, order.id) == doc


async def test_concurrent_returns_of_one_line_never_exceed_it(
    stack: Stack, orders: OrderService
) -> None:
    placed = await completed(stack, orders, quantity=3, stock=5)
    (sku,) = placed.skus
    line = line_of(placed.order, sku)
    before = await level(stack, PICKUP_STORE, sku)
    requests = [return_request(placed, [(sku, 1)]) for _ in range(10)]
    results = await asyncio.gather(
        *(orders.stub.ReturnItems(r) for r in requests), return_exceptions=True
    )
    accepted = [r for r in results if isinstance(r, order_pb2.ReturnItemsResponse)]
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(accepted) == 3 and len(refused) == 7
    assert {e.code() for e in refused} == {grpc.StatusCode.FAILED_PRECONDITION}
    final = (await orders.stub.GetOrder(order_pb2.GetOrderRequest(id=placed.order.id))).order
    assert line_of(final, sku).returned_quantity == 3
    assert sum(r.refund_amount.amount for r in final.returns) == line.paid_amount.amount
    assert sorted(r.order_return.refund_amount.amount for r in accepted) == sorted(
        r.refund_amount.amount for r in final.returns
    )
    assert (await level(stack, PICKUP_STORE, sku)).on_hand == before.on_hand + 3
    # The refused ones left their return ids free for another attempt.
    refused_ids = [
        req.return_id
        for req, res in zip(requests, results, strict=True)
        if isinstance(res, grpc.aio.AioRpcError)
    ]
    assert not {r.id for r in final.returns} & set(refused_ids)


async def test_a_return_in_another_store_restocks_there(stack: Stack, orders: OrderService) -> None:
    placed = await completed(stack, orders, quantity=2)
    sku_a = placed.skus[0]
    home = await level(stack, PICKUP_STORE, sku_a)
    clerk = associate(OTHER_STORE, "as_st_002_03")
    request = return_request(placed, [(sku_a, 1)], store_id=OTHER_STORE, actor=clerk)
    reply = await orders.stub.ReturnItems(request)
    assert reply.order_return.store_id == OTHER_STORE
    # The goods are now in the receiving store; the selling store's stock is unchanged.
    there = await level(stack, OTHER_STORE, sku_a)
    trail = await adjustments(stack, OTHER_STORE, sku_a)
    assert trail[0].reason == store_pb2.ADJUSTMENT_REASON_RETURN
    assert (trail[0].id, trail[0].delta, trail[0].actor_id, trail[0].on_hand_after) == (
        f"{request.return_id}:{sku_a}",
        1,
        "as_st_002_03",
        there.on_hand,
    )
    assert await level(stack, PICKUP_STORE, sku_a) == home
    assert reply.order_return.points_clawed_back > 0


async def test_a_return_before_the_completion_was_delivered_claws_back_after_it(
    stack: Stack, orders: OrderService
) -> None:
    placed = await handed_over(stack, orders, quantity=2)
    (sku,) = placed.skus
    assert (await stored_effect(orders, placed.order.id, "record_completed"))["state"] == "pending"
    reply = await orders.stub.ReturnItems(return_request(placed, [(sku, 2)]))
    # The completion went first (member-svc refuses a return of an order it has not seen
    # completed), then the claw-back of everything it earned.
    done = await stored_effect(orders, placed.order.id, "record_completed")
    assert done["state"] == "done"
    assert reply.order_return.points_clawed_back == done["result"]["points_earned"] > 0
    assert (await points(stack, placed.member_id)).pending == 0


async def test_replays_answer_the_same_return_once(stack: Stack, orders: OrderService) -> None:
    placed = await completed(stack, orders, quantity=3)
    (sku,) = placed.skus
    before = await level(stack, PICKUP_STORE, sku)
    request = return_request(placed, [(sku, 2)])
    replies = await asyncio.gather(*(orders.stub.ReturnItems(request) for _ in range(8)))
    again = await orders.stub.ReturnItems(request)
    assert {r.order_return.refund_amount.amount for r in [*replies, again]} == {
        replies[0].order_return.refund_amount.amount
    }
    final = (await orders.stub.GetOrder(order_pb2.GetOrderRequest(id=placed.order.id))).order
    assert [r.id for r in final.returns] == [request.return_id]
    assert line_of(final, sku).returned_quantity == 2
    assert (await level(stack, PICKUP_STORE, sku)).on_hand == before.on_hand + 2
    claws = [
        e
        for e in await ledger(stack, placed.member_id)
        if e.kind == "claw_back" and e.reference.startswith(placed.order.id)
    ]
    assert len(claws) == 1
    doc = await stored(orders, placed.order.id)
    assert [e["kind"] for e in doc["events"]].count("returned") == 1

    # The same id for other lines, another store or another order: refused, nothing changed.
    other = await completed(stack, orders, quantity=1)
    for changed in (
        return_request(placed, [(sku, 1)], return_id=request.return_id),
        return_request(
            placed,
            [(sku, 2)],
            return_id=request.return_id,
            store_id=OTHER_STORE,
            actor=associate(OTHER_STORE),
        ),
        return_request(other, [(other.skus[0], 1)], return_id=request.return_id),
    ):
        error = await error_of(orders.stub.ReturnItems(changed))
        assert (error.code, error.reason) == (
            grpc.StatusCode.FAILED_PRECONDITION,
            "IDEMPOTENCY_KEY_REUSED",
        )
        assert [v.field for v in error.violations] == ["return_id"]
    assert await stored(orders, placed.order.id) == doc
    assert not (await stored(orders, other.order.id)).get("returns")


@pytest.fixture(scope="module")
async def refusable(stack: Stack, orders: OrderService) -> Placed:
    """One completed order (2 units) every refusal below is tried on: none may change it."""
    return await completed(stack, orders, quantity=2)


async def snapshot(stack: Stack, orders: OrderService, placed: Placed) -> dict[str, Any]:
    return {
        "order": await stored(orders, placed.order.id),
        "stock": [
            await level(stack, s, sku) for s in (PICKUP_STORE, OTHER_STORE) for sku in placed.skus
        ],
        "points": await points(stack, placed.member_id),
    }


@pytest.mark.parametrize(
    ("change", "code", "reason", "fields"),
    [
        (
            {"store_id": POP_UP_STORE, "actor": associate(POP_UP_STORE)},
            grpc.StatusCode.FAILED_PRECONDITION,
            "STORE_SERVICE_UNAVAILABLE",
            ["store_id"],
        ),
        (
            {"store_id": CLOSED_STORE, "actor": associate(CLOSED_STORE)},
            grpc.StatusCode.FAILED_PRECONDITION,
            "STORE_SERVICE_UNAVAILABLE",
            ["store_id"],
        ),
        (
            {"store_id": "st_nowhere", "actor": ADMIN_ACTOR},
            grpc.StatusCode.NOT_FOUND,
            "NOT_FOUND",
            ["store_id"],
        ),
        (
            {"actor": associate(OTHER_STORE)},
            grpc.StatusCode.PERMISSION_DENIED,
            "PERMISSION_DENIED",
            [],
        ),
        ({"actor": kiosk()}, grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED", []),
        ({"actor": "customer"}, grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED", []),
        (
            {"sku": "p_nope_s1"},
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_ARGUMENT",
            ["lines[0].sku_id"],
        ),
        (
            {"quantity": 3},
            grpc.StatusCode.FAILED_PRECONDITION,
            "RETURN_EXCEEDS_PURCHASE",
            ["lines[0].quantity"],
        ),
        (
            {"quantity": 0},
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_ARGUMENT",
            ["lines[0].quantity"],
        ),
        (
            {"return_id": "bad id"},
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_ARGUMENT",
            ["return_id"],
        ),
        (
            {"twice": True},
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_ARGUMENT",
            ["lines[1].sku_id"],
        ),
        ({"no_lines": True}, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", ["lines"]),
        ({"no_actor": True}, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", ["actor"]),
    ],
)
async def test_bad_returns_are_refused_and_change_nothing(
    stack: Stack,
    orders: OrderService,
    refusable: Placed,
    change: dict[str, Any],
    code: grpc.StatusCode,
    reason: str,
    fields: list[str],
) -> None:
    placed = refusable
    (sku,) = placed.skus
    request = return_request(placed, [(change.get("sku", sku), change.get("quantity", 1))])
    if "store_id" in change:
        request.store_id = change["store_id"]
    if change.get("actor") == "customer":
        request.actor.CopyFrom(customer(placed.member_id))
    elif "actor" in change:
        request.actor.CopyFrom(change["actor"])
    if "return_id" in change:
        request.return_id = change["return_id"]
    if change.get("twice"):
        request.lines.append(order_pb2.PlaceOrderLine(sku_id=sku, quantity=1))
    if change.get("no_lines"):
        del request.lines[:]
    if change.get("no_actor"):
        request.ClearField("actor")
    before = await snapshot(stack, orders, placed)
    error = await error_of(orders.stub.ReturnItems(request))
    assert (error.code, error.reason) == (code, reason)
    assert [v.field for v in error.violations] == fields
    assert await snapshot(stack, orders, placed) == before


async def test_a_refused_return_leaves_its_id_free(stack: Stack, orders: OrderService) -> None:
    placed = await completed(stack, orders, quantity=2)
    (sku,) = placed.skus
    too_many = return_request(placed, [(sku, 3)])
    error = await error_of(orders.stub.ReturnItems(too_many))
    assert error.reason == "RETURN_EXCEEDS_PURCHASE"
    right = return_request(placed, [(sku, 1)], return_id=too_many.return_id)
    assert (await orders.stub.ReturnItems(right)).order_return.id == too_many.return_id


async def test_an_order_not_handed_over_cannot_be_returned(
    stack: Stack, orders: OrderService
) -> None:
    placed = await paid_pickup(stack, orders, quantity=1)
    doc = await stored(orders, placed.order.id)
    error = await error_of(orders.stub.ReturnItems(return_request(placed, [(placed.skus[0], 1)])))
    assert (error.code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "INVALID_STATE")
    assert error.metadata["status"] == "confirmed"
    assert await stored(orders, placed.order.id) == doc
    missing = await error_of(
        orders.stub.ReturnItems(
            order_pb2.ReturnItemsRequest(
                order_id="o_missing",
                return_id="r1",
                store_id=PICKUP_STORE,
                lines=[order_pb2.PlaceOrderLine(sku_id=placed.skus[0], quantity=1)],
                actor=associate(),
            )
        )
    )
    assert missing.code == grpc.StatusCode.NOT_FOUND
