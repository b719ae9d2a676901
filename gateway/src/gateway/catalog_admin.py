"""Catalog admin slice: create, update, publish and archive products; upsert categories and
brands. Admin only (authz, checked before any call). Inputs mirror the proto; validation
(barcodes, prices, the category tree, etags) is catalog-svc's, and its field violations are
answered under the GraphQL input names (`product.skus[0].barcode` -> `input.skus[0].barcode`).
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime

import grpc
import strawberry
from google.protobuf.timestamp_pb2 import Timestamp

from gateway import authz
from gateway.catalog import Brand, Category, Product
from gateway.context import GatewayInfo
from gateway.errors import from_rpc_error
from gateway.fields import resolver
from retail.catalog.v1 import catalog_pb2
from retail.common.v1 import common_pb2

_WRITE_FIELDS = {"product": "input", "category": "input", "brand": "input"}
"""Request fields renamed to the mutation's arguments (the rest is camelCased)."""


@strawberry.enum(description="A sales channel a price rule is limited to.")
class SalesChannel(enum.Enum):
    MINI_PROGRAM = "mini_program"
    APP = "app"
    POS = "pos"
    KIOSK = "kiosk"


_CHANNEL_TO_PROTO = {
    SalesChannel.MINI_PROGRAM: common_pb2.CHANNEL_MINI_PROGRAM,
    SalesChannel.APP: common_pb2.CHANNEL_APP,
    SalesChannel.POS: common_pb2.CHANNEL_POS,
    SalesChannel.KIOSK: common_pb2.CHANNEL_KIOSK,
}


@strawberry.input(description='Text in one locale, e.g. {locale: "zh-Hans", value: "拿铁"}.')
class LocalizedStringInput:
    locale: str
    value: str


@strawberry.input(description="Money in integer minor units (fen for CNY).")
class MoneyInput:
    amount: int
    currency: str = "CNY"


@strawberry.input
class SkuOptionInput:
    name: str
    value: str


@strawberry.input
class AttributeInput:
    name: str
    value: str


@strawberry.input(description="A price for a channel, a member tier, or both; optional window.")
class PriceRuleInput:
    price: MoneyInput
    channel: SalesChannel | None = strawberry.field(default=None, description="Null: any.")
    tier: str | None = strawberry.field(
        default=None, description="bronze, silver, gold or platinum; null: any tier."
    )
    start_time: datetime | None = None
    end_time: datetime | None = strawberry.field(default=None, description="Exclusive.")


@strawberry.input
class SkuInput:
    barcode: str
    price: MoneyInput
    id: strawberry.ID | None = strawberry.field(
        default=None, description="Optional: <product id>_s<n> is assigned when omitted."
    )
    options: list[SkuOptionInput] = strawberry.field(default_factory=list)
    price_rules: list[PriceRuleInput] = strawberry.field(default_factory=list)


@strawberry.input(description="A product's content; status is changed by publish/archive.")
class ProductInput:
    title: list[LocalizedStringInput]
    category_id: strawberry.ID
    brand_id: strawberry.ID
    skus: list[SkuInput]
    id: strawberry.ID | None = strawberry.field(
        default=None, description="Optional on create: derived from requestId when omitted."
    )
    spu_code: str = ""
    description: list[LocalizedStringInput] = strawberry.field(default_factory=list)
    image_urls: list[str] = strawberry.field(default_factory=list)
    attributes: list[AttributeInput] = strawberry.field(default_factory=list)


@strawberry.input(description="The whole new content of a product and the etag last read.")
class UpdateProductInput(ProductInput):
    etag: str = strawberry.field(description="Product.etag as last read; a stale one is refused.")


@strawberry.input
class CategoryInput:
    id: strawberry.ID
    name: list[LocalizedStringInput]
    parent_id: strawberry.ID | None = strawberry.field(default=None, description="Null: top.")
    sort_order: int = 0


@strawberry.input
class BrandInput:
    id: strawberry.ID
    name: list[LocalizedStringInput]


def _text(values: list[LocalizedStringInput]) -> common_pb2.LocalizedText:
    return common_pb2.LocalizedText(values={v.locale: v.value for v in values})


def _money(value: MoneyInput) -> common_pb2.Money:
    return common_pb2.Money(amount=value.amount, currency=value.currency)


def _timestamp(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC))
    return stamp


def _product_proto(value: ProductInput, etag: str = "") -> catalog_pb2.Product:
    return catalog_pb2.Product(
        id=value.id or "",
        spu_code=value.spu_code,
        title=_text(value.title),
        description=_text(value.description),
        category_id=value.category_id,
        brand_id=value.brand_id,
        skus=[
            catalog_pb2.Sku(
                id=sku.id or "",
                barcode=sku.barcode,
                price=_money(sku.price),
                options=[catalog_pb2.SkuOption(name=o.name, value=o.value) for o in sku.options],
                price_rules=[
                    catalog_pb2.PriceRule(
                        channel=(
                            _CHANNEL_TO_PROTO[rule.channel]
                            if rule.channel
                            else common_pb2.CHANNEL_UNSPECIFIED
                        ),
                        tier=rule.tier or "",
                        price=_money(rule.price),
                        start_time=_timestamp(rule.start_time),
                        end_time=_timestamp(rule.end_time),
                    )
                    for rule in sku.price_rules
                ],
            )
            for sku in value.skus
        ],
        image_urls=value.image_urls,
        attributes={a.name: a.value for a in value.attributes},
        etag=etag,
    )


def _failed(error: grpc.aio.AioRpcError) -> Exception:
    return from_rpc_error(error, service="catalog", field_names=_WRITE_FIELDS)


@strawberry.type
class CatalogAdminMutation:
    @resolver(
        description="Creates a draft product. A retry with the same requestId and content "
        "returns the product the first call created. Admin only."
    )
    async def create_product(
        self, info: GatewayInfo, input: ProductInput, request_id: str
    ) -> Product:
        authz.require(authz.catalog_write_error(info.context.principal))
        request = catalog_pb2.CreateProductRequest(
            product=_product_proto(input), request_id=request_id
        )
        try:
            reply = await info.context.clients.catalog.CreateProduct(request)
        except grpc.aio.AioRpcError as error:
            raise _failed(error) from None
        return Product.from_proto(reply.product)

    @resolver(description="Replaces a product's content (not its status). Admin only.")
    async def update_product(self, info: GatewayInfo, input: UpdateProductInput) -> Product:
        authz.require(authz.catalog_write_error(info.context.principal))
        request = catalog_pb2.UpdateProductRequest(product=_product_proto(input, input.etag))
        try:
            reply = await info.context.clients.catalog.UpdateProduct(request)
        except grpc.aio.AioRpcError as error:
            raise _failed(error) from None
        return Product.from_proto(reply.product)

    @resolver(description="Makes a product active (browsable, searchable). Admin only.")
    async def publish_product(
        self, info: GatewayInfo, id: strawberry.ID, etag: str | None = None
    ) -> Product:
        authz.require(authz.catalog_write_error(info.context.principal))
        request = catalog_pb2.PublishProductRequest(id=id, etag=etag or "")
        try:
            reply = await info.context.clients.catalog.PublishProduct(request)
        except grpc.aio.AioRpcError as error:
            raise _failed(error) from None
        return Product.from_proto(reply.product)

    @resolver(description="Archives a product: gone from browsing, readable by id. Admin only.")
    async def archive_product(
        self, info: GatewayInfo, id: strawberry.ID, etag: str | None = None
    ) -> Product:
        authz.require(authz.catalog_write_error(info.context.principal))
        request = catalog_pb2.ArchiveProductRequest(id=id, etag=etag or "")
        try:
            reply = await info.context.clients.catalog.ArchiveProduct(request)
        except grpc.aio.AioRpcError as error:
            raise _failed(error) from None
        return Product.from_proto(reply.product)

    @resolver(description="Creates or replaces a category. Admin only.")
    async def upsert_category(self, info: GatewayInfo, input: CategoryInput) -> Category:
        authz.require(authz.catalog_write_error(info.context.principal))
        request = catalog_pb2.UpsertCategoryRequest(
            category=catalog_pb2.Category(
                id=input.id,
                name=_text(input.name),
                parent_id=input.parent_id or "",
                sort_order=input.sort_order,
            )
        )
        try:
            reply = await info.context.clients.catalog.UpsertCategory(request)
        except grpc.aio.AioRpcError as error:
            raise _failed(error) from None
        return Category.from_proto(reply.category)

    @resolver(description="Creates or replaces a brand. Admin only.")
    async def upsert_brand(self, info: GatewayInfo, input: BrandInput) -> Brand:
        authz.require(authz.catalog_write_error(info.context.principal))
        request = catalog_pb2.UpsertBrandRequest(
            brand=catalog_pb2.Brand(id=input.id, name=_text(input.name))
        )
        try:
            reply = await info.context.clients.catalog.UpsertBrand(request)
        except grpc.aio.AioRpcError as error:
            raise _failed(error) from None
        return Brand.from_proto(reply.brand)
