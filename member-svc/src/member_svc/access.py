"""Who may call member-svc over gRPC: the scope each method needs (retail_kit.apikeys) and
the interceptors the host runs with (docs/PARTNERS.md lists every scope).

`member.read`: members, tiers, tags and referrals (a CRM). `member.enroll`: EnsureMember
(a partner till: payment = membership). `member.points`: earn, redeem, revert, quote and
read points (a coalition loyalty partner). `member.coupons`: read, evaluate, lock, redeem
and release coupons (a partner till redeeming 核销). `member.segments`: segment counts and
members (a marketing platform). Everything that takes an actor (profile, tags, merges,
point adjustments, coupon issuing, campaigns, tier policy), order bookkeeping and jobs are
first-party only (`internal`), as is any method added later.
"""

from __future__ import annotations

import grpc

from retail.member.v1 import member_pb2
from retail_kit.apikeys import INTERNAL_SCOPE, ScopePolicy, server_interceptors
from retail_kit.settings import ServiceSettings

SERVICE = member_pb2.DESCRIPTOR.services_by_name["MemberService"].full_name

SCOPE_READ = "member.read"
SCOPE_ENROLL = "member.enroll"
SCOPE_POINTS = "member.points"
SCOPE_COUPONS = "member.coupons"
SCOPE_SEGMENTS = "member.segments"

_BY_SCOPE: dict[str, tuple[str, ...]] = {
    SCOPE_READ: (
        "GetMember",
        "BatchGetMembers",
        "GetMemberByIdentity",
        "ListMembers",
        "GetTierPolicy",
        "ListTierChanges",
        "ListTagDefinitions",
        "ListReferrals",
    ),
    SCOPE_ENROLL: ("EnsureMember",),
    SCOPE_POINTS: (
        "EarnPoints",
        "RedeemPoints",
        "RevertPointsRedemption",
        "QuotePointsRedemption",
        "GetPointsSummary",
        "ListPointsLedger",
    ),
    SCOPE_COUPONS: (
        "LockCoupon",
        "RedeemCoupon",
        "ReleaseCoupon",
        "EvaluateCoupons",
        "BatchGetCoupons",
        "ListMemberCoupons",
        "BatchGetCouponTemplates",
        "ListCouponTemplates",
    ),
    SCOPE_SEGMENTS: ("CountSegment", "ListSegmentMembers"),
}

METHOD_SCOPES: dict[str, str] = {
    f"/{SERVICE}/*": INTERNAL_SCOPE,
    **{f"/{SERVICE}/{name}": scope for scope, names in _BY_SCOPE.items() for name in names},
}


def policy() -> ScopePolicy:
    return ScopePolicy(METHOD_SCOPES)


def interceptors(settings: ServiceSettings) -> list[grpc.aio.ServerInterceptor]:  # type: ignore[type-arg]
    """The API-key interceptor over MEMBER_PARTNER_API_KEYS (a bad value fails the start)."""
    return server_interceptors(settings, policy())
