"""MemberService RPCs for the points ledger, tiers and order effects."""

from __future__ import annotations

from member_svc.rpc_base import MemberRpcBase
from retail.member.v1 import member_pb2
from retail_kit.errors import Context, unimplemented


class LoyaltyRpcs(MemberRpcBase):
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

    async def GetPointsSummary(
        self, request: member_pb2.GetPointsSummaryRequest, context: Context
    ) -> member_pb2.GetPointsSummaryResponse:
        raise unimplemented("GetPointsSummary")

    async def QuotePointsRedemption(
        self, request: member_pb2.QuotePointsRedemptionRequest, context: Context
    ) -> member_pb2.QuotePointsRedemptionResponse:
        raise unimplemented("QuotePointsRedemption")

    async def RevertPointsRedemption(
        self, request: member_pb2.RevertPointsRedemptionRequest, context: Context
    ) -> member_pb2.RevertPointsRedemptionResponse:
        raise unimplemented("RevertPointsRedemption")

    async def ClawBackPoints(
        self, request: member_pb2.ClawBackPointsRequest, context: Context
    ) -> member_pb2.ClawBackPointsResponse:
        raise unimplemented("ClawBackPoints")

    async def AdjustPoints(
        self, request: member_pb2.AdjustPointsRequest, context: Context
    ) -> member_pb2.AdjustPointsResponse:
        raise unimplemented("AdjustPoints")

    async def ExpirePoints(
        self, request: member_pb2.ExpirePointsRequest, context: Context
    ) -> member_pb2.ExpirePointsResponse:
        raise unimplemented("ExpirePoints")

    async def SetTierPolicy(
        self, request: member_pb2.SetTierPolicyRequest, context: Context
    ) -> member_pb2.SetTierPolicyResponse:
        raise unimplemented("SetTierPolicy")

    async def GetTierPolicy(
        self, request: member_pb2.GetTierPolicyRequest, context: Context
    ) -> member_pb2.GetTierPolicyResponse:
        raise unimplemented("GetTierPolicy")

    async def ListTierChanges(
        self, request: member_pb2.ListTierChangesRequest, context: Context
    ) -> member_pb2.ListTierChangesResponse:
        raise unimplemented("ListTierChanges")

    async def ReviewTiers(
        self, request: member_pb2.ReviewTiersRequest, context: Context
    ) -> member_pb2.ReviewTiersResponse:
        raise unimplemented("ReviewTiers")

    async def RecordOrderCompleted(
        self, request: member_pb2.RecordOrderCompletedRequest, context: Context
    ) -> member_pb2.RecordOrderCompletedResponse:
        raise unimplemented("RecordOrderCompleted")

    async def RecordOrderReturned(
        self, request: member_pb2.RecordOrderReturnedRequest, context: Context
    ) -> member_pb2.RecordOrderReturnedResponse:
        raise unimplemented("RecordOrderReturned")
