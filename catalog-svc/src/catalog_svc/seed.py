"""python -m catalog_svc.seed: loads the deterministic demo catalog; reruns change nothing.

After the demo documents, every index (barcodes, SKU ids, search postings) is rebuilt from
the whole products collection, so products created through the API stay indexed too.
"""

from __future__ import annotations

import asyncio

from catalog_svc import settings
from catalog_svc.bulk import rebuild_indexes
from catalog_svc.demo_data import demo_catalog
from catalog_svc.repository import (
    BRANDS,
    CATEGORIES,
    PRODUCTS,
    CatalogRepository,
    brand_to_document,
    category_to_document,
    product_to_document,
)
from retail_kit.mongo import connect
from retail_kit.seeding import SeedReport, upsert_documents


async def seed(mongodb_uri: str, database_name: str) -> list[SeedReport]:
    catalog = demo_catalog()
    client = connect(mongodb_uri, "catalog-seed")
    try:
        database = client[database_name]
        repository = CatalogRepository(database)
        await repository.ensure_indexes()
        reports = [
            await upsert_documents(
                database[CATEGORIES], [category_to_document(c) for c in catalog.categories]
            ),
            await upsert_documents(
                database[BRANDS], [brand_to_document(b) for b in catalog.brands]
            ),
            await upsert_documents(
                database[PRODUCTS], [product_to_document(p) for p in catalog.products]
            ),
        ]
        return reports + await rebuild_indexes(repository)
    finally:
        await client.close()


def main() -> None:
    config = settings.load()
    for report in asyncio.run(seed(config.mongodb_uri, config.database)):
        print(f"catalog {report}")


if __name__ == "__main__":
    main()
