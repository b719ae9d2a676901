"""Document limits, introspection switch, GraphiQL, error masking and unavailable services."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest
from graphql import GraphQLError, parse, validate
from strawberry.extensions import max_aliases, parser_cache, query_depth_limiter, validation_cache

from gateway.schema import (
    DOCUMENT_CACHE_SIZE,
    DOCUMENT_LIMITS,
    MAX_ALIASES,
    MAX_DEPTH,
    build_schema,
)
from gateway.settings import GatewaySettings
from gateway.testing import GatewayClient, running_gateway
from retail_kit.embedded import free_port


def _nested_sku_product(levels: int) -> str:
    """product > skus > product > skus ... : each level pair adds two to the depth."""
    inner = "id"
    for _ in range(levels):
        inner = f"skus {{ product {{ {inner} }} }}"
    return f'{{ product(id: "p_0001") {{ {inner} }} }}'


async def test_depth_within_the_limit_runs(gateway: GatewayClient) -> None:
    body = await gateway.query(_nested_sku_product(4))  # depth 9
    assert "errors" not in body


async def test_too_deep_query_is_rejected_before_execution(gateway: GatewayClient) -> None:
    body = await gateway.query(_nested_sku_product(5))  # depth 11
    assert body["data"] is None
    [error] = body["errors"]
    assert "exceeds maximum operation depth of 10" in error["message"]
    assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert gateway.calls.calls == []


async def test_too_many_aliases_are_rejected(gateway: GatewayClient) -> None:
    fields = " ".join(f'a{i}: product(id: "p_0001") {{ id }}' for i in range(31))
    body = await gateway.query(f"{{ {fields} }}")
    assert body["data"] is None
    assert "aliases" in body["errors"][0]["message"]
    assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert gateway.calls.calls == []


async def test_thirty_aliases_are_allowed(gateway: GatewayClient) -> None:
    fields = " ".join(f'a{i}: product(id: "p_{i + 1:04d}") {{ id }}' for i in range(30))
    body = await gateway.query(f"{{ {fields} }}")
    assert len(body["data"]) == 30
    assert len(gateway.calls.named("BatchGetProducts")) == 1


def _doubling_fragments(levels: int) -> str:
    """F0 spreads F1 twice, F1 spreads F2 twice, ...: the last fragment's one alias is
    executed 2**levels times, in a document of ~10 tokens per level."""
    parts = ["query Flood { ...F0 }"]
    parts += [f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(levels)]
    parts.append(f"fragment F{levels} on Query {{ a: __typename }}")
    return "\n".join(parts)


async def test_aliases_behind_fragment_spreads_count(gateway: GatewayClient) -> None:
    """CVE-2026-47707: aliases in fragments count once per spread, as they are executed."""
    aliases = " ".join(f'a{i}: product(id: "p_{i + 1:04d}") {{ id }}' for i in range(11))
    flood = f"{{ ...P ...P ... on Query {{ ...P }} }} fragment P on Query {{ {aliases} }}"
    body = await gateway.query(flood)  # 3 spreads x 11 aliases
    assert body["data"] is None
    [error] = body["errors"]
    assert error["message"] == "33 aliases found. Allowed: 30"
    assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert gateway.calls.calls == []
    allowed = f"{{ ...P ...P }} fragment P on Query {{ {aliases} }}"  # 22
    body = await gateway.query(allowed)
    assert "errors" not in body and len(body["data"]) == 11


async def test_fragments_spread_twice_at_every_level_are_counted_without_expanding(
    gateway: GatewayClient,
) -> None:
    """64 levels: 2**64 aliases as executed, counted exactly from each fragment's figures
    computed once (strawberry's own limiters walk every spread again: 2**64 steps, a hang;
    18 levels already took them 1.8 s of CPU). The same document twice: the cached
    validation result is answered again, unchanged."""
    for _ in range(2):
        body = await gateway.query(_doubling_fragments(64))
        assert body["data"] is None
        [error] = body["errors"]
        assert error["message"] == f"{2**64} aliases found. Allowed: 30"
        assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert gateway.calls.calls == []


async def test_depth_counts_through_fragments(gateway: GatewayClient) -> None:
    def through_fragments(levels: int) -> str:
        inner = "id"
        for _ in range(levels):
            inner = f"product {{ skus {{ {inner} }} }}"
        return (
            'query Deep { ...Top } fragment Top on Query { product(id: "p_0001") { ...Sku } } '
            f"fragment Sku on Product {{ skus {{ ... on Sku {{ {inner} }} }} }}"
        )

    body = await gateway.query(through_fragments(4))  # depth 10
    assert "errors" not in body
    body = await gateway.query(through_fragments(5))  # depth 12
    assert body["data"] is None
    [error] = body["errors"]
    assert error["message"] == "'Deep' exceeds maximum operation depth of 10"
    assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"


async def test_refused_and_broken_documents_answer_the_same_when_repeated(
    gateway: GatewayClient,
) -> None:
    """Parsing and validation are cached per query text; a repeat must answer as the first."""
    too_deep = _nested_sku_product(5)
    broken = "{ products { "
    unknown = "{ nothingHere }"
    first = [await gateway.query(q) for q in (too_deep, broken, unknown)]
    again = [await gateway.query(q) for q in (too_deep, broken, unknown)]
    assert again == first
    codes = [body["errors"][0]["extensions"]["code"] for body in first]
    assert codes == [
        "GRAPHQL_VALIDATION_FAILED",
        "GRAPHQL_PARSE_FAILED",
        "GRAPHQL_VALIDATION_FAILED",
    ]
    assert gateway.calls.calls == []


async def test_too_many_tokens_are_rejected(gateway: GatewayClient) -> None:
    fields = " ".join(["id"] * 2100)
    body = await gateway.query(f'{{ product(id: "p_0001") {{ {fields} }} }}')
    assert body["data"] is None
    assert "tokens" in body["errors"][0]["message"]
    assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"


async def test_syntax_and_unknown_field_errors_have_codes(gateway: GatewayClient) -> None:
    body = await gateway.query("{ products { ")
    assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"
    body = await gateway.query("{ nothingHere }")
    assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"


async def test_introspection_is_on_by_default(gateway: GatewayClient) -> None:
    body = await gateway.query("{ __schema { queryType { name } } }")
    assert body["data"] == {"__schema": {"queryType": {"name": "Query"}}}


async def test_graphiql_is_served_on_get(gateway: GatewayClient) -> None:
    response = await gateway.http.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert "graphiql" in response.text.lower()


@pytest.fixture(scope="module")
async def locked_down(gateway_settings: GatewaySettings) -> AsyncIterator[GatewayClient]:
    settings = dataclasses.replace(gateway_settings, introspection=False, graphiql=False)
    async with running_gateway(settings) as client:
        yield client


async def test_introspection_can_be_disabled(locked_down: GatewayClient) -> None:
    body = await locked_down.query("{ __schema { queryType { name } } }")
    assert body["data"] is None
    assert "introspection" in body["errors"][0]["message"].lower()
    ordinary = await locked_down.query('{ product(id: "p_0001") { id __typename } }')
    assert ordinary["data"] == {"product": {"id": "p_0001", "__typename": "Product"}}


async def test_graphiql_can_be_disabled(locked_down: GatewayClient) -> None:
    response = await locked_down.http.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code != 200 or "graphiql" not in response.text.lower()


async def test_unreachable_service_is_service_unavailable_without_details(
    gateway_settings: GatewaySettings,
) -> None:
    dead = f"127.0.0.1:{free_port()}"
    settings = dataclasses.replace(gateway_settings, catalog_addr=dead, grpc_timeout_seconds=2.0)
    async with running_gateway(settings) as client:
        body = await client.query("{ products(first: 1) { edges { cursor } } }")
        [error] = body["errors"]
        assert error["extensions"] == {"code": "SERVICE_UNAVAILABLE", "service": "catalog"}
        assert dead not in error["message"] and "127.0.0.1" not in str(body)
        body = await client.query('{ product(id: "p_0001") { id } }')
        assert body["errors"][0]["extensions"]["code"] == "SERVICE_UNAVAILABLE"


def _aliased_products(count: int) -> str:
    return " ".join(f'a{i}: product(id: "p_{i + 1:04d}") {{ id }}' for i in range(count))


AGREEMENT_DOCUMENTS = [
    *(_nested_sku_product(levels) for levels in range(7)),
    *(f"{{ {_aliased_products(n)} }}" for n in (29, 30, 31)),
    f"query A {{ {_aliased_products(20)} }} query B {{ {_aliased_products(11)} }}",
    f"{{ ...P ...P }} fragment P on Query {{ {_aliased_products(15)} }}",
    f"{{ ...P ...P ...P }} fragment P on Query {{ {_aliased_products(10)} }}",
    f"{{ ... on Query {{ ...P }} ...P }} fragment P on Query {{ {_aliased_products(16)} }}",
    _doubling_fragments(4),
    _doubling_fragments(5),
    'query Deep { ...Q } fragment Q on Query { product(id: "p") { ...S } } '
    "fragment S on Product { skus { product { skus { product { skus { product { skus { "
    "product { skus { product { id } } } } } } } } } } }",
    "{ a: __schema { b: types { c: fields { d: type { e: ofType { f: ofType { g: ofType "
    "{ h: ofType { i: ofType { j: ofType { k: ofType { name } } } } } } } } } } } }",
    '{ product(id: "p") { skus { product { __typename t: __typename } } } }',
]


def _messages(errors: list[GraphQLError]) -> list[str]:
    return sorted(e.message for e in errors)


def test_the_limits_rule_agrees_with_strawberrys_limiters() -> None:
    """Same verdicts and messages as QueryDepthLimiter + MaxAliasesLimiter (strawberry
    0.315.7 and later) on documents small enough for them to walk spread by spread."""
    schema = build_schema()._schema
    theirs = [
        query_depth_limiter.create_validator(MAX_DEPTH, None),
        max_aliases.create_validator(MAX_ALIASES),
    ]
    refused = 0
    for text in AGREEMENT_DOCUMENTS:
        document = parse(text)
        ours = _messages(validate(schema, document, [DOCUMENT_LIMITS]))
        assert ours == _messages(validate(schema, document, theirs)), text
        refused += bool(ours)
    assert refused == 7


async def test_a_repeated_document_is_parsed_and_validated_once() -> None:
    """The limits are built once, so strawberry's validation cache (keyed by the schema, the
    document and the rule classes) hits; rules made per request would miss every time."""
    schema = build_schema(introspection=False)
    parsed = parser_cache._get_parse_cache(DOCUMENT_CACHE_SIZE)
    validated = validation_cache._get_validate_cache(DOCUMENT_CACHE_SIZE)
    query = "query CacheProbe { probe: __typename }"
    parses, validations = parsed.cache_info(), validated.cache_info()
    for _ in range(3):
        result = await schema.execute(query)
        assert result.errors is None and result.data == {"probe": "Query"}
    assert parsed.cache_info().misses - parses.misses == 1
    assert parsed.cache_info().hits - parses.hits == 2
    assert validated.cache_info().misses - validations.misses == 1
    assert validated.cache_info().hits - validations.hits == 2
