"""PlaceOrder for delivery: shipped from the nearest ship-from-store store that can send every
line, else split greedily into one fulfilment (and one reservation) per store."""

from __future__ import annotations

import grpc

from retail.common.v1 import common_pb2
from retail.order.v1 import order_pb2

from .conftest import (
    NO_PICKUP_STORE,
    SHIP_STORES,
    STORE_LOCATIONS,
    OrderService,
    Stack,
    assert_reconciles,
    error_of,
    level,
    new_member,
    set_stock,
)

# A few metres from st_001; then st_006 (3.5 km), st_003 (5 km), st_017, st_008, st_010.
NEAR_ST_001 = (31.2290, 121.4480)
STOCKED_SHIP_STORES = [s for s in SHIP_STORES if s != NO_PICKUP_STORE]


def delivery_request(
    member_id: str, lines: list[tuple[str, int]], key: str
) -> order_pb2.PlaceOrderRequest:
    lat, lng = NEAR_ST_001
    return order_pb2.PlaceOrderRequest(
        idempotency_key=key,
        member_id=member_id,
        fulfillment=order_pb2.FULFILLMENT_TYPE_DELIVERY,
        lines=[order_pb2.PlaceOrderLine(sku_id=s, quantity=q) for s, q in lines],
        channel=common_pb2.CHANNEL_APP,
        delivery_address=order_pb2.DeliveryAddress(
            recipient="王雨桐",
            phone="+8613800000001",
            line1="南京西路1601号",
            district="静安区",
            city="上海市",
            province="上海市",
            location=common_pb2.GeoPoint(latitude=lat, longitude=lng),
        ),
    )


async def stock_only(stack: Stack, sku: str, where: dict[str, int]) -> None:
    """`sku` stocked exactly as given in the ship-from-store stores, 0 in the others."""
    for store in STOCKED_SHIP_STORES:
        await set_stock(stack, store, sku, where.get(store, 0))


async def test_the_nearest_store_with_every_line_ships_it(
    stack: Stack, orders: OrderService
) -> None:
    sku_a, sku_b = stack.take_skus(2)
    await stock_only(stack, sku_a, {"st_001": 5, "st_006": 5, "st_003": 5})
    await stock_only(stack, sku_b, {"st_001": 1, "st_006": 5, "st_003": 5})
    member = await new_member(stack)
    # st_001 is nearest but has only 1 of sku_b: st_006 (next nearest) has both.
    order = (
        await orders.stub.PlaceOrder(delivery_request(member, [(sku_a, 2), (sku_b, 2)], "d-1"))
    ).order
    assert order.fulfillment == order_pb2.FULFILLMENT_TYPE_DELIVERY
    assert order.status == order_pb2.ORDER_STATUS_AWAITING_PAYMENT
    assert [(f.id, f.store_id, f.reservation_id) for f in order.fulfilments] == [
        ("f1", "st_006", order.id)
    ]
    assert order.store_id == "st_006"
    assert order.delivery_address.location.latitude == NEAR_ST_001[0]
    assert_reconciles(order)
    assert (await level(stack, "st_006", sku_a)).reserved == 2
    assert (await level(stack, "st_006", sku_b)).reserved == 2
    assert (await level(stack, "st_001", sku_a)).reserved == 0


async def test_no_single_store_splits_into_one_reservation_per_store(
    stack: Stack, orders: OrderService
) -> None:
    sku_a, sku_b, sku_c = stack.take_skus(3)
    await stock_only(stack, sku_a, {"st_001": 5})
    await stock_only(stack, sku_b, {"st_006": 5})
    await stock_only(stack, sku_c, {"st_001": 5, "st_006": 5})
    member = await new_member(stack)
    order = (
        await orders.stub.PlaceOrder(
            delivery_request(member, [(sku_a, 1), (sku_b, 2), (sku_c, 3)], "d-2")
        )
    ).order
    assert [(f.id, f.store_id, f.reservation_id) for f in order.fulfilments] == [
        ("f1", "st_001", f"{order.id}:1"),
        ("f2", "st_006", f"{order.id}:2"),
    ]
    # st_001 serves two lines (a, c), so it is chosen first and takes both.
    assert [line.fulfilment_id for line in order.lines] == ["f1", "f2", "f1"]
    assert all(f.status == order_pb2.FULFILMENT_STATUS_RESERVED for f in order.fulfilments)
    assert_reconciles(order)
    assert (await level(stack, "st_001", sku_a)).reserved == 1
    assert (await level(stack, "st_006", sku_b)).reserved == 2
    assert (await level(stack, "st_001", sku_c)).reserved == 3
    assert (await level(stack, "st_006", sku_c)).reserved == 0
    by_store = await orders.stub.ListOrders(order_pb2.ListOrdersRequest(store_id="st_006"))
    assert order.id in [o.id for o in by_store.orders]


async def test_a_line_no_store_can_ship_is_out_of_stock_and_nothing_is_held(
    stack: Stack, orders: OrderService
) -> None:
    sku_a, sku_b = stack.take_skus(2)
    await stock_only(stack, sku_a, {"st_001": 5})
    await stock_only(stack, sku_b, {"st_001": 1, "st_006": 1})
    member = await new_member(stack)
    request = delivery_request(member, [(sku_a, 1), (sku_b, 2)], "d-3")
    error = await error_of(orders.stub.PlaceOrder(request))
    assert error.code == grpc.StatusCode.FAILED_PRECONDITION
    assert error.reason == "OUT_OF_STOCK"
    assert [v.field for v in error.violations] == ["lines[1].quantity"]
    assert error.metadata["sku_id"] == sku_b
    for store in STOCKED_SHIP_STORES:
        assert (await level(stack, store, sku_a)).reserved == 0
        assert (await level(stack, store, sku_b)).reserved == 0
    # A replay answers the same error; nothing was placed.
    again = await error_of(orders.stub.PlaceOrder(request))
    assert (again.code, again.reason, again.violations) == (
        error.code,
        error.reason,
        error.violations,
    )
    listed = await orders.stub.ListOrders(order_pb2.ListOrdersRequest(member_id=member))
    assert list(listed.orders) == []


def test_ship_stores_are_the_demo_ones() -> None:
    assert "st_001" in STOCKED_SHIP_STORES and "st_006" in STOCKED_SHIP_STORES
    assert STORE_LOCATIONS["st_001"] == (31.2286, 121.4476)
