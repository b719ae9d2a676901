"""Prints NearbyStores medians at 20 / 200 / 2,000 stores and reservations/s on one SKU.

uv run python store-svc/bench/locator_and_reservations.py
Starts its own FerretDB (embedded, temporary directory) and store-svc in-process; talks
gRPC over loopback like any client.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from retail.common.v1 import common_pb2
from retail.store.v1 import store_pb2, store_pb2_grpc
from retail_kit.ferretdb import EmbeddedFerretDB, free_port
from retail_kit.testing import channel_to, running_service
from store_svc import app
from store_svc.bigdata import generate
from store_svc.settings import StoreSettings

POINT = common_pb2.GeoPoint(latitude=31.2304, longitude=121.4737)
CALLS = 30


async def median_ms(
    stub: store_pb2_grpc.StoreServiceStub, request: store_pb2.NearbyStoresRequest
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


async def main(uri: str) -> None:
    for count in (20, 200, 2000):
        database = f"bench_store_{count}"
        await generate(uri, database, count, 5)
        settings = StoreSettings(mongodb_uri=uri, database=database, sweep_interval_seconds=0)
        async with (
            running_service(
                app.NAME, settings, app.SERVICE_NAMES, app.register, app.on_ready, app.on_stop
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
                await stub.AdjustInventory(
                    store_pb2.AdjustInventoryRequest(
                        store_id="st_b00001",
                        sku_id="hot_sku",
                        delta=500,
                        reason=store_pb2.ADJUSTMENT_REASON_RECEIVE,
                        actor_id="bench",
                        idempotency_key="bench-hot",
                    )
                )
                started = time.perf_counter()
                results = await asyncio.gather(
                    *(
                        stub.ReserveStock(
                            store_pb2.ReserveStockRequest(
                                order_id=f"bench-{n}",
                                store_id="st_b00001",
                                lines=[store_pb2.ReservationLine(sku_id="hot_sku", quantity=1)],
                            )
                        )
                        for n in range(400)
                    ),
                    return_exceptions=True,
                )
                elapsed = time.perf_counter() - started
                ok = sum(1 for r in results if not isinstance(r, BaseException))
                print(
                    f"ReserveStock, 400 concurrent on one SKU: {ok} ok "
                    f"in {elapsed:.2f} s = {ok / elapsed:.0f}/s"
                )


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as directory:
        database = EmbeddedFerretDB(Path(directory), free_port()).start()
        try:
            asyncio.run(main(database.uri))
        finally:
            database.stop()
        sys.exit(0)
