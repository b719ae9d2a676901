"""Partners over gRPC against the stack as `make run` starts it: docs/PARTNERS.md's session
(reflection, refusal without a key and with a key lacking the scope, ConfirmPayment and a
read with the printed demo keys, the rate limit), run with grpcurl when it is installed
(`make grpcurl`), else with infra/grpc_cli.py, its Python stand-in with the same flags.
Then the production posture: a second stack with <SERVICE>_REQUIRE_API_KEY=true, where
nothing reaches a service method without a key but the gateway and order-svc, which
present their own, still serve every request.

Runs before test_stack_e2e.py (file order), whose last test stops the shared stack.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from catalog_svc import access as catalog_access
from member_svc import access as member_access
from order_svc import access as order_access
from retail.catalog.v1 import catalog_pb2
from retail.member.v1 import member_pb2
from retail.order.v1 import order_pb2
from retail.store.v1 import store_pb2, store_pb2_grpc
from retail_kit.apikeys import INTERNAL_SCOPE
from retail_kit.embedded import free_port
from retail_kit.errors import RpcErrorDetails
from store_svc import access as store_access
from tests.conftest import ROOT, SERVICES, STACK_START_TIMEOUT, RunningStack, _pump

pytestmark = pytest.mark.e2e

GUIDE = ROOT / "docs" / "PARTNERS.md"
POLICIES = {
    "catalog": (catalog_access, catalog_pb2, "CatalogService"),
    "store": (store_access, store_pb2, "StoreService"),
    "order": (order_access, order_pb2, "OrderService"),
    "member": (member_access, member_pb2, "MemberService"),
}
PLACE_ORDER = """
mutation ($key: String!) {
  placeOrder(idempotencyKey: $key,
             input: {storeId: "st_001", lines: [{skuId: "p_0001_s1", quantity: 1}]}) {
    id status total { amount currency }
  }
}
"""


def grpcurl() -> list[str]:
    """grpcurl from var/bin (make grpcurl) or the PATH, else the Python stand-in."""
    for candidate in (ROOT / "var" / "bin" / "grpcurl", shutil.which("grpcurl")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return [str(candidate)]
    return [sys.executable, str(ROOT / "infra" / "grpc_cli.py")]


async def session(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *grpcurl(),
        "-plaintext",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def error_details(stderr: str) -> dict[str, Any]:
    """The ErrorInfo grpcurl (or grpc_cli.py) printed under Details."""
    match = re.search(r"1\)\t(\{.*?\n    \t\})", stderr, re.S)
    assert match, stderr
    info: dict[str, Any] = json.loads(match.group(1).replace("\n    \t", "\n"))
    return info


async def graphql(
    url: str, query: str, variables: dict[str, Any], token: str = ""
) -> dict[str, Any]:
    headers = {"X-Retail-Channel": "mini_program"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        response = await client.post(
            "/graphql", json={"query": query, "variables": variables}, headers=headers
        )
    body: dict[str, Any] = response.json()
    assert response.status_code == 200 and "errors" not in body, body
    data: dict[str, Any] = body["data"]
    return data


def confirm_payment(order: dict[str, Any], reference: str) -> str:
    return json.dumps(
        {
            "order_id": order["id"],
            "payment_reference": reference,
            "amount": {"amount": order["total"]["amount"], "currency": "CNY"},
        }
    )


def test_every_scope_in_the_guide_is_the_services_own() -> None:
    """The guide's scope table lists exactly the services' maps; every mapped method exists
    and every other method of each service is first-party only."""
    documented: dict[tuple[str, str], set[str]] = {}
    for line in GUIDE.read_text().splitlines():
        if match := re.match(r"^\| `([a-z.]+)` \| (\w+) \| ([A-Za-z, ]+) \|", line):
            scope, service, methods = match.groups()
            documented[(service, scope)] = {m.strip() for m in methods.split(",")}
    mapped: dict[tuple[str, str], set[str]] = {}
    for service, (access, module, name) in POLICIES.items():
        full_name = module.DESCRIPTOR.services_by_name[name].full_name
        methods = {m.name for m in module.DESCRIPTOR.services_by_name[name].methods}
        policy = access.policy()
        assert policy.required(f"/{full_name}/NotYetInvented") == INTERNAL_SCOPE
        for method, scope in policy.methods.items():
            method_name = method.rpartition("/")[2]
            if method_name == "*":
                continue
            assert method_name in methods, f"{service}: {method_name} is not a method"
            mapped.setdefault((service, scope), set()).add(method_name)
    assert documented == mapped
    assert order_access.policy().partner_only == {"order.payments"}


async def test_the_guides_session(stack: RunningStack) -> None:
    order_port, store_port = stack.service_ports["order"], stack.service_ports["store"]
    pay, erp = stack.token("payment partner"), stack.token("ERP partner")
    order_addr, store_addr = f"127.0.0.1:{order_port}", f"127.0.0.1:{store_port}"

    # Discovery needs no key.
    code, out, _ = await session(order_addr, "list")
    assert code == 0
    assert out.split() == [
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "retail.order.v1.OrderService",
    ]
    code, out, _ = await session(order_addr, "describe", "retail.order.v1.OrderService")
    assert code == 0 and "rpc ConfirmPayment ( .retail.order.v1.ConfirmPaymentRequest )" in out
    code, out, _ = await session(order_addr, "describe", "retail.order.v1.ConfirmPaymentRequest")
    assert code == 0 and "string order_id = 1;" in out and "amount = 3;" in out

    # A read with the ERP partner's key.
    code, out, _ = await session(
        "-H", f"x-api-key: {erp}", "-d", '{"id": "st_001"}', store_addr,
        "retail.store.v1.StoreService/GetStore",
    )  # fmt: skip
    assert code == 0 and json.loads(out)["store"]["id"] == "st_001"

    # A customer's order waits for payment.
    placed = await graphql(
        stack.gateway_url, PLACE_ORDER, {"key": f"guide-{uuid.uuid4().hex}"},
        stack.token("customer"),
    )  # fmt: skip
    order = placed["placeOrder"]
    assert order["status"] == "AWAITING_PAYMENT"
    request = confirm_payment(order, f"wx-{uuid.uuid4().hex}")
    method = "retail.order.v1.OrderService/ConfirmPayment"

    # Without a key, and with a key that lacks order.payments: refused, nothing changed.
    code, _, err = await session("-d", request, order_addr, method)
    assert code != 0 and "Code: Unauthenticated" in err
    info = error_details(err)
    assert info["reason"] == "UNAUTHENTICATED"
    assert info["metadata"]["required_scope"] == "order.payments"
    code, _, err = await session("-H", f"x-api-key: {erp}", "-d", request, order_addr, method)
    assert code != 0 and "Code: PermissionDenied" in err
    info = error_details(err)
    assert info["reason"] == "PERMISSION_DENIED"
    assert info["metadata"] == {
        "key_id": "pk_demo_erp",
        "method": f"/{method}",
        "required_scope": "order.payments",
    }
    code, _, err = await session(
        "-H", f"x-api-key: {pay}", "-d", '{"page_size": 1}',
        f"127.0.0.1:{stack.service_ports['catalog']}",
        "retail.catalog.v1.CatalogService/ListProducts",
    )  # fmt: skip
    assert code != 0 and error_details(err)["metadata"]["required_scope"] == "catalog.read"
    get_order = json.dumps({"id": order["id"]})
    code, out, _ = await session(
        "-H", f"x-api-key: {pay}", "-d", get_order, order_addr,
        "retail.order.v1.OrderService/GetOrder",
    )  # fmt: skip
    assert code == 0 and json.loads(out)["order"]["status"] == "ORDER_STATUS_AWAITING_PAYMENT"

    # With the payment partner's key: paid, and the partner reads it back.
    code, out, err = await session("-H", f"x-api-key: {pay}", "-d", request, order_addr, method)
    assert code == 0, err
    paid = json.loads(out)["order"]
    assert (paid["status"], paid["payment_status"]) == (
        "ORDER_STATUS_CONFIRMED",
        "PAYMENT_STATUS_PAID",
    )
    assert paid["payment"]["provider"] == "demo_pay"
    code, out, _ = await session(
        "-H", f"x-api-key: {pay}", "-d", get_order, order_addr,
        "retail.order.v1.OrderService/GetOrder",
    )  # fmt: skip
    assert code == 0 and json.loads(out)["order"]["status"] == "ORDER_STATUS_CONFIRMED"


async def test_a_partner_over_its_rate_is_told_when_to_retry(stack: RunningStack) -> None:
    """The demo ERP key allows 5 calls per second in bursts of 10: 40 calls at once are
    partly refused with RATE_LIMITED and when to retry; reflection costs no tokens; the
    retry after the advised wait is admitted."""
    erp = (("x-api-key", stack.token("ERP partner")),)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{stack.service_ports['store']}") as channel:
        store = store_pb2_grpc.StoreServiceStub(channel)
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)

        async def get_store() -> RpcErrorDetails | tuple[float, dict[str, Any]] | None:
            try:
                await store.GetStore(store_pb2.GetStoreRequest(id="st_002"), metadata=erp)
                return None
            except grpc.aio.AioRpcError as error:
                details = RpcErrorDetails.from_rpc_error(error)
                trailers: dict[str, Any] = dict(error.trailing_metadata() or ())  # type: ignore[arg-type]
                assert details.code is grpc.StatusCode.RESOURCE_EXHAUSTED, details
                assert details.reason == "RATE_LIMITED"
                return float(details.metadata["retry_after_seconds"]), trailers

        outcomes = await asyncio.gather(*(get_store() for _ in range(40)))
        refused = [o for o in outcomes if isinstance(o, tuple)]
        assert 10 <= 40 - len(refused) < 40
        waits = [wait for wait, _ in refused]
        assert all(0 < wait <= 0.2 * 40 for wait in waits)
        assert all(int(trailers["retry-after"]) >= 1 for _, trailers in refused)

        async def list_services() -> int:
            request = reflection_pb2.ServerReflectionRequest(list_services="")
            replies = [
                r async for r in reflection.ServerReflectionInfo(iter([request]), metadata=erp)
            ]
            return len(replies[0].list_services_response.service)

        assert await asyncio.gather(*(list_services() for _ in range(40))) == [3] * 40
        await asyncio.sleep(max(waits))
        reply = await store.GetStore(store_pb2.GetStoreRequest(id="st_002"), metadata=erp)
        assert reply.store.id == "st_002"


# --- the production posture -------------------------------------------------------------


@pytest.fixture(scope="module")
def keyed_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """make run's orchestrator with <SERVICE>_REQUIRE_API_KEY=true on every service."""
    data_dir = tmp_path_factory.mktemp("keyed_stack")
    ports = {name: free_port() for name in (*SERVICES, "gateway", "db")}
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("OTEL_")},
        **{f"{name.upper()}_PORT": str(ports[name]) for name in (*SERVICES, "gateway")},
        **{f"{name.upper()}_REQUIRE_API_KEY": "true" for name in SERVICES},
        "DEVSTACK_DB_PORT": str(ports["db"]),
        "DEVSTACK_DATA_DIR": str(data_dir),
        "DEVSTACK_SYNC_ON_COMMIT": "0",
        "PYTHONUNBUFFERED": "1",
    }
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "infra" / "devstack.py")],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    ready = threading.Event()
    threading.Thread(target=_pump, args=(process, lines, ready), daemon=True).start()
    ready.wait(STACK_START_TIMEOUT)
    running = RunningStack(
        process,
        f"http://127.0.0.1:{ports['gateway']}",
        {name: ports[name] for name in SERVICES},
        data_dir,
        ports["db"],
        lines,
    )
    try:
        if not any("[devstack] ready:" in line for line in lines):
            raise RuntimeError("the keyed stack did not start:\n" + "\n".join(lines[-40:]))
        yield running
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()


async def test_production_posture_needs_a_key_for_every_service_method(
    keyed_stack: RunningStack,
) -> None:
    stack = keyed_stack
    erp = stack.token("ERP partner")
    for service in SERVICES:
        address = f"127.0.0.1:{stack.service_ports[service]}"
        code, out, _ = await session(address, "list")
        assert code == 0 and f"retail.{service}.v1." in out
    store_addr = f"127.0.0.1:{stack.service_ports['store']}"
    code, _, err = await session(
        "-d", '{"id": "st_001"}', store_addr, "retail.store.v1.StoreService/GetStore"
    )
    assert code != 0 and error_details(err)["reason"] == "UNAUTHENTICATED"
    code, _, err = await session(
        "-d", '{"member_id": "m_0001"}', f"127.0.0.1:{stack.service_ports['order']}",
        "retail.order.v1.OrderService/ListOrders",
    )  # fmt: skip
    assert code != 0 and error_details(err)["metadata"]["required_scope"] == "order.read"
    code, out, _ = await session(
        "-H", f"x-api-key: {erp}", "-d", '{"id": "st_001"}', store_addr,
        "retail.store.v1.StoreService/GetStore",
    )  # fmt: skip
    assert code == 0 and json.loads(out)["store"]["id"] == "st_001"

    # The gateway (catalog, store, member, order) and order-svc (its saga's calls) present
    # their own keys: a search with stock, a customer's order, its payment.
    data = await graphql(
        stack.gateway_url,
        "{ products(first: 2) { edges { node { id } } } "
        'nearbyStores(lat: 31.2304, lng: 121.4737, radiusKm: 5, skuIds: ["p_0001_s1"]) '
        "{ store { id } availability { available } } me { role memberId } }",
        {},
        stack.token("customer"),
    )
    assert len(data["products"]["edges"]) == 2 and data["nearbyStores"]
    assert data["me"]["memberId"] == "m_0001"
    placed = await graphql(
        stack.gateway_url, PLACE_ORDER, {"key": f"keyed-{uuid.uuid4().hex}"},
        stack.token("customer"),
    )  # fmt: skip
    order = placed["placeOrder"]
    assert order["status"] == "AWAITING_PAYMENT"
    code, out, err = await session(
        "-H", f"x-api-key: {stack.token('payment partner')}",
        "-d", confirm_payment(order, f"wx-{uuid.uuid4().hex}"),
        f"127.0.0.1:{stack.service_ports['order']}",
        "retail.order.v1.OrderService/ConfirmPayment",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["order"]["status"] == "ORDER_STATUS_CONFIRMED"
