"""Shared helpers of the growth tests (referrals, segments, campaigns): a member-svc over real
gRPC with a clock the test moves, members stored directly, errors read back."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from member_svc import app
from member_svc.books import Books
from member_svc.domain import (
    AssociateBinding,
    Identity,
    IdentityKind,
    Member,
    MemberStatus,
    MemberTag,
    PointsAccount,
    Tier,
)
from member_svc.repository import IDENTITIES, MEMBERS, identity_documents, member_to_document
from member_svc.servicer import MemberServicer
from member_svc.settings import MemberSettings
from retail.common.v1 import common_pb2
from retail.member.v1 import member_pb2_grpc
from retail_kit.errors import RpcErrorDetails
from retail_kit.mongo import Document
from retail_kit.server import ServiceContext
from retail_kit.testing import channel_to, running_service, unique_name

NOW = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
DAY = timedelta(days=1)

ADMIN = common_pb2.Actor(kind=common_pb2.ACTOR_KIND_ADMIN, id="admin_1")


def manager_of(store_id: str) -> common_pb2.Actor:
    return common_pb2.Actor(
        kind=common_pb2.ACTOR_KIND_STORE_MANAGER, id=f"mgr_{store_id}", store_id=store_id
    )


class Clock:
    """A clock tests move by hand."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


_numbers = iter(range(1, 10**9))


def member(
    member_id: str,
    *,
    join_days_ago: float = 400,
    purchase_days_ago: float | None = None,
    home_store_id: str | None = "st_001",
    tags: tuple[str, ...] = (),
    tier: Tier = Tier.BRONZE,
    points: int = 0,
    associate_id: str | None = None,
    status: MemberStatus = MemberStatus.ACTIVE,
    merged_into: str | None = None,
    referred_by: str | None = None,
    code: str | None = None,
) -> Member:
    number = next(_numbers)
    join_time = NOW - timedelta(days=join_days_ago)
    return Member(
        id=member_id,
        display_name=f"会员 {member_id}",
        identities=(Identity(IdentityKind.PHONE, f"+86137{number:08d}"),),
        tier=tier,
        home_store_id=home_store_id,
        join_time=join_time,
        referral_code=code or f"INV{member_id.upper().replace('_', '')}",
        status=status,
        merged_into=merged_into,
        tags=tuple(MemberTag(t, "seed", home_store_id, join_time) for t in tags),
        associate=(
            AssociateBinding(associate_id, home_store_id or "st_001", join_time)
            if associate_id
            else None
        ),
        points=PointsAccount(total=points),
        last_purchase_time=(
            NOW - timedelta(days=purchase_days_ago) if purchase_days_ago is not None else None
        ),
        referred_by=referred_by,
    )


async def store(database: AsyncDatabase[Document], *members: Member) -> None:
    await database[MEMBERS].insert_many([member_to_document(m) for m in members])
    await database[IDENTITIES].insert_many(identity_documents(members))


@dataclass
class GrowthService:
    stub: member_pb2_grpc.MemberServiceStub
    database: AsyncDatabase[Document]
    clock: Clock
    context: ServiceContext

    def books(self) -> Books:
        """A fresh set of books on the service's database: another "replica" (its own
        campaign runner with its own lease owner)."""
        return app.books_for(self.context, self.clock)


@asynccontextmanager
async def growth_service(
    mongo_uri: str, clock: Clock | None = None
) -> AsyncIterator[GrowthService]:
    clock = clock or Clock()

    def register(server: grpc.aio.Server, context: ServiceContext) -> None:
        member_pb2_grpc.add_MemberServiceServicer_to_server(
            MemberServicer(app.books_for(context, clock)), server
        )

    settings = MemberSettings(
        mongodb_uri=mongo_uri, database=unique_name("member"), worker_interval_seconds=0
    )
    async with (
        running_service(
            app.NAME, settings, app.SERVICE_NAMES, register, app.on_ready, app.on_stop
        ) as host,
        channel_to(host) as channel,
    ):
        yield GrowthService(
            member_pb2_grpc.MemberServiceStub(channel),
            host.context.database,
            clock,
            host.context,
        )


async def error_of(call: Awaitable[Any]) -> RpcErrorDetails:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return RpcErrorDetails.from_rpc_error(caught.value)
