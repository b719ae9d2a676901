"""Order lists cost the same gRPC calls for 2 orders as for 20: stores, members and products
of every order (and of every line) come through one batched call per kind."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from dataclasses import dataclass

import pytest

from gateway.auth import Role
from gateway.testing import GatewayClient
from gateway.tests.conftest import OrderWorld, token

PLACE = """
mutation ($input: PlaceOrderInput!, $key: String!) {
  placeOrder(input: $input, idempotencyKey: $key) { id }
}
"""

NODE = """
  id status total { amount }
  store { id code name }
  member { id displayName phone }
  lines { skuId product { id title } sku { barcode } }
  fulfilments { store { id } }
  pickup { readyBy code }
"""

MY_ORDERS = f"{{ myOrders(first: 20) {{ edges {{ node {{ {NODE} }} }} }} }}"
STORE_ORDERS = (
    f"query ($storeId: ID!) {{ storeOrders(storeId: $storeId, first: 20) "
    f"{{ edges {{ node {{ {NODE} }} }} }} }}"
)

SMALL_STORE, LARGE_STORE = "st_015", "st_017"
SPREAD_STORES = ("st_004", "st_005", "st_006", "st_007", "st_008")


def customer(member_id: str) -> dict[str, str]:
    return {**token(Role.CUSTOMER, member_id=member_id), "X-Retail-Channel": "app"}


@dataclass
class Lists:
    few_member: str
    many_member: str


async def _place(
    client: GatewayClient, world: OrderWorld, member_id: str, store_id: str, lines: int
) -> None:
    skus = [await world.stocked_sku(2, store_id) for _ in range(lines)]
    order_input = {
        "storeId": store_id,
        "payAtPickup": True,
        "lines": [{"skuId": sku, "quantity": 1} for sku in skus],
    }
    body = await client.query(
        PLACE, {"input": order_input, "key": uuid.uuid4().hex}, customer(member_id)
    )
    assert "errors" not in body, body


@pytest.fixture(scope="module")
async def lists(shared_orders_gateway: GatewayClient, order_world: OrderWorld) -> Lists:
    """2 orders of one member and 20 of another (over five stores, two lines each); 2 orders
    of 2 members in SMALL_STORE and 20 orders of 20 members in LARGE_STORE."""
    client = shared_orders_gateway
    few = (await order_world.new_member()).id
    many = (await order_world.new_member()).id
    small = [(await order_world.new_member()).id for _ in range(2)]
    large = [(await order_world.new_member()).id for _ in range(20)]
    await asyncio.gather(
        *(_place(client, order_world, few, SPREAD_STORES[i], 2) for i in range(2)),
        *(_place(client, order_world, many, SPREAD_STORES[i % 5], 2) for i in range(20)),
        *(_place(client, order_world, member, SMALL_STORE, 1) for member in small),
        *(_place(client, order_world, member, LARGE_STORE, 1) for member in large),
    )
    return Lists(few, many)


async def _calls(
    client: GatewayClient, query: str, headers: dict[str, str], variables: dict[str, str]
) -> tuple[Counter[str], int]:
    client.calls.clear()
    body = await client.query(query, variables, headers)
    assert "errors" not in body, body
    edges = next(iter(body["data"].values()))["edges"]
    return Counter(call.method for call in client.calls.calls), len(edges)


async def test_my_orders_make_the_same_calls_for_2_and_20(
    orders: GatewayClient, lists: Lists
) -> None:
    small, small_count = await _calls(orders, MY_ORDERS, customer(lists.few_member), {})
    large, large_count = await _calls(orders, MY_ORDERS, customer(lists.many_member), {})
    assert (small_count, large_count) == (2, 20)
    assert small == large
    assert large == Counter(
        {"ListOrders": 1, "BatchGetStores": 1, "BatchGetMembers": 1, "BatchGetProducts": 1}
    )


async def test_store_orders_make_the_same_calls_for_2_and_20(
    orders: GatewayClient, lists: Lists
) -> None:
    staff_small = token(Role.ASSOCIATE, subject="as_small", store_id=SMALL_STORE)
    staff_large = token(Role.ASSOCIATE, subject="as_large", store_id=LARGE_STORE)
    small, small_count = await _calls(orders, STORE_ORDERS, staff_small, {"storeId": SMALL_STORE})
    large, large_count = await _calls(orders, STORE_ORDERS, staff_large, {"storeId": LARGE_STORE})
    assert (small_count, large_count) == (2, 20)
    assert small == large
    assert large == Counter(
        {"ListStoreOrders": 1, "BatchGetStores": 1, "BatchGetMembers": 1, "BatchGetProducts": 1}
    )


async def test_aliased_orders_are_read_in_one_batch(orders: GatewayClient, lists: Lists) -> None:
    body = await orders.query(
        "{ myOrders(first: 20) { edges { node { id } } } }", headers=customer(lists.many_member)
    )
    ids = [edge["node"]["id"] for edge in body["data"]["myOrders"]["edges"]]
    aliased = " ".join(
        f'o{i}: order(id: "{order_id}") {{ id store {{ id }} }}' for i, order_id in enumerate(ids)
    )
    orders.calls.clear()
    read = await orders.query(f"{{ {aliased} }}", headers=customer(lists.many_member))
    assert "errors" not in read, read
    assert Counter(call.method for call in orders.calls.calls) == Counter(
        {"BatchGetOrders": 1, "BatchGetStores": 1}
    )
