"""MemberService over gRPC: one servicer composed of one mixin per area of the service.

proto <-> domain and status codes live in the mixins (`*_rpcs.py`); rules live in the
books (`points.py`, `coupons.py`, ...). The lookups every client needs are here.
"""

from __future__ import annotations

import grpc

from member_svc.books import Books
from member_svc.convert import identity_from_proto, member_to_proto
from member_svc.coupon_rpcs import CouponRpcs
from member_svc.domain import Identity
from member_svc.growth_rpcs import GrowthRpcs
from member_svc.identity_rpcs import IdentityRpcs
from member_svc.loyalty_rpcs import LoyaltyRpcs
from retail.common.v1 import common_pb2
from retail.member.v1 import member_pb2
from retail_kit.errors import Context, ServiceError, not_found
from retail_kit.validation import batch_ids, require_id


def identity_not_found(identity: Identity) -> ServiceError:
    """NOT_FOUND that names the kind of identity but never echoes its value (PII)."""
    return ServiceError(
        grpc.StatusCode.NOT_FOUND,
        common_pb2.ERROR_REASON_NOT_FOUND,
        f"no member has this {identity.kind.value} identity",
        metadata={"entity": "member", "identity_kind": identity.kind.value},
    )


class MemberServicer(IdentityRpcs, LoyaltyRpcs, CouponRpcs, GrowthRpcs):
    def __init__(self, books: Books) -> None:
        super().__init__(books)

    async def GetMember(
        self, request: member_pb2.GetMemberRequest, context: Context
    ) -> member_pb2.GetMemberResponse:
        """A merged member answers as stored: status MERGED and merged_into_member_id."""
        member = await self.books.members.get_member(require_id("id", request.id))
        if member is None:
            raise not_found("member", request.id)
        return member_pb2.GetMemberResponse(member=member_to_proto(member, self.now()))

    async def BatchGetMembers(
        self, request: member_pb2.BatchGetMembersRequest, context: Context
    ) -> member_pb2.BatchGetMembersResponse:
        ids = batch_ids("ids", request.ids)
        found = await self.books.members.get_members(ids) if ids else {}
        now = self.now()
        return member_pb2.BatchGetMembersResponse(
            members=[member_to_proto(found[i], now) for i in ids if i in found],
            missing_ids=[i for i in ids if i not in found],
        )

    async def GetMemberByIdentity(
        self, request: member_pb2.GetMemberByIdentityRequest, context: Context
    ) -> member_pb2.GetMemberByIdentityResponse:
        identity = identity_from_proto(request.identity)
        member = await self.books.members.get_member_by_identity(identity)
        if member is None:
            raise identity_not_found(identity)
        return member_pb2.GetMemberByIdentityResponse(member=member_to_proto(member, self.now()))
