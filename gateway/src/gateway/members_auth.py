"""Customer sign-in for the mini-program (WeChat) and the member code (会员码) shown as a QR.

**WeChat.** The mini-program calls `wx.login()` and sends the one-time `code` it gets to
`signInWithWeChat`. A `WeChatAuth` turns that code into the user's WeChat identity; the
gateway then asks member-svc to find or create the member owning that UnionID
(EnsureMember, channel mini_program) and signs a customer token for it. There is no WeChat
server here, so two implementations ship:

- `DevWeChatAuth` (`GATEWAY_WECHAT_DEV_LOGIN=true`, on in `make run`): a code
  `dev:<unionid>` stands for the WeChat user with that UnionID. Anyone can sign in as anyone
  with it: development only.
- `UnconfiguredWeChatAuth` (the default): every sign-in is refused with
  FAILED_PRECONDITION / NOT_IMPLEMENTED.

Production plugs in its own `WeChatAuth` (`create_app(settings, wechat=...)`) that calls
WeChat's `code2session` (`GET https://api.weixin.qq.com/sns/jscode2session` with the
mini-program's appid and secret, `js_code=<code>`, `grant_type=authorization_code`) and
returns the `unionid` (present when the mini-program is bound to the brand's WeChat Open
Platform account, which is what makes one member across the mini-program, the app and the
official account) and the `openid`. The session key WeChat returns stays in that
implementation.

**Member code.** `me.member.memberCode` is a short-lived signed payload the member shows as
a QR at the counter; `memberByQr` reads it back. Format: `MC1:<expiry, unix seconds>:<sig>:
<member id>`, sig = the first 16 bytes of HMAC-SHA256 over `MC1:<expiry>:<member id>`,
base64url without padding, with a key derived from the gateway's JWT secret (so every
gateway replica reads every other's codes). Valid for `MEMBER_CODE_TTL`; a screenshot is
useless after that, and nobody can make a code for another member.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from graphql import GraphQLError

from gateway.auth import DEFAULT_TTL, LEEWAY, Role, issue_token
from gateway.errors import ErrorCode, bad_user_input, graphql_error
from gateway.settings import GatewaySettings
from retail_kit.errors import FieldViolation
from retail_kit.validation import id_violation

DEV_CODE_PREFIX = "dev:"
MEMBER_CODE_VERSION = "MC1"
MEMBER_CODE_TTL = timedelta(minutes=5)
_SIGNATURE_BYTES = 16


@dataclass(frozen=True, slots=True)
class WeChatSession:
    """Who WeChat says the mini-program user is."""

    unionid: str
    openid: str | None = None


class WeChatAuth(Protocol):
    async def exchange(self, code: str) -> WeChatSession:
        """The WeChat user behind a `wx.login()` code; raises a GraphQLError (with
        `extensions.code`) when the code is refused."""
        ...


class DevWeChatAuth:
    """Development only: `dev:<unionid>` signs in as that WeChat user, no WeChat involved."""

    async def exchange(self, code: str) -> WeChatSession:
        unionid = code.strip().removeprefix(DEV_CODE_PREFIX).strip()
        if not code.strip().startswith(DEV_CODE_PREFIX) or not unionid:
            raise bad_user_input(
                FieldViolation("code", 'development sign-in codes look like "dev:<unionid>"')
            )
        return WeChatSession(unionid=unionid)


class UnconfiguredWeChatAuth:
    """No WeChat integration configured: sign-in is refused, nothing is sent anywhere."""

    async def exchange(self, code: str) -> WeChatSession:
        raise graphql_error(
            ErrorCode.FAILED_PRECONDITION,
            "WeChat sign-in is not configured on this gateway",
            reason="NOT_IMPLEMENTED",
        )


@dataclass(frozen=True, slots=True)
class CustomerToken:
    token: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class CustomerAuth:
    """Made once per app (create_app); every request's context carries it."""

    wechat: WeChatAuth
    jwt_secret: str
    jwt_issuer: str
    token_ttl: timedelta = DEFAULT_TTL

    @classmethod
    def from_settings(
        cls, settings: GatewaySettings, wechat: WeChatAuth | None = None
    ) -> CustomerAuth:
        if wechat is None:
            wechat = DevWeChatAuth() if settings.wechat_dev_login else UnconfiguredWeChatAuth()
        return cls(wechat, settings.jwt_secret, settings.jwt_issuer)

    def customer_token(self, member_id: str, now: datetime | None = None) -> CustomerToken:
        issued = now or datetime.now(UTC)
        token = issue_token(
            self.jwt_secret,
            self.jwt_issuer,
            Role.CUSTOMER,
            subject=member_id,
            member_id=member_id,
            ttl=self.token_ttl,
            now=issued,
        )
        # The token's exp is whole seconds.
        expires = datetime.fromtimestamp(int((issued + self.token_ttl).timestamp()), UTC)
        return CustomerToken(token, expires)

    # ---- member codes --------------------------------------------------------------------

    def _signature(self, expiry: int, member_id: str) -> str:
        key = hmac.new(self.jwt_secret.encode(), b"retail member code", hashlib.sha256).digest()
        signed = f"{MEMBER_CODE_VERSION}:{expiry}:{member_id}".encode()
        digest = hmac.new(key, signed, hashlib.sha256).digest()[:_SIGNATURE_BYTES]
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def member_code(self, member_id: str, now: datetime | None = None) -> tuple[str, datetime]:
        """The payload for the member's QR and when it stops being accepted."""
        expiry = int(((now or datetime.now(UTC)) + MEMBER_CODE_TTL).timestamp())
        payload = f"{MEMBER_CODE_VERSION}:{expiry}:{self._signature(expiry, member_id)}:{member_id}"
        return payload, datetime.fromtimestamp(expiry, UTC)

    def read_member_code(self, payload: str, now: datetime | None = None) -> str:
        """The member id in a payload this gateway signed, or BAD_USER_INPUT (not one of
        ours, or altered) / FAILED_PRECONDITION EXPIRED (ask the member to refresh it)."""
        version, _, rest = payload.strip().partition(":")
        expiry_text, _, rest = rest.partition(":")
        signature, _, member_id = rest.partition(":")
        if (
            version != MEMBER_CODE_VERSION
            or not expiry_text.isdigit()
            or id_violation("member_id", member_id) is not None
            or not hmac.compare_digest(signature, self._signature(int(expiry_text), member_id))
        ):
            raise graphql_error(
                ErrorCode.BAD_USER_INPUT,
                "not a member code of this programme",
                reason="VERIFICATION_FAILED",
                fieldViolations=[{"field": "payload", "description": "is not a valid member code"}],
            )
        expires = datetime.fromtimestamp(int(expiry_text), UTC)
        if (now or datetime.now(UTC)) > expires + LEEWAY:
            raise expired_member_code(expires)
        return member_id


def expired_member_code(expires: datetime) -> GraphQLError:
    return graphql_error(
        ErrorCode.FAILED_PRECONDITION,
        "the member code has expired; ask the member to refresh it",
        reason="EXPIRED",
        metadata={"expired_at": expires.isoformat()},
    )
