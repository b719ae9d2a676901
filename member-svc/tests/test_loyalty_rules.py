"""The points and tier rules as pure functions (no database, no clock)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from member_svc import loyalty_rules as rules
from member_svc.domain import PointsLot, Tier

T0 = datetime(2026, 5, 1, 4, 0, tzinfo=UTC)


def lot(
    lot_id: str,
    remaining: int,
    *,
    expires: datetime,
    available: datetime = T0 - timedelta(days=1),
    points: int | None = None,
    source: str = "",
) -> PointsLot:
    return PointsLot(
        lot_id, points if points is not None else remaining, remaining, available, expires, source
    )


def test_expiry_is_the_end_of_the_next_calendar_year_in_shanghai() -> None:
    # 2026-05-01 -> 2028-01-01 00:00 Shanghai = 2027-12-31 16:00 UTC
    assert rules.expiry_for(T0) == datetime(2027, 12, 31, 16, 0, tzinfo=UTC)
    # 2026-12-31 17:00 UTC is already 2027-01-01 in Shanghai: expires at the end of 2028.
    late = datetime(2026, 12, 31, 17, 0, tzinfo=UTC)
    assert rules.expiry_for(late) == datetime(2028, 12, 31, 16, 0, tzinfo=UTC)
    early = datetime(2026, 12, 31, 15, 59, tzinfo=UTC)
    assert rules.expiry_for(early) == datetime(2027, 12, 31, 16, 0, tzinfo=UTC)


def test_one_year_later_keeps_the_instant_and_clamps_leap_days() -> None:
    assert rules.one_year_later(T0) == datetime(2027, 5, 1, 4, 0, tzinfo=UTC)
    leap = datetime(2028, 2, 29, 12, 0, tzinfo=UTC)
    assert rules.one_year_later(leap) == datetime(2029, 2, 28, 12, 0, tzinfo=UTC)


def test_redemption_takes_available_lots_soonest_expiring_first() -> None:
    soon = lot("a", 30, expires=T0 + timedelta(days=10))
    later = lot("b", 50, expires=T0 + timedelta(days=100))
    pending = lot("c", 100, expires=T0 + timedelta(days=5), available=T0 + timedelta(days=1))
    expired = lot("d", 70, expires=T0)
    lots = rules.normalize([later, pending, soon, expired])
    assert rules.available(lots, T0) == 80
    assert rules.pending(lots, T0) == 100
    order = rules.redeemable_order(lots, T0)
    assert [item.id for item in order] == ["a", "b"]
    after, takes = rules.take(lots, 45, order)
    assert [(t.lot.id, t.points) for t in takes] == [("a", 30), ("b", 15)]
    # a is emptied and dropped; b keeps 35; the pending and expired lots are untouched
    assert {item.id: item.remaining for item in after} == {"b": 35, "c": 100, "d": 70}
    assert rules.total(after) == rules.total(lots) - 45


def test_restore_gives_back_to_the_same_lots_even_after_one_was_emptied() -> None:
    a = lot("a", 30, expires=T0 + timedelta(days=10))
    b = lot("b", 50, expires=T0 + timedelta(days=100))
    lots = rules.normalize([a, b])
    after, takes = rules.take(lots, 45, rules.redeemable_order(lots, T0))
    restored = rules.restore(after, takes)
    assert restored == lots


def test_expire_due_takes_every_due_lot_and_nothing_else() -> None:
    due = lot("a", 30, expires=T0)
    pending_due = lot("b", 20, expires=T0 - timedelta(seconds=1), available=T0 + timedelta(1))
    live = lot("c", 50, expires=T0 + timedelta(seconds=1))
    lots = rules.normalize([due, pending_due, live])
    after, takes = rules.expire_due(lots, T0)
    assert sorted((t.lot.id, t.points) for t in takes) == [("a", 30), ("b", 20)]
    assert [item.id for item in after] == ["c"]
    again, none = rules.expire_due(after, T0)
    assert none == () and again == after
    assert rules.next_expiry(after) == live.expire_time


def test_removal_takes_the_orders_own_lot_first_then_available_then_pending() -> None:
    own = lot(
        "own", 40, expires=T0 + timedelta(days=400), source="earn:o1", available=T0 + timedelta(1)
    )
    available = lot("av", 30, expires=T0 + timedelta(days=300))
    pending = lot("pe", 100, expires=T0 + timedelta(days=200), available=T0 + timedelta(1))
    expired = lot("ex", 10, expires=T0)
    lots = rules.normalize([own, available, pending, expired])
    order = rules.removal_order(lots, T0, first_source="earn:o1")
    assert [item.id for item in order] == ["own", "av", "pe"]
    after, takes = rules.take(lots, 100, order)
    assert {item.id: item.remaining for item in after} == {"pe": 70, "ex": 10}
    assert [(t.lot.id, t.points) for t in takes] == [("own", 40), ("av", 30), ("pe", 30)]
    # never below zero: asking for more than there is takes what there is
    _, all_takes = rules.take(lots, 10_000, order)
    assert sum(t.points for t in all_takes) == 170


def test_consolidate_merges_available_lots_of_one_expiry_only() -> None:
    end_2027 = datetime(2027, 12, 31, 16, tzinfo=UTC)
    end_2028 = datetime(2028, 12, 31, 16, tzinfo=UTC)
    a = lot("a", 10, expires=end_2027, source="earn:o1", available=T0 - timedelta(days=9))
    b = lot("b", 20, expires=end_2027, source="earn:o2", points=25)
    c = lot("c", 5, expires=end_2028, source="earn:o3")
    pending = lot("p", 7, expires=end_2027, source="earn:o4", available=T0 + timedelta(1))
    expired = lot("x", 3, expires=T0, source="earn:o5")
    merged = rules.consolidate([b, a, c, pending, expired], T0)
    assert [(m.id, m.points, m.remaining, m.source) for m in merged] == [
        ("x", 3, 3, "earn:o5"),
        ("a", 35, 30, "consolidated"),
        ("p", 7, 7, "earn:o4"),
        ("c", 5, 5, "earn:o3"),
    ]
    assert rules.total(merged) == rules.total([a, b, c, pending, expired])
    assert rules.consolidate(merged, T0) == merged
    # a take from a lot merged away since is given back as that lot again
    _, takes = rules.take([a, b], 25, [a, b])
    restored = rules.restore(merged, takes)
    assert {m.id: m.remaining for m in restored}["a"] == 40
    assert {m.id: m.remaining for m in restored}["b"] == 15
    assert rules.total(restored) == rules.total(merged) + 25


def test_add_lot_refuses_bad_lots() -> None:
    base = rules.normalize([lot("a", 1, expires=T0 + timedelta(1))])
    with pytest.raises(ValueError):
        rules.add_lot(base, lot("a", 5, expires=T0 + timedelta(1)))
    with pytest.raises(ValueError):
        rules.add_lot(base, lot("z", 0, expires=T0 + timedelta(1)))


def test_order_points_floor_paid_yuan_times_rate_times_multiplier() -> None:
    assert rules.order_points(12_345, 1, 100) == 123  # ¥123.45 -> 123
    assert rules.order_points(12_345, 1, 150) == 185  # 185.175
    assert rules.order_points(99, 1, 200) == 1  # ¥0.99 x 2 = 1.98
    assert rules.order_points(0, 1, 200) == 0
    assert rules.order_points(10_000, 2, 120) == 240


@pytest.mark.parametrize(
    ("per_yuan", "points", "value"),
    [(100, 150, 150), (100, 1, 1), (200, 3, None), (200, 4, 2), (50, 3, 6), (300, 3, 1)],
)
def test_redemption_value_is_whole_fen_only(per_yuan: int, points: int, value: int | None) -> None:
    assert rules.redemption_value(points, per_yuan) == value
    step = rules.point_step(per_yuan)
    assert rules.redemption_value(step, per_yuan) is not None


def test_redeem_cap_is_a_share_of_the_order_in_whole_fen_steps() -> None:
    # ¥99.99 order, 50 %: at most ¥49.99 = 4,999 points at 100 per yuan
    assert rules.max_redeemable(9_999, 100, 50) == 4_999
    # 300 points per yuan: 3 points per fen; ¥10 at 50 % = 500 fen = 1,500 points
    assert rules.max_redeemable(1_000, 300, 50) == 1_500
    # 200 points per yuan: 2 per fen; 333 fen cap -> 666
    assert rules.max_redeemable(666, 200, 50) == 666
    assert rules.max_redeemable(0, 100, 50) == 0
    assert rules.quote(0, 10_000, 9_999, 100, 50) == (4_999, 4_999)
    assert rules.quote(0, 1_200, 9_999, 100, 50) == (1_200, 4_999)
    assert rules.quote(300, 1_200, 9_999, 100, 50) == (300, 4_999)
    assert rules.quote(7, 1_200, 10_000, 200, 50) == (6, 10_000)


def test_claw_back_is_proportional_on_the_running_refund_total() -> None:
    assert rules.claw_back_points(100, 10_000, 0, 10_000) == 100
    assert rules.claw_back_points(100, 10_000, 0, 3_333) == 33
    # three thirds give back exactly what was earned, never more
    parts = [
        rules.claw_back_points(100, 9_999, 0, 3_333),
        rules.claw_back_points(100, 9_999, 3_333, 3_333),
        rules.claw_back_points(100, 9_999, 6_666, 3_333),
    ]
    assert sum(parts) == 100
    # many tiny refunds add up instead of rounding away
    tiny = sum(rules.claw_back_points(1, 10_000, i * 1_000, 1_000) for i in range(10))
    assert tiny == 1
    assert rules.claw_back_points(0, 10_000, 0, 10_000) == 0


def test_default_policy_and_tier_for_spend() -> None:
    policy = rules.DEFAULT_POLICY
    assert [level.code for level in policy.tiers] == list(rules.TIER_CODES)
    assert [level.threshold for level in policy.tiers] == [0, 200_000, 800_000, 2_000_000]
    assert [level.multiplier_percent for level in policy.tiers] == [100, 120, 150, 200]
    assert [level.birthday_bonus for level in policy.tiers] == [0, 100, 300, 800]
    assert (policy.points_per_yuan, policy.points_per_yuan_redeemed) == (1, 100)
    assert policy.max_redeem_percent == 50
    assert policy.tier_for_spend(0) == Tier.BRONZE
    assert policy.tier_for_spend(199_999) == Tier.BRONZE
    assert policy.tier_for_spend(200_000) == Tier.SILVER
    assert policy.tier_for_spend(5_000_000) == Tier.PLATINUM


def test_review_drops_one_step_at_most_and_keeps_a_qualifying_tier() -> None:
    policy = rules.DEFAULT_POLICY
    assert rules.review(policy, Tier.PLATINUM, 0) == (Tier.GOLD, "downgrade")
    assert rules.review(policy, Tier.GOLD, 300_000) == (Tier.SILVER, "downgrade")
    assert rules.review(policy, Tier.GOLD, 800_000) == (Tier.GOLD, "retained")
    assert rules.review(policy, Tier.SILVER, 900_000) == (Tier.GOLD, "upgrade")
    assert rules.review(policy, Tier.BRONZE, 0) == (Tier.BRONZE, "retained")


def test_a_tier_missing_from_the_policy_counts_as_the_next_one_below() -> None:
    policy = rules.TierPolicy(
        tiers=(rules.DEFAULT_POLICY.tiers[0], rules.DEFAULT_POLICY.tiers[2])
    )  # bronze, gold
    assert policy.level(Tier.SILVER).code == Tier.BRONZE
    assert policy.level(Tier.PLATINUM).code == Tier.GOLD


def test_policy_violations_name_each_field() -> None:
    ok = rules.policy_violations(["bronze", "silver"], [0, 100], [100, 120], [0, 100], 1, 100, 50)
    assert ok == []
    bad = rules.policy_violations(
        ["silver", "bronze", "diamond"], [5, 3, 3], [0, 100, 100], [-1, 0, 0], -1, 0, 101
    )
    fields = {v.field for v in bad}
    assert {
        "policy.tiers[0].threshold",  # first is not 0
        "policy.tiers[1].code",  # not lowest first
        "policy.tiers[1].threshold",  # not ascending
        "policy.tiers[2].code",  # unknown code
        "policy.tiers[2].threshold",
        "policy.tiers[0].points_multiplier_percent",
        "policy.tiers[0].birthday_bonus_points",
        "policy.points_per_yuan",
        "policy.points_per_yuan_redeemed",
        "policy.max_redeem_percent",
    } <= fields
    assert rules.policy_violations([], [], [], [], 1, 100, 50)[0].field == "policy.tiers"
