"""Every orders operation refuses callers it is not for, before any change: anonymous is
UNAUTHENTICATED, a wrong role or store FORBIDDEN; role refusals send nothing at all, rules
that depend on the order read it (BatchGetOrders) and send nothing else; the order is left
exactly as it was. Allowed callers see the order (and only the right ones see its code)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from gateway.auth import Role
from gateway.testing import GatewayClient
from gateway.tests.conftest import OrderWorld, token

STORE = "st_001"
ASSOCIATE = token(Role.ASSOCIATE, subject="as_st_001_01", store_id=STORE)
MANAGER = token(Role.STORE_MANAGER, subject="mgr_st_001", store_id=STORE)
OTHER_ASSOCIATE = token(Role.ASSOCIATE, subject="as_st_002_01", store_id="st_002")
KIOSK = token(Role.KIOSK, store_id=STORE, device_id="k_st_001_01")
OTHER_KIOSK = token(Role.KIOSK, store_id="st_002", device_id="k_st_002_01")
ADMIN = token(Role.ADMIN, subject="admin_1")
ANONYMOUS: dict[str, str] = {}
STRANGER = {**token(Role.CUSTOMER, member_id="m_0002"), "X-Retail-Channel": "app"}

READS = {"BatchGetOrders"}
"""The only call a refusal that depends on the order may make."""
READS_AND_MERGES = {"BatchGetOrders", "BatchGetMembers"}
"""order(id) for a customer whose member is not the order's: are they one (merged)?"""


@dataclass
class ReadyOrder:
    id: str
    member_id: str
    sku: str
    code: str
    owner: dict[str, str]


@pytest.fixture(scope="module")
async def ready(shared_orders_gateway: GatewayClient, order_world: OrderWorld) -> ReadyOrder:
    """A paid pickup order in st_001, marked ready (its code issued)."""
    client = shared_orders_gateway
    sku = await order_world.stocked_sku(3)
    member = await order_world.new_member()
    owner = {**token(Role.CUSTOMER, member_id=member.id), "X-Retail-Channel": "mini_program"}
    placed = await client.query(
        "mutation ($input: PlaceOrderInput!) { placeOrder(input: $input, "
        'idempotencyKey: "access-1") { id total { amount } } }',
        {"input": {"storeId": STORE, "lines": [{"skuId": sku, "quantity": 1}]}},
        owner,
    )
    order = placed["data"]["placeOrder"]
    await order_world.pay(order["id"], order["total"]["amount"])
    marked = await client.query(
        "mutation ($id: ID!) { markOrderReady(orderId: $id) { pickupCode } }",
        {"id": order["id"]},
        ASSOCIATE,
    )
    code = marked["data"]["markOrderReady"]["pickupCode"]
    return ReadyOrder(order["id"], member.id, sku, code, owner)


def _till(store_id: str, sku: str) -> dict[str, Any]:
    return {
        "input": {
            "storeId": store_id,
            "lines": [{"skuId": sku, "quantity": 1}],
            "memberPhone": f"+86135{uuid.uuid4().int % 10**8:08d}",
            "payment": {"provider": "cash", "amount": {"amount": 1}},
        },
        "key": uuid.uuid4().hex,
    }


ORDER_INPUT = '{storeId: "st_001", lines: [{skuId: "p_0001_s1", quantity: 1}]}'

# (name, document, variables(ready) -> dict, headers, expected code, calls allowed)
CASES: list[tuple[str, str, Any, dict[str, str], str, set[str]]] = []


def case(
    name: str,
    document: str,
    variables: Any,
    refusals: list[tuple[str, dict[str, str], str, set[str]]],
) -> None:
    for who, headers, code, calls in refusals:
        CASES.append((f"{name}-{who}", document, variables, headers, code, calls))


def _id(r: ReadyOrder) -> dict[str, Any]:
    return {"id": r.id}


NONE: set[str] = set()

case(
    "order",
    "query ($id: ID!) { order(id: $id) { id status pickup { code } } }",
    _id,
    [
        ("anonymous", ANONYMOUS, "UNAUTHENTICATED", NONE),
        ("other-customer", STRANGER, "FORBIDDEN", READS_AND_MERGES),
        ("other-store-associate", OTHER_ASSOCIATE, "FORBIDDEN", READS),
        ("other-store-kiosk", OTHER_KIOSK, "FORBIDDEN", READS),
    ],
)
case(
    "myOrders",
    "{ myOrders { edges { node { id } } } }",
    lambda r: {},
    [
        ("anonymous", ANONYMOUS, "UNAUTHENTICATED", NONE),
        ("associate", ASSOCIATE, "FORBIDDEN", NONE),
        ("kiosk", KIOSK, "FORBIDDEN", NONE),
        ("admin", ADMIN, "FORBIDDEN", NONE),
    ],
)
case(
    "previewOrder",
    f"{{ previewOrder(input: {ORDER_INPUT}) {{ total {{ amount }} }} }}",
    lambda r: {},
    [
        ("anonymous", ANONYMOUS, "UNAUTHENTICATED", NONE),
        ("associate", ASSOCIATE, "FORBIDDEN", NONE),
        ("kiosk", KIOSK, "FORBIDDEN", NONE),
    ],
)
case(
    "placeOrder",
    f'mutation {{ placeOrder(input: {ORDER_INPUT}, idempotencyKey: "x1") {{ id }} }}',
    lambda r: {},
    [
        ("anonymous", ANONYMOUS, "UNAUTHENTICATED", NONE),
        ("associate", ASSOCIATE, "FORBIDDEN", NONE),
        ("manager", MANAGER, "FORBIDDEN", NONE),
        ("kiosk", KIOSK, "FORBIDDEN", NONE),
        ("admin", ADMIN, "FORBIDDEN", NONE),
    ],
)
case(
    "storeOrders",
    '{ storeOrders(storeId: "st_001") { edges { node { id } } } }',
    lambda r: {},
    [
        ("anonymous", ANONYMOUS, "UNAUTHENTICATED", NONE),
        ("customer", STRANGER, "FORBIDDEN", NONE),
        ("kiosk", KIOSK, "FORBIDDEN", NONE),
        ("other-store-associate", OTHER_ASSOCIATE, "FORBIDDEN", NONE),
    ],
)
case(
    "cancelOrder",
    "mutation ($id: ID!) { cancelOrder(id: $id) { id } }",
    _id,
    [
        ("anonymous", ANONYMOUS, "UNAUTHENTICATED", NONE),
        ("kiosk", KIOSK, "FORBIDDEN", NONE),
        ("other-customer", STRANGER, "FORBIDDEN", READS),
        ("other-store-associate", OTHER_ASSOCIATE, "FORBIDDEN", READS),
    ],
)
case(
    "markOrderReady",
    "mutation ($id: ID!) { markOrderReady(orderId: $id) { pickupCode } }",
    _id,
    [
        ("anonymous", ANONYMOUS, "UNAUTHENTICATED", NONE),
        ("customer", STRANGER, "FORBIDDEN", NONE),
        ("kiosk", KIOSK, "FORBIDDEN", NONE),
        ("admin", ADMIN, "FORBIDDEN", NONE),
        ("other-store-associate", OTHER_ASSOCIATE, "FORBIDDEN", READS),
    ],
)
HAND_OVER = (
    "mutation ($id: ID!, $code: String, $override: Boolean! = false, $payment: PaymentInput) {"
    ' handOverOrder(orderId: $id, pickupCode: $code, override: $override, reason: "x",'
    " counterPayment: $payment) { id } }"
)
case(
    "handOverOrder",
    HAND_OVER,
    lambda r: {"id": r.id, "code": r.code},
    [
        ("anonymous", ANONYMOUS, "UNAUTHENTICATED", NONE),
        ("customer", STRANGER, "FORBIDDEN", NONE),
        ("admin", ADMIN, "FORBIDDEN", NONE),
        ("other-store-kiosk", OTHER_KIOSK, "FORBIDDEN", READS),
        ("other-store-associate", OTHER_ASSOCIATE, "FORBIDDEN", READS),
    ],
)
case(
    "handOverOrder-by-override",
    HAND_OVER,
    lambda r: {"id": r.id, "override": True},
    [("kiosk", KIOSK, "FORBIDDEN", NONE)],
)
case(
    "handOverOrder-with-payment",
    HAND_OVER,
    lambda r: {
        "id": r.id,
        "code": r.code,
        "payment": {"provider": "cash", "amount": {"amount": 1}},
    },
    [("kiosk", KIOSK, "FORBIDDEN", NONE)],
)
case(
    "tillSale",
    "mutation ($input: TillSaleInput!, $key: String!) {"
    " tillSale(input: $input, idempotencyKey: $key) { id } }",
    lambda r: _till(STORE, r.sku),
    [
        ("anonymous", ANONYMOUS, "UNAUTHENTICATED", NONE),
        ("customer", STRANGER, "FORBIDDEN", NONE),
        ("kiosk", KIOSK, "FORBIDDEN", NONE),
        ("admin", ADMIN, "FORBIDDEN", NONE),
        ("other-store-associate", OTHER_ASSOCIATE, "FORBIDDEN", NONE),
    ],
)
case(
    "returnItems",
    "mutation ($id: ID!, $lines: [OrderLineInput!]!) { returnItems(orderId: $id,"
    ' returnId: "ret-access", storeId: "st_001", lines: $lines) { order { id } } }',
    lambda r: {"id": r.id, "lines": [{"skuId": r.sku, "quantity": 1}]},
    [
        ("anonymous", ANONYMOUS, "UNAUTHENTICATED", NONE),
        ("customer", STRANGER, "FORBIDDEN", NONE),
        ("owner", {}, "FORBIDDEN", NONE),  # headers filled in with the owner's token
        ("kiosk", KIOSK, "FORBIDDEN", NONE),
        ("other-store-associate", OTHER_ASSOCIATE, "FORBIDDEN", NONE),
    ],
)


@pytest.mark.parametrize(
    ("document", "variables", "headers", "code", "allowed_calls"),
    [pytest.param(*rest, id=name) for name, *rest in CASES],
)
async def test_refused_before_any_change(
    orders: GatewayClient,
    order_world: OrderWorld,
    ready: ReadyOrder,
    document: str,
    variables: Any,
    headers: dict[str, str],
    code: str,
    allowed_calls: set[str],
) -> None:
    if headers == {} and code == "FORBIDDEN":
        headers = ready.owner
    before = await order_world.get(ready.id)
    level_before = await order_world.level(STORE, ready.sku)
    orders.calls.clear()
    body = await orders.query(document, variables(ready), headers)
    assert body["data"] is None or all(v is None for v in body["data"].values()), body
    assert [e["extensions"]["code"] for e in body["errors"]] == [code], body
    assert "pickup" not in str(body) and ready.code not in str(body)  # nothing of the order
    assert {call.method for call in orders.calls.calls} <= allowed_calls
    after = await order_world.get(ready.id)
    assert after == before  # not a field changed, not even the wrong-code count
    level = await order_world.level(STORE, ready.sku)
    assert (level.on_hand, level.reserved) == (level_before.on_hand, level_before.reserved)


READ = """
query ($id: ID!) { order(id: $id) { id status member { id phone } pickup { code qrPayload } } }
"""


@pytest.mark.parametrize(
    ("who", "headers", "sees_code", "sees_member"),
    [
        ("owner", None, True, True),
        ("associate", ASSOCIATE, True, True),
        ("manager", MANAGER, True, True),
        ("kiosk", KIOSK, False, False),
        ("admin", ADMIN, False, True),
    ],
)
async def test_allowed_readers_see_what_their_role_may(
    orders: GatewayClient,
    ready: ReadyOrder,
    who: str,
    headers: dict[str, str] | None,
    sees_code: bool,
    sees_member: bool,
) -> None:
    body = await orders.query(READ, {"id": ready.id}, headers or ready.owner)
    assert "errors" not in body, body
    order = body["data"]["order"]
    assert order["id"] == ready.id and order["status"] == "READY_FOR_PICKUP"
    assert (order["pickup"]["code"] == ready.code) is sees_code
    assert (order["pickup"]["qrPayload"] is not None) is sees_code
    assert (order["member"] is not None) is sees_member
    if sees_member:
        phone = order["member"]["phone"]
        assert ("****" in phone) is (who in ("associate", "manager"))


async def test_a_malformed_order_id_is_refused_before_the_batch(orders: GatewayClient) -> None:
    body = await orders.query('{ a: order(id: "not an id") { id } }', headers=ADMIN)
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert orders.calls.calls == []
