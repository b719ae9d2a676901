"""Token claims per role, and every way a token can be unacceptable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest

from gateway.auth import (
    ANONYMOUS,
    AuthError,
    Principal,
    Role,
    issue_token,
    principal_from_header,
    verify_token,
)

SECRET = "unit-test-secret-that-is-long-enough"
ISSUER = "retail-unit"


def _encode(claims: dict[str, Any], secret: str = SECRET, algorithm: str = "HS256") -> str:
    base = {"iss": ISSUER, "exp": int((datetime.now(UTC) + timedelta(minutes=5)).timestamp())}
    return jwt.encode({**base, **claims}, secret, algorithm)


@pytest.mark.parametrize(
    ("role", "claims", "expected"),
    [
        (
            Role.CUSTOMER,
            {"member_id": "m_0001"},
            Principal(Role.CUSTOMER, "m_0001", member_id="m_0001"),
        ),
        (
            Role.ASSOCIATE,
            {"subject": "as_1", "store_id": "st_001"},
            Principal(Role.ASSOCIATE, "as_1", store_id="st_001"),
        ),
        (
            Role.STORE_MANAGER,
            {"subject": "mgr", "store_id": "st_002"},
            Principal(Role.STORE_MANAGER, "mgr", store_id="st_002"),
        ),
        (
            Role.KIOSK,
            {"store_id": "st_001", "device_id": "k_1"},
            Principal(Role.KIOSK, "k_1", store_id="st_001", device_id="k_1"),
        ),
        (Role.ADMIN, {"subject": "ops"}, Principal(Role.ADMIN, "ops")),
    ],
)
def test_issued_token_round_trips(role: Role, claims: dict[str, Any], expected: Principal) -> None:
    token = issue_token(SECRET, ISSUER, role, **claims)
    assert verify_token(token, SECRET, ISSUER) == expected


def test_issued_token_carries_standard_claims() -> None:
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    token = issue_token(
        SECRET, ISSUER, Role.CUSTOMER, member_id="m_0001", ttl=timedelta(minutes=10), now=now
    )
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims == {
        "iss": ISSUER,
        "sub": "m_0001",
        "role": "customer",
        "member_id": "m_0001",
        "iat": int(now.timestamp()),
        "exp": int(now.timestamp()) + 600,
    }
    assert jwt.get_unverified_header(token)["alg"] == "HS256"


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"role": "customer"}, "needs a 'member_id' claim"),
        ({"role": "associate"}, "needs a 'store_id' claim"),
        ({"role": "store_manager", "member_id": "m_1"}, "needs a 'store_id' claim"),
        ({"role": "kiosk", "store_id": "st_001"}, "needs a 'device_id' claim"),
        ({"role": "kiosk", "device_id": "k_1"}, "needs a 'store_id' claim"),
        ({"role": "anonymous"}, "is not one of"),
        ({"role": "root"}, "is not one of"),
        ({"role": 7}, "is not one of"),
        ({"role": "customer", "member_id": "m 1"}, "'member_id' is not a valid id"),
        ({"role": "customer", "member_id": 42}, "'member_id' is not a valid id"),
        ({"sub": "nobody"}, "lacks the 'role' claim"),
    ],
)
def test_missing_or_bad_claims_are_rejected(claims: dict[str, Any], message: str) -> None:
    with pytest.raises(AuthError) as caught:
        verify_token(_encode(claims), SECRET, ISSUER)
    assert message in caught.value.message


def test_expired_token_is_rejected_after_the_leeway() -> None:
    issued = datetime.now(UTC) - timedelta(minutes=10)
    stale = issue_token(SECRET, ISSUER, Role.ADMIN, ttl=timedelta(minutes=5), now=issued)
    with pytest.raises(AuthError, match="expired"):
        verify_token(stale, SECRET, ISSUER)
    just_expired = issue_token(
        SECRET, ISSUER, Role.ADMIN, ttl=timedelta(seconds=-5), now=datetime.now(UTC)
    )
    assert verify_token(just_expired, SECRET, ISSUER).role is Role.ADMIN  # clock skew


def test_token_without_exp_is_rejected() -> None:
    token = jwt.encode({"iss": ISSUER, "role": "admin"}, SECRET, "HS256")
    with pytest.raises(AuthError, match="'exp'"):
        verify_token(token, SECRET, ISSUER)


def test_wrong_secret_and_wrong_issuer_are_rejected() -> None:
    token = issue_token(SECRET, ISSUER, Role.ADMIN)
    with pytest.raises(AuthError, match="signature"):
        verify_token(token, "another-secret-that-is-long-enough!", ISSUER)
    with pytest.raises(AuthError, match="issuer"):
        verify_token(token, SECRET, "someone-else")


@pytest.mark.parametrize("algorithm", ["HS512", "none"])
def test_other_algorithms_are_rejected(algorithm: str) -> None:
    key = None if algorithm == "none" else SECRET * 2
    token = jwt.encode({"iss": ISSUER, "role": "admin", "exp": 4102444800}, key, algorithm)
    with pytest.raises(AuthError, match="malformed"):
        verify_token(token, SECRET, ISSUER)


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "x" * 5000])
def test_garbage_is_malformed(token: str) -> None:
    with pytest.raises(AuthError, match="malformed"):
        verify_token(token, SECRET, ISSUER)


def test_issue_token_refuses_a_token_verify_would_reject() -> None:
    with pytest.raises(AuthError):
        issue_token(SECRET, ISSUER, Role.CUSTOMER)
    with pytest.raises(AuthError):
        issue_token(SECRET, ISSUER, Role.ANONYMOUS)


def test_header_parsing() -> None:
    assert principal_from_header(None, SECRET, ISSUER) == ANONYMOUS
    token = issue_token(SECRET, ISSUER, Role.ADMIN, subject="ops")
    assert principal_from_header(f"Bearer {token}", SECRET, ISSUER).subject == "ops"
    assert principal_from_header(f"bearer  {token} ", SECRET, ISSUER).subject == "ops"
    for header in ("", "Bearer", token, f"Basic {token}", f"Bearer {token} extra"):
        with pytest.raises(AuthError):
            principal_from_header(header, SECRET, ISSUER)
