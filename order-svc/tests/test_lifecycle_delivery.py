"""MarkShipped and MarkDelivered over real gRPC for delivery orders: stock committed per
fulfilment at shipping, the order DELIVERED (coupon redeemed, completion) when every
fulfilment is, replays, concurrent deliveries of a split order, who may move a fulfilment
(the shipping store's staff, admins, a delivery partner's key), and bad input."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import grpc

from retail.common.v1 import common_pb2
from retail.member.v1 import member_pb2
from retail.order.v1 import order_pb2
from retail_kit.apikeys import new_api_key

from .conftest import (
    NO_PICKUP_STORE,
    PAYMENT_KEY_ENTRY,
    SHIP_STORES,
    OrderService,
    Stack,
    coupon,
    error_of,
    issue_coupon,
    level,
    new_member,
    order_service,
    set_stock,
)
from .lifecycle_support import (
    ADMIN_ACTOR,
    associate,
    customer,
    effect_kinds,
    key_metadata,
    pay,
    place_pickup,
    stored,
)
from .test_lifecycle_cancel import cancel

# A few metres from st_001; st_006 is the next ship-from-store store (3.5 km).
NEAR_ST_001 = (31.2290, 121.4480)
STOCKED_SHIP_STORES = [s for s in SHIP_STORES if s != NO_PICKUP_STORE]


async def place_delivery(
    stack: Stack, orders: OrderService, where: dict[str, dict[str, int]], **fields: Any
) -> tuple[order_pb2.Order, str]:
    """A paid delivery order of fresh SKUs stocked only as `where` says ({store: {sku
    index: units}}), one unit of each SKU; (the order, its member)."""
    count = 1 + max(i for units in where.values() for i in units)
    skus = stack.take_skus(count)
    for store in STOCKED_SHIP_STORES:
        for index, sku in enumerate(skus):
            await set_stock(stack, store, sku, where.get(store, {}).get(index, 0))
    member = await new_member(stack)
    if fields.pop("with_coupon", False):
        fields["coupon_id"] = (await issue_coupon(stack, member)).id
    lat, lng = NEAR_ST_001
    request = order_pb2.PlaceOrderRequest(
        idempotency_key=f"d-{uuid.uuid4().hex}",
        member_id=member,
        fulfillment=order_pb2.FULFILLMENT_TYPE_DELIVERY,
        lines=[order_pb2.PlaceOrderLine(sku_id=sku, quantity=1) for sku in skus],
        channel=common_pb2.CHANNEL_APP,
        delivery_address=order_pb2.DeliveryAddress(
            recipient="王雨桐",
            phone="+8613800000001",
            line1="南京西路1601号",
            city="上海市",
            location=common_pb2.GeoPoint(latitude=lat, longitude=lng),
        ),
        **fields,
    )
    order = (await orders.stub.PlaceOrder(request)).order
    return await pay(orders, order), member


def shipped(
    order: order_pb2.Order, fulfilment_id: str, actor: common_pb2.Actor | None
) -> order_pb2.MarkShippedRequest:
    request = order_pb2.MarkShippedRequest(
        order_id=order.id, fulfilment_id=fulfilment_id, carrier="SF", tracking_number="SF1234"
    )
    if actor is not None:
        request.actor.CopyFrom(actor)
    return request


def delivered(
    order: order_pb2.Order, fulfilment_id: str, actor: common_pb2.Actor | None
) -> order_pb2.MarkDeliveredRequest:
    request = order_pb2.MarkDeliveredRequest(order_id=order.id, fulfilment_id=fulfilment_id)
    if actor is not None:
        request.actor.CopyFrom(actor)
    return request


async def test_a_delivery_is_shipped_with_its_stock_committed_then_delivered(
    stack: Stack, orders: OrderService
) -> None:
    order, member = await place_delivery(stack, orders, {"st_001": {0: 4}}, with_coupon=True)
    assert [(f.id, f.store_id) for f in order.fulfilments] == [("f1", "st_001")]
    sku = order.lines[0].sku_id
    reply = await orders.stub.MarkShipped(shipped(order, "f1", associate("st_001")))
    ship = reply.order
    assert ship.status == order_pb2.ORDER_STATUS_SHIPPED
    fulfilment = ship.fulfilments[0]
    assert (fulfilment.status, fulfilment.carrier, fulfilment.tracking_number) == (
        order_pb2.FULFILMENT_STATUS_SHIPPED,
        "SF",
        "SF1234",
    )
    stock = await level(stack, "st_001", sku)
    assert (stock.on_hand, stock.reserved) == (3, 0)
    assert (await orders.stub.MarkShipped(shipped(order, "f1", associate("st_001")))).order == ship
    done = (await orders.stub.MarkDelivered(delivered(order, "f1", associate("st_001")))).order
    assert done.status == order_pb2.ORDER_STATUS_DELIVERED
    assert done.fulfilments[0].status == order_pb2.FULFILMENT_STATUS_DELIVERED
    doc = await stored(orders, order.id)
    assert [e["kind"] for e in doc["events"]] == ["placed", "paid", "shipped", "delivered"]
    assert effect_kinds(doc) == [
        "commit_stock:f1",
        f"redeem_coupon:{order.coupon_id}",
        "record_completed",
    ]
    assert (await coupon(stack, order.coupon_id)).status == member_pb2.COUPON_STATUS_REDEEMED
    again = await orders.stub.MarkDelivered(delivered(order, "f1", ADMIN_ACTOR))
    assert again.order == done and len((await stored(orders, order.id))["events"]) == 4
    # Shipped goods are not cancelled.
    details = await error_of(orders.stub.CancelOrder(cancel(order.id, customer(member))))
    assert (details.code, details.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "INVALID_STATE")


async def test_a_split_delivery_is_delivered_when_every_fulfilment_is(
    stack: Stack, orders: OrderService
) -> None:
    order, _ = await place_delivery(stack, orders, {"st_001": {0: 2}, "st_006": {1: 2}})
    by_store = {f.store_id: f.id for f in order.fulfilments}
    assert set(by_store) == {"st_001", "st_006"}
    first, second = by_store["st_001"], by_store["st_006"]
    await orders.stub.MarkShipped(shipped(order, first, associate("st_001")))
    early = await error_of(orders.stub.MarkDelivered(delivered(order, second, ADMIN_ACTOR)))
    assert (early.code, early.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "INVALID_STATE")
    part = (await orders.stub.MarkDelivered(delivered(order, first, ADMIN_ACTOR))).order
    assert part.status == order_pb2.ORDER_STATUS_SHIPPED
    assert [f.status for f in part.fulfilments] == [
        order_pb2.FULFILMENT_STATUS_DELIVERED
        if f.id == first
        else order_pb2.FULFILMENT_STATUS_RESERVED
        for f in part.fulfilments
    ]
    await orders.stub.MarkShipped(shipped(order, second, associate("st_006")))
    done = (await orders.stub.MarkDelivered(delivered(order, second, ADMIN_ACTOR))).order
    assert done.status == order_pb2.ORDER_STATUS_DELIVERED
    doc = await stored(orders, order.id)
    kinds = [e["kind"] for e in doc["events"]]
    assert kinds == ["placed", "paid", "shipped", "fulfilment_delivered", "shipped", "delivered"]
    assert effect_kinds(doc) == [
        f"commit_stock:{first}",
        f"commit_stock:{second}",
        "record_completed",
    ]


async def test_concurrent_deliveries_of_a_split_order_complete_it_once(
    stack: Stack, orders: OrderService
) -> None:
    order, _ = await place_delivery(stack, orders, {"st_001": {0: 1}, "st_006": {1: 1}})
    ids = [f.id for f in order.fulfilments]
    await asyncio.gather(
        *(orders.stub.MarkShipped(shipped(order, fid, ADMIN_ACTOR)) for fid in ids * 3)
    )
    replies = await asyncio.gather(
        *(orders.stub.MarkDelivered(delivered(order, fid, ADMIN_ACTOR)) for fid in ids * 5)
    )
    assert replies[-1].order.status in (
        order_pb2.ORDER_STATUS_SHIPPED,
        order_pb2.ORDER_STATUS_DELIVERED,
    )
    doc = await stored(orders, order.id)
    assert doc["status"] == "delivered"
    kinds = [e["kind"] for e in doc["events"]]
    assert kinds.count("shipped") == 2 and kinds.count("delivered") == 1
    assert kinds.count("fulfilment_delivered") == 1
    assert effect_kinds(doc).count("record_completed") == 1
    for fid in ids:
        assert effect_kinds(doc).count(f"commit_stock:{fid}") == 1


async def test_who_may_move_a_fulfilment(stack: Stack) -> None:
    courier_key, courier_entry = new_api_key("pk_courier", "sf_express", ["order.delivery"])
    erp_key, erp_entry = new_api_key("pk_erp", "erp", ["order.read"])
    keys = ";".join((PAYMENT_KEY_ENTRY, courier_entry, erp_entry))
    async with order_service(stack, partner_api_keys=keys) as service:
        order, member = await place_delivery(stack, service, {"st_001": {0: 3}})
        before = await stored(service, order.id)
        for actor, key in (
            (associate("st_006"), None),
            (customer(member), None),
            (None, None),
            (None, erp_key),
            (common_pb2.Actor(kind=common_pb2.ACTOR_KIND_KIOSK, id="k", store_id="st_001"), None),
        ):
            metadata = key_metadata(key) if key else None
            details = await error_of(
                service.stub.MarkShipped(shipped(order, "f1", actor), metadata=metadata)
            )
            assert (details.code, details.reason) == (
                grpc.StatusCode.PERMISSION_DENIED,
                "PERMISSION_DENIED",
            )
            assert details.metadata["required_scope"] == "order.delivery"
        assert await stored(service, order.id) == before
        # The courier's key, with no actor at all, ships and delivers.
        ship = await service.stub.MarkShipped(
            shipped(order, "f1", None), metadata=key_metadata(courier_key)
        )
        assert ship.order.status == order_pb2.ORDER_STATUS_SHIPPED
        done = await service.stub.MarkDelivered(
            delivered(order, "f1", None), metadata=key_metadata(courier_key)
        )
        assert done.order.status == order_pb2.ORDER_STATUS_DELIVERED
        # A manager of the shipping store may too (a replay here).
        manager = common_pb2.Actor(
            kind=common_pb2.ACTOR_KIND_STORE_MANAGER, id="mgr", store_id="st_001"
        )
        assert (
            await service.stub.MarkDelivered(delivered(order, "f1", manager))
        ).order == done.order


async def test_bad_shipping_requests_change_nothing(stack: Stack, orders: OrderService) -> None:
    order, _ = await place_delivery(stack, orders, {"st_001": {0: 3}})
    before = await stored(orders, order.id)
    sku = order.lines[0].sku_id
    unknown = await error_of(orders.stub.MarkShipped(shipped(order, "f9", ADMIN_ACTOR)))
    assert (unknown.code, unknown.metadata) == (
        grpc.StatusCode.NOT_FOUND,
        {"entity": "fulfilment", "id": "f9"},
    )
    no_order = order_pb2.Order(id="o_404")
    missing = await error_of(orders.stub.MarkShipped(shipped(no_order, "f1", ADMIN_ACTOR)))
    assert missing.code is grpc.StatusCode.NOT_FOUND
    blank = await error_of(orders.stub.MarkShipped(order_pb2.MarkShippedRequest(order_id=order.id)))
    assert [v.field for v in blank.violations] == ["fulfilment_id"]
    not_shipped = await error_of(orders.stub.MarkDelivered(delivered(order, "f1", ADMIN_ACTOR)))
    assert not_shipped.reason == "INVALID_STATE"
    assert await stored(orders, order.id) == before
    assert (await level(stack, "st_001", sku)).reserved == 1
    # A cancelled delivery is not shipped; a pickup order has no shipping.
    other, other_member = await place_delivery(stack, orders, {"st_001": {0: 1}})
    gone = (await orders.stub.CancelOrder(cancel(other.id, customer(other_member)))).order
    refused = await error_of(orders.stub.MarkShipped(shipped(gone, "f1", ADMIN_ACTOR)))
    assert (refused.code, refused.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "INVALID_STATE")
    placed = await place_pickup(stack, orders)
    not_delivery = await error_of(orders.stub.MarkShipped(shipped(placed.order, "f1", ADMIN_ACTOR)))
    assert not_delivery.reason == "INVALID_STATE"
    assert not_delivery.metadata["order_id"] == placed.order.id
