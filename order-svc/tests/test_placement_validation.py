"""Bad orders get a clear error (code, ErrorInfo reason, the field) and change nothing:
no stock held, the coupon still available, the points still there, no order listed."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import grpc
import pytest

from order_svc.repository import ORDERS
from retail.common.v1 import common_pb2
from retail.member.v1 import member_pb2
from retail.order.v1 import order_pb2

from .conftest import (
    CLOSED_STORE,
    NO_PICKUP_STORE,
    PICKUP_STORE,
    OrderService,
    Stack,
    coupon,
    error_of,
    issue_coupon,
    level,
    new_member,
    pickup_request,
    points,
    set_stock,
)


@dataclass
class Customer:
    member_id: str
    coupon_id: str
    sku: str


@pytest.fixture
async def customer(stack: Stack) -> Customer:
    """A member with 1,000 points and a coupon, and a SKU with 5 in stock at st_001."""
    (sku,) = stack.take_skus(1)
    await set_stock(stack, PICKUP_STORE, sku, 5)
    member = await new_member(stack, points=1000)
    issued = await issue_coupon(stack, member)
    return Customer(member, issued.id, sku)


async def assert_nothing_changed(stack: Stack, orders: OrderService, who: Customer) -> None:
    stock = await level(stack, PICKUP_STORE, who.sku)
    assert (stock.on_hand, stock.reserved) == (5, 0)
    assert (await coupon(stack, who.coupon_id)).status == member_pb2.COUPON_STATUS_AVAILABLE
    summary = await points(stack, who.member_id)
    assert summary.available == 1000 and summary.total == 1000
    listed = await orders.stub.ListOrders(order_pb2.ListOrdersRequest(member_id=who.member_id))
    assert list(listed.orders) == []
    # Any attempt recorded is FAILED with every compensation delivered.
    async for doc in orders.database[ORDERS].find({"member_id": who.member_id}):
        assert doc["status"] == "failed"
        assert doc["saga"]["state"] == "compensated"
        assert all(e["state"] == "done" for e in doc["effects"])


@pytest.mark.parametrize(
    ("quantity", "field"), [(0, "lines[1].quantity"), (100, "lines[1].quantity")]
)
async def test_quantity_outside_1_to_99_is_invalid(
    stack: Stack, orders: OrderService, customer: Customer, quantity: int, field: str
) -> None:
    (other,) = stack.take_skus(1)
    request = pickup_request(customer.member_id, [(customer.sku, 1), (other, quantity)])
    error = await error_of(orders.stub.PlaceOrder(request))
    assert (error.code, error.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")
    assert [v.field for v in error.violations] == [field]
    await assert_nothing_changed(stack, orders, customer)


async def test_every_bad_field_is_named_at_once(orders: OrderService) -> None:
    request = order_pb2.PlaceOrderRequest(
        idempotency_key="bad key!",
        fulfillment=order_pb2.FULFILLMENT_TYPE_PICKUP_IN_STORE,
        lines=[
            order_pb2.PlaceOrderLine(sku_id="p_0001_s1", quantity=1),
            order_pb2.PlaceOrderLine(sku_id="p_0001_s1", quantity=1),
        ],
        coupon_code="ABC",
        redeem_points=-1,
        pay_at_pickup=True,
    )
    error = await error_of(orders.stub.PlaceOrder(request))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert {v.field for v in error.violations} == {
        "idempotency_key",
        "channel",
        "member_id",
        "lines[1].sku_id",
        "store_id",
        "coupon_code",
        "redeem_points",
    }


@pytest.mark.parametrize(
    ("fulfillment", "fields", "expected"),
    [
        (order_pb2.FULFILLMENT_TYPE_DELIVERY, {}, {"delivery_address"}),
        (
            order_pb2.FULFILLMENT_TYPE_IN_STORE_PURCHASE,
            {"store_id": PICKUP_STORE},
            {"associate_id", "till_payment"},
        ),
        (
            order_pb2.FULFILLMENT_TYPE_DELIVERY,
            {"store_id": PICKUP_STORE, "pay_at_pickup": True},
            {"store_id", "delivery_address", "pay_at_pickup"},
        ),
    ],
    ids=["delivery-without-address", "till-without-payment", "delivery-with-store"],
)
async def test_each_fulfilment_needs_its_own_fields(
    orders: OrderService, fulfillment: int, fields: dict[str, object], expected: set[str]
) -> None:
    request = order_pb2.PlaceOrderRequest(
        idempotency_key="k1",
        member_id="m_0001",
        fulfillment=fulfillment,  # type: ignore[arg-type]
        lines=[order_pb2.PlaceOrderLine(sku_id="p_0001_s1", quantity=1)],
        channel=common_pb2.CHANNEL_APP,
        **fields,  # type: ignore[arg-type]
    )
    error = await error_of(orders.stub.PlaceOrder(request))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert {v.field for v in error.violations} == expected


async def test_unknown_sku_is_not_found_naming_its_line(
    stack: Stack, orders: OrderService, customer: Customer
) -> None:
    request = pickup_request(
        customer.member_id,
        [(customer.sku, 1), ("p_9999_s9", 1)],
        coupon_id=customer.coupon_id,
        redeem_points=100,
    )
    error = await error_of(orders.stub.PlaceOrder(request))
    assert (error.code, error.reason) == (grpc.StatusCode.NOT_FOUND, "NOT_FOUND")
    assert [v.field for v in error.violations] == ["lines[1].sku_id"]
    await assert_nothing_changed(stack, orders, customer)
    # The same key and request answer the same error.
    again = await error_of(orders.stub.PlaceOrder(request))
    assert (again.code, again.reason, again.violations) == (
        error.code,
        error.reason,
        error.violations,
    )


async def test_inactive_product_is_refused_naming_its_line(
    stack: Stack, orders: OrderService, customer: Customer
) -> None:
    request = pickup_request(customer.member_id, [(stack.inactive_sku, 1), (customer.sku, 1)])
    error = await error_of(orders.stub.PlaceOrder(request))
    assert (error.code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "INVALID_STATE")
    assert [v.field for v in error.violations] == ["lines[0].sku_id"]
    await assert_nothing_changed(stack, orders, customer)


@pytest.mark.parametrize(
    ("store_id", "detail"),
    [(NO_PICKUP_STORE, "does not offer pickup"), (CLOSED_STORE, "is temporarily closed")],
    ids=["without-pickup", "closed"],
)
async def test_store_that_cannot_serve_the_pickup_is_refused(
    stack: Stack, orders: OrderService, customer: Customer, store_id: str, detail: str
) -> None:
    request = pickup_request(
        customer.member_id,
        [(customer.sku, 1)],
        store_id=store_id,
        coupon_id=customer.coupon_id,
        redeem_points=100,
    )
    error = await error_of(orders.stub.PlaceOrder(request))
    assert error.code == grpc.StatusCode.FAILED_PRECONDITION
    assert error.reason == "STORE_SERVICE_UNAVAILABLE"
    assert [(v.field, v.description) for v in error.violations] == [("store_id", detail)]
    assert error.metadata == {"store_id": store_id, "service": "pickup"}
    await assert_nothing_changed(stack, orders, customer)


async def test_unknown_store_and_member_are_not_found(
    stack: Stack, orders: OrderService, customer: Customer
) -> None:
    unknown_store = pickup_request(customer.member_id, [(customer.sku, 1)], store_id="st_404")
    error = await error_of(orders.stub.PlaceOrder(unknown_store))
    assert (error.code, [v.field for v in error.violations]) == (
        grpc.StatusCode.NOT_FOUND,
        ["store_id"],
    )
    unknown_member = pickup_request(f"m_{uuid.uuid4().hex[:8]}", [(customer.sku, 1)])
    error = await error_of(orders.stub.PlaceOrder(unknown_member))
    assert (error.code, [v.field for v in error.violations]) == (
        grpc.StatusCode.NOT_FOUND,
        ["member_id"],
    )
    await assert_nothing_changed(stack, orders, customer)


async def test_coupon_of_another_member_is_refused(
    stack: Stack, orders: OrderService, customer: Customer
) -> None:
    stranger = await new_member(stack)
    theirs = await issue_coupon(stack, stranger)
    request = pickup_request(
        customer.member_id, [(customer.sku, 2)], coupon_id=theirs.id, redeem_points=100
    )
    error = await error_of(orders.stub.PlaceOrder(request))
    assert (error.code, error.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "COUPON_NOT_APPLICABLE",
    )
    assert [v.field for v in error.violations] == ["coupon_id"]
    assert (await coupon(stack, theirs.id)).status == member_pb2.COUPON_STATUS_AVAILABLE
    await assert_nothing_changed(stack, orders, customer)
    failed = await orders.database[ORDERS].find_one({"member_id": customer.member_id})
    assert failed is not None and [e["id"] for e in failed["effects"]] == ["release_stock:f1"]


async def test_insufficient_points_release_the_coupon_and_stock_held_before(
    stack: Stack, orders: OrderService, customer: Customer
) -> None:
    request = pickup_request(
        customer.member_id,
        [(customer.sku, 5)],
        coupon_id=customer.coupon_id,
        redeem_points=2000,
    )
    error = await error_of(orders.stub.PlaceOrder(request))
    assert error.code == grpc.StatusCode.FAILED_PRECONDITION
    assert error.reason == "INSUFFICIENT_POINTS"
    assert [v.field for v in error.violations] == ["redeem_points"]
    await assert_nothing_changed(stack, orders, customer)
    failed = await orders.database[ORDERS].find_one({"member_id": customer.member_id})
    assert failed is not None and failed["end_reason"] == "insufficient_points"
    assert [e["id"] for e in failed["effects"]] == [
        f"release_coupon:{customer.coupon_id}",
        "release_stock:f1",
    ]


async def test_out_of_stock_is_refused_before_anything_is_held(
    stack: Stack, orders: OrderService, customer: Customer
) -> None:
    request = pickup_request(
        customer.member_id,
        [(customer.sku, 6)],
        coupon_id=customer.coupon_id,
        redeem_points=100,
    )
    error = await error_of(orders.stub.PlaceOrder(request))
    assert (error.code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "OUT_OF_STOCK")
    assert [v.field for v in error.violations] == ["lines[0].quantity"]
    assert error.metadata["available"] == "5" and error.metadata["sku_id"] == customer.sku
    await assert_nothing_changed(stack, orders, customer)
    # Refused by a read of the stock before the order existed: no attempt was recorded.
    assert await orders.database[ORDERS].count_documents({"member_id": customer.member_id}) == 0
