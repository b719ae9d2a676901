"""CatalogService over gRPC: proto <-> domain and status codes; rules stay in domain/repository."""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from catalog_svc import search
from catalog_svc.domain import (
    MEMBER_TIERS,
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
    barcode_problem,
    quote_price,
)
from catalog_svc.repository import CatalogRepository
from catalog_svc.rules import (
    PRODUCT_ID,
    brand_violations,
    category_violations,
    product_violations,
)
from catalog_svc.writes import CatalogWriter, Clock, utc_now
from retail.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from retail.common.v1 import common_pb2
from retail_kit.errors import (
    Context,
    FieldViolation,
    ServiceError,
    invalid_argument,
    not_found,
)
from retail_kit.mongo import Document
from retail_kit.paging import (
    decode_page_token,
    encode_page_token,
    invalid_page_token,
    page_size,
    query_fingerprint,
)
from retail_kit.validation import batch_ids, id_violation, require_id

MAX_FILTER_IDS = 50
# QuotePrices' category paths: the tree is reused this long (a move made through another
# replica shows in coupon scopes after at most this; moves are rare admin changes).
CATEGORY_TREE_CACHE_SECONDS = 5.0
_SKU_NUMBER = re.compile(r"_s(\d+)$")

_STATUS_TO_PROTO = {
    ProductStatus.DRAFT: catalog_pb2.PRODUCT_STATUS_DRAFT,
    ProductStatus.ACTIVE: catalog_pb2.PRODUCT_STATUS_ACTIVE,
    ProductStatus.ARCHIVED: catalog_pb2.PRODUCT_STATUS_ARCHIVED,
}


_STATUS_FROM_PROTO = {v: k for k, v in _STATUS_TO_PROTO.items()}

_CHANNEL_TO_PROTO = {
    Channel.MINI_PROGRAM: common_pb2.CHANNEL_MINI_PROGRAM,
    Channel.APP: common_pb2.CHANNEL_APP,
    Channel.POS: common_pb2.CHANNEL_POS,
    Channel.KIOSK: common_pb2.CHANNEL_KIOSK,
}
_CHANNEL_FROM_PROTO = {v: k for k, v in _CHANNEL_TO_PROTO.items()}


def _text(text: LocalizedText) -> common_pb2.LocalizedText:
    return common_pb2.LocalizedText(values=text.values)


def _money(money: Money) -> common_pb2.Money:
    return common_pb2.Money(amount=money.amount, currency=money.currency)


def _from_timestamp(owner: object, field: str) -> datetime | None:
    """An optional Timestamp field as UTC, at the millisecond precision BSON keeps."""
    if not owner.HasField(field):  # type: ignore[attr-defined]
        return None
    stamp: Timestamp = getattr(owner, field)
    value = stamp.ToDatetime(UTC)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def _channel(field: str, value: int, problems: list[FieldViolation]) -> Channel | None:
    if value == common_pb2.CHANNEL_UNSPECIFIED:
        return None
    channel: Channel | None = _CHANNEL_FROM_PROTO.get(value)  # type: ignore[call-overload]
    if channel is None:
        problems.append(FieldViolation(field, f"unknown channel {value}"))
    return channel


def _sku_to_proto(product_id: str, sku: Sku) -> catalog_pb2.Sku:
    return catalog_pb2.Sku(
        id=sku.id,
        product_id=product_id,
        barcode=sku.barcode,
        price=_money(sku.price),
        options=[catalog_pb2.SkuOption(name=o.name, value=o.value) for o in sku.options],
        price_rules=[
            catalog_pb2.PriceRule(
                channel=(
                    _CHANNEL_TO_PROTO[r.channel] if r.channel else common_pb2.CHANNEL_UNSPECIFIED
                ),
                tier=r.tier or "",
                price=_money(r.price),
                start_time=_timestamp(r.start),
                end_time=_timestamp(r.end),
            )
            for r in sku.price_rules
        ],
    )


def product_from_proto(
    message: catalog_pb2.Product, product_id: str
) -> tuple[Product, list[FieldViolation]]:
    """The product a write asks for, SKU ids filled in; conversion problems named by field."""
    problems: list[FieldViolation] = []
    taken = [
        int(m.group(1))
        for s in message.skus
        if s.id.startswith(f"{product_id}_") and (m := _SKU_NUMBER.search(s.id))
    ]
    next_number = max(taken, default=0) + 1
    skus = []
    for i, sku in enumerate(message.skus):
        sku_id = sku.id
        if not sku_id:
            sku_id, next_number = f"{product_id}_s{next_number}", next_number + 1
        currency = sku.price.currency or "CNY"
        rules = []
        for j, rule in enumerate(sku.price_rules):
            at = f"product.skus[{i}].price_rules[{j}]"
            rules.append(
                PriceRule(
                    price=Money(rule.price.amount, rule.price.currency or currency),
                    channel=_channel(f"{at}.channel", rule.channel, problems),
                    tier=rule.tier or None,
                    start=_from_timestamp(rule, "start_time"),
                    end=_from_timestamp(rule, "end_time"),
                )
            )
        skus.append(
            Sku(
                id=sku_id,
                barcode=sku.barcode.strip(),
                price=Money(sku.price.amount, currency),
                options=tuple(SkuOption(o.name.strip(), o.value.strip()) for o in sku.options),
                price_rules=tuple(rules),
            )
        )
    product = Product(
        id=product_id,
        spu_code=message.spu_code,
        title=LocalizedText(dict(message.title.values)),
        description=LocalizedText(dict(message.description.values)),
        category_id=message.category_id,
        brand_id=message.brand_id,
        status=ProductStatus.DRAFT,
        skus=tuple(skus),
        image_urls=tuple(message.image_urls),
        attributes=dict(message.attributes),
    )
    problems += [
        FieldViolation(f"product.{v.field}", v.description) for v in product_violations(product)
    ]
    return product, problems


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _timestamp(value: datetime | None) -> Timestamp | None:
    """What Timestamp.FromDatetime gives (naive = UTC), built in one constructor call."""
    fields = _timestamp_fields(value)
    return Timestamp(**fields) if fields is not None else None


def _timestamp_fields(value: datetime | None) -> dict[str, int] | None:
    """`_timestamp` as constructor fields (a dict is built in place; a message is copied)."""
    if value is None:
        return None
    delta = (value if value.tzinfo is not None else value.replace(tzinfo=UTC)) - _EPOCH
    return {"seconds": delta.days * 86_400 + delta.seconds, "nanos": delta.microseconds * 1000}


def product_to_proto(product: Product) -> catalog_pb2.Product:
    return catalog_pb2.Product(
        id=product.id,
        spu_code=product.spu_code,
        title=_text(product.title),
        description=_text(product.description),
        category_id=product.category_id,
        brand_id=product.brand_id,
        status=_STATUS_TO_PROTO[product.status],
        skus=[_sku_to_proto(product.id, sku) for sku in product.skus],
        image_urls=product.image_urls,
        attributes=product.attributes,
        create_time=_timestamp(product.create_time),
        update_time=_timestamp(product.update_time),
        etag=product.etag,
    )


def _price_rule_fields(doc: Document) -> dict[str, Any]:
    channel = doc.get("channel")
    return {
        "channel": _CHANNEL_TO_PROTO[channel] if channel else common_pb2.CHANNEL_UNSPECIFIED,
        "tier": doc.get("tier") or "",
        "price": {"amount": doc["price"]["amount"], "currency": doc["price"]["currency"]},
        "start_time": _timestamp_fields(doc.get("start")),
        "end_time": _timestamp_fields(doc.get("end")),
    }


def _sku_fields(product_id: str, doc: Document) -> dict[str, Any]:
    price = doc["price"]
    return {
        "id": doc["id"],
        "product_id": product_id,
        "barcode": doc["barcode"],
        "price": {"amount": price["amount"], "currency": price["currency"]},
        "options": [{"name": o["name"], "value": o["value"]} for o in doc.get("options", ())],
        "price_rules": [_price_rule_fields(r) for r in doc.get("price_rules", ())],
    }


def product_document_to_proto(doc: Document) -> catalog_pb2.Product:
    """`product_to_proto(product_from_document(doc))` without the domain objects in between.

    The read RPCs (GetProduct, BatchGetProducts, ListProducts, SearchProducts) answer stored
    products as they are; going through the frozen domain objects and message-by-message
    construction was ~40 % of catalog-svc's CPU per listed page (profiled, issue 6), this is
    ~4x cheaper. test_proto_conversion.py checks both paths give equal messages for every
    demo and generated product and for documents using every optional field.
    """
    product_id = doc["_id"]
    # Sub-messages as dicts: protobuf builds them in place (messages would be built, then
    # copied into the parent). The stubs type those arguments as messages, hence Any.
    fields: dict[str, Any] = {
        "id": product_id,
        "spu_code": doc["spu_code"],
        "title": {"values": doc["title"]},
        "description": {"values": doc.get("description") or {}},
        "category_id": doc["category_id"],
        "brand_id": doc["brand_id"],
        "status": _STATUS_TO_PROTO[ProductStatus(doc["status"])],
        "skus": [_sku_fields(product_id, s) for s in doc["skus"]],
        "image_urls": doc.get("image_urls", ()),
        "attributes": doc.get("attributes") or {},
        "create_time": _timestamp_fields(doc.get("create_time")),
        "update_time": _timestamp_fields(doc.get("update_time")),
        "etag": f"r{int(doc.get('revision') or 1)}",
    }
    return catalog_pb2.Product(**fields)


def category_to_proto(category: Category) -> catalog_pb2.Category:
    return catalog_pb2.Category(
        id=category.id,
        name=_text(category.name),
        parent_id=category.parent_id or "",
        sort_order=category.sort_order,
    )


def brand_to_proto(brand: Brand) -> catalog_pb2.Brand:
    return catalog_pb2.Brand(id=brand.id, name=_text(brand.name))


def _category_from_proto(message: catalog_pb2.Category) -> Category:
    return Category(
        id=message.id,
        name=LocalizedText(dict(message.name.values)),
        parent_id=message.parent_id or None,
        sort_order=message.sort_order,
    )


def _missing(entity: str, field: str, ids: Sequence[str], missing: Sequence[str]) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.NOT_FOUND,
        common_pb2.ERROR_REASON_NOT_FOUND,
        f"{entity} not found: {', '.join(missing)}",
        violations=[
            FieldViolation(f"{field}[{i}]", f"{entity} {value!r} not found")
            for i, value in enumerate(ids)
            if value in missing
        ],
        metadata={"entity": entity, "id": missing[0], "ids": ",".join(missing)},
    )


class CatalogServicer(catalog_pb2_grpc.CatalogServiceServicer):
    def __init__(
        self,
        repository: CatalogRepository,
        clock: Clock = utc_now,
        *,
        tree_cache_seconds: float = CATEGORY_TREE_CACHE_SECONDS,
    ) -> None:
        self._repository = repository
        self._writer = CatalogWriter(repository, clock)
        self._clock = clock
        self._tree_cache_seconds = tree_cache_seconds
        # (monotonic time read, category id -> parent id) for QuotePrices' category paths.
        self._tree: tuple[float, Mapping[str, str | None]] | None = None

    async def _category_parents(self) -> Mapping[str, str | None]:
        """The category tree, reused for `tree_cache_seconds` (dropped at once by this
        replica's own category upserts): QuotePrices runs on every priced page and order,
        and reading the tree beside the SKUs cost it ~45% more time."""
        cached = self._tree
        if cached is not None and time.monotonic() - cached[0] < self._tree_cache_seconds:
            return cached[1]
        parents = await self._repository.category_parents()
        if self._tree_cache_seconds > 0:
            self._tree = (time.monotonic(), parents)
        return parents

    async def GetProduct(
        self, request: catalog_pb2.GetProductRequest, context: Context
    ) -> catalog_pb2.GetProductResponse:
        doc = await self._repository.get_product_document(require_id("id", request.id))
        if doc is None:
            raise not_found("product", request.id)
        return catalog_pb2.GetProductResponse(product=product_document_to_proto(doc))

    async def BatchGetProducts(
        self, request: catalog_pb2.BatchGetProductsRequest, context: Context
    ) -> catalog_pb2.BatchGetProductsResponse:
        ids = batch_ids("ids", request.ids)
        found = await self._repository.get_product_documents(ids) if ids else {}
        return catalog_pb2.BatchGetProductsResponse(
            products=[product_document_to_proto(found[i]) for i in ids if i in found],
            missing_ids=[i for i in ids if i not in found],
        )

    async def ListProducts(
        self, request: catalog_pb2.ListProductsRequest, context: Context
    ) -> catalog_pb2.ListProductsResponse:
        size = page_size(request.page_size)
        if request.category_id:
            require_id("category_id", request.category_id)
        fingerprint = query_fingerprint("ListProducts", request.category_id)
        after_id = decode_page_token(request.page_token, fingerprint)
        # One extra row tells whether another page exists without a count query.
        docs = await self._repository.list_product_documents(
            limit=size + 1, after_id=after_id, category_id=request.category_id or None
        )
        page, more = docs[:size], len(docs) > size
        return catalog_pb2.ListProductsResponse(
            products=[product_document_to_proto(doc) for doc in page],
            next_page_token=encode_page_token(fingerprint, page[-1]["_id"]) if more else "",
            cursors=[encode_page_token(fingerprint, doc["_id"]) for doc in page],
        )

    async def ListCategories(
        self, request: catalog_pb2.ListCategoriesRequest, context: Context
    ) -> catalog_pb2.ListCategoriesResponse:
        categories = await self._repository.list_categories()
        return catalog_pb2.ListCategoriesResponse(
            categories=[category_to_proto(c) for c in categories]
        )

    async def BatchGetCategories(
        self, request: catalog_pb2.BatchGetCategoriesRequest, context: Context
    ) -> catalog_pb2.BatchGetCategoriesResponse:
        ids = batch_ids("ids", request.ids)
        found = await self._repository.get_categories(ids) if ids else {}
        return catalog_pb2.BatchGetCategoriesResponse(
            categories=[category_to_proto(found[i]) for i in ids if i in found],
            missing_ids=[i for i in ids if i not in found],
        )

    async def BatchGetBrands(
        self, request: catalog_pb2.BatchGetBrandsRequest, context: Context
    ) -> catalog_pb2.BatchGetBrandsResponse:
        ids = batch_ids("ids", request.ids)
        found = await self._repository.get_brands(ids) if ids else {}
        return catalog_pb2.BatchGetBrandsResponse(
            brands=[brand_to_proto(found[i]) for i in ids if i in found],
            missing_ids=[i for i in ids if i not in found],
        )

    async def BatchGetSkus(
        self, request: catalog_pb2.BatchGetSkusRequest, context: Context
    ) -> catalog_pb2.BatchGetSkusResponse:
        ids = batch_ids("ids", request.ids)
        found = await self._repository.get_skus(ids) if ids else {}
        return catalog_pb2.BatchGetSkusResponse(
            skus=[_sku_to_proto(found[i][0].id, found[i][1]) for i in ids if i in found],
            missing_ids=[i for i in ids if i not in found],
        )

    async def GetProductByBarcode(
        self, request: catalog_pb2.GetProductByBarcodeRequest, context: Context
    ) -> catalog_pb2.GetProductByBarcodeResponse:
        barcode = request.barcode.strip()
        if problem := ("is required" if not barcode else barcode_problem(barcode)):
            raise invalid_argument(FieldViolation("barcode", problem))
        found = await self._repository.product_by_barcode(barcode)
        if found is None:
            raise not_found("barcode", barcode)
        product, sku = found
        return catalog_pb2.GetProductByBarcodeResponse(
            product=product_to_proto(product), sku_id=sku.id
        )

    async def SearchProducts(
        self, request: catalog_pb2.SearchProductsRequest, context: Context
    ) -> catalog_pb2.SearchProductsResponse:
        size = page_size(request.page_size)
        problems: list[FieldViolation] = []
        if len(request.query) > search.MAX_QUERY_LENGTH:
            problems.append(
                FieldViolation("query", f"at most {search.MAX_QUERY_LENGTH} characters")
            )
        category_ids = _filter_ids("category_ids", request.category_ids, problems)
        brand_ids = _filter_ids("brand_ids", request.brand_ids, problems)
        low, high = request.price_range.min_amount, request.price_range.max_amount
        if low < 0:
            problems.append(FieldViolation("price_range.min_amount", "must not be negative"))
        if high < 0:
            problems.append(FieldViolation("price_range.max_amount", "must not be negative"))
        elif high and high < low:
            problems.append(
                FieldViolation("price_range.max_amount", "must not be below min_amount")
            )
        if problems:
            raise invalid_argument(*problems)
        tokens = search.query_tokens(request.query)
        fingerprint = query_fingerprint(
            "SearchProducts", tokens, sorted(category_ids), sorted(brand_ids), low, high
        )
        after = _search_cursor(decode_page_token(request.page_token, fingerprint))
        if request.query.strip() and not tokens:
            return catalog_pb2.SearchProductsResponse()
        subtree = (
            search.subtree(category_ids, await self._repository.category_parents())
            if category_ids
            else None
        )
        if tokens:
            keys = [search.token_key(t) for t in tokens]
        elif subtree is not None:
            keys = [search.category_key(c) for c in sorted(subtree)]
        elif brand_ids:
            keys = [search.brand_key(b) for b in sorted(brand_ids)]
        else:
            keys = [search.ALL_KEY]
        result = await self._repository.search(
            tokens,
            keys,
            search.SearchFilter(
                category_ids=subtree,
                brand_ids=frozenset(brand_ids) if brand_ids else None,
                min_price=low or None,
                max_price=high or None,
            ),
        )
        page = result.page(after, size + 1)
        page, more = page[:size], len(page) > size
        found = await self._repository.get_product_documents([h.product_id for h in page])
        return catalog_pb2.SearchProductsResponse(
            products=[
                product_document_to_proto(found[h.product_id])
                for h in page
                if h.product_id in found
            ],
            next_page_token=(
                encode_page_token(fingerprint, [page[-1].score, page[-1].product_id])
                if more
                else ""
            ),
            total_count=len(result),
            category_facets=[
                catalog_pb2.FacetCount(value=v, count=n) for v, n in result.category_facets
            ],
            brand_facets=[catalog_pb2.FacetCount(value=v, count=n) for v, n in result.brand_facets],
        )

    async def QuotePrices(
        self, request: catalog_pb2.QuotePricesRequest, context: Context
    ) -> catalog_pb2.QuotePricesResponse:
        problems: list[FieldViolation] = []
        ids = list(request.sku_ids)
        if not ids:
            problems.append(FieldViolation("sku_ids", "at least one SKU id is required"))
        channel = _channel("channel", request.channel, problems)
        tier = request.tier or None
        if tier is not None and tier not in MEMBER_TIERS:
            problems.append(FieldViolation("tier", f"one of {', '.join(MEMBER_TIERS)}, or empty"))
        if request.store_id and (violation := id_violation("store_id", request.store_id)):
            problems.append(violation)
        if problems:
            raise invalid_argument(*problems)
        distinct = batch_ids("sku_ids", ids)
        found, parents = await asyncio.gather(
            self._repository.get_skus(distinct), self._category_parents()
        )
        missing = [i for i in distinct if i not in found]
        if missing:
            raise _missing("sku", "sku_ids", ids, missing)
        now = self._clock()
        quotes = []
        for sku_id in distinct:
            product, sku = found[sku_id]
            quote = quote_price(sku, channel, tier, now)
            quotes.append(
                catalog_pb2.PriceQuote(
                    sku_id=sku_id,
                    unit_price=_money(quote.unit_price),
                    base_price=_money(quote.base_price),
                    rule=quote.rule,
                    product_id=product.id,
                    product_status=_STATUS_TO_PROTO[product.status],
                    category_ids=category_path(product.category_id, parents),
                )
            )
        return catalog_pb2.QuotePricesResponse(quotes=quotes)

    # ------------------------------------------------------------------ admin writes

    async def CreateProduct(
        self, request: catalog_pb2.CreateProductRequest, context: Context
    ) -> catalog_pb2.CreateProductResponse:
        problems: list[FieldViolation] = []
        if violation := id_violation("request_id", request.request_id):
            problems.append(violation)
        product_id = request.product.id or (
            "p_" + hashlib.sha256(request.request_id.encode()).hexdigest()[:16]
        )
        product, product_problems = product_from_proto(request.product, product_id)
        problems += product_problems
        if problems:
            raise invalid_argument(*problems)
        created = await self._writer.create_product(product, request.request_id)
        return catalog_pb2.CreateProductResponse(product=product_to_proto(created))

    async def UpdateProduct(
        self, request: catalog_pb2.UpdateProductRequest, context: Context
    ) -> catalog_pb2.UpdateProductResponse:
        require_id("product.id", request.product.id)
        product, problems = product_from_proto(request.product, request.product.id)
        if not request.product.etag:
            problems.append(FieldViolation("product.etag", "is required (from the last read)"))
        if problems:
            raise invalid_argument(*problems)
        updated = await self._writer.update_product(product, request.product.etag)
        return catalog_pb2.UpdateProductResponse(product=product_to_proto(updated))

    async def PublishProduct(
        self, request: catalog_pb2.PublishProductRequest, context: Context
    ) -> catalog_pb2.PublishProductResponse:
        product = await self._writer.set_status(
            _writable_product_id(request.id), ProductStatus.ACTIVE, request.etag
        )
        return catalog_pb2.PublishProductResponse(product=product_to_proto(product))

    async def ArchiveProduct(
        self, request: catalog_pb2.ArchiveProductRequest, context: Context
    ) -> catalog_pb2.ArchiveProductResponse:
        product = await self._writer.set_status(
            _writable_product_id(request.id), ProductStatus.ARCHIVED, request.etag
        )
        return catalog_pb2.ArchiveProductResponse(product=product_to_proto(product))

    async def UpsertCategory(
        self, request: catalog_pb2.UpsertCategoryRequest, context: Context
    ) -> catalog_pb2.UpsertCategoryResponse:
        category = _category_from_proto(request.category)
        if problems := category_violations(category):
            raise invalid_argument(*problems)
        saved = await self._writer.upsert_category(category)
        self._tree = None
        return catalog_pb2.UpsertCategoryResponse(category=category_to_proto(saved))

    async def UpsertBrand(
        self, request: catalog_pb2.UpsertBrandRequest, context: Context
    ) -> catalog_pb2.UpsertBrandResponse:
        brand = Brand(id=request.brand.id, name=LocalizedText(dict(request.brand.name.values)))
        if problems := brand_violations(brand):
            raise invalid_argument(*problems)
        saved = await self._writer.upsert_brand(brand)
        return catalog_pb2.UpsertBrandResponse(brand=brand_to_proto(saved))


def category_path(category_id: str, parents: Mapping[str, str | None]) -> list[str]:
    """The category and its ancestors, nearest first (empty for no category; a parent
    missing from the tree ends the path; a cycle, which upserts never let in, ends it too)."""
    path: list[str] = []
    current: str | None = category_id or None
    while current and current not in path:
        path.append(current)
        current = parents.get(current)
    return path


def _writable_product_id(value: str) -> str:
    """Ids of products the API writes: they become field names in the search postings."""
    require_id("id", value)
    if not PRODUCT_ID.match(value):
        raise invalid_argument(FieldViolation("id", "1-64 letters, digits, '_' or '-'"))
    return value


def _filter_ids(field: str, values: Sequence[str], problems: list[FieldViolation]) -> list[str]:
    ids = list(dict.fromkeys(values))
    if len(ids) > MAX_FILTER_IDS:
        problems.append(FieldViolation(field, f"at most {MAX_FILTER_IDS} ids"))
        return []
    for i, value in enumerate(ids):
        if violation := id_violation(f"{field}[{i}]", value):
            problems.append(violation)
    return ids


def _search_cursor(key: object) -> tuple[int, str] | None:
    """The (-score, product id) sort key after which a search page starts."""
    if key is None:
        return None
    if (
        isinstance(key, list)
        and len(key) == 2
        and isinstance(key[0], int)
        and isinstance(key[1], str)
    ):
        return (-key[0], key[1])
    raise invalid_page_token()
