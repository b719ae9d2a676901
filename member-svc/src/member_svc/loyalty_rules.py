"""Points and tier rules as pure functions: no database, no proto, no clock of their own.

Lots (`domain.PointsLot`) are what a member's points are made of. A lot is

- *available* from its `available_time` (an order's points stay pending until its return
  window ends) until its `expire_time` (exclusive);
- *spent* soonest-expiring first: redemptions take available lots ordered by
  (expire_time, available_time, id); a taken amount is recorded per lot (`LotTake`), so a
  reverted redemption gives back exactly what it took to the same lots;
- *expired* by an expiry entry once `expire_time <= now` (whatever is left in it).

The business calendar is Asia/Shanghai (UTC+8, no daylight saving): a lot earned on any day
of year Y (Shanghai date) expires at the end of Y + 1, i.e. at 00:00 Shanghai on 1 January
of Y + 2 (16:00 UTC on 31 December of Y + 1).

Money is fen (1 yuan = 100 fen); percentages are whole percent; multipliers are in
hundredths (150 = 1.5x), as in the contract.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from member_svc.domain import PointsLot, Tier
from retail_kit.errors import FieldViolation

BUSINESS_TZ = ZoneInfo("Asia/Shanghai")
FEN_PER_YUAN = 100
ROLLING_SPEND_DAYS = 365
TIER_PROTECTION = timedelta(days=365)


# ---- calendar --------------------------------------------------------------------------------


def expiry_for(earn_time: datetime) -> datetime:
    """End of the calendar year after the one `earn_time` falls in (Shanghai calendar)."""
    year = earn_time.astimezone(BUSINESS_TZ).year
    return datetime(year + 2, 1, 1, tzinfo=BUSINESS_TZ).astimezone(UTC)


def business_year_month(now: datetime) -> tuple[int, int]:
    local = now.astimezone(BUSINESS_TZ)
    return local.year, local.month


def one_year_later(moment: datetime) -> datetime:
    """The same instant a year later (29 February -> 28 February)."""
    try:
        return moment.replace(year=moment.year + 1)
    except ValueError:
        return moment.replace(year=moment.year + 1, day=28)


# ---- lots ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LotTake:
    """Points taken from one lot; `lot` is the lot as it was before, so it can be rebuilt."""

    lot: PointsLot
    points: int


def spend_order(lot: PointsLot) -> tuple[datetime, datetime, str]:
    return (lot.expire_time, lot.available_time, lot.id)


def is_available(lot: PointsLot, now: datetime) -> bool:
    return lot.available_time <= now < lot.expire_time


def is_pending(lot: PointsLot, now: datetime) -> bool:
    return now < lot.available_time and now < lot.expire_time


def is_expired(lot: PointsLot, now: datetime) -> bool:
    return lot.expire_time <= now


def normalize(lots: Iterable[PointsLot]) -> tuple[PointsLot, ...]:
    """Spend order, empty lots dropped (an empty lot is rebuilt from a take if ever needed)."""
    return tuple(sorted((lot for lot in lots if lot.remaining > 0), key=spend_order))


def total(lots: Iterable[PointsLot]) -> int:
    return sum(lot.remaining for lot in lots)


def available(lots: Iterable[PointsLot], now: datetime) -> int:
    return sum(lot.remaining for lot in lots if is_available(lot, now))


def pending(lots: Iterable[PointsLot], now: datetime) -> int:
    return sum(lot.remaining for lot in lots if is_pending(lot, now))


def next_expiry(lots: Iterable[PointsLot]) -> datetime | None:
    times = [lot.expire_time for lot in lots if lot.remaining > 0]
    return min(times) if times else None


CONSOLIDATED = "consolidated"


def consolidate(lots: Iterable[PointsLot], now: datetime) -> tuple[PointsLot, ...]:
    """Available lots that expire together become one lot (the one available first keeps
    its id; the source says "consolidated" when they came from different entries), so a
    member's head holds a handful of lots (per expiry year, plus pending ones), not one per
    order. Pending lots stay apart (a claw-back in the return window takes the order's own
    lot first), and so do expired ones (the next expiry entry takes them). Totals, and what
    each point is worth and when it expires, are unchanged; a reverted redemption gives back
    to the surviving lot, or rebuilds a lot merged away since (`restore`), with the same
    availability and expiry."""
    groups: dict[datetime, list[PointsLot]] = {}
    kept: list[PointsLot] = []
    for lot in lots:
        if lot.remaining > 0 and is_available(lot, now):
            groups.setdefault(lot.expire_time, []).append(lot)
        else:
            kept.append(lot)
    for group in groups.values():
        first = min(group, key=lambda lot: (lot.available_time, lot.id))
        if len(group) == 1:
            kept.append(first)
            continue
        sources = {lot.source for lot in group}
        kept.append(
            replace(
                first,
                points=sum(lot.points for lot in group),
                remaining=sum(lot.remaining for lot in group),
                source=first.source if len(sources) == 1 else CONSOLIDATED,
            )
        )
    return normalize(kept)


def add_lot(lots: Sequence[PointsLot], lot: PointsLot) -> tuple[PointsLot, ...]:
    if lot.points <= 0 or lot.remaining < 0 or lot.remaining > lot.points:
        raise ValueError(f"a new lot needs 0 <= remaining <= points > 0, got {lot}")
    if any(existing.id == lot.id for existing in lots):
        raise ValueError(f"lot {lot.id!r} exists already")
    return normalize([*lots, lot])


def take(
    lots: Sequence[PointsLot], wanted: int, order: Sequence[PointsLot]
) -> tuple[tuple[PointsLot, ...], tuple[LotTake, ...]]:
    """Takes up to `wanted` points from the lots in `order` (a subset of `lots`, in the order
    to take them); returns the new lots and what was taken from each."""
    if wanted < 0:
        raise ValueError("cannot take a negative amount")
    left = wanted
    taken: dict[str, int] = {}
    takes: list[LotTake] = []
    for lot in order:
        if left == 0:
            break
        amount = min(lot.remaining, left)
        if amount <= 0:
            continue
        taken[lot.id] = amount
        takes.append(LotTake(lot, amount))
        left -= amount
    updated = [replace(lot, remaining=lot.remaining - taken.get(lot.id, 0)) for lot in lots]
    return normalize(updated), tuple(takes)


def redeemable_order(lots: Sequence[PointsLot], now: datetime) -> list[PointsLot]:
    """Available lots, soonest-expiring first: what a redemption spends."""
    return sorted((lot for lot in lots if is_available(lot, now)), key=spend_order)


def removal_order(
    lots: Sequence[PointsLot], now: datetime, first_source: str | None = None
) -> list[PointsLot]:
    """For claw-backs and negative adjustments: the lot from `first_source` (the order's own
    earn), then available lots soonest-expiring first, then pending ones. Expired lots are
    left to the expiry entry."""
    live = [lot for lot in lots if not is_expired(lot, now)]
    first = [lot for lot in live if first_source is not None and lot.source == first_source]
    rest = [lot for lot in live if lot not in first]
    return [
        *sorted(first, key=spend_order),
        *sorted((lot for lot in rest if is_available(lot, now)), key=spend_order),
        *sorted((lot for lot in rest if not is_available(lot, now)), key=spend_order),
    ]


def expire_due(
    lots: Sequence[PointsLot], now: datetime
) -> tuple[tuple[PointsLot, ...], tuple[LotTake, ...]]:
    due = [lot for lot in lots if is_expired(lot, now) and lot.remaining > 0]
    return take(lots, sum(lot.remaining for lot in due), sorted(due, key=spend_order))


def restore(lots: Sequence[PointsLot], takes: Sequence[LotTake]) -> tuple[PointsLot, ...]:
    """Gives each take back to its lot; a lot emptied (and dropped) since is rebuilt."""
    by_id = {lot.id: lot for lot in lots}
    for item in takes:
        current = by_id.get(item.lot.id)
        if current is None:
            by_id[item.lot.id] = replace(item.lot, remaining=item.points)
        else:
            by_id[item.lot.id] = replace(current, remaining=current.remaining + item.points)
    return normalize(by_id.values())


# ---- earning and redeeming -------------------------------------------------------------------


def order_points(paid_fen: int, points_per_yuan: int, multiplier_percent: int) -> int:
    """floor(paid yuan x points per yuan x tier multiplier), in integers."""
    if paid_fen <= 0:
        return 0
    return paid_fen * points_per_yuan * multiplier_percent // (FEN_PER_YUAN * 100)


def point_step(points_per_yuan_redeemed: int) -> int:
    """The smallest number of points worth a whole number of fen."""
    return points_per_yuan_redeemed // math.gcd(points_per_yuan_redeemed, FEN_PER_YUAN)


def redemption_value(points: int, points_per_yuan_redeemed: int) -> int | None:
    """What `points` are worth in fen, or None when that is not a whole number of fen."""
    if (points * FEN_PER_YUAN) % points_per_yuan_redeemed:
        return None
    return points * FEN_PER_YUAN // points_per_yuan_redeemed


def max_redeemable(
    order_amount_fen: int, points_per_yuan_redeemed: int, max_redeem_percent: int
) -> int:
    """The most points one order may use: worth at most `max_redeem_percent` of its amount,
    in whole-fen steps."""
    if order_amount_fen <= 0:
        return 0
    cap_fen = order_amount_fen * max_redeem_percent // 100
    points = cap_fen * points_per_yuan_redeemed // FEN_PER_YUAN
    return points - points % point_step(points_per_yuan_redeemed)


def quote(
    requested: int,
    available_points: int,
    order_amount_fen: int,
    points_per_yuan_redeemed: int,
    max_redeem_percent: int,
) -> tuple[int, int]:
    """(points usable, the most this order may use); `requested` 0 asks for the most."""
    cap = max_redeemable(order_amount_fen, points_per_yuan_redeemed, max_redeem_percent)
    usable = min(cap, available_points)
    if requested > 0:
        usable = min(usable, requested)
    usable -= usable % point_step(points_per_yuan_redeemed)
    return max(usable, 0), cap


def claw_back_points(earned: int, paid_fen: int, refunded_before: int, refunded_now: int) -> int:
    """Points to claw back for one refund: round(earned x refunded / paid) counted on the
    running total of refunds, so the returns of one order never claw back more than it
    earned (half up)."""
    if earned <= 0 or paid_fen <= 0 or refunded_now <= 0:
        return 0

    def share(refunded: int) -> int:
        refunded = min(refunded, paid_fen)
        return (2 * earned * refunded + paid_fen) // (2 * paid_fen)

    return share(refunded_before + refunded_now) - share(refunded_before)


# ---- tiers -----------------------------------------------------------------------------------

TIER_CODES: tuple[Tier, ...] = (Tier.BRONZE, Tier.SILVER, Tier.GOLD, Tier.PLATINUM)
RANK = {tier: number for number, tier in enumerate(TIER_CODES)}


@dataclass(frozen=True, slots=True)
class TierLevel:
    code: Tier
    names: tuple[tuple[str, str], ...]  # (locale, name)
    threshold: int  # rolling 12-month qualifying spend in fen
    multiplier_percent: int
    birthday_bonus: int


@dataclass(frozen=True, slots=True)
class TierPolicy:
    tiers: tuple[TierLevel, ...]  # lowest first; the first threshold is 0
    points_per_yuan: int = 1
    points_per_yuan_redeemed: int = 100
    max_redeem_percent: int = 50
    update_time: datetime | None = None

    def level(self, tier: Tier) -> TierLevel:
        """The policy's level for `tier`; a tier the policy no longer has counts as the
        highest level below it (or the lowest)."""
        below = [level for level in self.tiers if RANK[level.code] <= RANK[tier]]
        return below[-1] if below else self.tiers[0]

    def index(self, tier: Tier) -> int:
        return self.tiers.index(self.level(tier))

    def tier_for_spend(self, spend_fen: int) -> Tier:
        reached = [level for level in self.tiers if level.threshold <= spend_fen]
        return reached[-1].code if reached else self.tiers[0].code


DEFAULT_POLICY = TierPolicy(
    tiers=(
        TierLevel(Tier.BRONZE, (("zh-Hans", "铜卡"), ("en", "Bronze")), 0, 100, 0),
        TierLevel(Tier.SILVER, (("zh-Hans", "银卡"), ("en", "Silver")), 200_000, 120, 100),
        TierLevel(Tier.GOLD, (("zh-Hans", "金卡"), ("en", "Gold")), 800_000, 150, 300),
        TierLevel(Tier.PLATINUM, (("zh-Hans", "白金卡"), ("en", "Platinum")), 2_000_000, 200, 800),
    ),
)

MAX_MULTIPLIER_PERCENT = 1_000
MAX_POINTS_PER_YUAN = 100
MAX_POINTS_PER_YUAN_REDEEMED = 10_000
MAX_BIRTHDAY_BONUS = 1_000_000


def policy_violations(
    codes: Sequence[str],
    thresholds: Sequence[int],
    multipliers: Sequence[int],
    bonuses: Sequence[int],
    points_per_yuan: int,
    points_per_yuan_redeemed: int,
    max_redeem_percent: int,
) -> list[FieldViolation]:
    """Everything wrong with a policy, each naming its field (`policy.tiers[1].threshold`)."""
    out: list[FieldViolation] = []
    allowed = [tier.value for tier in TIER_CODES]
    if not codes:
        out.append(FieldViolation("policy.tiers", "at least one tier is required"))
    seen: set[str] = set()
    for i, code in enumerate(codes):
        field = f"policy.tiers[{i}]"
        if code not in allowed:
            out.append(FieldViolation(f"{field}.code", f"must be one of {', '.join(allowed)}"))
        elif code in seen:
            out.append(FieldViolation(f"{field}.code", f"{code} appears twice"))
        elif (
            i > 0 and codes[i - 1] in allowed and allowed.index(code) < allowed.index(codes[i - 1])
        ):
            out.append(FieldViolation(f"{field}.code", "tiers must be listed lowest first"))
        seen.add(code)
        if i == 0 and thresholds[i] != 0:
            out.append(FieldViolation(f"{field}.threshold", "the first tier's threshold is 0"))
        if thresholds[i] < 0:
            out.append(FieldViolation(f"{field}.threshold", "must not be negative"))
        if i > 0 and thresholds[i] <= thresholds[i - 1]:
            out.append(
                FieldViolation(f"{field}.threshold", "must be above the previous tier's threshold")
            )
        if not 1 <= multipliers[i] <= MAX_MULTIPLIER_PERCENT:
            out.append(
                FieldViolation(
                    f"{field}.points_multiplier_percent",
                    f"must be between 1 and {MAX_MULTIPLIER_PERCENT}",
                )
            )
        if not 0 <= bonuses[i] <= MAX_BIRTHDAY_BONUS:
            out.append(
                FieldViolation(
                    f"{field}.birthday_bonus_points", f"must be between 0 and {MAX_BIRTHDAY_BONUS}"
                )
            )
    if not 0 <= points_per_yuan <= MAX_POINTS_PER_YUAN:
        out.append(
            FieldViolation("policy.points_per_yuan", f"must be between 0 and {MAX_POINTS_PER_YUAN}")
        )
    if not 1 <= points_per_yuan_redeemed <= MAX_POINTS_PER_YUAN_REDEEMED:
        out.append(
            FieldViolation(
                "policy.points_per_yuan_redeemed",
                f"must be between 1 and {MAX_POINTS_PER_YUAN_REDEEMED}",
            )
        )
    if not 0 <= max_redeem_percent <= 100:
        out.append(FieldViolation("policy.max_redeem_percent", "must be between 0 and 100"))
    return out


def review(policy: TierPolicy, current: Tier, spend_fen: int) -> tuple[Tier, str]:
    """At the tier's anniversary: (new tier, reason). Spend that qualifies for the current
    tier (or more) keeps it (or upgrades); otherwise the member drops one step, never more."""
    earned = policy.tier_for_spend(spend_fen)
    index = policy.index(current)
    earned_index = policy.index(earned)
    if earned_index > index:
        return earned, "upgrade"
    if earned_index == index:
        return policy.tiers[index].code, "retained"
    return policy.tiers[index - 1].code, "downgrade"


def higher(a: Tier, b: Tier) -> Tier:
    return a if RANK[a] >= RANK[b] else b
