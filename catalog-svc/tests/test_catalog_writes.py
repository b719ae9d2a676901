"""Admin writes over real gRPC on the embedded database: validation, uniqueness, etags,
idempotency, races."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from catalog_svc import app
from catalog_svc.bulk import rebuild_indexes
from catalog_svc.demo_data import ean13_check_digit
from catalog_svc.repository import POSTINGS, CatalogRepository
from catalog_svc.settings import CatalogSettings
from retail.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from retail.common.v1 import common_pb2
from retail_kit.errors import RpcErrorDetails
from retail_kit.server import ServiceHost
from retail_kit.testing import channel_to, running_service, unique_name

Stub = catalog_pb2_grpc.CatalogServiceStub


def ean13(number: int, prefix: str = "692") -> str:
    first12 = f"{prefix}{number:09d}"
    return first12 + ean13_check_digit(first12)


async def rpc_error(call: Awaitable[Any]) -> RpcErrorDetails:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return RpcErrorDetails.from_rpc_error(caught.value)


def text(zh: str, en: str = "") -> common_pb2.LocalizedText:
    return common_pb2.LocalizedText(values={"zh-Hans": zh, **({"en": en} if en else {})})


def stamp(value: datetime) -> Timestamp:
    result = Timestamp()
    result.FromDatetime(value)
    return result


def new_product(
    title: str = "山野 燕麦拿铁",
    barcodes: tuple[str, ...] = (),
    *,
    product_id: str = "",
    prices: tuple[int, ...] = (1590,),
    category_id: str = "cat_rtd",
    brand_id: str = "b_shanye",
) -> catalog_pb2.Product:
    return catalog_pb2.Product(
        id=product_id,
        title=text(title, "Oat Latte"),
        category_id=category_id,
        brand_id=brand_id,
        skus=[
            catalog_pb2.Sku(
                barcode=barcodes[i] if i < len(barcodes) else "",
                price=common_pb2.Money(amount=amount, currency="CNY"),
                options=[catalog_pb2.SkuOption(name="容量", value=f"{250 + 80 * i}ml")],
            )
            for i, amount in enumerate(prices)
        ],
        image_urls=["https://img.example.cn/x.jpg"],
        attributes={"storage": "冷藏"},
    )


class Catalog:
    def __init__(self, stub: Stub, host: ServiceHost) -> None:
        self.stub = stub
        self.host = host
        self.numbers = iter(range(1, 10**6))

    def barcode(self) -> str:
        return ean13(next(self.numbers))

    async def create(
        self, product: catalog_pb2.Product, request_id: str = ""
    ) -> catalog_pb2.Product:
        request_id = request_id or f"req-{next(self.numbers)}"
        reply = await self.stub.CreateProduct(
            catalog_pb2.CreateProductRequest(product=product, request_id=request_id)
        )
        return reply.product

    async def publish(self, product_id: str) -> catalog_pb2.Product:
        reply = await self.stub.PublishProduct(catalog_pb2.PublishProductRequest(id=product_id))
        return reply.product

    async def search_ids(self, query: str, **filters: Any) -> list[str]:
        reply = await self.stub.SearchProducts(
            catalog_pb2.SearchProductsRequest(query=query, page_size=100, **filters)
        )
        return [p.id for p in reply.products]

    async def barcode_owner(self, barcode: str) -> str | None:
        try:
            reply = await self.stub.GetProductByBarcode(
                catalog_pb2.GetProductByBarcodeRequest(barcode=barcode)
            )
        except grpc.aio.AioRpcError as error:
            assert error.code() == grpc.StatusCode.NOT_FOUND
            return None
        return reply.product.id


@pytest.fixture(scope="module")
async def catalog(mongo_uri: str) -> AsyncIterator[Catalog]:
    settings = CatalogSettings(mongodb_uri=mongo_uri, database=unique_name("catalog_writes"))
    async with (
        running_service(app.NAME, settings, app.SERVICE_NAMES, app.register, app.on_ready) as host,
        channel_to(host) as channel,
    ):
        stub = Stub(channel)
        for category in (
            catalog_pb2.Category(id="cat_drinks", name=text("饮品", "Drinks")),
            catalog_pb2.Category(id="cat_coffee", name=text("咖啡"), parent_id="cat_drinks"),
            catalog_pb2.Category(id="cat_rtd", name=text("即饮咖啡"), parent_id="cat_coffee"),
            catalog_pb2.Category(id="cat_tea", name=text("茶"), parent_id="cat_drinks"),
        ):
            await stub.UpsertCategory(catalog_pb2.UpsertCategoryRequest(category=category))
        for brand_id, name in (("b_shanye", "山野"), ("b_xiaolu", "小鹿")):
            await stub.UpsertBrand(
                catalog_pb2.UpsertBrandRequest(
                    brand=catalog_pb2.Brand(id=brand_id, name=text(name))
                )
            )
        yield Catalog(stub, host)


# --------------------------------------------------------------------------- categories, brands


async def test_categories_form_a_tree(catalog: Catalog) -> None:
    reply = await catalog.stub.ListCategories(catalog_pb2.ListCategoriesRequest())
    parents = {c.id: c.parent_id for c in reply.categories}
    assert parents == {
        "cat_drinks": "",
        "cat_coffee": "cat_drinks",
        "cat_rtd": "cat_coffee",
        "cat_tea": "cat_drinks",
    }


@pytest.mark.parametrize(
    ("category", "field"),
    [
        (
            catalog_pb2.Category(id="cat_x", name=text("X"), parent_id="cat_nowhere"),
            "category.parent_id",
        ),
        # cat_drinks under its own grandchild: a cycle.
        (
            catalog_pb2.Category(id="cat_drinks", name=text("饮品"), parent_id="cat_rtd"),
            "category.parent_id",
        ),
        (
            catalog_pb2.Category(id="cat_tea", name=text("茶"), parent_id="cat_tea"),
            "category.parent_id",
        ),
        (catalog_pb2.Category(id="cat_y", name=text("")), "category.name.values[zh-Hans]"),
        (catalog_pb2.Category(id="bad id", name=text("Y")), "category.id"),
    ],
)
async def test_bad_categories_are_refused_and_change_nothing(
    catalog: Catalog, category: catalog_pb2.Category, field: str
) -> None:
    before = await catalog.stub.ListCategories(catalog_pb2.ListCategoriesRequest())
    error = await rpc_error(
        catalog.stub.UpsertCategory(catalog_pb2.UpsertCategoryRequest(category=category))
    )
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in error.violations] == [field]
    after = await catalog.stub.ListCategories(catalog_pb2.ListCategoriesRequest())
    assert after == before


async def test_brand_upsert_is_idempotent(catalog: Catalog) -> None:
    brand = catalog_pb2.Brand(id="b_new", name=text("新品牌", "New Brand"))
    for _ in range(2):
        await catalog.stub.UpsertBrand(catalog_pb2.UpsertBrandRequest(brand=brand))
    reply = await catalog.stub.BatchGetBrands(catalog_pb2.BatchGetBrandsRequest(ids=["b_new"]))
    assert list(reply.brands) == [brand]


# --------------------------------------------------------------------------- products


async def test_create_returns_a_draft_with_ids_etag_and_claims(catalog: Catalog) -> None:
    codes = (catalog.barcode(), catalog.barcode())
    created = await catalog.create(new_product(barcodes=codes, prices=(1590, 1990)))
    assert created.id.startswith("p_")
    assert created.status == catalog_pb2.PRODUCT_STATUS_DRAFT
    assert created.etag
    assert [s.id for s in created.skus] == [f"{created.id}_s1", f"{created.id}_s2"]
    assert [s.product_id for s in created.skus] == [created.id] * 2
    read = await catalog.stub.GetProduct(catalog_pb2.GetProductRequest(id=created.id))
    assert read.product == created
    by_code = await catalog.stub.GetProductByBarcode(
        catalog_pb2.GetProductByBarcodeRequest(barcode=codes[1])
    )
    assert (by_code.product.id, by_code.sku_id) == (created.id, f"{created.id}_s2")
    skus = await catalog.stub.BatchGetSkus(
        catalog_pb2.BatchGetSkusRequest(ids=[f"{created.id}_s2", "nope_s1", f"{created.id}_s1"])
    )
    assert [s.id for s in skus.skus] == [f"{created.id}_s2", f"{created.id}_s1"]
    assert [s.price.amount for s in skus.skus] == [1990, 1590]
    assert list(skus.missing_ids) == ["nope_s1"]
    # A draft is neither listed nor found.
    assert created.id not in await catalog.search_ids("燕麦拿铁")


async def test_create_is_idempotent_by_request_id(catalog: Catalog) -> None:
    product = new_product(barcodes=(catalog.barcode(),))
    first = await catalog.create(product, "retry-me")
    again = await catalog.create(product, "retry-me")
    assert again == first
    other = new_product("别的东西", barcodes=(catalog.barcode(),))
    error = await rpc_error(catalog.create(other, "retry-me"))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.reason == "IDEMPOTENCY_KEY_REUSED"
    assert [v.field for v in error.violations] == ["request_id"]
    assert await catalog.barcode_owner(other.skus[0].barcode) is None


def _with(product: catalog_pb2.Product, change: Any) -> catalog_pb2.Product:
    copy = catalog_pb2.Product()
    copy.CopyFrom(product)
    change(copy)
    return copy


def _window(rule: catalog_pb2.PriceRule, start: datetime, end: datetime) -> None:
    rule.start_time.CopyFrom(stamp(start))
    rule.end_time.CopyFrom(stamp(end))


def _bad_rule(p: catalog_pb2.Product) -> None:
    rule = p.skus[0].price_rules.add(
        tier="gold", price=common_pb2.Money(amount=900, currency="CNY")
    )
    _window(rule, datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC))


BAD_PRODUCTS = [
    (
        "negative price",
        lambda p: setattr(p.skus[0].price, "amount", -100),
        "product.skus[0].price.amount",
    ),
    ("zero price", lambda p: setattr(p.skus[0].price, "amount", 0), "product.skus[0].price.amount"),
    (
        "bad check digit",
        lambda p: setattr(
            p.skus[1],
            "barcode",
            p.skus[1].barcode[:-1] + str((int(p.skus[1].barcode[-1]) + 1) % 10),
        ),
        "product.skus[1].barcode",
    ),
    (
        "same barcode twice",
        lambda p: setattr(p.skus[1], "barcode", p.skus[0].barcode),
        "product.skus[1].barcode",
    ),
    ("no title", lambda p: p.title.values.pop("zh-Hans"), "product.title.values[zh-Hans]"),
    ("no skus", lambda p: p.ClearField("skus"), "product.skus"),
    ("inverted window", _bad_rule, "product.skus[0].price_rules[0].end_time"),
    (
        "negative rule price",
        lambda p: p.skus[0].price_rules.add(
            channel=common_pb2.CHANNEL_APP, price=common_pb2.Money(amount=-1)
        ),
        "product.skus[0].price_rules[0].price.amount",
    ),
    (
        "unknown tier",
        lambda p: p.skus[0].price_rules.add(tier="diamond", price=common_pb2.Money(amount=1)),
        "product.skus[0].price_rules[0].tier",
    ),
    ("unknown category", lambda p: setattr(p, "category_id", "cat_nowhere"), "product.category_id"),
    ("unknown brand", lambda p: setattr(p, "brand_id", "b_nobody"), "product.brand_id"),
]


@pytest.mark.parametrize(
    ("case", "change", "field"), BAD_PRODUCTS, ids=[c[0] for c in BAD_PRODUCTS]
)
async def test_bad_products_are_refused_naming_the_field_and_change_nothing(
    catalog: Catalog, case: str, change: Any, field: str
) -> None:
    codes = (catalog.barcode(), catalog.barcode())
    product = _with(
        new_product(
            barcodes=codes, prices=(1590, 1990), product_id=f"p_bad_{abs(hash(case)) % 10**6}"
        ),
        change,
    )
    error = await rpc_error(catalog.create(product))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT, error
    assert field in [v.field for v in error.violations], error.violations
    missing = await rpc_error(catalog.stub.GetProduct(catalog_pb2.GetProductRequest(id=product.id)))
    assert missing.code == grpc.StatusCode.NOT_FOUND
    assert [await catalog.barcode_owner(code) for code in codes] == [None, None]


async def test_a_barcode_belongs_to_one_product_and_a_failed_create_releases_its_claims(
    catalog: Catalog,
) -> None:
    taken = catalog.barcode()
    owner = await catalog.create(new_product(barcodes=(taken,)))
    fresh = catalog.barcode()
    # The fresh barcode is claimed first (skus[0]) and must be given back.
    product = new_product(barcodes=(fresh, taken), prices=(1590, 1990), product_id="p_dup")
    error = await rpc_error(catalog.create(product))
    assert error.code == grpc.StatusCode.ALREADY_EXISTS
    assert error.reason == "ALREADY_EXISTS"
    assert [v.field for v in error.violations] == ["product.skus[1].barcode"]
    assert error.metadata["product_id"] == owner.id
    assert await catalog.barcode_owner(fresh) is None
    assert await catalog.barcode_owner(taken) == owner.id
    skus = await catalog.stub.BatchGetSkus(catalog_pb2.BatchGetSkusRequest(ids=["p_dup_s1"]))
    assert list(skus.missing_ids) == ["p_dup_s1"]
    # The UPC-A spelling of an EAN-13 starting with 0 is the same item.
    upc = "036000291452"
    await catalog.create(new_product(barcodes=(upc,)))
    error = await rpc_error(catalog.create(new_product(barcodes=("0" + upc,))))
    assert error.code == grpc.StatusCode.ALREADY_EXISTS


async def test_update_with_a_stale_etag_is_aborted_and_changes_nothing(catalog: Catalog) -> None:
    created = await catalog.create(new_product(barcodes=(catalog.barcode(),)))
    first = _with(created, lambda p: p.title.values.__setitem__("zh-Hans", "山野 摩卡"))
    updated = (
        await catalog.stub.UpdateProduct(catalog_pb2.UpdateProductRequest(product=first))
    ).product
    assert updated.etag != created.etag
    assert updated.title.values["zh-Hans"] == "山野 摩卡"
    # A retry of the same update (its etag is stale now) is answered with the result.
    again = await catalog.stub.UpdateProduct(catalog_pb2.UpdateProductRequest(product=first))
    assert again.product == updated
    stale = _with(created, lambda p: p.title.values.__setitem__("zh-Hans", "山野 美式"))
    error = await rpc_error(
        catalog.stub.UpdateProduct(catalog_pb2.UpdateProductRequest(product=stale))
    )
    assert error.code == grpc.StatusCode.ABORTED
    assert error.reason == "INVALID_STATE"
    assert error.metadata["etag"] == updated.etag
    assert [v.field for v in error.violations] == ["product.etag"]
    read = await catalog.stub.GetProduct(catalog_pb2.GetProductRequest(id=created.id))
    assert read.product == updated
    no_etag = _with(updated, lambda p: p.ClearField("etag"))
    no_etag.title.values["zh-Hans"] = "x"
    error = await rpc_error(
        catalog.stub.UpdateProduct(catalog_pb2.UpdateProductRequest(product=no_etag))
    )
    assert [v.field for v in error.violations] == ["product.etag"]


async def test_update_moves_barcode_claims(catalog: Catalog) -> None:
    old_code, new_code = catalog.barcode(), catalog.barcode()
    created = await catalog.create(new_product(barcodes=(old_code,)))
    changed = _with(created, lambda p: setattr(p.skus[0], "barcode", new_code))
    await catalog.stub.UpdateProduct(catalog_pb2.UpdateProductRequest(product=changed))
    assert await catalog.barcode_owner(old_code) is None
    assert await catalog.barcode_owner(new_code) == created.id
    other = await catalog.create(new_product(barcodes=(old_code,)))
    assert await catalog.barcode_owner(old_code) == other.id


async def test_publish_archive_and_the_search_index_follow_the_product(catalog: Catalog) -> None:
    created = await catalog.create(new_product("小鹿 榛果拿铁", (catalog.barcode(),)))
    published = await catalog.publish(created.id)
    assert published.status == catalog_pb2.PRODUCT_STATUS_ACTIVE
    assert await catalog.publish(created.id) == published  # idempotent
    assert created.id in await catalog.search_ids("榛果")
    assert created.id in await catalog.search_ids("", category_ids=["cat_drinks"])
    assert created.id in await catalog.search_ids("", brand_ids=["b_shanye"])
    # A new title: the old tokens stop matching, the new ones match.
    renamed = _with(published, lambda p: p.title.values.__setitem__("zh-Hans", "小鹿 焦糖玛奇朵"))
    renamed.title.values["en"] = "Caramel Macchiato"
    await catalog.stub.UpdateProduct(catalog_pb2.UpdateProductRequest(product=renamed))
    assert created.id not in await catalog.search_ids("榛果")
    assert created.id in await catalog.search_ids("玛奇朵")
    assert created.id in await catalog.search_ids("macchiato")
    assert created.id not in await catalog.search_ids("oat")
    archived = await catalog.stub.ArchiveProduct(catalog_pb2.ArchiveProductRequest(id=created.id))
    assert archived.product.status == catalog_pb2.PRODUCT_STATUS_ARCHIVED
    assert created.id not in await catalog.search_ids("玛奇朵")
    assert created.id not in await catalog.search_ids("")
    listed = await catalog.stub.ListProducts(catalog_pb2.ListProductsRequest(page_size=100))
    assert created.id not in [p.id for p in listed.products]
    read = await catalog.stub.GetProduct(catalog_pb2.GetProductRequest(id=created.id))
    assert read.product.status == catalog_pb2.PRODUCT_STATUS_ARCHIVED
    error = await rpc_error(
        catalog.stub.PublishProduct(catalog_pb2.PublishProductRequest(id=created.id, etag="r1"))
    )
    assert error.code == grpc.StatusCode.ABORTED


async def test_quote_prices_for_new_rules_and_bad_requests(catalog: Catalog) -> None:
    product = new_product(barcodes=(catalog.barcode(),), prices=(2000,))
    rules = product.skus[0].price_rules
    rules.add(channel=common_pb2.CHANNEL_APP, price=common_pb2.Money(amount=1800, currency="CNY"))
    rules.add(tier="gold", price=common_pb2.Money(amount=1700, currency="CNY"))
    expired = rules.add(
        channel=common_pb2.CHANNEL_POS, price=common_pb2.Money(amount=1000, currency="CNY")
    )
    _window(expired, datetime(2020, 1, 1, tzinfo=UTC), datetime(2020, 2, 1, tzinfo=UTC))
    created = await catalog.create(product)
    sku_id = created.skus[0].id

    async def quote(channel: int, tier: str = "") -> tuple[int, str]:
        reply = await catalog.stub.QuotePrices(
            catalog_pb2.QuotePricesRequest(sku_ids=[sku_id], channel=channel, tier=tier)  # type: ignore[arg-type]
        )
        (q,) = reply.quotes
        assert q.base_price.amount == 2000 and q.product_id == created.id
        return q.unit_price.amount, q.rule

    assert await quote(common_pb2.CHANNEL_MINI_PROGRAM) == (2000, "base")
    assert await quote(common_pb2.CHANNEL_APP) == (1800, "channel:app")
    assert await quote(common_pb2.CHANNEL_APP, "gold") == (1700, "tier:gold")
    assert await quote(common_pb2.CHANNEL_POS) == (2000, "base")
    error = await rpc_error(
        catalog.stub.QuotePrices(catalog_pb2.QuotePricesRequest(sku_ids=[sku_id], tier="diamond"))
    )
    assert [v.field for v in error.violations] == ["tier"]
    error = await rpc_error(
        catalog.stub.QuotePrices(catalog_pb2.QuotePricesRequest(sku_ids=[sku_id, "p_nope_s1"]))
    )
    assert error.code == grpc.StatusCode.NOT_FOUND
    assert [v.field for v in error.violations] == ["sku_ids[1]"]


async def test_bad_barcode_lookup_is_invalid_argument(catalog: Catalog) -> None:
    error = await rpc_error(
        catalog.stub.GetProductByBarcode(
            catalog_pb2.GetProductByBarcodeRequest(barcode="6901234567891")
        )
    )
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in error.violations] == ["barcode"]


# --------------------------------------------------------------------------- concurrency


async def test_concurrent_creates_racing_for_one_barcode_have_one_winner(catalog: Catalog) -> None:
    for round_number in range(3):
        code = catalog.barcode()
        products = [
            new_product(barcodes=(code,), product_id=f"p_race{round_number}_{i}") for i in range(12)
        ]
        results = await asyncio.gather(
            *(catalog.create(p) for p in products), return_exceptions=True
        )
        winners = [r for r in results if isinstance(r, catalog_pb2.Product)]
        losers = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
        assert len(winners) == 1 and len(losers) == 11
        assert {e.code() for e in losers} == {grpc.StatusCode.ALREADY_EXISTS}
        assert await catalog.barcode_owner(code) == winners[0].id
        ids = [p.id for p in products]
        found = await catalog.stub.BatchGetProducts(catalog_pb2.BatchGetProductsRequest(ids=ids))
        assert [p.id for p in found.products] == [winners[0].id]


async def test_concurrent_updates_sharing_a_token_lose_no_posting(catalog: Catalog) -> None:
    products = [
        await catalog.publish((await catalog.create(new_product(f"山野 冷萃{i}号"))).id)
        for i in range(10)
    ]
    renamed = [
        _with(
            p,
            lambda q: q.title.values.__setitem__(
                "zh-Hans", q.title.values["zh-Hans"] + " 桂花限定"
            ),
        )
        for p in products
    ]
    await asyncio.gather(
        *(catalog.stub.UpdateProduct(catalog_pb2.UpdateProductRequest(product=p)) for p in renamed)
    )
    assert sorted(await catalog.search_ids("桂花")) == sorted(p.id for p in products)


async def test_concurrent_moves_that_would_close_a_cycle_never_both_land(
    catalog: Catalog,
) -> None:
    """a under b and b under a, concurrently: each alone is valid, together a cycle. The
    category transaction's shared tree-version write lets exactly one through per round."""
    for round_number in range(5):
        a, b = f"cat_ring{round_number}_a", f"cat_ring{round_number}_b"
        for category_id in (a, b):
            await catalog.stub.UpsertCategory(
                catalog_pb2.UpsertCategoryRequest(
                    category=catalog_pb2.Category(
                        id=category_id, name=text("环"), parent_id="cat_drinks"
                    )
                )
            )
        moves = [
            catalog_pb2.Category(id=a, name=text("环"), parent_id=b),
            catalog_pb2.Category(id=b, name=text("环"), parent_id=a),
        ] * 4
        results = await asyncio.gather(
            *(
                catalog.stub.UpsertCategory(catalog_pb2.UpsertCategoryRequest(category=c))
                for c in moves
            ),
            return_exceptions=True,
        )
        refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
        assert {e.code() for e in refused} <= {grpc.StatusCode.INVALID_ARGUMENT}
        reply = await catalog.stub.ListCategories(catalog_pb2.ListCategoriesRequest())
        parents = {c.id: c.parent_id for c in reply.categories}
        assert not (parents[a] == b and parents[b] == a), parents
        assert refused, "one direction must have been refused"


async def test_concurrent_replays_of_one_create_make_one_product_with_its_claims(
    catalog: Catalog,
) -> None:
    product = new_product(barcodes=(catalog.barcode(),), product_id="p_replayed")
    results = await asyncio.gather(*(catalog.create(product, "replayed-once") for _ in range(10)))
    assert len({r.SerializeToString() for r in results}) == 1
    assert await catalog.barcode_owner(product.skus[0].barcode) == "p_replayed"


async def test_index_built_in_bulk_equals_the_index_the_writes_kept(catalog: Catalog) -> None:
    postings = catalog.host.context.database[POSTINGS]

    async def snapshot() -> dict[str, dict[str, Any]]:
        return {d["_id"]: d["e"] async for d in postings.find({}) if d.get("e")}

    written = await snapshot()
    assert "t:桂花" in written
    await rebuild_indexes(CatalogRepository(catalog.host.context.database))
    assert await snapshot() == written


async def test_malformed_search_page_token_is_refused(catalog: Catalog) -> None:
    error = await rpc_error(
        catalog.stub.SearchProducts(
            catalog_pb2.SearchProductsRequest(query="拿铁", page_token="zzz")
        )
    )
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.reason == "INVALID_PAGE_TOKEN"
    assert [v.field for v in error.violations] == ["page_token"]
