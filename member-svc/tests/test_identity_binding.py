"""Verification codes, BindIdentity, UpdateMemberProfile and ListMemberAudit over real gRPC."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from datetime import timedelta

import grpc
import pytest

from member_svc.repository import IDENTITIES, MEMBERS
from member_svc.verification import VERIFICATION_CODES
from retail.common.v1 import common_pb2
from retail.member.v1 import member_pb2
from retail_kit.errors import RpcErrorDetails

from .identity_support import (
    ADMIN,
    IdentityService,
    audit_actions,
    code_for,
    customer,
    enrol,
    failure,
    fields_of,
    identity_service,
    phone,
    snapshot,
    unionid,
)

_numbers = itertools.count(1)


def new_phone() -> str:
    return f"137{next(_numbers):08d}"


def new_unionid() -> member_pb2.Identity:
    return unionid(f"o6_bind_{next(_numbers):06d}")


@pytest.fixture(scope="module")
async def service(mongo_uri: str) -> AsyncIterator[IdentityService]:
    async with identity_service(mongo_uri) as running:
        yield running


async def new_member(service: IdentityService) -> member_pb2.Member:
    """A member enrolled in the mini-program by WeChat."""
    reply = await enrol(service, new_unionid(), channel=common_pb2.CHANNEL_MINI_PROGRAM)
    return reply.member


def bind(
    member_id: str,
    identity: member_pb2.Identity,
    code: str = "",
    actor: common_pb2.Actor | None = None,
) -> member_pb2.BindIdentityRequest:
    return member_pb2.BindIdentityRequest(
        member_id=member_id,
        identity=identity,
        verification_code=code,
        actor=actor or customer(member_id),
    )


async def member_doc(service: IdentityService, member_id: str) -> dict[str, object] | None:
    return await service.database[MEMBERS].find_one({"_id": member_id})


# ---- verification codes ----------------------------------------------------------------------


async def test_a_code_is_six_digits_expires_in_ten_minutes_and_is_stored_hashed(
    service: IdentityService,
) -> None:
    number = new_phone()
    reply = await service.stub.RequestIdentityVerification(
        member_pb2.RequestIdentityVerificationRequest(identity=phone(number))
    )
    assert reply.debug_code.isdigit() and len(reply.debug_code) == 6
    expires = reply.expire_time.ToDatetime(tzinfo=service.clock().tzinfo)
    assert expires == service.clock() + timedelta(minutes=10)
    stored = await service.database[VERIFICATION_CODES].find_one({"_id": f"phone:+86{number}"})
    assert stored is not None
    assert reply.debug_code not in str(stored)


async def test_codes_are_not_returned_unless_the_service_exposes_them(mongo_uri: str) -> None:
    async with identity_service(mongo_uri, expose_codes=False) as quiet:
        reply = await quiet.stub.RequestIdentityVerification(
            member_pb2.RequestIdentityVerificationRequest(identity=phone(new_phone()))
        )
        assert reply.debug_code == ""
        assert reply.HasField("expire_time")


async def test_a_new_code_can_be_requested_once_a_minute(service: IdentityService) -> None:
    number = phone(new_phone())
    first = await code_for(service, number)
    service.clock.advance(seconds=20)
    details = await failure(
        service.stub.RequestIdentityVerification(
            member_pb2.RequestIdentityVerificationRequest(identity=number)
        )
    )
    assert details.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert details.reason == "RATE_LIMITED"
    assert details.metadata["retry_after_seconds"] == "40"
    service.clock.advance(seconds=40)
    second = await code_for(service, number)
    # The first code is replaced.
    member = await new_member(service)
    if first != second:
        wrong = await failure(service.stub.BindIdentity(bind(member.id, number, first)))
        assert wrong.reason == "VERIFICATION_FAILED"
    bound = await service.stub.BindIdentity(bind(member.id, number, second))
    assert bound.member.id == member.id


async def test_a_bad_identity_is_refused_naming_the_field(service: IdentityService) -> None:
    details = await failure(
        service.stub.RequestIdentityVerification(
            member_pb2.RequestIdentityVerificationRequest(identity=phone("not a phone"))
        )
    )
    assert details.code == grpc.StatusCode.INVALID_ARGUMENT
    assert fields_of(details) == ["identity.value"]


# ---- BindIdentity --------------------------------------------------------------------------------


async def test_binding_with_the_code_adds_the_identity_and_a_replay_changes_nothing(
    service: IdentityService,
) -> None:
    member = await new_member(service)
    number = new_phone()
    code = await code_for(service, phone(number))
    service.clock.advance(seconds=30)
    reply = await service.stub.BindIdentity(bind(member.id, phone(f"+86 {number}"), code))
    assert (member_pb2.IDENTITY_KIND_PHONE, f"+86{number}") in [
        (i.kind, i.value) for i in reply.member.identities
    ]
    found = await service.stub.GetMemberByIdentity(
        member_pb2.GetMemberByIdentityRequest(identity=phone(number))
    )
    assert found.member.id == member.id
    assert (await audit_actions(service, member.id))[0] == "identity_bound"
    # The code is used up; a replay finds the identity on the member and changes nothing.
    assert (
        await service.database[VERIFICATION_CODES].find_one({"_id": f"phone:+86{number}"}) is None
    )
    before = await snapshot(service.database)
    again = await service.stub.BindIdentity(bind(member.id, phone(number), code))
    assert again.member == reply.member
    assert await snapshot(service.database) == before


async def test_a_wrong_code_is_verification_failed_and_changes_nothing(
    service: IdentityService,
) -> None:
    member = await new_member(service)
    number = phone(new_phone())
    code = await code_for(service, number)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    before = await snapshot(service.database)
    details = await failure(service.stub.BindIdentity(bind(member.id, number, wrong)))
    assert details.code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.reason == "VERIFICATION_FAILED"
    assert fields_of(details) == ["verification_code"]
    assert details.metadata["attempts_left"] == "4"
    assert await snapshot(service.database) == before


async def test_five_wrong_codes_lock_the_code_until_a_new_one_is_requested(
    service: IdentityService,
) -> None:
    member = await new_member(service)
    number = phone(new_phone())
    code = await code_for(service, number)
    wrong = f"{(int(code) + 7) % 1_000_000:06d}"
    for _ in range(5):
        details = await failure(service.stub.BindIdentity(bind(member.id, number, wrong)))
        assert details.reason == "VERIFICATION_FAILED"
    locked = await failure(service.stub.BindIdentity(bind(member.id, number, code)))
    assert locked.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert locked.reason == "RATE_LIMITED"
    assert (await member_doc(service, member.id)) is not None
    assert await service.database[IDENTITIES].find_one({"value": number.value}) is None
    service.clock.advance(seconds=61)
    fresh = await code_for(service, number)
    bound = await service.stub.BindIdentity(bind(member.id, number, fresh))
    assert bound.member.id == member.id


async def test_concurrent_guesses_get_at_most_five_comparisons(
    service: IdentityService,
) -> None:
    member = await new_member(service)
    number = phone(new_phone())
    code = await code_for(service, number)
    wrongs = [f"{(int(code) + k) % 1_000_000:06d}" for k in range(1, 21)]
    results = await asyncio.gather(
        *(service.stub.BindIdentity(bind(member.id, number, w)) for w in wrongs),
        return_exceptions=True,
    )
    reasons = [
        RpcErrorDetails.from_rpc_error(r).reason
        for r in results
        if isinstance(r, grpc.aio.AioRpcError)
    ]
    assert len(reasons) == 20
    assert reasons.count("VERIFICATION_FAILED") <= 5
    assert reasons.count("RATE_LIMITED") >= 15
    locked = await failure(service.stub.BindIdentity(bind(member.id, number, code)))
    assert locked.reason == "RATE_LIMITED"


async def test_an_expired_code_is_refused(service: IdentityService) -> None:
    member = await new_member(service)
    number = phone(new_phone())
    code = await code_for(service, number)
    service.clock.advance(minutes=10, seconds=1)
    details = await failure(service.stub.BindIdentity(bind(member.id, number, code)))
    assert details.code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.reason == "EXPIRED"
    assert fields_of(details) == ["verification_code"]


async def test_an_identity_of_another_member_names_it_and_the_code_stays_valid(
    service: IdentityService,
) -> None:
    number = new_phone()
    counter = await enrol(service, phone(number), store_id="st_001", associate_id="as_001")
    online = await new_member(service)
    code = await code_for(service, phone(number))
    before = await snapshot(service.database)
    details = await failure(service.stub.BindIdentity(bind(online.id, phone(number), code)))
    assert details.code == grpc.StatusCode.ALREADY_EXISTS
    assert details.reason == "IDENTITY_BOUND_ELSEWHERE"
    assert details.metadata == {"member_id": counter.member.id}
    assert await snapshot(service.database) == before
    # Still valid: the merge that follows proves the identity with it.
    stored = await service.database[VERIFICATION_CODES].find_one({"_id": f"phone:+86{number}"})
    assert stored is not None and stored["attempts"] == 0


async def test_a_wrong_code_never_tells_who_owns_the_identity(service: IdentityService) -> None:
    number = new_phone()
    await enrol(service, phone(number))
    online = await new_member(service)
    code = await code_for(service, phone(number))
    wrong = f"{(int(code) + 3) % 1_000_000:06d}"
    details = await failure(service.stub.BindIdentity(bind(online.id, phone(number), wrong)))
    assert details.reason == "VERIFICATION_FAILED"
    assert "member_id" not in details.metadata


async def test_an_admin_binds_without_a_code(service: IdentityService) -> None:
    member = await new_member(service)
    number = phone(new_phone())
    reply = await service.stub.BindIdentity(bind(member.id, number, actor=ADMIN))
    assert number.value in [i.value.removeprefix("+86") for i in reply.member.identities]


async def test_concurrent_binds_of_one_identity_to_many_members_bind_it_once(
    service: IdentityService,
) -> None:
    members = [await new_member(service) for _ in range(8)]
    number = phone(new_phone())
    results = await asyncio.gather(
        *(service.stub.BindIdentity(bind(m.id, number, actor=ADMIN)) for m in members),
        return_exceptions=True,
    )
    won = [r for r in results if isinstance(r, member_pb2.BindIdentityResponse)]
    assert len(won) == 1
    winner = won[0].member.id
    for result in results:
        if isinstance(result, grpc.aio.AioRpcError):
            details = RpcErrorDetails.from_rpc_error(result)
            assert details.reason == "IDENTITY_BOUND_ELSEWHERE"
            assert details.metadata["member_id"] == winner
    listing = await service.database[MEMBERS].count_documents(
        {"identities.value": f"+86{number.value}"}
    )
    assert listing == 1


@pytest.mark.parametrize(
    ("request_fields", "fields"),
    [
        (
            {"member_id": "", "identity": phone("13700000000"), "verification_code": "1"},
            ["member_id"],
        ),
        (
            {"member_id": "m_x", "identity": phone("123"), "verification_code": "1"},
            ["identity.value"],
        ),
        ({"member_id": "m_x", "identity": phone("13700000000")}, ["verification_code"]),
    ],
    ids=["no-member", "bad-identity", "no-code"],
)
async def test_a_bad_bind_request_names_its_fields(
    service: IdentityService, request_fields: dict[str, object], fields: list[str]
) -> None:
    details = await failure(
        service.stub.BindIdentity(
            member_pb2.BindIdentityRequest(actor=customer("m_x"), **request_fields)  # type: ignore[arg-type]
        )
    )
    assert details.code == grpc.StatusCode.INVALID_ARGUMENT
    assert fields_of(details) == fields


async def test_binding_to_an_unknown_member_is_not_found(service: IdentityService) -> None:
    details = await failure(
        service.stub.BindIdentity(bind("m_nobody", phone(new_phone()), actor=ADMIN))
    )
    assert details.code == grpc.StatusCode.NOT_FOUND
    assert details.metadata == {"entity": "member", "id": "m_nobody"}


# ---- profile and audit ------------------------------------------------------------------


def profile(member_id: str, **fields: object) -> member_pb2.UpdateMemberProfileRequest:
    return member_pb2.UpdateMemberProfileRequest(
        member_id=member_id,
        actor=fields.pop("actor", customer(member_id)),
        **fields,  # type: ignore[arg-type]
    )


async def test_profile_and_consent_are_updated_and_audited(service: IdentityService) -> None:
    member = await new_member(service)
    service.clock.advance(minutes=1)
    reply = await service.stub.UpdateMemberProfile(
        profile(
            member.id,
            display_name="  赵晓雯 ",
            birthday="02-29",
            update_consent=True,
            marketing_consent=True,
            accept_privacy_notice=True,
        )
    )
    updated = reply.member
    assert (updated.display_name, updated.birthday) == ("赵晓雯", "02-29")
    assert updated.consent.marketing
    now = service.clock()
    assert updated.consent.privacy_accept_time.ToDatetime(tzinfo=now.tzinfo) == now
    audit = await service.stub.ListMemberAudit(
        member_pb2.ListMemberAuditRequest(member_id=member.id)
    )
    by_action = {entry.action: entry for entry in audit.entries}
    assert dict(by_action["profile_updated"].details) == {
        "display_name": "赵晓雯",
        "birthday": "02-29",
    }
    assert dict(by_action["consent_updated"].details) == {
        "marketing": "true",
        "privacy_notice": "accepted",
    }
    assert by_action["consent_updated"].actor.kind == common_pb2.ACTOR_KIND_CUSTOMER
    # Withdrawing marketing consent, and a replay of it: one more entry.
    service.clock.advance(minutes=1)
    for _ in range(2):
        off = await service.stub.UpdateMemberProfile(
            profile(member.id, update_consent=True, marketing_consent=False)
        )
        assert not off.member.consent.marketing
        assert off.member.consent.HasField("privacy_accept_time")
    assert (await audit_actions(service, member.id)).count("consent_updated") == 2


async def test_consent_flags_are_left_alone_without_update_consent(
    service: IdentityService,
) -> None:
    member = await new_member(service)
    await service.stub.UpdateMemberProfile(
        profile(member.id, update_consent=True, marketing_consent=True)
    )
    reply = await service.stub.UpdateMemberProfile(profile(member.id, display_name="周明远"))
    assert reply.member.consent.marketing


async def test_the_birthday_is_set_once_except_by_an_admin(service: IdentityService) -> None:
    member = await new_member(service)
    await service.stub.UpdateMemberProfile(profile(member.id, birthday="03-14"))
    same = await service.stub.UpdateMemberProfile(profile(member.id, birthday="03-14"))
    assert same.member.birthday == "03-14"
    before = await snapshot(service.database)
    details = await failure(
        service.stub.UpdateMemberProfile(profile(member.id, birthday="03-15", display_name="x"))
    )
    assert details.code == grpc.StatusCode.FAILED_PRECONDITION
    assert details.reason == "INVALID_STATE"
    assert fields_of(details) == ["birthday"]
    assert await snapshot(service.database) == before
    fixed = await service.stub.UpdateMemberProfile(
        profile(member.id, birthday="03-15", actor=ADMIN)
    )
    assert fixed.member.birthday == "03-15"


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"birthday": "13-01"}, ["birthday"]),
        ({"birthday": "02-30"}, ["birthday"]),
        ({"birthday": "1990-01-01"}, ["birthday"]),
        ({"display_name": "x" * 33, "birthday": "3-1"}, ["display_name", "birthday"]),
        ({"display_name": "a\x07b"}, ["display_name"]),
    ],
    ids=["month-13", "feb-30", "with-year", "long-name-and-bad-birthday", "control-char"],
)
async def test_bad_profile_values_name_their_fields_and_change_nothing(
    service: IdentityService, fields: dict[str, str], named: list[str]
) -> None:
    member = await new_member(service)
    before = await snapshot(service.database)
    details = await failure(service.stub.UpdateMemberProfile(profile(member.id, **fields)))
    assert details.code == grpc.StatusCode.INVALID_ARGUMENT
    assert fields_of(details) == named
    assert await snapshot(service.database) == before


async def test_the_audit_trail_pages_newest_first(service: IdentityService) -> None:
    member = await new_member(service)
    for name in ("一", "二", "三", "四", "五"):
        service.clock.advance(seconds=1)
        await service.stub.UpdateMemberProfile(profile(member.id, display_name=name))
    seen: list[str] = []
    token = first_token = ""
    while True:
        page = await service.stub.ListMemberAudit(
            member_pb2.ListMemberAuditRequest(member_id=member.id, page_size=2, page_token=token)
        )
        assert len(page.entries) <= 2
        seen += [e.details.get("display_name", e.action) for e in page.entries]
        token = page.next_page_token
        first_token = first_token or token
        if not token:
            break
    assert seen == ["五", "四", "三", "二", "一", "enrolled"]
    other = await new_member(service)
    for bad in (first_token, "bm9wZQ"):  # another member's token; not a token at all
        details = await failure(
            service.stub.ListMemberAudit(
                member_pb2.ListMemberAuditRequest(member_id=other.id, page_token=bad)
            )
        )
        assert details.code == grpc.StatusCode.INVALID_ARGUMENT
        assert details.reason == "INVALID_PAGE_TOKEN"
    unknown = await failure(
        service.stub.ListMemberAudit(member_pb2.ListMemberAuditRequest(member_id="m_nobody"))
    )
    assert unknown.code == grpc.StatusCode.NOT_FOUND
