"""Shared helpers of the coupon tests: members and templates stored directly, a clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pymongo.asynchronous.database import AsyncDatabase

from member_svc.coupon_domain import CouponKind, CouponScope, CouponTemplate
from member_svc.coupons import COUPON_TEMPLATES, template_to_document
from member_svc.domain import Identity, IdentityKind, Member, Tier
from member_svc.repository import MEMBERS, member_to_document
from retail_kit.mongo import Document

START = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)


class Clock:
    """A clock tests move by hand."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


def member(member_id: str, number: int = 0) -> Member:
    return Member(
        id=member_id,
        display_name=f"会员 {member_id}",
        identities=(Identity(IdentityKind.PHONE, f"+86139{number:08d}"),),
        tier=Tier.BRONZE,
        home_store_id=None,
        join_time=START - timedelta(days=100),
        referral_code=f"R{member_id.upper().replace('_', '')}"[:16],
    )


async def store_members(database: AsyncDatabase[Document], *member_ids: str) -> None:
    await database[MEMBERS].insert_many(
        [member_to_document(member(m, n)) for n, m in enumerate(member_ids)]
    )


def fixed_template(template_id: str, **changes: object) -> CouponTemplate:
    values: dict[str, object] = {
        "id": template_id,
        "name": {"zh-Hans": "立减10元", "en": "10 off"},
        "kind": CouponKind.FIXED,
        "amount_off": 1_000,
        "valid_days": 30,
        "create_time": START,
        "scope": CouponScope(),
    }
    values.update(changes)
    return CouponTemplate(**values)  # type: ignore[arg-type]


async def store_template(database: AsyncDatabase[Document], template: CouponTemplate) -> None:
    await database[COUPON_TEMPLATES].insert_one(template_to_document(template))
