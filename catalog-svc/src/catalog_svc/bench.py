"""python -m catalog_svc.bench: listing and search latency of catalog-svc, medians in ms.

Loads the demo catalog (and, with `--products N`, N generated products) into a fresh
database, or takes an already loaded one (`--database`), starts catalog-svc twice
in-process on free ports over that database, once with the search posting cache off and
once on, and times real gRPC calls on both (warm-up call first, so "cache on" is the
steady state of a repeated query), next to the old scan-based listing. Without MONGODB_URI
it starts its own embedded database (SecantusDB, fresh files under var/bench/catalog-svc of
the repository). Prints one line per measurement.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import shutil
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc

from catalog_svc import app
from catalog_svc.bigdata import generate
from catalog_svc.repository import PRODUCTS, CatalogRepository
from catalog_svc.search import ALL_KEY
from catalog_svc.seed import seed
from catalog_svc.settings import CatalogSettings
from retail.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from retail_kit.embedded import EmbeddedDatabase, free_port
from retail_kit.paging import encode_page_token, query_fingerprint
from retail_kit.server import ServiceHost

ROOT = Path(__file__).resolve().parents[3]  # the repository (catalog-svc/src/catalog_svc/)
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


def _rows(
    stub: catalog_pb2_grpc.CatalogServiceAsyncStub, last_page_token: str
) -> list[tuple[str, Callable[[], Awaitable[Any]]]]:
    return [
        (
            "ListProducts page 1 over gRPC",
            lambda: stub.ListProducts(catalog_pb2.ListProductsRequest(page_size=20)),
        ),
        (
            # The newest generated ids, the last in the `all` posting (and in _id order).
            "ListProducts page of the newest ids",
            lambda: stub.ListProducts(
                catalog_pb2.ListProductsRequest(page_size=20, page_token=last_page_token)
            ),
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


async def run(
    mongodb_uri: str,
    products: int,
    runs: int,
    database: str | None = None,
    scan: bool = True,
    only: str = "",
) -> None:
    """Times every row on two services over the same database: posting cache off (before)
    and on (after). `database` names an already loaded one (nothing is loaded then)."""
    settings = CatalogSettings(
        mongodb_uri=mongodb_uri,
        database=database or f"catalog_bench_{products}",
        host="127.0.0.1",
        port=0,
    )
    if database is None:
        started = time.perf_counter()
        await seed(mongodb_uri, settings.database)
        if products:
            await generate(mongodb_uri, settings.database, products)
        print(f"loaded demo + {products} products in {time.perf_counter() - started:.1f} s")
    hosts = [
        ServiceHost(
            app.NAME,
            dataclasses.replace(settings, search_cache_entries=entries),
            app.SERVICE_NAMES,
            app.register,
            app.on_ready,
        )
        for entries in (0, settings.search_cache_entries)
    ]
    for host in hosts:
        await host.start()
    try:
        for host in hosts:
            await asyncio.wait_for(host.ready.wait(), 30)
        repository = CatalogRepository(hosts[0].context.database)
        count = await hosts[0].context.database[PRODUCTS].estimated_document_count()
        listed = sorted((await repository.get_postings([ALL_KEY]))[ALL_KEY])
        generated = [pid for pid in listed if pid.startswith("bd_")]
        newest = generated[-21] if len(generated) > 21 else listed[-21]
        last_page = encode_page_token(query_fingerprint("ListProducts", ""), newest)
        async with (
            grpc.aio.insecure_channel(f"127.0.0.1:{hosts[0].port}") as uncached,
            grpc.aio.insecure_channel(f"127.0.0.1:{hosts[1].port}") as cached,
        ):
            before = _rows(catalog_pb2_grpc.CatalogServiceStub(uncached), last_page)
            after = _rows(catalog_pb2_grpc.CatalogServiceStub(cached), last_page)
            first = await catalog_pb2_grpc.CatalogServiceStub(cached).ListProducts(
                catalog_pb2.ListProductsRequest(page_size=20)
            )
            assert first.products
            if scan:
                median = await _median_ms(
                    lambda: repository.list_product_documents_by_scan(
                        limit=21, after_id=None, category_id=None
                    ),
                    runs,
                )
                label = "list page 1, scan + sort (oldest)"
                print(f"{count:>6} products  {label:<40} {median:9.1f}")
            print(f"{count:>6} products  {'measurement':<40} {'cache off':>9} {'cache on':>9} ms")
            for (name, call_before), (_, call_after) in zip(before, after, strict=True):
                if only and only not in name:
                    continue
                off = await _median_ms(call_before, runs)
                on = await _median_ms(call_after, runs)
                print(f"{count:>6} products  {name:<40} {off:9.1f} {on:9.1f}")
    finally:
        for host in hosts:
            await host.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m catalog_svc.bench", description=__doc__)
    parser.add_argument("--products", type=int, default=0, help="generated products on top")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument(
        "--database", help="an already loaded database (seed / bigdata): time it, load nothing"
    )
    parser.add_argument("--no-scan", action="store_true", help="skip the scan-based listing")
    parser.add_argument("--only", default="", help="time only the rows whose name has this")
    args = parser.parse_args()
    uri = os.environ.get("MONGODB_URI")
    if uri:
        asyncio.run(run(uri, args.products, args.runs, args.database, not args.no_scan, args.only))
        return
    data_dir = ROOT / "var" / "bench" / "catalog-svc"
    shutil.rmtree(data_dir, ignore_errors=True)
    database = EmbeddedDatabase(data_dir, free_port()).start()
    try:
        asyncio.run(
            run(database.uri, args.products, args.runs, args.database, not args.no_scan, args.only)
        )
    finally:
        database.stop()


if __name__ == "__main__":
    main()
