"""The large-data generator: deterministic, valid, indexed like the seed, idempotent."""

from __future__ import annotations

from pymongo import AsyncMongoClient

from catalog_svc import search
from catalog_svc.bigdata import generate
from catalog_svc.demo_data import demo_catalog, large_catalog_products
from catalog_svc.domain import barcode_problem
from catalog_svc.repository import POSTINGS
from catalog_svc.seed import seed
from retail_kit.mongo import Document
from retail_kit.testing import unique_name


def test_generated_products_are_deterministic_and_valid() -> None:
    products = list(large_catalog_products(400))
    assert products == list(large_catalog_products(400))
    assert [p.id for p in products[:2]] == ["bd_000001", "bd_000002"]
    barcodes = [s.barcode for p in products for s in p.skus]
    assert len(barcodes) == len(set(barcodes))
    assert all(barcode_problem(b) is None for b in barcodes)
    assert sum(1 for p in products for s in p.skus if s.price_rules) > len(barcodes) * 0.3


async def test_generate_twice_changes_nothing_and_indexes_every_product(mongo_uri: str) -> None:
    database = unique_name("catalog_bigdata")
    await seed(mongo_uri, database)  # so most postings change: the batched replace path
    first = await generate(mongo_uri, database, 60)
    assert first[0].inserted == 60
    second = await generate(mongo_uri, database, 60)
    assert [(r.inserted, r.updated) for r in second] == [(0, 0)] * len(second)
    client: AsyncMongoClient[Document] = AsyncMongoClient(mongo_uri, tz_aware=True)
    try:
        stored = {d["_id"]: d["e"] async for d in client[database][POSTINGS].find({})}
    finally:
        await client.close()
    expected = search.build_postings([*demo_catalog().products, *large_catalog_products(60)])
    assert stored == expected
