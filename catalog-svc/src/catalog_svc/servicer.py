"""CatalogService over gRPC: proto <-> domain and status codes; rules stay in domain/repository."""

from __future__ import annotations

from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp

from catalog_svc.domain import Brand, Category, LocalizedText, Product, ProductStatus
from catalog_svc.repository import CatalogRepository
from retail.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from retail.common.v1 import common_pb2
from retail_kit.errors import Context, not_found, unimplemented
from retail_kit.paging import decode_page_token, encode_page_token, page_size, query_fingerprint
from retail_kit.validation import batch_ids, require_id

_STATUS_TO_PROTO = {
    ProductStatus.DRAFT: catalog_pb2.PRODUCT_STATUS_DRAFT,
    ProductStatus.ACTIVE: catalog_pb2.PRODUCT_STATUS_ACTIVE,
    ProductStatus.ARCHIVED: catalog_pb2.PRODUCT_STATUS_ARCHIVED,
}


def _text(text: LocalizedText) -> common_pb2.LocalizedText:
    return common_pb2.LocalizedText(values=text.values)


def _timestamp(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def product_to_proto(product: Product) -> catalog_pb2.Product:
    return catalog_pb2.Product(
        id=product.id,
        spu_code=product.spu_code,
        title=_text(product.title),
        description=_text(product.description),
        category_id=product.category_id,
        brand_id=product.brand_id,
        status=_STATUS_TO_PROTO[product.status],
        skus=[
            catalog_pb2.Sku(
                id=sku.id,
                product_id=product.id,
                barcode=sku.barcode,
                price=common_pb2.Money(amount=sku.price.amount, currency=sku.price.currency),
                options=[catalog_pb2.SkuOption(name=o.name, value=o.value) for o in sku.options],
            )
            for sku in product.skus
        ],
        image_urls=product.image_urls,
        attributes=product.attributes,
        create_time=_timestamp(product.create_time),
        update_time=_timestamp(product.update_time),
    )


def category_to_proto(category: Category) -> catalog_pb2.Category:
    return catalog_pb2.Category(
        id=category.id,
        name=_text(category.name),
        parent_id=category.parent_id or "",
        sort_order=category.sort_order,
    )


def brand_to_proto(brand: Brand) -> catalog_pb2.Brand:
    return catalog_pb2.Brand(id=brand.id, name=_text(brand.name))


class CatalogServicer(catalog_pb2_grpc.CatalogServiceServicer):
    def __init__(self, repository: CatalogRepository) -> None:
        self._repository = repository

    async def GetProduct(
        self, request: catalog_pb2.GetProductRequest, context: Context
    ) -> catalog_pb2.GetProductResponse:
        product = await self._repository.get_product(require_id("id", request.id))
        if product is None:
            raise not_found("product", request.id)
        return catalog_pb2.GetProductResponse(product=product_to_proto(product))

    async def BatchGetProducts(
        self, request: catalog_pb2.BatchGetProductsRequest, context: Context
    ) -> catalog_pb2.BatchGetProductsResponse:
        ids = batch_ids("ids", request.ids)
        found = await self._repository.get_products(ids) if ids else {}
        return catalog_pb2.BatchGetProductsResponse(
            products=[product_to_proto(found[i]) for i in ids if i in found],
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
        products = await self._repository.list_products(
            limit=size + 1, after_id=after_id, category_id=request.category_id or None
        )
        page, more = products[:size], len(products) > size
        return catalog_pb2.ListProductsResponse(
            products=[product_to_proto(p) for p in page],
            next_page_token=encode_page_token(fingerprint, page[-1].id) if more else "",
            cursors=[encode_page_token(fingerprint, p.id) for p in page],
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
        raise unimplemented("BatchGetSkus")

    async def GetProductByBarcode(
        self, request: catalog_pb2.GetProductByBarcodeRequest, context: Context
    ) -> catalog_pb2.GetProductByBarcodeResponse:
        raise unimplemented("GetProductByBarcode")

    async def SearchProducts(
        self, request: catalog_pb2.SearchProductsRequest, context: Context
    ) -> catalog_pb2.SearchProductsResponse:
        raise unimplemented("SearchProducts")

    async def QuotePrices(
        self, request: catalog_pb2.QuotePricesRequest, context: Context
    ) -> catalog_pb2.QuotePricesResponse:
        raise unimplemented("QuotePrices")
