"""kill -9 of store-svc while sagas reserve stock, then a restart in place: every order ends
holding its stock exactly once, or holding nothing with its points given back.

order-svc (in-process) talks to a store-svc process on the stack's store database; 36
orders from 6 members are placed at once (some redeeming points), the store process is
killed after the first answers, and restarted on the same port. Clients retry with the
same keys (UNAVAILABLE says so), the recovery job runs; then stock, reservations, points
and the orders must all agree.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from pathlib import Path

import grpc

from order_svc.repository import ORDERS
from retail.order.v1 import order_pb2
from retail.store.v1 import store_pb2

from .conftest import (
    PICKUP_STORE,
    OrderService,
    Stack,
    level,
    new_member,
    order_service,
    pickup_request,
    points,
    set_stock,
)
from .service_process import ServiceProcess

ORDERS_PLACED = 36
MEMBERS = 6
STOCK = 100
POINTS_EACH = 10
BALANCE = 1000
KILL_AFTER_ANSWERS = 4
SETTLE_TIMEOUT = 60.0


def store_process(stack: Stack, log: Path, port: int | None = None) -> ServiceProcess:
    database = stack.hosts["store"].context.settings.database
    return ServiceProcess(
        "store_svc",
        "STORE",
        log,
        port,
        MONGODB_URI=stack.mongo_uri,
        STORE_DATABASE=database,
        STORE_SWEEP_INTERVAL_SECONDS="0",
    )


async def place(orders: OrderService, request: order_pb2.PlaceOrderRequest) -> object:
    """A client: retries with the same key while the answer is retryable."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while True:
        try:
            return (await orders.stub.PlaceOrder(request)).order
        except grpc.aio.AioRpcError as error:
            retryable = error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.ABORTED)
            if not retryable or time.monotonic() > deadline:
                return error.code().name
        await asyncio.sleep(0.3)


async def test_kill_9_of_store_svc_during_sagas_loses_and_repeats_nothing(
    stack: Stack, tmp_path: Path
) -> None:
    skus = stack.take_skus(3)
    for sku in skus:
        await set_stock(stack, PICKUP_STORE, sku, STOCK)
    members = [await new_member(stack, points=BALANCE) for _ in range(MEMBERS)]
    requests = [
        pickup_request(
            members[n % MEMBERS],
            [(skus[n % 3], 1 + n % 2)],
            key=f"store-crash-{n}",
            redeem_points=POINTS_EACH if n % 2 == 0 else 0,
        )
        for n in range(ORDERS_PLACED)
    ]
    store = store_process(stack, tmp_path / "store.log")
    restarted: ServiceProcess | None = None
    try:
        await store.serving()
        async with order_service(
            stack,
            store_addr=store.address,
            saga_lease_seconds=1,
            call_timeout_seconds=2,
            store_cache_seconds=0,
        ) as orders:
            calls = [asyncio.ensure_future(place(orders, r)) for r in requests]
            for answered, answer in enumerate(asyncio.as_completed(calls), start=1):
                await answer
                if answered == KILL_AFTER_ANSWERS:
                    break
            store.process.send_signal(signal.SIGKILL)
            assert await store.exit_code() == -signal.SIGKILL
            in_flight = sum(not c.done() for c in calls)
            assert in_flight > ORDERS_PLACED // 2  # the kill landed in the middle of sagas
            restarted = store_process(stack, tmp_path / "store.log", store.port)
            await restarted.serving()
            answers = await asyncio.gather(*calls)
            docs = await settled(orders)
    finally:
        store.stop()
        if restarted is not None:
            restarted.stop()

    placed = {a.idempotency_key: a for a in answers if isinstance(a, order_pb2.Order)}
    refused = [a for a in answers if not isinstance(a, order_pb2.Order)]
    assert set(refused) <= {"DEADLINE_EXCEEDED"}, refused  # only a saga outlived by the outage
    assert len(docs) == ORDERS_PLACED
    # Some sagas were cut off after their order was recorded and finished by another
    # executor (a retry of the key, or the recovery job).
    taken_over = sum(1 for d in docs.values() if d["saga"]["attempts"] > 0)
    print(f"\n{in_flight} orders in flight at the kill, {taken_over} sagas taken over")
    assert taken_over > 0
    held: Counter[str] = Counter()
    spent: Counter[str] = Counter()
    for request in requests:
        doc = docs[request.idempotency_key]
        reservation = await stack.store.GetReservation(
            store_pb2.GetReservationRequest(order_id=doc["_id"])
        )
        status = reservation.reservation.status
        if request.idempotency_key in placed:
            assert doc["status"] == "awaiting_payment"
            assert status == store_pb2.RESERVATION_STATUS_RESERVED
            held[request.lines[0].sku_id] += request.lines[0].quantity
            spent[request.member_id] += request.redeem_points
        else:
            assert doc["status"] == "failed"
            assert status in (
                store_pb2.RESERVATION_STATUS_RELEASED,
                store_pb2.RESERVATION_STATUS_FAILED,
            )
        assert all(e["state"] == "done" for e in doc["effects"])
    for sku in skus:
        stock = await level(stack, PICKUP_STORE, sku)
        assert (stock.on_hand, stock.reserved) == (STOCK, held[sku]), sku
    for member in members:
        summary = await points(stack, member)
        assert summary.available == BALANCE - spent[member], member
    stuck = await stack.store_db["reservations"].count_documents(
        {"_id": {"$in": [d["_id"] for d in docs.values()]}, "status": "pending"}
    )
    assert stuck == 0


async def settled(orders: OrderService) -> dict[str, dict[str, object]]:
    """Runs the recovery until no saga is running or compensating; the orders by key."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while True:
        await orders.stub.RunMaintenance(order_pb2.RunMaintenanceRequest())
        docs = {d["idempotency_key"]: d async for d in orders.database[ORDERS].find({})}
        if {d["saga"]["state"] for d in docs.values()} <= {"done", "compensated"}:
            return docs
        assert time.monotonic() < deadline, "sagas still running"
        await asyncio.sleep(0.3)
