"""Shared helpers of the coupon tests: members and templates stored directly, a clock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from pymongo.asynchronous.database import AsyncDatabase

from member_svc import app
from member_svc.books import Books
from member_svc.coupon_domain import CouponKind, CouponScope, CouponTemplate
from member_svc.coupons import COUPON_TEMPLATES, template_to_document
from member_svc.domain import Identity, IdentityKind, Member, Tier
from member_svc.repository import MEMBERS, member_to_document
from member_svc.servicer import MemberServicer
from member_svc.settings import MemberSettings
from retail.common.v1 import common_pb2
from retail.member.v1 import member_pb2, member_pb2_grpc
from retail_kit.errors import RpcErrorDetails
from retail_kit.mongo import Document
from retail_kit.server import ServiceContext
from retail_kit.testing import channel_to, running_service, unique_name

START = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)


class Clock:
    """A clock tests move by hand."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


def member(member_id: str, number: int = 0) -> Member:
    return Member(
        id=member_id,
        display_name=f"会员 {member_id}",
        identities=(Identity(IdentityKind.PHONE, f"+86139{number:08d}"),),
        tier=Tier.BRONZE,
        home_store_id=None,
        join_time=START - timedelta(days=100),
        referral_code=f"R{member_id.upper().replace('_', '')}"[:16],
    )


async def store_members(database: AsyncDatabase[Document], *member_ids: str) -> None:
    await database[MEMBERS].insert_many(
        [member_to_document(member(m, n)) for n, m in enumerate(member_ids)]
    )


def fixed_template(template_id: str, **changes: object) -> CouponTemplate:
    values: dict[str, object] = {
        "id": template_id,
        "name": {"zh-Hans": "立减10元", "en": "10 off"},
        "kind": CouponKind.FIXED,
        "amount_off": 1_000,
        "valid_days": 30,
        "create_time": START,
        "scope": CouponScope(),
    }
    values.update(changes)
    return CouponTemplate(**values)  # type: ignore[arg-type]


async def store_template(database: AsyncDatabase[Document], template: CouponTemplate) -> None:
    await database[COUPON_TEMPLATES].insert_one(template_to_document(template))


# -- a member-svc over real gRPC with a clock the test moves -------------------------------


@dataclass
class CouponService:
    stub: member_pb2_grpc.MemberServiceStub
    database: AsyncDatabase[Document]
    clock: Clock
    books: Books


@asynccontextmanager
async def coupon_service(mongo_uri: str) -> AsyncIterator[CouponService]:
    clock = Clock()
    built: list[Books] = []

    def register(server: grpc.aio.Server, context: ServiceContext) -> None:
        books = app.books_for(context, clock)
        built.append(books)
        member_pb2_grpc.add_MemberServiceServicer_to_server(MemberServicer(books), server)

    settings = MemberSettings(
        mongodb_uri=mongo_uri, database=unique_name("member_coupons"), worker_interval_seconds=0
    )
    async with (
        running_service(
            app.NAME, settings, app.SERVICE_NAMES, register, app.on_ready, app.on_stop
        ) as host,
        channel_to(host) as channel,
    ):
        yield CouponService(
            member_pb2_grpc.MemberServiceStub(channel), host.context.database, clock, built[0]
        )


ADMIN = common_pb2.Actor(kind=common_pb2.ACTOR_KIND_ADMIN, id="admin_1")
CNY = "CNY"


def yuan(amount: float) -> common_pb2.Money:
    return common_pb2.Money(amount=round(amount * 100), currency=CNY)


def stamp(value: datetime) -> Timestamp:
    result = Timestamp()
    result.FromDatetime(value)
    return result


def template_message(**fields: Any) -> member_pb2.CouponTemplate:
    """A valid FIXED ¥10 template (30 days from issue) with `fields` changed."""
    values: dict[str, Any] = {
        "name": common_pb2.LocalizedText(values={"zh-Hans": "立减10元", "en": "10 off"}),
        "kind": member_pb2.COUPON_KIND_FIXED,
        "amount_off": yuan(10),
        "valid_days": 30,
        "combinable_with_points": True,
    }
    values.update(fields)
    return member_pb2.CouponTemplate(**values)


async def create_template(
    service: CouponService,
    request_id: str,
    actor: common_pb2.Actor = ADMIN,
    **fields: Any,
) -> member_pb2.CouponTemplate:
    reply = await service.stub.CreateCouponTemplate(
        member_pb2.CreateCouponTemplateRequest(
            template=template_message(**fields), request_id=request_id, actor=actor
        )
    )
    return reply.template


async def failure(call: Awaitable[object]) -> RpcErrorDetails:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return RpcErrorDetails.from_rpc_error(caught.value)


def fields_of(details: RpcErrorDetails) -> set[str]:
    return {v.field for v in details.violations}


def line(
    sku_id: str, total: float, *categories: str, quantity: int = 1
) -> member_pb2.EvaluationLine:
    return member_pb2.EvaluationLine(
        sku_id=sku_id, category_ids=categories, quantity=quantity, line_total=yuan(total)
    )


async def snapshot(
    database: AsyncDatabase[Document], *collections: str
) -> dict[str, list[Document]]:
    """Every document of the collections, to show that a refused request changed nothing."""
    return {name: await database[name].find({}).sort("_id", 1).to_list() for name in collections}
