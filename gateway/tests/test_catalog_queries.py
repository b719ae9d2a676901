"""Catalog over GraphQL: the real gateway over HTTP in front of the real catalog-svc."""

from __future__ import annotations

import pytest

from catalog_svc.domain import Product, ProductStatus
from gateway.testing import GatewayClient

PRODUCT = """
query ($id: ID!) {
  product(id: $id) {
    id title description categoryId brandId status imageUrls
    skus { id barcode price { amount currency } options { name value } }
  }
}
"""

PAGE = """
query ($first: Int!, $after: String, $categoryId: ID) {
  products(first: $first, after: $after, categoryId: $categoryId) {
    edges { cursor node { id title status } }
    pageInfo { hasNextPage endCursor }
  }
}
"""


async def test_product_by_id_has_skus_prices_and_fields(gateway: GatewayClient) -> None:
    body = await gateway.query(PRODUCT, {"id": "p_0003"})
    assert "errors" not in body
    assert body["data"]["product"] == {
        "id": "p_0003",
        "title": "拿铁 3",
        "description": "冷萃咖啡",
        "categoryId": "cat_coffee_rtd",
        "brandId": "br_shanye",
        "status": "ACTIVE",
        "imageUrls": ["https://img.example.com/p_0003.jpg"],
        "skus": [
            {
                "id": "p_0003_s1",
                "barcode": "6900000000003",
                "price": {"amount": 1593, "currency": "CNY"},
                "options": [{"name": "size", "value": "330ml"}],
            },
            {
                "id": "p_0003_s2",
                "barcode": "6800000000003",
                "price": {"amount": 2993, "currency": "CNY"},
                "options": [],
            },
        ],
    }


async def test_archived_product_is_readable_by_id(gateway: GatewayClient) -> None:
    body = await gateway.query(PRODUCT, {"id": "p_0024"})
    assert body["data"]["product"]["status"] == "ARCHIVED"


@pytest.mark.parametrize(
    ("accept_language", "title", "description"),
    [
        (None, "拿铁 5", "冷萃咖啡"),
        ("zh-CN,zh;q=0.9", "拿铁 5", "冷萃咖啡"),
        ("en", "Latte 5", "cold brew"),
        ("en-US,en;q=0.9,zh;q=0.5", "Latte 5", "cold brew"),
        ("zh-Hans;q=0.4, en-GB;q=0.8", "Latte 5", "cold brew"),
        ("fr-FR", "拿铁 5", "冷萃咖啡"),
    ],
)
async def test_text_follows_accept_language(
    gateway: GatewayClient, accept_language: str | None, title: str, description: str
) -> None:
    headers = {"Accept-Language": accept_language} if accept_language else {}
    body = await gateway.query('{ product(id: "p_0005") { title description } }', headers=headers)
    assert body["data"]["product"] == {"title": title, "description": description}


async def test_title_locale_argument_overrides_the_request_locale(
    gateway: GatewayClient,
) -> None:
    body = await gateway.query(
        '{ product(id: "p_0005") { zh: title en: title(locale: "en") fr: title(locale: "fr") } }',
        headers={"Accept-Language": "en"},
    )
    assert body["data"]["product"] == {"zh": "Latte 5", "en": "Latte 5", "fr": "拿铁 5"}
    body = await gateway.query('{ product(id: "p_0005") { title(locale: "en") } }')
    assert body["data"]["product"] == {"title": "Latte 5"}


async def test_paging_visits_every_active_product_exactly_once(
    gateway: GatewayClient, seeded_products: list[Product]
) -> None:
    active = [p.id for p in seeded_products if p.status is ProductStatus.ACTIVE]
    seen: list[str] = []
    after: str | None = None
    pages = 0
    while True:
        body = await gateway.query(PAGE, {"first": 7, "after": after})
        assert "errors" not in body
        connection = body["data"]["products"]
        edges = connection["edges"]
        seen.extend(edge["node"]["id"] for edge in edges)
        assert all(edge["node"]["status"] == "ACTIVE" for edge in edges)
        assert connection["pageInfo"]["endCursor"] == edges[-1]["cursor"]
        pages += 1
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]
    assert seen == active
    assert pages == 4  # 23 products, 7 a page
    assert len(gateway.calls.named("ListProducts")) == 4


async def test_an_edge_cursor_resumes_right_after_its_node(gateway: GatewayClient) -> None:
    first = (await gateway.query(PAGE, {"first": 5}))["data"]["products"]["edges"]
    resumed = await gateway.query(PAGE, {"first": 2, "after": first[1]["cursor"]})
    ids = [edge["node"]["id"] for edge in resumed["data"]["products"]["edges"]]
    assert ids == [edge["node"]["id"] for edge in first[2:4]]


async def test_products_default_to_twenty(gateway: GatewayClient) -> None:
    body = await gateway.query("{ products { edges { node { id } } pageInfo { hasNextPage } } }")
    assert len(body["data"]["products"]["edges"]) == 20
    assert body["data"]["products"]["pageInfo"]["hasNextPage"] is True


async def test_category_filter(gateway: GatewayClient, seeded_products: list[Product]) -> None:
    expected = [
        p.id
        for p in seeded_products
        if p.status is ProductStatus.ACTIVE and p.category_id == "cat_tea"
    ]
    body = await gateway.query(PAGE, {"first": 100, "categoryId": "cat_tea"})
    connection = body["data"]["products"]
    assert [edge["node"]["id"] for edge in connection["edges"]] == expected
    assert connection["pageInfo"] == {
        "hasNextPage": False,
        "endCursor": connection["edges"][-1]["cursor"],
    }


async def test_empty_category_gives_an_empty_connection(gateway: GatewayClient) -> None:
    body = await gateway.query(PAGE, {"first": 10, "categoryId": "cat_nothing_here"})
    assert body["data"]["products"] == {
        "edges": [],
        "pageInfo": {"hasNextPage": False, "endCursor": None},
    }


async def test_unknown_id_is_not_found(gateway: GatewayClient) -> None:
    body = await gateway.query(PRODUCT, {"id": "p_9999"})
    assert body["data"] == {"product": None}
    [error] = body["errors"]
    assert error["path"] == ["product"]
    assert error["extensions"]["code"] == "NOT_FOUND"
    assert "p_9999" in error["message"]


@pytest.mark.parametrize("bad_id", ["", "p 1", "x" * 200, "p_1;drop"])
async def test_malformed_id_is_bad_user_input_without_calling_the_service(
    gateway: GatewayClient, bad_id: str
) -> None:
    body = await gateway.query(PRODUCT, {"id": bad_id})
    [error] = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert [v["field"] for v in error["extensions"]["fieldViolations"]] == ["id"]
    assert gateway.calls.calls == []


async def test_a_malformed_id_does_not_fail_the_good_ones_beside_it(
    gateway: GatewayClient,
) -> None:
    body = await gateway.query('{ a: product(id: "p_0001") { id } b: product(id: "p 2") { id } }')
    assert body["data"] == {"a": {"id": "p_0001"}, "b": None}
    assert [e["path"] for e in body["errors"]] == [["b"]]


@pytest.mark.parametrize("cursor", ["not-a-cursor", "eyJxIjoiMTIzIiwiayI6InBfMDAwMSJ9", "%%%"])
async def test_malformed_cursor_is_bad_user_input(gateway: GatewayClient, cursor: str) -> None:
    body = await gateway.query(PAGE, {"first": 5, "after": cursor})
    assert body["data"] is None
    [error] = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["reason"] == "INVALID_PAGE_TOKEN"
    assert [v["field"] for v in error["extensions"]["fieldViolations"]] == ["after"]


async def test_cursor_from_another_category_is_refused(gateway: GatewayClient) -> None:
    page = await gateway.query(PAGE, {"first": 2})
    cursor = page["data"]["products"]["pageInfo"]["endCursor"]
    body = await gateway.query(PAGE, {"first": 2, "after": cursor, "categoryId": "cat_tea"})
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


@pytest.mark.parametrize("first", [0, -1, 101, 10_000])
async def test_first_out_of_range_is_bad_user_input_naming_first(
    gateway: GatewayClient, first: int
) -> None:
    body = await gateway.query(PAGE, {"first": first})
    assert body["data"] is None
    [error] = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["fieldViolations"][0]["field"] == "first"
    assert str(first) in error["message"]
    assert gateway.calls.named("ListProducts") == []


async def test_malformed_category_id_names_the_graphql_argument(gateway: GatewayClient) -> None:
    body = await gateway.query(PAGE, {"first": 5, "categoryId": "cat tea"})
    [error] = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert [v["field"] for v in error["extensions"]["fieldViolations"]] == ["categoryId"]


async def test_aliased_products_resolve_with_one_batch_call(gateway: GatewayClient) -> None:
    body = await gateway.query(
        """{
          a: product(id: "p_0001") { id title }
          b: product(id: "p_0002") { id title }
          c: product(id: "p_0001") { id }
          missing: product(id: "p_0404") { id }
        }"""
    )
    assert body["data"] == {
        "a": {"id": "p_0001", "title": "拿铁 1"},
        "b": {"id": "p_0002", "title": "拿铁 2"},
        "c": {"id": "p_0001"},
        "missing": None,
    }
    assert [e["extensions"]["code"] for e in body["errors"]] == ["NOT_FOUND"]
    assert len(gateway.calls.named("BatchGetProducts")) == 1
    assert len(gateway.calls.calls) == 1


async def test_listed_products_prime_the_loader(gateway: GatewayClient) -> None:
    body = await gateway.query(
        "{ products(first: 5) { edges { node { id skus { product { id title } } } } } }"
    )
    for edge in body["data"]["products"]["edges"]:
        node = edge["node"]
        assert {sku["product"]["id"] for sku in node["skus"]} == {node["id"]}
    assert [call.method for call in gateway.calls.calls] == ["ListProducts"]


async def test_every_call_carries_the_configured_deadline(gateway: GatewayClient) -> None:
    await gateway.query('{ products(first: 1) { edges { cursor } } product(id: "p_0001") { id } }')
    assert {call.method for call in gateway.calls.calls} == {"ListProducts", "BatchGetProducts"}
    assert {call.timeout for call in gateway.calls.calls} == {gateway.settings.grpc_timeout_seconds}


async def test_service_internal_error_is_masked(gateway: GatewayClient) -> None:
    body = await gateway.query('{ product(id: "p_0099") { id } }')
    assert body["data"] == {"product": None}
    [error] = body["errors"]
    assert error == {
        "message": "internal error",
        "locations": [{"line": 1, "column": 3}],
        "path": ["product"],
        "extensions": {"code": "INTERNAL"},
    }


async def test_amount_beyond_32_bits_is_an_internal_error_not_a_wrong_number(
    gateway: GatewayClient,
) -> None:
    body = await gateway.query('{ product(id: "p_0098") { id skus { price { amount } } } }')
    assert body["data"] == {"product": None}
    [error] = body["errors"]
    assert error["path"] == ["product", "skus", 0, "price", "amount"]
    assert error["extensions"] == {"code": "INTERNAL"}
