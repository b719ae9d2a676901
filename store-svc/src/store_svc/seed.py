"""python -m store_svc.seed [SKU_ID ...]: loads the deterministic demo data; reruns change nothing.

Stores (and their geo-grid cells), two associates and one kiosk per pickup store
("as_st_001_01", "k_st_001_01"), and inventory for the demo catalog's SKUs in every pickup
store. store-svc never imports catalog-svc, so the SKU ids are not read from it: by default
the first SKU of each of the 300 demo products ("p_0001_s1" .. "p_0300_s1", a pattern the
catalog's demo data guarantees); SKU ids given on the command line replace that list.

Inventory documents are inserted only where missing, never overwritten: seeding a running
stack must not reset stock that reservations and adjustments have moved since.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence

from pymongo.asynchronous.database import AsyncDatabase

from retail_kit.mongo import Document, connect, ensure_indexes
from retail_kit.seeding import SeedReport, upsert_documents
from store_svc import inventory, reservations, settings
from store_svc.demo_data import demo_associates, demo_inventory, demo_kiosks, demo_stores
from store_svc.inventory import INVENTORY
from store_svc.repository import (
    ASSOCIATES,
    GEO_GRID,
    KIOSK_DEVICES,
    STORES,
    StoreRepository,
    associate_to_document,
    kiosk_to_document,
    store_to_document,
)

DEFAULT_SKU_IDS = tuple(f"p_{n:04d}_s1" for n in range(1, 301))
INSERT_BATCH = 1_000


async def insert_missing(
    database: AsyncDatabase[Document], collection: str, documents: Sequence[Document]
) -> SeedReport:
    """Inserts the documents whose `_id` is absent; existing ones are left as they are."""
    existing = {doc["_id"] async for doc in database[collection].find({}, {"_id": 1})}
    missing = [doc for doc in documents if doc["_id"] not in existing]
    for start in range(0, len(missing), INSERT_BATCH):
        await database[collection].insert_many(missing[start : start + INSERT_BATCH])
    return SeedReport(collection, len(missing), 0, len(documents) - len(missing))


async def seed(
    mongodb_uri: str,
    database_name: str,
    sku_ids: Sequence[str] = DEFAULT_SKU_IDS,
) -> list[SeedReport]:
    stores = demo_stores()
    client = connect(mongodb_uri, "store-seed")
    try:
        database = client[database_name]
        repository = StoreRepository(database)
        await repository.ensure_indexes()
        await ensure_indexes(database, (*inventory.INDEXES, *reservations.INDEXES))
        reports = [await upsert_documents(database[STORES], [store_to_document(s) for s in stores])]
        grid_before = await database[GEO_GRID].count_documents({})
        for store in stores:
            await repository.reindex_store(store)
        grid_after = await database[GEO_GRID].count_documents({})
        reports.append(SeedReport(GEO_GRID, grid_after - grid_before, 0, grid_before))
        reports.append(
            await upsert_documents(
                database[ASSOCIATES], [associate_to_document(a) for a in demo_associates()]
            )
        )
        reports.append(
            await upsert_documents(
                database[KIOSK_DEVICES], [kiosk_to_document(k) for k in demo_kiosks()]
            )
        )
        reports.append(await insert_missing(database, INVENTORY, demo_inventory(sku_ids)))
        return reports
    finally:
        await client.close()


def main() -> None:
    config = settings.load()
    sku_ids = tuple(sys.argv[1:]) or DEFAULT_SKU_IDS
    reports = asyncio.run(seed(config.mongodb_uri, config.database, sku_ids))
    for report in reports:
        print(f"store {report}")


if __name__ == "__main__":
    main()
