"""Pure order rules: money, allocation by largest remainder, refunds per unit, the status
table, and the document and proto mappings of an order with every field set."""

from __future__ import annotations

import itertools
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from order_svc.convert import (
    CHANNEL_TO_PROTO,
    FULFILLMENT_TO_PROTO,
    PAYMENT_STATUS_TO_PROTO,
    STATUS_TO_PROTO,
    order_cursor,
    order_cursor_key,
    order_to_proto,
)
from order_svc.domain import (
    TRANSITIONS,
    Actor,
    ActorKind,
    Channel,
    DeliveryAddress,
    EffectState,
    FulfillmentType,
    Fulfilment,
    FulfilmentStatus,
    Money,
    Order,
    OrderCoupon,
    OrderEvent,
    OrderLine,
    OrderPoints,
    OrderReturn,
    OrderStatus,
    Payment,
    PaymentStatus,
    Pickup,
    Refund,
    RefundLine,
    ReturnLine,
    Saga,
    SagaError,
    SagaState,
    SagaStep,
    allocate,
    apply_discounts,
    can_transition,
    new_effect,
    order_totals,
    refund_for_units,
)
from order_svc.repository import order_from_document, order_to_document
from retail.common.v1 import common_pb2
from retail.order.v1 import order_pb2

NOW = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)


def test_money_adds_and_subtracts_within_one_currency() -> None:
    assert Money(1590) + Money(410) == Money(2000, "CNY")
    assert Money(2000) - Money(500) == Money(1500)
    assert Money(1590).times(3) == Money(4770)
    assert Money.zero("HKD") == Money(0, "HKD")
    with pytest.raises(ValueError):
        Money(1, "CNY") + Money(1, "HKD")


# -- allocation ------------------------------------------------------------------------------


def test_allocation_sums_exactly_and_is_proportional() -> None:
    rng = random.Random(8)
    for _ in range(2000):
        weights = [rng.choice([0, 1, 7, 99, 1590, 2800, 10**6]) for _ in range(rng.randint(1, 8))]
        total = sum(weights)
        if total == 0:
            continue
        amount = rng.randint(0, total)
        shares = allocate(amount, weights)
        assert sum(shares) == amount
        for share, weight in zip(shares, weights, strict=True):
            exact = amount * weight / total
            assert exact - 1 < share < exact + 1  # floor or ceiling of its exact share
            assert 0 <= share <= weight


def test_allocation_gives_zero_weights_nothing_and_ties_to_the_earlier() -> None:
    assert allocate(100, [0, 50, 0, 50]) == [0, 50, 0, 50]
    assert allocate(1, [1, 1, 1]) == [1, 0, 0]
    assert allocate(2, [1, 1, 1]) == [1, 1, 0]
    assert allocate(500, [3180, 5600]) == [181, 319]  # 180.9 / 319.1
    assert allocate(0, [0, 0]) == [0, 0]
    with pytest.raises(ValueError):
        allocate(1, [0, 0])
    with pytest.raises(ValueError):
        allocate(-1, [1])


def test_discounts_allocate_points_after_the_coupon_and_reconcile() -> None:
    lines = (
        OrderLine.priced("a", 2, 1590),
        OrderLine.priced("b", 1, 2800),
        OrderLine.priced("c", 3, 99),
    )
    discounted = apply_discounts(lines, [0, 500, 0], 777)
    totals = order_totals(discounted)
    assert totals.subtotal == 3180 + 2800 + 297
    assert totals.coupon_discount == 500 and totals.points_discount == 777
    assert totals.total == totals.subtotal - 500 - 777 == sum(x.paid_amount for x in discounted)
    assert [x.points_discount for x in discounted] == allocate(777, [3180, 2300, 297])
    with pytest.raises(ValueError):
        apply_discounts(lines, [0, 2801, 0], 0)  # more off a line than it costs
    with pytest.raises(ValueError):
        apply_discounts(lines, [0, 0, 0], 6278)  # points worth more than the order


@pytest.mark.parametrize("quantity", [0, 100, -1])
def test_a_line_holds_1_to_99_units(quantity: int) -> None:
    with pytest.raises(ValueError):
        OrderLine.priced("a", quantity, 100)


# -- refunds per unit ------------------------------------------------------------------------


def _compositions(n: int) -> list[list[int]]:
    """Every way to return n units in successive batches."""
    out = []
    for cuts in itertools.product([False, True], repeat=n - 1):
        parts, size = [], 1
        for cut in cuts:
            if cut:
                parts.append(size)
                size = 1
            else:
                size += 1
        out.append([*parts, size])
    return out


@pytest.mark.parametrize("paid", [0, 1, 100, 101, 2999, 10007])
@pytest.mark.parametrize("quantity", [1, 2, 3, 7])
def test_refunds_of_a_fully_returned_line_sum_to_what_it_paid(paid: int, quantity: int) -> None:
    for batches in _compositions(quantity):
        returned, refunded = 0, 0
        for units in batches:
            refund = refund_for_units(paid, quantity, returned, refunded, units)
            # Within one fen of the exact share of these units.
            assert abs(refund - paid * units / quantity) < 1 + 1e-9 * paid
            returned, refunded = returned + units, refunded + refund
        assert refunded == paid


def test_a_partial_return_refunds_its_share_rounded_down() -> None:
    assert refund_for_units(101, 3, 0, 0, 1) == 33
    assert refund_for_units(101, 3, 1, 33, 1) == 34  # floor(202/3) - 33
    assert refund_for_units(101, 3, 2, 67, 1) == 34  # the rest
    with pytest.raises(ValueError):
        refund_for_units(101, 3, 2, 67, 2)  # more than bought
    with pytest.raises(ValueError):
        refund_for_units(101, 3, 0, 0, 0)


# -- status table ----------------------------------------------------------------------------


def test_every_status_has_a_row_and_ends_are_final() -> None:
    assert set(TRANSITIONS) == set(OrderStatus)
    for end in (OrderStatus.CANCELLED, OrderStatus.EXPIRED, OrderStatus.FAILED):
        assert TRANSITIONS[end] == frozenset()
    assert can_transition(OrderStatus.PENDING, OrderStatus.FAILED)
    assert can_transition(OrderStatus.PENDING, OrderStatus.COMPLETED)  # the till
    assert can_transition(OrderStatus.AWAITING_PAYMENT, OrderStatus.CONFIRMED)
    assert can_transition(OrderStatus.READY_FOR_PICKUP, OrderStatus.PICKED_UP)
    assert can_transition(OrderStatus.PICKED_UP, OrderStatus.PICKED_UP)  # a return
    assert not can_transition(OrderStatus.PICKED_UP, OrderStatus.CANCELLED)
    assert not can_transition(OrderStatus.AWAITING_PAYMENT, OrderStatus.READY_FOR_PICKUP)
    assert not can_transition(OrderStatus.FAILED, OrderStatus.PENDING)


# -- mappings --------------------------------------------------------------------------------


def full_order() -> Order:
    lines = apply_discounts(
        (
            OrderLine.priced(
                "p_0001_s1",
                2,
                1590,
                product_id="p_0001",
                category_ids=("c_1", "c_0"),
                price_rule="tier:gold",
            ),
            OrderLine.priced("p_0002_s1", 1, 2800, product_id="p_0002"),
        ),
        [181, 319],
        300,
    )
    lines = (
        replace(lines[0], returned_quantity=1, refunded_amount=1000, fulfilment_id="f1"),
        replace(lines[1], fulfilment_id="f1"),
    )
    totals = order_totals(lines)
    associate = Actor(ActorKind.ASSOCIATE, "as_st_001_01", "st_001")
    return Order(
        id="o_full",
        member_id="m_0001",
        channel=Channel.MINI_PROGRAM,
        fulfillment=FulfillmentType.PICKUP_IN_STORE,
        store_id="st_001",
        lines=lines,
        status=OrderStatus.PICKED_UP,
        create_time=NOW,
        update_time=NOW + timedelta(hours=3),
        idempotency_key="key-1",
        request_fingerprint="f" * 32,
        delivery_address=DeliveryAddress(
            "王",
            "+8613800000000",
            "南京西路1号",
            "静安区",
            "上海市",
            "上海市",
            "200040",
            31.2,
            121.4,
        ),
        associate_id="as_st_001_01",
        actor=Actor(ActorKind.CUSTOMER, "m_0001"),
        fulfilments=(
            Fulfilment(
                "f1",
                "st_001",
                "o_full",
                FulfilmentStatus.DELIVERED,
                "sf",
                "SF1",
                NOW + timedelta(days=8),
            ),
        ),
        coupon=OrderCoupon("cp_1", "ABCDE12345", 500, "redeemed"),
        points=OrderPoints(300, 300, 300, "redeemed"),
        subtotal=totals.subtotal,
        coupon_discount=totals.coupon_discount,
        points_discount=totals.points_discount,
        total=totals.total,
        end_reason="",
        payment=Payment(
            PaymentStatus.PAID,
            "wechat_pay",
            "wx_1",
            totals.total,
            NOW + timedelta(minutes=2),
            NOW + timedelta(minutes=15),
        ),
        pickup=Pickup(
            "123456",
            "qr",
            NOW + timedelta(minutes=20),
            NOW + timedelta(minutes=30),
            NOW + timedelta(days=7),
            2,
            False,
            NOW + timedelta(hours=3),
            associate,
        ),
        saga=Saga(
            SagaStep.FINISHED,
            SagaState.DONE,
            None,
            "owner",
            1,
            SagaError(
                "FAILED_PRECONDITION",
                "OUT_OF_STOCK",
                "m",
                {"sku_id": "x"},
                (("lines[0].quantity", "short"),),
            ),
        ),
        events=(
            OrderEvent(1, "placed", OrderStatus.AWAITING_PAYMENT, NOW),
            OrderEvent(2, "picked_up", OrderStatus.PICKED_UP, NOW + timedelta(hours=3)),
        ),
        effects=(new_effect("commit_stock", NOW, ref="f1", data={"n": 1}),),
        effects_due=NOW,
        refunds=(
            Refund("r1", 1000, "returned", NOW, "ret_1", (RefundLine("p_0001_s1", 1, 1000),)),
        ),
        returns=(
            OrderReturn(
                "ret_1",
                "st_003",
                (ReturnLine("p_0001_s1", 1, 1000),),
                1000,
                NOW,
                12,
                "size",
                associate,
            ),
        ),
        version=4,
    )


def test_document_round_trip_keeps_every_field() -> None:
    order = full_order()
    assert order_from_document(order_to_document(order)) == order
    doc = order_to_document(order)
    assert doc["store_ids"] == ["st_001"]
    assert doc["effects"][0]["state"] == EffectState.PENDING.value


def test_proto_carries_every_field() -> None:
    order = full_order()
    message = order_to_proto(order)
    assert message.id == "o_full" and message.idempotency_key == "key-1"
    assert message.status == order_pb2.ORDER_STATUS_PICKED_UP
    assert message.payment_status == order_pb2.PAYMENT_STATUS_PAID
    assert message.total == common_pb2.Money(amount=order.total, currency="CNY")
    assert message.discount.amount == order.coupon_discount + order.points_discount
    assert message.coupon_id == "cp_1" and message.points_redeemed == 300
    assert message.lines[0].price_rule == "tier:gold"
    assert message.lines[1].paid_amount.amount == order.lines[1].paid_amount
    assert message.fulfilments[0].status == order_pb2.FULFILMENT_STATUS_DELIVERED
    assert message.fulfilments[0].tracking_number == "SF1"
    assert message.delivery_address.location.latitude == 31.2
    assert message.pickup.code == "123456" and message.pickup.wrong_code_attempts == 2
    assert message.pickup.handed_over_by.kind == common_pb2.ACTOR_KIND_ASSOCIATE
    assert message.payment.transaction_id == "wx_1"
    assert message.payment.deadline_time.ToDatetime(UTC) == NOW + timedelta(minutes=15)
    assert message.refunds[0].amount.amount == 1000 and message.refunds[0].return_id == "ret_1"
    assert message.returns[0].points_clawed_back == 12
    assert message.returns[0].lines[0].refund_amount.amount == 1000


def test_every_enum_value_has_a_proto_value() -> None:
    assert set(STATUS_TO_PROTO) == set(OrderStatus)
    assert set(PAYMENT_STATUS_TO_PROTO) == set(PaymentStatus)
    assert set(FULFILLMENT_TO_PROTO) == set(FulfillmentType)
    assert set(CHANNEL_TO_PROTO) == set(Channel)
    assert len(set(STATUS_TO_PROTO.values())) == len(OrderStatus)


def test_cursor_key_round_trips_to_the_millisecond() -> None:
    order = full_order()
    assert order_cursor(order_cursor_key(order)) == (order.create_time, order.id)
    assert order_cursor(None) is None
