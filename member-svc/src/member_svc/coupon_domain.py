"""Coupon rules: templates, coupons, which lines a coupon covers and what it takes off.

Plain dataclasses and pure functions (no proto, no BSON, no database), so every rule has a
fast unit test (`tests/test_coupons_rules.py`). Money is integer fen throughout.

- A line is *eligible* when the template's scope covers it: no category and no SKU in the
  scope means every line; otherwise the line's SKU is listed or one of its categories (the
  caller sends the SKU's category and its ancestors, so a category covers its subtree) is.
- FIXED takes `amount_off`, at most the eligible total. PERCENT takes floor(eligible total x
  percent / 100), at most `cap`. THRESHOLD takes `amount_off` once the eligible total
  reaches `threshold` (always > amount_off, so never more than the eligible total).
- The discount is allocated to the eligible lines in proportion to their totals by the
  largest-remainder method: whole fen, summing exactly to the discount, never more than a
  line's total. A return refunds a line's share unit by unit (`returned_discount`).
"""

from __future__ import annotations

import enum
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from member_svc.domain import Channel

DEFAULT_CURRENCY = "CNY"
MAX_PER_MEMBER_LIMIT = 100
MAX_VALID_DAYS = 366
CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U
CODE_LENGTH = 10  # 50 random bits: unguessable, short enough to type at the till


class CouponKind(enum.StrEnum):
    FIXED = "fixed"
    PERCENT = "percent"
    THRESHOLD = "threshold"


class TemplateStatus(enum.StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"


class CouponStatus(enum.StrEnum):
    # Inserted, not yet counted against the template's total limit (never shown).
    ISSUING = "issuing"
    AVAILABLE = "available"
    LOCKED = "locked"
    REDEEMED = "redeemed"
    EXPIRED = "expired"


class Reason(enum.StrEnum):
    """Why a coupon does not apply (CouponEvaluation.reason, error metadata `reason`)."""

    MEMBER = "member"
    REDEEMED = "redeemed"
    LOCKED = "locked"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    CHANNEL = "channel"
    STORE = "store"
    SCOPE = "scope"
    THRESHOLD = "threshold"
    POINTS = "points"
    CLAIM_CODE = "claim_code"
    ISSUE_ONLY = "issue_only"


@dataclass(frozen=True, slots=True)
class CouponScope:
    """Where a coupon applies; an empty tuple means everywhere / everything."""

    channels: tuple[Channel, ...] = ()
    store_ids: tuple[str, ...] = ()
    category_ids: tuple[str, ...] = ()
    sku_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CouponTemplate:
    id: str
    name: Mapping[str, str]
    kind: CouponKind
    scope: CouponScope = field(default_factory=CouponScope)
    amount_off: int = 0
    percent_off: int = 0
    cap: int = 0
    threshold: int = 0
    # Validity: a fixed window (valid_from, valid_until) or valid_days from issue.
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    valid_days: int = 0
    total_limit: int = 0  # 0 = unlimited
    per_member_limit: int = 0  # 0 = 1
    issued_count: int = 0
    combinable_with_points: bool = True
    claim_code: str = ""
    claim_store_ids: tuple[str, ...] = ()
    # Only issued (IssueCoupon, campaigns): members cannot claim it themselves.
    issue_only: bool = False
    status: TemplateStatus = TemplateStatus.ACTIVE
    create_time: datetime | None = None
    currency: str = DEFAULT_CURRENCY

    @property
    def member_limit(self) -> int:
        return max(1, self.per_member_limit)

    def window_for(self, issue_time: datetime) -> tuple[datetime, datetime]:
        """The validity of a coupon issued at `issue_time`."""
        if self.valid_days > 0:
            return issue_time, issue_time + timedelta(days=self.valid_days)
        assert self.valid_from is not None and self.valid_until is not None
        return self.valid_from, self.valid_until

    def issue_closed(self, now: datetime) -> bool:
        """A fixed window that has ended: nothing issued now could ever be used."""
        return self.valid_days == 0 and self.valid_until is not None and now >= self.valid_until


@dataclass(frozen=True, slots=True)
class LineDiscount:
    line_index: int
    sku_id: str
    amount: int


@dataclass(frozen=True, slots=True)
class Coupon:
    """One coupon of one member. `status` is as stored; `status_at(now)` is what a reader
    sees (an AVAILABLE coupon whose window has ended reads EXPIRED)."""

    id: str
    template_id: str
    member_id: str
    status: CouponStatus
    valid_from: datetime
    valid_until: datetime
    code: str
    issue_ref: str
    source: str
    issue_time: datetime
    order_id: str = ""
    lock_until: datetime | None = None
    redeem_time: datetime | None = None
    # While locked or once redeemed: what the order takes off, per line.
    discount: int = 0
    line_discounts: tuple[LineDiscount, ...] = ()
    with_points: bool = False

    def status_at(self, now: datetime) -> CouponStatus:
        if self.status is CouponStatus.AVAILABLE and now >= self.valid_until:
            return CouponStatus.EXPIRED
        return self.status

    def at(self, now: datetime) -> Coupon:
        """The coupon as a reader sees it at `now`."""
        status = self.status_at(now)
        return self if status is self.status else replace(self, status=status)


@dataclass(frozen=True, slots=True)
class Line:
    """A priced order line: SKU, its category and ancestors, quantity, total in fen."""

    sku_id: str
    category_ids: tuple[str, ...]
    quantity: int
    line_total: int


@dataclass(frozen=True, slots=True)
class Evaluation:
    coupon: Coupon
    template: CouponTemplate
    usable: bool
    discount: int = 0
    line_discounts: tuple[LineDiscount, ...] = ()
    reason: Reason | None = None


def new_code() -> str:
    """A till code: CODE_LENGTH characters of Crockford base32 from `secrets`."""
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def coupon_id(template_id: str, member_id: str, slot: int) -> str:
    """The per-member limit is `_id` uniqueness: slot 1..per_member_limit."""
    return f"{template_id}:{member_id}:{slot}"


def line_eligible(line: Line, scope: CouponScope) -> bool:
    if not scope.category_ids and not scope.sku_ids:
        return True
    if line.sku_id in scope.sku_ids:
        return True
    return any(category in scope.category_ids for category in line.category_ids)


def allocate(amount: int, weights: Sequence[int]) -> list[int]:
    """Splits `amount` over `weights` in proportion, largest remainder first (ties to the
    earlier index): whole units, summing exactly to `amount`; with amount <= sum(weights)
    no share exceeds its weight."""
    total = sum(weights)
    if amount < 0 or any(w < 0 for w in weights):
        raise ValueError("amount and weights must not be negative")
    if amount == 0 or total == 0:
        if amount and not total:
            raise ValueError("cannot allocate a positive amount over zero weights")
        return [0] * len(weights)
    shares = [amount * w // total for w in weights]
    remainders = [amount * w % total for w in weights]
    left = amount - sum(shares)
    order = sorted(range(len(weights)), key=lambda i: (-remainders[i], i))
    for i in order[:left]:
        shares[i] += 1
    return shares


def returned_discount(
    line_discount: int, quantity: int, returned_before: int, returning: int
) -> int:
    """The part of a line's discount that returning `returning` more units refunds, after
    `returned_before` units came back earlier: floor(discount x units / quantity) counted
    cumulatively, so any sequence of partial returns refunds exactly the line's discount."""
    if quantity <= 0 or returned_before < 0 or returning < 0:
        raise ValueError("quantities must be positive")
    if returned_before + returning > quantity:
        raise ValueError("cannot return more units than were bought")
    after = returned_before + returning
    return line_discount * after // quantity - line_discount * returned_before // quantity


def discount_for(template: CouponTemplate, lines: Sequence[Line]) -> tuple[int, Reason | None]:
    """What the template takes off these lines, or why it takes nothing."""
    eligible_total = sum(line.line_total for line in lines if line_eligible(line, template.scope))
    if eligible_total <= 0:
        return 0, Reason.SCOPE
    if template.kind is CouponKind.FIXED:
        return min(template.amount_off, eligible_total), None
    if template.kind is CouponKind.PERCENT:
        off = eligible_total * template.percent_off // 100
        off = min(off, template.cap) if template.cap > 0 else off
        return (off, None) if off > 0 else (0, Reason.SCOPE)
    if eligible_total < template.threshold:
        return 0, Reason.THRESHOLD
    return min(template.amount_off, eligible_total), None


def allocate_to_lines(
    template: CouponTemplate, lines: Sequence[Line], discount: int
) -> tuple[LineDiscount, ...]:
    eligible = [i for i, line in enumerate(lines) if line_eligible(line, template.scope)]
    shares = allocate(discount, [lines[i].line_total for i in eligible])
    return tuple(
        LineDiscount(i, lines[i].sku_id, share)
        for i, share in zip(eligible, shares, strict=True)
        if share > 0
    )


def evaluate(
    coupon: Coupon,
    template: CouponTemplate,
    lines: Sequence[Line],
    channel: Channel | None,
    store_id: str | None,
    now: datetime,
) -> Evaluation:
    """Whether the coupon applies to these lines in this channel and store at `now`, with
    the discount per line; else the first reason it does not (in the order a customer
    would be told: the coupon's state, its window, where, what)."""
    status = coupon.status_at(now)
    reason: Reason | None = None
    if status is CouponStatus.REDEEMED:
        reason = Reason.REDEEMED
    elif status is CouponStatus.LOCKED:
        reason = Reason.LOCKED
    elif status is CouponStatus.EXPIRED or status is CouponStatus.ISSUING:
        reason = Reason.EXPIRED
    elif now < coupon.valid_from:
        reason = Reason.NOT_YET_VALID
    elif template.scope.channels and channel not in template.scope.channels:
        reason = Reason.CHANNEL
    elif template.scope.store_ids and store_id not in template.scope.store_ids:
        reason = Reason.STORE
    if reason is not None:
        return Evaluation(coupon.at(now), template, False, reason=reason)
    return judge_lines(coupon.at(now), template, lines)


def judge_lines(coupon: Coupon, template: CouponTemplate, lines: Sequence[Line]) -> Evaluation:
    discount, reason = discount_for(template, lines)
    if reason is not None:
        return Evaluation(coupon, template, False, reason=reason)
    return Evaluation(
        coupon, template, True, discount, allocate_to_lines(template, lines, discount)
    )


def rank(evaluations: Sequence[Evaluation]) -> list[Evaluation]:
    """Usable first, the largest discount first (then the soonest to expire); unusable after,
    soonest to expire first."""
    usable = sorted(
        (e for e in evaluations if e.usable),
        key=lambda e: (-e.discount, e.coupon.valid_until, e.coupon.id),
    )
    unusable = sorted(
        (e for e in evaluations if not e.usable), key=lambda e: (e.coupon.valid_until, e.coupon.id)
    )
    return usable + unusable
