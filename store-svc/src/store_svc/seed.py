"""python -m store_svc.seed: loads the deterministic demo stores; reruns change nothing."""

from __future__ import annotations

import asyncio

from retail_kit.mongo import connect
from retail_kit.seeding import SeedReport, upsert_documents
from store_svc import settings
from store_svc.demo_data import demo_stores
from store_svc.repository import STORES, StoreRepository, store_to_document


async def seed(mongodb_uri: str, database_name: str) -> list[SeedReport]:
    stores = demo_stores()
    client = connect(mongodb_uri, "store-seed")
    try:
        database = client[database_name]
        await StoreRepository(database).ensure_indexes()
        return [await upsert_documents(database[STORES], [store_to_document(s) for s in stores])]
    finally:
        await client.close()


def main() -> None:
    config = settings.load()
    for report in asyncio.run(seed(config.mongodb_uri, config.database)):
        print(f"store {report}")


if __name__ == "__main__":
    main()
