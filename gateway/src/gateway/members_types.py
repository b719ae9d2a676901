"""GraphQL types of the members slices and their conversions from member-svc's messages.

`Member` is a member as the caller may see them (identities masked for staff, see
members_access). `MyMember` is the signed-in customer's own member: the same fields plus the
lists member-svc pages per member (coupons, points history, referrals) and the member code.
Those lists have no batch RPC, so they are offered only where a request has one member.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Self, TypeVar

import strawberry
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from gateway.catalog import Money, PageInfo, money, resolve_text
from gateway.catalog_admin import SalesChannel
from gateway.context import GatewayInfo
from gateway.errors import bad_user_input
from gateway.fields import resolver
from gateway.members_access import mask_identity
from gateway.members_loaders import call
from gateway.stores import Store
from retail.common.v1 import common_pb2
from retail.member.v1 import member_pb2
from retail_kit.errors import FieldViolation

_E = TypeVar("_E", bound=enum.Enum)


def time_of(message: Message, field: str) -> datetime | None:
    """A Timestamp field as an aware datetime, None when unset."""
    if not message.HasField(field):
        return None
    stamp: Timestamp = getattr(message, field)
    return stamp.ToDatetime(tzinfo=UTC)


def page_info(next_page_token: str) -> PageInfo:
    return PageInfo(has_next_page=bool(next_page_token), end_cursor=next_page_token or None)


def check_first(first: int) -> int:
    """0 would silently mean the service's default page size: refused instead (the upper
    bound is member-svc's, answered under the name `first`)."""
    if first < 1:
        raise bad_user_input(FieldViolation("first", f"must be at least 1, got {first}"))
    return first


CHANNEL_FROM_PROTO = {
    common_pb2.CHANNEL_MINI_PROGRAM: SalesChannel.MINI_PROGRAM,
    common_pb2.CHANNEL_APP: SalesChannel.APP,
    common_pb2.CHANNEL_POS: SalesChannel.POS,
    common_pb2.CHANNEL_KIOSK: SalesChannel.KIOSK,
}
CHANNEL_TO_PROTO = {channel: number for number, channel in CHANNEL_FROM_PROTO.items()}


# ---- enums ---------------------------------------------------------------------------------


@strawberry.enum(description="A kind of identity that proves who a member is.")
class IdentityKind(enum.Enum):
    PHONE = member_pb2.IDENTITY_KIND_PHONE
    WECHAT_UNIONID = member_pb2.IDENTITY_KIND_WECHAT_UNIONID
    WECHAT_OPENID = member_pb2.IDENTITY_KIND_WECHAT_OPENID
    APP_ACCOUNT = member_pb2.IDENTITY_KIND_APP_ACCOUNT


@strawberry.enum(
    description="Derived from activity: NEW (joined < 30 days), ACTIVE (purchase or join "
    "within 90 days), DORMANT (90-180 days), CHURNED (> 180 days)."
)
class LifecycleStage(enum.Enum):
    NEW = member_pb2.LIFECYCLE_STAGE_NEW
    ACTIVE = member_pb2.LIFECYCLE_STAGE_ACTIVE
    DORMANT = member_pb2.LIFECYCLE_STAGE_DORMANT
    CHURNED = member_pb2.LIFECYCLE_STAGE_CHURNED


@strawberry.enum(description="Where a coupon is in its life.")
class CouponStatus(enum.Enum):
    AVAILABLE = member_pb2.COUPON_STATUS_AVAILABLE
    LOCKED = member_pb2.COUPON_STATUS_LOCKED
    REDEEMED = member_pb2.COUPON_STATUS_REDEEMED
    EXPIRED = member_pb2.COUPON_STATUS_EXPIRED


@strawberry.enum(description="FIXED amount off, PERCENT off with a cap, THRESHOLD 满减.")
class CouponKind(enum.Enum):
    FIXED = member_pb2.COUPON_KIND_FIXED
    PERCENT = member_pb2.COUPON_KIND_PERCENT
    THRESHOLD = member_pb2.COUPON_KIND_THRESHOLD


@strawberry.enum(description="A paused template issues nothing; its coupons stay usable.")
class CouponTemplateStatus(enum.Enum):
    ACTIVE = member_pb2.COUPON_TEMPLATE_STATUS_ACTIVE
    PAUSED = member_pb2.COUPON_TEMPLATE_STATUS_PAUSED


@strawberry.enum(description="JOINED: no completed order yet; REWARDED: both sides rewarded.")
class ReferralState(enum.Enum):
    JOINED = member_pb2.REFERRAL_STATE_JOINED
    REWARDED = member_pb2.REFERRAL_STATE_REWARDED


@strawberry.enum(description="A campaign issues while RUNNING; COMPLETED and CANCELLED are final.")
class CampaignStatus(enum.Enum):
    RUNNING = member_pb2.CAMPAIGN_STATUS_RUNNING
    COMPLETED = member_pb2.CAMPAIGN_STATUS_COMPLETED
    CANCELLED = member_pb2.CAMPAIGN_STATUS_CANCELLED


def _enum(kind: type[_E], number: int) -> _E | None:
    try:
        return kind(number)
    except ValueError:
        return None  # UNSPECIFIED, or a value this gateway does not know yet


# ---- tags ----------------------------------------------------------------------------------


@strawberry.type(description="A tag of the brand's catalogue.")
class Tag:
    id: strawberry.ID
    group: str
    colour: str = strawberry.field(description='"#RRGGBB".')
    created_by: str
    update_time: datetime | None
    names: strawberry.Private[Mapping[str, str]]

    @resolver(description="In `locale` if given, else in the request's locale.")
    def name(self, info: GatewayInfo, locale: str | None = None) -> str:
        return resolve_text(self.names, locale or info.context.locale)

    @classmethod
    def from_proto(cls, tag: member_pb2.TagDefinition) -> Tag:
        return cls(
            id=strawberry.ID(tag.id),
            group=tag.group,
            colour=tag.colour,
            created_by=tag.created_by,
            update_time=time_of(tag, "update_time"),
            names=tag.name.values,
        )


@strawberry.type(description="A tag on a member: who added it, in which store, when.")
class MemberTag:
    tag_id: strawberry.ID
    added_by: str
    store_id: strawberry.ID | None
    add_time: datetime | None

    @resolver(description="The tag's catalogue entry (the whole catalogue is one call).")
    async def tag(self, info: GatewayInfo) -> Tag | None:
        tag = await info.context.loaders.membership.tag(self.tag_id)
        return Tag.from_proto(tag) if tag is not None else None


# ---- the member ------------------------------------------------------------------------------


@strawberry.type(description="Points lots expiring together.")
class ExpiringPoints:
    points: int
    expires_at: datetime | None


@strawberry.type(description="A member's points: available + pending = total.")
class PointsSummary:
    available: int = strawberry.field(description="Spendable now.")
    pending: int = strawberry.field(
        description="Earned by orders still inside their return window."
    )
    total: int
    expiring_soon: list[ExpiringPoints] = strawberry.field(
        description="Available points expiring within 30 days, soonest first."
    )

    @classmethod
    def from_proto(cls, points: member_pb2.PointsSummary) -> PointsSummary:
        return cls(
            available=points.available,
            pending=points.pending,
            total=points.total,
            expiring_soon=[
                ExpiringPoints(points=e.points, expires_at=time_of(e, "expire_time"))
                for e in points.expiring_soon
            ],
        )


@strawberry.type(description="An identity of a member; masked for anyone but them and admins.")
class MemberIdentity:
    kind: IdentityKind | None
    value: str


@strawberry.type(description="The member's exclusive guide (专属导购).")
class Guide:
    associate_id: str
    store_id: strawberry.ID
    bind_time: datetime | None


@strawberry.type(description="Marketing consent and the privacy notice (PIPL).")
class Consent:
    marketing: bool
    privacy_accepted_at: datetime | None
    updated_at: datetime | None


@strawberry.type(
    description="A member across every channel, as the caller may see them: phone numbers "
    "and other identities whole for the member themself and admins, masked (138****8000) "
    "for store staff."
)
class Member:
    id: strawberry.ID
    display_name: str
    tier: str = strawberry.field(description="bronze, silver, gold or platinum.")
    points: PointsSummary
    phone: str | None = strawberry.field(
        description="The first phone number; masked (138****8000) unless the caller is the "
        "member or an admin."
    )
    identities: list[MemberIdentity]
    tags: list[MemberTag]
    guide: Guide | None
    home_store_id: strawberry.ID | None
    join_time: datetime | None
    join_channel: SalesChannel | None
    join_store_id: strawberry.ID | None
    lifecycle_stage: LifecycleStage | None
    last_purchase_time: datetime | None
    invite_code: str = strawberry.field(description="Shared with friends (以老带新).")
    referred_by_member_id: strawberry.ID | None
    merged_member_ids: list[strawberry.ID] = strawberry.field(
        description="Members merged into this one (their ids now stand for it)."
    )
    consent: Consent
    qualifying_spend: Money = strawberry.field(description="Rolling 12-month spend (tiers).")
    tier_review_time: datetime | None
    birthday: str | None = strawberry.field(description='"MM-DD".')

    @resolver(description="The home store (through the store DataLoader).")
    async def home_store(self, info: GatewayInfo) -> Store | None:
        if not self.home_store_id:
            return None
        return Store.from_proto(await info.context.loaders.store.load(self.home_store_id))

    @classmethod
    def from_proto(cls, member: member_pb2.Member, *, whole: bool) -> Self:
        """`whole`: the caller is the member themself or an admin (members_access.sees_whole)."""

        def shown(identity: member_pb2.Identity) -> str:
            return identity.value if whole else mask_identity(identity.kind, identity.value)

        phone = next(
            (i for i in member.identities if i.kind == member_pb2.IDENTITY_KIND_PHONE), None
        )
        guide = member.associate if member.HasField("associate") else None
        return cls(
            id=strawberry.ID(member.id),
            display_name=member.display_name,
            tier=member.tier,
            points=PointsSummary.from_proto(member.points),
            phone=shown(phone) if phone is not None else None,
            identities=[
                MemberIdentity(kind=_enum(IdentityKind, i.kind), value=shown(i))
                for i in member.identities
            ],
            tags=[
                MemberTag(
                    tag_id=strawberry.ID(t.tag_id),
                    added_by=t.added_by,
                    store_id=strawberry.ID(t.store_id) if t.store_id else None,
                    add_time=time_of(t, "add_time"),
                )
                for t in member.tag_records
            ],
            guide=(
                Guide(
                    associate_id=guide.associate_id,
                    store_id=strawberry.ID(guide.store_id),
                    bind_time=time_of(guide, "bind_time"),
                )
                if guide is not None
                else None
            ),
            home_store_id=strawberry.ID(member.home_store_id) if member.home_store_id else None,
            join_time=time_of(member, "join_time"),
            join_channel=CHANNEL_FROM_PROTO.get(member.join_channel),
            join_store_id=strawberry.ID(member.join_store_id) if member.join_store_id else None,
            lifecycle_stage=_enum(LifecycleStage, member.lifecycle_stage),
            last_purchase_time=time_of(member, "last_purchase_time"),
            invite_code=member.referral_code,
            referred_by_member_id=(
                strawberry.ID(member.referred_by_member_id)
                if member.referred_by_member_id
                else None
            ),
            merged_member_ids=[strawberry.ID(i) for i in member.merged_member_ids],
            consent=Consent(
                marketing=member.consent.marketing,
                privacy_accepted_at=time_of(member.consent, "privacy_accept_time"),
                updated_at=time_of(member.consent, "update_time"),
            ),
            qualifying_spend=money(member.qualifying_spend),
            tier_review_time=time_of(member, "tier_review_time"),
            birthday=member.birthday or None,
        )


@strawberry.type
class MemberConnection:
    nodes: list[Member]
    page_info: PageInfo


# ---- coupons -------------------------------------------------------------------------------


@strawberry.type(description="Where a coupon applies; empty lists mean everywhere / everything.")
class CouponScope:
    channels: list[SalesChannel]
    store_ids: list[strawberry.ID]
    category_ids: list[strawberry.ID] = strawberry.field(description="Each covers its subtree.")
    sku_ids: list[strawberry.ID]


@strawberry.type(description="A coupon template: what its coupons take off, when and where.")
class CouponTemplate:
    id: strawberry.ID
    kind: CouponKind | None
    amount_off: Money | None = strawberry.field(description="FIXED and THRESHOLD.")
    percent_off: int | None = strawberry.field(description="PERCENT: 1..99.")
    cap: Money | None = strawberry.field(description="PERCENT: the most it takes off.")
    threshold: Money | None = strawberry.field(description="THRESHOLD: the amount needed.")
    valid_from: datetime | None
    valid_until: datetime | None
    valid_days: int | None = strawberry.field(description="Valid this many days from issue.")
    scope: CouponScope
    total_limit: int = strawberry.field(description="0 = unlimited.")
    per_member_limit: int
    issued_count: int
    combinable_with_points: bool
    claim_code: str | None
    claim_store_ids: list[strawberry.ID] = strawberry.field(
        description="When set, claims must name one of these stores (a trade-area promotion)."
    )
    issue_only: bool = strawberry.field(
        description="Only issued (by an admin or a campaign), never claimed by members."
    )
    status: CouponTemplateStatus | None
    create_time: datetime | None
    names: strawberry.Private[Mapping[str, str]]

    @resolver(description="In `locale` if given, else in the request's locale.")
    def name(self, info: GatewayInfo, locale: str | None = None) -> str:
        return resolve_text(self.names, locale or info.context.locale)

    @classmethod
    def from_proto(cls, template: member_pb2.CouponTemplate) -> CouponTemplate:
        scope = template.scope
        return cls(
            id=strawberry.ID(template.id),
            kind=_enum(CouponKind, template.kind),
            amount_off=money(template.amount_off) if template.HasField("amount_off") else None,
            percent_off=template.percent_off or None,
            cap=money(template.cap) if template.HasField("cap") else None,
            threshold=money(template.threshold) if template.HasField("threshold") else None,
            valid_from=time_of(template, "valid_from"),
            valid_until=time_of(template, "valid_until"),
            valid_days=template.valid_days or None,
            scope=CouponScope(
                channels=[CHANNEL_FROM_PROTO[c] for c in scope.channels if c in CHANNEL_FROM_PROTO],
                store_ids=[strawberry.ID(s) for s in scope.store_ids],
                category_ids=[strawberry.ID(c) for c in scope.category_ids],
                sku_ids=[strawberry.ID(s) for s in scope.sku_ids],
            ),
            total_limit=template.total_limit,
            per_member_limit=template.per_member_limit,
            issued_count=template.issued_count,
            combinable_with_points=template.combinable_with_points,
            claim_code=template.claim_code or None,
            claim_store_ids=[strawberry.ID(s) for s in template.claim_store_ids],
            issue_only=template.issue_only,
            status=_enum(CouponTemplateStatus, template.status),
            create_time=time_of(template, "create_time"),
            names=template.name.values,
        )


@strawberry.type
class CouponTemplateConnection:
    nodes: list[CouponTemplate]
    page_info: PageInfo


@strawberry.type(description="A member's coupon.")
class Coupon:
    id: strawberry.ID
    template_id: strawberry.ID
    member_id: strawberry.ID
    status: CouponStatus | None
    valid_from: datetime | None
    valid_until: datetime | None
    code: str = strawberry.field(description="What the cashier scans or types at the till.")
    order_id: strawberry.ID | None = strawberry.field(description="The order holding it.")
    lock_until: datetime | None
    issue_time: datetime | None
    redeem_time: datetime | None
    source: str = strawberry.field(description="claim, issue, campaign:<id>, referral, merge.")

    @resolver(description="The template (through a DataLoader: one call for every coupon).")
    async def template(self, info: GatewayInfo) -> CouponTemplate:
        loaded = await info.context.loaders.membership.coupon_template.load(self.template_id)
        return CouponTemplate.from_proto(loaded)

    @classmethod
    def from_proto(cls, coupon: member_pb2.Coupon) -> Coupon:
        return cls(
            id=strawberry.ID(coupon.id),
            template_id=strawberry.ID(coupon.template_id),
            member_id=strawberry.ID(coupon.member_id),
            status=_enum(CouponStatus, coupon.status),
            valid_from=time_of(coupon, "valid_from"),
            valid_until=time_of(coupon, "valid_until"),
            code=coupon.code,
            order_id=strawberry.ID(coupon.order_id) if coupon.order_id else None,
            lock_until=time_of(coupon, "lock_until"),
            issue_time=time_of(coupon, "issue_time"),
            redeem_time=time_of(coupon, "redeem_time"),
            source=coupon.source,
        )


@strawberry.type
class CouponConnection:
    nodes: list[Coupon]
    page_info: PageInfo


# ---- points, referrals ---------------------------------------------------------------------


@strawberry.type(description="One entry of a member's points ledger.")
class PointsEntry:
    id: strawberry.ID
    delta: int = strawberry.field(description="Positive for earn, negative for redeem and expiry.")
    kind: str = strawberry.field(
        description="earn, redeem, revert, expire, claw_back, adjust, transfer_in, "
        "transfer_out, referral_reward, birthday_bonus, opening."
    )
    reference: str
    balance_after: int = strawberry.field(description="Total (available + pending) after it.")
    note: str
    shortfall: int = strawberry.field(description="Claw-backs: what could not be taken.")
    create_time: datetime | None
    available_time: datetime | None
    expire_time: datetime | None

    @classmethod
    def from_proto(cls, entry: member_pb2.PointsEntry) -> PointsEntry:
        return cls(
            id=strawberry.ID(entry.id),
            delta=entry.delta,
            kind=entry.kind,
            reference=entry.reference,
            balance_after=entry.balance_after,
            note=entry.note,
            shortfall=entry.shortfall,
            create_time=time_of(entry, "create_time"),
            available_time=time_of(entry, "available_time"),
            expire_time=time_of(entry, "expire_time"),
        )


@strawberry.type
class PointsEntryConnection:
    nodes: list[PointsEntry]
    page_info: PageInfo


@strawberry.type(description="A member this member invited, and the rewards.")
class Referral:
    referee_member_id: strawberry.ID
    referee_display_name: str
    state: ReferralState | None
    join_time: datetime | None
    reward_time: datetime | None
    referrer_points: int
    referee_points: int


@strawberry.type
class ReferralConnection:
    nodes: list[Referral]
    page_info: PageInfo
    total_count: int
    total_points: int = strawberry.field(description="Points the member earned by referrals.")


@strawberry.type(description="The payload of the member's QR (会员码) and when it expires.")
class MemberCode:
    payload: str
    expires_at: datetime


@strawberry.type(
    description="The signed-in customer's own member: every Member field, whole, plus their "
    "coupons, points history, referrals and member code."
)
class MyMember(Member):
    @resolver(description="The member's coupons, newest first; every status unless one is given.")
    async def coupons(
        self,
        info: GatewayInfo,
        status: CouponStatus | None = None,
        first: int = 20,
        after: str | None = None,
    ) -> CouponConnection:
        request = member_pb2.ListMemberCouponsRequest(
            member_id=self.id,
            status=status.value if status is not None else member_pb2.COUPON_STATUS_UNSPECIFIED,
            page_size=check_first(first),
            page_token=after or "",
        )
        reply = await call(info.context.clients.member.ListMemberCoupons, request)
        return CouponConnection(
            nodes=[Coupon.from_proto(c) for c in reply.coupons],
            page_info=page_info(reply.next_page_token),
        )

    @resolver(description="The points ledger, newest first.")
    async def points_history(
        self, info: GatewayInfo, first: int = 20, after: str | None = None
    ) -> PointsEntryConnection:
        request = member_pb2.ListPointsLedgerRequest(
            member_id=self.id, page_size=check_first(first), page_token=after or ""
        )
        reply = await call(info.context.clients.member.ListPointsLedger, request)
        return PointsEntryConnection(
            nodes=[PointsEntry.from_proto(e) for e in reply.entries],
            page_info=page_info(reply.next_page_token),
        )

    @resolver(description="The members this member invited, with the rewards.")
    async def referrals(
        self, info: GatewayInfo, first: int = 20, after: str | None = None
    ) -> ReferralConnection:
        request = member_pb2.ListReferralsRequest(
            member_id=self.id, page_size=check_first(first), page_token=after or ""
        )
        reply = await call(info.context.clients.member.ListReferrals, request)
        return ReferralConnection(
            nodes=[
                Referral(
                    referee_member_id=strawberry.ID(r.referee_member_id),
                    referee_display_name=r.referee_display_name,
                    state=_enum(ReferralState, r.state),
                    join_time=time_of(r, "join_time"),
                    reward_time=time_of(r, "reward_time"),
                    referrer_points=r.referrer_points,
                    referee_points=r.referee_points,
                )
                for r in reply.referrals
            ],
            page_info=page_info(reply.next_page_token),
            total_count=reply.total_count,
            total_points=reply.total_points,
        )

    @resolver(
        description="A signed payload to show as a QR at the counter (memberByQr reads it); "
        "valid for 5 minutes, ask again for a fresh one."
    )
    def member_code(self, info: GatewayInfo) -> MemberCode:
        payload, expires = info.context.customer_auth.member_code(self.id)
        return MemberCode(payload=payload, expires_at=expires)

    @classmethod
    def mine(cls, member: member_pb2.Member) -> MyMember:
        return cls.from_proto(member, whole=True)


# ---- segments and campaigns ------------------------------------------------------------------


@strawberry.input(
    description="Every part that is set narrows the segment (AND); an empty rule is every "
    "member. Store managers must set homeStoreIds to exactly their store."
)
class SegmentRuleInput:
    tags_all: list[strawberry.ID] = strawberry.field(default_factory=list)
    tags_any: list[strawberry.ID] = strawberry.field(default_factory=list)
    tags_none: list[strawberry.ID] = strawberry.field(default_factory=list)
    tiers: list[str] = strawberry.field(default_factory=list)
    min_points: int | None = strawberry.field(default=None, description="Total points, inclusive.")
    max_points: int | None = None
    purchased_since: datetime | None = None
    not_purchased_since: datetime | None = None
    home_store_ids: list[strawberry.ID] = strawberry.field(default_factory=list)
    lifecycle_stages: list[LifecycleStage] = strawberry.field(default_factory=list)
    associate_ids: list[str] = strawberry.field(default_factory=list)

    def to_proto(self) -> member_pb2.SegmentRule:
        rule = member_pb2.SegmentRule(
            tags_all=self.tags_all,
            tags_any=self.tags_any,
            tags_none=self.tags_none,
            tiers=self.tiers,
            home_store_ids=self.home_store_ids,
            lifecycle_stages=[s.value for s in self.lifecycle_stages],
            associate_ids=self.associate_ids,
        )
        if self.min_points is not None:
            rule.min_points = self.min_points
        if self.max_points is not None:
            rule.max_points = self.max_points
        if self.purchased_since is not None:
            rule.purchased_since.FromDatetime(self.purchased_since)
        if self.not_purchased_since is not None:
            rule.not_purchased_since.FromDatetime(self.not_purchased_since)
        return rule


@strawberry.type(description="A segment rule as member-svc stored it.")
class SegmentRule:
    tags_all: list[strawberry.ID]
    tags_any: list[strawberry.ID]
    tags_none: list[strawberry.ID]
    tiers: list[str]
    min_points: int | None
    max_points: int | None
    purchased_since: datetime | None
    not_purchased_since: datetime | None
    home_store_ids: list[strawberry.ID]
    lifecycle_stages: list[LifecycleStage]
    associate_ids: list[str]

    @classmethod
    def from_proto(cls, rule: member_pb2.SegmentRule) -> SegmentRule:
        return cls(
            tags_all=[strawberry.ID(t) for t in rule.tags_all],
            tags_any=[strawberry.ID(t) for t in rule.tags_any],
            tags_none=[strawberry.ID(t) for t in rule.tags_none],
            tiers=list(rule.tiers),
            min_points=rule.min_points if rule.HasField("min_points") else None,
            max_points=rule.max_points if rule.HasField("max_points") else None,
            purchased_since=time_of(rule, "purchased_since"),
            not_purchased_since=time_of(rule, "not_purchased_since"),
            home_store_ids=[strawberry.ID(s) for s in rule.home_store_ids],
            lifecycle_stages=[
                LifecycleStage(s) for s in rule.lifecycle_stages if _enum(LifecycleStage, s)
            ],
            associate_ids=list(rule.associate_ids),
        )


@strawberry.type(
    description="A coupon template issued to a segment, once per member; watch it by polling."
)
class Campaign:
    id: strawberry.ID
    name: str
    template_id: strawberry.ID
    rule: SegmentRule
    status: CampaignStatus | None
    total: int = strawberry.field(description="Members in the segment at launch.")
    processed: int = strawberry.field(description="Members visited so far.")
    issued: int
    skipped: int = strawberry.field(description="Per-member limit already reached, or merged.")
    sold_out: int = strawberry.field(description="Not issued: the template's total ran out.")
    launched_by: str
    create_time: datetime | None
    finish_time: datetime | None

    @resolver(description="The template it issues (through a DataLoader).")
    async def template(self, info: GatewayInfo) -> CouponTemplate:
        loaded = await info.context.loaders.membership.coupon_template.load(self.template_id)
        return CouponTemplate.from_proto(loaded)

    @classmethod
    def from_proto(cls, campaign: member_pb2.Campaign) -> Campaign:
        return cls(
            id=strawberry.ID(campaign.id),
            name=campaign.name,
            template_id=strawberry.ID(campaign.template_id),
            rule=SegmentRule.from_proto(campaign.rule),
            status=_enum(CampaignStatus, campaign.status),
            total=campaign.total,
            processed=campaign.processed,
            issued=campaign.issued,
            skipped=campaign.skipped,
            sold_out=campaign.sold_out,
            launched_by=campaign.actor.id,
            create_time=time_of(campaign, "create_time"),
            finish_time=time_of(campaign, "finish_time"),
        )


# ---- tiers ---------------------------------------------------------------------------------


@strawberry.type(description="A tier: the spend that reaches it and its benefits.")
class TierDefinition:
    code: str
    threshold: Money = strawberry.field(description="Rolling 12-month spend that reaches it.")
    points_multiplier_percent: int = strawberry.field(description="150 = 1.5x points.")
    birthday_bonus_points: int
    names: strawberry.Private[Mapping[str, str]]

    @resolver(description="In `locale` if given, else in the request's locale.")
    def name(self, info: GatewayInfo, locale: str | None = None) -> str:
        return resolve_text(self.names, locale or info.context.locale)


@strawberry.type(description="The loyalty programme's tiers and points rates.")
class TierPolicy:
    tiers: list[TierDefinition] = strawberry.field(description="Lowest first.")
    points_per_yuan: int
    points_per_yuan_redeemed: int = strawberry.field(description="100 = 100 points per yuan.")
    max_redeem_percent: int = strawberry.field(description="Share of an order payable in points.")
    update_time: datetime | None

    @classmethod
    def from_proto(cls, policy: member_pb2.TierPolicy) -> TierPolicy:
        return cls(
            tiers=[
                TierDefinition(
                    code=t.code,
                    threshold=money(t.threshold),
                    points_multiplier_percent=t.points_multiplier_percent,
                    birthday_bonus_points=t.birthday_bonus_points,
                    names=t.name.values,
                )
                for t in policy.tiers
            ],
            points_per_yuan=policy.points_per_yuan,
            points_per_yuan_redeemed=policy.points_per_yuan_redeemed,
            max_redeem_percent=policy.max_redeem_percent,
            update_time=time_of(policy, "update_time"),
        )
