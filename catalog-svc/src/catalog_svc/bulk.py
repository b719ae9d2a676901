"""Whole-catalog index builds: barcodes, SKU ids and search postings from the products.

The seed and the large-data generator write products in bulk and then derive every index
here, from the same functions the service's writes use (`search.build_postings` equals
writing product by product; a test checks that they agree). Upserts by `_id`, stale
documents deleted, so a second run changes nothing.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from pymongo.asynchronous.collection import AsyncCollection
from tqdm import tqdm

from catalog_svc import search
from catalog_svc.domain import Product, barcode_key
from catalog_svc.repository import (
    BARCODES,
    POSTINGS,
    SKUS,
    CatalogRepository,
    barcode_document,
    sku_document,
)
from retail_kit.mongo import Document
from retail_kit.seeding import SeedReport

log = logging.getLogger(__name__)

INSERT_BATCH = 500
REPLACE_ONE_BY_ONE = 50


def index_documents(products: Sequence[Product]) -> dict[str, list[Document]]:
    """Collection -> the documents the products imply (first owner wins on a duplicate)."""
    barcodes: dict[str, Document] = {}
    skus: dict[str, Document] = {}
    for product in sorted(products, key=lambda p: p.id):
        for sku in product.skus:
            if sku.id in skus:
                log.warning("SKU id %s of %s is taken by another product", sku.id, product.id)
            else:
                skus[sku.id] = sku_document(product, sku, product.create_time)
            if sku.barcode:
                key = barcode_key(sku.barcode)
                if key in barcodes:
                    log.warning("barcode %s of %s is taken by another product", key, product.id)
                else:
                    barcodes[key] = barcode_document(product, sku, product.create_time)
    postings = search.build_postings(sorted(products, key=lambda p: p.id))
    return {
        BARCODES: list(barcodes.values()),
        SKUS: list(skus.values()),
        POSTINGS: [{"_id": key, "e": entries} for key, entries in sorted(postings.items())],
    }


async def sync_documents(
    collection: AsyncCollection[Document], documents: Sequence[Document], *, delete_others: bool
) -> SeedReport:
    """Makes the collection hold `documents`: one scan, then inserts in batches and a
    replace per changed document (FerretDB v1 gets slower per upsert as a collection grows,
    inserts of new `_id`s stay cheap). A second run writes nothing."""
    existing = {doc["_id"]: doc async for doc in collection.find({})}
    new = [doc for doc in documents if doc["_id"] not in existing]
    changed = [doc for doc in documents if doc["_id"] in existing and existing[doc["_id"]] != doc]
    with tqdm(
        total=len(new) + len(changed),
        desc=collection.name,
        unit="doc",
        file=sys.stderr,
        leave=False,
    ) as progress:
        for start in range(0, len(new), INSERT_BATCH):
            batch = new[start : start + INSERT_BATCH]
            await collection.insert_many(batch, ordered=False)
            progress.update(len(batch))
        if len(changed) <= REPLACE_ONE_BY_ONE:
            for doc in changed:
                await collection.replace_one({"_id": doc["_id"]}, doc)
                progress.update(1)
        else:
            # Many changes (a large set added to a seeded catalog): delete and insert in
            # batches, a scan per batch instead of one per document. Seed time only: a reader
            # may miss a batch for a moment.
            for start in range(0, len(changed), INSERT_BATCH):
                batch = changed[start : start + INSERT_BATCH]
                await collection.delete_many({"_id": {"$in": [doc["_id"] for doc in batch]}})
                await collection.insert_many(batch, ordered=False)
                progress.update(len(batch))
    if delete_others:
        wanted = {doc["_id"] for doc in documents}
        stale = [key for key in existing if key not in wanted]
        for start in range(0, len(stale), INSERT_BATCH):
            await collection.delete_many({"_id": {"$in": stale[start : start + INSERT_BATCH]}})
    return SeedReport(
        collection.name, len(new), len(changed), len(documents) - len(new) - len(changed)
    )


async def rebuild_indexes(repository: CatalogRepository) -> list[SeedReport]:
    """Derives every index from the products collection (a scan: seed time only). The index
    revision is bumped after the postings are written (also when the build failed half-way),
    so every running replica drops its cached postings."""
    products = await repository.all_products()
    try:
        reports = [
            await sync_documents(repository.collection(collection), documents, delete_others=True)
            for collection, documents in index_documents(products).items()
        ]
    except BaseException:
        await repository.bump_search_revision()
        raise
    await repository.mark_index_complete()  # bumps the revision
    return reports
