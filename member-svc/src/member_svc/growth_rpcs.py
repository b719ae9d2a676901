"""MemberService RPCs for referrals, segments and campaigns."""

from __future__ import annotations

from member_svc.convert import (
    STAGE_FROM_PROTO,
    STAGE_TO_PROTO,
    from_timestamp,
    member_to_proto,
    timestamp,
)
from member_svc.domain import Tier
from member_svc.referrals import Referral
from member_svc.rpc_base import MemberRpcBase
from member_svc.segments import SegmentRule, rule_violations
from retail.member.v1 import member_pb2
from retail_kit.errors import Context, FieldViolation, invalid_argument, unimplemented
from retail_kit.paging import (
    decode_page_token,
    encode_page_token,
    invalid_page_token,
    page_size,
    query_fingerprint,
)
from retail_kit.validation import require_id

MAX_INVITE_CODE_LENGTH = 64
DEPRECATED_SEGMENT_FIELDS = ("tags", "tiers", "min_points", "max_points", "home_store_id")
TIER_NAMES = ", ".join(tier.value for tier in Tier)


def rule_from_proto(rule: member_pb2.SegmentRule, field: str = "rule") -> SegmentRule:
    """A valid rule, or INVALID_ARGUMENT naming every bad part (`rule.tiers[0]`, ...)."""
    violations: list[FieldViolation] = []
    tiers: list[Tier] = []
    for i, name in enumerate(rule.tiers):
        try:
            tiers.append(Tier(name))
        except ValueError:
            violations.append(
                FieldViolation(f"{field}.tiers[{i}]", f"unknown tier {name[:40]!r}: {TIER_NAMES}")
            )
    stages = []
    for i, number in enumerate(rule.lifecycle_stages):
        stage = STAGE_FROM_PROTO.get(number)
        if stage is None:
            violations.append(
                FieldViolation(
                    f"{field}.lifecycle_stages[{i}]",
                    f"unknown lifecycle stage {number}: NEW, ACTIVE, DORMANT or CHURNED",
                )
            )
        else:
            stages.append(stage)
    domain_rule = SegmentRule(
        tags_all=tuple(rule.tags_all),
        tags_any=tuple(rule.tags_any),
        tags_none=tuple(rule.tags_none),
        tiers=tuple(tiers),
        min_points=rule.min_points if rule.HasField("min_points") else None,
        max_points=rule.max_points if rule.HasField("max_points") else None,
        purchased_since=(
            from_timestamp(rule.purchased_since) if rule.HasField("purchased_since") else None
        ),
        not_purchased_since=(
            from_timestamp(rule.not_purchased_since)
            if rule.HasField("not_purchased_since")
            else None
        ),
        home_store_ids=tuple(rule.home_store_ids),
        lifecycle_stages=tuple(stages),
        associate_ids=tuple(rule.associate_ids),
    )
    violations += rule_violations(domain_rule, field)
    if violations:
        raise invalid_argument(*violations)
    return domain_rule


def rule_to_proto(rule: SegmentRule) -> member_pb2.SegmentRule:
    message = member_pb2.SegmentRule(
        tags_all=rule.tags_all,
        tags_any=rule.tags_any,
        tags_none=rule.tags_none,
        tiers=[tier.value for tier in rule.tiers],
        home_store_ids=rule.home_store_ids,
        lifecycle_stages=[STAGE_TO_PROTO[stage] for stage in rule.lifecycle_stages],
        associate_ids=rule.associate_ids,
    )
    if rule.min_points is not None:
        message.min_points = rule.min_points
    if rule.max_points is not None:
        message.max_points = rule.max_points
    if rule.purchased_since is not None:
        message.purchased_since.CopyFrom(timestamp(rule.purchased_since))
    if rule.not_purchased_since is not None:
        message.not_purchased_since.CopyFrom(timestamp(rule.not_purchased_since))
    return message


def rule_fingerprint(rule: member_pb2.SegmentRule) -> str:
    return query_fingerprint(rule.SerializeToString(deterministic=True).hex())


REFERRAL_STATE_TO_PROTO = {
    "joined": member_pb2.REFERRAL_STATE_JOINED,
    "rewarding": member_pb2.REFERRAL_STATE_JOINED,  # the reward is being given right now
    "rewarded": member_pb2.REFERRAL_STATE_REWARDED,
}


def referral_to_proto(referral: Referral, display_name: str) -> member_pb2.Referral:
    message = member_pb2.Referral(
        referrer_member_id=referral.referrer_id,
        referee_member_id=referral.referee_id,
        referee_display_name=display_name,
        state=REFERRAL_STATE_TO_PROTO.get(referral.state, member_pb2.REFERRAL_STATE_UNSPECIFIED),
        join_time=timestamp(referral.join_time),
        referrer_points=referral.referrer_points,
        referee_points=referral.referee_points,
    )
    if referral.state == "rewarded" and referral.reward_time is not None:
        message.reward_time.CopyFrom(timestamp(referral.reward_time))
    return message


class GrowthRpcs(MemberRpcBase):
    # -- referrals --------------------------------------------------------------------------

    async def JoinWithInviteCode(
        self, request: member_pb2.JoinWithInviteCodeRequest, context: Context
    ) -> member_pb2.JoinWithInviteCodeResponse:
        violations = []
        code = request.invite_code.strip()
        if not code:
            violations.append(FieldViolation("invite_code", "is required"))
        elif len(code) > MAX_INVITE_CODE_LENGTH:
            violations.append(
                FieldViolation("invite_code", f"at most {MAX_INVITE_CODE_LENGTH} characters")
            )
        if not request.member_id:
            violations.append(FieldViolation("member_id", "is required"))
        if violations:
            raise invalid_argument(*violations)
        require_id("member_id", request.member_id)
        member, referrer_id = await self.books.referrals.join(request.member_id, code, self.now())
        return member_pb2.JoinWithInviteCodeResponse(
            member=member_to_proto(member, self.now()), referrer_member_id=referrer_id
        )

    async def ListReferrals(
        self, request: member_pb2.ListReferralsRequest, context: Context
    ) -> member_pb2.ListReferralsResponse:
        referrer = await self.resolve_member(request.member_id)
        size = page_size(request.page_size)
        fingerprint = query_fingerprint("referrals", referrer.id)
        after = decode_page_token(request.page_token, fingerprint)
        if after is not None and not (
            isinstance(after, list) and len(after) == 2 and all(isinstance(k, str) for k in after)
        ):
            raise invalid_page_token()
        try:
            page = await self.books.referrals.list_referrals(referrer.id, after, size)
        except ValueError:
            raise invalid_page_token() from None
        names = {member_id: m.display_name for member_id, m in page.referees.items()}
        return member_pb2.ListReferralsResponse(
            referrals=[referral_to_proto(r, names.get(r.referee_id, "")) for r in page.referrals],
            next_page_token=encode_page_token(fingerprint, page.next_key) if page.next_key else "",
            total_count=page.total_count,
            total_points=page.total_points,
        )

    # -- segments ---------------------------------------------------------------------------

    async def CountSegment(
        self, request: member_pb2.CountSegmentRequest, context: Context
    ) -> member_pb2.CountSegmentResponse:
        rule = rule_from_proto(request.rule)
        return member_pb2.CountSegmentResponse(
            count=await self.books.segments.count(rule, self.now())
        )

    async def ListSegmentMembers(
        self, request: member_pb2.ListSegmentMembersRequest, context: Context
    ) -> member_pb2.ListSegmentMembersResponse:
        """Pages by member id; the default page (20) is the segment's preview."""
        deprecated = [
            FieldViolation(name, "is superseded by rule; set rule instead")
            for name in DEPRECATED_SEGMENT_FIELDS
            if _is_set(request, name)
        ]
        if deprecated:
            raise invalid_argument(*deprecated)
        rule = rule_from_proto(request.rule)
        size = page_size(request.page_size)
        fingerprint = rule_fingerprint(request.rule)
        after = decode_page_token(request.page_token, fingerprint)
        if after is not None and not isinstance(after, str):
            raise invalid_page_token()
        now = self.now()
        page = await self.books.segments.page(rule, now, after, size)
        total = await self.books.segments.count(rule, now)
        return member_pb2.ListSegmentMembersResponse(
            members=[member_to_proto(m, now) for m in page.members],
            next_page_token=(
                encode_page_token(fingerprint, page.members[-1].id) if page.more else ""
            ),
            total_count=total,
        )

    # -- campaigns --------------------------------------------------------------------------

    async def LaunchCampaign(
        self, request: member_pb2.LaunchCampaignRequest, context: Context
    ) -> member_pb2.LaunchCampaignResponse:
        raise unimplemented("LaunchCampaign")

    async def GetCampaign(
        self, request: member_pb2.GetCampaignRequest, context: Context
    ) -> member_pb2.GetCampaignResponse:
        raise unimplemented("GetCampaign")

    async def BatchGetCampaigns(
        self, request: member_pb2.BatchGetCampaignsRequest, context: Context
    ) -> member_pb2.BatchGetCampaignsResponse:
        raise unimplemented("BatchGetCampaigns")

    async def ListCampaigns(
        self, request: member_pb2.ListCampaignsRequest, context: Context
    ) -> member_pb2.ListCampaignsResponse:
        raise unimplemented("ListCampaigns")

    async def CancelCampaign(
        self, request: member_pb2.CancelCampaignRequest, context: Context
    ) -> member_pb2.CancelCampaignResponse:
        raise unimplemented("CancelCampaign")


def _is_set(request: member_pb2.ListSegmentMembersRequest, name: str) -> bool:
    value = getattr(request, name)
    return bool(len(value)) if name in ("tags", "tiers") else bool(value)
