"""IN_STORE_PURCHASE at the till: priced, coupon scanned by code, paid, COMPLETED at once
with its completion effects; a payment that does not match the total is refused and every
step done is compensated."""

from __future__ import annotations

import uuid

import grpc

from order_svc.repository import ORDERS
from retail.common.v1 import common_pb2
from retail.member.v1 import member_pb2
from retail.order.v1 import order_pb2

from .conftest import (
    PICKUP_STORE,
    OrderService,
    Stack,
    assert_reconciles,
    coupon,
    error_of,
    issue_coupon,
    level,
    new_member,
    points,
    set_stock,
)

CASHIER = "as_st_001_01"


def till_request(
    lines: list[tuple[str, int]], amount: int, *, member_id: str = "", **fields: object
) -> order_pb2.PlaceOrderRequest:
    return order_pb2.PlaceOrderRequest(
        idempotency_key=f"till-{uuid.uuid4().hex}",
        member_id=member_id,
        store_id=PICKUP_STORE,
        fulfillment=order_pb2.FULFILLMENT_TYPE_IN_STORE_PURCHASE,
        lines=[order_pb2.PlaceOrderLine(sku_id=s, quantity=q) for s, q in lines],
        channel=common_pb2.CHANNEL_POS,
        associate_id=CASHIER,
        till_payment=order_pb2.Payment(
            provider="wechat_pay",
            transaction_id=f"wx{uuid.uuid4().hex[:12]}",
            amount=common_pb2.Money(amount=amount, currency="CNY"),
        ),
        **fields,  # type: ignore[arg-type]
    )


async def test_member_till_sale_with_coupon_code_completes_at_once(
    stack: Stack, orders: OrderService
) -> None:
    sku_a, sku_b = stack.take_skus(2)
    await set_stock(stack, PICKUP_STORE, sku_a, 6)
    await set_stock(stack, PICKUP_STORE, sku_b, 6)
    member = await new_member(stack, points=2000)
    issued = await issue_coupon(stack, member)
    lines = [(sku_a, 2), (sku_b, 1)]
    # The cashier asks for the total first (what the customer's screen shows).
    probe = till_request(lines, 0, member_id=member, coupon_code=issued.code, redeem_points=200)
    preview = await orders.stub.PreviewOrder(order_pb2.PreviewOrderRequest(order=probe))
    request = till_request(
        lines, preview.total.amount, member_id=member, coupon_code=issued.code, redeem_points=200
    )
    order = (await orders.stub.PlaceOrder(request)).order
    assert order.status == order_pb2.ORDER_STATUS_COMPLETED
    assert order.payment_status == order_pb2.PAYMENT_STATUS_PAID
    assert order.payment.provider == "wechat_pay"
    assert order.payment.transaction_id == request.till_payment.transaction_id
    assert order.payment.amount == order.total == preview.total
    assert order.associate_id == CASHIER and order.channel == common_pb2.CHANNEL_POS
    assert order.coupon_id == issued.id and order.coupon_discount.amount == 500
    assert order.points_redeemed == 200
    assert_reconciles(order)
    assert order.fulfilments[0].status == order_pb2.FULFILMENT_STATUS_DELIVERED
    # Stock left the shelf (committed inline), the coupon is redeemed, points spent.
    after_a = await level(stack, PICKUP_STORE, sku_a)
    assert (after_a.on_hand, after_a.reserved) == (4, 0)
    assert (await level(stack, PICKUP_STORE, sku_b)).on_hand == 5
    assert (await coupon(stack, issued.id)).status == member_pb2.COUPON_STATUS_REDEEMED
    assert (await points(stack, member)).available == 1800
    stored = await orders.database[ORDERS].find_one({"_id": order.id})
    assert stored is not None
    assert [e["kind"] for e in stored["events"]] == ["completed"]
    effects = {e["id"]: e["state"] for e in stored["effects"]}
    assert effects == {
        "commit_stock:f1": "done",
        f"redeem_coupon:{issued.id}": "done",
        # Delivered by the outbox worker (points earned, tier spend, attribution).
        "record_completed": "pending",
    }


async def test_guest_till_sale_needs_no_member(stack: Stack, orders: OrderService) -> None:
    (sku,) = stack.take_skus(1)
    await set_stock(stack, PICKUP_STORE, sku, 3)
    probe = till_request([(sku, 1)], 0)
    preview = await orders.stub.PreviewOrder(order_pb2.PreviewOrderRequest(order=probe))
    order = (await orders.stub.PlaceOrder(till_request([(sku, 1)], preview.total.amount))).order
    assert order.status == order_pb2.ORDER_STATUS_COMPLETED and order.member_id == ""
    assert (await level(stack, PICKUP_STORE, sku)).on_hand == 2
    stored = await orders.database[ORDERS].find_one({"_id": order.id})
    assert stored is not None and [e["id"] for e in stored["effects"]] == ["commit_stock:f1"]


async def test_a_till_payment_that_differs_from_the_total_undoes_everything(
    stack: Stack, orders: OrderService
) -> None:
    (sku,) = stack.take_skus(1)
    await set_stock(stack, PICKUP_STORE, sku, 3)
    member = await new_member(stack, points=1000)
    issued = await issue_coupon(stack, member)
    request = till_request(
        [(sku, 1)], 1, member_id=member, coupon_code=issued.code, redeem_points=100
    )
    error = await error_of(orders.stub.PlaceOrder(request))
    assert error.code == grpc.StatusCode.FAILED_PRECONDITION
    assert error.reason == "AMOUNT_MISMATCH"
    assert [v.field for v in error.violations] == ["till_payment.amount"]
    assert error.metadata["given"] == "1"
    # Coupon, points and stock are all back where they were.
    assert (await coupon(stack, issued.id)).status == member_pb2.COUPON_STATUS_AVAILABLE
    assert (await points(stack, member)).available == 1000
    stock = await level(stack, PICKUP_STORE, sku)
    assert (stock.on_hand, stock.reserved) == (3, 0)
    failed = await orders.database[ORDERS].find_one({"idempotency_key": request.idempotency_key})
    assert failed is not None and failed["status"] == "failed"
    assert failed["end_reason"] == "amount_mismatch"
    assert failed["saga"]["state"] == "compensated"
    assert {e["kind"]: e["state"] for e in failed["effects"]} == {
        "release_stock": "done",
        "revert_points": "done",
        "release_coupon": "done",
    }
    # The reverse of the steps (stock, coupon, points).
    assert [e["id"] for e in failed["effects"]] == [
        "revert_points",
        f"release_coupon:{issued.id}",
        "release_stock:f1",
    ]
