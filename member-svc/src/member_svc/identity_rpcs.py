"""MemberService RPCs for identity, profile, associates' members, tags and merges."""

from __future__ import annotations

from member_svc.rpc_base import MemberRpcBase
from retail.member.v1 import member_pb2
from retail_kit.errors import Context, unimplemented


class IdentityRpcs(MemberRpcBase):
    async def EnsureMember(
        self, request: member_pb2.EnsureMemberRequest, context: Context
    ) -> member_pb2.EnsureMemberResponse:
        raise unimplemented("EnsureMember")

    async def MergeMembers(
        self, request: member_pb2.MergeMembersRequest, context: Context
    ) -> member_pb2.MergeMembersResponse:
        raise unimplemented("MergeMembers")

    async def RequestIdentityVerification(
        self, request: member_pb2.RequestIdentityVerificationRequest, context: Context
    ) -> member_pb2.RequestIdentityVerificationResponse:
        raise unimplemented("RequestIdentityVerification")

    async def BindIdentity(
        self, request: member_pb2.BindIdentityRequest, context: Context
    ) -> member_pb2.BindIdentityResponse:
        raise unimplemented("BindIdentity")

    async def UpdateMemberProfile(
        self, request: member_pb2.UpdateMemberProfileRequest, context: Context
    ) -> member_pb2.UpdateMemberProfileResponse:
        raise unimplemented("UpdateMemberProfile")

    async def ListMemberAudit(
        self, request: member_pb2.ListMemberAuditRequest, context: Context
    ) -> member_pb2.ListMemberAuditResponse:
        raise unimplemented("ListMemberAudit")

    async def AssignAssociate(
        self, request: member_pb2.AssignAssociateRequest, context: Context
    ) -> member_pb2.AssignAssociateResponse:
        raise unimplemented("AssignAssociate")

    async def ListMembers(
        self, request: member_pb2.ListMembersRequest, context: Context
    ) -> member_pb2.ListMembersResponse:
        raise unimplemented("ListMembers")

    async def UpsertTagDefinition(
        self, request: member_pb2.UpsertTagDefinitionRequest, context: Context
    ) -> member_pb2.UpsertTagDefinitionResponse:
        raise unimplemented("UpsertTagDefinition")

    async def ListTagDefinitions(
        self, request: member_pb2.ListTagDefinitionsRequest, context: Context
    ) -> member_pb2.ListTagDefinitionsResponse:
        raise unimplemented("ListTagDefinitions")

    async def TagMember(
        self, request: member_pb2.TagMemberRequest, context: Context
    ) -> member_pb2.TagMemberResponse:
        raise unimplemented("TagMember")

    async def UntagMember(
        self, request: member_pb2.UntagMemberRequest, context: Context
    ) -> member_pb2.UntagMemberResponse:
        raise unimplemented("UntagMember")
