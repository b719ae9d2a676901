"""The whole system as `make run` starts it: database, four services, gateway, demo data.

Tests run in file order against one stack; the last one stops it with Ctrl-C (SIGINT).
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import time
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2

from retail.member.v1 import member_pb2, member_pb2_grpc
from retail.order.v1 import order_pb2, order_pb2_grpc
from retail.store.v1 import store_pb2, store_pb2_grpc
from tests.conftest import RunningStack, TraceCollector, eventually

pytestmark = pytest.mark.e2e

PRODUCTS_QUERY = """
{ products(first: 5) { edges { node { id title skus { id barcode price { amount currency } } } } } }
"""


async def graphql(
    stack: RunningStack, query: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=10) as client:
        return await client.post("/graphql", json={"query": query}, headers=headers or {})


async def test_seeded_products_are_served_with_skus_and_prices(stack: RunningStack) -> None:
    response = await graphql(stack, PRODUCTS_QUERY)
    assert response.status_code == 200
    body = response.json()
    assert "errors" not in body
    edges = body["data"]["products"]["edges"]
    assert len(edges) == 5
    for edge in edges:
        node = edge["node"]
        assert node["id"].startswith("p_") and node["title"]
        assert node["skus"], node
        for sku in node["skus"]:
            assert len(sku["barcode"]) == 13
            assert sku["price"]["amount"] > 0 and sku["price"]["currency"] == "CNY"


async def test_graphiql_is_served_at_the_printed_address(stack: RunningStack) -> None:
    printed = next(line for line in stack.output if line.startswith("GraphiQL: "))
    url = printed.removeprefix("GraphiQL: ")
    assert url == f"{stack.gateway_url}/graphql"
    async with httpx.AsyncClient(timeout=10) as client:
        page = await client.get(url, headers={"Accept": "text/html"})
    assert page.status_code == 200 and "graphiql" in page.text.lower()


@pytest.mark.parametrize("service", ["catalog", "store", "order", "member"])
async def test_every_service_is_serving_on_the_standard_health_check(
    stack: RunningStack, service: str
) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{stack.service_ports[service]}") as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_each_service_answers_from_its_own_database(stack: RunningStack) -> None:
    ports = stack.service_ports
    async with grpc.aio.insecure_channel(f"127.0.0.1:{ports['store']}") as channel:
        stores = await store_pb2_grpc.StoreServiceStub(channel).ListStores(
            store_pb2.ListStoresRequest(page_size=100)
        )
    assert len(stores.stores) == 20
    async with grpc.aio.insecure_channel(f"127.0.0.1:{ports['member']}") as channel:
        member = await member_pb2_grpc.MemberServiceStub(channel).GetMember(
            member_pb2.GetMemberRequest(id="m_0001")
        )
    assert member.member.id == "m_0001"
    # Other whole-stack tests place orders on this stack: an order nobody placed is absent.
    async with grpc.aio.insecure_channel(f"127.0.0.1:{ports['order']}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await order_pb2_grpc.OrderServiceStub(channel).GetOrder(
                order_pb2.GetOrderRequest(id="o_never_placed")
            )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    ("label", "role", "member_id", "store_id"),
    [
        ("customer", "CUSTOMER", "m_0001", None),
        ("associate", "ASSOCIATE", None, "st_001"),
        ("kiosk", "KIOSK", None, "st_001"),
    ],
)
async def test_printed_demo_tokens_are_accepted(
    stack: RunningStack, label: str, role: str, member_id: str | None, store_id: str | None
) -> None:
    token = stack.token(label)
    response = await graphql(
        stack, "{ me { role memberId storeId } }", {"Authorization": f"Bearer {token}"}
    )
    assert response.json()["data"]["me"] == {
        "role": role,
        "memberId": member_id,
        "storeId": store_id,
    }


async def test_one_trace_spans_http_gateway_grpc_and_mongodb(
    stack: RunningStack, trace_collector: tuple[TraceCollector, int]
) -> None:
    collector, _ = trace_collector
    trace_id = secrets.token_bytes(16)
    parent = f"00-{trace_id.hex()}-{secrets.token_bytes(8).hex()}-01"
    response = await graphql(stack, PRODUCTS_QUERY, {"traceparent": parent})
    assert "errors" not in response.json()

    def spans() -> list[tuple[str, trace_pb2.Span]]:
        return collector.trace(trace_id)

    async def complete() -> bool:
        seen = {(service, span.kind) for service, span in spans()}
        has_mongo_span = any(
            service == "catalog-svc" and _attribute(span, "db.system") == "mongodb"
            for service, span in spans()
        )
        return (
            has_mongo_span
            and {
                ("gateway", trace_pb2.Span.SPAN_KIND_SERVER),
                ("gateway", trace_pb2.Span.SPAN_KIND_CLIENT),
                ("catalog-svc", trace_pb2.Span.SPAN_KIND_SERVER),
            }
            <= seen
        )

    await eventually(complete)
    by_service: dict[str, list[trace_pb2.Span]] = {}
    for service, span in spans():
        by_service.setdefault(service, []).append(span)
    gateway_kinds = {span.kind for span in by_service["gateway"]}
    assert trace_pb2.Span.SPAN_KIND_SERVER in gateway_kinds, "the HTTP request span"
    assert trace_pb2.Span.SPAN_KIND_CLIENT in gateway_kinds, "the outgoing gRPC call"
    catalog_server = [
        s for s in by_service["catalog-svc"] if s.kind == trace_pb2.Span.SPAN_KIND_SERVER
    ]
    assert any("ListProducts" in s.name for s in catalog_server)
    gateway_ids = {s.span_id for s in by_service["gateway"]}
    assert any(s.parent_span_id in gateway_ids for s in catalog_server), "gRPC hop is linked"


async def test_shopper_finds_coffee_sees_her_price_and_nearby_stock(stack: RunningStack) -> None:
    """Issue 3's story: search, open a product, channel+tier price, nearest stores in stock."""
    from datetime import UTC, datetime

    from catalog_svc.demo_data import demo_catalog
    from catalog_svc.domain import Channel, ProductStatus, quote_price
    from member_svc.demo_data import demo_members

    customer = {
        "Authorization": f"Bearer {stack.token('customer')}",
        "X-Retail-Channel": "mini_program",
    }
    found = await graphql(
        stack,
        '{ search(query: "咖啡", first: 50) { totalCount edges { node { id title } } '
        "categoryFacets { category { name } count } } }",
        customer,
    )
    result = found.json()["data"]["search"]
    assert result["totalCount"] > 0 and result["categoryFacets"]
    assert "咖啡" in result["edges"][0]["node"]["title"]
    found_ids = {edge["node"]["id"] for edge in result["edges"]}

    tier = next(m.tier.value for m in demo_members() if m.id == "m_0001")
    priced = next(
        p
        for p in demo_catalog().products
        if p.status is ProductStatus.ACTIVE
        and p.id in found_ids
        and any(r.channel is Channel.MINI_PROGRAM or r.tier == tier for r in p.skus[0].price_rules)
    )
    sku = priced.skus[0]
    expected = quote_price(sku, Channel.MINI_PROGRAM, tier, datetime.now(UTC))
    opened = await graphql(
        stack,
        f'{{ product(id: "{priced.id}") {{ title skus {{ id quote {{ unitPrice {{ amount }} '
        "basePrice { amount } rule } } } }",
        customer,
    )
    quoted = next(s for s in opened.json()["data"]["product"]["skus"] if s["id"] == sku.id)
    assert quoted["quote"]["unitPrice"]["amount"] == expected.unit_price.amount
    assert quoted["quote"]["rule"] == expected.rule

    nearby_query = (
        f'{{ nearbyStores(lat: 31.2304, lng: 121.4737, radiusKm: 15, skuIds: ["{sku.id}"]) '
        "{ store { id } distanceKm openNow readyBy availability { skuId available } } }"
    )
    nearby = (await graphql(stack, nearby_query, customer)).json()["data"]["nearbyStores"]
    assert nearby, "demo stores near People's Square stock the first SKU of every product"
    distances = [s["distanceKm"] for s in nearby]
    assert distances == sorted(distances)
    assert all(s["availability"][0]["available"] >= 1 for s in nearby)

    associate = {"Authorization": f"Bearer {stack.token('associate')}"}
    before = {s["store"]["id"]: s["availability"][0]["available"] for s in nearby}
    received = await graphql(
        stack,
        f'mutation {{ adjustInventory(storeId: "st_001", skuId: "{sku.id}", delta: 7, '
        f'reason: RECEIVE, idempotencyKey: "e2e-receive-{sku.id}") {{ onHand available }} }}',
        associate,
    )
    assert "errors" not in received.json(), received.json()
    after = (await graphql(stack, nearby_query, customer)).json()["data"]["nearbyStores"]
    after_by_store = {s["store"]["id"]: s["availability"][0]["available"] for s in after}
    assert after_by_store["st_001"] == before.get("st_001", 0) + 7


def _attribute(span: trace_pb2.Span, key: str) -> str:
    return next((a.value.string_value for a in span.attributes if a.key == key), "")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_ctrl_c_stops_every_process(stack: RunningStack) -> None:
    pids = [int(p) for p in (stack.data_dir / "stack.pids").read_text().split()]
    assert len(pids) == 5
    stack.process.send_signal(signal.SIGINT)
    time.sleep(0.3)
    stack.process.send_signal(signal.SIGINT)  # an impatient second Ctrl-C changes nothing
    assert stack.process.wait(60) == 0
    assert [pid for pid in pids if _alive(pid)] == []
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", stack.db_port), 1):
        pass
