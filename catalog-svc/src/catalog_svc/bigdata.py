"""python -m catalog_svc.bigdata --products 10000: a large deterministic catalog for benchmarks.

Adds `--products` generated products (ids bd_000001 ...; names, options and prices from the
demo tables) to the catalog database next to the demo categories and brands, then rebuilds
every index from the products collection with the seed's builder. Reruns with the same
count change nothing; a smaller count leaves earlier extra products in place (use
`--database` for a fresh set per size).
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from catalog_svc import settings
from catalog_svc.bulk import rebuild_indexes, sync_documents
from catalog_svc.demo_data import demo_catalog, large_catalog_products
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


async def generate(mongodb_uri: str, database_name: str, count: int) -> list[SeedReport]:
    demo = demo_catalog()
    client = connect(mongodb_uri, "catalog-bigdata")
    try:
        database = client[database_name]
        repository = CatalogRepository(database)
        await repository.ensure_indexes()
        await upsert_documents(
            database[CATEGORIES], [category_to_document(c) for c in demo.categories]
        )
        await upsert_documents(database[BRANDS], [brand_to_document(b) for b in demo.brands])
        products = [product_to_document(p) for p in large_catalog_products(count)]
        report = await sync_documents(database[PRODUCTS], products, delete_others=False)
        print("building indexes from the products collection ...", file=sys.stderr)
        return [
            report,
            *await rebuild_indexes(repository),
        ]
    finally:
        await client.close()


def main(argv: list[str] | None = None) -> None:
    config = settings.load()
    parser = argparse.ArgumentParser(prog="python -m catalog_svc.bigdata", description=__doc__)
    parser.add_argument("--products", type=int, default=10_000, help="how many (default 10000)")
    parser.add_argument("--database", default=config.database, help="default: CATALOG_DATABASE")
    parser.add_argument("--mongodb-uri", default=config.mongodb_uri)
    args = parser.parse_args(argv)
    if args.products < 1:
        parser.error("--products must be at least 1")
    for report in asyncio.run(generate(args.mongodb_uri, args.database, args.products)):
        print(f"catalog {report}")


if __name__ == "__main__":
    main()
