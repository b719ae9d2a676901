"""Search, listing, barcodes and prices over the seeded demo catalog (real gRPC, embedded database).

Every expectation is computed here from demo_data, independently of the index.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from catalog_svc import app
from catalog_svc.demo_data import ANNIVERSARY, demo_catalog
from catalog_svc.domain import Channel, Product, ProductStatus
from catalog_svc.seed import seed
from catalog_svc.settings import CatalogSettings
from retail.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from retail.common.v1 import common_pb2
from retail_kit.errors import RpcErrorDetails
from retail_kit.testing import channel_to, running_service, unique_name

Stub = catalog_pb2_grpc.CatalogServiceStub
DEMO = demo_catalog()
ACTIVE = [p for p in DEMO.products if p.status is ProductStatus.ACTIVE]


@pytest.fixture(scope="module")
async def catalog(mongo_uri: str) -> AsyncIterator[Stub]:
    settings = CatalogSettings(mongodb_uri=mongo_uri, database=unique_name("catalog_search"))
    await seed(mongo_uri, settings.database)
    async with (
        running_service(app.NAME, settings, app.SERVICE_NAMES, app.register, app.on_ready) as host,
        channel_to(host) as channel,
    ):
        yield Stub(channel)


def matches(product: Product, word: str) -> bool:
    """A shopper's expectation: the Chinese word inside a title, or the English word in one."""
    if word.isascii():
        return any(
            word in re.findall(r"[a-z0-9]+", t.lower()) for t in product.title.values.values()
        )
    return any(word in t for t in product.title.values.values())


async def search_all(
    stub: Stub, page_size: int = 7, **fields: Any
) -> tuple[list[str], catalog_pb2.SearchProductsResponse]:
    seen: list[str] = []
    token = ""
    first = None
    while True:
        reply = await stub.SearchProducts(
            catalog_pb2.SearchProductsRequest(page_size=page_size, page_token=token, **fields)
        )
        first = first or reply
        assert reply.total_count == first.total_count
        seen.extend(p.id for p in reply.products)
        token = reply.next_page_token
        if not token:
            return seen, first


def facets(products: list[Product]) -> tuple[dict[str, int], dict[str, int]]:
    return Counter(p.category_id for p in products), Counter(p.brand_id for p in products)


@pytest.mark.parametrize("word", ["咖啡", "拿铁", "latte", "茶", "tea"])
async def test_keyword_search_finds_what_a_shopper_expects_with_facets(
    catalog: Stub, word: str
) -> None:
    expected = [p for p in ACTIVE if matches(p, word)]
    assert len(expected) >= 5, word
    seen, first = await search_all(catalog, query=word)
    # Every hit matches its one token: the order is by product id; each hit seen once.
    assert seen == sorted(p.id for p in expected)
    assert first.total_count == len(expected)
    categories, brands = facets(expected)
    assert {f.value: f.count for f in first.category_facets} == categories
    assert {f.value: f.count for f in first.brand_facets} == brands
    counts = [f.count for f in first.category_facets]
    assert counts == sorted(counts, reverse=True)


async def test_longer_query_ranks_by_matched_tokens(catalog: Stub) -> None:
    reply = await catalog.SearchProducts(
        catalog_pb2.SearchProductsRequest(query="生椰拿铁", page_size=100)
    )
    ids = [p.id for p in reply.products]
    coconut = sorted(p.id for p in ACTIVE if "生椰拿铁" in p.title.values["zh-Hans"])
    assert coconut and ids[: len(coconut)] == coconut
    # 3 bigrams, all needed: only coconut lattes match.
    assert reply.total_count == len(coconut)


def _subtree(root: str) -> set[str]:
    return {c.id for c in DEMO.categories if c.id == root or c.parent_id == root}


async def test_category_filter_covers_the_subtree(catalog: Stub) -> None:
    expected = sorted(p.id for p in ACTIVE if p.category_id in _subtree("cat_coffee"))
    seen, first = await search_all(catalog, page_size=50, category_ids=["cat_coffee"])
    assert seen == expected
    assert first.total_count == len(expected)
    latte = sorted(
        p.id for p in ACTIVE if p.category_id in _subtree("cat_coffee") and matches(p, "拿铁")
    )
    seen, _ = await search_all(catalog, query="拿铁", category_ids=["cat_coffee"])
    assert seen == latte


async def test_brand_and_price_range_filters(catalog: Stub) -> None:
    def cheapest(p: Product) -> int:
        return min(s.price.amount for s in p.skus)

    expected = sorted(p.id for p in ACTIVE if matches(p, "咖啡") and 1000 <= cheapest(p) <= 5000)
    seen, first = await search_all(
        catalog, query="咖啡", price_range=catalog_pb2.PriceRange(min_amount=1000, max_amount=5000)
    )
    assert seen == expected and first.total_count == len(expected)
    expected = sorted(p.id for p in ACTIVE if p.brand_id in {"b_shanye", "b_xiaolu"})
    seen, first = await search_all(catalog, page_size=100, brand_ids=["b_shanye", "b_xiaolu"])
    assert seen == expected
    assert {f.value for f in first.brand_facets} == {"b_shanye", "b_xiaolu"}


async def test_empty_query_lists_every_active_product_once(catalog: Stub) -> None:
    seen, first = await search_all(catalog, page_size=100)
    assert seen == sorted(p.id for p in ACTIVE)
    assert first.total_count == len(ACTIVE)


async def test_archived_and_draft_products_are_not_found_but_readable(catalog: Stub) -> None:
    hidden = [p for p in DEMO.products if p.status is not ProductStatus.ACTIVE]
    seen, _ = await search_all(catalog, page_size=100)
    listed: list[str] = []
    token = ""
    while True:
        reply = await catalog.ListProducts(
            catalog_pb2.ListProductsRequest(page_size=100, page_token=token)
        )
        listed.extend(p.id for p in reply.products)
        token = reply.next_page_token
        if not token:
            break
    assert listed == sorted(p.id for p in ACTIVE)
    for product in hidden:
        assert product.id not in seen
        read = await catalog.GetProduct(catalog_pb2.GetProductRequest(id=product.id))
        assert read.product.status != catalog_pb2.PRODUCT_STATUS_ACTIVE


async def test_list_by_category_serves_from_the_index(catalog: Stub) -> None:
    reply = await catalog.ListProducts(
        catalog_pb2.ListProductsRequest(page_size=100, category_id="cat_coffee_rtd")
    )
    assert [p.id for p in reply.products] == sorted(
        p.id for p in ACTIVE if p.category_id == "cat_coffee_rtd"
    )


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"query": "咖" * 101}, "query"),
        ({"price_range": catalog_pb2.PriceRange(min_amount=-1)}, "price_range.min_amount"),
        (
            {"price_range": catalog_pb2.PriceRange(min_amount=500, max_amount=100)},
            "price_range.max_amount",
        ),
        ({"category_ids": ["bad id"]}, "category_ids[0]"),
        ({"page_size": 500}, "page_size"),
    ],
)
async def test_bad_search_requests_name_the_field(
    catalog: Stub, fields: dict[str, Any], field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await catalog.SearchProducts(catalog_pb2.SearchProductsRequest(**fields))
    details = RpcErrorDetails.from_rpc_error(caught.value)
    assert details.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in details.violations] == [field]


async def test_page_token_of_another_query_is_refused(catalog: Stub) -> None:
    first = await catalog.SearchProducts(
        catalog_pb2.SearchProductsRequest(query="咖啡", page_size=2)
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await catalog.SearchProducts(
            catalog_pb2.SearchProductsRequest(
                query="拿铁", page_size=2, page_token=first.next_page_token
            )
        )
    assert RpcErrorDetails.from_rpc_error(caught.value).reason == "INVALID_PAGE_TOKEN"


async def test_barcode_lookup_finds_the_sku(catalog: Stub) -> None:
    product = DEMO.products[41]
    sku = product.skus[-1]
    reply = await catalog.GetProductByBarcode(
        catalog_pb2.GetProductByBarcodeRequest(barcode=sku.barcode)
    )
    assert (reply.product.id, reply.sku_id) == (product.id, sku.id)


def _demo_with_rule(label: str, window: bool = False) -> tuple[Product, Any]:
    for product in ACTIVE:
        for sku in product.skus:
            for rule in sku.price_rules:
                if rule.label == label and (rule.start is not None) == window:
                    return product, sku
    raise AssertionError(label)


async def test_quote_prices_on_demo_rules(catalog: Stub) -> None:
    product, sku = _demo_with_rule("channel:kiosk", window=True)
    kiosk = next(r for r in sku.price_rules if r.channel is Channel.KIOSK)
    assert (kiosk.start, kiosk.end) == ANNIVERSARY  # open now
    reply = await catalog.QuotePrices(
        catalog_pb2.QuotePricesRequest(sku_ids=[sku.id], channel=common_pb2.CHANNEL_KIOSK)
    )
    (quote,) = reply.quotes
    assert (quote.unit_price.amount, quote.rule) == (kiosk.price.amount, "channel:kiosk")
    assert quote.product_status == catalog_pb2.PRODUCT_STATUS_ACTIVE
    assert quote.product_id == product.id
    # Double 11 2025 is over: that POS price no longer applies.
    _product, sku = _demo_with_rule("channel:pos", window=True)
    reply = await catalog.QuotePrices(
        catalog_pb2.QuotePricesRequest(sku_ids=[sku.id], channel=common_pb2.CHANNEL_POS)
    )
    assert reply.quotes[0].rule == "base"
    assert reply.quotes[0].unit_price.amount == sku.price.amount


async def test_batch_get_skus_keeps_request_order(catalog: Stub) -> None:
    ids = [DEMO.products[5].skus[0].id, "p_9999_s1", DEMO.products[2].skus[0].id]
    reply = await catalog.BatchGetSkus(catalog_pb2.BatchGetSkusRequest(ids=ids))
    assert [(s.id, s.product_id) for s in reply.skus] == [
        (ids[0], DEMO.products[5].id),
        (ids[2], DEMO.products[2].id),
    ]
    assert list(reply.missing_ids) == ["p_9999_s1"]
