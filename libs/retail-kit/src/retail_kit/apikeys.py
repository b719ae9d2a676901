"""API keys for gRPC: a server interceptor that authenticates `x-api-key`, checks the scope a
method requires and applies a per-key rate limit before the handler runs; and the client
interceptor first-party callers (the gateway, order-svc) send their own key with.

**Keys.** A caller presents `x-api-key: <key_id>.<secret>` (e.g. `pk_wechat_pay.9f3c…`).
Services keep only the SHA-256 of the whole presented key, in one setting per service
(`<SERVICE>_PARTNER_API_KEYS`, e.g. `ORDER_PARTNER_API_KEYS`), entries separated by `;`:

    <key_id>:<partner_id>:<sha256 hex of "<key_id>.<secret>">:<scope>[,<scope>...][:<rate>]

e.g. `pk_demo_pay:demo_pay:5e88…a1:order.payments:5/10`. The key id names the entry (looked
up directly, then the digest compared in constant time), the partner id is who the call acts
for (several keys of one partner may coexist: rotation), the scopes what it may call, the
optional rate its limit: `<calls per second>/<burst>` or `unlimited`.
`python -m retail_kit.apikeys <key_id> <partner_id> <scope>[,<scope>...]` prints a fresh key
and its entry. Secrets are 256-bit random strings, so a plain SHA-256 (not a password hash)
is the right digest: nothing to brute-force, and a leaked setting reveals no key.

**Methods.** A `ScopePolicy` maps full method names ("/retail.order.v1.OrderService/
ConfirmPayment") or whole services ("/retail.order.v1.OrderService/*") to the scope they
require. Methods of services the policy does not name (health, reflection) stay open.
`internal` (INTERNAL_SCOPE) is the scope of first-party callers (the gateway, which
authenticates its users itself and passes them as the request's actor, and order-svc): it
satisfies every method except the policy's partner-only scopes (a payment is confirmed by
a payment partner, never by the gateway).

**Calls without a key.** With `trust_keyless_calls` (a service's `<SERVICE>_REQUIRE_API_KEY`
false: development, tests, a network where only first-party callers reach the port) a call
without a key is an internal call, except on partner-only methods. Without it (`make run`,
production) every call to a scoped method needs a key. A key presented to any method is
checked: a bad credential is an error, never an anonymous downgrade.

**Answers.** Missing or unknown key on a scoped method, or any bad key: UNAUTHENTICATED,
ErrorInfo reason UNAUTHENTICATED. A valid key without the scope: PERMISSION_DENIED, reason
PERMISSION_DENIED, metadata `required_scope` and `key_id`. Over its rate: RESOURCE_EXHAUSTED,
reason RATE_LIMITED, ErrorInfo metadata `retry_after_seconds`, a `google.rpc.RetryInfo`
detail and a `retry-after` trailer (whole seconds, rounded up). The handler never runs for
a refused call.

**Who called.** `current_principal()` in the handler (a contextvar set for the call) is the
authenticated `Principal` (key id, partner id, scopes), or None for a call without a key.
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import math
import re
import secrets
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2

from retail.common.v1 import common_pb2
from retail_kit.errors import STATUS_DETAILS_KEY, ServiceError
from retail_kit.settings import ServiceSettings

API_KEY_HEADER = "x-api-key"
RETRY_AFTER_HEADER = "retry-after"
ENTRY_SEPARATOR = ";"
INTERNAL_SCOPE = "internal"
"""First-party callers' scope: satisfies every method but the partner-only ones."""
UNLIMITED = "unlimited"
_NAME = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
_SCOPE = re.compile(r"^[a-z0-9_\-]+(\.[a-z0-9_\-]+)*$")
_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_RATE = re.compile(r"^(\d+(?:\.\d+)?)(?:/(\d+))?$")
# Compared against when the key id is unknown, so both answers cost one digest.
_NO_DIGEST = "0" * 64


class ApiKeyConfigError(ValueError):
    """The key setting cannot be parsed; raised at start-up, naming the entry."""


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated call: which key, which partner, what it may do."""

    key_id: str
    partner_id: str
    scopes: frozenset[str]

    def has_scope(self, scope: str) -> bool:
        """The scope itself (`internal` is not read as every scope here: a handler asking
        whether the caller is, say, a delivery partner gets a literal answer)."""
        return scope in self.scopes

    @property
    def is_internal(self) -> bool:
        return INTERNAL_SCOPE in self.scopes


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A token bucket: `per_second` calls on average, up to `burst` at once."""

    per_second: float
    burst: int

    def __str__(self) -> str:
        return f"{self.per_second:g}/{self.burst}"


def parse_rate_limit(text: str) -> RateLimit | None:
    """`<calls per second>[/<burst>]` (burst defaults to the rate, at least 1) or
    `unlimited` (None)."""
    value = text.strip()
    if value.lower() == UNLIMITED:
        return None
    match = _RATE.match(value)
    if match is None:
        raise ApiKeyConfigError(
            f"rate limit {text!r}: expected <calls per second>[/<burst>] or {UNLIMITED!r}"
        )
    per_second = float(match.group(1))
    burst = int(match.group(2)) if match.group(2) else max(1, math.ceil(per_second))
    if per_second <= 0 or burst < 1:
        raise ApiKeyConfigError(f"rate limit {text!r}: rate and burst must be positive")
    return RateLimit(per_second, burst)


@dataclass(frozen=True, slots=True)
class ApiKey:
    principal: Principal
    digest: str  # sha256 hex of the presented key "<key_id>.<secret>"
    rate: RateLimit | None = None
    rate_given: bool = False  # the entry named a rate (else the service default applies)


def digest_of(presented: str) -> str:
    return hashlib.sha256(presented.encode()).hexdigest()


def new_api_key(
    key_id: str, partner_id: str, scopes: Iterable[str], rate: str = ""
) -> tuple[str, str]:
    """A fresh key and its setting entry: (the key to hand to the partner, the entry)."""
    key = f"{key_id}.{secrets.token_urlsafe(32)}"
    entry = format_entry(key_id, partner_id, digest_of(key), scopes, rate)
    parse_api_keys(entry)  # the same rules as the setting
    return key, entry


def format_entry(
    key_id: str, partner_id: str, digest: str, scopes: Iterable[str], rate: str = ""
) -> str:
    entry = f"{key_id}:{partner_id}:{digest}:{','.join(scopes)}"
    return f"{entry}:{rate}" if rate else entry


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

    def limit_of(self, key_id: str, default: RateLimit | None) -> RateLimit | None:
        """The key's own rate if its entry names one; else unlimited for first-party
        (`internal`) keys and `default` for partners."""
        key = self._keys.get(key_id)
        if key is None:
            return default
        if key.rate_given:
            return key.rate
        return None if key.principal.is_internal else default


def parse_api_keys(text: str) -> KeyRing:
    """The key ring of a setting value (empty: no keys, so every scoped method is closed)."""
    keys: list[ApiKey] = []
    for number, raw in enumerate(text.split(ENTRY_SEPARATOR), start=1):
        entry = raw.strip()
        if not entry:
            continue
        parts = [part.strip() for part in entry.split(":")]
        if len(parts) not in (4, 5):
            raise ApiKeyConfigError(
                f"API key entry {number}: expected key_id:partner_id:sha256:scopes[:rate], "
                f"got {len(parts)} fields"
            )
        key_id, partner_id, digest, scope_list = parts[:4]
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
        rate: RateLimit | None = None
        if len(parts) == 5:
            try:
                rate = parse_rate_limit(parts[4])
            except ApiKeyConfigError as error:
                raise ApiKeyConfigError(f"API key entry {number} ({key_id}): {error}") from None
        keys.append(ApiKey(Principal(key_id, partner_id, scopes), digest, rate, len(parts) == 5))
    return KeyRing(keys)


class ScopePolicy:
    """Which scope each method requires: exact full method names first, then "/<service>/*"
    for every method of a service; None = open. `partner_only` scopes are not satisfied by
    the first-party `internal` scope, and never by a call without a key."""

    def __init__(self, scopes: Mapping[str, str], partner_only: Iterable[str] = ()) -> None:
        for method, scope in scopes.items():
            if not method.startswith("/") or method.count("/") != 2:
                raise ApiKeyConfigError(f"not a full method name: {method!r}")
            if not _SCOPE.match(scope):
                raise ApiKeyConfigError(f"bad scope {scope!r} for {method}")
        self._scopes = dict(scopes)
        self.partner_only = frozenset(partner_only)
        if INTERNAL_SCOPE in self.partner_only:
            raise ApiKeyConfigError(f"{INTERNAL_SCOPE!r} cannot be partner-only")

    def required(self, method: str) -> str | None:
        exact = self._scopes.get(method)
        if exact is not None:
            return exact
        service = method.rpartition("/")[0]
        return self._scopes.get(f"{service}/*")

    def allows(self, principal: Principal, scope: str) -> bool:
        if principal.has_scope(scope):
            return True
        return principal.is_internal and scope not in self.partner_only

    @property
    def methods(self) -> Mapping[str, str]:
        return dict(self._scopes)

    def scopes(self) -> frozenset[str]:
        return frozenset(self._scopes.values())


class RateLimiter(Protocol):
    """Per-key limits: seconds to wait before retrying, or None to let the call in."""

    async def check(self, principal: Principal, method: str) -> float | None: ...


class TokenBucketLimiter:
    """One token bucket per key id (held by this process: N replicas admit up to N times
    the rate). `limit_of(principal)` gives the key's limit, None for unlimited. Memory is one
    small entry per configured key that has called."""

    def __init__(
        self,
        limit_of: Callable[[Principal], RateLimit | None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limit_of = limit_of
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key id -> (tokens, at)

    async def check(self, principal: Principal, method: str) -> float | None:
        return self.take(principal)

    def take(self, principal: Principal) -> float | None:
        limit = self._limit_of(principal)
        if limit is None:
            return None
        now = self._clock()
        tokens, at = self._buckets.get(principal.key_id, (float(limit.burst), now))
        tokens = min(float(limit.burst), tokens + (now - at) * limit.per_second)
        if tokens >= 1.0:
            self._buckets[principal.key_id] = (tokens - 1.0, now)
            return None
        self._buckets[principal.key_id] = (tokens, now)
        return (1.0 - tokens) / limit.per_second


_PRINCIPAL: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "retail_api_principal", default=None
)


def current_principal() -> Principal | None:
    """The key the current call authenticated with (None: a call without a key)."""
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
        metadata={
            "key_id": key_id,
            "retry_after_seconds": f"{round(max(retry_after, 0.0), 3):g}",
        },
    )


def rate_limited_trailers(error: ServiceError, retry_after: float) -> tuple[tuple[str, Any], ...]:
    """The status details with a google.rpc.RetryInfo added, and a `retry-after` trailer in
    whole seconds (rounded up, at least 1) for tools that show trailers (grpcurl -v)."""
    status = error.to_status_proto()
    delay = duration_pb2.Duration()
    delay.FromMilliseconds(max(1, math.ceil(retry_after * 1000)))
    retry = any_pb2.Any()
    retry.Pack(error_details_pb2.RetryInfo(retry_delay=delay))
    status.details.append(retry)
    return (
        (STATUS_DETAILS_KEY, status.SerializeToString()),
        (RETRY_AFTER_HEADER, str(max(1, math.ceil(retry_after)))),
    )


def _presented_key(metadata: Any) -> str | None:
    for key, value in metadata or ():
        if key == API_KEY_HEADER:
            return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
    return None


_Behavior = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Any]


class ApiKeyInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Authenticates `x-api-key`, enforces the policy's scopes and the limiter before any
    handler runs."""

    def __init__(
        self,
        keys: KeyRing,
        policy: ScopePolicy,
        limiter: RateLimiter | None = None,
        *,
        trust_keyless_calls: bool = False,
    ) -> None:
        self.keys = keys
        self.policy = policy
        self.limiter = limiter
        self.trust_keyless_calls = trust_keyless_calls

    def judge(self, method: str, presented: str | None) -> Principal | ServiceError | None:
        """The principal the call runs as (None: without a key, admitted), or the refusal."""
        required = self.policy.required(method)
        if presented is None:
            if required is None:
                return None
            if self.trust_keyless_calls and required not in self.policy.partner_only:
                return None
            return unauthenticated(
                f"{method} needs an API key (metadata {API_KEY_HEADER!r}) with scope {required!r}",
                method=method,
                required_scope=required,
            )
        principal = self.keys.authenticate(presented.strip())
        if principal is None:
            return unauthenticated(
                "the API key is not valid (unknown, revoked or malformed)", method=method
            )
        if required is not None and not self.policy.allows(principal, required):
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
        # Open methods (health, reflection: grpcurl sends its -H headers there too) cost no
        # tokens, so discovering a service never eats into a key's rate.
        limiter = self.limiter if self.policy.required(method) is not None else None
        return _running_as(handler, verdict, method, limiter)


def server_interceptors(
    settings: ServiceSettings, policy: ScopePolicy
) -> list[grpc.aio.ServerInterceptor]:  # type: ignore[type-arg]
    """A service's key interceptor from its settings: `<SERVICE>_PARTNER_API_KEYS` (the
    keys), `<SERVICE>_REQUIRE_API_KEY` (false: calls without a key are trusted internal
    calls), `<SERVICE>_API_KEY_RATE_LIMIT` (partner keys whose entry names no rate). A bad
    value fails the start, naming the entry."""
    keys = parse_api_keys(settings.partner_api_keys)
    try:
        default = parse_rate_limit(settings.api_key_rate_limit)
    except ApiKeyConfigError as error:
        raise ApiKeyConfigError(f"API key rate limit setting: {error}") from None
    limiter = TokenBucketLimiter(lambda principal: keys.limit_of(principal.key_id, default))
    return [
        ApiKeyInterceptor(keys, policy, limiter, trust_keyless_calls=not settings.require_api_key)
    ]


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
                await context.abort(error.code, error.message, rate_limited_trailers(error, wait))

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


# -- callers -------------------------------------------------------------------------------


def _with_key(details: grpc.aio.ClientCallDetails, key: str) -> grpc.aio.ClientCallDetails:
    metadata = grpc.aio.Metadata(*(details.metadata or ()))
    if API_KEY_HEADER not in metadata:  # a call that brings its own key keeps it
        metadata.add(API_KEY_HEADER, key)
    return grpc.aio.ClientCallDetails(
        details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
    )


class ApiKeyUnaryInterceptor(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[type-arg]
    """Sends the caller's own key (`x-api-key`) with every unary call of a channel."""

    def __init__(self, key: str) -> None:
        self.key = key

    async def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Any],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        return await continuation(_with_key(client_call_details, self.key), request)


class ApiKeyStreamInterceptor(grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[type-arg]
    """The same for server-streaming calls (order-svc's WatchOrderEvents)."""

    def __init__(self, key: str) -> None:
        self.key = key

    async def intercept_unary_stream(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Any],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        return await continuation(_with_key(client_call_details, self.key), request)


def caller_interceptors(key: str) -> Sequence[grpc.aio.ClientInterceptor]:
    """Client interceptors that present `key` on every call (none for an empty key)."""
    if not key:
        return ()
    return (ApiKeyUnaryInterceptor(key), ApiKeyStreamInterceptor(key))  # type: ignore[return-value]


def main(argv: list[str]) -> int:
    """`python -m retail_kit.apikeys <key_id> <partner_id> <scope,scope> [rate]`: a new key."""
    if len(argv) not in (3, 4):
        print(__doc__.split("\n\n")[1] if __doc__ else "", file=sys.stderr)
        print("usage: python -m retail_kit.apikeys KEY_ID PARTNER_ID SCOPE[,SCOPE...] [RATE]")
        return 2
    key_id, partner_id, scopes, *rate = argv
    try:
        key, entry = new_api_key(key_id, partner_id, scopes.split(","), *rate)
    except ApiKeyConfigError as error:
        print(error, file=sys.stderr)
        return 2
    print(f"key (give to the partner, shown once): {key}")
    print(f"setting entry (store this):           {entry}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
