"""Partner API keys for gRPC: a server interceptor that authenticates `x-api-key` and checks
the scope a method requires before the handler runs.

**Keys.** A partner presents `x-api-key: <key_id>.<secret>` (e.g. `pk_wechat_pay.9f3c…`).
Services keep only the SHA-256 of the whole presented key, in one setting per service
(order-svc: `ORDER_PARTNER_API_KEYS`), entries separated by `;`:

    <key_id>:<partner_id>:<sha256 hex of "<key_id>.<secret>">:<scope>[,<scope>...]

e.g. `pk_demo_pay:demo_pay:5e88…a1:order.payments`. The key id names the entry (looked up
directly, then the digest compared in constant time), the partner id is who the call acts
for (several keys of one partner may coexist: rotation), the scopes what it may call.
`python -m retail_kit.apikeys <key_id> <partner_id> <scope>[,<scope>...]` prints a fresh key
and its entry. Secrets are 256-bit random strings, so a plain SHA-256 (not a password hash)
is the right digest: nothing to brute-force, and a leaked setting reveals no key.

**Methods.** A `ScopePolicy` maps full method names ("/retail.order.v1.OrderService/
ConfirmPayment") or whole services ("/retail.order.v1.OrderService/*") to the scope they
require. A method without a scope stays open (the internal network: the gateway, other
services); a key presented to an open method is still checked, and a bad one refused (a bad
credential is an error, never an anonymous downgrade).

**Answers.** Missing or unknown key on a scoped method, or any bad key: UNAUTHENTICATED,
ErrorInfo reason UNAUTHENTICATED. A valid key without the scope: PERMISSION_DENIED, reason
PERMISSION_DENIED, metadata `required_scope` and `key_id`. A limiter (issue 9's per-key rate
limits plug in here) may refuse with RESOURCE_EXHAUSTED / RATE_LIMITED and
`retry_after_seconds`. The handler never runs for a refused call.

**Who called.** `current_principal()` in the handler (a contextvar set for the call) is the
authenticated `Principal` (key id, partner id, scopes), or None for an open method called
without a key.
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import re
import secrets
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import grpc

from retail.common.v1 import common_pb2
from retail_kit.errors import ServiceError

API_KEY_HEADER = "x-api-key"
ENTRY_SEPARATOR = ";"
_NAME = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
_SCOPE = re.compile(r"^[a-z0-9_\-]+(\.[a-z0-9_\-]+)*$")
_DIGEST = re.compile(r"^[0-9a-f]{64}$")
# Compared against when the key id is unknown, so both answers cost one digest.
_NO_DIGEST = "0" * 64


class ApiKeyConfigError(ValueError):
    """The key setting cannot be parsed; raised at start-up, naming the entry."""


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated partner call: which key, which partner, what it may do."""

    key_id: str
    partner_id: str
    scopes: frozenset[str]

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes


@dataclass(frozen=True, slots=True)
class ApiKey:
    principal: Principal
    digest: str  # sha256 hex of the presented key "<key_id>.<secret>"


def digest_of(presented: str) -> str:
    return hashlib.sha256(presented.encode()).hexdigest()


def new_api_key(key_id: str, partner_id: str, scopes: Iterable[str]) -> tuple[str, str]:
    """A fresh key and its setting entry: (the key to hand to the partner, the entry)."""
    key = f"{key_id}.{secrets.token_urlsafe(32)}"
    entry = format_entry(key_id, partner_id, digest_of(key), scopes)
    parse_api_keys(entry)  # the same rules as the setting
    return key, entry


def format_entry(key_id: str, partner_id: str, digest: str, scopes: Iterable[str]) -> str:
    return f"{key_id}:{partner_id}:{digest}:{','.join(scopes)}"


class KeyRing:
    """The configured keys by key id."""

    def __init__(self, keys: Iterable[ApiKey] = ()) -> None:
        self._keys: dict[str, ApiKey] = {}
        for key in keys:
            key_id = key.principal.key_id
            if key_id in self._keys:
                raise ApiKeyConfigError(f"API key id {key_id!r} is configured twice")
            self._keys[key_id] = key

    def __len__(self) -> int:
        return len(self._keys)

    def authenticate(self, presented: str) -> Principal | None:
        """The principal of a presented "<key_id>.<secret>", or None (unknown, malformed,
        wrong secret): one digest and one constant-time comparison either way."""
        key_id, dot, _ = presented.partition(".")
        key = self._keys.get(key_id) if dot else None
        expected = key.digest if key is not None else _NO_DIGEST
        matches = hmac.compare_digest(digest_of(presented), expected)
        return key.principal if key is not None and matches else None


def parse_api_keys(text: str) -> KeyRing:
    """The key ring of a setting value (empty: no keys, so every scoped method is closed)."""
    keys: list[ApiKey] = []
    for number, raw in enumerate(text.split(ENTRY_SEPARATOR), start=1):
        entry = raw.strip()
        if not entry:
            continue
        parts = [part.strip() for part in entry.split(":")]
        if len(parts) != 4:
            raise ApiKeyConfigError(
                f"API key entry {number}: expected key_id:partner_id:sha256:scopes, "
                f"got {len(parts)} fields"
            )
        key_id, partner_id, digest, scope_list = parts
        for label, value in (("key id", key_id), ("partner id", partner_id)):
            if not _NAME.match(value):
                raise ApiKeyConfigError(f"API key entry {number}: bad {label} {value!r}")
        if not _DIGEST.match(digest):
            raise ApiKeyConfigError(
                f"API key entry {number} ({key_id}): the digest must be 64 lowercase hex "
                "characters (sha256 of the key)"
            )
        scopes = frozenset(s.strip() for s in scope_list.split(",") if s.strip())
        bad = sorted(s for s in scopes if not _SCOPE.match(s))
        if not scopes or bad:
            raise ApiKeyConfigError(
                f"API key entry {number} ({key_id}): scopes must be dotted lowercase names, "
                f"got {scope_list!r}"
            )
        keys.append(ApiKey(Principal(key_id, partner_id, scopes), digest))
    return KeyRing(keys)


class ScopePolicy:
    """Which scope each method requires: exact full method names first, then "/<service>/*"
    for every method of a service; None = open."""

    def __init__(self, scopes: Mapping[str, str]) -> None:
        for method, scope in scopes.items():
            if not method.startswith("/") or method.count("/") != 2:
                raise ApiKeyConfigError(f"not a full method name: {method!r}")
            if not _SCOPE.match(scope):
                raise ApiKeyConfigError(f"bad scope {scope!r} for {method}")
        self._scopes = dict(scopes)

    def required(self, method: str) -> str | None:
        exact = self._scopes.get(method)
        if exact is not None:
            return exact
        service = method.rpartition("/")[0]
        return self._scopes.get(f"{service}/*")

    @property
    def methods(self) -> Mapping[str, str]:
        return dict(self._scopes)


class RateLimiter(Protocol):
    """Per-key limits (issue 9): seconds to wait before retrying, or None to let the call in."""

    async def check(self, principal: Principal, method: str) -> float | None: ...


_PRINCIPAL: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "retail_api_principal", default=None
)


def current_principal() -> Principal | None:
    """The partner the current call authenticated as (None: no key, an open method)."""
    return _PRINCIPAL.get()


def unauthenticated(message: str, **metadata: str) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.UNAUTHENTICATED,
        common_pb2.ERROR_REASON_UNAUTHENTICATED,
        message,
        metadata=metadata,
    )


def permission_denied(message: str, **metadata: str) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.PERMISSION_DENIED,
        common_pb2.ERROR_REASON_PERMISSION_DENIED,
        message,
        metadata=metadata,
    )


def rate_limited(method: str, key_id: str, retry_after: float) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        common_pb2.ERROR_REASON_RATE_LIMITED,
        f"API key {key_id!r} is over its rate limit for {method}",
        metadata={"key_id": key_id, "retry_after_seconds": f"{max(retry_after, 0.0):g}"},
    )


def _presented_key(metadata: Any) -> str | None:
    for key, value in metadata or ():
        if key == API_KEY_HEADER:
            return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
    return None


_Behavior = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Any]


class ApiKeyInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Authenticates `x-api-key` and enforces the policy's scopes before any handler runs."""

    def __init__(
        self, keys: KeyRing, policy: ScopePolicy, limiter: RateLimiter | None = None
    ) -> None:
        self.keys = keys
        self.policy = policy
        self.limiter = limiter

    def judge(self, method: str, presented: str | None) -> Principal | ServiceError | None:
        """The principal the call runs as (None: anonymous on an open method), or the
        refusal."""
        required = self.policy.required(method)
        if presented is None:
            if required is None:
                return None
            return unauthenticated(
                f"{method} needs a partner API key (metadata {API_KEY_HEADER!r}) with scope "
                f"{required!r}",
                method=method,
                required_scope=required,
            )
        principal = self.keys.authenticate(presented.strip())
        if principal is None:
            return unauthenticated(
                "the API key is not valid (unknown, revoked or malformed)", method=method
            )
        if required is not None and not principal.has_scope(required):
            return permission_denied(
                f"API key {principal.key_id!r} lacks scope {required!r} for {method}",
                method=method,
                required_scope=required,
                key_id=principal.key_id,
            )
        return principal

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        verdict = self.judge(method, _presented_key(handler_call_details.invocation_metadata))
        if isinstance(verdict, ServiceError):
            return _refusing(handler, verdict)
        return _running_as(handler, verdict, method, self.limiter)


def _refusing(handler: Any, error: ServiceError) -> Any:
    """The handler with its behaviour replaced by the refusal (serializers kept)."""

    async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort(error.code, error.message, error.trailing_metadata())

    async def stream(
        request: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        await context.abort(error.code, error.message, error.trailing_metadata())
        yield  # pragma: no cover - abort raises

    if handler.unary_unary is not None:
        return handler._replace(unary_unary=unary)
    if handler.unary_stream is not None:
        return handler._replace(unary_stream=stream)
    if handler.stream_unary is not None:
        return handler._replace(stream_unary=unary)
    return handler._replace(stream_stream=stream)


def _running_as(
    handler: Any, principal: Principal | None, method: str, limiter: RateLimiter | None
) -> Any:
    """The handler run with `current_principal()` set (and the limiter asked first)."""

    async def admit(context: grpc.aio.ServicerContext[Any, Any]) -> None:
        _PRINCIPAL.set(principal)
        if limiter is not None and principal is not None:
            wait = await limiter.check(principal, method)
            if wait is not None:
                error = rate_limited(method, principal.key_id, wait)
                await context.abort(error.code, error.message, error.trailing_metadata())

    def wrap_unary(behavior: _Behavior) -> _Behavior:
        async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            await admit(context)
            return await behavior(request, context)

        return unary

    def wrap_stream(behavior: _Behavior) -> _Behavior:
        async def stream(
            request: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            await admit(context)
            async for response in behavior(request, context):
                yield response

        return stream

    if handler.unary_unary is not None:
        return handler._replace(unary_unary=wrap_unary(handler.unary_unary))
    if handler.unary_stream is not None:
        return handler._replace(unary_stream=wrap_stream(handler.unary_stream))
    if handler.stream_unary is not None:
        return handler._replace(stream_unary=wrap_unary(handler.stream_unary))
    return handler._replace(stream_stream=wrap_stream(handler.stream_stream))


def main(argv: list[str]) -> int:
    """`python -m retail_kit.apikeys <key_id> <partner_id> <scope,scope>`: a new key."""
    if len(argv) != 3:
        print(__doc__.split("\n\n")[1] if __doc__ else "", file=sys.stderr)
        print("usage: python -m retail_kit.apikeys KEY_ID PARTNER_ID SCOPE[,SCOPE...]")
        return 2
    key_id, partner_id, scopes = argv
    try:
        key, entry = new_api_key(key_id, partner_id, scopes.split(","))
    except ApiKeyConfigError as error:
        print(error, file=sys.stderr)
        return 2
    print(f"key (give to the partner, shown once): {key}")
    print(f"setting entry (store this):           {entry}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
