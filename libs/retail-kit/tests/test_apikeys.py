"""Partner API keys over real gRPC: a ServiceHost with the interceptor, a tiny servicer that
records what ran and as whom, calls with and without keys on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from retail_kit.apikeys import (
    ApiKeyConfigError,
    ApiKeyInterceptor,
    Principal,
    RateLimit,
    ScopePolicy,
    TokenBucketLimiter,
    caller_interceptors,
    current_principal,
    digest_of,
    format_entry,
    main,
    new_api_key,
    parse_api_keys,
    parse_rate_limit,
    server_interceptors,
)
from retail_kit.errors import STATUS_DETAILS_KEY, RpcErrorDetails
from retail_kit.server import ServiceContext, ServiceHost
from retail_kit.settings import ServiceSettings
from retail_kit.testing import channel_to, running_service

SERVICE = "test.v1.Echo"
PAY = f"/{SERVICE}/Pay"  # scope pay.write
WATCH = f"/{SERVICE}/Watch"  # scope pay.read (server streaming)
OPEN = f"/{SERVICE}/Open"  # no scope
ADMIN_SERVICE = "test.v1.Admin"
PURGE = f"/{ADMIN_SERVICE}/Purge"  # scope admin.all by the service wildcard

PAY_KEY, PAY_ENTRY = new_api_key("pk_pay", "wechat_pay", ["pay.write", "pay.read"])
READ_KEY, READ_ENTRY = new_api_key("pk_read", "auditor", ["pay.read"])
ADMIN_KEY, ADMIN_ENTRY = new_api_key("pk_admin", "ops", ["admin.all"])
POLICY = ScopePolicy({PAY: "pay.write", WATCH: "pay.read", f"/{ADMIN_SERVICE}/*": "admin.all"})


@dataclass
class Calls:
    """What the handlers saw: (method, partner id or None) per call that ran."""

    seen: list[tuple[str, str | None]] = field(default_factory=list)


class Limiter:
    def __init__(self) -> None:
        self.blocked: set[str] = set()

    async def check(self, principal: Principal, method: str) -> float | None:
        return 7.5 if principal.key_id in self.blocked else None


def _partner() -> str | None:
    principal = current_principal()
    return principal.partner_id if principal else None


def _register(calls: Calls) -> Any:
    async def unary(request: bytes, context: Any) -> bytes:
        method = "Pay" if request == b"pay" else "Open"
        # Another call's principal must not show up here while this one waits.
        await asyncio.sleep(0.01)
        calls.seen.append((method, _partner()))
        return (_partner() or "-").encode()

    async def watch(request: bytes, context: Any) -> AsyncIterator[bytes]:
        calls.seen.append(("Watch", _partner()))
        for _ in range(2):
            yield (_partner() or "-").encode()

    async def purge(request: bytes, context: Any) -> bytes:
        calls.seen.append(("Purge", _partner()))
        return b"purged"

    def register(server: grpc.aio.Server, context: ServiceContext) -> None:
        same = {"request_deserializer": None, "response_serializer": None}
        server.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(
                    SERVICE,
                    {
                        "Pay": grpc.unary_unary_rpc_method_handler(unary, **same),
                        "Open": grpc.unary_unary_rpc_method_handler(unary, **same),
                        "Watch": grpc.unary_stream_rpc_method_handler(watch, **same),
                    },
                ),
                grpc.method_handlers_generic_handler(
                    ADMIN_SERVICE,
                    {"Purge": grpc.unary_unary_rpc_method_handler(purge, **same)},
                ),
            )
        )

    return register


@dataclass
class Server:
    channel: grpc.aio.Channel
    calls: Calls
    limiter: Limiter
    host: ServiceHost

    async def unary(self, method: str, request: bytes, key: str | None = None) -> bytes:
        call = self.channel.unary_unary(method, None, None)
        metadata = (("x-api-key", key),) if key is not None else None
        reply: bytes = await call(request, metadata=metadata, timeout=5)
        return reply

    async def stream(self, key: str | None = None) -> list[bytes]:
        call = self.channel.unary_stream(WATCH, None, None)
        metadata = (("x-api-key", key),) if key is not None else None
        return [reply async for reply in call(b"watch", metadata=metadata, timeout=5)]


@pytest.fixture(scope="module")
async def server(mongo_uri: str) -> AsyncIterator[Server]:
    calls, limiter = Calls(), Limiter()
    keys = parse_api_keys(";".join((PAY_ENTRY, READ_ENTRY, ADMIN_ENTRY)))
    async with (
        running_service(
            "apikeys-test",
            ServiceSettings(mongodb_uri=mongo_uri, database="apikeys_test"),
            (SERVICE,),
            _register(calls),
            interceptors=[ApiKeyInterceptor(keys, POLICY, limiter)],
        ) as host,
        channel_to(host) as channel,
    ):
        yield Server(channel, calls, limiter, host)


async def error_of(call: Any) -> RpcErrorDetails:
    try:
        await call
    except grpc.aio.AioRpcError as error:
        return RpcErrorDetails.from_rpc_error(error)
    raise AssertionError("the call succeeded; an error was expected")


async def test_scoped_method_runs_as_the_partner_of_a_key_with_the_scope(server: Server) -> None:
    before = len(server.calls.seen)
    assert await server.unary(PAY, b"pay", PAY_KEY) == b"wechat_pay"
    assert server.calls.seen[before:] == [("Pay", "wechat_pay")]


@pytest.mark.parametrize(
    "key",
    [
        None,
        "",
        "pk_pay",  # no secret
        "pk_pay." + "x" * 43,  # known id, wrong secret
        "pk_nobody." + PAY_KEY.partition(".")[2],  # unknown id, a real secret
        PAY_KEY + "x",
    ],
)
async def test_missing_or_bad_keys_are_unauthenticated_before_the_handler(
    server: Server, key: str | None
) -> None:
    before = len(server.calls.seen)
    details = await error_of(server.unary(PAY, b"pay", key))
    assert details.code is grpc.StatusCode.UNAUTHENTICATED
    assert (details.reason, details.domain) == ("UNAUTHENTICATED", "retail")
    assert details.metadata["method"] == PAY
    if key is None:
        assert details.metadata["required_scope"] == "pay.write"
    assert PAY_KEY.partition(".")[2] not in details.message
    assert server.calls.seen[before:] == []


async def test_a_key_without_the_scope_is_permission_denied_before_the_handler(
    server: Server,
) -> None:
    before = len(server.calls.seen)
    details = await error_of(server.unary(PAY, b"pay", READ_KEY))
    assert details.code is grpc.StatusCode.PERMISSION_DENIED
    assert details.reason == "PERMISSION_DENIED"
    assert details.metadata == {"method": PAY, "required_scope": "pay.write", "key_id": "pk_read"}
    # The admin key's scope covers another service only.
    denied = await error_of(server.unary(PAY, b"pay", ADMIN_KEY))
    assert denied.code is grpc.StatusCode.PERMISSION_DENIED
    assert server.calls.seen[before:] == []


async def test_open_methods_run_anonymously_but_refuse_a_bad_key(server: Server) -> None:
    before = len(server.calls.seen)
    assert await server.unary(OPEN, b"open") == b"-"
    assert await server.unary(OPEN, b"open", READ_KEY) == b"auditor"
    details = await error_of(server.unary(OPEN, b"open", "pk_read.wrong"))
    assert details.code is grpc.StatusCode.UNAUTHENTICATED
    assert server.calls.seen[before:] == [("Open", None), ("Open", "auditor")]


async def test_a_service_wildcard_scopes_every_method_of_the_service(server: Server) -> None:
    assert POLICY.required(PURGE) == "admin.all" and POLICY.required(OPEN) is None
    before = len(server.calls.seen)
    assert (await error_of(server.unary(PURGE, b""))).code is grpc.StatusCode.UNAUTHENTICATED
    denied = await error_of(server.unary(PURGE, b"", PAY_KEY))
    assert denied.metadata["required_scope"] == "admin.all"
    assert await server.unary(PURGE, b"", ADMIN_KEY) == b"purged"
    assert server.calls.seen[before:] == [("Purge", "ops")]


async def test_streaming_methods_are_checked_too(server: Server) -> None:
    before = len(server.calls.seen)
    assert await server.stream(READ_KEY) == [b"auditor", b"auditor"]
    details = await error_of(server.stream())
    assert details.code is grpc.StatusCode.UNAUTHENTICATED
    denied = await error_of(server.stream(ADMIN_KEY))
    assert denied.code is grpc.StatusCode.PERMISSION_DENIED
    assert server.calls.seen[before:] == [("Watch", "auditor")]


async def test_concurrent_calls_each_see_their_own_partner(server: Server) -> None:
    keys = [PAY_KEY, READ_KEY, None, ADMIN_KEY] * 10
    replies = await asyncio.gather(*(server.unary(OPEN, b"open", key) for key in keys))
    expected = {PAY_KEY: b"wechat_pay", READ_KEY: b"auditor", None: b"-", ADMIN_KEY: b"ops"}
    assert replies == [expected[key] for key in keys]


async def test_a_limiter_refuses_with_rate_limited_before_the_handler(server: Server) -> None:
    server.limiter.blocked.add("pk_pay")
    try:
        before = len(server.calls.seen)
        details = await error_of(server.unary(PAY, b"pay", PAY_KEY))
        assert details.code is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert details.reason == "RATE_LIMITED"
        assert details.metadata == {"key_id": "pk_pay", "retry_after_seconds": "7.5"}
        # Other keys are not limited.
        assert await server.unary(OPEN, b"open", READ_KEY) == b"auditor"
        assert server.calls.seen[before:] == [("Open", "auditor")]
    finally:
        server.limiter.blocked.clear()
    assert await server.unary(PAY, b"pay", PAY_KEY) == b"wechat_pay"


async def test_health_stays_open_on_a_host_with_keys(server: Server) -> None:
    reply = await health_pb2_grpc.HealthStub(server.channel).Check(
        health_pb2.HealthCheckRequest(service=""), timeout=5
    )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


# -- the setting ---------------------------------------------------------------------------


def test_the_setting_keeps_digests_only_and_round_trips() -> None:
    key, entry = new_api_key("pk_x", "partner_x", ["order.payments", "order.read"])
    key_id, partner, digest, scopes = entry.split(":")
    assert (key_id, partner, digest) == ("pk_x", "partner_x", digest_of(key))
    assert key.partition(".")[2] not in entry and set(scopes.split(",")) == {
        "order.payments",
        "order.read",
    }
    ring = parse_api_keys(f" {entry} ;; {READ_ENTRY};")
    assert len(ring) == 2
    principal = ring.authenticate(key)
    assert principal == Principal("pk_x", "partner_x", frozenset({"order.payments", "order.read"}))
    assert ring.authenticate(key[:-1]) is None and ring.authenticate("") is None
    assert len(parse_api_keys("")) == 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("pk_a:partner:abc:order.payments", "digest must be 64"),
        ("pk_a:partner:" + "A" * 64 + ":order.payments", "digest must be 64"),
        ("pk_a:partner:" + "a" * 64, "expected key_id:partner_id:sha256:scopes"),
        ("pk_a:partner:" + "a" * 64 + ":", "scopes must be"),
        ("pk_a:partner:" + "a" * 64 + ":Order Payments", "scopes must be"),
        ("pk a:partner:" + "a" * 64 + ":x", "bad key id"),
        ("pk_a::" + "a" * 64 + ":x", "bad partner id"),
        (
            format_entry("pk_a", "p", "a" * 64, ["x"])
            + ";"
            + format_entry("pk_a", "q", "b" * 64, ["y"]),
            "configured twice",
        ),
    ],
)
def test_bad_settings_fail_at_start_naming_the_entry(text: str, message: str) -> None:
    with pytest.raises(ApiKeyConfigError, match=message):
        parse_api_keys(text)


def test_bad_policies_fail_at_start() -> None:
    for bad in ({"Pay": "pay.write"}, {PAY: "Pay Write"}):
        with pytest.raises(ApiKeyConfigError):
            ScopePolicy(bad)


def test_the_command_prints_a_key_and_its_entry(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pk_cli", "cli_partner", "order.payments"]) == 0
    out = capsys.readouterr().out.splitlines()
    key = out[0].split(": ", 1)[1].strip()
    entry = out[1].split(": ", 1)[1].strip()
    assert parse_api_keys(entry).authenticate(key) is not None
    assert main(["pk_cli"]) == 2


# -- first-party callers, trusted networks, rate limits (issue 9) -------------------------

INTERNAL_KEY, INTERNAL_ENTRY = new_api_key("pk_gateway", "gateway", ["internal"])
SLOW_KEY, SLOW_ENTRY = new_api_key("pk_slow", "slow_partner", ["pay.read", "admin.all"], "0.01/2")
PARTNER_ONLY_POLICY = ScopePolicy(
    {PAY: "pay.write", WATCH: "pay.read", f"/{ADMIN_SERVICE}/*": "admin.all"},
    partner_only=["pay.write"],
)


@asynccontextmanager
async def hosted(
    mongo_uri: str, interceptors: list[Any], calls: Calls
) -> AsyncIterator[grpc.aio.Channel]:
    async with (
        running_service(
            "apikeys-test",
            ServiceSettings(mongodb_uri=mongo_uri, database="apikeys_test"),
            (SERVICE,),
            _register(calls),
            interceptors=interceptors,
        ) as host,
        channel_to(host) as channel,
    ):
        yield channel


def _call(channel: grpc.aio.Channel, method: str, request: bytes, key: str | None) -> Any:
    metadata = (("x-api-key", key),) if key is not None else None
    return channel.unary_unary(method, None, None)(request, metadata=metadata, timeout=5)


async def test_an_internal_key_passes_every_method_except_partner_only_ones(
    mongo_uri: str,
) -> None:
    calls = Calls()
    keys = parse_api_keys(";".join((PAY_ENTRY, INTERNAL_ENTRY)))
    interceptor = ApiKeyInterceptor(keys, PARTNER_ONLY_POLICY)
    async with hosted(mongo_uri, [interceptor], calls) as channel:
        assert await _call(channel, OPEN, b"open", INTERNAL_KEY) == b"gateway"
        assert await _call(channel, PURGE, b"", INTERNAL_KEY) == b"purged"
        watch = channel.unary_stream(WATCH, None, None)
        replies = [r async for r in watch(b"", metadata=(("x-api-key", INTERNAL_KEY),))]
        assert replies == [b"gateway", b"gateway"]
        # Confirming a payment is a payment partner's act, never the gateway's.
        denied = await error_of(_call(channel, PAY, b"pay", INTERNAL_KEY))
        assert (denied.code, denied.metadata["required_scope"]) == (
            grpc.StatusCode.PERMISSION_DENIED,
            "pay.write",
        )
        assert await _call(channel, PAY, b"pay", PAY_KEY) == b"wechat_pay"
    assert ("Pay", "gateway") not in calls.seen
    # has_scope stays literal: a handler asking "is this a payment partner?" hears no.
    principal = keys.authenticate(INTERNAL_KEY)
    assert principal is not None and principal.is_internal
    assert not principal.has_scope("pay.read")


async def test_a_trusted_network_admits_calls_without_a_key_except_partner_only_ones(
    mongo_uri: str,
) -> None:
    calls = Calls()
    keys = parse_api_keys(";".join((PAY_ENTRY, READ_ENTRY)))
    interceptor = ApiKeyInterceptor(keys, PARTNER_ONLY_POLICY, trust_keyless_calls=True)
    async with hosted(mongo_uri, [interceptor], calls) as channel:
        assert await _call(channel, PURGE, b"", None) == b"purged"
        details = await error_of(_call(channel, PAY, b"pay", None))
        assert details.code is grpc.StatusCode.UNAUTHENTICATED
        assert details.metadata["required_scope"] == "pay.write"
        # A key is still checked: a bad one refused, a good one held to its scopes.
        bad = await error_of(_call(channel, PURGE, b"", "pk_read.nope"))
        assert bad.code is grpc.StatusCode.UNAUTHENTICATED
        denied = await error_of(_call(channel, PURGE, b"", READ_KEY))
        assert denied.code is grpc.StatusCode.PERMISSION_DENIED
    assert calls.seen == [("Purge", None)]


def test_token_buckets_refill_at_the_rate_per_key() -> None:
    now = [100.0]
    limits = {"pk_a": RateLimit(2.0, 3), "pk_b": RateLimit(2.0, 3), "pk_free": None}
    limiter = TokenBucketLimiter(lambda p: limits[p.key_id], clock=lambda: now[0])
    a, b, free = (Principal(k, "p", frozenset({"x"})) for k in ("pk_a", "pk_b", "pk_free"))
    assert [limiter.take(a) for _ in range(3)] == [None, None, None]
    assert limiter.take(a) == pytest.approx(0.5)
    assert limiter.take(b) is None  # another key has its own bucket
    now[0] += 0.25
    assert limiter.take(a) == pytest.approx(0.25)
    now[0] += 0.25
    assert limiter.take(a) is None
    now[0] += 60  # refills up to the burst, not beyond
    assert [limiter.take(a) for _ in range(4)][-1] == pytest.approx(0.5)
    assert all(limiter.take(free) is None for _ in range(1000))


def test_rates_in_entries_and_the_default_for_the_rest() -> None:
    plain_key, plain_entry = new_api_key("pk_plain", "p", ["pay.read"])
    free_key, free_entry = new_api_key("pk_free", "p", ["pay.read"], "unlimited")
    capped_internal_key, capped_internal_entry = new_api_key("pk_int2", "q", ["internal"], "5/9")
    ring = parse_api_keys(
        ";".join((plain_entry, free_entry, SLOW_ENTRY, INTERNAL_ENTRY, capped_internal_entry))
    )
    default = RateLimit(50.0, 100)
    assert ring.limit_of("pk_plain", default) == default
    assert ring.limit_of("pk_free", default) is None
    assert ring.limit_of("pk_slow", default) == RateLimit(0.01, 2)
    assert ring.limit_of("pk_gateway", default) is None  # first-party keys: unlimited
    assert ring.limit_of("pk_int2", default) == RateLimit(5.0, 9)
    assert parse_rate_limit("20") == RateLimit(20.0, 20)
    assert parse_rate_limit("0.5") == RateLimit(0.5, 1)
    assert parse_rate_limit(" Unlimited ") is None
    assert all(ring.authenticate(k) for k in (plain_key, free_key, capped_internal_key))


@pytest.mark.parametrize("rate", ["fast", "0/5", "5/0", "-1/2", "1/2/3", ""])
def test_bad_rates_fail_at_start(rate: str) -> None:
    with pytest.raises(ApiKeyConfigError, match="rate"):
        parse_api_keys(f"pk_a:partner:{'a' * 64}:x:{rate}")
    with pytest.raises(ApiKeyConfigError):
        server_interceptors(ServiceSettings(api_key_rate_limit=rate or "x"), POLICY)


async def test_over_its_rate_a_key_gets_rate_limited_with_retry_info_before_the_handler(
    mongo_uri: str,
) -> None:
    """A key allowed 2 calls at once and one more per 100 s: the third call is refused.
    Open methods (health, reflection, here Open) cost no tokens."""
    calls = Calls()
    settings = ServiceSettings(
        partner_api_keys=";".join((SLOW_ENTRY, ADMIN_ENTRY)), require_api_key=True
    )
    async with hosted(mongo_uri, server_interceptors(settings, POLICY), calls) as channel:
        for _ in range(5):
            assert await _call(channel, OPEN, b"open", SLOW_KEY) == b"slow_partner"
        assert await _call(channel, PURGE, b"", SLOW_KEY) == b"purged"
        assert await _call(channel, PURGE, b"", SLOW_KEY) == b"purged"
        call = _call(channel, PURGE, b"", SLOW_KEY)
        try:
            await call
            raise AssertionError("the third call was admitted")
        except grpc.aio.AioRpcError as error:
            details = RpcErrorDetails.from_rpc_error(error)
            trailers = dict(error.trailing_metadata() or ())
        assert details.code is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert (details.reason, details.metadata["key_id"]) == ("RATE_LIMITED", "pk_slow")
        wait = float(details.metadata["retry_after_seconds"])
        assert 90 < wait <= 100
        assert 0 <= int(trailers["retry-after"]) - wait <= 1
        status = status_pb2.Status.FromString(trailers[STATUS_DETAILS_KEY])
        retry = [d for d in status.details if d.Is(error_details_pb2.RetryInfo.DESCRIPTOR)]
        info = error_details_pb2.RetryInfo()
        retry[0].Unpack(info)
        assert abs(info.retry_delay.ToMilliseconds() / 1000 - wait) <= 0.002
        # Other keys keep their own buckets (the default 50/100).
        assert await _call(channel, PURGE, b"", ADMIN_KEY) == b"purged"
    assert calls.seen == [("Open", "slow_partner")] * 5 + [("Purge", "slow_partner")] * 2 + [
        ("Purge", "ops")
    ]


async def test_settings_decide_whether_calls_without_a_key_are_trusted(mongo_uri: str) -> None:
    for require, expected in ((False, None), (True, grpc.StatusCode.UNAUTHENTICATED)):
        settings = ServiceSettings(partner_api_keys=READ_ENTRY, require_api_key=require)
        calls = Calls()
        async with hosted(mongo_uri, server_interceptors(settings, POLICY), calls) as channel:
            if expected is None:
                assert await _call(channel, PURGE, b"", None) == b"purged"
            else:
                assert (await error_of(_call(channel, PURGE, b"", None))).code is expected
            # Open methods (not in the policy) and health stay open either way.
            assert await _call(channel, OPEN, b"open", None) == b"-"


async def test_caller_interceptors_send_the_callers_key_on_every_call(server: Server) -> None:
    assert caller_interceptors("") == ()
    async with grpc.aio.insecure_channel(
        f"127.0.0.1:{server.host.port}", interceptors=list(caller_interceptors(PAY_KEY))
    ) as channel:
        assert await _call(channel, PAY, b"pay", None) == b"wechat_pay"
        watch = channel.unary_stream(WATCH, None, None)
        assert [r async for r in watch(b"", timeout=5)] == [b"wechat_pay"] * 2
        # A call that brings its own key keeps it.
        assert await _call(channel, OPEN, b"open", READ_KEY) == b"auditor"
