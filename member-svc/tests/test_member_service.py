"""member-svc over a real gRPC socket against the embedded database (or MONGODB_URI)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from member_svc import app
from member_svc.domain import Identity, IdentityKind, Member, MemberTag, Tier
from member_svc.repository import (
    IDENTITIES,
    MEMBERS,
    identity_documents,
    identity_to_document,
    member_to_document,
)
from member_svc.settings import MemberSettings
from retail.member.v1 import member_pb2, member_pb2_grpc
from retail_kit.errors import RpcErrorDetails
from retail_kit.testing import channel_to, running_service, unique_name

PHONE = member_pb2.IDENTITY_KIND_PHONE
UNIONID = member_pb2.IDENTITY_KIND_WECHAT_UNIONID
UNIONID_OF_1 = "o6_bmjrPTlm6_2sgVt7hMZOPfL2M"


def make_member(number: int) -> Member:
    identities = [Identity(IdentityKind.PHONE, f"+86138{number:08d}")]
    if number == 1:
        identities.append(Identity(IdentityKind.WECHAT_UNIONID, UNIONID_OF_1))
    return Member(
        id=f"m_{number:04d}",
        display_name=f"会员 {number}",
        identities=tuple(identities),
        tier=Tier.GOLD if number == 1 else Tier.BRONZE,
        home_store_id="st_001" if number == 1 else None,
        tags=tuple(
            MemberTag(tag, "as_st_001_02", "st_001", datetime(2024, 5, 2, tzinfo=UTC))
            for tag in (("coffee_lover", "weekend_shopper") if number == 1 else ())
        ),
        join_time=datetime(2024, 5, number, 8, 30, tzinfo=UTC),
        referral_code=f"REF{number:05d}",
    )


MEMBERS_IN_DB = [make_member(n) for n in range(1, 6)]


def settings_for(mongo_uri: str) -> MemberSettings:
    return MemberSettings(
        mongodb_uri=mongo_uri, database=unique_name("member"), worker_interval_seconds=0
    )


@pytest.fixture(scope="module")
async def members(mongo_uri: str) -> AsyncIterator[member_pb2_grpc.MemberServiceStub]:
    async with running_service(
        app.NAME, settings_for(mongo_uri), app.SERVICE_NAMES, app.register, app.on_ready
    ) as host:
        database = host.context.database
        await database[MEMBERS].insert_many([member_to_document(m) for m in MEMBERS_IN_DB])
        await database[IDENTITIES].insert_many(identity_documents(MEMBERS_IN_DB))
        # An identity whose member was never stored (e.g. a write cut short) finds nobody.
        await database[IDENTITIES].insert_one(
            identity_to_document(Identity(IdentityKind.APP_ACCOUNT, "ghost"), "m_9999")
        )
        async with channel_to(host) as channel:
            yield member_pb2_grpc.MemberServiceStub(channel)


def identity(kind: member_pb2.IdentityKind.ValueType, value: str) -> member_pb2.Identity:
    return member_pb2.Identity(kind=kind, value=value)


async def test_health_reports_serving_for_the_service(mongo_uri: str) -> None:
    async with (
        running_service(
            app.NAME, settings_for(mongo_uri), app.SERVICE_NAMES, app.register, app.on_ready
        ) as host,
        channel_to(host) as channel,
    ):
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "retail.member.v1.MemberService"):
            reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_get_member_returns_every_field(
    members: member_pb2_grpc.MemberServiceStub,
) -> None:
    reply = await members.GetMember(member_pb2.GetMemberRequest(id="m_0001"))
    member = reply.member
    assert member.id == "m_0001"
    assert member.display_name == "会员 1"
    assert [(i.kind, i.value) for i in member.identities] == [
        (PHONE, "+8613800000001"),
        (UNIONID, UNIONID_OF_1),
    ]
    assert member.tier == "gold"
    assert member.home_store_id == "st_001"
    assert list(member.tags) == ["coffee_lover", "weekend_shopper"]
    assert member.join_time.ToDatetime(UTC) == datetime(2024, 5, 1, 8, 30, tzinfo=UTC)
    assert member.referral_code == "REF00001"


async def test_member_without_home_store_has_it_empty(
    members: member_pb2_grpc.MemberServiceStub,
) -> None:
    reply = await members.GetMember(member_pb2.GetMemberRequest(id="m_0002"))
    assert reply.member.home_store_id == ""
    assert list(reply.member.tags) == []


async def test_unknown_member_is_not_found_with_error_info(
    members: member_pb2_grpc.MemberServiceStub,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await members.GetMember(member_pb2.GetMemberRequest(id="m_9999"))
    details = RpcErrorDetails.from_rpc_error(caught.value)
    assert details.code == grpc.StatusCode.NOT_FOUND
    assert details.reason == "NOT_FOUND"
    assert details.metadata == {"entity": "member", "id": "m_9999"}


@pytest.mark.parametrize("bad_id", ["", "m 1", "x" * 200])
async def test_malformed_id_is_invalid_argument_naming_the_field(
    members: member_pb2_grpc.MemberServiceStub, bad_id: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await members.GetMember(member_pb2.GetMemberRequest(id=bad_id))
    details = RpcErrorDetails.from_rpc_error(caught.value)
    assert details.code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.reason == "INVALID_ARGUMENT"
    assert [v.field for v in details.violations] == ["id"]


async def test_batch_get_keeps_request_order_and_lists_missing(
    members: member_pb2_grpc.MemberServiceStub,
) -> None:
    reply = await members.BatchGetMembers(
        member_pb2.BatchGetMembersRequest(ids=["m_0003", "m_0404", "m_0001", "m_0003"])
    )
    assert [m.id for m in reply.members] == ["m_0003", "m_0001"]
    assert list(reply.missing_ids) == ["m_0404"]


async def test_batch_get_names_each_bad_id(members: member_pb2_grpc.MemberServiceStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await members.BatchGetMembers(member_pb2.BatchGetMembersRequest(ids=["", "m_0001"]))
    details = RpcErrorDetails.from_rpc_error(caught.value)
    assert details.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in details.violations] == ["ids[0]"]


async def test_batch_get_refuses_oversized_batches(
    members: member_pb2_grpc.MemberServiceStub,
) -> None:
    ids = [f"m_{n}" for n in range(501)]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await members.BatchGetMembers(member_pb2.BatchGetMembersRequest(ids=ids))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize(
    "spelling",
    ["+8613800000003", "13800000003", "138 0000 0003", "+86 138-0000-0003", "008613800000003"],
)
async def test_member_is_found_by_any_spelling_of_a_phone_number(
    members: member_pb2_grpc.MemberServiceStub, spelling: str
) -> None:
    reply = await members.GetMemberByIdentity(
        member_pb2.GetMemberByIdentityRequest(identity=identity(PHONE, spelling))
    )
    assert reply.member.id == "m_0003"


async def test_member_is_found_by_wechat_unionid(
    members: member_pb2_grpc.MemberServiceStub,
) -> None:
    reply = await members.GetMemberByIdentity(
        member_pb2.GetMemberByIdentityRequest(identity=identity(UNIONID, UNIONID_OF_1))
    )
    assert reply.member.id == "m_0001"
    assert reply.member.tier == "gold"


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        (PHONE, "+8613999999999"),
        (UNIONID, UNIONID_OF_1.lower()),  # WeChat ids are case-sensitive
        (member_pb2.IDENTITY_KIND_WECHAT_OPENID, UNIONID_OF_1),  # same value, other kind
        (member_pb2.IDENTITY_KIND_APP_ACCOUNT, "ghost"),  # points to a member never stored
    ],
    ids=["unknown-phone", "unionid-other-case", "other-kind", "dangling"],
)
async def test_identity_nobody_owns_is_not_found_without_echoing_it(
    members: member_pb2_grpc.MemberServiceStub,
    kind: member_pb2.IdentityKind.ValueType,
    value: str,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await members.GetMemberByIdentity(
            member_pb2.GetMemberByIdentityRequest(identity=identity(kind, value))
        )
    details = RpcErrorDetails.from_rpc_error(caught.value)
    assert details.code == grpc.StatusCode.NOT_FOUND
    assert details.reason == "NOT_FOUND"
    assert details.metadata["entity"] == "member"
    assert value not in details.message
    assert value not in str(dict(details.metadata))


@pytest.mark.parametrize(
    ("request_identity", "fields"),
    [
        (None, ["identity.kind", "identity.value"]),
        (identity(member_pb2.IDENTITY_KIND_UNSPECIFIED, "+8613800000001"), ["identity.kind"]),
        (identity(99, "+8613800000001"), ["identity.kind"]),  # type: ignore[arg-type]
        (identity(PHONE, ""), ["identity.value"]),
        (identity(PHONE, "   "), ["identity.value"]),
        (identity(PHONE, "call me"), ["identity.value"]),
        (identity(PHONE, "12345"), ["identity.value"]),
        (identity(UNIONID, "has space"), ["identity.value"]),
        (identity(UNIONID, "o" * 200), ["identity.value"]),
    ],
    ids=[
        "missing",
        "unspecified-kind",
        "unknown-kind",
        "empty-value",
        "blank-value",
        "not-a-phone",
        "too-short-phone",
        "unionid-with-space",
        "unionid-too-long",
    ],
)
async def test_bad_identity_is_invalid_argument_naming_the_field(
    members: member_pb2_grpc.MemberServiceStub,
    request_identity: member_pb2.Identity | None,
    fields: list[str],
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await members.GetMemberByIdentity(
            member_pb2.GetMemberByIdentityRequest(identity=request_identity)
        )
    details = RpcErrorDetails.from_rpc_error(caught.value)
    assert details.code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.reason == "INVALID_ARGUMENT"
    assert [v.field for v in details.violations] == fields


async def test_ensure_member_finds_a_stored_member_by_any_spelling(
    members: member_pb2_grpc.MemberServiceStub,
) -> None:
    reply = await members.EnsureMember(
        member_pb2.EnsureMemberRequest(identity=identity(PHONE, "138 0000 0004"))
    )
    assert reply.member.id == "m_0004"
    assert not reply.created
