"""CancelOrder, the pickup expiry job and the store queue over real gRPC: who may cancel
when, what a cancel or an expiry gives back (stock, coupon, points, a refund of a paid
order), replays, races with payment and hand-over, and ListStoreOrders oldest first."""

from __future__ import annotations

import asyncio
from datetime import UTC

import grpc

from order_svc import lifecycle
from retail.common.v1 import common_pb2
from retail.member.v1 import member_pb2
from retail.order.v1 import order_pb2

from .conftest import (
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
    ADMIN_ACTOR,
    OTHER_STORE,
    associate,
    customer,
    effect_kinds,
    key_metadata,
    kiosk,
    paid_pickup,
    pay,
    payment_request,
    place_pickup,
    ready_pickup,
    snapshot,
    stored,
)
from .test_lifecycle_pickup import claims, pickup


def cancel(
    order_id: str, actor: common_pb2.Actor | None, reason: str = ""
) -> order_pb2.CancelOrderRequest:
    request = order_pb2.CancelOrderRequest(id=order_id, reason=reason)
    if actor is not None:
        request.actor.CopyFrom(actor)
    return request


async def test_the_customer_cancels_an_unpaid_order_and_gets_everything_back(
    stack: Stack, orders: OrderService
) -> None:
    placed = await place_pickup(stack, orders, quantity=2, with_coupon=True, redeem_points=150)
    points_before = (await points(stack, placed.member_id)).available
    reply = await orders.stub.CancelOrder(
        cancel(placed.order.id, customer(placed.member_id), "changed my mind")
    )
    order = reply.order
    assert order.status == order_pb2.ORDER_STATUS_CANCELLED
    assert order.end_reason == "customer" and not order.refunds
    assert order.payment_status == order_pb2.PAYMENT_STATUS_PENDING
    doc = await stored(orders, order.id)
    assert [e["kind"] for e in doc["events"]] == ["placed", "cancelled"]
    assert effect_kinds(doc) == [
        "revert_points",
        f"release_coupon:{placed.coupon_id}",
        "release_stock:f1",
    ]
    assert all(e["state"] == "done" for e in doc["effects"])
    assert doc["end_note"] == "changed my mind" and doc["ended_by"]["kind"] == "customer"
    assert (await level(stack, PICKUP_STORE, placed.skus[0])).reserved == 0
    assert (await coupon(stack, placed.coupon_id)).status == member_pb2.COUPON_STATUS_AVAILABLE
    assert (await points(stack, placed.member_id)).available == points_before + 150
    # Cancelling again answers the cancelled order; nothing moves.
    again = await orders.stub.CancelOrder(cancel(order.id, customer(placed.member_id)))
    assert again.order == order
    assert await stored(orders, order.id) == doc


async def test_cancelling_a_paid_order_records_a_refund_of_what_was_paid(
    stack: Stack, orders: OrderService
) -> None:
    placed = await paid_pickup(stack, orders, quantity=1, lines=2, with_coupon=True)
    order = (
        await orders.stub.CancelOrder(cancel(placed.order.id, customer(placed.member_id)))
    ).order
    assert order.payment_status == order_pb2.PAYMENT_STATUS_REFUNDED
    assert [(r.id, r.amount.amount, r.reason) for r in order.refunds] == [
        (f"{order.id}:cancelled", placed.order.total.amount, "cancelled")
    ]
    doc = await stored(orders, order.id)
    refund = doc["refunds"][0]
    assert sum(line["amount"] for line in refund["lines"]) == refund["amount"]
    assert [line["sku_id"] for line in refund["lines"]] == placed.skus
    assert f"refund:{order.id}:cancelled" in effect_kinds(doc)
    effect = next(e for e in doc["effects"] if e["kind"] == "refund")
    assert effect["data"]["transaction_id"] == placed.order.payment.transaction_id
    for sku in placed.skus:
        assert (await level(stack, PICKUP_STORE, sku)).reserved == 0


async def test_a_ready_order_is_cancelled_by_the_store_not_the_customer(
    stack: Stack, orders: OrderService
) -> None:
    placed, _ = await ready_pickup(stack, orders, with_coupon=True)
    before = await snapshot(stack, orders, placed)
    details = await error_of(
        orders.stub.CancelOrder(cancel(placed.order.id, customer(placed.member_id)))
    )
    assert (details.code, details.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "INVALID_STATE")
    assert details.metadata["status"] == "ready_for_pickup"
    assert await snapshot(stack, orders, placed) == before
    assert len(await claims(orders, placed.order.id)) == 1
    order = (
        await orders.stub.CancelOrder(cancel(placed.order.id, associate(), "customer called"))
    ).order
    assert order.status == order_pb2.ORDER_STATUS_CANCELLED and order.end_reason == "store"
    assert order.payment_status == order_pb2.PAYMENT_STATUS_REFUNDED
    assert await claims(orders, order.id) == []  # the code is free again
    assert (await coupon(stack, placed.coupon_id)).status == member_pb2.COUPON_STATUS_AVAILABLE


async def test_an_admin_may_cancel_before_hand_over(stack: Stack, orders: OrderService) -> None:
    placed, _ = await ready_pickup(stack, orders)
    order = (await orders.stub.CancelOrder(cancel(placed.order.id, ADMIN_ACTOR))).order
    assert (order.status, order.end_reason) == (order_pb2.ORDER_STATUS_CANCELLED, "admin")


async def test_strangers_may_not_cancel(stack: Stack, orders: OrderService) -> None:
    placed = await place_pickup(stack, orders, with_coupon=True)
    before = await snapshot(stack, orders, placed)
    for actor in (
        customer("m_someone_else"),
        associate(OTHER_STORE),
        kiosk(),
        common_pb2.Actor(kind=common_pb2.ACTOR_KIND_PARTNER, id="erp"),
    ):
        details = await error_of(orders.stub.CancelOrder(cancel(placed.order.id, actor)))
        assert (details.code, details.reason) == (
            grpc.StatusCode.PERMISSION_DENIED,
            "PERMISSION_DENIED",
        )
    missing = await error_of(orders.stub.CancelOrder(cancel(placed.order.id, None)))
    assert [v.field for v in missing.violations] == ["actor"]
    long_reason = await error_of(
        orders.stub.CancelOrder(cancel(placed.order.id, customer(placed.member_id), "x" * 501))
    )
    assert [v.field for v in long_reason.violations] == ["reason"]
    unknown = await error_of(orders.stub.CancelOrder(cancel("o_404", ADMIN_ACTOR)))
    assert unknown.code is grpc.StatusCode.NOT_FOUND and unknown.metadata["id"] == "o_404"
    assert await snapshot(stack, orders, placed) == before


async def test_nothing_is_cancelled_after_hand_over(stack: Stack, orders: OrderService) -> None:
    placed, code = await ready_pickup(stack, orders, with_coupon=True)
    await orders.stub.ConfirmPickup(pickup(placed.order.id, code, kiosk()))
    before = await snapshot(stack, orders, placed)
    for actor in (associate(), ADMIN_ACTOR, customer(placed.member_id)):
        details = await error_of(orders.stub.CancelOrder(cancel(placed.order.id, actor)))
        assert (details.code, details.reason) == (
            grpc.StatusCode.FAILED_PRECONDITION,
            "INVALID_STATE",
        )
        assert details.metadata["status"] == "picked_up"
    assert await snapshot(stack, orders, placed) == before
    assert before["coupon"].status == member_pb2.COUPON_STATUS_REDEEMED


async def test_concurrent_cancels_cancel_once(stack: Stack, orders: OrderService) -> None:
    placed = await paid_pickup(stack, orders, with_coupon=True)
    actors = [customer(placed.member_id), associate(), ADMIN_ACTOR] * 4
    replies = await asyncio.gather(
        *(orders.stub.CancelOrder(cancel(placed.order.id, actor)) for actor in actors)
    )
    assert {r.order.status for r in replies} == {order_pb2.ORDER_STATUS_CANCELLED}
    doc = await stored(orders, placed.order.id)
    assert [e["kind"] for e in doc["events"]].count("cancelled") == 1
    assert len(doc["refunds"]) == 1 and effect_kinds(doc).count("release_stock:f1") == 1


async def test_a_cancel_racing_the_hand_over_has_one_outcome(
    stack: Stack, orders: OrderService
) -> None:
    for _ in range(4):
        placed, code = await ready_pickup(stack, orders, quantity=1)
        results = await asyncio.gather(
            orders.stub.CancelOrder(cancel(placed.order.id, associate())),
            orders.stub.ConfirmPickup(pickup(placed.order.id, code, kiosk())),
            return_exceptions=True,
        )
        doc = await stored(orders, placed.order.id)
        stock = await level(stack, PICKUP_STORE, placed.skus[0])
        if doc["status"] == "cancelled":
            assert isinstance(results[1], grpc.aio.AioRpcError)
            assert (stock.on_hand, stock.reserved) == (10, 0) and doc["refunds"]
        else:
            assert doc["status"] == "picked_up" and isinstance(results[0], grpc.aio.AioRpcError)
            assert (stock.on_hand, stock.reserved) == (9, 0) and not doc["refunds"]
        assert len(doc["events"]) == 4  # placed, paid, ready, then one ending


async def test_a_cancel_racing_the_payment_never_keeps_money_for_a_cancelled_order(
    stack: Stack, orders: OrderService
) -> None:
    for _ in range(4):
        placed = await place_pickup(stack, orders, quantity=1)
        results = await asyncio.gather(
            orders.stub.ConfirmPayment(payment_request(placed.order), metadata=key_metadata()),
            orders.stub.CancelOrder(cancel(placed.order.id, customer(placed.member_id))),
            return_exceptions=True,
        )
        assert isinstance(results[1], order_pb2.CancelOrderResponse)
        doc = await stored(orders, placed.order.id)
        assert doc["status"] == "cancelled"
        if isinstance(results[0], order_pb2.ConfirmPaymentResponse):
            # Paid first, then cancelled: the payment is refunded in full.
            assert doc["payment"]["status"] == "refunded"
            assert [r["amount"] for r in doc["refunds"]] == [placed.order.total.amount]
        else:
            assert doc["payment"]["status"] == "pending" and not doc["refunds"]


# -- pickup expiry ----------------------------------------------------------------------------


async def test_pickups_not_collected_in_time_expire_and_give_everything_back(
    stack: Stack,
) -> None:
    async with order_service(stack) as service:
        ready, code = await ready_pickup(stack, service, with_coupon=True, redeem_points=100)
        unprepared = await place_pickup(stack, service, pay_at_pickup=True, with_coupon=True)
        collected, collected_code = await ready_pickup(stack, service)
        await service.stub.ConfirmPickup(pickup(collected.order.id, collected_code, kiosk()))
        points_before = (await points(stack, ready.member_id)).available
        hold = max(p.order.pickup.hold_until_time.ToDatetime(UTC) for p in (ready, unprepared))
        assert (await service.stub.RunMaintenance(order_pb2.RunMaintenanceRequest())).expired == 0
        service.clock.advance(seconds=(hold - service.clock()).total_seconds() + 60)
        done = await service.stub.RunMaintenance(order_pb2.RunMaintenanceRequest())
        assert done.expired == 2
        expired = (await service.stub.GetOrder(order_pb2.GetOrderRequest(id=ready.order.id))).order
        assert (expired.status, expired.end_reason) == (
            order_pb2.ORDER_STATUS_EXPIRED,
            "not_collected",
        )
        assert [(r.reason, r.amount.amount) for r in expired.refunds] == [
            ("expired", ready.order.total.amount)
        ]
        assert expired.payment_status == order_pb2.PAYMENT_STATUS_REFUNDED
        doc = await stored(service, ready.order.id)
        assert [e["kind"] for e in doc["events"]][-1] == "expired"
        assert await claims(service, ready.order.id) == []
        assert (await level(stack, PICKUP_STORE, ready.skus[0])).reserved == 0
        assert (await coupon(stack, ready.coupon_id)).status == member_pb2.COUPON_STATUS_AVAILABLE
        assert (await points(stack, ready.member_id)).available == points_before + 100
        # Pay at pickup, never prepared: expired without a refund.
        other = await stored(service, unprepared.order.id)
        assert other["status"] == "expired" and not other["refunds"]
        assert (
            await coupon(stack, unprepared.coupon_id)
        ).status == member_pb2.COUPON_STATUS_AVAILABLE
        # The handed-over order is untouched; a late hand-over of the expired one is refused.
        assert (await stored(service, collected.order.id))["status"] == "picked_up"
        late = await error_of(service.stub.ConfirmPickup(pickup(ready.order.id, code, kiosk())))
        assert late.reason == "INVALID_STATE"
        assert (await service.stub.RunMaintenance(order_pb2.RunMaintenanceRequest())).expired == 0


async def test_expiry_racing_the_hand_over_has_one_outcome(stack: Stack) -> None:
    async with order_service(stack) as service:
        racing = [await ready_pickup(stack, service, quantity=1) for _ in range(4)]
        hold = max(p.order.pickup.hold_until_time.ToDatetime(UTC) for p, _ in racing)
        service.clock.advance(seconds=(hold - service.clock()).total_seconds() + 1)
        results = await asyncio.gather(
            lifecycle.pickup_expiry_job(service.services, service.clock()),
            *(service.stub.ConfirmPickup(pickup(p.order.id, code, kiosk())) for p, code in racing),
            return_exceptions=True,
        )
        expired = results[0]
        assert isinstance(expired, int)
        statuses = [(await stored(service, p.order.id))["status"] for p, _ in racing]
        assert statuses.count("expired") == expired
        for (placed, _), status, result in zip(racing, statuses, results[1:], strict=True):
            stock = await level(stack, PICKUP_STORE, placed.skus[0])
            if status == "expired":
                assert isinstance(result, grpc.aio.AioRpcError)
                assert (stock.on_hand, stock.reserved) == (10, 0)
            else:
                assert status == "picked_up"
                assert isinstance(result, order_pb2.ConfirmPickupResponse)
                assert (stock.on_hand, stock.reserved) == (9, 0)


# -- the store queue ----------------------------------------------------------------------------


async def test_the_store_queue_lists_open_orders_oldest_first_by_status_and_pages(
    stack: Stack,
) -> None:
    async with order_service(stack) as service:
        awaiting = await place_pickup(stack, service, quantity=1)
        service.clock.advance(seconds=1)
        confirmed = await paid_pickup(stack, service, quantity=1)
        service.clock.advance(seconds=1)
        ready, _ = await ready_pickup(stack, service, quantity=1)
        service.clock.advance(seconds=1)
        cancelled = await place_pickup(stack, service, quantity=1)
        await service.stub.CancelOrder(cancel(cancelled.order.id, customer(cancelled.member_id)))
        service.clock.advance(seconds=1)
        ready_too, _ = await ready_pickup(stack, service, quantity=1, pay_at_pickup=True)

        async def queue(
            *statuses: int, size: int = 0, token: str = ""
        ) -> order_pb2.ListStoreOrdersResponse:
            return await service.stub.ListStoreOrders(
                order_pb2.ListStoreOrdersRequest(
                    store_id=PICKUP_STORE, statuses=list(statuses), page_size=size, page_token=token
                )
            )

        open_ids = [o.id for o in (await queue()).orders]
        assert open_ids == [
            awaiting.order.id,
            confirmed.order.id,
            ready.order.id,
            ready_too.order.id,
        ]
        only_ready = await queue(order_pb2.ORDER_STATUS_READY_FOR_PICKUP)
        assert [o.id for o in only_ready.orders] == [ready.order.id, ready_too.order.id]
        ended = await queue(order_pb2.ORDER_STATUS_CANCELLED)
        assert [o.id for o in ended.orders] == [cancelled.order.id]
        # Pages of 2 give the same list.
        first = await queue(size=2)
        second = await queue(size=2, token=first.next_page_token)
        assert [o.id for o in [*first.orders, *second.orders]] == open_ids
        assert second.next_page_token == ""
        other = await service.stub.ListStoreOrders(
            order_pb2.ListStoreOrdersRequest(store_id=OTHER_STORE)
        )
        assert list(other.orders) == []
        # Bad input names the field.
        reused = await error_of(
            queue(order_pb2.ORDER_STATUS_CANCELLED, token=first.next_page_token)
        )
        assert reused.reason == "INVALID_PAGE_TOKEN"
        bad_status = await error_of(queue(42))
        assert [v.field for v in bad_status.violations] == ["statuses[0]"]
        no_store = await error_of(service.stub.ListStoreOrders(order_pb2.ListStoreOrdersRequest()))
        assert [v.field for v in no_store.violations] == ["store_id"]
        too_big = await error_of(queue(size=101))
        assert [v.field for v in too_big.violations] == ["page_size"]


async def test_a_ready_order_can_be_paid_only_once_even_through_the_queue(
    stack: Stack, orders: OrderService
) -> None:
    """A paid order that is ready refuses another payment (the queue shows it as paid)."""
    placed, _ = await ready_pickup(stack, orders)
    details = await error_of(
        orders.stub.ConfirmPayment(
            payment_request(placed.order, "wx-late"), metadata=key_metadata()
        )
    )
    assert details.reason == "INVALID_STATE"
    assert (await pay(orders, placed.order, placed.order.payment.transaction_id)).status == (
        order_pb2.ORDER_STATUS_READY_FOR_PICKUP
    )
