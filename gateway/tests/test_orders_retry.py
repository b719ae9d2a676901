"""Retryable answers of placeOrder: a duplicate sent while the first call is still running
is RETRY_LATER (order-svc's ABORTED / IN_PROGRESS), and a first call whose downstream
service does not answer is SERVICE_UNAVAILABLE (retry with the same key).

The order-svc here reaches a catalog address that accepts connections and never answers
(a real socket, not a stub of our code), so its first call is deterministically still
quoting when the duplicate arrives."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator

import pytest

from gateway.auth import Role
from gateway.settings import GatewaySettings
from gateway.testing import GatewayClient, running_gateway
from gateway.tests.conftest import OrderWorld, token
from retail_kit.testing import running_service, unique_name

PLACE = """
mutation ($input: PlaceOrderInput!, $key: String!) {
  placeOrder(input: $input, idempotencyKey: $key) { id }
}
"""


@pytest.fixture(scope="module")
async def silent_catalog() -> AsyncIterator[str]:
    """A TCP listener that accepts and reads, and never answers (a hung service)."""
    held: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        while await reader.read(65536):
            pass

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        for writer in held:
            writer.close()
        server.close()


@pytest.fixture(scope="module")
async def stalled_gateway(
    mongo_uri: str,
    order_world: OrderWorld,
    silent_catalog: str,
    gateway_settings: GatewaySettings,
) -> AsyncIterator[GatewayClient]:
    from order_svc import access as order_access
    from order_svc import app as order_app
    from order_svc.settings import OrderSettings

    retail = order_world.retail
    settings = OrderSettings(
        mongodb_uri=mongo_uri,
        database=unique_name("gateway_order_stalled"),
        catalog_addr=silent_catalog,
        store_addr=retail.store_addr,
        member_addr=retail.member_addr,
        worker_interval_seconds=0.0,
        call_timeout_seconds=1.5,
        idempotency_wait_seconds=0.2,
    )
    register, on_ready, on_stop = order_app.hooks()
    async with running_service(
        order_app.NAME,
        settings,
        order_app.SERVICE_NAMES,
        register,
        on_ready,
        on_stop,
        interceptors=order_access.interceptors(settings),
    ) as host:
        gateway = dataclasses.replace(
            gateway_settings,
            catalog_addr=retail.catalog_addr,
            store_addr=retail.store_addr,
            member_addr=retail.member_addr,
            order_addr=f"127.0.0.1:{host.port}",
            grpc_timeout_seconds=5.0,
        )
        async with running_gateway(gateway) as client:
            yield client


async def test_a_duplicate_of_a_running_placement_is_retry_later(
    stalled_gateway: GatewayClient, order_world: OrderWorld
) -> None:
    sku = await order_world.stocked_sku(3)
    member = await order_world.new_member()
    headers = {**token(Role.CUSTOMER, member_id=member.id), "X-Retail-Channel": "app"}
    variables = {
        "input": {"storeId": "st_001", "lines": [{"skuId": sku, "quantity": 1}]},
        "key": f"k-{uuid.uuid4().hex}",
    }
    first = asyncio.create_task(stalled_gateway.query(PLACE, variables, headers))
    await asyncio.sleep(0.3)  # the first call has claimed the key and waits for the catalog
    duplicate = await stalled_gateway.query(PLACE, variables, headers)
    extensions = duplicate["errors"][0]["extensions"]
    assert (extensions["code"], extensions["reason"]) == ("RETRY_LATER", "IN_PROGRESS")
    assert extensions["metadata"]["retry_after_seconds"]
    assert not first.done()

    answered = await first
    assert answered["errors"][0]["extensions"]["code"] == "SERVICE_UNAVAILABLE"
    assert "127.0.0.1" not in str(answered)  # no addresses shown
    level = await order_world.level("st_001", sku)
    assert (level.on_hand, level.reserved) == (3, 0)  # nothing held
