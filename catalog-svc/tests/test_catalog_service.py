"""catalog-svc over a real gRPC socket against the embedded database (or MONGODB_URI)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from catalog_svc import app
from catalog_svc.domain import LocalizedText, Money, Product, ProductStatus, Sku
from catalog_svc.repository import PRODUCTS, product_to_document
from catalog_svc.settings import CatalogSettings
from retail.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from retail_kit.errors import RpcErrorDetails
from retail_kit.testing import channel_to, running_service, unique_name


def make_product(number: int, status: ProductStatus = ProductStatus.ACTIVE) -> Product:
    product_id = f"p_{number:04d}"
    return Product(
        id=product_id,
        spu_code=f"SPU{number:04d}",
        title=LocalizedText({"zh-Hans": f"拿铁 {number}", "en": f"Latte {number}"}),
        description=LocalizedText({"zh-Hans": "描述", "en": "description"}),
        category_id="cat_coffee_rtd" if number % 2 else "cat_tea",
        brand_id="br_shanye",
        status=status,
        skus=(Sku(f"{product_id}_s1", f"69{number:011d}", Money(1590 + number)),),
        create_time=datetime(2026, 1, 1, tzinfo=UTC),
        update_time=datetime(2026, 1, 2, tzinfo=UTC),
    )


PRODUCTS_IN_DB = [make_product(n) for n in range(1, 26)] + [
    make_product(26, ProductStatus.ARCHIVED),
    make_product(27, ProductStatus.DRAFT),
]


@pytest.fixture(scope="module")
async def catalog(mongo_uri: str) -> AsyncIterator[catalog_pb2_grpc.CatalogServiceStub]:
    settings = CatalogSettings(mongodb_uri=mongo_uri, database=unique_name("catalog"))
    async with running_service(
        app.NAME, settings, app.SERVICE_NAMES, app.register, app.on_ready
    ) as host:
        await host.context.database[PRODUCTS].insert_many(
            [product_to_document(p) for p in PRODUCTS_IN_DB]
        )
        async with channel_to(host) as channel:
            yield catalog_pb2_grpc.CatalogServiceStub(channel)


async def test_health_reports_serving_for_the_service(mongo_uri: str) -> None:
    settings = CatalogSettings(mongodb_uri=mongo_uri, database=unique_name("catalog"))
    async with (
        running_service(app.NAME, settings, app.SERVICE_NAMES, app.register) as host,
        channel_to(host) as channel,
    ):
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "retail.catalog.v1.CatalogService"):
            reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_get_product_returns_skus_and_prices(
    catalog: catalog_pb2_grpc.CatalogServiceStub,
) -> None:
    reply = await catalog.GetProduct(catalog_pb2.GetProductRequest(id="p_0003"))
    assert reply.product.title.values["zh-Hans"] == "拿铁 3"
    assert reply.product.skus[0].price.amount == 1593
    assert reply.product.skus[0].product_id == "p_0003"
    assert reply.product.create_time.ToDatetime(UTC) == datetime(2026, 1, 1, tzinfo=UTC)


async def test_archived_product_stays_readable_by_id(
    catalog: catalog_pb2_grpc.CatalogServiceStub,
) -> None:
    reply = await catalog.GetProduct(catalog_pb2.GetProductRequest(id="p_0026"))
    assert reply.product.status == catalog_pb2.PRODUCT_STATUS_ARCHIVED


async def test_unknown_product_is_not_found_with_error_info(
    catalog: catalog_pb2_grpc.CatalogServiceStub,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await catalog.GetProduct(catalog_pb2.GetProductRequest(id="p_9999"))
    details = RpcErrorDetails.from_rpc_error(caught.value)
    assert details.code == grpc.StatusCode.NOT_FOUND
    assert details.reason == "NOT_FOUND"
    assert details.metadata == {"entity": "product", "id": "p_9999"}


@pytest.mark.parametrize("bad_id", ["", "p 1", "x" * 200])
async def test_malformed_id_is_invalid_argument_naming_the_field(
    catalog: catalog_pb2_grpc.CatalogServiceStub, bad_id: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await catalog.GetProduct(catalog_pb2.GetProductRequest(id=bad_id))
    details = RpcErrorDetails.from_rpc_error(caught.value)
    assert details.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in details.violations] == ["id"]


async def test_batch_get_keeps_request_order_and_lists_missing(
    catalog: catalog_pb2_grpc.CatalogServiceStub,
) -> None:
    reply = await catalog.BatchGetProducts(
        catalog_pb2.BatchGetProductsRequest(ids=["p_0005", "p_0404", "p_0001", "p_0005"])
    )
    assert [p.id for p in reply.products] == ["p_0005", "p_0001"]
    assert list(reply.missing_ids) == ["p_0404"]


async def test_batch_get_refuses_oversized_batches(
    catalog: catalog_pb2_grpc.CatalogServiceStub,
) -> None:
    ids = [f"p_{n}" for n in range(501)]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await catalog.BatchGetProducts(catalog_pb2.BatchGetProductsRequest(ids=ids))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_list_pages_through_active_products_only(
    catalog: catalog_pb2_grpc.CatalogServiceStub,
) -> None:
    seen: list[str] = []
    token = ""
    while True:
        reply = await catalog.ListProducts(
            catalog_pb2.ListProductsRequest(page_size=10, page_token=token)
        )
        seen.extend(p.id for p in reply.products)
        token = reply.next_page_token
        if not token:
            break
    assert seen == [f"p_{n:04d}" for n in range(1, 26)]


async def test_each_cursor_resumes_after_its_product(
    catalog: catalog_pb2_grpc.CatalogServiceStub,
) -> None:
    first = await catalog.ListProducts(catalog_pb2.ListProductsRequest(page_size=5))
    assert len(first.cursors) == len(first.products) == 5
    assert first.cursors[-1] == first.next_page_token
    resumed = await catalog.ListProducts(
        catalog_pb2.ListProductsRequest(page_size=2, page_token=first.cursors[1])
    )
    assert [p.id for p in resumed.products] == [p.id for p in first.products[2:4]]


async def test_list_filters_by_category(catalog: catalog_pb2_grpc.CatalogServiceStub) -> None:
    reply = await catalog.ListProducts(
        catalog_pb2.ListProductsRequest(page_size=100, category_id="cat_tea")
    )
    assert [p.id for p in reply.products] == [f"p_{n:04d}" for n in range(2, 26, 2)]
    assert reply.next_page_token == ""


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"page_size": 101}, "page_size"),
        ({"page_size": -1}, "page_size"),
        ({"page_token": "not-a-token"}, "page_token"),
    ],
)
async def test_bad_paging_is_invalid_argument(
    catalog: catalog_pb2_grpc.CatalogServiceStub, request_fields: dict[str, object], field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await catalog.ListProducts(catalog_pb2.ListProductsRequest(**request_fields))  # type: ignore[arg-type]
    details = RpcErrorDetails.from_rpc_error(caught.value)
    assert details.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in details.violations] == [field]


async def test_token_from_another_category_is_refused(
    catalog: catalog_pb2_grpc.CatalogServiceStub,
) -> None:
    first = await catalog.ListProducts(catalog_pb2.ListProductsRequest(page_size=2))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await catalog.ListProducts(
            catalog_pb2.ListProductsRequest(
                page_size=2, page_token=first.next_page_token, category_id="cat_tea"
            )
        )
    assert RpcErrorDetails.from_rpc_error(caught.value).reason == "INVALID_PAGE_TOKEN"


async def test_reflection_lets_partners_discover_the_api(mongo_uri: str) -> None:
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
        ProtoReflectionDescriptorDatabase,
    )

    settings = CatalogSettings(mongodb_uri=mongo_uri, database=unique_name("catalog"))
    async with (
        running_service(app.NAME, settings, app.SERVICE_NAMES, app.register) as host,
    ):
        # The reflection client is synchronous: run it off the event loop serving the calls.
        def discover() -> tuple[list[str], list[str]]:
            with grpc.insecure_channel(f"127.0.0.1:{host.port}") as channel:
                database = ProtoReflectionDescriptorDatabase(channel)
                service = database.FindFileContainingSymbol("retail.catalog.v1.CatalogService")
                methods = [m.name for m in service.service[0].method]
                return list(database.get_services()), methods

        services, methods = await asyncio.to_thread(discover)
    assert "retail.catalog.v1.CatalogService" in services
    assert "grpc.health.v1.Health" in services
    assert {"GetProduct", "BatchGetProducts", "ListProducts"} <= set(methods)
