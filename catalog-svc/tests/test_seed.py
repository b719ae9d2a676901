"""The demo catalog loads fully, and a second run changes nothing."""

from __future__ import annotations

from pymongo import AsyncMongoClient

from catalog_svc.demo_data import demo_catalog
from catalog_svc.repository import PRODUCTS
from catalog_svc.seed import seed
from retail_kit.mongo import Document
from retail_kit.testing import unique_name


async def test_seed_twice_changes_nothing(mongo_uri: str) -> None:
    database = unique_name("catalog_seed")
    first = await seed(mongo_uri, database)
    catalog = demo_catalog()
    sku_count = sum(len(p.skus) for p in catalog.products)
    assert [r.collection for r in first] == [
        "categories",
        "brands",
        "products",
        "barcodes",
        "skus",
        "search_postings",
    ]
    assert [r.inserted for r in first[:5]] == [
        len(catalog.categories),
        len(catalog.brands),
        len(catalog.products),
        sku_count,
        sku_count,
    ]
    assert first[5].inserted > 500
    client: AsyncMongoClient[Document] = AsyncMongoClient(mongo_uri)
    try:
        before = await client[database][PRODUCTS].find({}).sort("_id", 1).to_list()
        second = await seed(mongo_uri, database)
        after = await client[database][PRODUCTS].find({}).sort("_id", 1).to_list()
    finally:
        await client.close()
    assert [(r.inserted, r.updated) for r in second] == [(0, 0)] * 6
    assert [r.unchanged for r in second] == [r.inserted for r in first]
    assert before == after and len(after) == len(catalog.products)
