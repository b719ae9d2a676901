"""MemberService RPCs for referrals, segments and campaigns."""

from __future__ import annotations

from datetime import datetime

from member_svc.campaigns import CANCELLED, COMPLETED, RUNNING, Campaign
from member_svc.convert import (
    STAGE_FROM_PROTO,
    STAGE_TO_PROTO,
    actor_from_proto,
    actor_to_proto,
    from_timestamp,
    member_to_proto,
    timestamp,
)
from member_svc.domain import Tier
from member_svc.referrals import Referral
from member_svc.rpc_base import MemberRpcBase
from member_svc.segments import SegmentRule, rule_violations
from retail.member.v1 import member_pb2
from retail_kit.errors import Context, FieldViolation, ServiceError, invalid_argument, not_found
from retail_kit.paging import (
    decode_page_token,
    encode_page_token,
    invalid_page_token,
    page_size,
    query_fingerprint,
)
from retail_kit.validation import batch_ids, id_violation, require_id

MAX_INVITE_CODE_LENGTH = 64
MAX_CAMPAIGN_NAME_LENGTH = 100
MAX_IDEMPOTENCY_KEY_LENGTH = 128
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


CAMPAIGN_STATUS_TO_PROTO = {
    RUNNING: member_pb2.CAMPAIGN_STATUS_RUNNING,
    COMPLETED: member_pb2.CAMPAIGN_STATUS_COMPLETED,
    CANCELLED: member_pb2.CAMPAIGN_STATUS_CANCELLED,
}


def campaign_to_proto(campaign: Campaign) -> member_pb2.Campaign:
    message = member_pb2.Campaign(
        id=campaign.id,
        name=campaign.name,
        template_id=campaign.template_id,
        rule=rule_to_proto(campaign.rule),
        status=CAMPAIGN_STATUS_TO_PROTO[campaign.status],
        total=campaign.total,
        processed=campaign.processed,
        issued=campaign.issued,
        skipped=campaign.skipped,
        sold_out=campaign.sold_out,
        actor=actor_to_proto(campaign.actor),
        create_time=timestamp(campaign.create_time),
    )
    if campaign.finish_time is not None:
        message.finish_time.CopyFrom(timestamp(campaign.finish_time))
    return message


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
        violations = []
        name = request.name.strip()
        if not name:
            violations.append(FieldViolation("name", "is required"))
        elif len(name) > MAX_CAMPAIGN_NAME_LENGTH:
            violations.append(
                FieldViolation("name", f"at most {MAX_CAMPAIGN_NAME_LENGTH} characters")
            )
        if violation := id_violation("template_id", request.template_id):
            violations.append(violation)
        key = request.idempotency_key
        if not key.strip():
            violations.append(FieldViolation("idempotency_key", "is required"))
        elif len(key) > MAX_IDEMPOTENCY_KEY_LENGTH:
            violations.append(
                FieldViolation(
                    "idempotency_key", f"at most {MAX_IDEMPOTENCY_KEY_LENGTH} characters"
                )
            )
        if not request.HasField("rule"):
            violations.append(FieldViolation("rule", "is required (an empty rule is every member)"))
        try:
            rule = rule_from_proto(request.rule)
        except ServiceError as error:
            violations += error.violations
        if violations:
            raise invalid_argument(*violations)
        campaign = await self.books.campaigns.launch(
            self.books,
            name=name,
            template_id=request.template_id,
            rule=rule,
            idempotency_key=key,
            actor=actor_from_proto(request.actor),
            now=self.now(),
        )
        return member_pb2.LaunchCampaignResponse(campaign=campaign_to_proto(campaign))

    async def GetCampaign(
        self, request: member_pb2.GetCampaignRequest, context: Context
    ) -> member_pb2.GetCampaignResponse:
        campaign = await self.books.campaigns.get(require_id("id", request.id))
        if campaign is None:
            raise not_found("campaign", request.id)
        return member_pb2.GetCampaignResponse(campaign=campaign_to_proto(campaign))

    async def BatchGetCampaigns(
        self, request: member_pb2.BatchGetCampaignsRequest, context: Context
    ) -> member_pb2.BatchGetCampaignsResponse:
        ids = batch_ids("ids", request.ids)
        found = await self.books.campaigns.get_many(ids) if ids else {}
        return member_pb2.BatchGetCampaignsResponse(
            campaigns=[campaign_to_proto(found[i]) for i in ids if i in found],
            missing_ids=[i for i in ids if i not in found],
        )

    async def ListCampaigns(
        self, request: member_pb2.ListCampaignsRequest, context: Context
    ) -> member_pb2.ListCampaignsResponse:
        size = page_size(request.page_size)
        fingerprint = query_fingerprint("campaigns")
        key = decode_page_token(request.page_token, fingerprint)
        after = None
        if key is not None:
            try:
                after = (datetime.fromisoformat(key[0]), str(key[1]))
            except (TypeError, ValueError, IndexError, KeyError):
                raise invalid_page_token() from None
        campaigns, more = await self.books.campaigns.list_newest(size, after)
        last = campaigns[-1] if campaigns else None
        return member_pb2.ListCampaignsResponse(
            campaigns=[campaign_to_proto(c) for c in campaigns],
            next_page_token=(
                encode_page_token(fingerprint, [last.create_time.isoformat(), last.id])
                if more and last
                else ""
            ),
        )

    async def CancelCampaign(
        self, request: member_pb2.CancelCampaignRequest, context: Context
    ) -> member_pb2.CancelCampaignResponse:
        campaign = await self.books.campaigns.cancel(
            require_id("id", request.id), actor_from_proto(request.actor), self.now()
        )
        return member_pb2.CancelCampaignResponse(campaign=campaign_to_proto(campaign))


def _is_set(request: member_pb2.ListSegmentMembersRequest, name: str) -> bool:
    value = getattr(request, name)
    return bool(len(value)) if name in ("tags", "tiers") else bool(value)
