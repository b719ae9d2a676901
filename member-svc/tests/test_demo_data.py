"""The demo members are deterministic and their identities are unique."""

from __future__ import annotations

import re

from member_svc.demo_data import demo_members
from member_svc.domain import IdentityKind


def test_two_calls_return_equal_data() -> None:
    assert demo_members() == demo_members()


def test_count_and_ids() -> None:
    members = demo_members()
    assert len(members) == 8
    assert [m.id for m in members] == [f"m_{n:04d}" for n in range(1, 9)]
    assert len({m.tier for m in members}) == 4


def test_identities_are_unique_and_well_formed() -> None:
    members = demo_members()
    identities = [(i.kind, i.value) for m in members for i in m.identities]
    assert len(identities) == len(set(identities))
    for member in members:
        phones = [i.value for i in member.identities if i.kind is IdentityKind.PHONE]
        assert len(phones) == 1, member.id
        assert re.fullmatch(r"\+8613\d{9}", phones[0]), phones[0]
        for identity in member.identities:
            if identity.kind is IdentityKind.WECHAT_UNIONID:
                assert identity.value.startswith("o6_"), identity.value
    assert any(i.kind is IdentityKind.WECHAT_UNIONID for m in members for i in m.identities)


def test_member_fields() -> None:
    members = demo_members()
    codes = [m.referral_code for m in members]
    assert len(codes) == len(set(codes))
    store_ids = {f"st_{n:03d}" for n in range(1, 21)}
    for member in members:
        assert re.fullmatch(r"[A-Z0-9]{8}", member.referral_code), member.referral_code
        assert member.home_store_id in store_ids
        assert member.display_name
        assert member.tags
        assert member.join_time.utcoffset() is not None
