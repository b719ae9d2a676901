"""PlaceOrder and PreviewOrder for pickup in store over real gRPC against catalog-svc,
store-svc and member-svc: priced lines, coupon locked, points redeemed, stock held, the
ready-by promise, the payment deadline, totals that reconcile."""

from __future__ import annotations

from datetime import UTC, timedelta

from order_svc.repository import ORDERS
from retail.catalog.v1 import catalog_pb2
from retail.common.v1 import common_pb2
from retail.member.v1 import member_pb2
from retail.order.v1 import order_pb2

from .conftest import (
    PICKUP_STORE,
    OrderService,
    Stack,
    assert_reconciles,
    coupon,
    issue_coupon,
    level,
    new_member,
    pickup_request,
    points,
    set_stock,
)


async def test_pickup_order_holds_stock_and_awaits_payment(
    stack: Stack, orders: OrderService
) -> None:
    sku_a, sku_b = stack.take_skus(2)
    await set_stock(stack, PICKUP_STORE, sku_a, 10)
    await set_stock(stack, PICKUP_STORE, sku_b, 10)
    member = await new_member(stack)
    now = orders.clock()
    reply = await orders.stub.PlaceOrder(pickup_request(member, [(sku_a, 2), (sku_b, 1)]))
    order = reply.order
    assert order.status == order_pb2.ORDER_STATUS_AWAITING_PAYMENT
    assert order.payment_status == order_pb2.PAYMENT_STATUS_PENDING
    assert order.store_id == PICKUP_STORE and order.member_id == member
    assert [(line.sku_id, line.quantity) for line in order.lines] == [(sku_a, 2), (sku_b, 1)]
    assert all(line.unit_price.amount > 0 and line.product_id for line in order.lines)
    assert_reconciles(order)
    assert order.discount.amount == 0 and order.payment.amount == order.total
    deadline = order.payment.deadline_time.ToDatetime(UTC)
    assert timedelta(minutes=14) < deadline - now <= timedelta(minutes=16)
    ready_by = order.pickup.ready_by_time.ToDatetime(UTC)
    assert ready_by > now
    assert order.pickup.hold_until_time.ToDatetime(UTC) > ready_by
    assert [(f.id, f.store_id, f.reservation_id) for f in order.fulfilments] == [
        ("f1", PICKUP_STORE, order.id)
    ]
    assert order.fulfilments[0].status == order_pb2.FULFILMENT_STATUS_RESERVED
    assert {line.fulfilment_id for line in order.lines} == {"f1"}
    assert (await level(stack, PICKUP_STORE, sku_a)).reserved == 2
    assert (await level(stack, PICKUP_STORE, sku_b)).reserved == 1
    stored = await orders.database[ORDERS].find_one({"_id": order.id})
    assert stored is not None
    assert [e["kind"] for e in stored["events"]] == ["placed"]
    assert stored["last_event"]["kind"] == "placed" and stored["saga"]["state"] == "done"


async def test_pickup_with_coupon_and_points_allocates_both_to_lines(
    stack: Stack, orders: OrderService
) -> None:
    sku_a, sku_b = stack.take_skus(2)
    await set_stock(stack, PICKUP_STORE, sku_a, 5)
    await set_stock(stack, PICKUP_STORE, sku_b, 5)
    member = await new_member(stack, points=5000)
    issued = await issue_coupon(stack, member)
    before = await points(stack, member)
    request = pickup_request(
        member, [(sku_a, 3), (sku_b, 1)], coupon_id=issued.id, redeem_points=300
    )
    preview = await orders.stub.PreviewOrder(order_pb2.PreviewOrderRequest(order=request))
    order = (await orders.stub.PlaceOrder(request)).order
    assert order.status == order_pb2.ORDER_STATUS_AWAITING_PAYMENT
    assert order.coupon_id == issued.id and order.coupon_discount.amount == 500
    assert order.points_redeemed == 300 and order.points_discount.amount == 300
    assert_reconciles(order)
    # Every line carries a share of both, in proportion to what it costs.
    assert all(line.coupon_discount.amount > 0 for line in order.lines)
    assert all(line.points_discount.amount > 0 for line in order.lines)
    # The preview said the same, and changed nothing.
    assert [line.paid_amount for line in preview.lines] == [
        line.paid_amount for line in order.lines
    ]
    assert preview.total == order.total and preview.subtotal == order.subtotal
    assert preview.points_redeemed == 300 and preview.coupon_discount.amount == 500
    assert preview.points_to_earn > 0
    held = await coupon(stack, issued.id)
    assert held.status == member_pb2.COUPON_STATUS_LOCKED and held.order_id == order.id
    assert (await points(stack, member)).available == before.available - 300
    assert (await level(stack, PICKUP_STORE, sku_a)).reserved == 3


async def test_preview_changes_nothing(stack: Stack, orders: OrderService) -> None:
    (sku,) = stack.take_skus(1)
    await set_stock(stack, PICKUP_STORE, sku, 4)
    member = await new_member(stack, points=1000)
    issued = await issue_coupon(stack, member)
    request = pickup_request(member, [(sku, 2)], coupon_id=issued.id, redeem_points=100)
    preview = await orders.stub.PreviewOrder(order_pb2.PreviewOrderRequest(order=request))
    assert preview.subtotal.amount == 2 * preview.lines[0].unit_price.amount
    assert preview.total.amount == preview.subtotal.amount - 500 - 100
    assert preview.ready_by_time.seconds > 0
    assert [f.store_id for f in preview.fulfilments] == [PICKUP_STORE]
    assert (await level(stack, PICKUP_STORE, sku)).reserved == 0
    assert (await coupon(stack, issued.id)).status == member_pb2.COUPON_STATUS_AVAILABLE
    assert (await points(stack, member)).available == 1000
    listed = await orders.stub.ListOrders(order_pb2.ListOrdersRequest(member_id=member))
    assert list(listed.orders) == []


async def test_pay_at_pickup_is_confirmed_at_once(stack: Stack, orders: OrderService) -> None:
    (sku,) = stack.take_skus(1)
    await set_stock(stack, PICKUP_STORE, sku, 3)
    member = await new_member(stack)
    order = (
        await orders.stub.PlaceOrder(pickup_request(member, [(sku, 1)], pay_at_pickup=True))
    ).order
    assert order.status == order_pb2.ORDER_STATUS_CONFIRMED
    assert order.payment_status == order_pb2.PAYMENT_STATUS_PAY_AT_PICKUP
    assert not order.payment.HasField("deadline_time")
    assert order.payment.amount == order.total
    listed = await orders.stub.ListOrders(order_pb2.ListOrdersRequest(member_id=member))
    assert [o.id for o in listed.orders] == [order.id]


async def test_member_tier_and_channel_price_the_lines(stack: Stack, orders: OrderService) -> None:
    """The catalog is the price authority: order lines carry its unit price and rule."""
    (sku,) = stack.take_skus(1)
    await set_stock(stack, PICKUP_STORE, sku, 2)
    gold = "m_0001"  # a gold demo member
    order = (await orders.stub.PlaceOrder(pickup_request(gold, [(sku, 1)]))).order
    quote = await stack.catalog.QuotePrices(
        catalog_pb2.QuotePricesRequest(
            sku_ids=[sku],
            channel=common_pb2.CHANNEL_MINI_PROGRAM,
            tier="gold",
            store_id=PICKUP_STORE,
        )
    )
    assert order.lines[0].unit_price == quote.quotes[0].unit_price
    assert order.lines[0].price_rule == quote.quotes[0].rule
