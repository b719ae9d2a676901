"""Channel and tier prices, search with facets, barcodes and categories: the real gateway in
front of catalog-svc (demo catalog plus one priced product) and member-svc (demo members)."""

from __future__ import annotations

import pytest

from gateway.auth import Role
from gateway.testing import GatewayClient
from gateway.tests.conftest import (
    PRICED_BARCODE,
    PRICED_PRODUCT_ID,
    PRICED_SKU_ID,
    token,
)

QUOTE = """
query ($id: ID!) {
  product(id: $id) {
    skus { id price { amount } quote { unitPrice { amount currency } basePrice { amount } rule } }
  }
}
"""

GOLD = token(Role.CUSTOMER, member_id="m_0001")  # 王雨桐, gold in the demo members
SILVER = token(Role.CUSTOMER, member_id="m_0002")


@pytest.mark.parametrize(
    ("headers", "amount", "rule"),
    [
        ({}, 2000, "base"),
        ({"X-Retail-Channel": "mini_program"}, 1800, "channel:mini_program"),
        ({"X-Retail-Channel": "APP"}, 1900, "channel:app"),
        ({"X-Retail-Channel": "Kiosk"}, 2000, "base"),
        (GOLD, 1700, "tier:gold"),
        ({**GOLD, "X-Retail-Channel": "mini_program"}, 1500, "channel+tier:mini_program+gold"),
        ({**GOLD, "X-Retail-Channel": "app"}, 1700, "tier:gold"),
        ({**SILVER, "X-Retail-Channel": "mini_program"}, 1800, "channel:mini_program"),
        ({**token(Role.ADMIN), "X-Retail-Channel": "pos"}, 2000, "base"),
    ],
)
async def test_quote_follows_channel_header_and_member_tier(
    retail: GatewayClient, headers: dict[str, str], amount: int, rule: str
) -> None:
    body = await retail.query(QUOTE, {"id": PRICED_PRODUCT_ID}, headers=headers)
    assert "errors" not in body, body
    [sku] = body["data"]["product"]["skus"]
    assert sku["price"] == {"amount": 2000}
    assert sku["quote"] == {
        "unitPrice": {"amount": amount, "currency": "CNY"},
        "basePrice": {"amount": 2000},
        "rule": rule,
    }
    # One quote call; the member (for the tier) is read for customers only.
    customer = headers.get("Authorization") in (GOLD["Authorization"], SILVER["Authorization"])
    assert len(retail.calls.named("QuotePrices")) == 1
    assert len(retail.calls.named("BatchGetMembers")) == (1 if customer else 0)


@pytest.mark.parametrize("channel", ["wechat", "mini-program", "pos,app"])
async def test_unknown_channel_is_refused_naming_the_header(
    retail: GatewayClient, channel: str
) -> None:
    body = await retail.query(
        "{ products(first: 1) { edges { cursor } } }", headers={"X-Retail-Channel": channel}
    )
    assert body["data"] is None
    [error] = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert [v["field"] for v in error["extensions"]["fieldViolations"]] == ["X-Retail-Channel"]
    assert retail.calls.calls == []


async def test_empty_channel_header_means_any_channel(retail: GatewayClient) -> None:
    body = await retail.query(QUOTE, {"id": PRICED_PRODUCT_ID}, headers={"X-Retail-Channel": ""})
    assert body["data"]["product"]["skus"][0]["quote"]["rule"] == "base"


SEARCH = """
query ($query: String, $filter: SearchFilter, $first: Int!, $after: String) {
  search(query: $query, filter: $filter, first: $first, after: $after) {
    totalCount
    edges { cursor node { id title categoryId brandId } }
    pageInfo { hasNextPage endCursor }
    categoryFacets { count category { id name } }
    brandFacets { count brand { id name } }
  }
}
"""


async def test_search_coffee_in_chinese_has_named_facets(retail: GatewayClient) -> None:
    body = await retail.query(SEARCH, {"query": "咖啡", "first": 10})
    assert "errors" not in body, body
    result = body["data"]["search"]
    assert result["totalCount"] > 10
    assert len(result["edges"]) == 10
    assert result["pageInfo"]["hasNextPage"] is True
    assert result["edges"][-1]["cursor"] == result["pageInfo"]["endCursor"]
    assert all(edge["node"]["title"] for edge in result["edges"])
    facets = result["categoryFacets"]
    assert facets and all(f["category"]["name"] and f["count"] > 0 for f in facets)
    assert sum(f["count"] for f in facets) == result["totalCount"]
    assert any("咖啡" in f["category"]["name"] for f in facets)
    assert result["brandFacets"] and all(f["brand"]["name"] for f in result["brandFacets"])
    methods = sorted(call.method for call in retail.calls.calls)
    assert methods == ["BatchGetBrands", "BatchGetCategories", "SearchProducts"]


async def test_search_pages_follow_the_end_cursor(retail: GatewayClient) -> None:
    seen: list[str] = []
    after = None
    total = 0
    for _ in range(20):
        body = await retail.query(SEARCH, {"query": "咖啡", "first": 7, "after": after})
        result = body["data"]["search"]
        total = result["totalCount"]
        seen += [edge["node"]["id"] for edge in result["edges"]]
        after = result["pageInfo"]["endCursor"]
        if not result["pageInfo"]["hasNextPage"]:
            break
    assert len(seen) == len(set(seen)) == total


async def test_search_filter_by_category_brand_and_price(retail: GatewayClient) -> None:
    body = await retail.query(
        SEARCH,
        {
            "query": "咖啡",
            "first": 50,
            "filter": {"categoryIds": ["cat_coffee"], "brandIds": ["b_shanye"], "maxPrice": 5000},
        },
    )
    assert "errors" not in body, body
    result = body["data"]["search"]
    assert result["edges"]
    assert {edge["node"]["brandId"] for edge in result["edges"]} == {"b_shanye"}
    assert {f["brand"]["id"] for f in result["brandFacets"]} == {"b_shanye"}


async def test_search_english_finds_the_priced_product(retail: GatewayClient) -> None:
    body = await retail.query(SEARCH, {"query": "Gateway Latte", "first": 5})
    ids = [edge["node"]["id"] for edge in body["data"]["search"]["edges"]]
    assert PRICED_PRODUCT_ID in ids


@pytest.mark.parametrize(
    ("variables", "field"),
    [
        ({"first": 0}, "first"),
        ({"first": 101}, "first"),
        ({"first": 5, "filter": {"minPrice": -1}}, "filter.minPrice"),
        ({"first": 5, "filter": {"minPrice": 500, "maxPrice": 100}}, "filter.maxPrice"),
        ({"first": 5, "filter": {"categoryIds": ["cat coffee"]}}, "filter.categoryIds[0]"),
        ({"first": 5, "after": "not-a-cursor"}, "after"),
    ],
)
async def test_bad_search_input_names_the_graphql_field(
    retail: GatewayClient, variables: dict[str, object], field: str
) -> None:
    body = await retail.query(SEARCH, variables)
    assert body["data"] is None
    [error] = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert field in [v["field"] for v in error["extensions"]["fieldViolations"]]


BARCODE = """
query ($barcode: String!) {
  productByBarcode(barcode: $barcode) {
    product { id title } sku { id barcode quote { unitPrice { amount } rule } }
  }
}
"""


async def test_product_by_barcode_names_product_and_sku(retail: GatewayClient) -> None:
    body = await retail.query(
        BARCODE, {"barcode": PRICED_BARCODE}, headers={"X-Retail-Channel": "pos"}
    )
    assert "errors" not in body, body
    assert body["data"]["productByBarcode"] == {
        "product": {"id": PRICED_PRODUCT_ID, "title": "网关测试拿铁"},
        "sku": {
            "id": PRICED_SKU_ID,
            "barcode": PRICED_BARCODE,
            "quote": {"unitPrice": {"amount": 2000}, "rule": "base"},
        },
    }


@pytest.mark.parametrize(
    ("barcode", "code"),
    [("6900999999990", "NOT_FOUND"), ("12345", "BAD_USER_INPUT"), ("", "BAD_USER_INPUT")],
)
async def test_product_by_barcode_errors(retail: GatewayClient, barcode: str, code: str) -> None:
    if barcode == "6900999999990":
        barcode = barcode[:-1] + str(_check_digit(barcode[:-1]))
    body = await retail.query(BARCODE, {"barcode": barcode})
    assert body["data"] == {"productByBarcode": None}
    [error] = body["errors"]
    assert error["extensions"]["code"] == code
    if code == "BAD_USER_INPUT":
        assert [v["field"] for v in error["extensions"]["fieldViolations"]] == ["barcode"]


def _check_digit(body: str) -> int:
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - total % 10) % 10


async def test_category_tree_and_product_category(retail: GatewayClient) -> None:
    body = await retail.query(
        """{
          categories { id name children { id name parent { id } children { id } } }
          product(id: "p_0004") { category { id name parent { id name } } brand { id name } }
        }""",
        headers={"Accept-Language": "en"},
    )
    assert "errors" not in body, body
    roots = body["data"]["categories"]
    coffee = next(c for c in roots if c["id"] == "cat_coffee")
    assert coffee["name"] == "Coffee"
    assert {c["id"] for c in coffee["children"]} >= {"cat_coffee_beans", "cat_coffee_rtd"}
    assert all(c["parent"] == {"id": "cat_coffee"} for c in coffee["children"])
    product = body["data"]["product"]
    assert product["category"]["parent"] == {"id": "cat_coffee", "name": "Coffee"}
    assert product["brand"]["name"]
    # One tree read, one product read, one brand read; parents come from the tree.
    methods = sorted(call.method for call in retail.calls.calls)
    assert methods.count("ListCategories") == 1
    assert "BatchGetBrands" in methods and len(methods) <= 4
