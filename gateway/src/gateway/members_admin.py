"""Members slice for admins: the tier policy, coupon templates, points adjustments, issuing a
coupon to a member, merging two members. Store managers may read the coupon templates (to
choose one for a campaign); anyone signed in may read the tier policy (the programme's
published terms). Every rule (what a valid policy or template is, who may be merged) is
member-svc's; the gateway checks the role before any call and names bad fields as the
GraphQL arguments do (`policy.tiers[0].threshold` -> `input.tiers[0].threshold`).
"""

from __future__ import annotations

from datetime import datetime

import strawberry

from gateway.authz import require
from gateway.catalog_admin import LocalizedStringInput, MoneyInput, SalesChannel
from gateway.context import GatewayInfo
from gateway.errors import bad_user_input, unauthenticated
from gateway.fields import resolver
from gateway.members_access import actor, admin_error, manager_error, sees_whole
from gateway.members_loaders import call
from gateway.members_types import (
    CHANNEL_TO_PROTO,
    Coupon,
    CouponKind,
    CouponTemplate,
    CouponTemplateConnection,
    CouponTemplateStatus,
    Member,
    PointsEntry,
    TierPolicy,
    check_first,
    page_info,
)
from retail.common.v1 import common_pb2
from retail.member.v1 import member_pb2
from retail_kit.validation import id_violation

_POLICY_FIELDS = {"policy": "input"}
_TEMPLATE_FIELDS = {"template": "input", "request_id": "requestId"}
_MERGE_FIELDS = {
    "source_member_id": "absorbedId",
    "target_member_id": "survivorId",
    "idempotency_key": "idempotencyKey",
}


def _money(value: MoneyInput | None) -> common_pb2.Money | None:
    return common_pb2.Money(amount=value.amount, currency=value.currency) if value else None


def _text(values: list[LocalizedStringInput]) -> common_pb2.LocalizedText:
    return common_pb2.LocalizedText(values={v.locale: v.value for v in values})


@strawberry.input(description="A tier: the spend that reaches it and its benefits.")
class TierInput:
    code: str = strawberry.field(description="bronze, silver, gold or platinum.")
    threshold: MoneyInput
    points_multiplier_percent: int = strawberry.field(description="150 = 1.5x points.")
    birthday_bonus_points: int = 0
    name: list[LocalizedStringInput] = strawberry.field(
        default_factory=list, description="Defaults to the built-in names."
    )


@strawberry.input(description="The whole tier policy (it replaces the current one).")
class TierPolicyInput:
    tiers: list[TierInput] = strawberry.field(description="Lowest first, from threshold 0.")
    points_per_yuan: int
    points_per_yuan_redeemed: int
    max_redeem_percent: int


@strawberry.input(description="Where a template's coupons apply; empty = everywhere.")
class CouponScopeInput:
    channels: list[SalesChannel] = strawberry.field(default_factory=list)
    store_ids: list[strawberry.ID] = strawberry.field(default_factory=list)
    category_ids: list[strawberry.ID] = strawberry.field(default_factory=list)
    sku_ids: list[strawberry.ID] = strawberry.field(default_factory=list)


@strawberry.input(description="A new coupon template; rules are immutable once created.")
class CouponTemplateInput:
    name: list[LocalizedStringInput]
    kind: CouponKind
    combinable_with_points: bool = strawberry.field(
        description="Whether an order using it may also redeem points (no default: say it)."
    )
    id: strawberry.ID | None = strawberry.field(
        default=None, description="Optional; derived from requestId when absent."
    )
    amount_off: MoneyInput | None = strawberry.field(default=None, description="FIXED, THRESHOLD.")
    percent_off: int | None = strawberry.field(default=None, description="PERCENT: 1..99.")
    cap: MoneyInput | None = strawberry.field(default=None, description="PERCENT: the most off.")
    threshold: MoneyInput | None = strawberry.field(default=None, description="THRESHOLD.")
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    valid_days: int | None = strawberry.field(
        default=None, description="Instead of a window: valid N days from issue."
    )
    scope: CouponScopeInput | None = None
    total_limit: int = strawberry.field(default=0, description="0 = unlimited.")
    per_member_limit: int = 1
    claim_code: str | None = None
    claim_store_ids: list[strawberry.ID] = strawberry.field(default_factory=list)
    issue_only: bool = strawberry.field(
        default=False, description="Only issued (admins, campaigns), never claimed."
    )

    def to_proto(self) -> member_pb2.CouponTemplate:
        scope = self.scope or CouponScopeInput()
        template = member_pb2.CouponTemplate(
            id=self.id or "",
            name=_text(self.name),
            kind=self.kind.value,
            amount_off=_money(self.amount_off),
            percent_off=self.percent_off or 0,
            cap=_money(self.cap),
            threshold=_money(self.threshold),
            valid_days=self.valid_days or 0,
            scope=member_pb2.CouponScope(
                channels=[CHANNEL_TO_PROTO[c] for c in scope.channels],
                store_ids=scope.store_ids,
                category_ids=scope.category_ids,
                sku_ids=scope.sku_ids,
            ),
            total_limit=self.total_limit,
            per_member_limit=self.per_member_limit,
            combinable_with_points=self.combinable_with_points,
            claim_code=self.claim_code or "",
            claim_store_ids=self.claim_store_ids,
            issue_only=self.issue_only,
        )
        if self.valid_from is not None:
            template.valid_from.FromDatetime(self.valid_from)
        if self.valid_until is not None:
            template.valid_until.FromDatetime(self.valid_until)
        return template


@strawberry.type
class PointsAdjustment:
    entry: PointsEntry
    balance: int = strawberry.field(description="Total points after the entry.")


@strawberry.type
class MemberMerge:
    member: Member = strawberry.field(description="The survivor, after the merge.")
    merge_id: str


@strawberry.type
class MemberAdminQuery:
    @resolver(description="The tiers and points rates. Anyone signed in.")
    async def tier_policy(self, info: GatewayInfo) -> TierPolicy:
        if not info.context.principal.is_authenticated:
            raise unauthenticated("sign in to read the tier policy")
        reply = await call(
            info.context.clients.member.GetTierPolicy, member_pb2.GetTierPolicyRequest()
        )
        return TierPolicy.from_proto(reply.policy)

    @resolver(description="Coupon templates, newest first. Store managers and admins.")
    async def coupon_templates(
        self, info: GatewayInfo, first: int = 20, after: str | None = None
    ) -> CouponTemplateConnection:
        require(manager_error(info.context.principal, "list coupon templates"))
        request = member_pb2.ListCouponTemplatesRequest(
            page_size=check_first(first), page_token=after or ""
        )
        reply = await call(info.context.clients.member.ListCouponTemplates, request)
        info.context.loaders.membership.coupon_template.prime_many(
            {t.id: t for t in reply.templates}
        )
        return CouponTemplateConnection(
            nodes=[CouponTemplate.from_proto(t) for t in reply.templates],
            page_info=page_info(reply.next_page_token),
        )

    @resolver(description="One coupon template (null if none). Store managers and admins.")
    async def coupon_template(self, info: GatewayInfo, id: strawberry.ID) -> CouponTemplate | None:
        require(manager_error(info.context.principal, "read coupon templates"))
        if violation := id_violation("id", id):
            raise bad_user_input(violation)
        loaded = await info.context.loaders.membership.coupon_template.load(id)
        return CouponTemplate.from_proto(loaded)


@strawberry.type
class MemberAdminMutation:
    @resolver(description="Replaces the tier policy. Admins.")
    async def set_tier_policy(self, info: GatewayInfo, input: TierPolicyInput) -> TierPolicy:
        principal = info.context.principal
        require(admin_error(principal, "set the tier policy"))
        policy = member_pb2.TierPolicy(
            tiers=[
                member_pb2.TierDefinition(
                    code=t.code,
                    name=_text(t.name),
                    threshold=_money(t.threshold),
                    points_multiplier_percent=t.points_multiplier_percent,
                    birthday_bonus_points=t.birthday_bonus_points,
                )
                for t in input.tiers
            ],
            points_per_yuan=input.points_per_yuan,
            points_per_yuan_redeemed=input.points_per_yuan_redeemed,
            max_redeem_percent=input.max_redeem_percent,
        )
        request = member_pb2.SetTierPolicyRequest(policy=policy, actor=actor(principal))
        reply = await call(info.context.clients.member.SetTierPolicy, request, _POLICY_FIELDS)
        return TierPolicy.from_proto(reply.policy)

    @resolver(
        description="Creates a coupon template; a retry with the same requestId answers the "
        "same template. Admins."
    )
    async def create_coupon_template(
        self, info: GatewayInfo, input: CouponTemplateInput, request_id: str
    ) -> CouponTemplate:
        principal = info.context.principal
        require(admin_error(principal, "create coupon templates"))
        request = member_pb2.CreateCouponTemplateRequest(
            template=input.to_proto(), request_id=request_id, actor=actor(principal)
        )
        reply = await call(
            info.context.clients.member.CreateCouponTemplate, request, _TEMPLATE_FIELDS
        )
        return CouponTemplate.from_proto(reply.template)

    @resolver(
        description="Pauses (issues nothing more; issued coupons stay usable) or resumes a "
        "template. Admins."
    )
    async def set_coupon_template_status(
        self, info: GatewayInfo, id: strawberry.ID, status: CouponTemplateStatus
    ) -> CouponTemplate:
        principal = info.context.principal
        require(admin_error(principal, "pause or resume coupon templates"))
        request = member_pb2.SetCouponTemplateStatusRequest(
            template_id=id, status=status.value, actor=actor(principal)
        )
        reply = await call(
            info.context.clients.member.SetCouponTemplateStatus, request, {"template_id": "id"}
        )
        return CouponTemplate.from_proto(reply.template)

    @resolver(
        description="Adds (available at once) or removes (never below zero) points with a "
        "reason; the same reference adjusts once. Admins."
    )
    async def adjust_points(
        self, info: GatewayInfo, member_id: strawberry.ID, delta: int, reason: str, reference: str
    ) -> PointsAdjustment:
        principal = info.context.principal
        require(admin_error(principal, "adjust points"))
        request = member_pb2.AdjustPointsRequest(
            member_id=member_id,
            delta=delta,
            reason=reason,
            reference=reference,
            actor=actor(principal),
        )
        reply = await call(info.context.clients.member.AdjustPoints, request)
        return PointsAdjustment(entry=PointsEntry.from_proto(reply.entry), balance=reply.balance)

    @resolver(description="Issues a coupon to a member; the same reference issues once. Admins.")
    async def issue_coupon(
        self,
        info: GatewayInfo,
        template_id: strawberry.ID,
        member_id: strawberry.ID,
        reference: str,
    ) -> Coupon:
        principal = info.context.principal
        require(admin_error(principal, "issue coupons"))
        request = member_pb2.IssueCouponRequest(
            template_id=template_id,
            member_id=member_id,
            reference=reference,
            actor=actor(principal),
        )
        reply = await call(info.context.clients.member.IssueCoupon, request)
        return Coupon.from_proto(reply.coupon)

    @resolver(
        description="Merges the absorbed member into the survivor (identities, points, coupons, "
        "tags, referrals, guide, history); the absorbed id answers the survivor from then on. "
        "A retry continues or answers the same merge. Admins; a reason is required."
    )
    async def merge_members(
        self,
        info: GatewayInfo,
        survivor_id: strawberry.ID,
        absorbed_id: strawberry.ID,
        reason: str,
        idempotency_key: str | None = None,
    ) -> MemberMerge:
        principal = info.context.principal
        require(admin_error(principal, "merge members"))
        request = member_pb2.MergeMembersRequest(
            source_member_id=absorbed_id,
            target_member_id=survivor_id,
            reason=reason,
            idempotency_key=idempotency_key or "",
            actor=actor(principal),
        )
        reply = await call(info.context.clients.member.MergeMembers, request, _MERGE_FIELDS)
        return MemberMerge(
            member=Member.from_proto(reply.member, whole=sees_whole(principal, reply.member)),
            merge_id=reply.merge_id,
        )
