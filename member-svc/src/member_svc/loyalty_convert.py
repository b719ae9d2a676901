"""proto <-> domain for the points ledger and tiers, with the request checks that name fields."""

from __future__ import annotations

from datetime import datetime, timedelta

from google.protobuf.message import Message

from member_svc import loyalty_rules as rules
from member_svc.convert import (
    DEFAULT_CURRENCY,
    EXPIRING_SOON_DAYS,
    actor_to_proto,
    from_timestamp,
    money,
    optional_timestamp,
    timestamp,
)
from member_svc.domain import Tier
from member_svc.points import Head, LedgerEntry
from member_svc.tiers import TierChange
from retail.common.v1 import common_pb2
from retail.member.v1 import member_pb2
from retail_kit.errors import FieldViolation, invalid_argument

MAX_AMOUNT_FEN = 10_000_000_000  # ¥100 million: far above any order, far below int64


def entry_to_proto(entry: LedgerEntry) -> member_pb2.PointsEntry:
    return member_pb2.PointsEntry(
        id=entry.id,
        member_id=entry.member_id,
        delta=entry.delta,
        kind=entry.kind,
        reference=entry.reference,
        create_time=timestamp(entry.create_time),
        balance_after=entry.total_after,
        note=entry.note,
        shortfall=entry.shortfall,
        actor=actor_to_proto(entry.actor),
        available_time=optional_timestamp(entry.available_time),
        expire_time=optional_timestamp(entry.expire_time),
    )


def summary_to_proto(head: Head, now: datetime) -> member_pb2.PointsSummary:
    """available + pending = total once the expiry sweep has taken due lots."""
    soon = now + timedelta(days=EXPIRING_SOON_DAYS)
    expiring = sorted(
        (lot for lot in head.lots if rules.is_available(lot, now) and lot.expire_time <= soon),
        key=rules.spend_order,
    )
    return member_pb2.PointsSummary(
        available=rules.available(head.lots, now),
        pending=rules.pending(head.lots, now),
        total=head.total,
        expiring_soon=[
            member_pb2.ExpiringPoints(points=lot.remaining, expire_time=timestamp(lot.expire_time))
            for lot in expiring
        ],
    )


def amount_fen(
    value: common_pb2.Money, field: str, *, required: bool = True, allow_zero: bool = False
) -> int:
    """A CNY amount in fen, or INVALID_ARGUMENT naming `field` (`field.amount`)."""
    violations: list[FieldViolation] = []
    if value.currency not in ("", DEFAULT_CURRENCY):
        violations.append(FieldViolation(f"{field}.currency", f"must be {DEFAULT_CURRENCY}"))
    if value.amount < 0 or (value.amount == 0 and required and not allow_zero):
        violations.append(FieldViolation(f"{field}.amount", "must be positive"))
    elif value.amount > MAX_AMOUNT_FEN:
        violations.append(FieldViolation(f"{field}.amount", f"must be at most {MAX_AMOUNT_FEN}"))
    if violations:
        raise invalid_argument(*violations)
    return int(value.amount)


def policy_to_proto(policy: rules.TierPolicy) -> member_pb2.TierPolicy:
    return member_pb2.TierPolicy(
        tiers=[
            member_pb2.TierDefinition(
                code=level.code.value,
                name=common_pb2.LocalizedText(values=dict(level.names)),
                threshold=money(level.threshold),
                points_multiplier_percent=level.multiplier_percent,
                birthday_bonus_points=level.birthday_bonus,
            )
            for level in policy.tiers
        ],
        points_per_yuan=policy.points_per_yuan,
        points_per_yuan_redeemed=policy.points_per_yuan_redeemed,
        max_redeem_percent=policy.max_redeem_percent,
        update_time=optional_timestamp(policy.update_time),
    )


def policy_from_proto(message: member_pb2.TierPolicy) -> rules.TierPolicy:
    """A valid policy, or INVALID_ARGUMENT listing every problem by field."""
    violations: list[FieldViolation] = []
    for i, tier in enumerate(message.tiers):
        if tier.threshold.currency not in ("", DEFAULT_CURRENCY):
            violations.append(
                FieldViolation(
                    f"policy.tiers[{i}].threshold.currency", f"must be {DEFAULT_CURRENCY}"
                )
            )
    violations += rules.policy_violations(
        [tier.code for tier in message.tiers],
        [tier.threshold.amount for tier in message.tiers],
        [tier.points_multiplier_percent for tier in message.tiers],
        [tier.birthday_bonus_points for tier in message.tiers],
        message.points_per_yuan,
        message.points_per_yuan_redeemed,
        message.max_redeem_percent,
    )
    if violations:
        raise invalid_argument(*violations)
    defaults = {level.code: level.names for level in rules.DEFAULT_POLICY.tiers}
    return rules.TierPolicy(
        tiers=tuple(
            rules.TierLevel(
                code=Tier(tier.code),
                names=tuple(sorted(tier.name.values.items())) or defaults[Tier(tier.code)],
                threshold=int(tier.threshold.amount),
                multiplier_percent=tier.points_multiplier_percent,
                birthday_bonus=int(tier.birthday_bonus_points),
            )
            for tier in message.tiers
        ),
        points_per_yuan=message.points_per_yuan,
        points_per_yuan_redeemed=message.points_per_yuan_redeemed,
        max_redeem_percent=message.max_redeem_percent,
    )


def change_to_proto(change: TierChange) -> member_pb2.TierChange:
    return member_pb2.TierChange(
        member_id=change.member_id,
        from_tier=change.from_tier,
        to_tier=change.to_tier,
        reason=change.reason,
        qualifying_spend=money(change.qualifying_spend),
        change_time=timestamp(change.change_time),
    )


def optional_time(request: Message, name: str) -> datetime | None:
    """The request's timestamp field `name`, or None when it is not set."""
    return from_timestamp(getattr(request, name)) if request.HasField(name) else None
