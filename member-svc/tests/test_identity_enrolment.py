"""EnsureMember (payment = membership) over real gRPC against the embedded database."""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import AsyncIterator

import grpc
import pytest

from member_svc.domain import Channel, Identity, IdentityKind
from member_svc.identity_book import INVITE_ALPHABET, Enrolment, IdentityBook
from member_svc.repository import IDENTITIES, MEMBERS
from retail.common.v1 import common_pb2
from retail.member.v1 import member_pb2

from .identity_support import (
    IdentityService,
    audit_actions,
    enrol,
    failure,
    fields_of,
    identity_service,
    phone,
    snapshot,
    unionid,
)

_numbers = itertools.count(1)
SPELLINGS = ("{n}", "+86 {a} {b} {c}", "{a}-{b}-{c}", "0086{n}", "+86{n}")


def new_phone() -> str:
    return f"139{next(_numbers):08d}"


def spell(number: str, index: int) -> str:
    template = SPELLINGS[index % len(SPELLINGS)]
    return template.format(n=number, a=number[:3], b=number[3:7], c=number[7:])


@pytest.fixture(scope="module")
async def service(mongo_uri: str) -> AsyncIterator[IdentityService]:
    async with identity_service(mongo_uri) as running:
        yield running


async def test_fifty_concurrent_calls_with_one_phone_make_one_member(
    service: IdentityService,
) -> None:
    number = new_phone()
    replies = await asyncio.gather(
        *(
            enrol(service, phone(spell(number, i)), store_id="st_001", display_name="王雨桐")
            for i in range(50)
        )
    )
    assert sum(reply.created for reply in replies) == 1
    assert {reply.member.id for reply in replies} == {replies[0].member.id}
    member = replies[0].member
    stored = await service.database[MEMBERS].count_documents({"identities.value": f"+86{number}"})
    claims = await service.database[IDENTITIES].count_documents({"value": f"+86{number}"})
    assert (stored, claims) == (1, 1)
    assert [(i.kind, i.value) for i in member.identities] == [
        (member_pb2.IDENTITY_KIND_PHONE, f"+86{number}")
    ]
    assert member.display_name == "王雨桐"
    assert member.join_channel == common_pb2.CHANNEL_POS
    assert member.join_store_id == member.home_store_id == "st_001"
    assert member.tier == "bronze"
    assert re.fullmatch(f"[{INVITE_ALPHABET}]{{8}}", member.referral_code)
    assert await audit_actions(service, member.id) == ["enrolled"]


async def test_a_replay_finds_the_member_and_writes_nothing(service: IdentityService) -> None:
    number = new_phone()
    first = await enrol(service, phone(number), display_name="李浩然")
    before = await snapshot(service.database)
    service.clock.advance(minutes=5)
    again = await enrol(service, phone(spell(number, 1)), display_name="someone else")
    assert first.created and not again.created
    assert again.member == first.member
    assert await snapshot(service.database) == before


async def test_a_claim_whose_member_was_never_written_is_completed_by_the_next_call(
    service: IdentityService,
) -> None:
    """A crash between the claim and the member insert: lookups do not see the claim, and
    the next EnsureMember inserts the member with the claimed id and the claimed data."""
    number = new_phone()
    joined = service.clock()
    enrolment = Enrolment("张思琪", Channel.KIOSK, "st_014", None, False, joined)
    claim = await IdentityBook(service.books).claim(
        Identity(IdentityKind.PHONE, f"+86{number}"), enrolment
    )
    lost = await failure(
        service.stub.GetMemberByIdentity(
            member_pb2.GetMemberByIdentityRequest(identity=phone(number))
        )
    )
    assert lost.code == grpc.StatusCode.NOT_FOUND
    service.clock.advance(hours=1)
    reply = await enrol(service, phone(number), store_id="st_002", display_name="later")
    assert reply.created
    assert reply.member.id == claim["member_id"]
    assert reply.member.display_name == "张思琪"
    assert reply.member.join_store_id == "st_014"
    assert reply.member.join_channel == common_pb2.CHANNEL_KIOSK
    assert reply.member.join_time.ToDatetime(tzinfo=joined.tzinfo) == joined
    found = await service.stub.GetMemberByIdentity(
        member_pb2.GetMemberByIdentityRequest(identity=phone(number))
    )
    assert found.member.id == claim["member_id"]


async def test_an_invite_code_taken_by_another_member_is_drawn_again(
    service: IdentityService,
) -> None:
    taken = (await enrol(service, phone(new_phone()))).member.referral_code
    codes = iter([taken, taken, "QQQQ2345"])
    book = IdentityBook(service.books)
    book.invite_codes = lambda: next(codes)
    enrolment = Enrolment("", None, None, None, False, service.clock())
    claim = await book.claim(Identity(IdentityKind.PHONE, f"+86{new_phone()}"), enrolment)
    member, created = await book.complete(claim, enrolment)
    assert created
    assert member.referral_code == "QQQQ2345"
    assert next(codes, None) is None


async def test_invite_codes_are_unique(service: IdentityService) -> None:
    replies = await asyncio.gather(*(enrol(service, phone(new_phone())) for _ in range(30)))
    codes = {reply.member.referral_code for reply in replies}
    assert len(codes) == 30


async def test_an_associate_enrolling_becomes_the_exclusive_guide(
    service: IdentityService,
) -> None:
    number = new_phone()
    reply = await enrol(service, phone(number), store_id="st_001", associate_id="as_001")
    assert reply.created and reply.associate_bound
    guide = reply.member.associate
    assert (guide.associate_id, guide.store_id) == ("as_001", "st_001")
    assert sorted(await audit_actions(service, reply.member.id)) == [
        "associate_assigned",
        "enrolled",
    ]
    # Another associate later: the member keeps the first guide.
    other = await enrol(service, phone(number), store_id="st_002", associate_id="as_002")
    assert not other.created and not other.associate_bound
    assert other.member.associate.associate_id == "as_001"


async def test_a_member_without_a_guide_gets_exactly_one_of_many_concurrent_associates(
    service: IdentityService,
) -> None:
    number = new_phone()
    first = await enrol(service, phone(number), channel=common_pb2.CHANNEL_MINI_PROGRAM)
    assert not first.member.HasField("associate")
    replies = await asyncio.gather(
        *(
            enrol(service, phone(number), store_id="st_003", associate_id=f"as_{i:03d}")
            for i in range(10)
        )
    )
    bound = [reply for reply in replies if reply.associate_bound]
    assert len(bound) == 1
    winner = bound[0].member.associate.associate_id
    final = await service.stub.GetMember(member_pb2.GetMemberRequest(id=first.member.id))
    assert final.member.associate.associate_id == winner
    assert (await audit_actions(service, first.member.id)).count("associate_assigned") == 1


async def test_marketing_consent_at_enrolment_is_set_and_never_cleared(
    service: IdentityService,
) -> None:
    number = new_phone()
    first = await enrol(service, phone(number))
    assert not first.member.consent.marketing
    given = await enrol(service, phone(number), marketing_consent=True)
    assert given.member.consent.marketing
    assert given.member.consent.HasField("update_time")
    again = await enrol(service, phone(number), marketing_consent=False)
    assert again.member.consent.marketing
    assert (await audit_actions(service, first.member.id)).count("consent_updated") == 1
    new = await enrol(service, phone(new_phone()), marketing_consent=True)
    assert new.created and new.member.consent.marketing


async def test_a_wechat_enrolment_gets_a_default_name(service: IdentityService) -> None:
    reply = await enrol(
        service, unionid(f"o6_enrol{next(_numbers)}"), channel=common_pb2.CHANNEL_MINI_PROGRAM
    )
    assert reply.created
    assert reply.member.display_name == "会员"
    by_phone = await enrol(service, phone("13912348000"))
    assert by_phone.member.display_name == "会员8000"


@pytest.mark.parametrize(
    ("request_fields", "fields"),
    [
        ({"identity": phone("call me")}, ["identity.value"]),
        ({"identity": phone("")}, ["identity.value"]),
        ({"identity": member_pb2.Identity(value="13800138000")}, ["identity.kind"]),
        ({"identity": unionid("has space")}, ["identity.value"]),
        (
            {"identity": phone("12345"), "associate_id": "as_001"},
            ["identity.value", "store_id"],
        ),
        ({"identity": phone("13800000000"), "store_id": "st 1"}, ["store_id"]),
        ({"identity": phone("13800000000"), "channel": 42}, ["channel"]),
        ({"identity": phone("13800000000"), "display_name": "名" * 33}, ["display_name"]),
    ],
    ids=[
        "not-a-phone",
        "empty",
        "no-kind",
        "bad-unionid",
        "guide-without-store",
        "bad-store",
        "bad-channel",
        "long-name",
    ],
)
async def test_a_bad_request_names_its_fields_and_writes_nothing(
    service: IdentityService, request_fields: dict[str, object], fields: list[str]
) -> None:
    before = await snapshot(service.database)
    details = await failure(
        service.stub.EnsureMember(member_pb2.EnsureMemberRequest(**request_fields))  # type: ignore[arg-type]
    )
    assert details.code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.reason == "INVALID_ARGUMENT"
    assert fields_of(details) == fields
    assert await snapshot(service.database) == before
