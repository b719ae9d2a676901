"""Shared helpers of the identity tests: a service on its own database with a hand-moved
clock, the stub and the books over the same database, and small request builders."""

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
from member_svc.audit import MEMBER_AUDIT
from member_svc.books import Books, build_books
from member_svc.repository import IDENTITIES, MEMBERS
from member_svc.servicer import MemberServicer
from member_svc.settings import MemberSettings
from member_svc.tags import TAG_DEFINITIONS
from retail.common.v1 import common_pb2
from retail.member.v1 import member_pb2, member_pb2_grpc
from retail_kit.errors import RpcErrorDetails
from retail_kit.mongo import Document
from retail_kit.server import ServiceContext
from retail_kit.testing import channel_to, running_service, unique_name

START = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
PHONE = member_pb2.IDENTITY_KIND_PHONE
UNIONID = member_pb2.IDENTITY_KIND_WECHAT_UNIONID
OPENID = member_pb2.IDENTITY_KIND_WECHAT_OPENID
ADMIN = common_pb2.Actor(kind=common_pb2.ACTOR_KIND_ADMIN, id="admin_1")


class Clock:
    """A clock tests move by hand (database times are milliseconds: keep whole ones)."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@dataclass
class IdentityService:
    stub: member_pb2_grpc.MemberServiceStub
    database: AsyncDatabase[Document]
    books: Books
    clock: Clock


@asynccontextmanager
async def identity_service(
    mongo_uri: str, *, expose_codes: bool = True, database: str | None = None
) -> AsyncIterator[IdentityService]:
    clock = Clock()
    settings = MemberSettings(
        mongodb_uri=mongo_uri,
        database=database or unique_name("member_identity"),
        worker_interval_seconds=0,
        expose_verification_codes=expose_codes,
    )

    def register(server: grpc.aio.Server, context: ServiceContext) -> None:
        member_pb2_grpc.add_MemberServiceServicer_to_server(
            MemberServicer(app.books_for(context, clock)), server
        )

    async with (
        running_service(
            app.NAME, settings, app.SERVICE_NAMES, register, app.on_ready, app.on_stop
        ) as host,
        channel_to(host) as channel,
    ):
        database_ = host.context.database
        yield IdentityService(
            member_pb2_grpc.MemberServiceStub(channel),
            database_,
            build_books(database_, settings, clock),
            clock,
        )


def phone(value: str) -> member_pb2.Identity:
    return member_pb2.Identity(kind=PHONE, value=value)


def unionid(value: str) -> member_pb2.Identity:
    return member_pb2.Identity(kind=UNIONID, value=value)


def customer(member_id: str) -> common_pb2.Actor:
    return common_pb2.Actor(kind=common_pb2.ACTOR_KIND_CUSTOMER, id=member_id)


def associate(associate_id: str, store_id: str) -> common_pb2.Actor:
    return common_pb2.Actor(
        kind=common_pb2.ACTOR_KIND_ASSOCIATE, id=associate_id, store_id=store_id
    )


def manager(manager_id: str, store_id: str) -> common_pb2.Actor:
    return common_pb2.Actor(
        kind=common_pb2.ACTOR_KIND_STORE_MANAGER, id=manager_id, store_id=store_id
    )


async def failure(call: Awaitable[Any]) -> RpcErrorDetails:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return RpcErrorDetails.from_rpc_error(caught.value)


def fields_of(details: RpcErrorDetails) -> list[str]:
    return [v.field for v in details.violations]


async def enrol(
    service: IdentityService, identity: member_pb2.Identity, **fields: Any
) -> member_pb2.EnsureMemberResponse:
    return await service.stub.EnsureMember(
        member_pb2.EnsureMemberRequest(
            identity=identity, channel=fields.pop("channel", common_pb2.CHANNEL_POS), **fields
        )
    )


async def snapshot(database: AsyncDatabase[Document]) -> dict[str, list[Document]]:
    """Every document the identity work writes, to show a refused request changed nothing."""
    return {
        name: await database[name].find({}).sort("_id", 1).to_list()
        for name in (MEMBERS, IDENTITIES, MEMBER_AUDIT, TAG_DEFINITIONS, "merges")
    }


async def code_for(service: IdentityService, identity: member_pb2.Identity) -> str:
    reply = await service.stub.RequestIdentityVerification(
        member_pb2.RequestIdentityVerificationRequest(identity=identity)
    )
    assert len(reply.debug_code) == 6
    return reply.debug_code


async def audit_actions(service: IdentityService, member_id: str) -> list[str]:
    reply = await service.stub.ListMemberAudit(
        member_pb2.ListMemberAuditRequest(member_id=member_id, page_size=100)
    )
    return [entry.action for entry in reply.entries]
