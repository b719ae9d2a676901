"""Members slice for customers (mini-program, app): WeChat sign-in, `me.member` (see
viewer.py), claiming coupons, joining with an invite code, binding an identity and merging
the member that holds it.

A customer acts only on their own member: the token's member, followed to its survivor when
it was merged (so a token issued before a merge still works). Nothing here takes a member id.

**Survivor of a customer's merge.** member-svc's MergeMembers takes an explicit survivor and
absorbed member and decides nothing about which should survive; the gateway does not invent a
rule either: the member the customer is signed in as is the survivor (their token keeps
working), the member holding the proved identity is absorbed. Points, coupons, tags, guide,
referrals and history all move (member-svc), so nothing is lost either way.
"""

from __future__ import annotations

from datetime import datetime

import grpc
import strawberry

from gateway.auth import Principal, Role
from gateway.context import GatewayInfo
from gateway.fields import resolver
from gateway.members_access import actor, customer_error
from gateway.members_loaders import call, member_error, survivor
from gateway.members_types import Coupon, IdentityKind, MyMember, time_of
from retail.common.v1 import common_pb2
from retail.member.v1 import member_pb2

_IDENTITY_FIELDS = {
    "identity": "value",
    "identity.kind": "kind",
    "identity.value": "value",
    "proof_identity": "value",
    "proof_identity.kind": "kind",
    "proof_identity.value": "value",
    "verification_code": "code",
}
_CLAIM_FIELDS = {"request_id": "idempotencyKey"}
_SIGN_IN_FIELDS = {"identity": "code", "identity.value": "code"}
_JOIN_FIELDS = {"invite_code": "code"}
MERGE_REASON = "customer proved both identities"


def _require_customer(principal: Principal, action: str) -> None:
    if error := customer_error(principal, action):
        raise error


async def current_member(info: GatewayInfo, action: str) -> member_pb2.Member:
    """The calling customer's member (merges followed); UNAUTHENTICATED / FORBIDDEN for
    anyone else, before anything is sent."""
    principal = info.context.principal
    _require_customer(principal, action)
    return await survivor(info.context.loaders.member.load, principal.member_id or "")


async def viewer_member(info: GatewayInfo) -> MyMember | None:
    """`me.member`: the customer's own member; null for any other caller."""
    if info.context.principal.role is not Role.CUSTOMER:
        return None
    return MyMember.mine(await current_member(info, "see your member"))


def _identity(kind: IdentityKind, value: str) -> member_pb2.Identity:
    return member_pb2.Identity(kind=kind.value, value=value)


@strawberry.type(description="A customer session: send the token as `Authorization: Bearer`.")
class CustomerSession:
    token: str
    expires_at: datetime
    created: bool = strawberry.field(description="True when this sign-in made the member.")
    member: MyMember


@strawberry.type
class InviteJoin:
    member: MyMember
    referrer_member_id: strawberry.ID


@strawberry.type(description="A verification code was sent to the identity (SMS for phones).")
class VerificationRequest:
    expires_at: datetime | None
    debug_code: str | None = strawberry.field(
        description="Development only (member-svc's MEMBER_EXPOSE_VERIFICATION_CODES): the "
        "code the SMS partner would have sent. Always null in production."
    )


@strawberry.type
class MemberCustomerMutation:
    @resolver(
        description="Mini-program sign-in: exchanges the wx.login() code for the WeChat user, "
        "finds or creates the member owning that UnionID (channel mini_program) and returns a "
        'customer token. With GATEWAY_WECHAT_DEV_LOGIN, codes are "dev:<unionid>".'
    )
    async def sign_in_with_we_chat(self, info: GatewayInfo, code: str) -> CustomerSession:
        context = info.context
        session = await context.customer_auth.wechat.exchange(code)
        request = member_pb2.EnsureMemberRequest(
            identity=member_pb2.Identity(
                kind=member_pb2.IDENTITY_KIND_WECHAT_UNIONID, value=session.unionid
            ),
            channel=common_pb2.CHANNEL_MINI_PROGRAM,
        )
        ensured = await call(context.clients.member.EnsureMember, request, _SIGN_IN_FIELDS)
        member = ensured.member
        if member.status == member_pb2.MEMBER_STATUS_MERGED:
            member = await survivor(context.loaders.member.load, member.id)
        issued = context.customer_auth.customer_token(member.id)
        return CustomerSession(
            token=issued.token,
            expires_at=issued.expires_at,
            created=ensured.created,
            member=MyMember.mine(member),
        )

    @resolver(
        description="Claims a coupon by template id or by its public claim code (exactly one), "
        "optionally in a store (trade-area templates need one of theirs). A retry with the "
        "same idempotencyKey answers the same coupon. Customers."
    )
    async def claim_coupon(
        self,
        info: GatewayInfo,
        idempotency_key: str,
        template_id: strawberry.ID | None = None,
        claim_code: str | None = None,
        store_id: strawberry.ID | None = None,
    ) -> Coupon:
        member = await current_member(info, "claim a coupon")
        request = member_pb2.ClaimCouponRequest(
            member_id=member.id,
            template_id=template_id or "",
            claim_code=claim_code or "",
            store_id=store_id or "",
            request_id=idempotency_key,
        )
        reply = await call(info.context.clients.member.ClaimCoupon, request, _CLAIM_FIELDS)
        return Coupon.from_proto(reply.coupon)

    @resolver(
        description="Joins with a friend's invite code (once, before the first completed "
        "order; no self-referral, no cycles). Both are rewarded when the first order completes."
    )
    async def join_with_invite_code(self, info: GatewayInfo, code: str) -> InviteJoin:
        member = await current_member(info, "join with an invite code")
        request = member_pb2.JoinWithInviteCodeRequest(member_id=member.id, invite_code=code)
        reply = await call(info.context.clients.member.JoinWithInviteCode, request, _JOIN_FIELDS)
        return InviteJoin(
            member=MyMember.mine(reply.member),
            referrer_member_id=strawberry.ID(reply.referrer_member_id),
        )

    @resolver(
        description="Sends a one-time code proving the customer owns an identity (an SMS for "
        "a phone), for bindIdentity or mergeWithIdentity. At most one a minute per identity."
    )
    async def request_identity_verification(
        self, info: GatewayInfo, kind: IdentityKind, value: str
    ) -> VerificationRequest:
        _require_customer(info.context.principal, "verify an identity")
        request = member_pb2.RequestIdentityVerificationRequest(identity=_identity(kind, value))
        reply = await call(
            info.context.clients.member.RequestIdentityVerification, request, _IDENTITY_FIELDS
        )
        return VerificationRequest(
            expires_at=time_of(reply, "expire_time"),
            debug_code=reply.debug_code or None,
        )

    @resolver(
        description="Binds a further identity (proved by its code) to the customer's member. "
        "An identity that belongs to another member is answered with CONFLICT (reason "
        "IDENTITY_BOUND_ELSEWHERE, extensions.otherMemberId): offer mergeWithIdentity, the code "
        "stays valid for it."
    )
    async def bind_identity(
        self, info: GatewayInfo, kind: IdentityKind, value: str, code: str
    ) -> MyMember:
        member = await current_member(info, "bind an identity")
        request = member_pb2.BindIdentityRequest(
            member_id=member.id,
            identity=_identity(kind, value),
            verification_code=code,
            actor=actor(info.context.principal, member.id),
        )
        reply = await call(info.context.clients.member.BindIdentity, request, _IDENTITY_FIELDS)
        return MyMember.mine(reply.member)

    @resolver(
        description="The customer proves an identity held by another member (its code, as for "
        "bindIdentity) and that member is merged into theirs: the customer's member survives "
        "and receives the other's identities, points, coupons, tags, guide and history. An "
        "identity nobody holds is simply bound. Idempotent: a retry answers the merged member."
    )
    async def merge_with_identity(
        self, info: GatewayInfo, kind: IdentityKind, value: str, code: str
    ) -> MyMember:
        member = await current_member(info, "merge members")
        clients, identity = info.context.clients, _identity(kind, value)
        try:
            found = await clients.member.GetMemberByIdentity(
                member_pb2.GetMemberByIdentityRequest(identity=identity)
            )
            owner = await survivor(info.context.loaders.member.load, found.member.id)
        except grpc.aio.AioRpcError as error:
            if error.code() is not grpc.StatusCode.NOT_FOUND:
                raise member_error(error, _IDENTITY_FIELDS) from None
            owner = None
        if owner is None or owner.id == member.id:
            # Nobody else holds it: a bind, whose code is checked first, so the answer never
            # tells an unproved caller whether the identity belongs to a member.
            bind = member_pb2.BindIdentityRequest(
                member_id=member.id,
                identity=identity,
                verification_code=code,
                actor=actor(info.context.principal, member.id),
            )
            bound = await call(clients.member.BindIdentity, bind, _IDENTITY_FIELDS)
            return MyMember.mine(bound.member)
        merge = member_pb2.MergeMembersRequest(
            source_member_id=owner.id,
            target_member_id=member.id,
            reason=MERGE_REASON,
            actor=actor(info.context.principal, member.id),
            proof_identity=identity,
            verification_code=code,
        )
        merged = await call(clients.member.MergeMembers, merge, _IDENTITY_FIELDS)
        return MyMember.mine(merged.member)
