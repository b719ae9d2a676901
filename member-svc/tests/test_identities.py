"""Identity rules: canonical spellings, the unique key, and the identity documents."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from member_svc.convert import KIND_TO_PROTO, member_to_proto
from member_svc.demo_data import demo_members
from member_svc.domain import Identity, IdentityKind, Member, Tier
from member_svc.identities import IdentityError, identity_key, normalize, normalize_value
from member_svc.repository import (
    identity_documents,
    identity_to_document,
    member_from_document,
    member_to_document,
)
from retail.member.v1 import member_pb2

PHONE = IdentityKind.PHONE


@pytest.mark.parametrize(
    "spelling",
    [
        "+8613800138000",
        "13800138000",
        "138 0013 8000",
        "138-0013-8000",
        "+86 138 0013 8000",
        "+86 (138) 0013-8000",
        "8613800138000",
        "008613800138000",
        "  13800138000\t",
    ],
)
def test_mainland_mobile_numbers_become_e164(spelling: str) -> None:
    assert normalize_value(PHONE, spelling) == "+8613800138000"


@pytest.mark.parametrize(
    ("spelling", "canonical"),
    [("+85291234567", "+85291234567"), ("+1 (415) 555-0100", "+14155550100")],
)
def test_other_countries_keep_their_code(spelling: str, canonical: str) -> None:
    assert normalize_value(PHONE, spelling) == canonical


@pytest.mark.parametrize(
    "value",
    ["", "   ", "abc", "12345", "+0123456789", "+1234567890123456", "138001380001", "1380013800"],
)
def test_anything_else_is_not_a_phone_number(value: str) -> None:
    with pytest.raises(IdentityError):
        normalize_value(PHONE, value)


def test_identity_errors_never_repeat_the_value() -> None:
    with pytest.raises(IdentityError) as caught:
        normalize_value(PHONE, "555-SECRET")
    assert "SECRET" not in str(caught.value)


@pytest.mark.parametrize(
    "kind", [IdentityKind.WECHAT_UNIONID, IdentityKind.WECHAT_OPENID, IdentityKind.APP_ACCOUNT]
)
def test_opaque_ids_keep_their_case_and_lose_outer_whitespace(kind: IdentityKind) -> None:
    assert normalize_value(kind, "  o6_AbC-123 ") == "o6_AbC-123"


@pytest.mark.parametrize("value", ["", "has space", "中文", "x" * 129])
def test_opaque_ids_refuse_blanks_spaces_and_oversize(value: str) -> None:
    with pytest.raises(IdentityError):
        normalize_value(IdentityKind.WECHAT_OPENID, value)


def test_identity_key_is_kind_and_canonical_value() -> None:
    assert identity_key(Identity(PHONE, "138 0013 8000")) == "phone:+8613800138000"
    assert identity_key(Identity(IdentityKind.WECHAT_UNIONID, "o6_x")) == "wechat_unionid:o6_x"
    assert normalize(Identity(PHONE, "13800138000")) == Identity(PHONE, "+8613800138000")


def test_identity_document_points_to_the_member() -> None:
    doc = identity_to_document(Identity(PHONE, "13800138000"), "m_0001")
    assert doc == {
        "_id": "phone:+8613800138000",
        "kind": "phone",
        "value": "+8613800138000",
        "member_id": "m_0001",
    }


def _member(member_id: str, *identities: Identity) -> Member:
    return Member(
        id=member_id,
        display_name="x",
        identities=identities,
        tier=Tier.BRONZE,
        home_store_id=None,
        tags=(),
        join_time=datetime(2026, 1, 1, tzinfo=UTC),
        referral_code=member_id.upper(),
    )


def test_an_identity_claimed_by_two_members_is_refused() -> None:
    first = _member("m_1", Identity(PHONE, "+8613800138000"))
    second = _member("m_2", Identity(PHONE, "138 0013 8000"))
    with pytest.raises(ValueError, match="already belongs to m_1"):
        identity_documents([first, second])


def test_the_same_identity_listed_twice_on_one_member_is_one_document() -> None:
    member = _member("m_1", Identity(PHONE, "+8613800138000"), Identity(PHONE, "13800138000"))
    assert [d["_id"] for d in identity_documents([member])] == ["phone:+8613800138000"]


def test_every_demo_member_survives_the_document_round_trip() -> None:
    for member in demo_members():
        assert member_from_document(member_to_document(member)) == member


def test_every_demo_identity_gets_its_own_document() -> None:
    members = demo_members()
    docs = identity_documents(members)
    assert len(docs) == sum(len(m.identities) for m in members)
    # The demo already spells phone numbers canonically, so the key is the stored value.
    for member in members:
        for item in member.identities:
            assert normalize(item) == item


def test_every_identity_kind_has_a_proto_value_of_the_same_name() -> None:
    assert set(KIND_TO_PROTO) == set(IdentityKind)
    for kind, number in KIND_TO_PROTO.items():
        assert member_pb2.IdentityKind.Name(number) == f"IDENTITY_KIND_{kind.name}"
    assert len(member_pb2.IdentityKind.values()) == len(KIND_TO_PROTO) + 1


def test_every_demo_member_converts_to_proto() -> None:
    for member in demo_members():
        message = member_to_proto(member, member.join_time)
        assert message.tier == member.tier.value
        assert message.home_store_id == (member.home_store_id or "")
