"""The gateway as a Federation v2 subgraph: the committed SDLs, `_service { sdl }`,
`_entities` through the DataLoaders with the queries' own checks, and a supergraph composed
by @apollo/composition (npm, pinned in infra/js) from our subgraph and a second one."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from graphql import build_schema as build_graphql_schema

from gateway.auth import Role
from gateway.export_schema import (
    SCHEMA_FILE,
    SUBGRAPH_FILE,
    printed_schema,
    printed_subgraph_schema,
)
from gateway.federation import entity_types
from gateway.testing import GatewayClient
from gateway.tests.conftest import PRICED_BARCODE, PRICED_PRODUCT_ID, PRICED_SKU_ID, token

ROOT = Path(__file__).resolve().parents[2]
NODE_MODULES = ROOT / "var" / "js" / "node_modules"
COMPOSE = ROOT / "infra" / "js" / "compose-supergraph.cjs"
KEYED = ("Member", "Order", "Product", "Sku", "Store")

ENTITIES = """
query Entities($representations: [_Any!]!) {
  _entities(representations: $representations) {
    __typename
    ... on Product { id title }
    ... on Sku { id barcode product { id } }
    ... on Store { id name }
    ... on Order { id status }
    ... on Member { id }
  }
}
"""


async def _entities(
    client: GatewayClient, representations: list[Any], headers: dict[str, str] | None = None
) -> dict[str, Any]:
    return await client.query(ENTITIES, {"representations": representations}, headers)


def test_committed_subgraph_sdl_matches_the_code() -> None:
    assert SUBGRAPH_FILE.read_text(encoding="utf-8") == printed_subgraph_schema(), (
        "gateway/subgraph.graphql is stale: run `make schema`"
    )


def test_subgraph_sdl_links_federation_v2_and_keys_the_entities() -> None:
    sdl = printed_subgraph_schema()
    assert sdl.startswith(
        'schema @link(url: "https://specs.apollo.dev/federation/v2.3", import: ["@key"])'
    )
    for name in KEYED:
        assert f'type {name} @key(fields: "id", resolvable: true) {{' in sdl
    assert set(KEYED) <= set(entity_types())
    assert "_entities(representations: [_Any!]!): [_Entity]!" in sdl


def test_plain_sdl_is_free_of_federation_and_stands_alone() -> None:
    plain = printed_schema()
    assert plain == SCHEMA_FILE.read_text(encoding="utf-8")
    for federation_only in ("@key", "@link", "_entities", "_service", "_Any", "_Entity"):
        assert federation_only not in plain
    schema = build_graphql_schema(plain)  # no unknown directives or types
    assert schema.query_type is not None and "product" in schema.query_type.fields


async def test_service_sdl_is_the_committed_subgraph_sdl(gateway: GatewayClient) -> None:
    body = await gateway.query("{ _service { sdl } }")
    sdl = body["data"]["_service"]["sdl"]
    assert sdl + "\n" == SUBGRAPH_FILE.read_text(encoding="utf-8")
    assert gateway.calls.calls == []


async def test_products_resolve_in_one_batch_with_missing_ones_at_their_index(
    gateway: GatewayClient,
) -> None:
    representations = [
        {"__typename": "Product", "id": "p_0003"},
        {"__typename": "Product", "id": "p_0404"},
        {"__typename": "Product", "id": "p_0001"},
    ]
    body = await _entities(gateway, representations)
    first, missing, last = body["data"]["_entities"]
    assert first == {"__typename": "Product", "id": "p_0003", "title": "拿铁 3"}
    assert missing is None and last["id"] == "p_0001"
    [error] = body["errors"]
    assert error["path"] == ["_entities", 1]
    assert error["extensions"]["code"] == "NOT_FOUND"
    assert [c.method for c in gateway.calls.calls] == ["BatchGetProducts"]


async def test_skus_resolve_through_the_sku_loader(retail: GatewayClient) -> None:
    body = await _entities(
        retail,
        [{"__typename": "Sku", "id": "p_0002_s1"}, {"__typename": "Sku", "id": PRICED_SKU_ID}],
    )
    assert "errors" not in body
    demo, priced = body["data"]["_entities"]
    assert (demo["__typename"], demo["id"], demo["product"]) == (
        "Sku",
        "p_0002_s1",
        {"id": "p_0002"},
    )
    assert len(demo["barcode"]) == 13
    assert priced == {
        "__typename": "Sku",
        "id": PRICED_SKU_ID,
        "barcode": PRICED_BARCODE,
        "product": {"id": PRICED_PRODUCT_ID},
    }
    assert sorted(c.method for c in retail.calls.calls) == ["BatchGetProducts", "BatchGetSkus"]


async def test_stores_and_mixed_types_batch_per_type(retail: GatewayClient) -> None:
    representations = [
        {"__typename": "Store", "id": "st_001"},
        {"__typename": "Sku", "id": PRICED_SKU_ID},
        {"__typename": "Store", "id": "st_002"},
    ]
    body = await _entities(retail, representations)
    assert "errors" not in body
    store_1, sku, store_2 = body["data"]["_entities"]
    assert (store_1["__typename"], store_1["id"], store_2["id"]) == ("Store", "st_001", "st_002")
    assert store_1["name"] and sku["id"] == PRICED_SKU_ID
    methods = sorted(c.method for c in retail.calls.calls)
    assert methods == ["BatchGetProducts", "BatchGetSkus", "BatchGetStores"]


@pytest.mark.parametrize(
    ("representation", "problem"),
    [
        ({"id": "p_0001"}, "__typename must be one of"),
        ({"__typename": "Category", "id": "cat_tea"}, "__typename must be one of"),
        ({"__typename": "Product", "id": 7}, "id must be a string"),
        ({"__typename": "Product"}, "id must be a string"),
        ({"__typename": "Product", "id": "bad id!"}, "id"),
        ("p_0001", "must be an object"),
    ],
)
async def test_bad_representations_are_bad_user_input_without_calls(
    gateway: GatewayClient, representation: Any, problem: str
) -> None:
    body = await _entities(gateway, [representation, {"__typename": "Product", "id": "p_0001"}])
    bad, good = body["data"]["_entities"]
    assert bad is None and good["id"] == "p_0001"
    [error] = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert problem in error["message"]
    assert [c.method for c in gateway.calls.calls] == ["BatchGetProducts"]


async def test_orders_keep_their_authorization(gateway: GatewayClient) -> None:
    """An order entity is read exactly as `order(id:)`: anonymous callers are refused
    before any call."""
    body = await _entities(gateway, [{"__typename": "Order", "id": "o_0001"}])
    assert body["data"]["_entities"] == [None]
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert gateway.calls.calls == []
    admin = await _entities(gateway, [{"__typename": "Order", "id": "bad id!"}], token(Role.ADMIN))
    assert admin["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert gateway.calls.calls == []


async def test_members_keep_their_authorization(gateway: GatewayClient) -> None:
    """A member entity is read as `member(id:)`: staff and admins only, checked first."""
    customer = token(Role.CUSTOMER, member_id="m_0001")
    for headers, code in (({}, "UNAUTHENTICATED"), (customer, "FORBIDDEN")):
        body = await _entities(gateway, [{"__typename": "Member", "id": "m_0001"}], headers)
        assert body["data"]["_entities"] == [None]
        assert body["errors"][0]["extensions"]["code"] == code
    assert gateway.calls.calls == []


REVIEWS_SUBGRAPH = """
extend schema @link(url: "https://specs.apollo.dev/federation/v2.3", import: ["@key"])

type Product @key(fields: "id") {
  id: ID!
  reviews: [Review!]!
}

type Review {
  stars: Int!
  text: String!
}

type Query {
  topReviews: [Review!]!
}
"""
"""Another team's subgraph that adds reviews to our Product entity."""


def _compose(subgraphs: list[dict[str, str]]) -> dict[str, Any]:
    node = shutil.which("node")
    assert node is not None, "node is needed to compose the supergraph"
    assert (NODE_MODULES / "@apollo" / "composition").is_dir(), "run `make install` (var/js)"
    completed = subprocess.run(
        [node, str(COMPOSE)],
        input=json.dumps(subgraphs),
        env={"NODE_PATH": str(NODE_MODULES), "PATH": str(Path(node).parent)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.stdout.strip(), completed.stderr
    report: dict[str, Any] = json.loads(completed.stdout)
    return report


def test_apollo_composition_builds_a_supergraph_with_our_types() -> None:
    report = _compose(
        [
            {
                "name": "retail",
                "url": "http://127.0.0.1:8000/graphql",
                "sdl": printed_subgraph_schema(),
            },
            {"name": "reviews", "url": "http://127.0.0.1:4002/graphql", "sdl": REVIEWS_SUBGRAPH},
        ]
    )
    assert report["ok"], report.get("errors")
    supergraph = report["supergraphSdl"]
    assert 'RETAIL @join__graph(name: "retail", url: "http://127.0.0.1:8000/graphql")' in supergraph
    for name in KEYED:
        declared = supergraph[supergraph.index(f"type {name}\n") :]
        assert declared.split("\n")[1].strip().startswith('@join__type(graph: RETAIL, key: "id"')
    product = supergraph[supergraph.index("type Product\n") :]
    product = product[: product.index("\n}\n")]
    assert '@join__type(graph: REVIEWS, key: "id")' in product
    assert "reviews: [Review!]! @join__field(graph: REVIEWS)" in product
    assert "title(" in product and "skus: [Sku!]!" in product
    assert "products(" in supergraph and "topReviews" in supergraph


def test_composition_reports_a_conflict() -> None:
    """The check can fail: a second subgraph that redefines a field of ours incompatibly."""
    clashing = (
        'extend schema @link(url: "https://specs.apollo.dev/federation/v2.3", '
        'import: ["@key"])\n'
        'type Product @key(fields: "id") { id: ID! spuCode: Int! }\n'
        "type Query { other: Int }\n"
    )
    report = _compose(
        [
            {
                "name": "retail",
                "url": "http://127.0.0.1:8000/graphql",
                "sdl": printed_subgraph_schema(),
            },
            {"name": "clash", "url": "http://127.0.0.1:4003/graphql", "sdl": clashing},
        ]
    )
    assert not report["ok"]
    assert any("spuCode" in error for error in report["errors"])
