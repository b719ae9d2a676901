"""MarkReadyForPickup and ConfirmPickup over real gRPC: who may do what, pickup codes
(unique in the store, signed QR payload, freed at hand-over), wrong codes counted exactly
under concurrency and locking at 5, associate override, pay at pickup at the counter, one
hand-over however many concurrent calls, and the stock, coupon and effects it leaves."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC

import grpc

from order_svc.pickup import PickupCodes, qr_payload, read_qr
from order_svc.repository import PICKUP_CODES
from retail.common.v1 import common_pb2
from retail.member.v1 import member_pb2
from retail.order.v1 import order_pb2

from .conftest import PICKUP_STORE, OrderService, Stack, coupon, error_of, level
from .lifecycle_support import (
    ADMIN_ACTOR,
    OTHER_STORE,
    associate,
    customer,
    effect_kinds,
    kiosk,
    manager,
    paid_pickup,
    place_pickup,
    ready_pickup,
    snapshot,
    stored,
)


def ready_request(order_id: str, actor: common_pb2.Actor) -> order_pb2.MarkReadyForPickupRequest:
    return order_pb2.MarkReadyForPickupRequest(order_id=order_id, actor=actor)


def pickup(
    order_id: str, code: str, actor: common_pb2.Actor, **fields: object
) -> order_pb2.ConfirmPickupRequest:
    return order_pb2.ConfirmPickupRequest(
        order_id=order_id,
        pickup_code=code,
        actor=actor,
        **fields,  # type: ignore[arg-type]
    )


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


async def claims(orders: OrderService, order_id: str) -> list[dict[str, object]]:
    return [doc async for doc in orders.database[PICKUP_CODES].find({"order_id": order_id})]


# -- ready for pickup -----------------------------------------------------------------------


async def test_an_associate_marks_a_paid_pickup_ready_with_a_code_and_signed_qr(
    stack: Stack, orders: OrderService
) -> None:
    placed = await paid_pickup(stack, orders)
    reply = await orders.stub.MarkReadyForPickup(ready_request(placed.order.id, associate()))
    order, code = reply.order, reply.pickup_code
    assert order.status == order_pb2.ORDER_STATUS_READY_FOR_PICKUP
    assert len(code) == 6 and code.isdigit() and order.pickup.code == code
    assert order.pickup.ready_time.ToDatetime(UTC) >= order.create_time.ToDatetime(UTC)
    secret = orders.services.settings.pickup_secret
    payload = read_qr(secret, order.pickup.qr_payload)
    assert payload is not None
    assert (payload.order_id, payload.store_id, payload.code) == (order.id, PICKUP_STORE, code)
    assert read_qr("another-secret", order.pickup.qr_payload) is None
    assert [c["_id"] for c in await claims(orders, order.id)] == [f"{PICKUP_STORE}:{code}"]
    doc = await stored(orders, order.id)
    assert [e["kind"] for e in doc["events"]] == ["placed", "paid", "ready_for_pickup"]
    assert doc["pickup"]["prepared_by"]["id"] == "as_test_01"
    # A replay answers the same code and changes nothing.
    again = await orders.stub.MarkReadyForPickup(ready_request(order.id, associate("st_001", "x")))
    assert (again.pickup_code, again.order) == (code, order)
    assert await stored(orders, order.id) == doc


async def test_a_store_manager_may_mark_ready_and_pay_at_pickup_orders_need_no_payment(
    stack: Stack, orders: OrderService
) -> None:
    placed = await place_pickup(stack, orders, pay_at_pickup=True)
    reply = await orders.stub.MarkReadyForPickup(ready_request(placed.order.id, manager()))
    assert reply.order.status == order_pb2.ORDER_STATUS_READY_FOR_PICKUP
    assert reply.order.payment_status == order_pb2.PAYMENT_STATUS_PAY_AT_PICKUP


async def test_only_staff_of_the_orders_store_may_mark_it_ready(
    stack: Stack, orders: OrderService
) -> None:
    placed = await paid_pickup(stack, orders)
    before = await snapshot(stack, orders, placed)
    for actor in (
        associate(OTHER_STORE),
        manager(OTHER_STORE),
        kiosk(),
        customer(placed.member_id),
        ADMIN_ACTOR,
        common_pb2.Actor(kind=common_pb2.ACTOR_KIND_ASSOCIATE, id="as_no_store"),
    ):
        details = await error_of(
            orders.stub.MarkReadyForPickup(ready_request(placed.order.id, actor))
        )
        assert (details.code, details.reason) == (
            grpc.StatusCode.PERMISSION_DENIED,
            "PERMISSION_DENIED",
        )
        assert details.metadata["store_id"] == PICKUP_STORE
    missing = await error_of(
        orders.stub.MarkReadyForPickup(
            order_pb2.MarkReadyForPickupRequest(order_id=placed.order.id)
        )
    )
    assert missing.code is grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in missing.violations] == ["actor"]
    unknown = await error_of(orders.stub.MarkReadyForPickup(ready_request("o_404", associate())))
    assert (unknown.code, unknown.metadata["id"]) == (grpc.StatusCode.NOT_FOUND, "o_404")
    assert await snapshot(stack, orders, placed) == before
    assert await claims(orders, placed.order.id) == []


async def test_an_unpaid_order_cannot_be_marked_ready(stack: Stack, orders: OrderService) -> None:
    placed = await place_pickup(stack, orders)
    before = await snapshot(stack, orders, placed)
    details = await error_of(
        orders.stub.MarkReadyForPickup(ready_request(placed.order.id, associate()))
    )
    assert (details.code, details.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "INVALID_STATE")
    assert details.metadata["status"] == "awaiting_payment"
    assert await snapshot(stack, orders, placed) == before
    assert await claims(orders, placed.order.id) == []


async def test_concurrent_mark_ready_calls_issue_one_code(
    stack: Stack, orders: OrderService
) -> None:
    placed = await paid_pickup(stack, orders)
    replies = await asyncio.gather(
        *(
            orders.stub.MarkReadyForPickup(ready_request(placed.order.id, associate()))
            for _ in range(10)
        )
    )
    codes = {reply.pickup_code for reply in replies}
    assert len(codes) == 1
    doc = await stored(orders, placed.order.id)
    assert [e["kind"] for e in doc["events"]].count("ready_for_pickup") == 1
    assert [c["code"] for c in await claims(orders, placed.order.id)] == list(codes)


async def test_codes_are_unique_among_the_stores_open_pickups(
    stack: Stack, orders: OrderService
) -> None:
    ready = [await ready_pickup(stack, orders, quantity=1) for _ in range(12)]
    codes = [code for _, code in ready]
    assert len(set(codes)) == len(codes)
    held = {doc["_id"] async for doc in orders.database[PICKUP_CODES].find({})}
    assert {f"{PICKUP_STORE}:{code}" for code in codes} <= held


async def test_a_drawn_code_held_by_an_open_pickup_is_redrawn_and_a_stale_claim_taken_over(
    orders: OrderService,
) -> None:
    """The claim rules against the real database, with known draws (a collision at random
    would take ~10^6 open pickups in one store)."""

    def draws(*codes: str) -> Iterator[str]:
        yield from codes

    database = orders.database
    now = orders.clock()
    store = "st_claims"
    open_orders = {"o_open"}

    async def is_open(order_id: str) -> bool:
        return order_id in open_orders

    first = PickupCodes(database, draws("111111").__next__)
    assert await first.claim(store, "o_open", now, is_open) == "111111"
    assert await first.claim(store, "o_open", now, is_open) == "111111"  # the order's claim
    second = PickupCodes(database, draws("111111", "111111", "222222").__next__)
    assert await second.claim(store, "o_second", now, is_open) == "222222"
    # o_open leaves (its claim was not freed: a crash); its code can be drawn again.
    open_orders.discard("o_open")
    third = PickupCodes(database, draws("111111", "111111").__next__)
    assert await third.claim(store, "o_third", now, is_open) == "111111"
    holders = {
        doc["_id"]: doc["order_id"]
        async for doc in database[PICKUP_CODES].find({"store_id": store})
    }
    assert holders == {f"{store}:111111": "o_third", f"{store}:222222": "o_second"}
    # Other stores have their own codes.
    other = PickupCodes(database, draws("111111").__next__)
    assert await other.claim("st_claims_2", "o_fourth", now, is_open) == "111111"


# -- hand-over --------------------------------------------------------------------------------


async def test_a_kiosk_of_the_store_hands_over_with_the_code(
    stack: Stack, orders: OrderService
) -> None:
    placed, code = await ready_pickup(stack, orders, quantity=2, with_coupon=True)
    sku = placed.skus[0]
    assert (await level(stack, PICKUP_STORE, sku)).reserved == 2
    reply = await orders.stub.ConfirmPickup(pickup(placed.order.id, code, kiosk()))
    order = reply.order
    assert order.status == order_pb2.ORDER_STATUS_PICKED_UP
    assert order.pickup.handed_over_by.kind == common_pb2.ACTOR_KIND_KIOSK
    assert order.pickup.picked_up_time.ToDatetime(UTC) >= order.pickup.ready_time.ToDatetime(UTC)
    assert [f.status for f in order.fulfilments] == [order_pb2.FULFILMENT_STATUS_DELIVERED]
    doc = await stored(orders, order.id)
    assert [e["kind"] for e in doc["events"]][-1] == "picked_up"
    assert effect_kinds(doc) == [
        "commit_stock:f1",
        f"redeem_coupon:{placed.coupon_id}",
        "record_completed",
    ]
    assert doc["coupon"]["state"] == "redeemed"
    # Stock committed, coupon redeemed (delivered by the call), the code freed.
    stock = await level(stack, PICKUP_STORE, sku)
    assert (stock.on_hand, stock.reserved) == (8, 0)
    assert (await coupon(stack, placed.coupon_id)).status == member_pb2.COUPON_STATUS_REDEEMED
    assert await claims(orders, order.id) == []
    # A replay (same code) answers the order unchanged.
    again = await orders.stub.ConfirmPickup(pickup(order.id, code, kiosk()))
    assert again.order == order
    assert await stored(orders, order.id) == await stored(orders, order.id)
    assert len((await stored(orders, order.id))["events"]) == len(doc["events"])


async def test_the_signed_qr_payload_works_as_the_code_and_a_forged_one_does_not(
    stack: Stack, orders: OrderService
) -> None:
    placed, code = await ready_pickup(stack, orders)
    forged = qr_payload("not-the-secret", placed.order.id, PICKUP_STORE, code)
    details = await error_of(orders.stub.ConfirmPickup(pickup(placed.order.id, forged, kiosk())))
    assert details.reason == "VERIFICATION_FAILED"
    doc = await stored(orders, placed.order.id)
    assert doc["pickup"]["wrong_code_attempts"] == 1
    reply = await orders.stub.ConfirmPickup(
        pickup(placed.order.id, placed.order.pickup.qr_payload, kiosk())
    )
    assert reply.order.status == order_pb2.ORDER_STATUS_PICKED_UP


async def test_another_stores_kiosk_or_associate_cannot_hand_over(
    stack: Stack, orders: OrderService
) -> None:
    placed, code = await ready_pickup(stack, orders, with_coupon=True)
    before = await snapshot(stack, orders, placed)
    for actor in (kiosk(OTHER_STORE), associate(OTHER_STORE), customer(placed.member_id)):
        details = await error_of(orders.stub.ConfirmPickup(pickup(placed.order.id, code, actor)))
        assert (details.code, details.reason) == (
            grpc.StatusCode.PERMISSION_DENIED,
            "PERMISSION_DENIED",
        )
    assert await snapshot(stack, orders, placed) == before


async def test_a_wrong_code_is_counted_and_changes_nothing_else(
    stack: Stack, orders: OrderService
) -> None:
    placed, code = await ready_pickup(stack, orders, with_coupon=True)
    before = await snapshot(stack, orders, placed)
    details = await error_of(
        orders.stub.ConfirmPickup(pickup(placed.order.id, wrong(code), kiosk()))
    )
    assert (details.code, details.reason) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "VERIFICATION_FAILED",
    )
    assert [v.field for v in details.violations] == ["pickup_code"]
    assert details.metadata["attempts_remaining"] == "4"
    after = await snapshot(stack, orders, placed)
    assert after["order"]["pickup"]["wrong_code_attempts"] == 1
    assert after["order"]["status"] == "ready_for_pickup" and after["stock"] == before["stock"]
    assert after["coupon"] == before["coupon"] and after["points"] == before["points"]
    assert after["order"]["events"] == before["order"]["events"]
    assert not (
        await orders.stub.GetOrder(order_pb2.GetOrderRequest(id=placed.order.id))
    ).order.pickup.code_locked


async def test_five_wrong_codes_lock_and_only_an_associate_override_hands_over(
    stack: Stack, orders: OrderService
) -> None:
    placed, code = await ready_pickup(stack, orders)
    order_id = placed.order.id
    reasons = []
    for _ in range(5):
        details = await error_of(orders.stub.ConfirmPickup(pickup(order_id, wrong(code), kiosk())))
        reasons.append(details.reason)
    assert reasons == ["VERIFICATION_FAILED"] * 4 + ["PICKUP_CODE_LOCKED"]
    locked = (await orders.stub.GetOrder(order_pb2.GetOrderRequest(id=order_id))).order
    assert locked.pickup.code_locked and locked.pickup.wrong_code_attempts == 5
    # The right code no longer works, at a kiosk or at the counter.
    for actor in (kiosk(), associate()):
        details = await error_of(orders.stub.ConfirmPickup(pickup(order_id, code, actor)))
        assert (details.code, details.reason) == (
            grpc.StatusCode.FAILED_PRECONDITION,
            "PICKUP_CODE_LOCKED",
        )
    kiosk_override = await error_of(
        orders.stub.ConfirmPickup(
            pickup(order_id, "", kiosk(), associate_override=True, override_reason="ID seen")
        )
    )
    assert kiosk_override.code is grpc.StatusCode.PERMISSION_DENIED
    no_reason = await error_of(
        orders.stub.ConfirmPickup(pickup(order_id, "", associate(), associate_override=True))
    )
    assert no_reason.code is grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in no_reason.violations] == ["override_reason"]
    assert (await stored(orders, order_id))["status"] == "ready_for_pickup"
    handed = await orders.stub.ConfirmPickup(
        pickup(
            order_id,
            "",
            associate(),
            associate_override=True,
            override_reason="customer showed ID card, phone lost",
        )
    )
    assert handed.order.status == order_pb2.ORDER_STATUS_PICKED_UP
    doc = await stored(orders, order_id)
    assert doc["pickup"]["override_reason"] == "customer showed ID card, phone lost"
    assert doc["pickup"]["handed_over_by"]["kind"] == "associate"
    assert (await level(stack, PICKUP_STORE, placed.skus[0])).reserved == 0


async def test_twenty_concurrent_wrong_codes_are_counted_exactly_and_lock_at_five(
    stack: Stack, orders: OrderService
) -> None:
    placed, code = await ready_pickup(stack, orders)
    results = await asyncio.gather(
        *(
            orders.stub.ConfirmPickup(pickup(placed.order.id, wrong(code), kiosk()))
            for _ in range(20)
        ),
        return_exceptions=True,
    )
    assert all(isinstance(r, grpc.aio.AioRpcError) for r in results)
    codes = [r.code() for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert set(codes) <= {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION}
    # At most 4 were told "wrong, try again"; everyone after the fifth is told "locked".
    assert codes.count(grpc.StatusCode.INVALID_ARGUMENT) <= 4
    assert codes.count(grpc.StatusCode.FAILED_PRECONDITION) >= 16
    doc = await stored(orders, placed.order.id)
    assert doc["pickup"]["wrong_code_attempts"] == 5 and doc["pickup"]["code_locked"] is True
    assert doc["status"] == "ready_for_pickup"


async def test_ten_concurrent_hand_overs_with_the_right_code_make_one(
    stack: Stack, orders: OrderService
) -> None:
    placed, code = await ready_pickup(stack, orders, quantity=3, with_coupon=True)
    actors = [kiosk(), associate()] * 5
    replies = await asyncio.gather(
        *(orders.stub.ConfirmPickup(pickup(placed.order.id, code, actor)) for actor in actors)
    )
    assert {r.order.status for r in replies} == {order_pb2.ORDER_STATUS_PICKED_UP}
    assert len({r.order.SerializeToString(deterministic=True) for r in replies}) == 1
    doc = await stored(orders, placed.order.id)
    assert [e["kind"] for e in doc["events"]].count("picked_up") == 1
    assert effect_kinds(doc).count("commit_stock:f1") == 1
    stock = await level(stack, PICKUP_STORE, placed.skus[0])
    assert (stock.on_hand, stock.reserved) == (7, 0)


async def test_pay_at_pickup_is_handed_over_at_the_counter_with_the_exact_payment(
    stack: Stack, orders: OrderService
) -> None:
    placed, code = await ready_pickup(stack, orders, pay_at_pickup=True, with_coupon=True)
    order_id, total = placed.order.id, placed.order.total.amount
    before = await snapshot(stack, orders, placed)

    def counter(amount: int) -> order_pb2.Payment:
        return order_pb2.Payment(
            provider="alipay_pos",
            transaction_id="pos-7781",
            amount=common_pb2.Money(amount=amount, currency="CNY"),
        )

    at_kiosk = await error_of(
        orders.stub.ConfirmPickup(pickup(order_id, code, kiosk(), counter_payment=counter(total)))
    )
    assert (at_kiosk.code, at_kiosk.reason) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "PERMISSION_DENIED",
    )
    unpaid = await error_of(orders.stub.ConfirmPickup(pickup(order_id, code, associate())))
    assert unpaid.code is grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in unpaid.violations] == ["counter_payment"]
    short = await error_of(
        orders.stub.ConfirmPickup(
            pickup(order_id, code, associate(), counter_payment=counter(total - 100))
        )
    )
    assert (short.code, short.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "AMOUNT_MISMATCH")
    assert [v.field for v in short.violations] == ["counter_payment.amount.amount"]
    assert await snapshot(stack, orders, placed) == before  # no attempt counted either
    handed = await orders.stub.ConfirmPickup(
        pickup(order_id, code, associate(), counter_payment=counter(total))
    )
    order = handed.order
    assert order.status == order_pb2.ORDER_STATUS_PICKED_UP
    assert order.payment_status == order_pb2.PAYMENT_STATUS_PAID
    assert (order.payment.provider, order.payment.transaction_id) == ("alipay_pos", "pos-7781")
    assert order.payment.amount.amount == total


async def test_a_paid_order_takes_no_counter_payment(stack: Stack, orders: OrderService) -> None:
    placed, code = await ready_pickup(stack, orders)
    before = await snapshot(stack, orders, placed)
    details = await error_of(
        orders.stub.ConfirmPickup(
            pickup(
                placed.order.id,
                code,
                associate(),
                counter_payment=order_pb2.Payment(
                    provider="cash", amount=placed.order.total, transaction_id="c1"
                ),
            )
        )
    )
    assert (details.code, details.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "INVALID_STATE")
    assert await snapshot(stack, orders, placed) == before


async def test_hand_over_needs_a_ready_order(stack: Stack, orders: OrderService) -> None:
    placed = await paid_pickup(stack, orders)
    before = await snapshot(stack, orders, placed)
    details = await error_of(orders.stub.ConfirmPickup(pickup(placed.order.id, "123456", kiosk())))
    assert (details.code, details.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "INVALID_STATE")
    assert details.metadata["status"] == "confirmed"
    no_code = await error_of(orders.stub.ConfirmPickup(pickup(placed.order.id, "", kiosk())))
    assert [v.field for v in no_code.violations] == ["pickup_code"]
    unknown = await error_of(orders.stub.ConfirmPickup(pickup("o_404", "123456", kiosk())))
    assert unknown.code is grpc.StatusCode.NOT_FOUND
    assert await snapshot(stack, orders, placed) == before


async def test_a_wrong_code_after_hand_over_is_not_a_replay(
    stack: Stack, orders: OrderService
) -> None:
    placed, code = await ready_pickup(stack, orders)
    await orders.stub.ConfirmPickup(pickup(placed.order.id, code, kiosk()))
    before = await stored(orders, placed.order.id)
    details = await error_of(
        orders.stub.ConfirmPickup(pickup(placed.order.id, wrong(code), kiosk()))
    )
    assert (details.code, details.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "INVALID_STATE")
    assert await stored(orders, placed.order.id) == before
