"""python -m catalog_svc.bench: listing and search latency of catalog-svc, medians in ms.

Loads the demo catalog (and, with `--products N`, N generated products) into a fresh
database, starts catalog-svc in-process on a free port and times real gRPC calls, next to
the old scan-based listing as the "before" figure. Without MONGODB_URI it starts its own
embedded FerretDB in a temporary directory. Prints one line per measurement.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc

from catalog_svc import app
from catalog_svc.bigdata import generate
from catalog_svc.repository import CatalogRepository
from catalog_svc.seed import seed
from catalog_svc.settings import CatalogSettings
from retail.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from retail_kit.ferretdb import EmbeddedFerretDB, free_port
from retail_kit.server import ServiceHost

SEARCHES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("search 咖啡", {"query": "咖啡"}),
    ("search 拿铁", {"query": "拿铁"}),
    ("search latte", {"query": "latte"}),
    ("search 云南咖啡豆", {"query": "云南咖啡豆"}),
    ("search '' cat_coffee subtree", {"category_ids": ["cat_coffee"]}),
    (
        "search 咖啡 + price 10-50 yuan",
        {"query": "咖啡", "price_range": {"min": 1000, "max": 5000}},
    ),
    ("search '' (all active)", {}),
)


async def _median_ms(call: Callable[[], Awaitable[Any]], runs: int) -> float:
    await call()  # warm-up
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def _search_request(fields: dict[str, Any]) -> catalog_pb2.SearchProductsRequest:
    fields = dict(fields)
    price = fields.pop("price_range", None)
    request = catalog_pb2.SearchProductsRequest(page_size=20, **fields)
    if price:
        request.price_range.min_amount = price["min"]
        request.price_range.max_amount = price["max"]
    return request


async def run(mongodb_uri: str, products: int, runs: int) -> None:
    settings = CatalogSettings(
        mongodb_uri=mongodb_uri, database=f"catalog_bench_{products}", host="127.0.0.1", port=0
    )
    started = time.perf_counter()
    await seed(mongodb_uri, settings.database)
    if products:
        await generate(mongodb_uri, settings.database, products)
    print(f"loaded demo + {products} products in {time.perf_counter() - started:.1f} s")
    host = ServiceHost(app.NAME, settings, app.SERVICE_NAMES, app.register, app.on_ready)
    await host.start()
    try:
        await asyncio.wait_for(host.ready.wait(), 30)
        repository = CatalogRepository(host.context.database)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{host.port}") as channel:
            stub = catalog_pb2_grpc.CatalogServiceStub(channel)
            first = await stub.ListProducts(catalog_pb2.ListProductsRequest(page_size=20))
            total = first.products[0].id if first.products else ""
            rows: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
                (
                    "list page 1 (20), before: scan + sort",
                    lambda: repository.list_products_by_scan(
                        limit=21, after_id=None, category_id=None
                    ),
                ),
                (
                    "list page 1 (20), after: posting + reads by _id",
                    lambda: repository.list_products(limit=21, after_id=None, category_id=None),
                ),
                (
                    "ListProducts page 1 over gRPC",
                    lambda: stub.ListProducts(catalog_pb2.ListProductsRequest(page_size=20)),
                ),
                (
                    "ListProducts cat_coffee_rtd over gRPC",
                    lambda: stub.ListProducts(
                        catalog_pb2.ListProductsRequest(page_size=20, category_id="cat_coffee_rtd")
                    ),
                ),
                *(
                    (name, lambda fields=fields: stub.SearchProducts(_search_request(fields)))
                    for name, fields in SEARCHES
                ),
            ]
            assert total
            for name, call in rows:
                median = await _median_ms(call, runs)
                print(f"{products + 300:>6} products  {name:<48} median {median:7.1f} ms")
    finally:
        await host.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m catalog_svc.bench", description=__doc__)
    parser.add_argument("--products", type=int, default=0, help="generated products on top")
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    uri = os.environ.get("MONGODB_URI")
    if uri:
        asyncio.run(run(uri, args.products, args.runs))
        return
    with tempfile.TemporaryDirectory() as data_dir:
        database = EmbeddedFerretDB(Path(data_dir), free_port()).start()
        try:
            asyncio.run(run(database.uri, args.products, args.runs))
        finally:
            database.stop()


if __name__ == "__main__":
    main()
