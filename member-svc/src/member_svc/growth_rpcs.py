"""MemberService RPCs for referrals, segments and campaigns."""

from __future__ import annotations

from member_svc.rpc_base import MemberRpcBase
from retail.member.v1 import member_pb2
from retail_kit.errors import Context, unimplemented


class GrowthRpcs(MemberRpcBase):
    async def JoinWithInviteCode(
        self, request: member_pb2.JoinWithInviteCodeRequest, context: Context
    ) -> member_pb2.JoinWithInviteCodeResponse:
        raise unimplemented("JoinWithInviteCode")

    async def ListReferrals(
        self, request: member_pb2.ListReferralsRequest, context: Context
    ) -> member_pb2.ListReferralsResponse:
        raise unimplemented("ListReferrals")

    async def CountSegment(
        self, request: member_pb2.CountSegmentRequest, context: Context
    ) -> member_pb2.CountSegmentResponse:
        raise unimplemented("CountSegment")

    async def ListSegmentMembers(
        self, request: member_pb2.ListSegmentMembersRequest, context: Context
    ) -> member_pb2.ListSegmentMembersResponse:
        raise unimplemented("ListSegmentMembers")

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
