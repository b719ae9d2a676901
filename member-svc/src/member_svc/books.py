"""Every area's book over one database, built once per servicer and shared by the RPCs and
the background jobs. Books take only (database, settings, clock); work that spans areas
(merging, order effects, campaigns) takes the `Books` it needs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from pymongo.asynchronous.database import AsyncDatabase

from member_svc import (
    audit,
    campaigns,
    coupons,
    merge,
    points,
    referrals,
    repository,
    segments,
    tags,
    tiers,
    verification,
)
from member_svc.audit import AuditLog
from member_svc.campaigns import CampaignRunner
from member_svc.coupons import CouponBook
from member_svc.merge import MergeProcess
from member_svc.points import PointsBook
from member_svc.referrals import ReferralBook
from member_svc.repository import MemberRepository
from member_svc.segments import SegmentQuery
from member_svc.settings import MemberSettings
from member_svc.tags import TagCatalogue
from member_svc.tiers import TierBook
from member_svc.verification import VerificationCodes
from retail_kit.mongo import Document, IndexDeclaration, ensure_indexes

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


ALL_INDEXES: tuple[IndexDeclaration, ...] = (
    *repository.INDEXES,
    *audit.INDEXES,
    *points.INDEXES,
    *tiers.INDEXES,
    *coupons.INDEXES,
    *referrals.INDEXES,
    *segments.INDEXES,
    *campaigns.INDEXES,
    *tags.INDEXES,
    *merge.INDEXES,
    *verification.INDEXES,
)


@dataclass(slots=True)
class Books:
    database: AsyncDatabase[Document]
    settings: MemberSettings
    clock: Clock
    members: MemberRepository
    audit: AuditLog
    points: PointsBook
    tiers: TierBook
    coupons: CouponBook
    referrals: ReferralBook
    segments: SegmentQuery
    campaigns: CampaignRunner
    tags: TagCatalogue
    merges: MergeProcess
    verifications: VerificationCodes


def build_books(
    database: AsyncDatabase[Document], settings: MemberSettings, clock: Clock = utc_now
) -> Books:
    return Books(
        database=database,
        settings=settings,
        clock=clock,
        members=MemberRepository(database),
        audit=AuditLog(database),
        points=PointsBook(database, settings, clock),
        tiers=TierBook(database, settings, clock),
        coupons=CouponBook(database, settings, clock),
        referrals=ReferralBook(database, settings, clock),
        segments=SegmentQuery(database, settings, clock),
        campaigns=CampaignRunner(database, settings, clock),
        tags=TagCatalogue(database, settings, clock),
        merges=MergeProcess(database, settings, clock),
        verifications=VerificationCodes(database, settings, clock),
    )


async def ensure_all_indexes(database: AsyncDatabase[Document]) -> None:
    await ensure_indexes(database, ALL_INDEXES)
