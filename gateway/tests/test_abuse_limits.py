"""Abuse limits over real HTTP: cost budgets per role, batch size, rate limits per member /
device / IP, production settings (introspection and field suggestions off). Every refusal is
checked to have made no gRPC call."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest
from graphql import parse

from gateway import settings as gateway_settings_module
from gateway.auth import Role
from gateway.cost import BUDGETS, estimate, parse_budgets
from gateway.ratelimit import DEFAULT_RATES, Rate, RateLimiter, parse_rates
from gateway.schema import build_schema
from gateway.settings import DEV_JWT_SECRET, GatewaySettings
from gateway.testing import GatewayClient, running_gateway
from gateway.tests.conftest import token
from retail_kit.settings import SettingsError

NESTED = (
    "{ products(first: 50) { edges { node { skus { product { skus { product { skus { id "
    "} } } } } } } } }"
)
"""Depth 10 (allowed), but 50 products x 5 SKUs x 5 x 5 ...: an estimate of ~3,100."""

PAGE = "query Page($first: Int!) { products(first: $first) { edges { node { id skus { id } } } } }"


def _error(body: dict[str, Any]) -> dict[str, Any]:
    [error] = body["errors"]
    return dict(error)


# --- cost ---------------------------------------------------------------------------------


def test_estimates_follow_page_sizes_lists_and_fragments() -> None:
    schema = build_schema()._schema

    def cost(query: str, variables: dict[str, Any] | None = None) -> int:
        return estimate(schema, parse(query), None, variables)

    # A list field costs its weight once (one batched read) plus its size x what each item
    # selects: products 1 + edges (1 + 20 x node (1 + skus (1 + 5 x quote 1))) + pageInfo 1.
    page = "{ products { edges { node { skus { quote { rule } } } } pageInfo { hasNextPage } } }"
    assert cost(page) == 1 + (1 + 20 * (1 + (1 + 5 * 1))) + 1
    assert cost(PAGE, {"first": 3}) == 1 + (1 + 3 * (1 + 1))
    assert cost(PAGE, {"first": 100_000}) == 1 + (1 + 100 * 2)  # no page is larger than 100
    assert cost("{ me { role } __schema { types { fields { name } } } }") == 1
    # A fragment spread twice at each of 40 levels: 2**40 pages, computed without expanding.
    levels = 40
    doubling = ["query Flood { ...F0 }"]
    doubling += [f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(levels)]
    doubling.append(
        f"fragment F{levels} on Query {{ products(first: 1) {{ edges {{ cursor }} }} }}"
    )
    assert cost("\n".join(doubling)) == 2**levels * (1 + 1)
    # _entities: one per representation.
    entities = (
        "query($r: [_Any!]!) { _entities(representations: $r) { ... on Product { skus { id } } } }"
    )
    assert cost(entities, {"r": [{}] * 7}) == 1 + 7 * 1


async def test_over_budget_is_refused_before_any_call(gateway: GatewayClient) -> None:
    body = await gateway.query(NESTED)
    error = _error(body)
    assert body["data"] is None
    assert error["extensions"]["code"] == "COST_LIMIT_EXCEEDED"
    cost = error["extensions"]["cost"]
    assert cost["role"] == "anonymous" and cost["budget"] == BUDGETS[Role.ANONYMOUS]
    assert cost["estimated"] > cost["budget"]
    assert gateway.calls.calls == []
    # The same query is within a signed-in customer's larger budget.
    allowed = await gateway.query(NESTED, headers=token(Role.CUSTOMER, member_id="m_budget"))
    assert "errors" not in allowed and allowed["data"]["products"]["edges"]


@pytest.fixture(scope="module")
async def tight(gateway_settings: GatewaySettings) -> AsyncIterator[GatewayClient]:
    settings = dataclasses.replace(
        gateway_settings, cost_budgets="anonymous=40,admin=200", max_batch_operations=3
    )
    async with running_gateway(settings) as client:
        yield client


async def test_budgets_are_configurable_and_count_variables(tight: GatewayClient) -> None:
    tight.calls.clear()
    assert "errors" not in await tight.query(PAGE, {"first": 2})  # 6
    assert _error(await tight.query(PAGE, {"first": 20}))["extensions"]["cost"] == {
        "estimated": 42,
        "budget": 40,
        "role": "anonymous",
    }
    assert [c.method for c in tight.calls.calls] == ["ListProducts"]
    assert "errors" not in await tight.query(PAGE, {"first": 20}, token(Role.ADMIN))


async def test_a_batch_is_costed_as_a_whole(tight: GatewayClient) -> None:
    tight.calls.clear()
    one = {"query": PAGE, "variables": {"first": 6}}  # 14 each
    response = await tight.http.post("/graphql", json=[one, one])
    assert all("errors" not in item for item in response.json())
    tight.calls.clear()
    response = await tight.http.post("/graphql", json=[one, one, one])  # 42 > 40
    answers = response.json()
    assert [a["errors"][0]["extensions"]["code"] for a in answers] == ["COST_LIMIT_EXCEEDED"] * 3
    assert tight.calls.calls == []


async def test_budgets_must_be_well_formed() -> None:
    assert parse_budgets("customer=5000")[Role.CUSTOMER] == 5000
    assert parse_budgets("")[Role.ANONYMOUS] < parse_budgets("")[Role.CUSTOMER]
    assert BUDGETS[Role.CUSTOMER] < BUDGETS[Role.ASSOCIATE] < BUDGETS[Role.ADMIN]
    for bad in ("robot=5", "customer=0", "customer"):
        with pytest.raises(SettingsError, match="GATEWAY_COST_BUDGETS"):
            GatewaySettings(cost_budgets=bad)


# --- batches ------------------------------------------------------------------------------


async def test_batches_over_the_limit_are_refused_whole(tight: GatewayClient) -> None:
    tight.calls.clear()
    one = {"query": '{ product(id: "p_0001") { id } }'}
    response = await tight.http.post("/graphql", json=[one] * 4)
    assert response.status_code == 400
    error = _error(response.json())
    assert error["extensions"] == {"code": "BATCH_TOO_LARGE", "maxOperations": 3}
    assert tight.calls.calls == []
    response = await tight.http.post("/graphql", json=[one] * 3)
    assert [a["data"] for a in response.json()] == [{"product": {"id": "p_0001"}}] * 3
    # The operations of a batch share the request's DataLoaders: one BatchGetProducts.
    assert [c.method for c in tight.calls.calls] == ["BatchGetProducts"]
    empty = await tight.http.post("/graphql", json=[])
    assert empty.status_code == 400 and _error(empty.json())["extensions"]["code"] == "BAD_REQUEST"


async def test_batches_can_be_refused_altogether(gateway_settings: GatewaySettings) -> None:
    settings = dataclasses.replace(gateway_settings, max_batch_operations=0)
    async with running_gateway(settings) as client:
        response = await client.http.post("/graphql", json=[{"query": "{ me { role } }"}])
        assert response.status_code == 400
        assert _error(response.json())["extensions"]["code"] == "BATCH_TOO_LARGE"
        assert (await client.query("{ me { role } }"))["data"] == {"me": {"role": "ANONYMOUS"}}


# --- rate limits ----------------------------------------------------------------------------

SLOW = "anonymous=0.001/3,customer=0.001/2,kiosk=0.001/2,admin=0.001/2"
"""One token per 1,000 s: within a test nothing refills, so the counts are exact."""
ONE = '{ product(id: "p_0002") { id } }'


@pytest.fixture(scope="module")
async def limited(gateway_settings: GatewaySettings) -> AsyncIterator[GatewayClient]:
    async with running_gateway(dataclasses.replace(gateway_settings, rate_limits=SLOW)) as client:
        yield client


def _from(ip: str) -> dict[str, str]:
    """uvicorn takes the client address from X-Forwarded-For sent by a trusted proxy (the
    test client connects from 127.0.0.1, which FORWARDED_ALLOW_IPS trusts by default)."""
    return {"X-Forwarded-For": ip}


async def test_anonymous_callers_are_limited_per_ip(limited: GatewayClient) -> None:
    for _ in range(3):
        assert "errors" not in await limited.query(ONE, headers=_from("203.0.113.7"))
    limited.calls.clear()
    refused = await limited.post(ONE, headers=_from("203.0.113.7"))
    assert refused.status_code == 429
    retry_after = int(refused.headers["retry-after"])
    assert 1 <= retry_after <= 1000
    error = _error(refused.json())
    assert error["extensions"] == {"code": "RATE_LIMITED", "retryAfterSeconds": retry_after}
    assert limited.calls.calls == []
    assert "errors" not in await limited.query(ONE, headers=_from("203.0.113.8"))


async def test_members_and_devices_have_their_own_buckets(limited: GatewayClient) -> None:
    same_ip = _from("198.51.100.1")
    first = {**token(Role.CUSTOMER, member_id="m_rate_1"), **same_ip}
    second = {**token(Role.CUSTOMER, member_id="m_rate_2"), **same_ip}
    for _ in range(2):
        assert (await limited.post(ONE, headers=first)).status_code == 200
    assert (await limited.post(ONE, headers=first)).status_code == 429
    assert (await limited.post(ONE, headers=second)).status_code == 200
    kiosk = token(Role.KIOSK, store_id="st_001", device_id="kiosk_rate_1")
    other_kiosk = token(Role.KIOSK, store_id="st_001", device_id="kiosk_rate_2")
    for _ in range(2):
        assert (await limited.post(ONE, headers={**kiosk, **same_ip})).status_code == 200
    assert (await limited.post(ONE, headers={**kiosk, **same_ip})).status_code == 429
    assert (await limited.post(ONE, headers={**other_kiosk, **same_ip})).status_code == 200
    # Anonymous callers from that IP draw from the IP's bucket, untouched by the others.
    assert (await limited.post(ONE, headers=same_ip)).status_code == 200


async def test_a_batch_takes_one_token_per_operation(limited: GatewayClient) -> None:
    ip = _from("192.0.2.50")
    response = await limited.http.post("/graphql", json=[{"query": ONE}] * 3, headers=ip)
    assert response.status_code == 200 and len(response.json()) == 3
    limited.calls.clear()
    assert (await limited.post(ONE, headers=ip)).status_code == 429
    assert limited.calls.calls == []


def test_buckets_refill_at_the_rate_up_to_the_burst() -> None:
    now = [100.0]
    limiter = RateLimiter({Role.ANONYMOUS: Rate(2.0, 4)}, clock=lambda: now[0])
    anonymous = dataclasses.replace(token_principal(), role=Role.ANONYMOUS)
    assert [limiter.take(anonymous, "10.0.0.1") for _ in range(4)] == [None] * 4
    assert limiter.take(anonymous, "10.0.0.1") == pytest.approx(0.5)  # 1 token at 2/s
    now[0] += 0.5
    assert limiter.take(anonymous, "10.0.0.1") is None
    now[0] += 60  # refills to the burst, not beyond
    assert [limiter.take(anonymous, "10.0.0.1") for _ in range(5)][-1] == pytest.approx(0.5)
    small = RateLimiter({Role.ANONYMOUS: Rate(1.0, 2)}, max_buckets=2, clock=lambda: now[0])
    for ip in ("a", "b", "c"):
        small.take(anonymous, ip)
    assert len(small._buckets) == 2


def token_principal() -> Any:
    from gateway.auth import ANONYMOUS

    return ANONYMOUS


def test_rate_limit_settings() -> None:
    assert parse_rates("off") is None
    assert parse_rates("") == DEFAULT_RATES
    assert parse_rates("customer=5/10")[Role.CUSTOMER] == Rate(5.0, 10)  # type: ignore[index]
    for bad in ("customer=0/5", "customer=5", "nobody=1/1"):
        with pytest.raises(SettingsError, match="GATEWAY_RATE_LIMITS"):
            GatewaySettings(rate_limits=bad)


# --- production settings: introspection and field suggestions ------------------------------

PRODUCTION_SECRET = "a-production-secret-of-at-least-32-bytes"


def test_production_profile_defaults() -> None:
    env = {"GATEWAY_PROFILE": "production", "GATEWAY_JWT_SECRET": PRODUCTION_SECRET}
    settings = gateway_settings_module.load(env)
    assert not settings.introspection and not settings.field_suggestions
    assert not settings.graphiql
    assert parse_rates(settings.rate_limits) == DEFAULT_RATES
    explicit = gateway_settings_module.load({**env, "GATEWAY_INTROSPECTION": "true"})
    assert explicit.introspection and not explicit.field_suggestions
    development = gateway_settings_module.load({})
    assert development.introspection and development.field_suggestions
    assert parse_rates(development.rate_limits) is None
    with pytest.raises(SettingsError, match="production needs its own secret"):
        gateway_settings_module.load({"GATEWAY_PROFILE": "production"})
    assert DEV_JWT_SECRET not in PRODUCTION_SECRET
    with pytest.raises(SettingsError, match="GATEWAY_PROFILE"):
        gateway_settings_module.load({"GATEWAY_PROFILE": "staging"})
    with pytest.raises(SettingsError, match="GATEWAY_WECHAT_DEV_LOGIN"):
        gateway_settings_module.load({**env, "GATEWAY_WECHAT_DEV_LOGIN": "true"})


@pytest.fixture(scope="module")
async def production(gateway_settings: GatewaySettings) -> AsyncIterator[GatewayClient]:
    settings = dataclasses.replace(
        gateway_settings, introspection=False, field_suggestions=False, graphiql=False
    )
    async with running_gateway(settings) as client:
        yield client


TYPOS = [
    "{ products(first: 1) { edges { node { titel } } } }",
    "{ products(frist: 1) { edges { cursor } } }",
    "query($f: SearchFiltr) { search(filter: $f) { totalCount } }",
    '{ search(filter: { categoryIdz: ["x"] }) { totalCount } }',
]


@pytest.mark.parametrize("query", TYPOS)
async def test_field_suggestions_are_off_in_production(
    gateway: GatewayClient, production: GatewayClient, query: str
) -> None:
    development = await gateway.query(query)
    assert any("Did you mean" in e["message"] for e in development["errors"])
    production.calls.clear()
    body = await production.query(query)
    assert body["data"] is None and body["errors"]
    for error in body["errors"]:
        assert "Did you mean" not in error["message"]
        assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert production.calls.calls == []


@pytest.mark.parametrize(
    "query",
    [
        "{ __schema { types { name } } }",
        '{ __type(name: "Product") { fields { name } } }',
        "{ _service { sdl } }",
    ],
)
async def test_introspection_and_the_subgraph_sdl_are_off_in_production(
    production: GatewayClient, query: str
) -> None:
    body = await production.query(query)
    assert body["data"] is None
    assert "introspection has been disabled" in body["errors"][0]["message"]
    assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert production.calls.calls == []
    page = await production.http.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 404
