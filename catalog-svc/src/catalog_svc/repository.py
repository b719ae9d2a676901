"""Catalog persistence: documents <-> domain objects, the queries and the indexes they need."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from catalog_svc import search
from catalog_svc.domain import (
    Brand,
    Category,
    Channel,
    LocalizedText,
    Money,
    PriceRule,
    Product,
    ProductStatus,
    Sku,
    SkuOption,
    barcode_key,
)
from catalog_svc.posting_cache import Posting, PostingCache
from retail_kit.mongo import Document, IndexDeclaration, ensure_indexes, find_by_ids, upsert_one

PRODUCTS = "products"
CATEGORIES = "categories"
BRANDS = "brands"
BARCODES = "barcodes"  # _id: the barcode as GTIN-13 -> {product_id, sku_id}: one owner each
SKUS = "skus"  # _id: SKU id -> {product_id}: SKU ids are unique across the catalog
POSTINGS = "search_postings"  # _id: posting key -> {e: {product id: entry}}; see search.py
META = "catalog_meta"
INDEX_STATE_ID = "search_index"
REVISION_ID = "search_revision"  # {value: fresh random hex per posting write}; posting_cache.py

INDEXES = (
    IndexDeclaration(PRODUCTS, (("status", 1), ("_id", 1)), "status_id"),
    IndexDeclaration(
        PRODUCTS, (("category_id", 1), ("status", 1), ("_id", 1)), "category_status_id"
    ),
    IndexDeclaration(CATEGORIES, (("parent_id", 1),), "parent"),
)


def _price_rule_to_document(rule: PriceRule) -> Document:
    return {
        "price": {"amount": rule.price.amount, "currency": rule.price.currency},
        "channel": rule.channel.value if rule.channel is not None else None,
        "tier": rule.tier,
        "start": rule.start,
        "end": rule.end,
    }


def _price_rule_from_document(doc: Document) -> PriceRule:
    return PriceRule(
        price=Money(doc["price"]["amount"], doc["price"]["currency"]),
        channel=Channel(doc["channel"]) if doc.get("channel") else None,
        tier=doc.get("tier"),
        start=doc.get("start"),
        end=doc.get("end"),
    )


def product_content(product: Product) -> Document:
    """What an admin write sets: everything but id, status, revision and times."""
    return {
        "spu_code": product.spu_code,
        "title": dict(product.title.values),
        "description": dict(product.description.values),
        "category_id": product.category_id,
        "brand_id": product.brand_id,
        "skus": [
            {
                "id": sku.id,
                "barcode": sku.barcode,
                "price": {"amount": sku.price.amount, "currency": sku.price.currency},
                "options": [{"name": o.name, "value": o.value} for o in sku.options],
                **(
                    {"price_rules": [_price_rule_to_document(r) for r in sku.price_rules]}
                    if sku.price_rules
                    else {}
                ),
            }
            for sku in product.skus
        ],
        "image_urls": list(product.image_urls),
        "attributes": dict(product.attributes),
    }


def product_to_document(product: Product) -> Document:
    """The stored product. Its posting keys are not stored: `search.posting_keys` derives
    them from the content and status, so a write knows the keys it leaves."""
    return {
        "_id": product.id,
        **product_content(product),
        "status": product.status.value,
        "create_time": product.create_time,
        "update_time": product.update_time,
        "revision": product.revision,
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
                price_rules=tuple(_price_rule_from_document(r) for r in s.get("price_rules", [])),
            )
            for s in doc["skus"]
        ),
        image_urls=tuple(doc.get("image_urls", ())),
        create_time=doc.get("create_time"),
        update_time=doc.get("update_time"),
        attributes=dict(doc.get("attributes") or {}),
        revision=int(doc.get("revision") or 1),
    )


def barcode_document(product: Product, sku: Sku, claimed_at: datetime | None) -> Document:
    return {
        "_id": barcode_key(sku.barcode),
        "barcode": sku.barcode,
        "product_id": product.id,
        "sku_id": sku.id,
        "claimed_at": claimed_at,
    }


def sku_document(product: Product, sku: Sku, claimed_at: datetime | None) -> Document:
    return {"_id": sku.id, "product_id": product.id, "claimed_at": claimed_at}


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
    def __init__(
        self,
        database: AsyncDatabase[Document],
        cache: PostingCache | None = None,
    ) -> None:
        self._db = database
        self.cache = cache

    @property
    def database(self) -> AsyncDatabase[Document]:
        return self._db

    def collection(self, name: str) -> AsyncCollection[Document]:
        return self._db[name]

    async def ensure_indexes(self) -> None:
        await ensure_indexes(self._db, INDEXES)

    # ------------------------------------------------------------------ products

    async def get_product(self, product_id: str) -> Product | None:
        doc = await self._db[PRODUCTS].find_one({"_id": product_id})
        return product_from_document(doc) if doc else None

    async def get_product_document(self, product_id: str) -> Document | None:
        return await self._db[PRODUCTS].find_one({"_id": product_id})

    async def get_products(self, product_ids: Sequence[str]) -> dict[str, Product]:
        found = await find_by_ids(self._db[PRODUCTS], product_ids)
        return {pid: product_from_document(doc) for pid, doc in found.items()}

    async def get_product_documents(self, product_ids: Sequence[str]) -> dict[str, Document]:
        """The stored documents, as read (the read RPCs answer them without domain objects)."""
        return await find_by_ids(self._db[PRODUCTS], product_ids)

    async def list_product_documents(
        self, *, limit: int, after_id: str | None, category_id: str | None
    ) -> list[Document]:
        """Active products in _id order, `limit` of them after `after_id`, as stored.

        Served from the `all` / `cat:<id>` posting plus one `$in` by _id once the search
        index is known to be complete; before that (a database filled by other means than
        this service or the seed), from a scan of the products collection.
        """
        revision = await self._observe_revision()
        if not await self._index_complete(revision):
            return await self.list_product_documents_by_scan(
                limit=limit, after_id=after_id, category_id=category_id
            )
        key = search.category_key(category_id) if category_id else search.ALL_KEY
        posting = (await self._postings([key], revision))[key]
        ids = posting.ids_after(after_id, limit)
        found = await self.get_product_documents(ids)
        # A product is in the posting only while active; the status check covers a write that
        # crashed between the product and its postings.
        active = ProductStatus.ACTIVE.value
        return [found[pid] for pid in ids if pid in found and found[pid]["status"] == active]

    async def list_product_documents_by_scan(
        self, *, limit: int, after_id: str | None, category_id: str | None
    ) -> list[Document]:
        query: dict[str, Any] = {"status": ProductStatus.ACTIVE.value}
        if category_id:
            query["category_id"] = category_id
        if after_id is not None:
            query["_id"] = {"$gt": after_id}
        cursor = self._db[PRODUCTS].find(query).sort("_id", 1).limit(limit)
        return [doc async for doc in cursor]

    async def all_products(self) -> list[Product]:
        cursor = self._db[PRODUCTS].find({}).sort("_id", 1)
        return [product_from_document(doc) async for doc in cursor]

    # ------------------------------------------------------------------ SKUs and barcodes

    async def get_skus(self, sku_ids: Sequence[str]) -> dict[str, tuple[Product, Sku]]:
        """SKU id -> (its product, the SKU), through the `skus` collection keyed by SKU id."""
        claims = await find_by_ids(self._db[SKUS], sku_ids)
        products = await self.get_products(list({c["product_id"] for c in claims.values()}))
        found: dict[str, tuple[Product, Sku]] = {}
        for sku_id, claim in claims.items():
            product = products.get(claim["product_id"])
            sku = next((s for s in product.skus if s.id == sku_id), None) if product else None
            if product is not None and sku is not None:
                found[sku_id] = (product, sku)
        return found

    async def product_by_barcode(self, barcode: str) -> tuple[Product, Sku] | None:
        key = barcode_key(barcode)
        claim = await self._db[BARCODES].find_one({"_id": key})
        if claim is None:
            return None
        product = await self.get_product(claim["product_id"])
        if product is None:
            return None
        sku = next((s for s in product.skus if s.barcode and barcode_key(s.barcode) == key), None)
        return (product, sku) if sku is not None else None

    # ------------------------------------------------------------------ categories, brands

    async def get_categories(self, category_ids: Sequence[str]) -> dict[str, Category]:
        found = await find_by_ids(self._db[CATEGORIES], category_ids)
        return {cid: category_from_document(doc) for cid, doc in found.items()}

    async def list_categories(self) -> list[Category]:
        cursor = self._db[CATEGORIES].find({}).sort("_id", 1)
        return [category_from_document(doc) async for doc in cursor]

    async def category_parents(
        self, session: AsyncClientSession | None = None
    ) -> dict[str, str | None]:
        """The whole tree as id -> parent id (a few dozen small documents)."""
        cursor = self._db[CATEGORIES].find({}, {"parent_id": 1}, session=session)
        return {doc["_id"]: doc.get("parent_id") async for doc in cursor}

    async def in_transaction(self, work: Callable[[AsyncClientSession], Awaitable[None]]) -> None:
        """Runs `work` in one transaction, retried on transient errors (write conflicts)."""
        async with self._db.client.start_session() as session:
            await session.with_transaction(work)

    async def get_brands(self, brand_ids: Sequence[str]) -> dict[str, Brand]:
        found = await find_by_ids(self._db[BRANDS], brand_ids)
        return {bid: brand_from_document(doc) for bid, doc in found.items()}

    # ------------------------------------------------------------------ search postings

    async def get_postings(self, keys: Sequence[str]) -> dict[str, Mapping[str, Sequence[Any]]]:
        """{key: {product id: entry}} for every key (an absent posting is empty). Served from
        the posting cache while the index revision is unchanged; shared, do not modify."""
        postings = await self._postings(keys, await self._observe_revision())
        return {key: posting.entries for key, posting in postings.items()}

    async def search(
        self,
        tokens: Sequence[str],
        keys: Sequence[str],
        search_filter: search.SearchFilter,
    ) -> search.SearchResult:
        """`search.rank` over the postings `keys` (the query's ``t:`` postings, or the
        candidates of an empty query). Served from the result cache while the index revision
        is unchanged (one revision read), else ranked from the postings (cached or read) and
        kept under the revision read first; see posting_cache.py. Shared, do not modify."""
        revision = await self._observe_revision()
        cache = self.cache
        key = (tuple(tokens), tuple(keys), search_filter)
        if cache is not None and revision is not None and cache.max_results > 0:
            cached = cache.get_result(key)
            if cached is not None:
                return cached
        postings = await self._postings(keys, revision)
        result = search.rank(
            tokens, {k: posting.entries for k, posting in postings.items()}, keys, search_filter
        )
        if cache is not None and revision is not None and cache.max_results > 0:
            cache.put_result(revision, key, result)
        return result

    async def _postings(self, keys: Sequence[str], revision: str | None) -> dict[str, Posting]:
        cache = self.cache
        found: dict[str, Posting] = {}
        if cache is not None and revision is not None:
            for key in dict.fromkeys(keys):
                if (cached := cache.get(key)) is not None:
                    found[key] = cached
        missing = [key for key in dict.fromkeys(keys) if key not in found]
        read = await find_by_ids(self._db[POSTINGS], missing)
        for key in missing:
            doc = read.get(key)
            found[key] = Posting(dict(doc.get("e") or {}) if doc else {})
            if cache is not None and revision is not None:
                cache.put(revision, key, found[key])
        return found

    async def search_revision(self) -> str:
        """The catalog index revision ("" before the first posting write that bumped it)."""
        doc = await self._db[META].find_one({"_id": REVISION_ID})
        return str(doc.get("value", "")) if doc else ""

    async def bump_search_revision(self) -> None:
        """A fresh revision value, written AFTER the posting writes it covers (see
        posting_cache.py): every replica's cache drops what it read before."""
        await self._db[META].update_one(
            {"_id": REVISION_ID}, {"$set": {"value": uuid.uuid4().hex}}, upsert=True
        )

    async def _observe_revision(self) -> str | None:
        """Reads the revision first (before any posting) and tells the cache; None = no cache."""
        if self.cache is None:
            return None
        revision = await self.search_revision()
        self.cache.observe(revision)
        return revision

    async def _index_complete(self, revision: str | None) -> bool:
        if self.cache is not None and revision is not None:
            if self.cache.index_complete is not None and self.cache.revision == revision:
                return self.cache.index_complete
            complete = await self.index_complete()
            self.cache.put_index_complete(revision, complete)
            return complete
        return await self.index_complete()

    async def index_complete(self) -> bool:
        return await self._db[META].find_one({"_id": INDEX_STATE_ID, "complete": True}) is not None

    async def mark_index_complete(self) -> None:
        """Set after a full build; bumps the revision (cached flags and postings drop)."""
        try:
            await self._db[META].replace_one(
                {"_id": INDEX_STATE_ID}, {"_id": INDEX_STATE_ID, "complete": True}, upsert=True
            )
        finally:
            await self.bump_search_revision()

    async def apply_postings(
        self,
        product_id: str,
        old_keys: Sequence[str],
        new_keys: Sequence[str],
        entry: list[Any],
    ) -> None:
        """Puts the product's entry into each new posting and takes it out of the old ones.

        Each step sets or unsets one field of one posting document, one atomic update on
        the server, so concurrent writes of different products sharing a token never lose
        each other's entries, and repeating the call changes nothing. The index revision is
        bumped after every step has ended, also when one failed (some steps may have landed).
        """
        collection = self._db[POSTINGS]
        field = f"e.{product_id}"
        steps = [upsert_one(collection, {"_id": key}, {"$set": {field: entry}}) for key in new_keys]
        steps += [
            collection.update_one({"_id": key}, {"$unset": {field: ""}})
            for key in set(old_keys) - set(new_keys)
        ]
        if not steps:
            return
        results = await asyncio.gather(*steps, return_exceptions=True)
        await self.bump_search_revision()
        for result in results:
            if isinstance(result, BaseException):
                raise result
