"""Issue 8's done scenario through the stack as `make run` starts it (devstack, demo data).

1. A customer in the mini-program (the printed customer token) finds a coffee, picks the
   nearest store with it (nearbyStores), previews and places a pickup order with the COFFEE8
   coupon and points; the payment partner confirms it over gRPC with the printed demo key;
   the store's associate sees it on the pick list and marks it ready; the customer sees the
   code; the store's kiosk hands it over with the code; the points it earns appear as
   pending.
2. A second customer buys two items online for pickup, collects them, and returns one of
   them in ANOTHER store: the refund is exactly that line's allocated paid amount (its price
   less its share of the coupon and the points), the unit is restocked there.

Runs before test_stack_e2e.py (file order), whose last test stops the shared stack.
"""

from __future__ import annotations

import uuid
from typing import Any

import grpc
import httpx
import pytest

from gateway.auth import Role, issue_token
from gateway.settings import load as load_gateway_settings
from retail.common.v1 import common_pb2
from retail.member.v1 import member_pb2, member_pb2_grpc
from retail.order.v1 import order_pb2, order_pb2_grpc
from retail.store.v1 import store_pb2, store_pb2_grpc
from tests.conftest import RunningStack, eventually

pytestmark = pytest.mark.e2e

HOME = (31.2290, 121.4480)  # the customer's location, in Jing'an
COFFEE8 = "ct_demo_coffee8"

ORDER_FIELDS = """
  id status paymentStatus total { amount } subtotal { amount }
  couponId couponDiscount { amount } pointsRedeemed pointsDiscount { amount }
  lines { skuId quantity lineTotal { amount } couponDiscount { amount }
          pointsDiscount { amount } paidAmount { amount } }
  pickup { code readyBy holdUntil pickedUpAt }
  store { id }
"""


async def graphql(
    stack: RunningStack,
    query: str,
    variables: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as client:
        response = await client.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers or {}
        )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body
    data: dict[str, Any] = body["data"]
    return data


def bearer(token: str, channel: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {token}"}
    if channel:
        headers["X-Retail-Channel"] = channel
    return headers


def minted(role: Role, **ids: str) -> str:
    """A token signed as the stack's gateway checks them (the same settings and defaults)."""
    settings = load_gateway_settings()
    return issue_token(settings.jwt_secret, settings.jwt_issuer, role, **ids)


def staff_token(stack: RunningStack, store_id: str, role: Role) -> str:
    """The printed associate / kiosk token for st_001, else one minted for the store."""
    if store_id == "st_001":
        return stack.token("associate" if role is Role.ASSOCIATE else "kiosk")
    if role is Role.ASSOCIATE:
        return minted(role, subject=f"as_{store_id}_01", store_id=store_id)
    return minted(role, store_id=store_id, device_id=f"k_{store_id}_01")


class Services:
    def __init__(self, stack: RunningStack, channels: dict[str, grpc.aio.Channel]) -> None:
        self.stack = stack
        self.member = member_pb2_grpc.MemberServiceStub(channels["member"])
        self.order = order_pb2_grpc.OrderServiceStub(channels["order"])
        self.store = store_pb2_grpc.StoreServiceStub(channels["store"])

    async def coffee8_coupon(self, member_id: str) -> str:
        """The member's available COFFEE8 coupon, claimed with the public code if needed."""
        listed = await self.member.ListMemberCoupons(
            member_pb2.ListMemberCouponsRequest(
                member_id=member_id, status=member_pb2.COUPON_STATUS_AVAILABLE, page_size=100
            )
        )
        for coupon in listed.coupons:
            if coupon.template_id == COFFEE8:
                return coupon.id
        claimed = await self.member.ClaimCoupon(
            member_pb2.ClaimCouponRequest(
                member_id=member_id, claim_code="COFFEE8", request_id=f"e2e-{uuid.uuid4().hex}"
            )
        )
        return claimed.coupon.id

    async def points(self, member_id: str) -> member_pb2.PointsSummary:
        reply = await self.member.GetPointsSummary(
            member_pb2.GetPointsSummaryRequest(member_id=member_id)
        )
        return reply.points

    async def pay(self, order: dict[str, Any]) -> None:
        """The payment partner: ConfirmPayment over gRPC with the key devstack printed."""
        await self.order.ConfirmPayment(
            order_pb2.ConfirmPaymentRequest(
                order_id=order["id"],
                payment_reference=f"wx-{uuid.uuid4().hex}",
                amount=common_pb2.Money(amount=order["total"]["amount"], currency="CNY"),
            ),
            metadata=(("x-api-key", self.stack.token("payment partner")),),
        )

    async def on_hand(self, store_id: str, sku_id: str) -> int:
        reply = await self.store.BatchGetInventory(
            store_pb2.BatchGetInventoryRequest(store_id=store_id, sku_ids=[sku_id])
        )
        return reply.levels[0].on_hand if reply.levels else 0


@pytest.fixture
async def services(stack: RunningStack) -> Any:
    assert stack.process.poll() is None, "the stack was stopped before the orders scenario"
    channels = {
        name: grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        for name, port in stack.service_ports.items()
    }
    try:
        yield Services(stack, channels)
    finally:
        for channel in channels.values():
            await channel.close(None)


async def nearest_pickup_store(stack: RunningStack, sku_id: str, headers: dict[str, str]) -> str:
    nearby = await graphql(
        stack,
        "query ($lat: Float!, $lng: Float!, $sku: ID!) { nearbyStores(lat: $lat, lng: $lng, "
        "radiusKm: 10, skuIds: [$sku]) { store { id status services } distanceKm "
        "availability { available } } }",
        {"lat": HOME[0], "lng": HOME[1], "sku": sku_id},
        headers,
    )
    stores = [
        s
        for s in nearby["nearbyStores"]
        if s["store"]["status"] == "OPEN" and "PICKUP" in s["store"]["services"]
    ]
    assert stores, nearby
    distances = [s["distanceKm"] for s in stores]
    assert distances == sorted(distances)
    store_id: str = stores[0]["store"]["id"]
    return store_id


async def place_pickup(
    stack: RunningStack, headers: dict[str, str], order_input: dict[str, Any]
) -> dict[str, Any]:
    preview = await graphql(
        stack,
        "query ($input: PlaceOrderInput!) { previewOrder(input: $input) { total { amount } "
        "couponDiscount { amount } pointsDiscount { amount } readyBy pointsToEarn } }",
        {"input": order_input},
        headers,
    )
    placed = await graphql(
        stack,
        f"mutation ($input: PlaceOrderInput!, $key: String!) {{ placeOrder(input: $input, "
        f"idempotencyKey: $key) {{ {ORDER_FIELDS} }} }}",
        {"input": order_input, "key": f"e2e-{uuid.uuid4().hex}"},
        headers,
    )
    order: dict[str, Any] = placed["placeOrder"]
    assert order["status"] == "AWAITING_PAYMENT"
    assert order["total"] == preview["previewOrder"]["total"]  # what was shown is charged
    return order


async def ready_and_code(stack: RunningStack, order: dict[str, Any], store_id: str) -> str:
    associate = bearer(staff_token(stack, store_id, Role.ASSOCIATE))
    queue = await graphql(
        stack,
        "query ($s: ID!) { storeOrders(storeId: $s, status: CONFIRMED, first: 100) "
        "{ edges { node { id } } } }",
        {"s": store_id},
        associate,
    )
    assert order["id"] in {e["node"]["id"] for e in queue["storeOrders"]["edges"]}
    ready = await graphql(
        stack,
        "mutation ($id: ID!) { markOrderReady(orderId: $id) { pickupCode order { status } } }",
        {"id": order["id"]},
        associate,
    )
    assert ready["markOrderReady"]["order"]["status"] == "READY_FOR_PICKUP"
    code: str = ready["markOrderReady"]["pickupCode"]
    return code


HAND_OVER = (
    "mutation ($id: ID!, $code: String!) { handOverOrder(orderId: $id, pickupCode: $code) "
    "{ status pickup { pickedUpAt } } }"
)


async def test_coffee_for_pickup_with_coupon_and_points_paid_ready_and_collected_at_the_kiosk(
    stack: RunningStack, services: Services
) -> None:
    customer = bearer(stack.token("customer"), channel="mini_program")
    me = await graphql(stack, "{ me { memberId } }", headers=customer)
    member_id = me["me"]["memberId"]
    found = await graphql(
        stack,
        '{ search(query: "咖啡", first: 20) { edges { node { id category { id } '
        "skus { id } } } } }",
        headers=customer,
    )
    coffee = next(
        edge["node"]["skus"][0]["id"]
        for edge in found["search"]["edges"]
        if edge["node"]["category"]["id"].startswith("cat_coffee")
    )
    store_id = await nearest_pickup_store(stack, coffee, customer)
    coupon_id = await services.coffee8_coupon(member_id)
    before = await services.points(member_id)

    order = await place_pickup(
        stack,
        customer,
        {
            "storeId": store_id,
            "lines": [{"skuId": coffee, "quantity": 1}],
            "couponId": coupon_id,
            "redeemPoints": 100,
        },
    )
    assert order["couponId"] == coupon_id and order["couponDiscount"]["amount"] > 0
    assert order["pointsRedeemed"] == 100 and order["pointsDiscount"]["amount"] > 0
    assert order["store"]["id"] == store_id and order["pickup"]["readyBy"]
    assert (
        order["subtotal"]["amount"]
        - order["couponDiscount"]["amount"]
        - order["pointsDiscount"]["amount"]
        == order["total"]["amount"]
    )

    await services.pay(order)
    code = await ready_and_code(stack, order, store_id)
    seen = await graphql(
        stack,
        "query ($id: ID!) { order(id: $id) { status pickup { code } } }",
        {"id": order["id"]},
        customer,
    )
    assert seen["order"] == {"status": "READY_FOR_PICKUP", "pickup": {"code": code}}

    kiosk = bearer(staff_token(stack, store_id, Role.KIOSK))
    handed = await graphql(stack, HAND_OVER, {"id": order["id"], "code": code}, kiosk)
    assert handed["handOverOrder"]["status"] == "PICKED_UP"
    assert handed["handOverOrder"]["pickup"]["pickedUpAt"]

    async def points_pending() -> bool:
        now = await services.points(member_id)
        return now.pending > before.pending

    await eventually(points_pending, within_seconds=20)
    after = await services.points(member_id)
    assert after.available == before.available - 100  # redeemed for this order


async def test_one_of_two_items_bought_online_is_returned_in_another_store(
    stack: RunningStack, services: Services
) -> None:
    member_id = "m_0002"
    customer = bearer(minted(Role.CUSTOMER, member_id=member_id), channel="app")
    coffee, snack = "p_0004_s1", "p_0011_s1"
    coupon_id = await services.coffee8_coupon(member_id)
    order = await place_pickup(
        stack,
        customer,
        {
            "storeId": "st_001",
            "lines": [{"skuId": coffee, "quantity": 1}, {"skuId": snack, "quantity": 1}],
            "couponId": coupon_id,
            "redeemPoints": 100,
        },
    )
    await services.pay(order)
    code = await ready_and_code(stack, order, "st_001")
    associate = bearer(stack.token("associate"))
    handed = await graphql(stack, HAND_OVER, {"id": order["id"], "code": code}, associate)
    assert handed["handOverOrder"]["status"] == "PICKED_UP"

    returned_line = next(line for line in order["lines"] if line["skuId"] == coffee)
    allocated = returned_line["paidAmount"]["amount"]
    assert allocated == (
        returned_line["lineTotal"]["amount"]
        - returned_line["couponDiscount"]["amount"]
        - returned_line["pointsDiscount"]["amount"]
    )
    assert returned_line["couponDiscount"]["amount"] + returned_line["pointsDiscount"]["amount"]
    other_store = "st_003"
    restocked_before = await services.on_hand(other_store, coffee)
    other_associate = bearer(staff_token(stack, other_store, Role.ASSOCIATE))
    return_id = f"ret-{uuid.uuid4().hex[:12]}"
    result = await graphql(
        stack,
        "mutation ($id: ID!, $ret: ID!, $store: ID!, $sku: ID!) { returnItems(orderId: $id, "
        "returnId: $ret, storeId: $store, lines: [{skuId: $sku, quantity: 1}], "
        'reason: "did not fit") { order { status refunds { amount { amount } returnId } '
        "lines { skuId returnedQuantity refundedAmount { amount } } } "
        "orderReturn { storeId refundAmount { amount } lines { skuId quantity } } } }",
        {"id": order["id"], "ret": return_id, "store": other_store, "sku": coffee},
        other_associate,
    )
    returned = result["returnItems"]
    assert returned["orderReturn"]["storeId"] == other_store
    assert returned["orderReturn"]["refundAmount"]["amount"] == allocated
    assert {"amount": {"amount": allocated}, "returnId": return_id} in returned["order"]["refunds"]
    lines = {line["skuId"]: line for line in returned["order"]["lines"]}
    assert lines[coffee]["returnedQuantity"] == 1
    assert lines[coffee]["refundedAmount"]["amount"] == allocated
    assert lines[snack]["returnedQuantity"] == 0

    async def restocked() -> bool:
        return await services.on_hand(other_store, coffee) == restocked_before + 1

    await eventually(restocked, within_seconds=20)
