"""Partner API keys over real gRPC: a ServiceHost with the interceptor, a tiny servicer that
records what ran and as whom, calls with and without keys on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from retail_kit.apikeys import (
    ApiKeyConfigError,
    ApiKeyInterceptor,
    Principal,
    ScopePolicy,
    current_principal,
    digest_of,
    format_entry,
    main,
    new_api_key,
    parse_api_keys,
)
from retail_kit.errors import RpcErrorDetails
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
