"""ConfirmPayment over real gRPC with partner API keys (the test plays the payment
provider), and the payment timeout job: amount checks, replays, never a second charge,
concurrency, and unpaid orders cancelled with their stock, coupon and points given back."""

from __future__ import annotations

import asyncio
from datetime import UTC

import grpc

from order_svc import lifecycle
from retail.common.v1 import common_pb2
from retail.member.v1 import member_pb2
from retail.order.v1 import order_pb2
from retail_kit.apikeys import new_api_key

from .conftest import (
    PAYMENT_KEY,
    PAYMENT_KEY_ENTRY,
    PICKUP_STORE,
    OrderService,
    Stack,
    coupon,
    error_of,
    level,
    order_service,
    points,
)
from .lifecycle_support import (
    effect_kinds,
    key_metadata,
    pay,
    payment_request,
    place_pickup,
    snapshot,
    stored,
)


async def test_confirm_payment_confirms_the_order_with_the_payment_recorded(
    stack: Stack, orders: OrderService
) -> None:
    placed = await place_pickup(stack, orders, quantity=2)
    assert placed.order.status == order_pb2.ORDER_STATUS_AWAITING_PAYMENT
    reply = await orders.stub.ConfirmPayment(
        payment_request(placed.order, "wx-0001"), metadata=key_metadata()
    )
    order = reply.order
    assert order.status == order_pb2.ORDER_STATUS_CONFIRMED
    assert order.payment_status == order_pb2.PAYMENT_STATUS_PAID
    payment = order.payment
    assert (payment.provider, payment.transaction_id) == ("wechat_pay", "wx-0001")
    assert payment.amount == placed.order.total and payment.paid_time.ToDatetime(UTC)
    doc = await stored(orders, order.id)
    assert [e["kind"] for e in doc["events"]] == ["placed", "paid"]
    assert doc["last_event"]["kind"] == "paid" and doc["payment"]["partner_key"] == "pk_test_pay"
    # Stock stays held for the pickup.
    assert (await level(stack, PICKUP_STORE, placed.skus[0])).reserved == 2


async def test_provider_defaults_to_the_calling_partner(stack: Stack, orders: OrderService) -> None:
    placed = await place_pickup(stack, orders)
    request = payment_request(placed.order, "p-1")
    request.provider = ""
    request.amount.currency = ""  # the order's currency
    order = (await orders.stub.ConfirmPayment(request, metadata=key_metadata())).order
    assert order.payment.provider == "test_pay" and order.status == order_pb2.ORDER_STATUS_CONFIRMED


async def test_a_replay_with_the_same_transaction_answers_the_order_unchanged(
    stack: Stack, orders: OrderService
) -> None:
    placed = await place_pickup(stack, orders)
    first = await pay(orders, placed.order, "wx-replay")
    before = await stored(orders, first.id)
    for _ in range(3):
        again = await pay(orders, placed.order, "wx-replay")
        assert again == first
    after = await stored(orders, first.id)
    assert after == before


async def test_another_transaction_for_a_paid_order_is_refused_and_changes_nothing(
    stack: Stack, orders: OrderService
) -> None:
    placed = await place_pickup(stack, orders, with_coupon=True, redeem_points=100)
    placed.order = await pay(orders, placed.order, "wx-first")
    before = await snapshot(stack, orders, placed)
    details = await error_of(
        orders.stub.ConfirmPayment(
            payment_request(placed.order, "wx-second"), metadata=key_metadata()
        )
    )
    assert details.code is grpc.StatusCode.FAILED_PRECONDITION
    assert details.reason == "INVALID_STATE"
    assert details.metadata["order_id"] == placed.order.id
    assert await snapshot(stack, orders, placed) == before


async def test_an_amount_other_than_the_total_is_refused_and_changes_nothing(
    stack: Stack, orders: OrderService
) -> None:
    placed = await place_pickup(stack, orders, with_coupon=True)
    before = await snapshot(stack, orders, placed)
    total = placed.order.total.amount
    for amount in (total - 1, total + 1, 0):
        details = await error_of(
            orders.stub.ConfirmPayment(
                payment_request(placed.order, amount=amount), metadata=key_metadata()
            )
        )
        assert details.code is grpc.StatusCode.FAILED_PRECONDITION
        assert details.reason == "AMOUNT_MISMATCH"
        assert [v.field for v in details.violations] == ["amount.amount"]
        assert details.metadata["expected"] == str(total)
        assert details.metadata["given"] == str(amount)
    wrong_currency = payment_request(placed.order)
    wrong_currency.amount.currency = "USD"
    details = await error_of(orders.stub.ConfirmPayment(wrong_currency, metadata=key_metadata()))
    assert details.reason == "AMOUNT_MISMATCH" and details.metadata["given_currency"] == "USD"
    assert await snapshot(stack, orders, placed) == before
    # The right amount still goes through afterwards.
    assert (await pay(orders, placed.order)).status == order_pb2.ORDER_STATUS_CONFIRMED


async def test_bad_requests_name_the_field(stack: Stack, orders: OrderService) -> None:
    placed = await place_pickup(stack, orders)
    cases = [
        (
            order_pb2.ConfirmPaymentRequest(
                order_id="o_nope",
                payment_reference="x",
                amount=common_pb2.Money(amount=100, currency="CNY"),
            ),
            None,
        ),
        (
            order_pb2.ConfirmPaymentRequest(order_id=placed.order.id, payment_reference="t"),
            "amount",
        ),
        (payment_request(placed.order, " "), "payment_reference"),
        (payment_request(placed.order, "x" * 200), "payment_reference"),
        (order_pb2.ConfirmPaymentRequest(payment_reference="t"), "order_id"),
    ]
    for request, field in cases:
        details = await error_of(orders.stub.ConfirmPayment(request, metadata=key_metadata()))
        if field is None:
            assert details.code is grpc.StatusCode.NOT_FOUND and details.reason == "NOT_FOUND"
            assert details.metadata == {"entity": "order", "id": "o_nope"}
        else:
            assert details.code is grpc.StatusCode.INVALID_ARGUMENT
            assert [v.field for v in details.violations] == [field]
    doc = await stored(orders, placed.order.id)
    assert doc["status"] == "awaiting_payment" and len(doc["events"]) == 1


async def test_pay_at_pickup_orders_are_not_paid_online(stack: Stack, orders: OrderService) -> None:
    placed = await place_pickup(stack, orders, pay_at_pickup=True)
    assert placed.order.status == order_pb2.ORDER_STATUS_CONFIRMED
    details = await error_of(
        orders.stub.ConfirmPayment(payment_request(placed.order), metadata=key_metadata())
    )
    assert (details.code, details.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "INVALID_STATE")
    assert details.metadata["status"] == "confirmed"


async def test_only_a_key_with_the_payments_scope_may_confirm(stack: Stack) -> None:
    other_key, other_entry = new_api_key("pk_erp", "erp", ["order.read"])
    async with order_service(
        stack, partner_api_keys=f"{PAYMENT_KEY_ENTRY};{other_entry}"
    ) as service:
        placed = await place_pickup(stack, service)
        before = await stored(service, placed.order.id)
        request = payment_request(placed.order)
        missing = await error_of(service.stub.ConfirmPayment(request))
        assert (missing.code, missing.reason) == (
            grpc.StatusCode.UNAUTHENTICATED,
            "UNAUTHENTICATED",
        )
        assert missing.metadata["required_scope"] == "order.payments"
        forged = await error_of(
            service.stub.ConfirmPayment(request, metadata=key_metadata(PAYMENT_KEY[:-2] + "zz"))
        )
        assert forged.code is grpc.StatusCode.UNAUTHENTICATED
        denied = await error_of(
            service.stub.ConfirmPayment(request, metadata=key_metadata(other_key))
        )
        assert (denied.code, denied.reason) == (
            grpc.StatusCode.PERMISSION_DENIED,
            "PERMISSION_DENIED",
        )
        assert denied.metadata["key_id"] == "pk_erp"
        assert await stored(service, placed.order.id) == before
        # Open methods stay open; the right key pays.
        assert (await service.stub.GetOrder(order_pb2.GetOrderRequest(id=placed.order.id))).order
        paid = await service.stub.ConfirmPayment(request, metadata=key_metadata())
        assert paid.order.status == order_pb2.ORDER_STATUS_CONFIRMED


async def test_concurrent_payments_of_one_order_charge_once(
    stack: Stack, orders: OrderService
) -> None:
    placed = await place_pickup(stack, orders)
    references = [f"wx-race-{i}" for i in range(10)]
    results = await asyncio.gather(
        *(
            orders.stub.ConfirmPayment(payment_request(placed.order, ref), metadata=key_metadata())
            for ref in references
        ),
        return_exceptions=True,
    )
    winners = [r for r in results if isinstance(r, order_pb2.ConfirmPaymentResponse)]
    losers = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(winners) == 1 and len(losers) == 9
    assert all(e.code() is grpc.StatusCode.FAILED_PRECONDITION for e in losers)
    doc = await stored(orders, placed.order.id)
    assert [e["kind"] for e in doc["events"]] == ["placed", "paid"]
    assert doc["payment"]["transaction_id"] == winners[0].order.payment.transaction_id
    # Ten replays of the winning transaction at once: all answer the order, nothing changes.
    replays = await asyncio.gather(
        *(pay(orders, placed.order, doc["payment"]["transaction_id"]) for _ in range(10))
    )
    assert {r.SerializeToString(deterministic=True) for r in replays} == {
        winners[0].order.SerializeToString(deterministic=True)
    }
    assert len((await stored(orders, placed.order.id))["events"]) == 2


# -- payment timeout --------------------------------------------------------------------------


async def test_unpaid_orders_are_cancelled_after_the_window_giving_everything_back(
    stack: Stack,
) -> None:
    async with order_service(stack) as service:
        placed = await place_pickup(stack, service, quantity=3, with_coupon=True, redeem_points=200)
        order = placed.order
        sku = placed.skus[0]
        assert (await level(stack, PICKUP_STORE, sku)).reserved == 3
        assert (await coupon(stack, placed.coupon_id)).status == member_pb2.COUPON_STATUS_LOCKED
        points_after_order = (await points(stack, placed.member_id)).available
        # Inside the window nothing happens.
        service.clock.advance(minutes=14)
        idle = await service.stub.RunMaintenance(order_pb2.RunMaintenanceRequest())
        assert idle.payment_timeouts == 0
        assert (await stored(service, order.id))["status"] == "awaiting_payment"
        service.clock.advance(minutes=2)
        done = await service.stub.RunMaintenance(order_pb2.RunMaintenanceRequest())
        assert done.payment_timeouts == 1
        cancelled = (await service.stub.GetOrder(order_pb2.GetOrderRequest(id=order.id))).order
        assert cancelled.status == order_pb2.ORDER_STATUS_CANCELLED
        assert cancelled.end_reason == "payment_timeout" and not cancelled.refunds
        assert [f.status for f in cancelled.fulfilments] == [order_pb2.FULFILMENT_STATUS_RELEASED]
        doc = await stored(service, order.id)
        assert [e["kind"] for e in doc["events"]] == ["placed", "cancelled"]
        assert effect_kinds(doc) == [
            "revert_points",
            f"release_coupon:{placed.coupon_id}",
            "release_stock:f1",
        ]
        assert all(e["state"] == "done" for e in doc["effects"])
        assert doc["coupon"]["state"] == "released" and doc["points"]["state"] == "reverted"
        # Delivered: stock, coupon and points are back.
        assert (await level(stack, PICKUP_STORE, sku)).reserved == 0
        assert (await coupon(stack, placed.coupon_id)).status == member_pb2.COUPON_STATUS_AVAILABLE
        assert (await points(stack, placed.member_id)).available == points_after_order + 200
        # A late payment is refused (the partner refunds it); the job has nothing left.
        late = await error_of(
            service.stub.ConfirmPayment(payment_request(order), metadata=key_metadata())
        )
        assert (late.code, late.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "INVALID_STATE")
        assert (
            await service.stub.RunMaintenance(order_pb2.RunMaintenanceRequest())
        ).payment_timeouts == 0
        assert len((await stored(service, order.id))["events"]) == 2


async def test_a_payment_racing_the_timeout_has_exactly_one_outcome(stack: Stack) -> None:
    async with order_service(stack) as service:
        races = [await place_pickup(stack, service, quantity=1) for _ in range(6)]
        service.clock.advance(minutes=16)
        now = service.clock()
        job = lifecycle.payment_timeout_job(service.services, now)
        payments = [
            service.stub.ConfirmPayment(payment_request(p.order), metadata=key_metadata())
            for p in races
        ]
        results = await asyncio.gather(job, *payments, return_exceptions=True)
        cancelled_by_job = results[0]
        assert isinstance(cancelled_by_job, int)
        outcomes = []
        for placed, result in zip(races, results[1:], strict=True):
            doc = await stored(service, placed.order.id)
            level_now = await level(stack, PICKUP_STORE, placed.skus[0])
            if isinstance(result, order_pb2.ConfirmPaymentResponse):
                assert doc["status"] == "confirmed" and doc["payment"]["status"] == "paid"
                assert level_now.reserved == 1
                outcomes.append("paid")
            else:
                assert isinstance(result, grpc.aio.AioRpcError)
                assert doc["status"] == "cancelled" and doc["payment"]["status"] == "pending"
                assert level_now.reserved == 0
                outcomes.append("cancelled")
            assert len(doc["events"]) == 2
        assert outcomes.count("cancelled") == cancelled_by_job
