"""Document limits, introspection switch, GraphiQL, error masking and unavailable services."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest

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
