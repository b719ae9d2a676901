"""Deterministic demo members: eight members with phone and WeChat identities.

Names, tiers, points, home stores and tags come from ``_MEMBERS``; phone numbers, WeChat
UnionIDs and referral codes come from a ``random.Random`` with a fixed seed, so
``demo_members()`` returns the same data on every call.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable
from datetime import UTC, datetime
from typing import NamedTuple

from member_svc.domain import Identity, IdentityKind, Member, MemberTag, Tier

SEED = 8613
REFERRAL_ALPHABET = string.ascii_uppercase + string.digits
UNIONID_ALPHABET = string.ascii_letters + string.digits + "-_"
UNIONID_LENGTH = 28  # WeChat UnionIDs look like "o6_bmjrPTlm6_2sgVt7hMZOPfL2M"


class _MemberRow(NamedTuple):
    display_name: str
    tier: Tier
    points_balance: int
    home_store_id: str | None
    tags: tuple[str, ...]
    join_time: datetime
    has_wechat: bool


def _utc(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


# ids follow the row order: m_0001 first.
# fmt: off
_MEMBERS: tuple[_MemberRow, ...] = (
    _MemberRow("王雨桐", Tier.GOLD, 12680, "st_001", ("coffee_lover", "weekend_shopper"),
               _utc(2023, 3, 14, 2, 25), True),
    _MemberRow("李浩然", Tier.SILVER, 3420, "st_003", ("tea_lover",),
               _utc(2023, 9, 2, 11, 8), True),
    _MemberRow("张思琪", Tier.PLATINUM, 48750, "st_014", ("beauty_vip", "coffee_lover"),
               _utc(2021, 11, 11, 0, 30), True),
    _MemberRow("陈一鸣", Tier.BRONZE, 260, "st_007", ("snack_fan", "new_member"),
               _utc(2025, 12, 20, 9, 45), False),
    _MemberRow("刘佳怡", Tier.GOLD, 9310, "st_005", ("beauty_vip", "fashion"),
               _utc(2022, 6, 18, 4, 0), True),
    _MemberRow("杨子轩", Tier.BRONZE, 880, "st_016", ("coffee_lover", "office_worker"),
               _utc(2025, 4, 7, 23, 15), False),
    _MemberRow("赵晓雯", Tier.SILVER, 2150, "st_008", ("home_decor", "tea_lover"),
               _utc(2024, 2, 29, 6, 50), True),
    _MemberRow("周明远", Tier.BRONZE, 0, "st_017", ("new_member",),
               _utc(2026, 1, 5, 13, 20), False),
)
# fmt: on


def _unique(rng: random.Random, make: Callable[[random.Random], str], seen: set[str]) -> str:
    while True:
        value = make(rng)
        if value not in seen:
            seen.add(value)
            return value


def _phone(rng: random.Random) -> str:
    return f"+8613{rng.randrange(1_000_000_000):09d}"


def _unionid(rng: random.Random) -> str:
    tail = "".join(rng.choices(UNIONID_ALPHABET, k=UNIONID_LENGTH - 3))
    return f"o6_{tail}"


def _referral_code(rng: random.Random) -> str:
    return "".join(rng.choices(REFERRAL_ALPHABET, k=8))


def opening_points() -> dict[str, int]:
    """Each demo member's points before the ledger existed, loaded as opening entries."""
    return {f"m_{number:04d}": row.points_balance for number, row in enumerate(_MEMBERS, 1)}


def demo_members() -> tuple[Member, ...]:
    """The demo members; the same on every call."""
    rng = random.Random(SEED)
    seen: set[str] = set()
    members = []
    for number, row in enumerate(_MEMBERS, start=1):
        identities = [Identity(IdentityKind.PHONE, _unique(rng, _phone, seen))]
        if row.has_wechat:
            identities.append(Identity(IdentityKind.WECHAT_UNIONID, _unique(rng, _unionid, seen)))
        members.append(
            Member(
                id=f"m_{number:04d}",
                display_name=row.display_name,
                identities=tuple(identities),
                tier=row.tier,
                home_store_id=row.home_store_id,
                tags=tuple(
                    MemberTag(tag, "seed", row.home_store_id, row.join_time) for tag in row.tags
                ),
                join_time=row.join_time,
                referral_code=_unique(rng, _referral_code, seen),
            )
        )
    return tuple(members)
