"""Subscriptions over graphql-transport-ws against a real gateway and real services: live
order events, resuming with a token (no gap, no duplicate), authorization before anything is
asked of order-svc, one shared upstream stream per gateway, a slow subscriber bounded.

The client here is a minimal graphql-transport-ws client on `websockets`; the reference
graphql-ws client from npm runs against the `make run` stack in
tests/test_subscriptions_e2e.py.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, cast

import grpc
import pytest
import websockets

from gateway.app import create_app
from gateway.auth import Role, issue_token
from gateway.order_events import OrderEventHub
from gateway.settings import GatewaySettings
from gateway.testing import CallLog, serving
from gateway.tests.conftest import ISSUER, SECRET, OrderWorld, token

STORE = "st_001"
ORDER_UPDATED = """
subscription ($id: ID!, $after: String) {
  orderUpdated(orderId: $id, after: $after) {
    orderId sequence kind status storeId resumeToken order { id status pickup { code } }
  }
}
"""
QUEUE = """
subscription ($store: ID!, $after: String) {
  storePickupQueue(storeId: $store, after: $after) { orderId sequence kind status resumeToken }
}
"""
PLACE = """
mutation ($input: PlaceOrderInput!, $key: String!) {
  placeOrder(input: $input, idempotencyKey: $key) { id status total { amount } }
}
"""
READY = "mutation ($id: ID!) { markOrderReady(orderId: $id) { pickupCode } }"
HAND_OVER = """
mutation ($id: ID!, $code: String) { handOverOrder(orderId: $id, pickupCode: $code) { status } }
"""
ASSOCIATE = token(Role.ASSOCIATE, subject="as_st_001_01", store_id=STORE)
KIOSK = token(Role.KIOSK, store_id=STORE, device_id="k_st_001_01")
EVENT_TIMEOUT = 20.0


@dataclass
class StreamLog(grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[type-arg]
    """Server-streaming calls the gateway made (the CallLog records unary ones)."""

    calls: list[str] = field(default_factory=list)

    async def intercept_unary_stream(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Any],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        method = client_call_details.method
        name = method.decode() if isinstance(method, bytes) else method
        self.calls.append(name.rsplit("/", 1)[-1])
        return await continuation(client_call_details, request)


@dataclass
class Gateway:
    http_url: str
    ws_url: str
    hub: OrderEventHub
    unary: CallLog
    streams: StreamLog

    async def until_subscribed(self, count: int) -> None:
        """Waits until the hub holds `count` subscribers (the test's own ordering, not a
        timing assumption: events written after this reach them)."""
        await until(lambda: self.hub.subscriber_count() >= count)


async def until(condition: Callable[[], bool]) -> None:
    """Polls an in-process condition (the hub's state), EVENT_TIMEOUT at most."""
    async with asyncio.timeout(EVENT_TIMEOUT):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


def _hub_of(app: Any) -> OrderEventHub:
    for route in app.routes:
        view = getattr(getattr(route, "endpoint", None), "app", None)
        if view is not None and getattr(view, "events", None) is not None:
            return cast(OrderEventHub, view.events)
    raise AssertionError("no order event hub in the app")


@pytest.fixture(scope="module")
async def subs(
    order_world: OrderWorld, gateway_settings: GatewaySettings
) -> AsyncIterator[Gateway]:
    import dataclasses

    retail = order_world.retail
    settings = dataclasses.replace(
        gateway_settings,
        catalog_addr=retail.catalog_addr,
        store_addr=retail.store_addr,
        member_addr=retail.member_addr,
        order_addr=order_world.order_addr,
    )
    unary, streams = CallLog(), StreamLog()
    app = create_app(
        settings,
        interceptors=[
            cast(grpc.aio.ClientInterceptor, unary),
            cast(grpc.aio.ClientInterceptor, streams),
        ],
    )
    async with serving(app) as url:
        hub = _hub_of(app)
        yield Gateway(url, url.replace("http://", "ws://") + "/graphql", hub, unary, streams)


class Connection:
    """One graphql-transport-ws connection: init with a token, subscribe, read messages."""

    def __init__(self, socket: Any) -> None:
        self.socket = socket
        self._next_id = 0

    async def subscribe(self, query: str, variables: dict[str, Any]) -> str:
        self._next_id += 1
        operation = str(self._next_id)
        payload = {"query": query, "variables": variables}
        await self.socket.send(
            json.dumps({"id": operation, "type": "subscribe", "payload": payload})
        )
        return operation

    async def message(self) -> dict[str, Any]:
        async with asyncio.timeout(EVENT_TIMEOUT):
            while True:
                message: dict[str, Any] = json.loads(await self.socket.recv())
                if message["type"] != "ping":
                    return message

    async def event(self, field_name: str) -> dict[str, Any]:
        message = await self.message()
        assert message["type"] == "next" and "errors" not in message["payload"], message
        event: dict[str, Any] = message["payload"]["data"][field_name]
        return event

    async def refusal(self) -> dict[str, Any]:
        """The error the subscription ended with (a `next` with errors, then `complete`)."""
        message = await self.message()
        assert message["type"] in ("next", "error"), message
        errors = message["payload"]["errors"] if message["type"] == "next" else message["payload"]
        assert message["payload"].get("data") is None if message["type"] == "next" else True
        extensions: dict[str, Any] = errors[0]["extensions"]
        if message["type"] == "next":
            assert (await self.message())["type"] == "complete"
        return extensions


@asynccontextmanager
async def connected(gateway: Gateway, headers: dict[str, str] | None) -> AsyncIterator[Connection]:
    """A connection whose connection_init carries the Authorization header, if any."""
    async with websockets.connect(gateway.ws_url, subprotocols=["graphql-transport-ws"]) as socket:  # type: ignore[list-item]
        payload = {"Authorization": headers["Authorization"]} if headers else {}
        await socket.send(json.dumps({"type": "connection_init", "payload": payload}))
        ack = json.loads(await socket.recv())
        assert ack["type"] == "connection_ack", ack
        yield Connection(socket)


async def graphql(
    gateway: Gateway, query: str, variables: dict[str, Any], headers: dict[str, str]
) -> dict[str, Any]:
    import httpx

    async with httpx.AsyncClient(base_url=gateway.http_url, timeout=20) as client:
        response = await client.post(
            "/graphql", json={"query": query, "variables": variables}, headers=headers
        )
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body
    data: dict[str, Any] = body["data"]
    return data


def customer(member_id: str) -> dict[str, str]:
    return {**token(Role.CUSTOMER, member_id=member_id), "X-Retail-Channel": "mini_program"}


async def new_order(
    gateway: Gateway, world: OrderWorld, member_id: str = ""
) -> tuple[str, dict[str, Any]]:
    """A pickup order at STORE awaiting payment (a fresh member's unless given)."""
    sku = await world.stocked_sku(3)
    member_id = member_id or (await world.new_member()).id
    order_input = {"storeId": STORE, "lines": [{"skuId": sku, "quantity": 1}]}
    variables = {"input": order_input, "key": uuid.uuid4().hex}
    placed = await graphql(gateway, PLACE, variables, customer(member_id))
    return member_id, placed["placeOrder"]


async def ready(gateway: Gateway, order_id: str) -> str:
    code: str = (await graphql(gateway, READY, {"id": order_id}, ASSOCIATE))["markOrderReady"][
        "pickupCode"
    ]
    return code


async def hand_over(gateway: Gateway, order_id: str, code: str) -> None:
    done = await graphql(gateway, HAND_OVER, {"id": order_id, "code": code}, KIOSK)
    assert done["handOverOrder"]["status"] == "PICKED_UP"


async def test_the_customer_sees_her_order_paid_ready_and_picked_up_live(
    subs: Gateway, order_world: OrderWorld
) -> None:
    member_id, order = await new_order(subs, order_world)
    before = subs.hub.subscriber_count()
    async with connected(subs, customer(member_id)) as connection:
        await connection.subscribe(ORDER_UPDATED, {"id": order["id"]})
        await subs.until_subscribed(before + 1)
        await order_world.pay(order["id"], order["total"]["amount"])
        paid = await connection.event("orderUpdated")
        assert (paid["kind"], paid["status"], paid["sequence"]) == ("paid", "CONFIRMED", 2)
        assert paid["orderId"] == order["id"] and paid["storeId"] == STORE
        assert paid["order"]["status"] == "CONFIRMED" and paid["resumeToken"]
        code = await ready(subs, order["id"])
        ready_event = await connection.event("orderUpdated")
        assert (ready_event["kind"], ready_event["status"]) == (
            "ready_for_pickup",
            "READY_FOR_PICKUP",
        )
        assert ready_event["order"]["pickup"]["code"] == code  # her own order: the code is shown
        await hand_over(subs, order["id"], code)
        picked = await connection.event("orderUpdated")
        assert (picked["kind"], picked["status"], picked["sequence"]) == (
            "picked_up",
            "PICKED_UP",
            4,
        )
    # Every subscriber of the gateway shares one upstream stream.
    assert subs.streams.calls.count("WatchOrderEvents") == 1


async def test_a_client_that_reconnects_with_its_token_misses_nothing_and_repeats_nothing(
    subs: Gateway, order_world: OrderWorld
) -> None:
    member_id, order = await new_order(subs, order_world)
    headers = customer(member_id)
    before = subs.hub.subscriber_count()
    async with connected(subs, headers) as connection:
        await connection.subscribe(ORDER_UPDATED, {"id": order["id"]})
        await subs.until_subscribed(before + 1)
        await order_world.pay(order["id"], order["total"]["amount"])
        paid = await connection.event("orderUpdated")
    # Offline: the order is readied and handed over.
    code = await ready(subs, order["id"])
    await hand_over(subs, order["id"], code)
    async with connected(subs, headers) as connection:
        await connection.subscribe(ORDER_UPDATED, {"id": order["id"], "after": paid["resumeToken"]})
        missed = [await connection.event("orderUpdated") for _ in range(2)]
        assert [(e["sequence"], e["kind"]) for e in missed] == [
            (3, "ready_for_pickup"),
            (4, "picked_up"),
        ]
        # From the later token nothing comes again: the next message on the connection is
        # the first event of her next order, subscribed after it.
        await connection.subscribe(
            ORDER_UPDATED, {"id": order["id"], "after": missed[1]["resumeToken"]}
        )
        _, second = await new_order(subs, order_world, member_id)
        await connection.subscribe(ORDER_UPDATED, {"id": second["id"]})
        await subs.until_subscribed(before + 3)
        await order_world.pay(second["id"], second["total"]["amount"])
        message = await connection.message()
        assert message["id"] == "3", message
        assert message["payload"]["data"]["orderUpdated"]["orderId"] == second["id"]
    assert subs.streams.calls.count("WatchOrderEvents") == 1  # the ring answered both resumes


async def test_a_token_the_ring_no_longer_holds_resumes_upstream_then_joins_the_shared_stream(
    subs: Gateway, order_world: OrderWorld
) -> None:
    """A hub without the earlier events (as after a gateway restart): the resume reads them
    from order-svc with the token, and at the first one the hub has too, hands over to the
    shared stream and closes its private one."""
    member_id, order = await new_order(subs, order_world)
    before = subs.hub.subscriber_count()
    async with connected(subs, customer(member_id)) as connection:
        await connection.subscribe(ORDER_UPDATED, {"id": order["id"]})
        await subs.until_subscribed(before + 1)
        await order_world.pay(order["id"], order["total"]["amount"])
        paid = await connection.event("orderUpdated")
    code = await ready(subs, order["id"])
    subs.hub._reset_ring()  # the ready event is gone from the hub
    await hand_over(subs, order["id"], code)
    await until(lambda: (order["id"], 4) in subs.hub._by_seq)  # the hub has picked_up
    handovers, streams = subs.hub.stats.handovers, subs.streams.calls.count("WatchOrderEvents")
    async with connected(subs, customer(member_id)) as connection:
        await connection.subscribe(ORDER_UPDATED, {"id": order["id"], "after": paid["resumeToken"]})
        missed = [await connection.event("orderUpdated") for _ in range(2)]
        assert [(e["sequence"], e["kind"]) for e in missed] == [
            (3, "ready_for_pickup"),
            (4, "picked_up"),
        ]
        await until(lambda: subs.hub.stats.handovers == handovers + 1)
    assert subs.streams.calls.count("WatchOrderEvents") == streams + 1  # one private catch-up


async def test_the_store_queue_shows_its_orders_to_its_staff_and_kiosks(
    subs: Gateway, order_world: OrderWorld
) -> None:
    _, order = await new_order(subs, order_world)
    before = subs.hub.subscriber_count()
    async with connected(subs, ASSOCIATE) as staff, connected(subs, KIOSK) as kiosk:
        await staff.subscribe(QUEUE, {"store": STORE})
        await kiosk.subscribe(QUEUE, {"store": STORE})
        await subs.until_subscribed(before + 2)
        await order_world.pay(order["id"], order["total"]["amount"])
        code = await ready(subs, order["id"])
        await hand_over(subs, order["id"], code)
        for connection in (staff, kiosk):
            seen: list[tuple[str, str]] = []
            while len(seen) < 3:
                event = await connection.event("storePickupQueue")
                if event["orderId"] == order["id"]:  # other tests' orders of the store too
                    seen.append((event["kind"], event["status"]))
            assert seen == [
                ("paid", "CONFIRMED"),
                ("ready_for_pickup", "READY_FOR_PICKUP"),
                ("picked_up", "PICKED_UP"),
            ]


@pytest.mark.parametrize(
    ("who", "query", "variables", "code"),
    [
        (None, ORDER_UPDATED, {"id": "o_whatever"}, "UNAUTHENTICATED"),
        (None, QUEUE, {"store": STORE}, "UNAUTHENTICATED"),
        ("stranger", ORDER_UPDATED, {}, "FORBIDDEN"),
        ("other store", ORDER_UPDATED, {}, "FORBIDDEN"),
        ("other store", QUEUE, {"store": STORE}, "FORBIDDEN"),
        ("customer", QUEUE, {"store": STORE}, "FORBIDDEN"),
        ("other kiosk", QUEUE, {"store": STORE}, "FORBIDDEN"),
        ("customer", ORDER_UPDATED, {"id": "bad id!"}, "BAD_USER_INPUT"),
        ("customer", ORDER_UPDATED, {"after": ""}, "BAD_USER_INPUT"),
        ("customer", ORDER_UPDATED, {"id": "o_does_not_exist"}, "NOT_FOUND"),
        ("customer", ORDER_UPDATED, {"after": "bm90IGEgdG9rZW4"}, "BAD_USER_INPUT"),
    ],
)
async def test_refused_subscriptions_are_refused_before_order_events_are_watched(
    subs: Gateway,
    order_world: OrderWorld,
    who: str | None,
    query: str,
    variables: dict[str, Any],
    code: str,
) -> None:
    member_id, order = await new_order(subs, order_world)
    headers = {
        None: None,
        "customer": customer(member_id),
        "stranger": customer((await order_world.new_member()).id),
        "other store": token(Role.ASSOCIATE, subject="as_st_003_01", store_id="st_003"),
        "other kiosk": token(Role.KIOSK, store_id="st_003", device_id="k_st_003_01"),
    }[who]
    streams = list(subs.streams.calls)
    async with connected(subs, headers) as connection:
        await connection.subscribe(query, {"id": order["id"], **variables})
        extensions = await connection.refusal()
    assert extensions["code"] == code, extensions
    if code == "BAD_USER_INPUT":
        assert extensions["fieldViolations"][0]["field"] in ("orderId", "after")
    # Nothing watched for a refused subscription, except resuming from an unknown token,
    # which only order-svc can judge (it refuses it: INVALID_ARGUMENT).
    expected_streams = 1 if variables.get("after") else 0
    assert len(subs.streams.calls) - len(streams) == expected_streams


async def test_a_bad_token_in_connection_init_closes_the_connection(subs: Gateway) -> None:
    async with websockets.connect(subs.ws_url, subprotocols=["graphql-transport-ws"]) as socket:  # type: ignore[list-item]
        bad = issue_token("another-secret-of-at-least-32-bytes!!", ISSUER, Role.ADMIN)
        await socket.send(
            json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {bad}"}})
        )
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await socket.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403
    assert SECRET != "another-secret-of-at-least-32-bytes!!"


async def test_a_subscriber_that_stops_reading_is_ended_with_its_token_and_resumes(
    subs: Gateway, order_world: OrderWorld
) -> None:
    """A hub whose subscribers may queue one event: a subscriber that takes one event and
    then reads nothing while two more arrive is ended (RESUME_REQUIRED) with the token of
    the event it took, its queue emptied; with that token it gets both, once."""
    from gateway.order_events import Key, ResumeRequired
    from retail.order.v1 import order_pb2_grpc

    async with grpc.aio.insecure_channel(order_world.order_addr) as channel:
        stub = order_pb2_grpc.OrderServiceStub(channel)
        hub = OrderEventHub(lambda: stub, queue_size=1)
        try:
            _, order = await new_order(subs, order_world)
            key = Key(order_id=order["id"])
            stalled = hub.events(key)
            first = asyncio.ensure_future(stalled.__anext__())
            await until(lambda: hub.subscriber_count() >= 1)
            subscriber = next(iter(hub._subscribers[key]))
            await order_world.pay(order["id"], order["total"]["amount"])
            took = await first
            code = await ready(subs, order["id"])
            await hand_over(subs, order["id"], code)
            await until(lambda: subscriber.ended is not None)
            assert len(subscriber.queue) == 0
            with pytest.raises(ResumeRequired) as ended:
                await stalled.__anext__()
            assert ended.value.token == took.resume_token
            assert hub.subscriber_count() == 0
            resumed = hub.events(key, ended.value.token)
            events = [await resumed.__anext__() for _ in range(2)]
            assert [(e.sequence, e.kind) for e in events] == [
                (3, "ready_for_pickup"),
                (4, "picked_up"),
            ]
            await resumed.aclose()
        finally:
            await hub.close()
    assert hub.subscriber_count() == 0


def test_each_subscription_event_gets_its_own_sub_field_memo() -> None:
    """graphql-core 3.3.2 shares one memo between a subscription's events, keyed by lists
    each event makes anew: memory grew with every event delivered (gateway.subscriptions
    gives each event its own). Here on the gateway's own schema and document."""
    from graphql import parse
    from graphql.execution.executor import Executor

    from gateway.schema import build_schema

    schema = build_schema()._schema
    document = parse('subscription { storePickupQueue(storeId: "st_001") { orderId kind } }')
    executor = Executor.build(schema, document)
    assert isinstance(executor, Executor)
    first = executor.build_per_event_executor({"storePickupQueue": None})
    second = executor.build_per_event_executor({"storePickupQueue": None})
    memos = [e._relevant_sub_fields for e in (executor, first, second)]
    assert len({id(memo) for memo in memos}) == 3
