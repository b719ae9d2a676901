"""Bearer-token authentication: HS256 JWTs carrying a role and the ids that role needs.

A request without an Authorization header is anonymous (catalog browsing needs no login).
A request with a header that is not a valid, unexpired token of ours is answered with
HTTP 401 before any GraphQL runs: a client holding a broken token must learn it, not be
silently downgraded to anonymous.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from starlette.types import ASGIApp, Receive, Scope, Send

from retail_kit.validation import id_violation

ALGORITHM = "HS256"
LEEWAY = timedelta(seconds=30)
"""Clock skew tolerated between the token issuer and the gateway."""
DEFAULT_TTL = timedelta(hours=1)
PRINCIPAL_STATE_KEY = "principal"


class Role(enum.StrEnum):
    CUSTOMER = "customer"
    ASSOCIATE = "associate"
    STORE_MANAGER = "store_manager"
    KIOSK = "kiosk"
    ADMIN = "admin"
    ANONYMOUS = "anonymous"


_REQUIRED_CLAIMS: dict[Role, tuple[str, ...]] = {
    Role.CUSTOMER: ("member_id",),
    Role.ASSOCIATE: ("store_id",),
    Role.STORE_MANAGER: ("store_id",),
    Role.KIOSK: ("store_id", "device_id"),
    Role.ADMIN: (),
}


class AuthError(Exception):
    """The presented credentials are not acceptable; `message` is safe to show the caller."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the role and the ids that scope what the role may see."""

    role: Role
    subject: str = ""
    member_id: str | None = None
    store_id: str | None = None
    device_id: str | None = None

    @property
    def is_authenticated(self) -> bool:
        return self.role is not Role.ANONYMOUS


ANONYMOUS = Principal(Role.ANONYMOUS)


def issue_token(
    secret: str,
    issuer: str,
    role: Role,
    *,
    subject: str = "",
    member_id: str | None = None,
    store_id: str | None = None,
    device_id: str | None = None,
    ttl: timedelta = DEFAULT_TTL,
    now: datetime | None = None,
) -> str:
    """Signs a token for `role`; refuses to sign one that `verify_token` would reject."""
    issued = now or datetime.now(UTC)
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": subject or member_id or device_id or role.value,
        "role": role.value,
        "iat": int(issued.timestamp()),
        "exp": int((issued + ttl).timestamp()),
    }
    for name, value in (("member_id", member_id), ("store_id", store_id), ("device_id", device_id)):
        if value is not None:
            claims[name] = value
    _principal_from_claims(claims)
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_token(token: str, secret: str, issuer: str) -> Principal:
    """Checks signature, issuer and expiry, then the claims the role needs."""
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            issuer=issuer,
            leeway=LEEWAY,
            options={"require": ["exp", "iss", "role"]},
        )
    except jwt.ExpiredSignatureError:
        raise AuthError("token has expired") from None
    except jwt.InvalidSignatureError:
        raise AuthError("token signature is not valid") from None
    except jwt.InvalidIssuerError:
        raise AuthError("token was not issued by this gateway's issuer") from None
    except jwt.MissingRequiredClaimError as error:
        raise AuthError(f"token lacks the {error.claim!r} claim") from None
    except jwt.InvalidTokenError:
        raise AuthError("token is malformed") from None
    return _principal_from_claims(claims)


def _principal_from_claims(claims: dict[str, Any]) -> Principal:
    raw_role = claims.get("role")
    try:
        role = Role(raw_role) if isinstance(raw_role, str) else Role.ANONYMOUS
    except ValueError:
        role = Role.ANONYMOUS
    if role is Role.ANONYMOUS:
        known = ", ".join(r.value for r in _REQUIRED_CLAIMS)
        raise AuthError(f"token role {str(raw_role)[:40]!r} is not one of {known}")
    ids: dict[str, str | None] = {"member_id": None, "store_id": None, "device_id": None}
    for name in ids:
        value = claims.get(name)
        if value is None:
            if name in _REQUIRED_CLAIMS[role]:
                raise AuthError(f"a {role.value} token needs a {name!r} claim")
            continue
        if not isinstance(value, str) or id_violation(name, value) is not None:
            raise AuthError(f"token claim {name!r} is not a valid id")
        ids[name] = value
    subject = claims.get("sub", "")
    if not isinstance(subject, str):
        raise AuthError("token claim 'sub' must be a string")
    return Principal(role, subject, ids["member_id"], ids["store_id"], ids["device_id"])


def principal_from_header(authorization: str | None, secret: str, issuer: str) -> Principal:
    if authorization is None:
        return ANONYMOUS
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("Authorization header must be 'Bearer <token>'")
    return verify_token(token.strip(), secret, issuer)


def principal_of(scope: Scope) -> Principal:
    """The principal BearerAuthMiddleware stored for this request (anonymous if none)."""
    principal = scope.get("state", {}).get(PRINCIPAL_STATE_KEY)
    return principal if isinstance(principal, Principal) else ANONYMOUS


def unauthenticated_body(message: str) -> bytes:
    """The GraphQL-shaped body of a 401: clients parse one error format everywhere."""
    body = {
        "data": None,
        "errors": [{"message": message, "extensions": {"code": "UNAUTHENTICATED"}}],
    }
    return json.dumps(body, ensure_ascii=False).encode()


class BearerAuthMiddleware:
    """Authenticates every HTTP and WebSocket request before the wrapped app sees it."""

    def __init__(self, app: ASGIApp, secret: str, issuer: str) -> None:
        self.app = app
        self.secret = secret
        self.issuer = issuer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        header = _header(scope, b"authorization")
        try:
            principal = principal_from_header(header, self.secret, self.issuer)
        except AuthError as error:
            if scope["type"] == "websocket":
                # Closing before accepting makes the server refuse the handshake (HTTP 403).
                await send({"type": "websocket.close", "code": 4401, "reason": error.message})
                return
            await _send_401(send, error.message)
            return
        scope.setdefault("state", {})[PRINCIPAL_STATE_KEY] = principal
        await self.app(scope, receive, send)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


async def _send_401(send: Send, message: str) -> None:
    body = unauthenticated_body(message)
    description = message.replace('"', "'").replace("\\", "/")
    challenge = f'Bearer error="invalid_token", error_description="{description}"'
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"www-authenticate", challenge.encode("latin-1", "replace")),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
