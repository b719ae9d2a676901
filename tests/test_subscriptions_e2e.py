"""Live order status through the stack as `make run` starts it, with the reference
graphql-ws client from npm (pinned in tests/js/graphql-ws/package-lock.json, installed by
infra/install.sh into var/graphql-ws/) run by node against the running gateway.

The customer of a pickup order and the store's associate subscribe; the payment partner
pays over gRPC with the printed key, the associate marks the order ready, the customer's
client disconnects; the kiosk hands the order over; the customer's client resubscribes
with the last token it got and receives the hand-over, once. Unauthorized subscriptions
are refused.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
import httpx
import pytest

from gateway.auth import Role, issue_token
from gateway.settings import load as load_gateway_settings
from retail.common.v1 import common_pb2
from retail.order.v1 import order_pb2, order_pb2_grpc
from tests.conftest import ROOT, RunningStack

pytestmark = pytest.mark.e2e

CLIENT = ROOT / "tests" / "js" / "graphql-ws" / "subscribe.cjs"
NODE_PATH = ROOT / "var" / "graphql-ws" / "node_modules"
LINE_TIMEOUT = 30.0
EVENT_FIELDS = "orderId sequence kind status resumeToken"
ORDER_UPDATED = f"""
subscription ($id: ID!, $after: String) {{
  orderUpdated(orderId: $id, after: $after) {{ {EVENT_FIELDS} order {{ pickup {{ code }} }} }}
}}
"""
QUEUE = f'subscription {{ storePickupQueue(storeId: "st_001") {{ {EVENT_FIELDS} }} }}'
PLACE = """
mutation ($key: String!) {
  placeOrder(idempotencyKey: $key,
             input: {storeId: "st_001", lines: [{skuId: "p_0003_s1", quantity: 1}]}) {
    id status total { amount }
  }
}
"""
RECEIVE = """
mutation ($key: String!) {
  adjustInventory(storeId: "st_001", skuId: "p_0003_s1", delta: 1, reason: RECEIVE,
                  idempotencyKey: $key) { available }
}
"""


class Subscriber:
    """One node process running the graphql-ws client; its JSON lines as they come."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def line(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        raw = await asyncio.wait_for(self.process.stdout.readline(), LINE_TIMEOUT)
        assert raw, "the graphql-ws client exited"
        line: dict[str, Any] = json.loads(raw)
        return line

    async def event(self, field: str, order_id: str | None = None) -> dict[str, Any]:
        """The next event (of `order_id` only, when given: the store has other orders)."""
        while True:
            line = await self.line()
            assert "next" in line and "errors" not in line["next"], line
            event: dict[str, Any] = line["next"]["data"][field]
            if order_id is None or event["orderId"] == order_id:
                return event

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.terminate()
        await self.process.wait()


@asynccontextmanager
async def subscribed(
    stack: RunningStack, query: str, variables: dict[str, Any], token: str = ""
) -> AsyncIterator[Subscriber]:
    spec = json.dumps({"query": query, "variables": variables, "token": token})
    ws_url = stack.gateway_url.replace("http://", "ws://") + "/graphql"
    process = await asyncio.create_subprocess_exec(
        "node",
        str(CLIENT),
        ws_url,
        spec,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "NODE_PATH": str(NODE_PATH)},
    )
    subscriber = Subscriber(process)
    try:
        yield subscriber
    finally:
        await subscriber.stop()


async def graphql(
    stack: RunningStack, query: str, variables: dict[str, Any], token: str
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}", "X-Retail-Channel": "mini_program"}
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as client:
        response = await client.post(
            "/graphql", json={"query": query, "variables": variables}, headers=headers
        )
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body
    data: dict[str, Any] = body["data"]
    return data


async def new_order(stack: RunningStack) -> dict[str, Any]:
    """The customer's pickup order at st_001, of a unit the associate has just received."""
    key = uuid.uuid4().hex
    await graphql(stack, RECEIVE, {"key": f"ws-receive-{key}"}, stack.token("associate"))
    placed = await graphql(stack, PLACE, {"key": f"ws-{key}"}, stack.token("customer"))
    order: dict[str, Any] = placed["placeOrder"]
    return order


async def subscriptions(stack: RunningStack) -> int:
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=10) as client:
        count: int = (await client.get("/healthz")).json()["subscriptions"]
        return count


async def until_subscriptions(stack: RunningStack, count: int) -> None:
    """The gateway holds `count` subscriptions (so events written from now reach them)."""
    async with asyncio.timeout(LINE_TIMEOUT):
        while await subscriptions(stack) < count:  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def pay(stack: RunningStack, order: dict[str, Any]) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{stack.service_ports['order']}") as channel:
        await order_pb2_grpc.OrderServiceStub(channel).ConfirmPayment(
            order_pb2.ConfirmPaymentRequest(
                order_id=order["id"],
                payment_reference=f"wx-{uuid.uuid4().hex}",
                amount=common_pb2.Money(amount=order["total"]["amount"], currency="CNY"),
            ),
            metadata=(("x-api-key", stack.token("payment partner")),),
        )


async def test_a_graphql_ws_client_sees_ready_and_picked_up_live_and_resumes_without_gap(
    stack: RunningStack,
) -> None:
    assert stack.process.poll() is None, "the stack was stopped before this test"
    customer, associate = stack.token("customer"), stack.token("associate")
    order = (await graphql(stack, PLACE, {"key": f"ws-{uuid.uuid4().hex}"}, customer))["placeOrder"]
    assert order["status"] == "AWAITING_PAYMENT"
    base = await subscriptions(stack)
    async with subscribed(stack, QUEUE, {}, associate) as queue:
        assert await queue.line() == {"connected": True}
        async with subscribed(stack, ORDER_UPDATED, {"id": order["id"]}, customer) as mine:
            assert await mine.line() == {"connected": True}
            await until_subscriptions(stack, base + 2)

            await pay(stack, order)
            paid = await mine.event("orderUpdated")
            assert (paid["sequence"], paid["kind"], paid["status"]) == (2, "paid", "CONFIRMED")
            ready = await graphql(
                stack, "mutation ($id: ID!) { markOrderReady(orderId: $id) { pickupCode } }",
                {"id": order["id"]}, associate,
            )  # fmt: skip
            code = ready["markOrderReady"]["pickupCode"]
            shown = await mine.event("orderUpdated")
            assert (shown["sequence"], shown["status"]) == (3, "READY_FOR_PICKUP")
            assert shown["order"]["pickup"]["code"] == code  # her own order shows the code
        # Her client is gone; the kiosk hands the order over meanwhile.
        kiosk = stack.token("kiosk")
        done = await graphql(
            stack,
            "mutation ($id: ID!, $code: String) "
            "{ handOverOrder(orderId: $id, pickupCode: $code) { status } }",
            {"id": order["id"], "code": code},
            kiosk,
        )
        assert done["handOverOrder"]["status"] == "PICKED_UP"

        # The store's associate saw all three live.
        seen = [await queue.event("storePickupQueue", order["id"]) for _ in range(3)]
        assert [(e["kind"], e["status"]) for e in seen] == [
            ("paid", "CONFIRMED"),
            ("ready_for_pickup", "READY_FOR_PICKUP"),
            ("picked_up", "PICKED_UP"),
        ]
        assert [e["resumeToken"] for e in seen[:2]] == [paid["resumeToken"], shown["resumeToken"]]

    # Back online with the last token: the hand-over, first and once (a repeat of the ready
    # event, or anything before it, would come first).
    variables = {"id": order["id"], "after": shown["resumeToken"]}
    async with subscribed(stack, ORDER_UPDATED, variables, customer) as resumed:
        assert await resumed.line() == {"connected": True}
        picked = await resumed.event("orderUpdated")
        assert (picked["sequence"], picked["kind"], picked["status"]) == (
            4,
            "picked_up",
            "PICKED_UP",
        )
        assert picked["resumeToken"] == seen[2]["resumeToken"]


@pytest.mark.parametrize(
    ("who", "code"),
    [("nobody", "UNAUTHENTICATED"), ("another customer", "FORBIDDEN"), ("kiosk", "FORBIDDEN")],
)
async def test_unauthorized_subscriptions_are_refused(
    stack: RunningStack, who: str, code: str
) -> None:
    customer = stack.token("customer")
    order = (await graphql(stack, PLACE, {"key": f"ws-{uuid.uuid4().hex}"}, customer))["placeOrder"]
    settings = load_gateway_settings()
    token = {
        "nobody": "",
        "another customer": issue_token(
            settings.jwt_secret, settings.jwt_issuer, Role.CUSTOMER, member_id="m_0002"
        ),
        # A kiosk of another store.
        "kiosk": issue_token(
            settings.jwt_secret,
            settings.jwt_issuer,
            Role.KIOSK,
            store_id="st_002",
            device_id="k_st_002_01",
        ),
    }[who]
    async with subscribed(stack, ORDER_UPDATED, {"id": order["id"]}, token) as refused:
        assert await refused.line() == {"connected": True}
        line = await refused.line()
        assert line["next"]["data"] is None
        assert line["next"]["errors"][0]["extensions"]["code"] == code
        assert await refused.line() == {"complete": True}
    async with subscribed(stack, ORDER_UPDATED, {"id": order["id"]}, "not-a-token") as closed:
        assert await closed.line() == {"closed": {"code": 4403, "reason": "Forbidden"}}
