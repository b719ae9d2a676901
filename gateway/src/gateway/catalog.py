"""Catalog slice: products with SKUs and prices, by id (batched) and as a cursor connection."""

from __future__ import annotations

import enum
from collections.abc import Mapping

import grpc
import strawberry

from gateway.context import DEFAULT_LOCALE, ENGLISH, GatewayInfo
from gateway.errors import bad_user_input, from_rpc_error
from gateway.fields import resolver
from retail.catalog.v1 import catalog_pb2
from retail_kit.errors import FieldViolation
from retail_kit.paging import MAX_PAGE_SIZE
from retail_kit.validation import id_violation

_LIST_FIELDS = {"page_size": "first", "page_token": "after", "category_id": "categoryId"}
"""ListProductsRequest fields as the client named them, for BAD_USER_INPUT violations."""


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


@strawberry.type(description="A sellable variant of a product, with its barcode and base price.")
class Sku:
    id: strawberry.ID
    barcode: str
    price: Money = strawberry.field(
        description="Base price; channel and member-tier prices are quoted at checkout."
    )
    options: list[SkuOption]
    product_id: strawberry.Private[str]

    @resolver(description="The product this SKU belongs to.")
    async def product(self, info: GatewayInfo) -> Product:
        return Product.from_proto(await info.context.loaders.product.load(self.product_id))

    @classmethod
    def from_proto(cls, sku: catalog_pb2.Sku, product_id: str) -> Sku:
        return cls(
            id=strawberry.ID(sku.id),
            barcode=sku.barcode,
            price=Money(amount=sku.price.amount, currency=sku.price.currency),
            options=[SkuOption(name=o.name, value=o.value) for o in sku.options],
            product_id=sku.product_id or product_id,
        )


@strawberry.type(description="A product (SPU) with its SKUs.")
class Product:
    id: strawberry.ID
    category_id: strawberry.ID
    brand_id: strawberry.ID
    status: ProductStatus
    skus: list[Sku]
    image_urls: list[str]
    titles: strawberry.Private[dict[str, str]]
    descriptions: strawberry.Private[dict[str, str]]

    @resolver(description="In `locale` if given, else in the request's locale.")
    def title(self, info: GatewayInfo, locale: str | None = None) -> str:
        return resolve_text(self.titles, locale or info.context.locale)

    @resolver(description="In `locale` if given, else in the request's locale.")
    def description(self, info: GatewayInfo, locale: str | None = None) -> str:
        return resolve_text(self.descriptions, locale or info.context.locale)

    @classmethod
    def from_proto(cls, product: catalog_pb2.Product) -> Product:
        return cls(
            id=strawberry.ID(product.id),
            category_id=strawberry.ID(product.category_id),
            brand_id=strawberry.ID(product.brand_id),
            status=_STATUS_FROM_PROTO[product.status],
            skus=[Sku.from_proto(sku, product.id) for sku in product.skus],
            image_urls=list(product.image_urls),
            titles=dict(product.title.values),
            descriptions=dict(product.description.values),
        )


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
        if not 1 <= first <= MAX_PAGE_SIZE:
            raise bad_user_input(
                FieldViolation("first", f"must be between 1 and {MAX_PAGE_SIZE}, got {first}")
            )
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
