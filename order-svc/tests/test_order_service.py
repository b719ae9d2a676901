"""order-svc over a real gRPC socket against the embedded database (or MONGODB_URI).

There is no PlaceOrder yet, so orders are written with the repository's own mapping straight
into the test database and read back over gRPC.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from order_svc import app
from order_svc.domain import (
    Channel,
    FulfillmentType,
    Money,
    Order,
    OrderLine,
    OrderStatus,
    PaymentStatus,
    order_totals,
)
from order_svc.repository import ORDERS, order_to_document
from order_svc.settings import OrderSettings
from retail.common.v1 import common_pb2
from retail.order.v1 import order_pb2, order_pb2_grpc
from retail_kit.errors import RpcErrorDetails
from retail_kit.paging import encode_page_token, query_fingerprint
from retail_kit.testing import channel_to, running_service, unique_name

BASE_TIME = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
ORDER_COUNT = 30


def make_order(number: int) -> Order:
    """Orders come in pairs created in the same millisecond, so the id breaks the tie."""
    lines = (
        OrderLine.priced(f"sku_{number:03d}_a", 1 + number % 3, Money(1590)),
        OrderLine.priced("sku_latte", 2, Money(2800)),
    )
    totals = order_totals(lines, Money(500 if number % 4 == 0 else 0))
    created = BASE_TIME + timedelta(minutes=number // 2, milliseconds=123)
    delivery = number == 7
    return Order(
        id=f"o_{number:04d}",
        member_id="m_0001" if number % 3 else "m_0002",
        store_id=None if delivery else ("st_001" if number % 2 else "st_002"),
        fulfillment=FulfillmentType.DELIVERY if delivery else FulfillmentType.PICKUP_IN_STORE,
        status=OrderStatus.READY_FOR_PICKUP if number == 1 else OrderStatus.CONFIRMED,
        payment_status=PaymentStatus.PAY_AT_PICKUP if number == 1 else PaymentStatus.PAID,
        lines=lines,
        subtotal=totals.subtotal,
        discount=totals.discount,
        total=totals.total,
        channel=Channel.MINI_PROGRAM if number % 2 else Channel.POS,
        associate_id="as_007" if number == 1 else None,
        create_time=created,
        update_time=created + timedelta(minutes=5),
    )


ORDERS_IN_DB = [make_order(n) for n in range(1, ORDER_COUNT + 1)]


def newest_first(orders: list[Order]) -> list[str]:
    return [o.id for o in sorted(orders, key=lambda o: (o.create_time, o.id), reverse=True)]


def settings_for(mongo_uri: str) -> OrderSettings:
    return OrderSettings(mongodb_uri=mongo_uri, database=unique_name("order"))


@pytest.fixture(scope="module")
async def orders(mongo_uri: str) -> AsyncIterator[order_pb2_grpc.OrderServiceStub]:
    async with running_service(
        app.NAME, settings_for(mongo_uri), app.SERVICE_NAMES, app.register, app.on_ready
    ) as host:
        await host.context.database[ORDERS].insert_many(
            [order_to_document(o) for o in reversed(ORDERS_IN_DB)]
        )
        async with channel_to(host) as channel:
            yield order_pb2_grpc.OrderServiceStub(channel)


async def list_all(
    orders: order_pb2_grpc.OrderServiceStub, page_size: int, **owner: str
) -> tuple[list[str], int]:
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        reply = await orders.ListOrders(
            order_pb2.ListOrdersRequest(page_size=page_size, page_token=token, **owner)
        )
        seen.extend(o.id for o in reply.orders)
        pages += 1
        token = reply.next_page_token
        if not token:
            return seen, pages


async def test_health_reports_serving_for_the_service(mongo_uri: str) -> None:
    async with (
        running_service(
            app.NAME, settings_for(mongo_uri), app.SERVICE_NAMES, app.register, app.on_ready
        ) as host,
        channel_to(host) as channel,
    ):
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "retail.order.v1.OrderService"):
            reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_get_order_returns_every_field(orders: order_pb2_grpc.OrderServiceStub) -> None:
    reply = await orders.GetOrder(order_pb2.GetOrderRequest(id="o_0001"))
    order = reply.order
    assert order.id == "o_0001"
    assert order.member_id == "m_0001"
    assert order.store_id == "st_001"
    assert order.fulfillment == order_pb2.FULFILLMENT_TYPE_PICKUP_IN_STORE
    assert order.status == order_pb2.ORDER_STATUS_READY_FOR_PICKUP
    assert order.payment_status == order_pb2.PAYMENT_STATUS_PAY_AT_PICKUP
    lines = [
        (li.sku_id, li.quantity, li.unit_price.amount, li.line_total.amount) for li in order.lines
    ]
    assert lines == [("sku_001_a", 2, 1590, 3180), ("sku_latte", 2, 2800, 5600)]
    assert order.lines[0].unit_price.currency == "CNY"
    assert order.subtotal == common_pb2.Money(amount=8780, currency="CNY")
    assert order.discount == common_pb2.Money(amount=0, currency="CNY")
    assert order.total == common_pb2.Money(amount=8780, currency="CNY")
    assert order.channel == common_pb2.CHANNEL_MINI_PROGRAM
    assert order.associate_id == "as_007"
    assert order.create_time.ToDatetime(UTC) == ORDERS_IN_DB[0].create_time
    assert order.update_time.ToDatetime(UTC) == ORDERS_IN_DB[0].update_time


async def test_discounted_delivery_order_without_store(
    orders: order_pb2_grpc.OrderServiceStub,
) -> None:
    delivery = (await orders.GetOrder(order_pb2.GetOrderRequest(id="o_0007"))).order
    assert delivery.fulfillment == order_pb2.FULFILLMENT_TYPE_DELIVERY
    assert delivery.store_id == "" and delivery.associate_id == ""
    discounted = (await orders.GetOrder(order_pb2.GetOrderRequest(id="o_0004"))).order
    assert discounted.discount.amount == 500
    assert discounted.total.amount == discounted.subtotal.amount - 500
    assert discounted.channel == common_pb2.CHANNEL_POS


async def test_unknown_order_is_not_found_with_error_info(
    orders: order_pb2_grpc.OrderServiceStub,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await orders.GetOrder(order_pb2.GetOrderRequest(id="o_9999"))
    details = RpcErrorDetails.from_rpc_error(caught.value)
    assert details.code == grpc.StatusCode.NOT_FOUND
    assert details.reason == "NOT_FOUND"
    assert details.metadata == {"entity": "order", "id": "o_9999"}


@pytest.mark.parametrize("bad_id", ["", "o 1", "x" * 200])
async def test_malformed_id_is_invalid_argument_naming_the_field(
    orders: order_pb2_grpc.OrderServiceStub, bad_id: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await orders.GetOrder(order_pb2.GetOrderRequest(id=bad_id))
    details = RpcErrorDetails.from_rpc_error(caught.value)
    assert details.code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.reason == "INVALID_ARGUMENT"
    assert [v.field for v in details.violations] == ["id"]


async def test_batch_get_keeps_request_order_and_lists_missing(
    orders: order_pb2_grpc.OrderServiceStub,
) -> None:
    reply = await orders.BatchGetOrders(
        order_pb2.BatchGetOrdersRequest(ids=["o_0010", "o_0404", "o_0002", "o_0010"])
    )
    assert [o.id for o in reply.orders] == ["o_0010", "o_0002"]
    assert list(reply.missing_ids) == ["o_0404"]


async def test_batch_get_refuses_oversized_batches(
    orders: order_pb2_grpc.OrderServiceStub,
) -> None:
    ids = [f"o_{n}" for n in range(501)]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await orders.BatchGetOrders(order_pb2.BatchGetOrdersRequest(ids=ids))
    details = RpcErrorDetails.from_rpc_error(caught.value)
    assert details.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in details.violations] == ["ids"]


@pytest.mark.parametrize("page_size", [1, 3, 4, 100])
async def test_member_orders_page_newest_first_each_exactly_once(
    orders: order_pb2_grpc.OrderServiceStub, page_size: int
) -> None:
    seen, pages = await list_all(orders, page_size, member_id="m_0001")
    expected = newest_first([o for o in ORDERS_IN_DB if o.member_id == "m_0001"])
    assert seen == expected
    assert pages == max(1, -(-len(expected) // page_size))


async def test_store_orders_page_newest_first_each_exactly_once(
    orders: order_pb2_grpc.OrderServiceStub,
) -> None:
    seen, _ = await list_all(orders, 4, store_id="st_001")
    assert seen == newest_first([o for o in ORDERS_IN_DB if o.store_id == "st_001"])
    assert "o_0007" not in seen  # shipped from a warehouse, no store


async def test_ties_in_create_time_are_broken_by_id_descending(
    orders: order_pb2_grpc.OrderServiceStub,
) -> None:
    # o_0028 and o_0029 were created in the same millisecond, both by m_0001.
    reply = await orders.ListOrders(order_pb2.ListOrdersRequest(member_id="m_0001", page_size=3))
    assert [o.id for o in reply.orders] == ["o_0029", "o_0028", "o_0026"]
    assert reply.orders[0].create_time == reply.orders[1].create_time
    # Resuming between the two keeps the second one.
    first = await orders.ListOrders(order_pb2.ListOrdersRequest(member_id="m_0001", page_size=1))
    rest = await orders.ListOrders(
        order_pb2.ListOrdersRequest(
            member_id="m_0001", page_size=1, page_token=first.next_page_token
        )
    )
    assert [o.id for o in rest.orders] == ["o_0028"]


async def test_owner_without_orders_gets_an_empty_last_page(
    orders: order_pb2_grpc.OrderServiceStub,
) -> None:
    reply = await orders.ListOrders(order_pb2.ListOrdersRequest(member_id="m_0404"))
    assert list(reply.orders) == [] and reply.next_page_token == ""


@pytest.mark.parametrize(
    "owner",
    [{}, {"member_id": "m_0001", "store_id": "st_001"}],
    ids=["neither", "both"],
)
async def test_exactly_one_of_member_and_store_is_required(
    orders: order_pb2_grpc.OrderServiceStub, owner: dict[str, str]
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await orders.ListOrders(order_pb2.ListOrdersRequest(**owner))
    details = RpcErrorDetails.from_rpc_error(caught.value)
    assert details.code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.reason == "INVALID_ARGUMENT"
    assert [v.field for v in details.violations] == ["member_id", "store_id"]


@pytest.mark.parametrize(
    ("owner", "field"),
    [({"member_id": "m 1"}, "member_id"), ({"store_id": "x" * 200}, "store_id")],
)
async def test_malformed_owner_id_names_its_field(
    orders: order_pb2_grpc.OrderServiceStub, owner: dict[str, str], field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await orders.ListOrders(order_pb2.ListOrdersRequest(**owner))
    details = RpcErrorDetails.from_rpc_error(caught.value)
    assert details.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in details.violations] == [field]


MEMBER_QUERY = query_fingerprint("ListOrders", "member_id", "m_0001")


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"page_size": 101}, "page_size"),
        ({"page_size": -1}, "page_size"),
        ({"page_token": "not-a-token"}, "page_token"),
        ({"page_token": encode_page_token(MEMBER_QUERY, "o_0001")}, "page_token"),
        ({"page_token": encode_page_token(MEMBER_QUERY, [True, "o_0001"])}, "page_token"),
        ({"page_token": encode_page_token(MEMBER_QUERY, [10**30, "o_0001"])}, "page_token"),
    ],
    ids=["too-big", "negative", "garbage", "key-not-a-pair", "key-not-a-time", "key-overflow"],
)
async def test_bad_paging_is_invalid_argument(
    orders: order_pb2_grpc.OrderServiceStub, request_fields: dict[str, object], field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await orders.ListOrders(
            order_pb2.ListOrdersRequest(member_id="m_0001", **request_fields)  # type: ignore[arg-type]
        )
    details = RpcErrorDetails.from_rpc_error(caught.value)
    assert details.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in details.violations] == [field]
    if field == "page_token":
        assert details.reason == "INVALID_PAGE_TOKEN"


@pytest.mark.parametrize(
    "other_owner", [{"member_id": "m_0002"}, {"store_id": "m_0001"}], ids=["member", "store"]
)
async def test_token_from_another_owner_is_refused(
    orders: order_pb2_grpc.OrderServiceStub, other_owner: dict[str, str]
) -> None:
    first = await orders.ListOrders(order_pb2.ListOrdersRequest(member_id="m_0001", page_size=2))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await orders.ListOrders(
            order_pb2.ListOrdersRequest(page_token=first.next_page_token, **other_owner)
        )
    assert RpcErrorDetails.from_rpc_error(caught.value).reason == "INVALID_PAGE_TOKEN"


async def test_sketched_rpc_answers_unimplemented(
    orders: order_pb2_grpc.OrderServiceStub,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await orders.PlaceOrder(order_pb2.PlaceOrderRequest(idempotency_key="k1"))
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
    details = RpcErrorDetails.from_rpc_error(caught.value)
    assert details.reason == "NOT_IMPLEMENTED"
    assert details.metadata == {"rpc": "PlaceOrder"}


async def test_sketched_stream_answers_unimplemented(
    orders: order_pb2_grpc.OrderServiceStub,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in orders.WatchOrderEvents(order_pb2.WatchOrderEventsRequest()):
            pass
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert RpcErrorDetails.from_rpc_error(caught.value).reason == "NOT_IMPLEMENTED"
