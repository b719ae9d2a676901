"""Admin writes without transactions: claims, one conditional product write, postings.

Every write relies on the server's single-document atomicity, so any number of replicas may
write at once: a product is replaced only if its revision is still the one read, a claim is
an insert under the `_id` index (or a replace conditioned on the stale claim it takes over).
The steps, each idempotent and each compensated when a later one fails:

1. claim the new SKU ids and barcodes: insert `{_id: sku id}` into `skus` and
   `{_id: barcode}` into `barcodes`; a duplicate key held by another product is the
   uniqueness error (ALREADY_EXISTS naming the field), and the claims this call made are
   released;
2. take the product out of the postings it leaves (archive, changed title ...);
3. write the product: insert, or replace conditioned on the revision that was read;
4. put the product into its postings and release the claims it gave up.

A crash between steps leaves either claims without a product (a claim older than
`STALE_CLAIM_AFTER` whose product does not carry it is taken over by the next claimant) or
postings that a retry of the same call, or the seed's rebuild, sets right.

The category tree is the one rule that spans documents (no cycles: a move is judged
against every other category's parent), so an upsert runs in a transaction that also
bumps one tree-version document: two concurrent moves that would together make a cycle
both write that document, and the server aborts one of them (write conflict) to retry.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import grpc
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import DuplicateKeyError

from catalog_svc import search
from catalog_svc.domain import Brand, Category, Product, ProductStatus, Sku, barcode_key
from catalog_svc.repository import (
    BARCODES,
    BRANDS,
    CATEGORIES,
    META,
    PRODUCTS,
    SKUS,
    CatalogRepository,
    barcode_document,
    brand_to_document,
    category_to_document,
    product_content,
    product_from_document,
    product_to_document,
    sku_document,
)
from retail.common.v1 import common_pb2
from retail_kit.errors import FieldViolation, ServiceError, invalid_argument, not_found
from retail_kit.mongo import Document

STALE_CLAIM_AFTER = timedelta(minutes=2)
CLAIM_ATTEMPTS = 5
TREE_VERSION_ID = "category_tree"  # in META: bumped by every category upsert's transaction

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """Now in UTC at the millisecond precision BSON dates keep."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def content_hash(product: Product) -> str:
    payload = json.dumps(
        {"id": product.id, **product_content(product)}, sort_keys=True, default=str
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def stale_etag(product: Product, presented: str) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.ABORTED,
        common_pb2.ERROR_REASON_INVALID_STATE,
        f"product {product.id!r} changed since it was read (etag {presented!r}, now "
        f"{product.etag!r}): read it again and reapply the change",
        violations=[FieldViolation("product.etag", "stale: the product has changed")],
        metadata={"entity": "product", "id": product.id, "etag": product.etag},
    )


def already_exists(field: str, message: str, metadata: dict[str, str]) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.ALREADY_EXISTS,
        common_pb2.ERROR_REASON_ALREADY_EXISTS,
        message,
        violations=[FieldViolation(field, message)],
        metadata=metadata,
    )


@dataclasses.dataclass(frozen=True, slots=True)
class _Claim:
    collection: str
    key: str
    field: str  # request field, for the error
    document: Document


class CatalogWriter:
    def __init__(self, repository: CatalogRepository, clock: Clock = utc_now) -> None:
        self._repo = repository
        self._clock = clock

    # ------------------------------------------------------------------ products

    async def create_product(self, product: Product, request_id: str) -> Product:
        """`product` is validated, with its id and SKU ids assigned."""
        await self._check_references(product)
        request_hash = content_hash(product)
        products = self._repo.collection(PRODUCTS)
        existing = await products.find_one({"_id": product.id})
        if existing is not None:
            return await self._replayed_create(existing, request_id, request_hash)
        now = self._clock()
        created = dataclasses.replace(
            product, status=ProductStatus.DRAFT, revision=1, create_time=now, update_time=now
        )
        claimed = await self._claim(created, _claims(created, created.skus, now))
        try:
            await products.insert_one(
                product_to_document(created)
                | {"request_id": request_id, "request_hash": request_hash}
            )
        except DuplicateKeyError:
            # A concurrent call inserted this product first: its claims may be the ones
            # this call made, so only keys the stored product does not carry are released.
            winner = await products.find_one({"_id": product.id})
            await self._release_unless_carried(created.id, claimed, winner)
            if winner is None:
                raise
            return await self._replayed_create(winner, request_id, request_hash)
        except BaseException:
            await self._release(created.id, [(c.collection, c.key) for c in claimed])
            raise
        # A draft is in no posting; nothing to index yet.
        return created

    async def _replayed_create(
        self, existing: Document, request_id: str, request_hash: str
    ) -> Product:
        stored = product_from_document(existing)
        if existing.get("request_id") == request_id:
            if existing.get("request_hash") == request_hash:
                await self._reindex(existing)
                return stored
            raise ServiceError(
                grpc.StatusCode.INVALID_ARGUMENT,
                common_pb2.ERROR_REASON_IDEMPOTENCY_KEY_REUSED,
                f"request_id {request_id!r} was used for a different product",
                violations=[FieldViolation("request_id", "already used with other content")],
                metadata={"request_id": request_id, "product_id": stored.id},
            )
        raise already_exists(
            "product.id",
            f"product {stored.id!r} already exists",
            {"entity": "product", "id": stored.id},
        )

    async def update_product(self, product: Product, etag: str) -> Product:
        """Replaces the content (not the status) when `etag` is the stored one."""
        await self._check_references(product)
        products = self._repo.collection(PRODUCTS)
        doc = await products.find_one({"_id": product.id})
        if doc is None:
            raise not_found("product", product.id)
        current = product_from_document(doc)
        if product_content(product) == product_content(current):
            await self._reindex(doc)  # a retry of a call that got this far: no change
            return current
        if etag != current.etag:
            raise stale_etag(current, etag)
        now = self._clock()
        updated = dataclasses.replace(
            product,
            status=current.status,
            create_time=current.create_time,
            update_time=now,
            revision=current.revision + 1,
        )
        old_skus = {s.id for s in current.skus}
        old_codes = {barcode_key(s.barcode) for s in current.skus if s.barcode}
        claims = [
            c
            for c in _claims(updated, updated.skus, now)
            if (c.collection == SKUS and c.key not in old_skus)
            or (c.collection == BARCODES and c.key not in old_codes)
        ]
        claimed = await self._claim(updated, claims)
        new_doc = product_to_document(updated) | {
            k: doc[k] for k in ("request_id", "request_hash") if k in doc
        }
        await self._write_and_index(doc, new_doc, claimed)
        keep_skus = {s.id for s in updated.skus}
        keep_codes = {barcode_key(s.barcode) for s in updated.skus if s.barcode}
        await self._release(
            updated.id,
            [
                *((SKUS, s) for s in old_skus - keep_skus),
                *((BARCODES, b) for b in old_codes - keep_codes),
            ],
        )
        return updated

    async def set_status(self, product_id: str, status: ProductStatus, etag: str) -> Product:
        """Publish or archive; repeating it changes nothing."""
        products = self._repo.collection(PRODUCTS)
        doc = await products.find_one({"_id": product_id})
        if doc is None:
            raise not_found("product", product_id)
        current = product_from_document(doc)
        if current.status is status:
            await self._reindex(doc)
            return current
        if etag and etag != current.etag:
            raise stale_etag(current, etag)
        changed = dataclasses.replace(
            current, status=status, revision=current.revision + 1, update_time=self._clock()
        )
        new_doc = product_to_document(changed) | {
            k: doc[k] for k in ("request_id", "request_hash") if k in doc
        }
        await self._write_and_index(doc, new_doc, [])
        return changed

    async def _write_and_index(
        self, old: Document, new: Document, claimed: Sequence[_Claim]
    ) -> None:
        """Leaves old postings, replaces the product if unchanged since read, joins new ones."""
        product_id = new["_id"]
        new_product = product_from_document(new)
        old_keys = search.posting_keys(product_from_document(old))
        new_keys = search.posting_keys(new_product)
        entry = search.posting_entry(new_product)
        leaving = [k for k in old_keys if k not in set(new_keys)]
        await self._repo.apply_postings(product_id, leaving, [], entry)
        result = await self._repo.collection(PRODUCTS).replace_one(
            {"_id": product_id, "revision": old.get("revision", 1)}, new
        )
        if result.matched_count == 0:
            # Another writer (this replica or another) replaced it since it was read.
            latest = await self._repo.collection(PRODUCTS).find_one({"_id": product_id})
            await self._release_unless_carried(product_id, claimed, latest)
            if latest is not None:
                await self._reindex(latest)
            raise stale_etag(product_from_document(latest or old), product_from_document(old).etag)
        await self._repo.apply_postings(product_id, [], new_keys, entry)

    async def _reindex(self, doc: Document) -> None:
        """Idempotent repair: the product's entry in every posting it belongs to."""
        product = product_from_document(doc)
        keys = search.posting_keys(product)
        if keys:
            await self._repo.apply_postings(product.id, [], keys, search.posting_entry(product))

    async def _check_references(self, product: Product) -> None:
        categories, brands = await asyncio.gather(
            self._repo.get_categories([product.category_id]),
            self._repo.get_brands([product.brand_id]),
        )
        violations = []
        if product.category_id not in categories:
            violations.append(
                FieldViolation(
                    "product.category_id", f"category {product.category_id!r} does not exist"
                )
            )
        if product.brand_id not in brands:
            violations.append(
                FieldViolation("product.brand_id", f"brand {product.brand_id!r} does not exist")
            )
        if violations:
            raise invalid_argument(*violations)

    # ------------------------------------------------------------------ claims

    async def _claim(self, product: Product, claims: Sequence[_Claim]) -> list[_Claim]:
        """Claims every key or none: on a conflict the claims made here are released."""
        results = await asyncio.gather(
            *(self._claim_one(product, claim) for claim in claims), return_exceptions=True
        )
        made = [c for c, r in zip(claims, results, strict=True) if r is True]
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            await self._release(product.id, [(c.collection, c.key) for c in made])
            conflicts = [f for f in failures if isinstance(f, ServiceError)]
            if len(conflicts) != len(failures):
                raise next(f for f in failures if not isinstance(f, ServiceError))
            first = conflicts[0]
            raise ServiceError(
                grpc.StatusCode.ALREADY_EXISTS,
                common_pb2.ERROR_REASON_ALREADY_EXISTS,
                "; ".join(c.message for c in conflicts),
                violations=[v for c in conflicts for v in c.violations],
                metadata=first.metadata,
            )
        return made

    async def _claim_one(self, product: Product, claim: _Claim) -> bool:
        """True when this call made the claim, False when the product held it already."""
        collection = self._repo.collection(claim.collection)
        for _ in range(CLAIM_ATTEMPTS):
            try:
                await collection.insert_one(claim.document)
                return True
            except DuplicateKeyError:
                pass
            held = await collection.find_one({"_id": claim.key})
            if held is None:
                continue  # released meanwhile: try the insert again
            if held["product_id"] == product.id:
                return False
            if not await self._is_stale(claim, held):
                what = "barcode" if claim.collection == BARCODES else "SKU id"
                raise already_exists(
                    claim.field,
                    f"{what} {claim.key!r} belongs to product {held['product_id']!r}",
                    {
                        "entity": "barcode" if claim.collection == BARCODES else "sku",
                        "id": claim.key,
                        "product_id": str(held["product_id"]),
                    },
                )
            # Take over exactly the stale claim that was judged, not a newer one.
            taken = await collection.replace_one(
                {
                    "_id": claim.key,
                    "product_id": held["product_id"],
                    "claimed_at": held.get("claimed_at"),
                },
                claim.document,
            )
            if taken.matched_count == 1:
                return True
        raise ServiceError(
            grpc.StatusCode.ABORTED,
            common_pb2.ERROR_REASON_INVALID_STATE,
            f"{claim.key!r} is being claimed concurrently: retry",
            metadata={"id": claim.key},
        )

    async def _is_stale(self, claim: _Claim, held: Document) -> bool:
        """A claim left by a write that crashed: old, and its product does not carry the key."""
        claimed_at = held.get("claimed_at")
        if claimed_at is not None and self._clock() - claimed_at < STALE_CLAIM_AFTER:
            return False
        owner = await self._repo.get_product(held["product_id"])
        if owner is None:
            return True
        if claim.collection == SKUS:
            return all(s.id != claim.key for s in owner.skus)
        return all(not s.barcode or barcode_key(s.barcode) != claim.key for s in owner.skus)

    async def _release(self, product_id: str, claims: Sequence[tuple[str, str]]) -> None:
        await asyncio.gather(
            *(
                self._repo.collection(c).delete_one({"_id": k, "product_id": product_id})
                for c, k in claims
            )
        )

    async def _release_unless_carried(
        self, product_id: str, claimed: Sequence[_Claim], stored: Document | None
    ) -> None:
        """Releases the claims made by a call that lost a race, except the keys the stored
        product (the winner's write) carries: those claims are the winner's now."""
        carried: set[tuple[str, str]] = set()
        if stored is not None:
            for sku in product_from_document(stored).skus:
                carried.add((SKUS, sku.id))
                if sku.barcode:
                    carried.add((BARCODES, barcode_key(sku.barcode)))
        await self._release(
            product_id,
            [(c.collection, c.key) for c in claimed if (c.collection, c.key) not in carried],
        )

    # ------------------------------------------------------------------ categories, brands

    async def upsert_category(self, category: Category) -> Category:
        """Creates or replaces; the parent must exist and may not lie below the category."""
        await self._repo.in_transaction(lambda session: self._upsert_category(category, session))
        return category

    async def _upsert_category(self, category: Category, session: AsyncClientSession) -> None:
        parents = await self._repo.category_parents(session)
        if category.parent_id is not None:
            if category.parent_id not in parents:
                raise invalid_argument(
                    FieldViolation(
                        "category.parent_id",
                        f"category {category.parent_id!r} does not exist",
                    )
                )
            ancestor: str | None = category.parent_id
            seen: set[str] = set()
            while ancestor is not None and ancestor not in seen:
                if ancestor == category.id:
                    raise invalid_argument(
                        FieldViolation(
                            "category.parent_id",
                            f"{category.parent_id!r} lies below {category.id!r}: "
                            "that would make a cycle",
                        )
                    )
                seen.add(ancestor)
                ancestor = parents.get(ancestor)
        await self._repo.collection(CATEGORIES).replace_one(
            {"_id": category.id}, category_to_document(category), upsert=True, session=session
        )
        # The write every tree change shares: concurrent moves conflict here.
        await self._repo.collection(META).update_one(
            {"_id": TREE_VERSION_ID}, {"$inc": {"version": 1}}, upsert=True, session=session
        )

    async def upsert_brand(self, brand: Brand) -> Brand:
        await self._repo.collection(BRANDS).replace_one(
            {"_id": brand.id}, brand_to_document(brand), upsert=True
        )
        return brand


def _claims(product: Product, skus: Sequence[Sku], now: datetime) -> list[_Claim]:
    claims: list[_Claim] = []
    for i, sku in enumerate(skus):
        claims.append(
            _Claim(SKUS, sku.id, f"product.skus[{i}].id", sku_document(product, sku, now))
        )
        if sku.barcode:
            claims.append(
                _Claim(
                    BARCODES,
                    barcode_key(sku.barcode),
                    f"product.skus[{i}].barcode",
                    barcode_document(product, sku, now),
                )
            )
    return claims
