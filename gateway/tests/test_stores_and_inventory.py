"""Stores, the store locator with live stock, and staff inventory with its authorization:
the real gateway over HTTP in front of store-svc seeded with the demo stores."""

from __future__ import annotations

import uuid

import pytest

from gateway.auth import Role
from gateway.testing import GatewayClient
from gateway.tests.conftest import RetailStack, token
from retail.store.v1 import store_pb2

# st_001 (静安) and the stores near it; st_019 is temporarily closed.
HERE = {"lat": 31.2286, "lng": 121.4476}

ASSOCIATE_1 = token(Role.ASSOCIATE, store_id="st_001", subject="as_st_001_02")
MANAGER_1 = token(Role.STORE_MANAGER, store_id="st_001", subject="as_st_001_01")
ASSOCIATE_2 = token(Role.ASSOCIATE, store_id="st_002", subject="as_st_002_02")
ADMIN = token(Role.ADMIN, subject="ops_admin")
CUSTOMER = token(Role.CUSTOMER, member_id="m_0001")
KIOSK = token(Role.KIOSK, store_id="st_001", device_id="k_st_001_01")

NEARBY = """
query ($lat: Float!, $lng: Float!, $radiusKm: Float, $skuIds: [ID!], $first: Int,
       $openNow: Boolean) {
  nearbyStores(lat: $lat, lng: $lng, radiusKm: $radiusKm, skuIds: $skuIds, first: $first,
               openNow: $openNow) {
    store { id name }
    distanceKm openNow readyBy
    availability { skuId available }
  }
}
"""

ADJUST = """
mutation ($storeId: ID!, $skuId: ID!, $delta: Int!, $reason: AdjustmentReason!,
          $key: String!, $note: String) {
  adjustInventory(storeId: $storeId, skuId: $skuId, delta: $delta, reason: $reason,
                  idempotencyKey: $key, note: $note) {
    storeId skuId onHand reserved safetyStock available
  }
}
"""

INVENTORY = """
query ($storeId: ID!, $skuIds: [ID!]!) {
  storeInventory(storeId: $storeId, skuIds: $skuIds) { storeId skuId onHand available }
}
"""


def new_sku() -> str:
    """A SKU no store has stocked yet: each test owns its stock."""
    return f"sku_gw_{uuid.uuid4().hex[:10]}"


async def receive(stack: RetailStack, store_id: str, sku_id: str, quantity: int) -> None:
    await stack.store.AdjustInventory(
        store_pb2.AdjustInventoryRequest(
            store_id=store_id,
            sku_id=sku_id,
            delta=quantity,
            reason=store_pb2.ADJUSTMENT_REASON_RECEIVE,
            actor_id="test_setup",
            idempotency_key=f"setup-{uuid.uuid4().hex}",
        )
    )


async def on_hand(stack: RetailStack, store_id: str, sku_id: str) -> int | None:
    reply = await stack.store.BatchGetInventory(
        store_pb2.BatchGetInventoryRequest(store_id=store_id, sku_ids=[sku_id])
    )
    return reply.levels[0].on_hand if reply.levels else None


async def test_store_by_id_has_its_fields_in_the_callers_locale(retail: GatewayClient) -> None:
    body = await retail.query(
        """{ store(id: "st_001") {
              id code name type status timezone phone services
              address { city district line1 } location { lat lng }
              weeklyHours { weekday opens closes } pickupPreparationMinutes pickupHoldDays
            }
            en: store(id: "st_001") { name(locale: "en") }
            missing: store(id: "st_999") { id } }"""
    )
    store = body["data"]["store"]
    assert store["id"] == "st_001" and store["code"] == "SH001"
    assert store["type"] in {"FLAGSHIP", "STANDARD", "POP_UP", "WAREHOUSE"}
    assert store["status"] == "OPEN"
    assert store["timezone"] == "Asia/Shanghai"
    assert store["location"] == {"lat": 31.2286, "lng": 121.4476}
    assert store["address"]["city"] == "上海市"
    assert "PICKUP" in store["services"]
    assert len(store["weeklyHours"]) == 7 and store["weeklyHours"][0]["weekday"] == 1
    assert store["pickupPreparationMinutes"] > 0 and store["pickupHoldDays"] > 0
    assert store["name"] != body["data"]["en"]["name"]  # zh-Hans by default, en on request
    assert body["data"]["missing"] is None
    assert [e["extensions"]["code"] for e in body["errors"]] == ["NOT_FOUND"]
    assert [call.method for call in retail.calls.calls] == ["BatchGetStores"]


async def test_nearby_with_skus_lists_only_stores_with_stock_nearest_first(
    retail: GatewayClient, retail_stack: RetailStack
) -> None:
    sku = new_sku()
    stocked = {"st_001": 10, "st_014": 3, "st_004": 4}
    for store_id, quantity in stocked.items():
        await receive(retail_stack, store_id, sku, quantity)
    # st_005 is near too, but what it received was damaged: known to the store, none available.
    await receive(retail_stack, "st_005", sku, 5)
    await retail_stack.store.AdjustInventory(
        store_pb2.AdjustInventoryRequest(
            store_id="st_005",
            sku_id=sku,
            delta=-5,
            reason=store_pb2.ADJUSTMENT_REASON_DAMAGE,
            actor_id="test_setup",
            idempotency_key=f"setup-{uuid.uuid4().hex}",
        )
    )
    retail.calls.clear()

    body = await retail.query(NEARBY, {**HERE, "skuIds": [sku]})
    assert "errors" not in body, body
    stores = body["data"]["nearbyStores"]
    assert {s["store"]["id"] for s in stores} == set(stocked)
    distances = [s["distanceKm"] for s in stores]
    assert distances == sorted(distances) and distances[0] < 0.1  # st_001 is at the point
    for item in stores:
        assert item["availability"] == [{"skuId": sku, "available": stocked[item["store"]["id"]]}]
        assert item["readyBy"] is not None and item["readyBy"].endswith("+00:00")
    assert [call.method for call in retail.calls.calls] == ["NearbyStores"]

    everywhere = await retail.query(NEARBY, HERE)
    ids = [s["store"]["id"] for s in everywhere["data"]["nearbyStores"]]
    assert "st_005" in ids and set(stocked) <= set(ids)


async def test_nearby_open_now_only_lists_open_stores(retail: GatewayClient) -> None:
    body = await retail.query(NEARBY, {**HERE, "radiusKm": 50, "first": 50, "openNow": True})
    assert all(s["openNow"] for s in body["data"]["nearbyStores"])
    assert "st_019" not in {s["store"]["id"] for s in body["data"]["nearbyStores"]}


@pytest.mark.parametrize(
    ("variables", "field"),
    [
        ({"lat": 91.0, "lng": 121.0}, "lat"),
        ({"lat": 31.0, "lng": -181.0}, "lng"),
        ({**HERE, "radiusKm": 0.0}, "radiusKm"),
        ({**HERE, "radiusKm": 1000.0}, "radiusKm"),
        ({**HERE, "first": 0}, "first"),
        ({**HERE, "first": 51}, "first"),
        ({**HERE, "skuIds": ["ok_1", "not ok"]}, "skuIds[1]"),
    ],
)
async def test_bad_locator_input_names_the_argument(
    retail: GatewayClient, variables: dict[str, object], field: str
) -> None:
    body = await retail.query(NEARBY, variables)
    assert body["data"] is None
    [error] = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert field in [v["field"] for v in error["extensions"]["fieldViolations"]]


async def test_associate_receives_stock_and_it_shows_at_once(
    retail: GatewayClient, retail_stack: RetailStack
) -> None:
    sku = new_sku()
    key = f"recv-{uuid.uuid4().hex}"
    variables = {
        "storeId": "st_001",
        "skuId": sku,
        "delta": 12,
        "reason": "RECEIVE",
        "key": key,
        "note": "morning delivery",
    }
    body = await retail.query(ADJUST, variables, headers=ASSOCIATE_1)
    assert "errors" not in body, body
    level = {
        "storeId": "st_001",
        "skuId": sku,
        "onHand": 12,
        "reserved": 0,
        "safetyStock": 0,
        "available": 12,
    }
    assert body["data"]["adjustInventory"] == level
    # A retry with the same key changes nothing and answers the same.
    again = await retail.query(ADJUST, variables, headers=ASSOCIATE_1)
    assert again["data"]["adjustInventory"] == level
    assert await on_hand(retail_stack, "st_001", sku) == 12

    stock = await retail.query(
        INVENTORY, {"storeId": "st_001", "skuIds": [sku, "never_stocked"]}, headers=ASSOCIATE_1
    )
    assert stock["data"]["storeInventory"] == [
        {"storeId": "st_001", "skuId": sku, "onHand": 12, "available": 12}
    ]
    nearby = await retail.query(NEARBY, {**HERE, "skuIds": [sku]})
    assert [(s["store"]["id"], s["availability"]) for s in nearby["data"]["nearbyStores"]] == [
        ("st_001", [{"skuId": sku, "available": 12}])
    ]

    trail = await retail.query(
        """query ($sku: ID!) { inventoryAdjustments(storeId: "st_001", skuId: $sku, first: 5) {
             edges { node { id delta reason actorId note onHandAfter sequence createTime } }
             pageInfo { hasNextPage } } }""",
        {"sku": sku},
        headers=MANAGER_1,
    )
    [edge] = trail["data"]["inventoryAdjustments"]["edges"]
    assert edge["node"] | {"createTime": None} == {
        "id": key,
        "delta": 12,
        "reason": "RECEIVE",
        "actorId": "as_st_001_02",
        "note": "morning delivery",
        "onHandAfter": 12,
        "sequence": 1,
        "createTime": None,
    }


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        (ASSOCIATE_2, "FORBIDDEN"),
        (token(Role.STORE_MANAGER, store_id="st_002"), "FORBIDDEN"),
        (CUSTOMER, "FORBIDDEN"),
        (KIOSK, "FORBIDDEN"),
        ({}, "UNAUTHENTICATED"),
    ],
)
async def test_only_staff_of_the_store_may_adjust_it_and_nothing_changes_otherwise(
    retail: GatewayClient, retail_stack: RetailStack, headers: dict[str, str], code: str
) -> None:
    sku = new_sku()
    await receive(retail_stack, "st_001", sku, 7)
    retail.calls.clear()
    variables = {
        "storeId": "st_001",
        "skuId": sku,
        "delta": -3,
        "reason": "TILL_SALE",
        "key": f"sale-{uuid.uuid4().hex}",
    }
    body = await retail.query(ADJUST, variables, headers=headers)
    assert body["data"] is None
    [error] = body["errors"]
    assert error["extensions"]["code"] == code
    assert error["path"] == ["adjustInventory"]
    assert retail.calls.calls == []  # nothing was sent to store-svc
    assert await on_hand(retail_stack, "st_001", sku) == 7

    read = await retail.query(INVENTORY, {"storeId": "st_001", "skuIds": [sku]}, headers=headers)
    assert read["errors"][0]["extensions"]["code"] == code
    assert retail.calls.calls == []


async def test_admin_adjusts_any_store(retail: GatewayClient, retail_stack: RetailStack) -> None:
    sku = new_sku()
    variables = {"storeId": "st_009", "skuId": sku, "delta": 4, "reason": "RECEIVE", "key": sku}
    body = await retail.query(ADJUST, variables, headers=ADMIN)
    assert body["data"]["adjustInventory"]["onHand"] == 4
    assert await on_hand(retail_stack, "st_009", sku) == 4


SAFETY = """
mutation ($storeId: ID!, $skuId: ID!, $n: Int!) {
  setSafetyStock(storeId: $storeId, skuId: $skuId, safetyStock: $n) { onHand safetyStock available }
}
"""


async def test_safety_stock_is_for_the_store_manager(
    retail: GatewayClient, retail_stack: RetailStack
) -> None:
    sku = new_sku()
    await receive(retail_stack, "st_001", sku, 10)
    refused = await retail.query(
        SAFETY, {"storeId": "st_001", "skuId": sku, "n": 3}, headers=ASSOCIATE_1
    )
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    other = await retail.query(
        SAFETY,
        {"storeId": "st_002", "skuId": sku, "n": 3},
        headers=MANAGER_1,
    )
    assert other["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    body = await retail.query(
        SAFETY, {"storeId": "st_001", "skuId": sku, "n": 3}, headers=MANAGER_1
    )
    assert body["data"]["setSafetyStock"] == {"onHand": 10, "safetyStock": 3, "available": 7}
    bad = await retail.query(SAFETY, {"storeId": "st_001", "skuId": sku, "n": -1}, headers=ADMIN)
    assert [v["field"] for v in bad["errors"][0]["extensions"]["fieldViolations"]] == [
        "safetyStock"
    ]


@pytest.mark.parametrize(
    ("delta", "reason", "field"),
    [
        (-5, "RECEIVE", "delta"),
        (5, "DAMAGE", "delta"),
        (3, "TILL_SALE", "delta"),
        (0, "COUNT_CORRECTION", "delta"),
    ],
)
async def test_delta_must_fit_its_reason(
    retail: GatewayClient, retail_stack: RetailStack, delta: int, reason: str, field: str
) -> None:
    sku = new_sku()
    await receive(retail_stack, "st_001", sku, 8)
    variables = {
        "storeId": "st_001",
        "skuId": sku,
        "delta": delta,
        "reason": reason,
        "key": f"k-{uuid.uuid4().hex}",
    }
    body = await retail.query(ADJUST, variables, headers=ASSOCIATE_1)
    assert body["data"] is None
    [error] = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert [v["field"] for v in error["extensions"]["fieldViolations"]] == [field]
    assert await on_hand(retail_stack, "st_001", sku) == 8


async def test_bad_key_and_reused_key(retail: GatewayClient, retail_stack: RetailStack) -> None:
    sku = new_sku()
    variables = {"storeId": "st_001", "skuId": sku, "delta": 2, "reason": "RECEIVE", "key": ""}
    body = await retail.query(ADJUST, variables, headers=ASSOCIATE_1)
    assert [v["field"] for v in body["errors"][0]["extensions"]["fieldViolations"]] == [
        "idempotencyKey"
    ]
    key = f"k-{uuid.uuid4().hex}"
    first = await retail.query(ADJUST, {**variables, "key": key}, headers=ASSOCIATE_1)
    assert first["data"]["adjustInventory"]["onHand"] == 2
    reused = await retail.query(ADJUST, {**variables, "key": key, "delta": 3}, headers=ASSOCIATE_1)
    [error] = reused["errors"]
    assert error["extensions"]["code"] == "FAILED_PRECONDITION"
    assert error["extensions"]["reason"] == "IDEMPOTENCY_KEY_REUSED"
    assert await on_hand(retail_stack, "st_001", sku) == 2
