"""Members slice for the associate console (导购) and store managers: look a member up by
phone, member code (QR) or id, enroll at the counter, tag, list one's members; the tag
catalogue, segment previews and campaigns.

Access (members_access): an associate or manager acts for the store in their token and sees
only members bound to or active in it; the associate id is the token's subject. Deciding
needs the member, so a look-up reads it (one BatchGetMembers or GetMemberByIdentity) and a
refusal returns none of it and sends nothing else. Phone numbers are masked for staff.
"""

from __future__ import annotations

import grpc
import strawberry
from strawberry.types.nodes import SelectedField, Selection

from gateway.auth import Principal, Role
from gateway.authz import require
from gateway.catalog_admin import LocalizedStringInput
from gateway.context import GatewayInfo
from gateway.errors import bad_user_input, forbidden
from gateway.fields import resolver
from gateway.members_access import (
    actor,
    campaign_error,
    manager_error,
    member_error,
    sees_whole,
    segment_error,
    staff_error,
    store_staff_error,
)
from gateway.members_loaders import ALL_TAGS, call, survivor
from gateway.members_loaders import member_error as rpc_error
from gateway.members_types import (
    Campaign,
    Member,
    MemberConnection,
    SegmentRuleInput,
    Tag,
    check_first,
    page_info,
)
from retail.common.v1 import common_pb2
from retail.member.v1 import member_pb2
from retail_kit.validation import id_violation

_PHONE_FIELDS = {"identity": "phone", "identity.value": "phone", "identity.kind": "phone"}
_ENROL_FIELDS = {**_PHONE_FIELDS, "display_name": "displayName"}
_LIST_FIELDS = {
    "associate_id": "filter.associateId",
    "store_id": "filter.storeId",
    "query": "filter.query",
}
_TAG_FIELDS = {"tag": "input", "tag.name": "input.name"}
_CAMPAIGN_FIELDS = {"idempotency_key": "idempotencyKey", "template_id": "templateId"}
PREVIEW_SIZE = 20


def _check_id(field: str, value: str) -> str:
    """Ids are checked before batching: one malformed id would fail the whole batch."""
    if violation := id_violation(field, value):
        raise bad_user_input(violation)
    return value


def shown(principal: Principal, member: member_pb2.Member) -> Member:
    return Member.from_proto(member, whole=sees_whole(principal, member))


async def visible_member(info: GatewayInfo, member_id: str) -> member_pb2.Member:
    """The member (merges followed) if the caller may see it, else FORBIDDEN."""
    member = await survivor(info.context.loaders.member.load, member_id)
    require(member_error(info.context.principal, member))
    return member


async def _member_by_phone(info: GatewayInfo, phone: str) -> member_pb2.Member | None:
    request = member_pb2.GetMemberByIdentityRequest(
        identity=member_pb2.Identity(kind=member_pb2.IDENTITY_KIND_PHONE, value=phone)
    )
    try:
        reply = await info.context.clients.member.GetMemberByIdentity(request)
    except grpc.aio.AioRpcError as error:
        if error.code() is grpc.StatusCode.NOT_FOUND:
            return None
        raise rpc_error(error, _PHONE_FIELDS) from None
    info.context.loaders.member.prime(reply.member.id, reply.member)
    return await survivor(info.context.loaders.member.load, reply.member.id)


def _selects(selections: list[Selection], name: str) -> bool:
    for selection in selections:
        if isinstance(selection, SelectedField):
            if selection.name == name:
                return True
        elif _selects(selection.selections, name):  # fragments
            return True
    return False


@strawberry.input(description="Narrows myMembers.")
class MemberListFilter:
    query: str | None = strawberry.field(
        default=None, description="A display-name fragment, or the last 4+ digits of a phone."
    )
    associate_id: str | None = strawberry.field(
        default=None, description="Managers and admins: one associate's members."
    )
    store_id: strawberry.ID | None = strawberry.field(
        default=None, description="Admins: the members of a store."
    )


@strawberry.input(description="A tag of the catalogue; an existing id is updated.")
class TagInput:
    id: strawberry.ID = strawberry.field(description='e.g. "coffee_lover".')
    name: list[LocalizedStringInput] = strawberry.field(description="zh-Hans required.")
    group: str = "general"
    colour: str = strawberry.field(default="", description='"#RRGGBB"; default grey.')


@strawberry.type
class Enrollment:
    member: Member
    created: bool = strawberry.field(description="False: the phone was a member already.")
    guide_bound: bool = strawberry.field(
        description="True when this enrolment made the caller the member's exclusive guide."
    )


@strawberry.type
class TagChange:
    member: Member
    changed: bool = strawberry.field(description="False when there was nothing to change.")


@strawberry.type(description="How many members a rule selects, and the first 20 of them.")
class SegmentPreview:
    count: int
    members: list[Member] = strawberry.field(
        description="The first 20 by id (phone numbers masked for staff)."
    )


@strawberry.type
class MemberConsoleQuery:
    @resolver(
        description="A member by id (a merged id answers its survivor). Staff of a store the "
        "member is bound to or active in, or admin."
    )
    async def member(self, info: GatewayInfo, id: strawberry.ID) -> Member | None:
        require(staff_error(info.context.principal, "look members up"))
        member = await visible_member(info, _check_id("id", id))
        return shown(info.context.principal, member)

    @resolver(
        description="The member with this phone number (null if none), masked for staff. "
        "Staff of a store the member is bound to or active in, or admin."
    )
    async def member_by_phone(self, info: GatewayInfo, phone: str) -> Member | None:
        principal = info.context.principal
        require(staff_error(principal, "look members up"))
        member = await _member_by_phone(info, phone)
        if member is None:
            return None
        require(member_error(principal, member))
        return shown(principal, member)

    @resolver(
        description="The member whose member code (the QR from me.member.memberCode) was "
        "scanned; an expired code is FAILED_PRECONDITION (reason EXPIRED)."
    )
    async def member_by_qr(self, info: GatewayInfo, payload: str) -> Member | None:
        require(staff_error(info.context.principal, "look members up"))
        member_id = info.context.customer_auth.read_member_code(payload)
        return shown(info.context.principal, await visible_member(info, member_id))

    @resolver(
        description="An associate's own members (their exclusive guide, in their store); a "
        "manager's: the store's (bound to or active in it); admins name a store or associate."
    )
    async def my_members(
        self,
        info: GatewayInfo,
        filter: MemberListFilter | None = None,
        first: int = 20,
        after: str | None = None,
    ) -> MemberConnection:
        principal = info.context.principal
        require(staff_error(principal, "list members"))
        wanted = filter or MemberListFilter()
        associate_id, store_id = wanted.associate_id or "", wanted.store_id or ""
        if principal.role is Role.ASSOCIATE:
            if associate_id not in ("", principal.subject):
                raise forbidden("an associate lists their own members")
            associate_id = principal.subject
        if principal.role in (Role.ASSOCIATE, Role.STORE_MANAGER):
            if store_id not in ("", principal.store_id):
                raise forbidden(f"staff of store {principal.store_id!r} list its members only")
            store_id = principal.store_id or ""
        request = member_pb2.ListMembersRequest(
            associate_id=associate_id,
            store_id=store_id,
            query=wanted.query or "",
            page_size=check_first(first),
            page_token=after or "",
        )
        reply = await call(info.context.clients.member.ListMembers, request, _LIST_FIELDS)
        info.context.loaders.member.prime_many({m.id: m for m in reply.members})
        return MemberConnection(
            nodes=[shown(principal, m) for m in reply.members],
            page_info=page_info(reply.next_page_token),
        )

    @resolver(description="The brand's tag catalogue, by group. Staff and admins.")
    async def tag_catalogue(self, info: GatewayInfo) -> list[Tag]:
        require(staff_error(info.context.principal, "read the tag catalogue"))
        tags = await info.context.loaders.membership.tag_catalogue.load(ALL_TAGS)
        return [Tag.from_proto(t) for t in tags]

    @resolver(
        description="How many members a segment rule selects, and the first 20. Store "
        "managers (rule.homeStoreIds = their store) and admins."
    )
    async def segment_preview(self, info: GatewayInfo, rule: SegmentRuleInput) -> SegmentPreview:
        principal = info.context.principal
        require(manager_error(principal, "preview segments"))
        require(segment_error(principal, rule.home_store_ids))
        member = info.context.clients.member
        if not _selects(info.selected_fields[0].selections, "members"):
            counted = await call(
                member.CountSegment, member_pb2.CountSegmentRequest(rule=rule.to_proto())
            )
            return SegmentPreview(count=counted.count, members=[])
        request = member_pb2.ListSegmentMembersRequest(rule=rule.to_proto(), page_size=PREVIEW_SIZE)
        reply = await call(member.ListSegmentMembers, request)
        return SegmentPreview(
            count=reply.total_count, members=[shown(principal, m) for m in reply.members]
        )

    @resolver(
        description="A campaign with its progress (poll it to watch). Managers of the store it "
        "targets, and admins."
    )
    async def campaign(self, info: GatewayInfo, id: strawberry.ID) -> Campaign | None:
        principal = info.context.principal
        require(manager_error(principal, "see campaigns"))
        campaign = await info.context.loaders.membership.campaign.load(_check_id("id", id))
        require(campaign_error(principal, campaign))
        return Campaign.from_proto(campaign)


@strawberry.type
class MemberConsoleMutation:
    @resolver(
        description="Enrolls a shopper at the counter by phone in one call (payment = "
        "membership: an existing member is found, not duplicated); the associate becomes "
        "their exclusive guide in this store unless they have one. Associates and managers. "
        "A phone of a member of another store is FORBIDDEN and changes nothing."
    )
    async def enroll_member(
        self,
        info: GatewayInfo,
        phone: str,
        display_name: str = "",
        marketing_consent: bool = False,
    ) -> Enrollment:
        principal = info.context.principal
        require(store_staff_error(principal, "enroll members"))
        existing = await _member_by_phone(info, phone)
        if existing is not None:
            require(member_error(principal, existing))
        request = member_pb2.EnsureMemberRequest(
            identity=member_pb2.Identity(kind=member_pb2.IDENTITY_KIND_PHONE, value=phone),
            channel=common_pb2.CHANNEL_POS,
            store_id=principal.store_id or "",
            associate_id=principal.subject,
            display_name=display_name,
            marketing_consent=marketing_consent,
        )
        ensured = await call(info.context.clients.member.EnsureMember, request, _ENROL_FIELDS)
        member = ensured.member
        if member.status == member_pb2.MEMBER_STATUS_MERGED:
            member = await survivor(info.context.loaders.member.load, member.id)
        # A member another store enrolled between the look-up and this call.
        require(member_error(principal, member))
        return Enrollment(
            member=shown(principal, member),
            created=ensured.created,
            guide_bound=ensured.associate_bound,
        )

    @resolver(
        description="Tags a member (who, where and when are recorded); changed is false when "
        "the member had the tag. Staff of a store the member is bound to or active in, or admin."
    )
    async def tag_member(
        self, info: GatewayInfo, member_id: strawberry.ID, tag_id: strawberry.ID
    ) -> TagChange:
        principal = info.context.principal
        require(staff_error(principal, "tag members"))
        member = await visible_member(info, _check_id("memberId", member_id))
        request = member_pb2.TagMemberRequest(
            member_id=member.id, tag_id=tag_id, actor=actor(principal)
        )
        reply = await call(info.context.clients.member.TagMember, request)
        return TagChange(member=shown(principal, reply.member), changed=reply.added)

    @resolver(description="Removes a tag (audited). Same access as tagMember.")
    async def untag_member(
        self, info: GatewayInfo, member_id: strawberry.ID, tag_id: strawberry.ID
    ) -> TagChange:
        principal = info.context.principal
        require(staff_error(principal, "untag members"))
        member = await visible_member(info, _check_id("memberId", member_id))
        request = member_pb2.UntagMemberRequest(
            member_id=member.id, tag_id=tag_id, actor=actor(principal)
        )
        reply = await call(info.context.clients.member.UntagMember, request)
        return TagChange(member=shown(principal, reply.member), changed=reply.removed)

    @resolver(description="Creates or updates a tag of the catalogue. Store managers and admins.")
    async def upsert_tag(self, info: GatewayInfo, input: TagInput) -> Tag:
        principal = info.context.principal
        require(manager_error(principal, "manage the tag catalogue"))
        request = member_pb2.UpsertTagDefinitionRequest(
            tag=member_pb2.TagDefinition(
                id=input.id,
                name=common_pb2.LocalizedText(values={n.locale: n.value for n in input.name}),
                group=input.group,
                colour=input.colour,
            ),
            actor=actor(principal),
        )
        reply = await call(info.context.clients.member.UpsertTagDefinition, request, _TAG_FIELDS)
        return Tag.from_proto(reply.tag)

    @resolver(
        description="Issues a coupon template to every member of a segment, once per member "
        "(a retry with the same idempotencyKey answers the same campaign). Store managers "
        "(rule.homeStoreIds = their store) and admins; watch it with campaign(id)."
    )
    async def launch_campaign(
        self,
        info: GatewayInfo,
        name: str,
        template_id: strawberry.ID,
        rule: SegmentRuleInput,
        idempotency_key: str,
    ) -> Campaign:
        principal = info.context.principal
        require(manager_error(principal, "launch campaigns"))
        require(segment_error(principal, rule.home_store_ids))
        request = member_pb2.LaunchCampaignRequest(
            name=name,
            template_id=template_id,
            rule=rule.to_proto(),
            idempotency_key=idempotency_key,
            actor=actor(principal),
        )
        reply = await call(info.context.clients.member.LaunchCampaign, request, _CAMPAIGN_FIELDS)
        return Campaign.from_proto(reply.campaign)

    @resolver(
        description="Stops a running campaign at its next page; coupons already issued stay. "
        "Managers of the store it targets, and admins."
    )
    async def cancel_campaign(self, info: GatewayInfo, id: strawberry.ID) -> Campaign:
        principal = info.context.principal
        require(manager_error(principal, "cancel campaigns"))
        campaign = await info.context.loaders.membership.campaign.load(_check_id("id", id))
        require(campaign_error(principal, campaign))
        request = member_pb2.CancelCampaignRequest(id=campaign.id, actor=actor(principal))
        reply = await call(info.context.clients.member.CancelCampaign, request)
        return Campaign.from_proto(reply.campaign)
