"""QuotePrices names each SKU's category and its ancestors, nearest first, so order-svc can
hand member-svc what a category-scoped coupon needs (a scope covers its subtree); the path
follows a category move at once."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from catalog_svc import app
from catalog_svc.demo_data import demo_catalog
from catalog_svc.seed import seed
from catalog_svc.servicer import category_path
from catalog_svc.settings import CatalogSettings
from retail.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from retail.common.v1 import common_pb2
from retail_kit.testing import channel_to, running_service, unique_name

Stub = catalog_pb2_grpc.CatalogServiceStub


def text(zh: str) -> common_pb2.LocalizedText:
    return common_pb2.LocalizedText(values={"zh-Hans": zh})


@pytest.fixture(scope="module")
async def catalog(mongo_uri: str) -> AsyncIterator[Stub]:
    database = unique_name("catalog_quote_categories")
    await seed(mongo_uri, database)
    settings = CatalogSettings(mongodb_uri=mongo_uri, database=database)
    async with (
        running_service(app.NAME, settings, app.SERVICE_NAMES, app.register, app.on_ready) as host,
        channel_to(host) as channel,
    ):
        yield Stub(channel)


def test_category_path_walks_up_to_the_root() -> None:
    parents = {"root": None, "mid": "root", "leaf": "mid", "orphan": "gone", "top": ""}
    assert category_path("leaf", parents) == ["leaf", "mid", "root"]
    assert category_path("root", parents) == ["root"]
    assert category_path("orphan", parents) == ["orphan", "gone"]
    assert category_path("top", parents) == ["top"]
    assert category_path("", parents) == []
    # A cycle (upserts never let one in) still ends.
    assert category_path("a", {"a": "b", "b": "a"}) == ["a", "b"]


async def test_every_demo_quote_names_its_category_and_ancestors(catalog: Stub) -> None:
    demo = demo_catalog()
    parents = {c.id: c.parent_id for c in demo.categories}
    products = demo.products[:40]
    reply = await catalog.QuotePrices(
        catalog_pb2.QuotePricesRequest(
            sku_ids=[p.skus[0].id for p in products], channel=common_pb2.CHANNEL_MINI_PROGRAM
        )
    )
    assert len(reply.quotes) == len(products)
    depths = set()
    for product, quote in zip(products, reply.quotes, strict=True):
        expected = [product.category_id]
        while parents.get(expected[-1]):
            expected.append(parents[expected[-1]] or "")
        assert list(quote.category_ids) == expected
        depths.add(len(expected))
    assert max(depths) >= 2  # the demo tree has sub-categories: ancestors are really listed


async def test_the_path_follows_a_category_move(catalog: Stub) -> None:
    demo = demo_catalog()
    product = demo.products[0]
    sku_id = product.skus[0].id
    request = catalog_pb2.QuotePricesRequest(sku_ids=[sku_id])
    before = list((await catalog.QuotePrices(request)).quotes[0].category_ids)
    assert before[0] == product.category_id

    # A new parent between the product's category and the root it had.
    old_parent = before[1] if len(before) > 1 else ""
    await catalog.UpsertCategory(
        catalog_pb2.UpsertCategoryRequest(
            category=catalog_pb2.Category(id="cat_qc_mid", name=text("中间"), parent_id=old_parent)
        )
    )
    leaf = next(c for c in demo.categories if c.id == product.category_id)
    await catalog.UpsertCategory(
        catalog_pb2.UpsertCategoryRequest(
            category=catalog_pb2.Category(
                id=leaf.id,
                name=common_pb2.LocalizedText(values=dict(leaf.name.values)),
                parent_id="cat_qc_mid",
                sort_order=leaf.sort_order,
            )
        )
    )
    after = list((await catalog.QuotePrices(request)).quotes[0].category_ids)
    assert after == [product.category_id, "cat_qc_mid", *before[1:]]
