"""order-svc reads over a real gRPC socket against the embedded database (or MONGODB_URI):
GetOrder, BatchGetOrders, ListOrders (merged members, paging), and the repository's one-write
transitions and outbox bookkeeping. Orders are written with the repository's own mapping
straight into the test database, so every field can be checked on the way back."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from order_svc.domain import (
    Channel,
    EffectState,
    FulfillmentType,
    Fulfilment,
    FulfilmentStatus,
    Order,
    OrderLine,
    OrderStatus,
    Payment,
    PaymentStatus,
    Saga,
    SagaState,
    SagaStep,
    apply_discounts,
    new_effect,
    order_totals,
)
from order_svc.repository import ORDERS, OrderRepository, order_to_document
from retail.common.v1 import common_pb2
from retail.member.v1 import member_pb2
from retail.order.v1 import order_pb2, order_pb2_grpc
from retail_kit.errors import RpcErrorDetails
from retail_kit.paging import encode_page_token, query_fingerprint

from .conftest import ADMIN, OrderService, Stack, new_member, order_service

BASE_TIME = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
ORDER_COUNT = 30


def make_order(number: int) -> Order:
    """Orders come in pairs created in the same millisecond, so the id breaks the tie."""
    lines = (
        OrderLine.priced(f"sku_{number:03d}_a", 1 + number % 3, 1590),
        OrderLine.priced("sku_latte", 2, 2800),
    )
    coupon = 500 if number % 4 == 0 else 0
    lines = apply_discounts(lines, [coupon, 0], 0)
    totals = order_totals(lines)
    created = BASE_TIME + timedelta(minutes=number // 2, milliseconds=123)
    delivery = number == 7
    store = "st_001" if number % 2 else "st_002"
    return Order(
        id=f"o_{number:04d}",
        member_id="m_0001" if number % 3 else "m_0002",
        store_id=store,
        fulfillment=FulfillmentType.DELIVERY if delivery else FulfillmentType.PICKUP_IN_STORE,
        status=OrderStatus.READY_FOR_PICKUP if number == 1 else OrderStatus.CONFIRMED,
        payment=Payment(
            status=PaymentStatus.PAY_AT_PICKUP if number == 1 else PaymentStatus.PAID,
            amount=totals.total,
        ),
        lines=lines,
        subtotal=totals.subtotal,
        coupon_discount=totals.coupon_discount,
        total=totals.total,
        channel=Channel.MINI_PROGRAM if number % 2 else Channel.POS,
        associate_id="as_007" if number == 1 else None,
        create_time=created,
        update_time=created + timedelta(minutes=5),
        fulfilments=(
            # o_0007 ships from two stores: it is in both stores' lists.
            (Fulfilment("f1", store, "o_0007:1"), Fulfilment("f2", "st_009", "o_0007:2"))
            if delivery
            else (Fulfilment("f1", store, f"o_{number:04d}", FulfilmentStatus.RESERVED),)
        ),
    )


ORDERS_IN_DB = [make_order(n) for n in range(1, ORDER_COUNT + 1)]


def newest_first(orders: list[Order]) -> list[str]:
    return [o.id for o in sorted(orders, key=lambda o: (o.create_time, o.id), reverse=True)]


@pytest.fixture(scope="module")
async def service(stack: Stack) -> AsyncIterator[OrderService]:
    async with order_service(stack) as running:
        await running.database[ORDERS].insert_many(
            [order_to_document(o) for o in reversed(ORDERS_IN_DB)]
        )
        yield running


@pytest.fixture(scope="module")
def orders(service: OrderService) -> order_pb2_grpc.OrderServiceStub:
    return service.stub


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


async def test_health_reports_serving_for_the_service(service: OrderService) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{service.host.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for name in ("", "retail.order.v1.OrderService"):
            reply = await health.Check(health_pb2.HealthCheckRequest(service=name))
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
    assert order.payment.status == order_pb2.PAYMENT_STATUS_PAY_AT_PICKUP
    assert order.payment.amount == common_pb2.Money(amount=8780, currency="CNY")
    lines = [
        (li.sku_id, li.quantity, li.unit_price.amount, li.line_total.amount, li.paid_amount.amount)
        for li in order.lines
    ]
    assert lines == [("sku_001_a", 2, 1590, 3180, 3180), ("sku_latte", 2, 2800, 5600, 5600)]
    assert order.lines[0].unit_price.currency == "CNY"
    assert order.subtotal == common_pb2.Money(amount=8780, currency="CNY")
    assert order.discount == common_pb2.Money(amount=0, currency="CNY")
    assert order.total == common_pb2.Money(amount=8780, currency="CNY")
    assert order.channel == common_pb2.CHANNEL_MINI_PROGRAM
    assert order.associate_id == "as_007"
    assert [(f.id, f.store_id, f.reservation_id) for f in order.fulfilments] == [
        ("f1", "st_001", "o_0001")
    ]
    assert order.fulfilments[0].status == order_pb2.FULFILMENT_STATUS_RESERVED
    assert order.create_time.ToDatetime(UTC) == ORDERS_IN_DB[0].create_time
    assert order.update_time.ToDatetime(UTC) == ORDERS_IN_DB[0].update_time


async def test_discounted_delivery_order_lists_its_fulfilments(
    orders: order_pb2_grpc.OrderServiceStub,
) -> None:
    delivery = (await orders.GetOrder(order_pb2.GetOrderRequest(id="o_0007"))).order
    assert delivery.fulfillment == order_pb2.FULFILLMENT_TYPE_DELIVERY
    assert [f.store_id for f in delivery.fulfilments] == ["st_001", "st_009"]
    discounted = (await orders.GetOrder(order_pb2.GetOrderRequest(id="o_0004"))).order
    assert discounted.discount.amount == discounted.coupon_discount.amount == 500
    assert discounted.total.amount == discounted.subtotal.amount - 500
    assert sum(line.coupon_discount.amount for line in discounted.lines) == 500
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
    assert seen == newest_first([o for o in ORDERS_IN_DB if "st_001" in o.store_ids])
    assert "o_0007" in seen  # a split delivery shipped partly from st_001


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


async def test_store_list_includes_split_deliveries_shipped_from_the_store(
    orders: order_pb2_grpc.OrderServiceStub,
) -> None:
    seen, _ = await list_all(orders, 50, store_id="st_009")
    assert seen == ["o_0007"]


async def test_member_list_includes_orders_of_members_merged_into_it(
    stack: Stack, service: OrderService
) -> None:
    survivor, absorbed = await new_member(stack), await new_member(stack)
    mine = replace(make_order(2), id=f"o_{uuid.uuid4().hex[:8]}", member_id=survivor)
    theirs = replace(
        make_order(3),
        id=f"o_{uuid.uuid4().hex[:8]}",
        member_id=absorbed,
        create_time=BASE_TIME + timedelta(days=1),
    )
    await service.database[ORDERS].insert_many([order_to_document(mine), order_to_document(theirs)])
    before, _ = await list_all(service.stub, 10, member_id=survivor)
    assert before == [mine.id]
    await stack.member.MergeMembers(
        member_pb2.MergeMembersRequest(
            source_member_id=absorbed, target_member_id=survivor, reason="same person", actor=ADMIN
        )
    )
    after, _ = await list_all(service.stub, 1, member_id=survivor)
    assert after == [theirs.id, mine.id]


async def test_failed_attempts_are_left_out_of_lists_but_readable(
    stack: Stack, service: OrderService
) -> None:
    member = await new_member(stack)
    failed = replace(
        make_order(5), id="o_failed_attempt", member_id=member, status=OrderStatus.FAILED
    )
    placed = replace(make_order(6), id="o_placed_one", member_id=member)
    await service.database[ORDERS].insert_many(
        [order_to_document(failed), order_to_document(placed)]
    )
    seen, _ = await list_all(service.stub, 10, member_id=member)
    assert seen == ["o_placed_one"]
    reply = await service.stub.GetOrder(order_pb2.GetOrderRequest(id="o_failed_attempt"))
    assert reply.order.status == order_pb2.ORDER_STATUS_FAILED


# -- the repository: one write per transition, the outbox bookkeeping ------------------------


def pending_order(order_id: str) -> Order:
    lines = (OrderLine.priced("sku_t", 2, 1000),)
    return replace(
        make_order(9),
        id=order_id,
        status=OrderStatus.PENDING,
        lines=lines,
        subtotal=2000,
        coupon_discount=0,
        total=2000,
        fulfilments=(Fulfilment("f1", "st_001", order_id, FulfilmentStatus.RESERVED),),
        saga=Saga(SagaStep.CONFIRM, SagaState.RUNNING, owner="me"),
    )


async def test_transition_writes_status_event_effects_and_version_at_once(
    service: OrderService,
) -> None:
    repository: OrderRepository = service.services.repository
    order_id = f"o_{uuid.uuid4().hex[:10]}"
    await repository.insert(pending_order(order_id))
    now = BASE_TIME + timedelta(days=2)
    placed = await repository.transition(
        order_id,
        [OrderStatus.PENDING],
        OrderStatus.CONFIRMED,
        expected_version=0,
        set_fields={"payment.status": "pay_at_pickup", "end_reason": "$not_a_path"},
        event_kind="placed",
        now=now,
    )
    assert placed is not None
    assert placed.status is OrderStatus.CONFIRMED and placed.version == 1
    assert placed.payment.status is PaymentStatus.PAY_AT_PICKUP
    assert placed.end_reason == "$not_a_path"  # values are literal, never expressions
    assert [(e.seq, e.kind, e.status) for e in placed.events] == [
        (1, "placed", OrderStatus.CONFIRMED)
    ]
    assert placed.effects == () and placed.effects_due is None
    # A stale version, or a status not in from_statuses: nothing is written.
    assert (
        await repository.transition(
            order_id,
            [OrderStatus.CONFIRMED],
            OrderStatus.CANCELLED,
            expected_version=0,
            event_kind="cancelled",
            now=now,
        )
        is None
    )
    assert (
        await repository.transition(
            order_id,
            [OrderStatus.AWAITING_PAYMENT],
            OrderStatus.CANCELLED,
            event_kind="cancelled",
            now=now,
        )
        is None
    )
    later = now + timedelta(minutes=1)
    effects = [new_effect("release_stock", later, ref="f1"), new_effect("revert_points", later)]
    cancelled = await repository.transition(
        order_id,
        [OrderStatus.CONFIRMED, OrderStatus.READY_FOR_PICKUP],
        OrderStatus.CANCELLED,
        expected_version=1,
        set_fields={"end_reason": "customer"},
        effects=effects,
        event_kind="cancelled",
        now=later,
    )
    assert cancelled is not None and cancelled.version == 2
    assert [(e.seq, e.kind) for e in cancelled.events] == [(1, "placed"), (2, "cancelled")]
    assert [e.id for e in cancelled.pending_effects()] == ["release_stock:f1", "revert_points"]
    assert cancelled.effects_due == later
    raw = await service.database[ORDERS].find_one({"_id": order_id})
    assert raw is not None
    assert raw["last_event"] == {
        "seq": 2,
        "kind": "cancelled",
        "status": "cancelled",
        "occur_time": later,
        "order_id": order_id,
        "store_id": cancelled.store_id,
        "store_ids": list(cancelled.store_ids),
        "member_id": cancelled.member_id,
    }
    with pytest.raises(ValueError):
        await repository.transition(
            order_id, [OrderStatus.CANCELLED], OrderStatus.CONFIRMED, event_kind="x", now=later
        )


async def test_effects_are_marked_done_once_and_effects_due_follows(
    service: OrderService,
) -> None:
    repository: OrderRepository = service.services.repository
    order_id = f"o_{uuid.uuid4().hex[:10]}"
    await repository.insert(pending_order(order_id))
    now = BASE_TIME + timedelta(days=3)
    effects = [new_effect("release_stock", now, ref="f1"), new_effect("revert_points", now)]
    failed = await repository.transition(
        order_id,
        [OrderStatus.PENDING],
        OrderStatus.FAILED,
        effects=effects,
        event_kind="failed",
        now=now,
    )
    assert failed is not None and failed.effects_due == now
    assert [o.id for o in await repository.due_effects(now, 1000) if o.id == order_id]
    retry = now + timedelta(seconds=8)
    assert await repository.mark_effect_failed(order_id, "release_stock:f1", "UNAVAILABLE", retry)
    assert await repository.mark_effect_done(order_id, "revert_points", now)
    assert not await repository.mark_effect_done(order_id, "revert_points", now)  # once
    order = await repository.get_order(order_id)
    assert order is not None
    stock = order.effect("release_stock:f1")
    assert stock is not None and stock.attempts == 1 and stock.error == "UNAVAILABLE"
    assert order.effects_due == retry
    assert order_id not in [o.id for o in await repository.due_effects(now, 1000)]
    assert await repository.mark_effect_done(order_id, "release_stock:f1", retry)
    done = await repository.get_order(order_id)
    assert done is not None and done.effects_due is None
    assert all(e.state is EffectState.DONE for e in done.effects)
    assert done.version == failed.version  # bookkeeping never moves the version
