"""Whole-catalog index builds: barcodes, SKU ids and search postings from the products.

The seed and the large-data generator write products in bulk and then derive every index
here, from the same functions the service's writes use (`search.build_postings` equals
writing product by product; a test checks that they agree). Upserts by `_id`, stale
documents deleted, so a second run changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

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
from retail_kit.seeding import SeedReport, upsert_documents

log = logging.getLogger(__name__)


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


async def rebuild_indexes(repository: CatalogRepository) -> list[SeedReport]:
    """Derives every index from the products collection (a scan: seed time only)."""
    products = await repository.all_products()
    reports = []
    for collection, documents in index_documents(products).items():
        reports.append(await upsert_documents(repository.collection(collection), documents))
        wanted = {doc["_id"] for doc in documents}
        stale = [
            doc["_id"]
            async for doc in repository.collection(collection).find({}, {"_id": 1})
            if doc["_id"] not in wanted
        ]
        for start in range(0, len(stale), 500):
            await repository.collection(collection).delete_many(
                {"_id": {"$in": stale[start : start + 500]}}
            )
    await repository.mark_index_complete()
    return reports
