"""Catalog slice: products with SKUs, prices quoted for the caller's channel and tier,
search with facets, barcode lookup and the category tree. Every nested entity (product,
category, brand, quote) comes through a per-request DataLoader."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence

import grpc
import strawberry

from gateway.context import DEFAULT_LOCALE, ENGLISH, GatewayInfo
from gateway.errors import bad_user_input, from_rpc_error
from gateway.fields import resolver
from gateway.loaders import ALL_CATEGORIES
from retail.catalog.v1 import catalog_pb2
from retail.common.v1 import common_pb2
from retail_kit.errors import FieldViolation
from retail_kit.paging import MAX_PAGE_SIZE
from retail_kit.validation import id_violation

_LIST_FIELDS = {"page_size": "first", "page_token": "after", "category_id": "categoryId"}
"""ListProductsRequest fields as the client named them, for BAD_USER_INPUT violations."""

_SEARCH_FIELDS = {
    "page_size": "first",
    "page_token": "after",
    "category_ids": "filter.categoryIds",
    "brand_ids": "filter.brandIds",
    "price_range.min_amount": "filter.minPrice",
    "price_range.max_amount": "filter.maxPrice",
}


def resolve_text(values: Mapping[str, str], locale: str) -> str:
    """The text in `locale`, else zh-Hans, else en, else any; "" when there is none."""
    for candidate in (locale, DEFAULT_LOCALE, ENGLISH):
        if candidate in values:
            return values[candidate]
    return next(iter(values.values()), "")


@strawberry.type(description="An amount of money in integer minor units (fen for CNY).")
class Money:
    # GraphQL Int is 32-bit: up to 2,147,483,647 fen (about 21 million yuan) per value, ample
    # for prices. Order totals that could exceed it will need a custom scalar (e.g. Long).
    amount: int = strawberry.field(description="Minor units: 1590 in CNY is 15.90 yuan.")
    currency: str = strawberry.field(description="ISO 4217 code, CNY by default.")


@strawberry.type(description="One variant option of a SKU, such as size or colour.")
class SkuOption:
    name: str
    value: str


@strawberry.enum(description="Where a product is in its life cycle.")
class ProductStatus(enum.Enum):
    DRAFT = "draft"
    ACTIVE = "active"
    ARCHIVED = "archived"


_STATUS_FROM_PROTO = {
    catalog_pb2.PRODUCT_STATUS_DRAFT: ProductStatus.DRAFT,
    catalog_pb2.PRODUCT_STATUS_ACTIVE: ProductStatus.ACTIVE,
    catalog_pb2.PRODUCT_STATUS_ARCHIVED: ProductStatus.ARCHIVED,
}


def money(value: common_pb2.Money) -> Money:
    return Money(amount=value.amount, currency=value.currency)


@strawberry.type(description="The price catalog-svc quotes for the caller's channel and tier.")
class PriceQuote:
    unit_price: Money = strawberry.field(description="What the caller pays for one unit.")
    base_price: Money = strawberry.field(description="The SKU's base price.")
    rule: str = strawberry.field(
        description='The rule that set unitPrice: "base", "channel:app", "tier:gold", '
        '"channel+tier:mini_program+gold", ...'
    )


@strawberry.type(description="A sellable variant of a product, with its barcode and base price.")
class Sku:
    id: strawberry.ID
    barcode: str
    price: Money = strawberry.field(
        description="Base price. `quote` is the price for this caller's channel and tier."
    )
    options: list[SkuOption]
    product_id: strawberry.Private[str]

    @resolver(description="The product this SKU belongs to.")
    async def product(self, info: GatewayInfo) -> Product:
        return Product.from_proto(await info.context.loaders.product.load(self.product_id))

    @resolver(
        description="The price for the channel named in the X-Retail-Channel header and the "
        "calling member's tier (one QuotePrices call for every SKU of the request)."
    )
    async def quote(self, info: GatewayInfo) -> PriceQuote:
        quote = await info.context.loaders.quote.load(self.id)
        return PriceQuote(
            unit_price=money(quote.unit_price), base_price=money(quote.base_price), rule=quote.rule
        )

    @classmethod
    def from_proto(cls, sku: catalog_pb2.Sku, product_id: str) -> Sku:
        return cls(
            id=strawberry.ID(sku.id),
            barcode=sku.barcode,
            price=money(sku.price),
            options=[SkuOption(name=o.name, value=o.value) for o in sku.options],
            product_id=sku.product_id or product_id,
        )


@strawberry.type(description="A product (SPU) with its SKUs.")
class Product:
    id: strawberry.ID
    spu_code: str
    etag: str = strawberry.field(description="Changes on every write; updateProduct needs it.")
    category_id: strawberry.ID
    brand_id: strawberry.ID
    status: ProductStatus
    skus: list[Sku]
    image_urls: list[str]
    # The message's own maps, not copies: read only, and the request holds the message.
    titles: strawberry.Private[Mapping[str, str]]
    descriptions: strawberry.Private[Mapping[str, str]]

    @resolver(description="In `locale` if given, else in the request's locale.")
    def title(self, info: GatewayInfo, locale: str | None = None) -> str:
        return resolve_text(self.titles, locale or info.context.locale)

    @resolver(description="In `locale` if given, else in the request's locale.")
    def description(self, info: GatewayInfo, locale: str | None = None) -> str:
        return resolve_text(self.descriptions, locale or info.context.locale)

    @resolver(description="The product's category.")
    async def category(self, info: GatewayInfo) -> Category:
        return Category.from_proto(await info.context.loaders.category.load(self.category_id))

    @resolver(description="The product's brand.")
    async def brand(self, info: GatewayInfo) -> Brand:
        return Brand.from_proto(await info.context.loaders.brand.load(self.brand_id))

    @classmethod
    def from_proto(cls, product: catalog_pb2.Product) -> Product:
        return cls(
            id=strawberry.ID(product.id),
            spu_code=product.spu_code,
            etag=product.etag,
            category_id=strawberry.ID(product.category_id),
            brand_id=strawberry.ID(product.brand_id),
            status=_STATUS_FROM_PROTO[product.status],
            skus=[Sku.from_proto(sku, product.id) for sku in product.skus],
            image_urls=list(product.image_urls),
            titles=product.title.values,
            descriptions=product.description.values,
        )


@strawberry.type(description="A node of the category tree.")
class Category:
    id: strawberry.ID
    parent_id: strawberry.ID | None
    sort_order: int
    names: strawberry.Private[dict[str, str]]

    @resolver(description="In `locale` if given, else in the request's locale.")
    def name(self, info: GatewayInfo, locale: str | None = None) -> str:
        return resolve_text(self.names, locale or info.context.locale)

    @resolver(description="The parent category; null at the top level.")
    async def parent(self, info: GatewayInfo) -> Category | None:
        if not self.parent_id:
            return None
        return Category.from_proto(await info.context.loaders.category.load(self.parent_id))

    @resolver(description="The direct subcategories, in display order.")
    async def children(self, info: GatewayInfo) -> list[Category]:
        tree = await info.context.loaders.category_tree.load(ALL_CATEGORIES)
        return child_categories(tree, self.id)

    @classmethod
    def from_proto(cls, category: catalog_pb2.Category) -> Category:
        return cls(
            id=strawberry.ID(category.id),
            parent_id=strawberry.ID(category.parent_id) if category.parent_id else None,
            sort_order=category.sort_order,
            names=dict(category.name.values),
        )


def child_categories(tree: Sequence[catalog_pb2.Category], parent_id: str) -> list[Category]:
    children = [c for c in tree if c.parent_id == parent_id]
    children.sort(key=lambda c: (c.sort_order, c.id))
    return [Category.from_proto(c) for c in children]


@strawberry.type
class Brand:
    id: strawberry.ID
    names: strawberry.Private[dict[str, str]]

    @resolver(description="In `locale` if given, else in the request's locale.")
    def name(self, info: GatewayInfo, locale: str | None = None) -> str:
        return resolve_text(self.names, locale or info.context.locale)

    @classmethod
    def from_proto(cls, brand: catalog_pb2.Brand) -> Brand:
        return cls(id=strawberry.ID(brand.id), names=dict(brand.name.values))


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class ProductEdge:
    cursor: str = strawberry.field(description="Pass as `after` to continue after this node.")
    node: Product


@strawberry.type
class ProductConnection:
    edges: list[ProductEdge]
    page_info: PageInfo


@strawberry.type
class SearchEdge:
    cursor: str | None = strawberry.field(
        description="Set on the last edge of a page that has a next one (pass it as `after`); "
        "SearchProducts issues no per-result resume tokens."
    )
    node: Product


@strawberry.type
class CategoryFacet:
    count: int
    category_id: strawberry.Private[str]

    @resolver(description="The category (all facets of a page in one BatchGetCategories call).")
    async def category(self, info: GatewayInfo) -> Category:
        return Category.from_proto(await info.context.loaders.category.load(self.category_id))


@strawberry.type
class BrandFacet:
    count: int
    brand_id: strawberry.Private[str]

    @resolver(description="The brand (all facets of a page in one BatchGetBrands call).")
    async def brand(self, info: GatewayInfo) -> Brand:
        return Brand.from_proto(await info.context.loaders.brand.load(self.brand_id))


@strawberry.type
class SearchConnection:
    edges: list[SearchEdge]
    page_info: PageInfo
    total_count: int = strawberry.field(description="Matches of the whole query, all pages.")
    category_facets: list[CategoryFacet] = strawberry.field(
        description="Matches per category, over all pages."
    )
    brand_facets: list[BrandFacet] = strawberry.field(description="Matches per brand, all pages.")


@strawberry.input(description="Narrows a search; every given part must match.")
class SearchFilter:
    category_ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Each category includes its whole subtree."
    )
    brand_ids: list[strawberry.ID] | None = None
    min_price: int | None = strawberry.field(default=None, description="Minor units (fen).")
    max_price: int | None = strawberry.field(default=None, description="Minor units (fen).")


@strawberry.type(description="What a scanned barcode names: the product and its SKU.")
class BarcodeMatch:
    product: Product
    sku: Sku


def _check_first(first: int) -> None:
    if not 1 <= first <= MAX_PAGE_SIZE:
        raise bad_user_input(
            FieldViolation("first", f"must be between 1 and {MAX_PAGE_SIZE}, got {first}")
        )


@strawberry.type
class CatalogQuery:
    @resolver(description="A product by id, archived ones included.")
    async def product(self, info: GatewayInfo, id: strawberry.ID) -> Product | None:
        # Checked here so one malformed id cannot fail the whole batch it would join.
        if violation := id_violation("id", id):
            raise bad_user_input(violation)
        return Product.from_proto(await info.context.loaders.product.load(id))

    @resolver(description="Active products in a stable order, `first` at a time.")
    async def products(
        self,
        info: GatewayInfo,
        first: int = 20,
        after: str | None = None,
        category_id: strawberry.ID | None = None,
    ) -> ProductConnection:
        _check_first(first)
        request = catalog_pb2.ListProductsRequest(
            page_size=first, page_token=after or "", category_id=category_id or ""
        )
        try:
            reply = await info.context.clients.catalog.ListProducts(request)
        except grpc.aio.AioRpcError as error:
            raise from_rpc_error(error, service="catalog", field_names=_LIST_FIELDS) from None
        info.context.loaders.product.prime_many({p.id: p for p in reply.products})
        cursors = list(reply.cursors)
        return ProductConnection(
            edges=[
                ProductEdge(cursor=cursor, node=Product.from_proto(product))
                for product, cursor in zip(reply.products, cursors, strict=True)
            ],
            page_info=PageInfo(
                has_next_page=reply.next_page_token != "",
                end_cursor=cursors[-1] if cursors else None,
            ),
        )

    @resolver(
        description="Active products matching the words (Chinese and English) and the filter, "
        "best match first, with facet counts by category and brand."
    )
    async def search(
        self,
        info: GatewayInfo,
        query: str | None = None,
        filter: SearchFilter | None = None,
        first: int = 20,
        after: str | None = None,
    ) -> SearchConnection:
        _check_first(first)
        where = filter or SearchFilter()
        request = catalog_pb2.SearchProductsRequest(
            query=query or "",
            category_ids=where.category_ids or [],
            brand_ids=where.brand_ids or [],
            page_size=first,
            page_token=after or "",
        )
        if where.min_price is not None or where.max_price is not None:
            request.price_range.CopyFrom(
                catalog_pb2.PriceRange(
                    min_amount=where.min_price or 0, max_amount=where.max_price or 0
                )
            )
        try:
            reply = await info.context.clients.catalog.SearchProducts(request)
        except grpc.aio.AioRpcError as error:
            raise from_rpc_error(error, service="catalog", field_names=_SEARCH_FIELDS) from None
        info.context.loaders.product.prime_many({p.id: p for p in reply.products})
        end_cursor = reply.next_page_token or None
        last = len(reply.products) - 1
        return SearchConnection(
            edges=[
                SearchEdge(cursor=end_cursor if i == last else None, node=Product.from_proto(p))
                for i, p in enumerate(reply.products)
            ],
            page_info=PageInfo(has_next_page=end_cursor is not None, end_cursor=end_cursor),
            total_count=reply.total_count,
            category_facets=[
                CategoryFacet(count=f.count, category_id=f.value) for f in reply.category_facets
            ],
            brand_facets=[BrandFacet(count=f.count, brand_id=f.value) for f in reply.brand_facets],
        )

    @resolver(description="The product and SKU carrying a barcode (till and kiosk scanning).")
    async def product_by_barcode(self, info: GatewayInfo, barcode: str) -> BarcodeMatch | None:
        request = catalog_pb2.GetProductByBarcodeRequest(barcode=barcode)
        try:
            reply = await info.context.clients.catalog.GetProductByBarcode(request)
        except grpc.aio.AioRpcError as error:
            raise from_rpc_error(error, service="catalog") from None
        info.context.loaders.product.prime(reply.product.id, reply.product)
        product = Product.from_proto(reply.product)
        sku = next(s for s in product.skus if s.id == reply.sku_id)
        return BarcodeMatch(product=product, sku=sku)

    @resolver(description="The top-level categories; walk `children` for the tree.")
    async def categories(self, info: GatewayInfo) -> list[Category]:
        tree = await info.context.loaders.category_tree.load(ALL_CATEGORIES)
        return child_categories(tree, "")

    @resolver(description="A category by id.")
    async def category(self, info: GatewayInfo, id: strawberry.ID) -> Category | None:
        if violation := id_violation("id", id):
            raise bad_user_input(violation)
        return Category.from_proto(await info.context.loaders.category.load(id))
