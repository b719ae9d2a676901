"""Catalog persistence: documents <-> domain objects, the queries and the indexes they need."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from catalog_svc.domain import (
    Brand,
    Category,
    LocalizedText,
    Money,
    Product,
    ProductStatus,
    Sku,
    SkuOption,
)
from retail_kit.mongo import Document, IndexDeclaration, ensure_indexes

PRODUCTS = "products"
CATEGORIES = "categories"
BRANDS = "brands"

INDEXES = (
    IndexDeclaration(PRODUCTS, (("status", 1), ("_id", 1)), "status_id"),
    IndexDeclaration(
        PRODUCTS, (("category_id", 1), ("status", 1), ("_id", 1)), "category_status_id"
    ),
    IndexDeclaration(CATEGORIES, (("parent_id", 1),), "parent"),
)


def product_to_document(product: Product) -> Document:
    return {
        "_id": product.id,
        "spu_code": product.spu_code,
        "title": dict(product.title.values),
        "description": dict(product.description.values),
        "category_id": product.category_id,
        "brand_id": product.brand_id,
        "status": product.status.value,
        "skus": [
            {
                "id": sku.id,
                "barcode": sku.barcode,
                "price": {"amount": sku.price.amount, "currency": sku.price.currency},
                "options": [{"name": o.name, "value": o.value} for o in sku.options],
            }
            for sku in product.skus
        ],
        "image_urls": list(product.image_urls),
        "attributes": dict(product.attributes),
        "create_time": product.create_time,
        "update_time": product.update_time,
    }


def product_from_document(doc: Document) -> Product:
    return Product(
        id=doc["_id"],
        spu_code=doc["spu_code"],
        title=LocalizedText(dict(doc["title"])),
        description=LocalizedText(dict(doc.get("description") or {})),
        category_id=doc["category_id"],
        brand_id=doc["brand_id"],
        status=ProductStatus(doc["status"]),
        skus=tuple(
            Sku(
                id=s["id"],
                barcode=s["barcode"],
                price=Money(s["price"]["amount"], s["price"]["currency"]),
                options=tuple(SkuOption(o["name"], o["value"]) for o in s.get("options", [])),
            )
            for s in doc["skus"]
        ),
        image_urls=tuple(doc.get("image_urls", ())),
        create_time=doc.get("create_time"),
        update_time=doc.get("update_time"),
        attributes=dict(doc.get("attributes") or {}),
    )


def category_to_document(category: Category) -> Document:
    return {
        "_id": category.id,
        "name": dict(category.name.values),
        "parent_id": category.parent_id,
        "sort_order": category.sort_order,
    }


def category_from_document(doc: Document) -> Category:
    return Category(
        id=doc["_id"],
        name=LocalizedText(dict(doc["name"])),
        parent_id=doc.get("parent_id"),
        sort_order=doc.get("sort_order", 0),
    )


def brand_to_document(brand: Brand) -> Document:
    return {"_id": brand.id, "name": dict(brand.name.values)}


def brand_from_document(doc: Document) -> Brand:
    return Brand(id=doc["_id"], name=LocalizedText(dict(doc["name"])))


class CatalogRepository:
    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self._db = database

    async def ensure_indexes(self) -> None:
        await ensure_indexes(self._db, INDEXES)

    async def get_product(self, product_id: str) -> Product | None:
        doc = await self._db[PRODUCTS].find_one({"_id": product_id})
        return product_from_document(doc) if doc else None

    async def get_products(self, product_ids: Sequence[str]) -> dict[str, Product]:
        return {
            doc["_id"]: product_from_document(doc)
            async for doc in self._db[PRODUCTS].find({"_id": {"$in": list(product_ids)}})
        }

    async def list_products(
        self, *, limit: int, after_id: str | None, category_id: str | None
    ) -> list[Product]:
        """Active products in _id order, `limit` of them after `after_id`."""
        query: dict[str, Any] = {"status": ProductStatus.ACTIVE.value}
        if category_id:
            query["category_id"] = category_id
        if after_id is not None:
            query["_id"] = {"$gt": after_id}
        cursor = self._db[PRODUCTS].find(query).sort("_id", 1).limit(limit)
        return [product_from_document(doc) async for doc in cursor]

    async def get_categories(self, category_ids: Sequence[str]) -> dict[str, Category]:
        return {
            doc["_id"]: category_from_document(doc)
            async for doc in self._db[CATEGORIES].find({"_id": {"$in": list(category_ids)}})
        }

    async def list_categories(self) -> list[Category]:
        cursor = self._db[CATEGORIES].find({}).sort("_id", 1)
        return [category_from_document(doc) async for doc in cursor]

    async def get_brands(self, brand_ids: Sequence[str]) -> dict[str, Brand]:
        return {
            doc["_id"]: brand_from_document(doc)
            async for doc in self._db[BRANDS].find({"_id": {"$in": list(brand_ids)}})
        }
