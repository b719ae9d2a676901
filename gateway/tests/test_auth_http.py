"""Bearer tokens at the HTTP edge: bad ones get 401 before any GraphQL runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest

from gateway.auth import Role, issue_token
from gateway.testing import GatewayClient

ME = "{ me { role subject memberId storeId deviceId } }"
PRODUCTS = "{ products(first: 2) { edges { node { id } } } }"


def _token(gateway: GatewayClient, role: Role, **claims: Any) -> str:
    settings = gateway.settings
    return issue_token(settings.jwt_secret, settings.jwt_issuer, role, **claims)


def _raw_token(gateway: GatewayClient, claims: dict[str, Any], secret: str | None = None) -> str:
    now = datetime.now(UTC)
    base = {
        "iss": gateway.settings.jwt_issuer,
        "exp": int((now + timedelta(minutes=5)).timestamp()),
    }
    return jwt.encode({**base, **claims}, secret or gateway.settings.jwt_secret, "HS256")


def _bad_tokens(gateway: GatewayClient) -> dict[str, str]:
    settings = gateway.settings
    long_ago = datetime.now(UTC) - timedelta(hours=2)
    return {
        "expired": issue_token(
            settings.jwt_secret,
            settings.jwt_issuer,
            Role.CUSTOMER,
            member_id="m_0001",
            ttl=timedelta(minutes=30),
            now=long_ago,
        ),
        "wrong secret": issue_token(
            "someone-elses-secret-of-enough-length",
            settings.jwt_issuer,
            Role.ADMIN,
            subject="mallory",
        ),
        "wrong issuer": issue_token(settings.jwt_secret, "another-issuer", Role.ADMIN),
        "garbage": "not.a.jwt",
        "random text": "hello",
        "customer without member_id": _raw_token(gateway, {"role": "customer"}),
        "kiosk without device_id": _raw_token(gateway, {"role": "kiosk", "store_id": "st_001"}),
        "unknown role": _raw_token(gateway, {"role": "superuser"}),
        "no role": _raw_token(gateway, {"sub": "x"}),
    }


BAD_TOKEN_NAMES = [
    "expired",
    "wrong secret",
    "wrong issuer",
    "garbage",
    "random text",
    "customer without member_id",
    "kiosk without device_id",
    "unknown role",
    "no role",
]


@pytest.mark.parametrize("name", BAD_TOKEN_NAMES)
async def test_bad_token_is_401_unauthenticated_and_nothing_runs(
    gateway: GatewayClient, name: str
) -> None:
    token = _bad_tokens(gateway)[name]
    response = await gateway.post(PRODUCTS, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/json"
    assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    body = response.json()
    assert body["data"] is None
    [error] = body["errors"]
    assert error["extensions"] == {"code": "UNAUTHENTICATED"}
    assert error["message"]
    assert gateway.calls.calls == []


async def test_expired_token_says_so(gateway: GatewayClient) -> None:
    token = _bad_tokens(gateway)["expired"]
    response = await gateway.post(ME, headers={"Authorization": f"Bearer {token}"})
    assert response.json()["errors"][0]["message"] == "token has expired"


@pytest.mark.parametrize(
    "header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer two words", "token abc"]
)
async def test_malformed_authorization_header_is_401(gateway: GatewayClient, header: str) -> None:
    response = await gateway.post(ME, headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_bad_token_is_refused_on_get_too(gateway: GatewayClient) -> None:
    response = await gateway.http.get(
        "/graphql", params={"query": ME}, headers={"Authorization": "Bearer nope"}
    )
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("role", "claims", "expected"),
    [
        (
            Role.CUSTOMER,
            {"member_id": "m_0001"},
            {"role": "CUSTOMER", "subject": "m_0001", "memberId": "m_0001"},
        ),
        (
            Role.ASSOCIATE,
            {"subject": "as_01", "store_id": "st_001"},
            {"role": "ASSOCIATE", "subject": "as_01", "storeId": "st_001"},
        ),
        (
            Role.STORE_MANAGER,
            {"subject": "mgr_01", "store_id": "st_002"},
            {"role": "STORE_MANAGER", "subject": "mgr_01", "storeId": "st_002"},
        ),
        (
            Role.KIOSK,
            {"store_id": "st_001", "device_id": "k_st_001_01"},
            {
                "role": "KIOSK",
                "subject": "k_st_001_01",
                "storeId": "st_001",
                "deviceId": "k_st_001_01",
            },
        ),
        (Role.ADMIN, {"subject": "ops"}, {"role": "ADMIN", "subject": "ops"}),
    ],
)
async def test_valid_token_shows_in_me(
    gateway: GatewayClient, role: Role, claims: dict[str, str], expected: dict[str, str]
) -> None:
    token = _token(gateway, role, **claims)
    body = await gateway.query(ME, headers={"Authorization": f"Bearer {token}"})
    assert "errors" not in body
    blank = {"subject": None, "memberId": None, "storeId": None, "deviceId": None}
    assert body["data"]["me"] == {**blank, **expected}


async def test_scheme_is_case_insensitive(gateway: GatewayClient) -> None:
    token = _token(gateway, Role.CUSTOMER, member_id="m_0002")
    body = await gateway.query(ME, headers={"Authorization": f"bearer {token}"})
    assert body["data"]["me"]["memberId"] == "m_0002"


async def test_anonymous_caller_can_browse(gateway: GatewayClient) -> None:
    body = await gateway.query(f"{{ me {{ role memberId storeId }} {PRODUCTS[1:-1]} }}")
    assert "errors" not in body
    assert body["data"]["me"] == {"role": "ANONYMOUS", "memberId": None, "storeId": None}
    assert len(body["data"]["products"]["edges"]) == 2


async def test_healthz_ignores_authorization(gateway: GatewayClient) -> None:
    response = await gateway.http.get("/healthz", headers={"Authorization": "Bearer junk"})
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
