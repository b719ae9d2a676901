"""Helpers of the members tests: GraphQL calls that must succeed or fail with a code, WeChat
dev sign-in, fresh phone numbers and WeChat ids, tokens, direct member-svc reads."""

from __future__ import annotations

import secrets
from typing import Any

from gateway.auth import Role
from gateway.testing import GatewayClient
from gateway.tests.conftest import MemberWorld, token
from retail.common.v1 import common_pb2
from retail.member.v1 import member_pb2

ADMIN = token(Role.ADMIN, subject="ops_admin")
ADMIN_ACTOR = common_pb2.Actor(kind=common_pb2.ACTOR_KIND_ADMIN, id="gw_member_tests")


def associate(store_id: str = "st_001", number: int = 1) -> dict[str, str]:
    return token(Role.ASSOCIATE, store_id=store_id, subject=f"as_{store_id}_{number:02d}")


def manager(store_id: str = "st_001") -> dict[str, str]:
    return token(Role.STORE_MANAGER, store_id=store_id, subject=f"mgr_{store_id}")


def customer(member_id: str) -> dict[str, str]:
    return token(Role.CUSTOMER, member_id=member_id, subject=member_id)


def new_phone() -> str:
    """An 11-digit mainland mobile no test has used (139 + 8 random digits)."""
    return f"139{secrets.randbelow(10**8):08d}"


def e164(phone: str) -> str:
    return f"+86{phone}"


def new_unionid() -> str:
    return f"o6_gw{secrets.token_hex(10)}"


async def ok(
    client: GatewayClient,
    query: str,
    variables: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The data of an answer that must have no errors."""
    body = await client.query(query, variables, headers)
    assert "errors" not in body, body
    data: dict[str, Any] = body["data"]
    return data


async def refused(
    client: GatewayClient,
    query: str,
    variables: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The extensions of the one error of an answer that must fail."""
    body = await client.query(query, variables, headers)
    assert len(body.get("errors") or []) == 1, body
    extensions: dict[str, Any] = body["errors"][0]["extensions"]
    return extensions


SIGN_IN = """
mutation ($code: String!) {
  signInWithWeChat(code: $code) { token expiresAt created member { id displayName phone } }
}
"""


async def sign_in(client: GatewayClient, unionid: str | None = None) -> tuple[str, dict[str, str]]:
    """A new (or the given) WeChat user signs in: their member id and Authorization header."""
    data = await ok(client, SIGN_IN, {"code": f"dev:{unionid or new_unionid()}"})
    session = data["signInWithWeChat"]
    return session["member"]["id"], {"Authorization": f"Bearer {session['token']}"}


REQUEST_CODE = """
mutation ($kind: IdentityKind!, $value: String!) {
  requestIdentityVerification(kind: $kind, value: $value) { expiresAt debugCode }
}
"""


async def verification_code(client: GatewayClient, headers: dict[str, str], phone: str) -> str:
    data = await ok(client, REQUEST_CODE, {"kind": "PHONE", "value": phone}, headers)
    code: str = data["requestIdentityVerification"]["debugCode"]
    assert code and code.isdigit()
    return code


async def enrolled(world: MemberWorld, phone: str, store_id: str = "st_001") -> member_pb2.Member:
    """A member enrolled at a store's till by phone, with no guide (as order-svc's till does)."""
    reply = await world.member.EnsureMember(
        member_pb2.EnsureMemberRequest(
            identity=member_pb2.Identity(kind=member_pb2.IDENTITY_KIND_PHONE, value=phone),
            channel=common_pb2.CHANNEL_POS,
            store_id=store_id,
        )
    )
    return reply.member


async def give_points(world: MemberWorld, member_id: str, points: int) -> None:
    await world.member.AdjustPoints(
        member_pb2.AdjustPointsRequest(
            member_id=member_id,
            delta=points,
            reason="gateway member tests",
            reference=f"gw-members-{secrets.token_hex(8)}",
            actor=ADMIN_ACTOR,
        )
    )


async def give_coupon(world: MemberWorld, member_id: str, template_id: str) -> member_pb2.Coupon:
    reply = await world.member.IssueCoupon(
        member_pb2.IssueCouponRequest(
            template_id=template_id,
            member_id=member_id,
            reference=f"gw-members-{secrets.token_hex(8)}",
            actor=ADMIN_ACTOR,
        )
    )
    return reply.coupon
