"""kill -9 of order-svc between delivering an effect and marking it done, then recovery:
never lost, never applied twice.

The crashing process is `python -m order_svc` with ORDER_TEST_CRASH_AT="<key>=effect_delivered"
for two orders: the worker (RunMaintenance) delivers one order's completion to member-svc,
and ReturnItems delivers another order's restock to store-svc; each then stops for good
right after the service applied it and before the effect is marked done, and the process
is killed. An order-svc without the variable then finds both effects claimed (due again when
the claim's lease ends), delivers them again, and member-svc's ledger and store-svc's stock
and trail show each exactly once."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from order_svc.effects import EFFECT_LEASE
from retail.order.v1 import order_pb2, order_pb2_grpc
from retail.store.v1 import store_pb2
from retail_kit.testing import unique_name

from .aftersale_support import handed_over, ledger, maintenance, stored_effect
from .conftest import PICKUP_STORE, Stack, level, order_service, points
from .lifecycle_support import associate, stored
from .service_process import ServiceProcess

CRASH_TIMEOUT = 60.0


class OrderProcess(ServiceProcess):
    def __init__(self, stack: Stack, database: str, log: Path, **env: str) -> None:
        super().__init__(
            "order_svc",
            "ORDER",
            log,
            MONGODB_URI=stack.mongo_uri,
            ORDER_DATABASE=database,
            ORDER_CATALOG_ADDR=stack.address("catalog"),
            ORDER_STORE_ADDR=stack.address("store"),
            ORDER_MEMBER_ADDR=stack.address("member"),
            ORDER_WORKER_INTERVAL_SECONDS="0",
            **env,
        )


@pytest.fixture
def processes() -> Iterator[list[OrderProcess]]:
    started: list[OrderProcess] = []
    yield started
    for process in started:
        process.stop()


async def test_kill_9_between_delivery_and_mark_done_applies_each_effect_once(
    stack: Stack, processes: list[OrderProcess], tmp_path: Path
) -> None:
    database = unique_name("order_effects_crash")
    async with order_service(stack, database=database) as orders:
        # Returned later: completed first (its points pending), so the return's first
        # effect delivered is the restock.
        returning = await handed_over(stack, orders, quantity=3)
        await maintenance(orders)
        # Its completion is left for the crashing worker.
        completing = await handed_over(stack, orders, quantity=2)
        (sku,) = returning.skus
        stock_before = await level(stack, PICKUP_STORE, sku)

        keys = [completing.order.idempotency_key, returning.order.idempotency_key]
        spec = ",".join(f"{key}=effect_delivered" for key in keys)
        crashing = OrderProcess(stack, database, tmp_path / "crashed.log", ORDER_TEST_CRASH_AT=spec)
        processes.append(crashing)
        await crashing.serving()
        request = order_pb2.ReturnItemsRequest(
            order_id=returning.order.id,
            return_id=f"ret_{returning.order.id}",
            store_id=PICKUP_STORE,
            lines=[order_pb2.PlaceOrderLine(sku_id=sku, quantity=1)],
            actor=associate(),
        )
        async with grpc.aio.insecure_channel(crashing.address) as channel:
            stub = order_pb2_grpc.OrderServiceStub(channel)
            calls = [
                asyncio.ensure_future(stub.RunMaintenance(order_pb2.RunMaintenanceRequest())),
                asyncio.ensure_future(stub.ReturnItems(request)),
            ]
            waiting = {f"crash point effect_delivered reached by {key}" for key in keys}
            deadline = time.monotonic() + CRASH_TIMEOUT
            while waiting:
                assert time.monotonic() < deadline, f"never reached: {sorted(waiting)}"
                await asyncio.sleep(0.1)
                text = await asyncio.to_thread(crashing.log_path.read_text, errors="replace")
                waiting = {line for line in waiting if line not in text}
                assert not any(c.done() for c in calls), "answered before the crash"
            crashing.process.send_signal(signal.SIGKILL)
            assert await crashing.exit_code() == -signal.SIGKILL
            answers = await asyncio.gather(*calls, return_exceptions=True)
            assert all(isinstance(a, grpc.aio.AioRpcError) for a in answers), answers

        # Applied by the services, not marked done by order-svc.
        completion = await stored_effect(orders, completing.order.id, "record_completed")
        restock = await stored_effect(orders, returning.order.id, f"restock:{request.return_id}")
        assert completion["state"] == restock["state"] == "pending"
        earns = [
            e
            for e in await ledger(stack, completing.member_id)
            if e.reference == completing.order.id and e.kind == "earn"
        ]
        assert len(earns) == 1
        assert (await level(stack, PICKUP_STORE, sku)).on_hand == stock_before.on_hand + 1

        # Claimed by the dead process: not delivered again before its lease ends...
        await maintenance(orders)
        assert (await stored_effect(orders, completing.order.id, "record_completed"))[
            "state"
        ] == "pending"
        # ... then delivered again, and the services answer the replays.
        orders.clock.advance(seconds=EFFECT_LEASE.total_seconds() + 1)
        await maintenance(orders)
        for order_id, effect_id in (
            (completing.order.id, "record_completed"),
            (returning.order.id, f"restock:{request.return_id}"),
        ):
            assert (await stored_effect(orders, order_id, effect_id))["state"] == "done"
        doc = await stored(orders, returning.order.id)
        assert all(e["state"] == "done" for e in doc["effects"]), doc["effects"]

        earns = [
            e
            for e in await ledger(stack, completing.member_id)
            if e.reference == completing.order.id and e.kind == "earn"
        ]
        assert len(earns) == 1
        assert (await points(stack, completing.member_id)).pending == earns[0].delta
        stock = await level(stack, PICKUP_STORE, sku)
        assert stock.on_hand == stock_before.on_hand + 1
        trail = await stack.store.ListInventoryAdjustments(
            store_pb2.ListInventoryAdjustmentsRequest(
                store_id=PICKUP_STORE, sku_id=sku, page_size=50
            )
        )
        returns = [a for a in trail.adjustments if a.reason == store_pb2.ADJUSTMENT_REASON_RETURN]
        assert [(a.id, a.delta) for a in returns] == [(f"{request.return_id}:{sku}", 1)]
        # The clerk's retry answers the return recorded before the crash, once.
        again = await orders.stub.ReturnItems(request)
        assert again.order_return.id == request.return_id
        assert [r.id for r in again.order.returns] == [request.return_id]
        assert again.order_return.points_clawed_back > 0
        assert (await level(stack, PICKUP_STORE, sku)).on_hand == stock_before.on_hand + 1
