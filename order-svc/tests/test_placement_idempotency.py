"""Stripe-style idempotency keys: the same key and request answer the same order (or the same
error) and act once; the same key with another request is IDEMPOTENCY_KEY_REUSED; concurrent
duplicates execute once; a duplicate of a call still running waits, then answers
IN_PROGRESS, and takes the work over once the first owner's lease has passed."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import grpc

from order_svc.repository import IDEMPOTENCY_KEYS, ORDERS
from order_svc.saga import fingerprint
from retail.order.v1 import order_pb2

from .conftest import (
    PICKUP_STORE,
    OrderService,
    Stack,
    error_of,
    issue_coupon,
    level,
    new_member,
    order_service,
    pickup_request,
    points,
    set_stock,
)


async def test_a_replay_answers_the_same_order_and_acts_once(
    stack: Stack, orders: OrderService
) -> None:
    (sku,) = stack.take_skus(1)
    await set_stock(stack, PICKUP_STORE, sku, 10)
    member = await new_member(stack, points=1000)
    issued = await issue_coupon(stack, member)
    request = pickup_request(member, [(sku, 2)], coupon_id=issued.id, redeem_points=100)
    first = (await orders.stub.PlaceOrder(request)).order
    for _ in range(3):
        again = (await orders.stub.PlaceOrder(request)).order
        assert again == first
    assert (await level(stack, PICKUP_STORE, sku)).reserved == 2
    assert (await points(stack, member)).available == 900
    assert await orders.database[ORDERS].count_documents({"member_id": member}) == 1


async def test_a_replay_of_a_refusal_answers_the_same_error_even_if_it_would_pass_now(
    stack: Stack, orders: OrderService
) -> None:
    (sku,) = stack.take_skus(1)
    await set_stock(stack, PICKUP_STORE, sku, 1)
    member = await new_member(stack)
    request = pickup_request(member, [(sku, 2)])
    first = await error_of(orders.stub.PlaceOrder(request))
    assert first.reason == "OUT_OF_STOCK"
    await set_stock(stack, PICKUP_STORE, sku, 10)
    again = await error_of(orders.stub.PlaceOrder(request))
    assert (again.code, again.reason, again.message, again.violations) == (
        first.code,
        first.reason,
        first.message,
        first.violations,
    )
    assert (await level(stack, PICKUP_STORE, sku)).reserved == 0
    # A new key is a new attempt.
    fresh = pickup_request(member, [(sku, 2)])
    placed = (await orders.stub.PlaceOrder(fresh)).order
    assert placed.status == order_pb2.ORDER_STATUS_AWAITING_PAYMENT


async def test_the_same_key_with_another_request_is_refused_and_changes_nothing(
    stack: Stack, orders: OrderService
) -> None:
    (sku,) = stack.take_skus(1)
    await set_stock(stack, PICKUP_STORE, sku, 10)
    member = await new_member(stack)
    first = (await orders.stub.PlaceOrder(pickup_request(member, [(sku, 1)], key="k-reuse"))).order
    error = await error_of(
        orders.stub.PlaceOrder(pickup_request(member, [(sku, 3)], key="k-reuse"))
    )
    assert error.code == grpc.StatusCode.FAILED_PRECONDITION
    assert error.reason == "IDEMPOTENCY_KEY_REUSED"
    assert [v.field for v in error.violations] == ["idempotency_key"]
    assert (await level(stack, PICKUP_STORE, sku)).reserved == 1
    listed = await orders.stub.ListOrders(order_pb2.ListOrdersRequest(member_id=member))
    assert [o.id for o in listed.orders] == [first.id]


async def test_keys_are_per_member(stack: Stack, orders: OrderService) -> None:
    (sku,) = stack.take_skus(1)
    await set_stock(stack, PICKUP_STORE, sku, 10)
    one, two = await new_member(stack), await new_member(stack)
    a = (await orders.stub.PlaceOrder(pickup_request(one, [(sku, 1)], key="cart-1"))).order
    b = (await orders.stub.PlaceOrder(pickup_request(two, [(sku, 1)], key="cart-1"))).order
    assert a.id != b.id
    assert (await level(stack, PICKUP_STORE, sku)).reserved == 2


async def test_concurrent_duplicates_execute_once(stack: Stack, orders: OrderService) -> None:
    (sku,) = stack.take_skus(1)
    await set_stock(stack, PICKUP_STORE, sku, 10)
    member = await new_member(stack, points=1000)
    request = pickup_request(member, [(sku, 3)], redeem_points=200)
    replies = await asyncio.gather(*(orders.stub.PlaceOrder(request) for _ in range(20)))
    assert len({reply.order.id for reply in replies}) == 1
    assert {reply.order.status for reply in replies} == {order_pb2.ORDER_STATUS_AWAITING_PAYMENT}
    assert (await level(stack, PICKUP_STORE, sku)).reserved == 3
    assert (await points(stack, member)).available == 800
    assert await orders.database[ORDERS].count_documents({"member_id": member}) == 1


async def test_a_duplicate_of_a_running_call_answers_in_progress_then_takes_over(
    stack: Stack,
) -> None:
    (sku,) = stack.take_skus(1)
    await set_stock(stack, PICKUP_STORE, sku, 10)
    member = await new_member(stack)
    request = pickup_request(member, [(sku, 1)], key="k-running")
    async with order_service(stack, idempotency_wait_seconds=0.3, saga_lease_seconds=10) as service:
        # Another replica claimed this key a moment ago and is still quoting.
        now = service.clock()
        await service.database[IDEMPOTENCY_KEYS].insert_one(
            {
                "_id": f"member:{member}:k-running",
                "fingerprint": fingerprint(request),
                "order_id": "o_claimed_elsewhere",
                "owner": "another-replica",
                "lease_until": now + timedelta(seconds=10),
                "create_time": now,
                "error": None,
            }
        )
        error = await error_of(service.stub.PlaceOrder(request))
        assert (error.code, error.reason) == (grpc.StatusCode.ABORTED, "IN_PROGRESS")
        assert error.metadata["order_id"] == "o_claimed_elsewhere"
        assert (await level(stack, PICKUP_STORE, sku)).reserved == 0
        # That replica died: once its lease has passed, a retry does the work itself.
        service.clock.advance(seconds=11)
        order = (await service.stub.PlaceOrder(request)).order
        assert order.id == "o_claimed_elsewhere"
        assert order.status == order_pb2.ORDER_STATUS_AWAITING_PAYMENT
        assert (await level(stack, PICKUP_STORE, sku)).reserved == 1
        again = (await service.stub.PlaceOrder(request)).order
        assert again.id == order.id
