"""Coupon rules as pure functions: eligibility, discounts, per-line allocation, refunds."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from member_svc.coupon_domain import (
    CODE_ALPHABET,
    CODE_LENGTH,
    Coupon,
    CouponKind,
    CouponScope,
    CouponStatus,
    Line,
    Reason,
    allocate,
    discount_for,
    evaluate,
    new_code,
    rank,
    returned_discount,
)
from member_svc.domain import Channel

from .coupons_support import START, fixed_template

COFFEE = ("cat_coffee_beans", "cat_coffee")
TEA = ("cat_tea_green", "cat_tea")
LINES = (
    Line("p_0001_s1", COFFEE, 2, 12_800),
    Line("p_0100_s1", TEA, 1, 5_900),
    Line("p_0002_s1", COFFEE, 3, 8_700),
)


def coupon(**changes: object) -> Coupon:
    values: dict[str, object] = {
        "id": "ct_x:m_1:1",
        "template_id": "ct_x",
        "member_id": "m_1",
        "status": CouponStatus.AVAILABLE,
        "valid_from": START - timedelta(days=1),
        "valid_until": START + timedelta(days=10),
        "code": "ABCDEFGHJK",
        "issue_ref": "claim:m_1:r",
        "source": "claim",
        "issue_time": START - timedelta(days=1),
    }
    values.update(changes)
    return Coupon(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("amount", "weights", "shares"),
    [
        (100, [1, 1, 1], [34, 33, 33]),
        (5_000, [12_800, 5_900, 8_700], [2_336, 1_077, 1_587]),
        (1, [10, 10], [1, 0]),
        (7, [0, 5, 2], [0, 5, 2]),
        (0, [3, 4], [0, 0]),
        (0, [], []),
    ],
)
def test_allocate_by_largest_remainder(amount: int, weights: list[int], shares: list[int]) -> None:
    assert allocate(amount, weights) == shares


def test_allocation_sums_exactly_and_never_exceeds_a_line() -> None:
    rng = random.Random(7)
    for _ in range(2_000):
        weights = [rng.randint(0, 50_000) for _ in range(rng.randint(1, 12))]
        amount = rng.randint(0, sum(weights))
        shares = allocate(amount, weights)
        assert sum(shares) == amount
        assert all(0 <= s <= w for s, w in zip(shares, weights, strict=True))
    with pytest.raises(ValueError):
        allocate(5, [0, 0])
    with pytest.raises(ValueError):
        allocate(-1, [3])


def test_partial_returns_refund_a_line_discount_exactly() -> None:
    rng = random.Random(11)
    for _ in range(500):
        quantity = rng.randint(1, 9)
        line_discount = rng.randint(0, 10_000)
        returned = 0
        refunded = 0
        while returned < quantity:
            step = rng.randint(1, quantity - returned)
            part = returned_discount(line_discount, quantity, returned, step)
            assert part >= 0
            refunded += part
            returned += step
        assert refunded == line_discount
    assert returned_discount(1_000, 3, 0, 1) == 333
    assert returned_discount(1_000, 3, 1, 1) == 333
    assert returned_discount(1_000, 3, 2, 1) == 334
    with pytest.raises(ValueError):
        returned_discount(1_000, 3, 2, 2)


def test_fixed_is_capped_at_the_eligible_total() -> None:
    template = fixed_template(
        "ct_f", amount_off=30_000, scope=CouponScope(category_ids=("cat_tea",))
    )
    assert discount_for(template, LINES) == (5_900, None)
    assert discount_for(fixed_template("ct_f2", amount_off=1_000), LINES) == (1_000, None)


def test_percent_floors_and_caps() -> None:
    percent = fixed_template(
        "ct_p",
        kind=CouponKind.PERCENT,
        amount_off=0,
        percent_off=8,
        cap=2_000,
        scope=CouponScope(category_ids=("cat_coffee",)),
    )
    # 8% of 215.00 = 17.20
    assert discount_for(percent, LINES) == (1_720, None)
    small = (Line("p_1", COFFEE, 1, 1_299),)  # 8% of 12.99 = 1.0392 -> 1.03
    assert discount_for(percent, small) == (103, None)
    big = (Line("p_1", COFFEE, 1, 90_000),)
    assert discount_for(percent, big) == (2_000, None)
    tiny = (Line("p_1", COFFEE, 1, 12),)  # 8% of 0.12 floors to 0: nothing to take
    assert discount_for(percent, tiny) == (0, Reason.SCOPE)


def test_threshold_needs_the_eligible_total() -> None:
    threshold = fixed_template(
        "ct_t", kind=CouponKind.THRESHOLD, amount_off=5_000, threshold=30_000
    )
    assert discount_for(threshold, LINES) == (0, Reason.THRESHOLD)  # 274.00 < 300.00
    more = (*LINES, Line("p_9", TEA, 1, 2_600))
    assert discount_for(threshold, more) == (5_000, None)
    coffee_only = fixed_template(
        "ct_t2",
        kind=CouponKind.THRESHOLD,
        amount_off=5_000,
        threshold=20_000,
        scope=CouponScope(sku_ids=("p_0100_s1",), category_ids=("cat_coffee",)),
    )
    assert discount_for(coffee_only, LINES) == (5_000, None)


def test_scope_covers_listed_skus_and_category_subtrees() -> None:
    template = fixed_template(
        "ct_s",
        amount_off=5_000,
        scope=CouponScope(sku_ids=("p_0100_s1",), category_ids=("cat_coffee_beans",)),
    )
    evaluation = evaluate(coupon(), template, LINES, Channel.POS, "st_001", START)
    assert evaluation.usable and evaluation.discount == 5_000
    # Allocated over the covered lines in proportion, summing to the discount.
    shares = {d.line_index: d.amount for d in evaluation.line_discounts}
    assert shares == {0: 2_336, 1: 1_077, 2: 1_587}
    assert sum(shares.values()) == 5_000
    nothing = fixed_template("ct_s2", scope=CouponScope(category_ids=("cat_beauty",)))
    assert evaluate(coupon(), nothing, LINES, Channel.POS, None, START).reason is Reason.SCOPE
    only_tea = fixed_template(
        "ct_s3", amount_off=1_000, scope=CouponScope(category_ids=("cat_tea",))
    )
    judged = evaluate(coupon(), only_tea, LINES, Channel.APP, None, START)
    assert [(d.line_index, d.sku_id, d.amount) for d in judged.line_discounts] == [
        (1, "p_0100_s1", 1_000)
    ]


def test_reasons_in_the_order_a_customer_is_told() -> None:
    scoped = fixed_template(
        "ct_r",
        scope=CouponScope(channels=(Channel.MINI_PROGRAM,), store_ids=("st_001",)),
    )
    cases = [
        (coupon(status=CouponStatus.REDEEMED), Channel.MINI_PROGRAM, "st_001", Reason.REDEEMED),
        (coupon(status=CouponStatus.LOCKED), Channel.MINI_PROGRAM, "st_001", Reason.LOCKED),
        (coupon(status=CouponStatus.EXPIRED), Channel.MINI_PROGRAM, "st_001", Reason.EXPIRED),
        (coupon(valid_until=START), Channel.MINI_PROGRAM, "st_001", Reason.EXPIRED),
        (coupon(valid_from=START + timedelta(hours=1)), Channel.POS, "st_9", Reason.NOT_YET_VALID),
        (coupon(), Channel.POS, "st_001", Reason.CHANNEL),
        (coupon(), None, "st_001", Reason.CHANNEL),
        (coupon(), Channel.MINI_PROGRAM, "st_002", Reason.STORE),
        (coupon(), Channel.MINI_PROGRAM, None, Reason.STORE),
    ]
    for c, channel, store, reason in cases:
        evaluation = evaluate(c, scoped, LINES, channel, store, START)
        assert not evaluation.usable and evaluation.reason is reason, (c, channel, store)
    assert evaluate(coupon(), scoped, LINES, Channel.MINI_PROGRAM, "st_001", START).usable
    # An ended window reads EXPIRED.
    assert coupon(valid_until=START).at(START).status is CouponStatus.EXPIRED


def test_rank_puts_the_largest_discount_first() -> None:
    small = evaluate(coupon(id="a"), fixed_template("t1", amount_off=500), LINES, None, None, START)
    big = evaluate(coupon(id="b"), fixed_template("t2", amount_off=900), LINES, None, None, START)
    off = evaluate(
        coupon(id="c", status=CouponStatus.LOCKED), fixed_template("t3"), LINES, None, None, START
    )
    assert [e.coupon.id for e in rank([off, small, big])] == ["b", "a", "c"]


def test_codes_are_short_and_distinct() -> None:
    codes = {new_code() for _ in range(5_000)}
    assert len(codes) == 5_000
    assert all(len(c) == CODE_LENGTH and set(c) <= set(CODE_ALPHABET) for c in codes)
