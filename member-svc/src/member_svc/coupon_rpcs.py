"""MemberService RPCs for coupon templates and coupons."""

from __future__ import annotations

from member_svc.rpc_base import MemberRpcBase
from retail.member.v1 import member_pb2
from retail_kit.errors import Context, unimplemented


class CouponRpcs(MemberRpcBase):
    async def CreateCouponTemplate(
        self, request: member_pb2.CreateCouponTemplateRequest, context: Context
    ) -> member_pb2.CreateCouponTemplateResponse:
        raise unimplemented("CreateCouponTemplate")

    async def SetCouponTemplateStatus(
        self, request: member_pb2.SetCouponTemplateStatusRequest, context: Context
    ) -> member_pb2.SetCouponTemplateStatusResponse:
        raise unimplemented("SetCouponTemplateStatus")

    async def BatchGetCouponTemplates(
        self, request: member_pb2.BatchGetCouponTemplatesRequest, context: Context
    ) -> member_pb2.BatchGetCouponTemplatesResponse:
        raise unimplemented("BatchGetCouponTemplates")

    async def ListCouponTemplates(
        self, request: member_pb2.ListCouponTemplatesRequest, context: Context
    ) -> member_pb2.ListCouponTemplatesResponse:
        raise unimplemented("ListCouponTemplates")

    async def IssueCoupon(
        self, request: member_pb2.IssueCouponRequest, context: Context
    ) -> member_pb2.IssueCouponResponse:
        raise unimplemented("IssueCoupon")

    async def ClaimCoupon(
        self, request: member_pb2.ClaimCouponRequest, context: Context
    ) -> member_pb2.ClaimCouponResponse:
        raise unimplemented("ClaimCoupon")

    async def BatchGetCoupons(
        self, request: member_pb2.BatchGetCouponsRequest, context: Context
    ) -> member_pb2.BatchGetCouponsResponse:
        raise unimplemented("BatchGetCoupons")

    async def ListMemberCoupons(
        self, request: member_pb2.ListMemberCouponsRequest, context: Context
    ) -> member_pb2.ListMemberCouponsResponse:
        raise unimplemented("ListMemberCoupons")

    async def EvaluateCoupons(
        self, request: member_pb2.EvaluateCouponsRequest, context: Context
    ) -> member_pb2.EvaluateCouponsResponse:
        raise unimplemented("EvaluateCoupons")

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

    async def ReleaseExpiredCouponLocks(
        self, request: member_pb2.ReleaseExpiredCouponLocksRequest, context: Context
    ) -> member_pb2.ReleaseExpiredCouponLocksResponse:
        raise unimplemented("ReleaseExpiredCouponLocks")
