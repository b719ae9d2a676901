"""The number of gRPC calls a GraphQL request makes does not grow with the items it returns."""

from __future__ import annotations

from collections import Counter

import pytest

from gateway.auth import Role
from gateway.testing import GatewayClient
from gateway.tests.conftest import token

CUSTOMER = {**token(Role.CUSTOMER, member_id="m_0001"), "X-Retail-Channel": "mini_program"}

SEARCH = """
query ($first: Int!) {
  search(query: "咖啡", first: $first) {
    edges { node { id title category { name } brand { name }
                   skus { id quote { unitPrice { amount } rule } product { id } } } }
    categoryFacets { count category { name } }
    brandFacets { count brand { name } }
  }
}
"""


async def _calls(client: GatewayClient, query: str, first: int) -> tuple[Counter[str], int]:
    client.calls.clear()
    body = await client.query(query, {"first": first}, headers=CUSTOMER)
    assert "errors" not in body, body
    return Counter(call.method for call in client.calls.calls), len(str(body))


async def test_search_makes_the_same_calls_for_2_and_20_results(retail: GatewayClient) -> None:
    small, small_size = await _calls(retail, SEARCH, 2)
    large, large_size = await _calls(retail, SEARCH, 20)
    assert large_size > 5 * small_size  # really ten times the products, SKUs and quotes
    assert small == large
    assert large == Counter(
        {
            "SearchProducts": 1,
            "QuotePrices": 1,
            "BatchGetMembers": 1,
            "BatchGetCategories": 1,
            "BatchGetBrands": 1,
        }
    )


PRODUCTS = """
query ($first: Int!) {
  products(first: $first) {
    edges { node { id category { id name } brand { name }
                   skus { quote { unitPrice { amount } } } } }
  }
}
"""


async def test_products_make_the_same_calls_for_2_and_20(retail: GatewayClient) -> None:
    small, _ = await _calls(retail, PRODUCTS, 2)
    large, _ = await _calls(retail, PRODUCTS, 20)
    assert small == large
    assert max(large.values()) == 1
    assert set(large) == {
        "ListProducts",
        "QuotePrices",
        "BatchGetMembers",
        "BatchGetCategories",
        "BatchGetBrands",
    }


NEARBY = """
query ($first: Int!) {
  nearbyStores(lat: 31.2286, lng: 121.4476, radiusKm: 50, first: $first) {
    store { id name weeklyHours { weekday } } distanceKm readyBy
  }
}
"""


async def test_nearby_stores_make_one_call_for_2_and_20(retail: GatewayClient) -> None:
    small, _ = await _calls(retail, NEARBY, 2)
    large, _ = await _calls(retail, NEARBY, 20)
    assert small == large == Counter({"NearbyStores": 1})


@pytest.mark.parametrize("count", [2, 20])
async def test_aliased_stores_are_one_batch(retail: GatewayClient, count: int) -> None:
    fields = " ".join(f'a{i}: store(id: "st_{i + 1:03d}") {{ id name }}' for i in range(count))
    retail.calls.clear()
    body = await retail.query(f"{{ {fields} }}")
    assert "errors" not in body, body
    assert [call.method for call in retail.calls.calls] == ["BatchGetStores"]
