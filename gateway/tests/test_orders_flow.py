"""The orders slice over real HTTP against real services: preview, place, pay (the partner's
gRPC call), the pick list, ready, hand-over at a kiosk and at the counter, cancel, till
sales, returns; order-svc's refusals as extensions.code + reason, with nothing changed."""

from __future__ import annotations

import uuid
from typing import Any

from gateway.auth import Role
from gateway.testing import GatewayClient
from gateway.tests.conftest import OrderWorld, token
from retail.order.v1 import order_pb2

STORE = "st_001"
OTHER_STORE = "st_003"
ASSOCIATE = token(Role.ASSOCIATE, subject="as_st_001_01", store_id=STORE)
KIOSK = token(Role.KIOSK, store_id=STORE, device_id="k_st_001_01")

ORDER_FIELDS = """
  id status fulfillment channel paymentStatus storeId associateId endReason
  subtotal { amount currency } discount { amount } total { amount currency }
  couponId couponDiscount { amount } pointsRedeemed pointsDiscount { amount }
  lines { skuId quantity unitPrice { amount } lineTotal { amount } priceRule
          couponDiscount { amount } pointsDiscount { amount } paidAmount { amount }
          returnedQuantity refundedAmount { amount } product { id } sku { id barcode } }
  fulfilments { id storeId status store { id } }
  pickup { code qrPayload readyBy readyAt holdUntil wrongCodeAttempts codeLocked pickedUpAt
           handedOverBy { kind id storeId } }
  payment { status provider transactionId amount { amount } paidAt deadline }
  refunds { id amount { amount } reason returnId }
  returns { id storeId refundAmount { amount } pointsClawedBack
            lines { skuId quantity refundAmount { amount } } }
  store { id code }
  member { id displayName tier phone }
"""

PREVIEW = """
query ($input: PlaceOrderInput!) {
  previewOrder(input: $input) {
    subtotal { amount } couponDiscount { amount } pointsRedeemed pointsDiscount { amount }
    total { amount } readyBy pointsToEarn
    lines { skuId quantity unitPrice { amount } lineTotal { amount } couponDiscount { amount }
            pointsDiscount { amount } paidAmount { amount } }
  }
}
"""

PLACE = f"""
mutation ($input: PlaceOrderInput!, $key: String!) {{
  placeOrder(input: $input, idempotencyKey: $key) {{ {ORDER_FIELDS} }}
}}
"""

ORDER = f"query ($id: ID!) {{ order(id: $id) {{ {ORDER_FIELDS} }} }}"

STORE_ORDERS = """
query ($storeId: ID!, $status: [OrderStatus!], $first: Int, $after: String) {
  storeOrders(storeId: $storeId, status: $status, first: $first, after: $after) {
    edges { cursor node { id status createdAt member { id phone } pickup { code } } }
    pageInfo { hasNextPage endCursor }
  }
}
"""

READY = f"""
mutation ($id: ID!) {{ markOrderReady(orderId: $id) {{ pickupCode order {{ {ORDER_FIELDS} }} }} }}
"""

HAND_OVER = f"""
mutation ($id: ID!, $code: String, $override: Boolean! = false, $reason: String,
          $payment: PaymentInput) {{
  handOverOrder(orderId: $id, pickupCode: $code, override: $override, reason: $reason,
                counterPayment: $payment) {{ {ORDER_FIELDS} }}
}}
"""

CANCEL = f"""
mutation ($id: ID!, $reason: String! = "") {{
  cancelOrder(id: $id, reason: $reason) {{ {ORDER_FIELDS} }}
}}
"""

TILL = f"""
mutation ($input: TillSaleInput!, $key: String!) {{
  tillSale(input: $input, idempotencyKey: $key) {{ {ORDER_FIELDS} }}
}}
"""

RETURN = """
mutation ($orderId: ID!, $returnId: ID!, $storeId: ID!, $lines: [OrderLineInput!]!) {
  returnItems(orderId: $orderId, returnId: $returnId, storeId: $storeId, lines: $lines,
              reason: "changed mind") {
    order { id status refunds { amount { amount } reason returnId }
            lines { skuId returnedQuantity refundedAmount { amount } paidAmount { amount } } }
    orderReturn { id storeId refundAmount { amount }
                  lines { skuId quantity refundAmount { amount } } }
  }
}
"""


def customer(member_id: str, channel: str | None = "mini_program") -> dict[str, str]:
    headers = token(Role.CUSTOMER, member_id=member_id)
    if channel:
        headers["X-Retail-Channel"] = channel
    return headers


def pickup_input(lines: list[tuple[str, int]], **fields: Any) -> dict[str, Any]:
    return {
        "fulfillment": "PICKUP_IN_STORE",
        "storeId": STORE,
        "lines": [{"skuId": sku, "quantity": quantity} for sku, quantity in lines],
        **fields,
    }


def data(body: dict[str, Any]) -> dict[str, Any]:
    assert "errors" not in body, body
    result: dict[str, Any] = body["data"]
    return result


def only_error(body: dict[str, Any]) -> dict[str, Any]:
    assert len(body.get("errors") or []) == 1, body
    extensions: dict[str, Any] = body["errors"][0]["extensions"]
    return extensions


def assert_reconciles(order: dict[str, Any]) -> None:
    """subtotal - coupon - points = total = the sum of what each line paid, per line too."""
    lines = order["lines"]
    assert order["subtotal"]["amount"] == sum(line["lineTotal"]["amount"] for line in lines)
    coupon, points = order["couponDiscount"]["amount"], order["pointsDiscount"]["amount"]
    assert coupon == sum(line["couponDiscount"]["amount"] for line in lines)
    assert points == sum(line["pointsDiscount"]["amount"] for line in lines)
    assert (
        order["subtotal"]["amount"] - coupon - points
        == order["total"]["amount"]
        == sum(line["paidAmount"]["amount"] for line in lines)
    )
    for line in lines:
        assert line["lineTotal"]["amount"] == line["unitPrice"]["amount"] * line["quantity"]


async def place(
    client: GatewayClient, member_id: str, order_input: dict[str, Any], key: str | None = None
) -> dict[str, Any]:
    body = await client.query(
        PLACE, {"input": order_input, "key": key or f"k-{uuid.uuid4().hex}"}, customer(member_id)
    )
    order: dict[str, Any] = data(body)["placeOrder"]
    return order


async def placed_and_paid(
    client: GatewayClient, world: OrderWorld, lines: list[tuple[str, int]]
) -> tuple[str, dict[str, Any]]:
    """A fresh member's paid pickup order in STORE: (member id, order as the partner left it)."""
    member = await world.new_member()
    order = await place(client, member.id, pickup_input(lines))
    await world.pay(order["id"], order["total"]["amount"])
    return member.id, order


async def test_preview_prices_coupon_and_points_and_holds_nothing(
    orders: GatewayClient, order_world: OrderWorld
) -> None:
    sku = await order_world.stocked_sku(5)
    member = await order_world.new_member(points=2000)
    coupon = await order_world.issue_coupon(member.id)
    before = await order_world.level(STORE, sku)
    order_input = pickup_input([(sku, 2)], couponId=coupon.id, redeemPoints=100)
    preview = data(await orders.query(PREVIEW, {"input": order_input}, customer(member.id)))
    result = preview["previewOrder"]
    assert result["couponDiscount"]["amount"] == 500
    assert result["pointsRedeemed"] == 100 and result["pointsDiscount"]["amount"] > 0
    assert result["readyBy"] is not None
    assert_reconciles(result)
    assert [call.method for call in orders.calls.calls] == ["PreviewOrder"]
    after = await order_world.level(STORE, sku)
    assert (after.on_hand, after.reserved) == (before.on_hand, before.reserved)
    status = (await order_world.member.BatchGetCoupons(_coupons([coupon.id]))).coupons[0].status
    assert status == coupon.status  # still available: a preview locks nothing


def _coupons(ids: list[str]) -> Any:
    from retail.member.v1 import member_pb2

    return member_pb2.BatchGetCouponsRequest(ids=ids)


async def test_pickup_order_is_placed_paid_readied_and_handed_over_at_the_kiosk(
    orders: GatewayClient, order_world: OrderWorld
) -> None:
    sku = await order_world.stocked_sku(5)
    member = await order_world.new_member(points=2000)
    coupon = await order_world.issue_coupon(member.id)
    order_input = pickup_input([(sku, 2)], couponId=coupon.id, redeemPoints=100)
    key = f"k-{uuid.uuid4().hex}"
    order = await place(orders, member.id, order_input, key)
    assert order["status"] == "AWAITING_PAYMENT" and order["paymentStatus"] == "PENDING"
    assert order["channel"] == "MINI_PROGRAM" and order["fulfillment"] == "PICKUP_IN_STORE"
    assert order["couponId"] == coupon.id and order["couponDiscount"]["amount"] == 500
    assert order["pointsRedeemed"] == 100
    assert_reconciles(order)
    assert order["lines"][0]["product"]["id"] and order["lines"][0]["sku"]["id"] == sku
    assert order["store"] == {"id": STORE, "code": order["store"]["code"]}
    assert order["member"]["id"] == member.id
    assert order["member"]["phone"] == member.identities[0].value  # whole for the member
    assert order["pickup"]["readyBy"] and order["pickup"]["holdUntil"]
    assert order["pickup"]["code"] is None  # not ready yet
    assert order["payment"]["deadline"]
    assert (await order_world.level(STORE, sku)).reserved == 2

    # A retry with the same key and input is the same order; nothing is placed twice.
    again = await place(orders, member.id, order_input, key)
    assert again["id"] == order["id"]
    assert (await order_world.level(STORE, sku)).reserved == 2

    # The payment partner confirms over gRPC (not GraphQL).
    await order_world.pay(order["id"], order["total"]["amount"])

    queue = data(await orders.query(STORE_ORDERS, {"storeId": STORE}, ASSOCIATE))
    queued = {edge["node"]["id"]: edge["node"] for edge in queue["storeOrders"]["edges"]}
    assert queued[order["id"]]["status"] == "CONFIRMED"
    phone = queued[order["id"]]["member"]["phone"]
    assert phone != member.identities[0].value and "****" in phone  # masked for staff

    ready = data(await orders.query(READY, {"id": order["id"]}, ASSOCIATE))["markOrderReady"]
    code = ready["pickupCode"]
    assert len(code) == 6 and ready["order"]["status"] == "READY_FOR_PICKUP"
    assert ready["order"]["pickup"]["code"] == code  # the store's staff see it
    seen = data(await orders.query(ORDER, {"id": order["id"]}, customer(member.id)))["order"]
    assert seen["pickup"]["code"] == code and seen["pickup"]["qrPayload"]
    at_kiosk = data(await orders.query(ORDER, {"id": order["id"]}, KIOSK))["order"]
    assert at_kiosk["pickup"]["code"] is None and at_kiosk["pickup"]["qrPayload"] is None
    assert at_kiosk["member"] is None  # a kiosk is not shown who bought it

    wrong = "000000" if code != "000000" else "111111"
    refused = await orders.query(HAND_OVER, {"id": order["id"], "code": wrong}, KIOSK)
    extensions = only_error(refused)
    assert extensions["code"] == "BAD_USER_INPUT"
    assert extensions["reason"] == "VERIFICATION_FAILED"
    assert extensions["fieldViolations"][0]["field"] == "pickupCode"
    assert extensions["metadata"]["attempts_remaining"] == "4"
    assert (await order_world.get(order["id"])).status == order_pb2.ORDER_STATUS_READY_FOR_PICKUP

    handed = await orders.query(HAND_OVER, {"id": order["id"], "code": code}, KIOSK)
    done = data(handed)["handOverOrder"]
    assert done["status"] == "PICKED_UP" and done["pickup"]["pickedUpAt"]
    assert done["pickup"]["handedOverBy"] == {
        "kind": "KIOSK",
        "id": "k_st_001_01",
        "storeId": STORE,
    }
    level = await order_world.level(STORE, sku)
    assert (level.on_hand, level.reserved) == (3, 0)  # the reservation was committed

    # A replay of the hand-over answers the order; nothing changes.
    replay = data(await orders.query(HAND_OVER, {"id": order["id"], "code": code}, KIOSK))
    assert replay["handOverOrder"]["status"] == "PICKED_UP"
    assert (await order_world.level(STORE, sku)).on_hand == 3


async def test_same_key_with_another_input_is_a_conflict_and_places_nothing(
    orders: GatewayClient, order_world: OrderWorld
) -> None:
    sku = await order_world.stocked_sku(5)
    member = await order_world.new_member()
    key = f"k-{uuid.uuid4().hex}"
    await place(orders, member.id, pickup_input([(sku, 1)]), key)
    body = await orders.query(
        PLACE, {"input": pickup_input([(sku, 2)]), "key": key}, customer(member.id)
    )
    extensions = only_error(body)
    assert extensions["code"] == "CONFLICT"
    assert extensions["reason"] == "IDEMPOTENCY_KEY_REUSED"
    assert extensions["fieldViolations"][0]["field"] == "idempotencyKey"
    assert (await order_world.level(STORE, sku)).reserved == 1


async def test_refusals_name_their_reason_and_field_and_change_nothing(
    orders: GatewayClient, order_world: OrderWorld
) -> None:
    sku = await order_world.stocked_sku(2)
    member = await order_world.new_member()

    async def refused(order_input: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        body = await orders.query(PLACE, {"input": order_input, "key": uuid.uuid4().hex}, headers)
        return only_error(body)

    out = await refused(pickup_input([(sku, 3)]), customer(member.id))
    assert (out["code"], out["reason"]) == ("FAILED_PRECONDITION", "OUT_OF_STOCK")

    unknown = await refused(pickup_input([("p_9999_s9", 1)]), customer(member.id))
    assert unknown["code"] == "NOT_FOUND"
    assert unknown["fieldViolations"][0]["field"] == "input.lines[0].skuId"

    zero = await refused(pickup_input([(sku, 0)]), customer(member.id))
    assert zero["code"] == "BAD_USER_INPUT"
    assert [v["field"] for v in zero["fieldViolations"]] == ["input.lines[0].quantity"]

    closed = await refused(pickup_input([(sku, 1)], storeId="st_019"), customer(member.id))
    assert (closed["code"], closed["reason"]) == (
        "FAILED_PRECONDITION",
        "STORE_SERVICE_UNAVAILABLE",
    )
    assert closed["fieldViolations"][0]["field"] == "input.storeId"

    no_pickup = await refused(pickup_input([(sku, 1)], storeId="st_020"), customer(member.id))
    assert no_pickup["reason"] == "STORE_SERVICE_UNAVAILABLE"

    no_channel = await refused(pickup_input([(sku, 1)]), customer(member.id, channel=None))
    assert no_channel["code"] == "BAD_USER_INPUT"
    assert no_channel["fieldViolations"][0]["field"] == "X-Retail-Channel"

    till = await refused(
        pickup_input([(sku, 1)], fulfillment="IN_STORE_PURCHASE"), customer(member.id)
    )
    assert till["code"] == "BAD_USER_INPUT"
    assert till["fieldViolations"][0]["field"] == "input.fulfillment"

    level = await order_world.level(STORE, sku)
    assert (level.on_hand, level.reserved) == (2, 0)
    listed = await order_world.order.ListOrders(order_pb2.ListOrdersRequest(member_id=member.id))
    assert list(listed.orders) == []


async def test_customer_cancels_before_ready_and_everything_is_given_back(
    orders: GatewayClient, order_world: OrderWorld
) -> None:
    sku = await order_world.stocked_sku(3)
    member = await order_world.new_member(points=1000)
    order = await place(orders, member.id, pickup_input([(sku, 2)], redeemPoints=100))
    await order_world.pay(order["id"], order["total"]["amount"])
    body = await orders.query(
        CANCEL, {"id": order["id"], "reason": "plans changed"}, customer(member.id)
    )
    cancelled = data(body)["cancelOrder"]
    assert cancelled["status"] == "CANCELLED" and cancelled["endReason"] == "customer"
    assert cancelled["paymentStatus"] == "REFUNDED"
    assert [r["amount"]["amount"] for r in cancelled["refunds"]] == [order["total"]["amount"]]
    assert (await order_world.level(STORE, sku)).reserved == 0
    points = await order_world.member.GetMember(_member(member.id))
    assert points.member.points.available == 1000
    # Cancelling again answers the cancelled order.
    again = data(await orders.query(CANCEL, {"id": order["id"]}, customer(member.id)))
    assert again["cancelOrder"]["status"] == "CANCELLED"


def _member(member_id: str) -> Any:
    from retail.member.v1 import member_pb2

    return member_pb2.GetMemberRequest(id=member_id)


async def test_wrong_codes_lock_the_order_and_only_an_associate_overrides(
    orders: GatewayClient, order_world: OrderWorld
) -> None:
    sku = await order_world.stocked_sku(2)
    _, order = await placed_and_paid(orders, order_world, [(sku, 1)])
    ready = data(await orders.query(READY, {"id": order["id"]}, ASSOCIATE))["markOrderReady"]
    code = ready["pickupCode"]
    wrong = "000000" if code != "000000" else "111111"
    reasons = []
    for _ in range(6):
        body = await orders.query(HAND_OVER, {"id": order["id"], "code": wrong}, KIOSK)
        reasons.append(only_error(body)["reason"])
    assert reasons == ["VERIFICATION_FAILED"] * 4 + ["PICKUP_CODE_LOCKED"] * 2
    locked = await orders.query(HAND_OVER, {"id": order["id"], "code": code}, KIOSK)
    assert only_error(locked)["reason"] == "PICKUP_CODE_LOCKED"
    after = data(await orders.query(ORDER, {"id": order["id"]}, ASSOCIATE))["order"]
    assert after["status"] == "READY_FOR_PICKUP"
    assert after["pickup"]["codeLocked"] and after["pickup"]["wrongCodeAttempts"] == 5

    no_reason = await orders.query(HAND_OVER, {"id": order["id"], "override": True}, ASSOCIATE)
    assert only_error(no_reason)["fieldViolations"][0]["field"] == "reason"
    handed = await orders.query(
        HAND_OVER, {"id": order["id"], "override": True, "reason": "ID checked"}, ASSOCIATE
    )
    done = data(handed)["handOverOrder"]
    assert done["status"] == "PICKED_UP"
    assert done["pickup"]["handedOverBy"] == {
        "kind": "ASSOCIATE",
        "id": "as_st_001_01",
        "storeId": STORE,
    }


async def test_pay_at_pickup_takes_exactly_the_total_at_the_counter(
    orders: GatewayClient, order_world: OrderWorld
) -> None:
    sku = await order_world.stocked_sku(2)
    member = await order_world.new_member()
    order = await place(orders, member.id, pickup_input([(sku, 1)], payAtPickup=True))
    assert order["status"] == "CONFIRMED" and order["paymentStatus"] == "PAY_AT_PICKUP"
    ready = data(await orders.query(READY, {"id": order["id"]}, ASSOCIATE))["markOrderReady"]
    code = ready["pickupCode"]
    total = order["total"]["amount"]

    short = {"provider": "cash", "amount": {"amount": total - 1}}
    mismatch = await orders.query(
        HAND_OVER, {"id": order["id"], "code": code, "payment": short}, ASSOCIATE
    )
    out = only_error(mismatch)
    assert (out["code"], out["reason"]) == ("FAILED_PRECONDITION", "AMOUNT_MISMATCH")
    assert out["metadata"]["expected"] == str(total)
    assert (await order_world.get(order["id"])).status == order_pb2.ORDER_STATUS_READY_FOR_PICKUP

    exact = {
        "provider": "cash",
        "transactionId": f"till-{uuid.uuid4().hex[:8]}",
        "amount": {"amount": total},
    }
    handed = await orders.query(
        HAND_OVER, {"id": order["id"], "code": code, "payment": exact}, ASSOCIATE
    )
    done = data(handed)["handOverOrder"]
    assert done["status"] == "PICKED_UP" and done["paymentStatus"] == "PAID"
    assert done["payment"]["provider"] == "cash" and done["payment"]["amount"]["amount"] == total
    assert (await order_world.level(STORE, sku)).on_hand == 1


async def test_store_queue_is_oldest_first_filtered_and_paged(
    orders: GatewayClient, order_world: OrderWorld
) -> None:
    sku = await order_world.stocked_sku(10, OTHER_STORE)
    member = await order_world.new_member()
    placed = []
    for _ in range(3):
        placed.append(
            await place(
                orders, member.id, pickup_input([(sku, 1)], storeId=OTHER_STORE, payAtPickup=True)
            )
        )
    staff = token(Role.STORE_MANAGER, subject="mgr_st_003", store_id=OTHER_STORE)
    first = data(
        await orders.query(
            STORE_ORDERS, {"storeId": OTHER_STORE, "status": "CONFIRMED", "first": 2}, staff
        )
    )["storeOrders"]
    ids = [edge["node"]["id"] for edge in first["edges"]]
    assert first["pageInfo"]["hasNextPage"] and first["edges"][-1]["cursor"]
    rest = data(
        await orders.query(
            STORE_ORDERS,
            {
                "storeId": OTHER_STORE,
                "status": ["CONFIRMED"],
                "first": 2,
                "after": first["pageInfo"]["endCursor"],
            },
            staff,
        )
    )["storeOrders"]
    ids += [edge["node"]["id"] for edge in rest["edges"]]
    mine = [i for i in ids if i in {o["id"] for o in placed}]
    assert mine == [o["id"] for o in placed]  # oldest first
    created = [edge["node"]["createdAt"] for edge in first["edges"] + rest["edges"]]
    assert created == sorted(created)
    ready_only = data(
        await orders.query(
            STORE_ORDERS, {"storeId": OTHER_STORE, "status": "READY_FOR_PICKUP"}, staff
        )
    )["storeOrders"]
    assert not {e["node"]["id"] for e in ready_only["edges"]} & {o["id"] for o in placed}
    bad = await orders.query(STORE_ORDERS, {"storeId": OTHER_STORE, "first": 0}, staff)
    assert only_error(bad)["code"] == "BAD_USER_INPUT"


async def test_till_sale_enrols_the_phone_and_completes_at_once(
    orders: GatewayClient, order_world: OrderWorld
) -> None:
    sku = await order_world.stocked_sku(4)
    phone = f"+86136{uuid.uuid4().int % 10**8:08d}"
    preview_total = None
    key = f"till-{uuid.uuid4().hex}"

    def sale(amount: int) -> dict[str, Any]:
        return {
            "input": {
                "storeId": STORE,
                "lines": [{"skuId": sku, "quantity": 2}],
                "memberPhone": phone,
                "payment": {
                    "provider": "wechat_pay",
                    "transactionId": key,
                    "amount": {"amount": amount},
                },
            },
            "key": key,
        }

    till_headers = {**ASSOCIATE, "X-Retail-Channel": "pos"}
    mismatch = await orders.query(TILL, {**sale(1), "key": f"{key}-short"}, till_headers)
    extensions = only_error(mismatch)
    assert (extensions["code"], extensions["reason"]) == ("FAILED_PRECONDITION", "AMOUNT_MISMATCH")
    preview_total = int(extensions["metadata"]["expected"])
    assert (await order_world.level(STORE, sku)).on_hand == 4  # compensated: nothing sold

    sold = data(await orders.query(TILL, sale(preview_total), till_headers))["tillSale"]
    assert sold["status"] == "COMPLETED" and sold["paymentStatus"] == "PAID"
    assert sold["fulfillment"] == "IN_STORE_PURCHASE" and sold["channel"] == "POS"
    assert sold["associateId"] == "as_st_001_01"
    assert sold["member"]["phone"] != phone and "****" in sold["member"]["phone"]
    assert_reconciles(sold)
    assert (await order_world.level(STORE, sku)).on_hand == 2
    # The same sale sent again (a till retry) is the same order, sold once.
    replay = data(await orders.query(TILL, sale(preview_total), till_headers))["tillSale"]
    assert replay["id"] == sold["id"] and replay["member"]["id"] == sold["member"]["id"]
    assert (await order_world.level(STORE, sku)).on_hand == 2


async def test_return_in_another_store_refunds_the_allocated_amount(
    orders: GatewayClient, order_world: OrderWorld
) -> None:
    sku_a = await order_world.stocked_sku(3)
    sku_b = await order_world.stocked_sku(3)
    member = await order_world.new_member(points=1000)
    coupon = await order_world.issue_coupon(member.id)
    order = await place(
        orders,
        member.id,
        pickup_input([(sku_a, 1), (sku_b, 2)], couponId=coupon.id, redeemPoints=100),
    )
    await order_world.pay(order["id"], order["total"]["amount"])
    code = data(await orders.query(READY, {"id": order["id"]}, ASSOCIATE))["markOrderReady"][
        "pickupCode"
    ]
    data(await orders.query(HAND_OVER, {"id": order["id"], "code": code}, KIOSK))
    line_b = next(line for line in order["lines"] if line["skuId"] == sku_b)
    paid_b = line_b["paidAmount"]["amount"]

    other_staff = token(Role.ASSOCIATE, subject="as_st_003_01", store_id=OTHER_STORE)
    return_id = f"r-{uuid.uuid4().hex[:12]}"
    variables = {
        "orderId": order["id"],
        "returnId": return_id,
        "storeId": OTHER_STORE,
        "lines": [{"skuId": sku_b, "quantity": 1}],
    }
    result = data(await orders.query(RETURN, variables, other_staff))["returnItems"]
    refund = result["orderReturn"]["refundAmount"]["amount"]
    assert refund == paid_b // 2  # floor(paid x 1 / 2) for the first of two units
    assert result["orderReturn"]["storeId"] == OTHER_STORE
    returned = next(line for line in result["order"]["lines"] if line["skuId"] == sku_b)
    assert returned["returnedQuantity"] == 1 and returned["refundedAmount"]["amount"] == refund
    refunds = [r for r in result["order"]["refunds"] if r["returnId"] == return_id]
    assert [r["amount"]["amount"] for r in refunds] == [refund]
    restocked = await order_world.level(OTHER_STORE, sku_b)
    assert restocked.on_hand == 1  # received at the returning store, not the selling one
    assert (await order_world.level(STORE, sku_b)).on_hand == 1  # 3 received, 2 sold

    # The same return id again returns nothing more.
    again = data(await orders.query(RETURN, variables, other_staff))["returnItems"]
    assert again["orderReturn"]["id"] == return_id
    line = next(x for x in again["order"]["lines"] if x["skuId"] == sku_b)
    assert line["returnedQuantity"] == 1

    too_many = await orders.query(
        RETURN,
        {
            **variables,
            "returnId": f"r-{uuid.uuid4().hex[:12]}",
            "lines": [{"skuId": sku_b, "quantity": 2}],
        },
        other_staff,
    )
    extensions = only_error(too_many)
    assert (extensions["code"], extensions["reason"]) == (
        "FAILED_PRECONDITION",
        "RETURN_EXCEEDS_PURCHASE",
    )
