"""Two store-svc processes (`python -m store_svc`, as `make run` starts one) on one database.

Nothing in store-svc holds a lock in its own process any more: every stock move and every
reservation transition is an atomic conditional update on the server. These tests split
concurrent calls between two real replicas and then check the same invariants as the
single-process tests, on the documents themselves.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from pymongo import AsyncMongoClient

from infra.devstack import wait_serving
from retail.store.v1 import store_pb2, store_pb2_grpc
from retail_kit.embedded import free_port
from retail_kit.errors import RpcErrorDetails
from retail_kit.mongo import Document
from retail_kit.testing import unique_name

from .conftest import Service, store_message
from .test_inventory_and_reservations import (
    assert_invariants,
    level,
    line,
    receive,
    reserve_request,
)

ROOT = Path(__file__).resolve().parents[2]
ROUNDS = 3


@dataclass
class Replicas:
    stubs: tuple[store_pb2_grpc.StoreServiceStub, store_pb2_grpc.StoreServiceStub]
    service: Service  # replica A plus the database, for the shared helpers

    def stub(self, n: int) -> store_pb2_grpc.StoreServiceStub:
        return self.stubs[n % 2]


@pytest.fixture(scope="module")
def replica_ports(mongo_uri: str) -> Iterator[tuple[str, tuple[int, int]]]:
    database = unique_name("store_replicas")
    ports = (free_port(), free_port())
    processes = []
    try:
        for port in ports:
            env = {
                **os.environ,
                "MONGODB_URI": mongo_uri,
                "STORE_DATABASE": database,
                "STORE_HOST": "127.0.0.1",
                "STORE_PORT": str(port),
                # Both replicas sweep, as they would in production.
                "STORE_SWEEP_INTERVAL_SECONDS": "1",
                "STORE_GRACE_SECONDS": "1",
            }
            processes.append(
                subprocess.Popen([sys.executable, "-m", "store_svc"], env=env, cwd=ROOT)
            )
        for port, process in zip(ports, processes, strict=True):
            wait_serving("store-svc", f"127.0.0.1:{port}", process)
        yield database, ports
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture(scope="module")
async def replicas(
    mongo_uri: str, replica_ports: tuple[str, tuple[int, int]]
) -> AsyncIterator[Replicas]:
    database, (port_a, port_b) = replica_ports
    client: AsyncMongoClient[Document] = AsyncMongoClient(mongo_uri, tz_aware=True)
    async with (
        grpc.aio.insecure_channel(f"127.0.0.1:{port_a}") as channel_a,
        grpc.aio.insecure_channel(f"127.0.0.1:{port_b}") as channel_b,
    ):
        stubs = (
            store_pb2_grpc.StoreServiceStub(channel_a),
            store_pb2_grpc.StoreServiceStub(channel_b),
        )
        try:
            yield Replicas(stubs, Service(stubs[0], client[database], None))
        finally:
            await client.close()


_stores = iter(range(1, 1000))


async def new_store(replicas: Replicas) -> str:
    number = next(_stores)
    store_id = f"st_rep_{number:03d}"
    await replicas.stub(number).CreateStore(
        store_pb2.CreateStoreRequest(store=store_message(store_id, f"REP{number:03d}"))
    )
    return store_id


async def reason_of(call: object) -> str:
    try:
        await call  # type: ignore[misc]
    except grpc.aio.AioRpcError as error:
        details = RpcErrorDetails.from_rpc_error(error)
        assert details.code == grpc.StatusCode.FAILED_PRECONDITION, details
        return details.reason
    return "ok"


@pytest.mark.parametrize("round_number", range(ROUNDS))
async def test_two_replicas_never_oversell(replicas: Replicas, round_number: int) -> None:
    store_id = await new_store(replicas)
    sku = "p_0100_s1"
    await receive(replicas.service, store_id, sku, 20)
    outcomes = await asyncio.gather(
        *(
            reason_of(
                replicas.stub(n).ReserveStock(
                    reserve_request(f"o-{store_id}-{n}", store_id, line(sku, 1))
                )
            )
            for n in range(60)
        )
    )
    assert outcomes.count("ok") == 20
    assert outcomes.count("OUT_OF_STOCK") == 40
    after = await level(replicas.service, store_id, sku)
    assert (after.on_hand, after.reserved, after.available) == (20, 20, 0)
    await assert_invariants(replicas.service, store_id, [sku])


@pytest.mark.parametrize("round_number", range(ROUNDS))
async def test_replays_split_across_replicas_reserve_and_commit_once(
    replicas: Replicas, round_number: int
) -> None:
    store_id = await new_store(replicas)
    skus = ("p_0101_s1", "p_0102_s1")
    for sku in skus:
        await receive(replicas.service, store_id, sku, 10)
    request = reserve_request(f"o-{store_id}", store_id, line(skus[0], 3), line(skus[1], 4))
    replies = await asyncio.gather(*(replicas.stub(n).ReserveStock(request) for n in range(24)))
    assert len({r.SerializeToString() for r in replies}) == 1
    assert (await level(replicas.service, store_id, skus[0])).reserved == 3
    assert (await level(replicas.service, store_id, skus[1])).reserved == 4
    commits = await asyncio.gather(
        *(
            replicas.stub(n).CommitReservation(
                store_pb2.CommitReservationRequest(order_id=f"o-{store_id}")
            )
            for n in range(10)
        )
    )
    assert {c.reservation.status for c in commits} == {store_pb2.RESERVATION_STATUS_COMMITTED}
    assert (await level(replicas.service, store_id, skus[0])).on_hand == 7
    assert (await level(replicas.service, store_id, skus[1])).on_hand == 6
    await assert_invariants(replicas.service, store_id, list(skus))


@pytest.mark.parametrize("round_number", range(ROUNDS))
async def test_commit_and_release_racing_on_two_replicas_pick_one_outcome(
    replicas: Replicas, round_number: int
) -> None:
    store_id = await new_store(replicas)
    sku = "p_0103_s1"
    await receive(replicas.service, store_id, sku, 30)
    orders = [f"o-{store_id}-{n}" for n in range(10)]
    for order_id in orders:
        await replicas.stub(0).ReserveStock(reserve_request(order_id, store_id, line(sku, 2)))
    calls = []
    for n, order_id in enumerate(orders):
        # Replica A commits while replica B releases the same order, twice each.
        for k in range(2):
            calls.append(
                reason_of(
                    replicas.stub(n + k).CommitReservation(
                        store_pb2.CommitReservationRequest(order_id=order_id)
                    )
                )
            )
            calls.append(
                reason_of(
                    replicas.stub(n + k + 1).ReleaseReservation(
                        store_pb2.ReleaseReservationRequest(order_id=order_id)
                    )
                )
            )
    outcomes = await asyncio.gather(*calls)
    assert set(outcomes) <= {"ok", "INVALID_STATE"}, outcomes
    committed = 0
    for order_id in orders:
        reply = await replicas.stub(1).GetReservation(
            store_pb2.GetReservationRequest(order_id=order_id)
        )
        status = reply.reservation.status
        assert status in (
            store_pb2.RESERVATION_STATUS_COMMITTED,
            store_pb2.RESERVATION_STATUS_RELEASED,
        )
        committed += status == store_pb2.RESERVATION_STATUS_COMMITTED
    after = await level(replicas.service, store_id, sku)
    assert (after.on_hand, after.reserved) == (30 - 2 * committed, 0)
    await assert_invariants(replicas.service, store_id, [sku])


async def test_one_adjustment_replayed_on_both_replicas_applies_once(replicas: Replicas) -> None:
    store_id = await new_store(replicas)
    sku = "p_0104_s1"
    request = store_pb2.AdjustInventoryRequest(
        store_id=store_id,
        sku_id=sku,
        delta=9,
        reason=store_pb2.ADJUSTMENT_REASON_RECEIVE,
        actor_id="as_test",
        idempotency_key=f"delivery-{store_id}",
    )
    replies = await asyncio.gather(*(replicas.stub(n).AdjustInventory(request) for n in range(20)))
    assert {r.level.on_hand for r in replies} == {9}
    assert (await level(replicas.service, store_id, sku)).on_hand == 9
    trail = await replicas.stub(1).ListInventoryAdjustments(
        store_pb2.ListInventoryAdjustmentsRequest(store_id=store_id, sku_id=sku, page_size=10)
    )
    assert [a.delta for a in trail.adjustments] == [9]


@pytest.mark.parametrize("round_number", range(ROUNDS))
async def test_replays_on_both_replicas_with_stock_arriving_keep_the_invariants(
    replicas: Replicas, round_number: int
) -> None:
    """Each order replayed on both replicas at once while its short line's stock arrives at a
    random moment (a retry racing its original): every replay answers the same, and stock
    matches the live reservations (tests/test_reservation_races.py has the interleavings)."""
    rng = random.Random(round_number)
    store_id = await new_store(replicas)
    plenty, short = "p_0105_s1", "p_0106_s1"
    await receive(replicas.service, store_id, plenty, 500)
    await receive(replicas.service, store_id, short, 1)
    await replicas.stub(0).AdjustInventory(
        store_pb2.AdjustInventoryRequest(
            store_id=store_id,
            sku_id=short,
            delta=-1,
            reason=store_pb2.ADJUSTMENT_REASON_DAMAGE,
            actor_id="as_test",
            idempotency_key=f"damage-{store_id}",
        )
    )

    async def call(n: int, order_id: str, delay: float) -> str:
        await asyncio.sleep(delay)
        request = reserve_request(order_id, store_id, line(plenty, 1), line(short, 1))
        return await reason_of(replicas.stub(n).ReserveStock(request))

    async def arrive(delay: float) -> None:
        await asyncio.sleep(delay)
        await receive(replicas.service, store_id, short, 1)

    for number in range(12):
        order_id = f"o-{store_id}-{number}"
        calls = [call(n, order_id, rng.uniform(0, 0.01)) for n in range(4)]
        answers, _ = await asyncio.gather(asyncio.gather(*calls), arrive(rng.uniform(0, 0.015)))
        assert len(set(answers)) == 1, (order_id, answers)
    await assert_invariants(replicas.service, store_id, [plenty, short])
