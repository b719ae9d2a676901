"""Prints NearbyStores medians at 20 / 200 / 2,000 stores and reservations/s on one SKU.

uv run python store-svc/bench/locator_and_reservations.py [--reservations 400] [--rounds 3]
Starts its own embedded database (SecantusDB, fresh files under var/bench/store-svc) and
store-svc in-process; talks gRPC over loopback like any client. Reservations/s
(`--reservations` concurrent ReserveStock calls on one SKU, median of `--rounds` rounds) is
measured on the demo seed (20 stores, 300 SKUs each: ~5,700 inventory documents) and on the
2,000-store chain (5 SKUs each: 10,000 inventory documents).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import shutil
import statistics
import sys
import time
from pathlib import Path

from retail.common.v1 import common_pb2
from retail.store.v1 import store_pb2, store_pb2_grpc
from retail_kit.embedded import EmbeddedDatabase, free_port
from retail_kit.testing import channel_to, running_service
from store_svc import app
from store_svc.bigdata import generate
from store_svc.seed import seed
from store_svc.settings import StoreSettings

ROOT = Path(__file__).resolve().parents[2]
POINT = common_pb2.GeoPoint(latitude=31.2304, longitude=121.4737)
CALLS = 30
_orders = itertools.count(1)


async def median_ms(
    stub: store_pb2_grpc.StoreServiceAsyncStub, request: store_pb2.NearbyStoresRequest
) -> tuple[float, int]:
    await stub.NearbyStores(request)
    samples = []
    count = 0
    for _ in range(CALLS):
        started = time.perf_counter()
        reply = await stub.NearbyStores(request)
        samples.append((time.perf_counter() - started) * 1000)
        count = len(reply.stores)
    return statistics.median(samples), count


async def reservations_per_second(
    stub: store_pb2_grpc.StoreServiceAsyncStub, store_id: str, calls: int, rounds: int
) -> str:
    """`calls` concurrent ReserveStock on one SKU, `rounds` times: the median rate."""
    rates = []
    for round_number in range(rounds):
        sku = f"hot_sku_{round_number}"
        await stub.AdjustInventory(
            store_pb2.AdjustInventoryRequest(
                store_id=store_id,
                sku_id=sku,
                delta=calls,
                reason=store_pb2.ADJUSTMENT_REASON_RECEIVE,
                actor_id="bench",
                idempotency_key=f"bench-hot-{store_id}-{round_number}",
            )
        )
        started = time.perf_counter()
        results = await asyncio.gather(
            *(
                stub.ReserveStock(
                    store_pb2.ReserveStockRequest(
                        order_id=f"bench-{next(_orders)}",
                        store_id=store_id,
                        lines=[store_pb2.ReservationLine(sku_id=sku, quantity=1)],
                    )
                )
                for _ in range(calls)
            ),
            return_exceptions=True,
        )
        elapsed = time.perf_counter() - started
        ok = sum(1 for r in results if not isinstance(r, BaseException))
        if ok != calls:
            errors = [r for r in results if isinstance(r, BaseException)]
            raise RuntimeError(f"{calls - ok} reservations failed: {errors[:1]}")
        rates.append(ok / elapsed)
    shown = ", ".join(f"{r:.0f}" for r in rates)
    return f"{statistics.median(rates):.0f}/s (rounds: {shown})"


def _settings(uri: str, database: str) -> StoreSettings:
    return StoreSettings(mongodb_uri=uri, database=database, sweep_interval_seconds=0)


async def main(uri: str, calls: int, rounds: int) -> None:
    database = "bench_store_demo"
    await seed(uri, database)
    async with (
        running_service(
            app.NAME, _settings(uri, database), app.SERVICE_NAMES, app.register, app.on_ready
        ) as host,
        channel_to(host) as channel,
    ):
        stub = store_pb2_grpc.StoreServiceStub(channel)
        rate = await reservations_per_second(stub, "st_001", calls, rounds)
        print(f"demo seed: ReserveStock, {calls} concurrent on one SKU: {rate}", flush=True)
    for count in (20, 200, 2000):
        database = f"bench_store_{count}"
        await generate(uri, database, count, 5)
        async with (
            running_service(
                app.NAME, _settings(uri, database), app.SERVICE_NAMES, app.register, app.on_ready
            ) as host,
            channel_to(host) as channel,
        ):
            stub = store_pb2_grpc.StoreServiceStub(channel)
            plain, n1 = await median_ms(
                stub, store_pb2.NearbyStoresRequest(point=POINT, radius_km=5, limit=10)
            )
            skus, n2 = await median_ms(
                stub,
                store_pb2.NearbyStoresRequest(
                    point=POINT, radius_km=5, limit=10, sku_ids=["p_0001_s1", "p_0002_s1"]
                ),
            )
            wide, n3 = await median_ms(
                stub,
                store_pb2.NearbyStoresRequest(point=POINT, radius_km=50, limit=10, open_now=True),
            )
            print(
                f"{count:5d} stores: NearbyStores 5 km median {plain:6.1f} ms ({n1} stores); "
                f"+2 SKUs {skus:6.1f} ms ({n2}); 50 km open_now {wide:6.1f} ms ({n3})",
                flush=True,
            )
            if count == 2000:
                rate = await reservations_per_second(stub, "st_b00001", calls, rounds)
                print(f"2000 stores: ReserveStock, {calls} concurrent on one SKU: {rate}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reservations", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    data_dir = ROOT / "var" / "bench" / "store-svc"
    shutil.rmtree(data_dir, ignore_errors=True)
    database = EmbeddedDatabase(data_dir, free_port()).start()
    try:
        asyncio.run(main(database.uri, args.reservations, args.rounds))
    finally:
        database.stop()
    sys.exit(0)
