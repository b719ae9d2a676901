"""MemberService over gRPC: proto <-> domain and status codes; rules stay in domain/repository."""

from __future__ import annotations

from datetime import datetime

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from member_svc.domain import Identity, IdentityKind, Member
from member_svc.identities import IdentityError, normalize_value
from member_svc.repository import MemberRepository
from retail.common.v1 import common_pb2
from retail.member.v1 import member_pb2, member_pb2_grpc
from retail_kit.errors import (
    Context,
    FieldViolation,
    ServiceError,
    invalid_argument,
    not_found,
    unimplemented,
)
from retail_kit.validation import batch_ids, require_id

KIND_TO_PROTO = {
    IdentityKind.PHONE: member_pb2.IDENTITY_KIND_PHONE,
    IdentityKind.WECHAT_UNIONID: member_pb2.IDENTITY_KIND_WECHAT_UNIONID,
    IdentityKind.WECHAT_OPENID: member_pb2.IDENTITY_KIND_WECHAT_OPENID,
    IdentityKind.APP_ACCOUNT: member_pb2.IDENTITY_KIND_APP_ACCOUNT,
}
KIND_FROM_PROTO = {number: kind for kind, number in KIND_TO_PROTO.items()}


def _timestamp(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def member_to_proto(member: Member) -> member_pb2.Member:
    return member_pb2.Member(
        id=member.id,
        display_name=member.display_name,
        identities=[
            member_pb2.Identity(kind=KIND_TO_PROTO[i.kind], value=i.value)
            for i in member.identities
        ],
        tier=member.tier.value,
        points_balance=member.points_balance,
        home_store_id=member.home_store_id or "",
        tags=member.tags,
        join_time=_timestamp(member.join_time),
        referral_code=member.referral_code,
    )


def identity_from_proto(identity: member_pb2.Identity, field: str = "identity") -> Identity:
    """A valid, canonical identity, or INVALID_ARGUMENT naming `identity.kind` / `.value`."""
    violations: list[FieldViolation] = []
    kind = KIND_FROM_PROTO.get(identity.kind)
    if kind is None:
        names = ", ".join(member_pb2.IdentityKind.Name(n) for n in KIND_FROM_PROTO)
        violations.append(FieldViolation(f"{field}.kind", f"must be one of {names}"))
    value = ""
    if not identity.value.strip():
        violations.append(FieldViolation(f"{field}.value", "is required"))
    elif kind is not None:
        try:
            value = normalize_value(kind, identity.value)
        except IdentityError as error:
            violations.append(FieldViolation(f"{field}.value", str(error)))
    if violations or kind is None:
        raise invalid_argument(*violations)
    return Identity(kind, value)


def identity_not_found(identity: Identity) -> ServiceError:
    """NOT_FOUND that names the kind of identity but never echoes its value (PII)."""
    return ServiceError(
        grpc.StatusCode.NOT_FOUND,
        common_pb2.ERROR_REASON_NOT_FOUND,
        f"no member has this {identity.kind.value} identity",
        metadata={"entity": "member", "identity_kind": identity.kind.value},
    )


class MemberServicer(member_pb2_grpc.MemberServiceServicer):
    def __init__(self, repository: MemberRepository) -> None:
        self._repository = repository

    async def GetMember(
        self, request: member_pb2.GetMemberRequest, context: Context
    ) -> member_pb2.GetMemberResponse:
        member = await self._repository.get_member(require_id("id", request.id))
        if member is None:
            raise not_found("member", request.id)
        return member_pb2.GetMemberResponse(member=member_to_proto(member))

    async def BatchGetMembers(
        self, request: member_pb2.BatchGetMembersRequest, context: Context
    ) -> member_pb2.BatchGetMembersResponse:
        ids = batch_ids("ids", request.ids)
        found = await self._repository.get_members(ids) if ids else {}
        return member_pb2.BatchGetMembersResponse(
            members=[member_to_proto(found[i]) for i in ids if i in found],
            missing_ids=[i for i in ids if i not in found],
        )

    async def GetMemberByIdentity(
        self, request: member_pb2.GetMemberByIdentityRequest, context: Context
    ) -> member_pb2.GetMemberByIdentityResponse:
        identity = identity_from_proto(request.identity)
        member = await self._repository.get_member_by_identity(identity)
        if member is None:
            raise identity_not_found(identity)
        return member_pb2.GetMemberByIdentityResponse(member=member_to_proto(member))

    async def EnsureMember(
        self, request: member_pb2.EnsureMemberRequest, context: Context
    ) -> member_pb2.EnsureMemberResponse:
        raise unimplemented("EnsureMember")

    async def MergeMembers(
        self, request: member_pb2.MergeMembersRequest, context: Context
    ) -> member_pb2.MergeMembersResponse:
        raise unimplemented("MergeMembers")

    async def EarnPoints(
        self, request: member_pb2.EarnPointsRequest, context: Context
    ) -> member_pb2.EarnPointsResponse:
        raise unimplemented("EarnPoints")

    async def RedeemPoints(
        self, request: member_pb2.RedeemPointsRequest, context: Context
    ) -> member_pb2.RedeemPointsResponse:
        raise unimplemented("RedeemPoints")

    async def ListPointsLedger(
        self, request: member_pb2.ListPointsLedgerRequest, context: Context
    ) -> member_pb2.ListPointsLedgerResponse:
        raise unimplemented("ListPointsLedger")

    async def LockCoupon(
        self, request: member_pb2.LockCouponRequest, context: Context
    ) -> member_pb2.LockCouponResponse:
        raise unimplemented("LockCoupon")

    async def RedeemCoupon(
        self, request: member_pb2.RedeemCouponRequest, context: Context
    ) -> member_pb2.RedeemCouponResponse:
        raise unimplemented("RedeemCoupon")

    async def ReleaseCoupon(
        self, request: member_pb2.ReleaseCouponRequest, context: Context
    ) -> member_pb2.ReleaseCouponResponse:
        raise unimplemented("ReleaseCoupon")

    async def ListSegmentMembers(
        self, request: member_pb2.ListSegmentMembersRequest, context: Context
    ) -> member_pb2.ListSegmentMembersResponse:
        raise unimplemented("ListSegmentMembers")
