"""What the lifecycle tests share: actors, a payment partner calling ConfirmPayment with its
API key, orders brought to a given status over gRPC, the stored order document, and a
snapshot of everything an order touches (stock, coupon, points, the order) to show that a
refused call changed nothing."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from order_svc.repository import ORDERS
from retail.common.v1 import common_pb2
from retail.order.v1 import order_pb2
from retail_kit.mongo import Document

from .conftest import (
    PAYMENT_KEY,
    PICKUP_STORE,
    OrderService,
    Stack,
    coupon,
    issue_coupon,
    level,
    new_member,
    pickup_request,
    points,
    set_stock,
)

OTHER_STORE = "st_002"


def associate(store_id: str = PICKUP_STORE, actor_id: str = "as_test_01") -> common_pb2.Actor:
    return common_pb2.Actor(kind=common_pb2.ACTOR_KIND_ASSOCIATE, id=actor_id, store_id=store_id)


def manager(store_id: str = PICKUP_STORE) -> common_pb2.Actor:
    return common_pb2.Actor(
        kind=common_pb2.ACTOR_KIND_STORE_MANAGER, id="mgr_test", store_id=store_id
    )


def kiosk(store_id: str = PICKUP_STORE) -> common_pb2.Actor:
    return common_pb2.Actor(
        kind=common_pb2.ACTOR_KIND_KIOSK, id=f"k_{store_id}_01", store_id=store_id
    )


def customer(member_id: str) -> common_pb2.Actor:
    return common_pb2.Actor(kind=common_pb2.ACTOR_KIND_CUSTOMER, id=member_id)


ADMIN_ACTOR = common_pb2.Actor(kind=common_pb2.ACTOR_KIND_ADMIN, id="admin_ops")


def key_metadata(key: str = PAYMENT_KEY) -> tuple[tuple[str, str], ...]:
    return (("x-api-key", key),)


def payment_request(
    order: order_pb2.Order, reference: str | None = None, amount: int | None = None
) -> order_pb2.ConfirmPaymentRequest:
    return order_pb2.ConfirmPaymentRequest(
        order_id=order.id,
        payment_reference=reference or f"wx-{uuid.uuid4().hex[:16]}",
        amount=common_pb2.Money(
            amount=order.total.amount if amount is None else amount, currency="CNY"
        ),
        provider="wechat_pay",
    )


async def pay(
    orders: OrderService, order: order_pb2.Order, reference: str | None = None
) -> order_pb2.Order:
    """The payment partner confirms the order's total."""
    reply = await orders.stub.ConfirmPayment(
        payment_request(order, reference), metadata=key_metadata()
    )
    return reply.order


@dataclass
class Placed:
    order: order_pb2.Order
    member_id: str
    skus: list[str]
    coupon_id: str = ""


async def place_pickup(
    stack: Stack,
    orders: OrderService,
    *,
    quantity: int = 2,
    stock: int = 10,
    with_coupon: bool = False,
    redeem_points: int = 0,
    pay_at_pickup: bool = False,
    lines: int = 1,
) -> Placed:
    """A fresh member's pickup order at PICKUP_STORE for fresh SKUs (AWAITING_PAYMENT, or
    CONFIRMED when paid at pickup)."""
    skus = stack.take_skus(lines)
    for sku in skus:
        await set_stock(stack, PICKUP_STORE, sku, stock)
    member = await new_member(stack, points=max(redeem_points * 2, 0))
    fields: dict[str, Any] = {}
    coupon_id = ""
    if with_coupon:
        coupon_id = (await issue_coupon(stack, member)).id
        fields["coupon_id"] = coupon_id
    if redeem_points:
        fields["redeem_points"] = redeem_points
    if pay_at_pickup:
        fields["pay_at_pickup"] = True
    request = pickup_request(member, [(sku, quantity) for sku in skus], **fields)
    order = (await orders.stub.PlaceOrder(request)).order
    return Placed(order, member, skus, coupon_id)


async def paid_pickup(stack: Stack, orders: OrderService, **options: Any) -> Placed:
    placed = await place_pickup(stack, orders, **options)
    placed.order = await pay(orders, placed.order)
    return placed


async def ready_pickup(stack: Stack, orders: OrderService, **options: Any) -> tuple[Placed, str]:
    """A CONFIRMED (paid, or pay at pickup) order marked ready: (it, its pickup code)."""
    if options.get("pay_at_pickup"):
        placed = await place_pickup(stack, orders, **options)
    else:
        placed = await paid_pickup(stack, orders, **options)
    reply = await orders.stub.MarkReadyForPickup(
        order_pb2.MarkReadyForPickupRequest(order_id=placed.order.id, actor=associate())
    )
    placed.order = reply.order
    return placed, reply.pickup_code


async def stored(orders: OrderService, order_id: str) -> Document:
    doc = await orders.database[ORDERS].find_one({"_id": order_id})
    assert doc is not None
    return doc


def effect_kinds(doc: Document) -> list[str]:
    return [e["id"] for e in doc.get("effects", ())]


async def snapshot(stack: Stack, orders: OrderService, placed: Placed) -> dict[str, Any]:
    """Everything the order touches: its document (less update bookkeeping), each SKU's
    stock, its coupon and the member's points."""
    doc = await stored(orders, placed.order.id)
    state: dict[str, Any] = {
        "order": {k: v for k, v in doc.items() if k not in ("update_time",)},
        "stock": [
            (stock.on_hand, stock.reserved, stock.available)
            for stock in [await level(stack, PICKUP_STORE, sku) for sku in placed.skus]
        ],
        "points": await points(stack, placed.member_id),
    }
    if placed.coupon_id:
        state["coupon"] = await coupon(stack, placed.coupon_id)
    return state
