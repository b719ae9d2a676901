"""The in-process posting and ranked-result caches over real gRPC and the embedded database:
fresh after writes, coherent across two service instances on one database (replicas), no
posting reads on a hit, and answers equal to a service instance with the caches off.

Reads are counted on the wire: service A runs on a MongoDB client built here with a
CommandListener, so every `find` it sends is seen (nothing of ours is mocked). Service C runs
with `search_cache_entries=0` on the same database: the uncached path every cached answer
must equal.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from pymongo import AsyncMongoClient, monitoring

from catalog_svc import app
from catalog_svc.demo_data import demo_catalog
from catalog_svc.domain import ProductStatus
from catalog_svc.posting_cache import Posting, PostingCache
from catalog_svc.repository import META, POSTINGS, CatalogRepository
from catalog_svc.search import SearchResult
from catalog_svc.seed import seed
from catalog_svc.servicer import CatalogServicer
from catalog_svc.settings import CatalogSettings
from retail.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from retail.common.v1 import common_pb2
from retail_kit.mongo import Document
from retail_kit.server import ServiceContext
from retail_kit.testing import channel_to, running_service, unique_name

Stub = catalog_pb2_grpc.CatalogServiceStub
ACTIVE = [p for p in demo_catalog().products if p.status is ProductStatus.ACTIVE]


class FindCounter(monitoring.CommandListener):
    """Counts `find` commands per collection of one database, as sent on the wire."""

    def __init__(self, database: str) -> None:
        self.database = database
        self.finds: list[str] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.database_name == self.database and event.command_name == "find":
            self.finds.append(str(event.command["find"]))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    @contextmanager
    def counting(self) -> Iterator[dict[str, int]]:
        """{collection: finds} sent inside the block (filled when the block ends)."""
        start = len(self.finds)
        counts: dict[str, int] = {}
        yield counts
        for name in self.finds[start:]:
            counts[name] = counts.get(name, 0) + 1


@dataclass
class Replicas:
    a: Stub  # instrumented client
    b: Stub  # plain app.register, as `python -m catalog_svc` wires it
    c: Stub  # plain app.register with the caches off: the uncached answer
    reads: FindCounter
    cache: PostingCache  # A's
    numbers: Iterator[int] = field(default_factory=lambda: iter(range(1, 10**6)))


@pytest.fixture(scope="module")
async def replicas(mongo_uri: str) -> AsyncIterator[Replicas]:
    settings = CatalogSettings(mongodb_uri=mongo_uri, database=unique_name("catalog_cache"))
    await seed(mongo_uri, settings.database)
    uncached = dataclasses.replace(settings, search_cache_entries=0)
    reads = FindCounter(settings.database)
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        mongo_uri, tz_aware=True, event_listeners=[reads]
    )
    repositories: list[CatalogRepository] = []

    def register_instrumented(server: grpc.aio.Server, context: ServiceContext) -> None:
        repository = app.build_repository(client[settings.database], context.settings)
        repositories.append(repository)
        catalog_pb2_grpc.add_CatalogServiceServicer_to_server(CatalogServicer(repository), server)

    try:
        async with (
            running_service(
                app.NAME, settings, app.SERVICE_NAMES, register_instrumented, app.on_ready
            ) as host_a,
            running_service(
                app.NAME, settings, app.SERVICE_NAMES, app.register, app.on_ready
            ) as host_b,
            running_service(
                app.NAME, uncached, app.SERVICE_NAMES, app.register, app.on_ready
            ) as host_c,
            channel_to(host_a) as channel_a,
            channel_to(host_b) as channel_b,
            channel_to(host_c) as channel_c,
        ):
            [repository] = repositories
            assert repository.cache is not None and repository.cache.max_results > 0
            yield Replicas(
                Stub(channel_a), Stub(channel_b), Stub(channel_c), reads, repository.cache
            )
    finally:
        await client.close()


async def search_ids(stub: Stub, query: str, **fields: Any) -> list[str]:
    reply = await stub.SearchProducts(
        catalog_pb2.SearchProductsRequest(query=query, page_size=100, **fields)
    )
    return [p.id for p in reply.products]


async def listed_ids(stub: Stub, category_id: str = "") -> list[str]:
    ids: list[str] = []
    token = ""
    while True:
        request = catalog_pb2.ListProductsRequest(
            page_size=100, page_token=token, category_id=category_id
        )
        reply = await stub.ListProducts(request)
        ids += [p.id for p in reply.products]
        token = reply.next_page_token
        if not token:
            return ids


async def create_active(replicas: Replicas, stub: Stub, zh: str, en: str) -> catalog_pb2.Product:
    template = ACTIVE[0]
    number = next(replicas.numbers)
    product = catalog_pb2.Product(
        title=common_pb2.LocalizedText(values={"zh-Hans": zh, "en": en}),
        category_id=template.category_id,
        brand_id=template.brand_id,
        skus=[catalog_pb2.Sku(price=common_pb2.Money(amount=1800 + number, currency="CNY"))],
    )
    created = await stub.CreateProduct(
        catalog_pb2.CreateProductRequest(product=product, request_id=f"cache-{unique_name('r')}")
    )
    published = await stub.PublishProduct(catalog_pb2.PublishProductRequest(id=created.product.id))
    return published.product


async def rename(stub: Stub, product: catalog_pb2.Product, zh: str, en: str) -> None:
    changed = catalog_pb2.Product()
    changed.CopyFrom(product)
    changed.title.values["zh-Hans"] = zh
    changed.title.values["en"] = en
    await stub.UpdateProduct(catalog_pb2.UpdateProductRequest(product=changed))


async def test_a_cache_hit_reads_the_revision_and_no_posting(replicas: Replicas) -> None:
    first = await search_ids(replicas.a, "拿铁")
    assert first
    with replicas.reads.counting() as hit:
        assert await search_ids(replicas.a, "拿铁") == first
    assert hit.get(POSTINGS, 0) == 0
    assert hit[META] == 1  # the revision, by _id
    listed = await listed_ids(replicas.a)
    assert len(listed) == len(ACTIVE)
    with replicas.reads.counting() as list_hit:
        assert await listed_ids(replicas.a) == listed
    assert list_hit.get(POSTINGS, 0) == 0
    assert list_hit[META] == 3  # one revision read per page of 100 (index state cached)
    # A multi-token query and an empty query over a category subtree are cached alike.
    await search_ids(replicas.a, "云南咖啡豆")
    await search_ids(replicas.a, "", category_ids=[ACTIVE[0].category_id])
    with replicas.reads.counting() as more:
        await search_ids(replicas.a, "云南咖啡豆")
        await search_ids(replicas.a, "", category_ids=[ACTIVE[0].category_id])
    assert more.get(POSTINGS, 0) == 0


async def test_a_write_drops_the_cache_and_search_sees_the_new_title_at_once(
    replicas: Replicas,
) -> None:
    product = await create_active(replicas, replicas.a, "小鹿 榛果拿铁", "Quokka Latte")
    for _ in range(2):  # the second call is answered from the cache
        assert product.id in await search_ids(replicas.a, "quokka")
        assert product.id in await search_ids(replicas.a, "榛果")
        assert await search_ids(replicas.a, "wombat") == []
    await rename(replicas.a, product, "小鹿 焦糖玛奇朵", "Wombat Macchiato")
    with replicas.reads.counting() as after_write:
        assert product.id not in await search_ids(replicas.a, "quokka")
    assert after_write[POSTINGS] >= 1  # the revision moved: postings are read again
    assert product.id not in await search_ids(replicas.a, "榛果")
    assert product.id in await search_ids(replicas.a, "wombat")
    assert product.id in await search_ids(replicas.a, "玛奇朵")
    assert product.id not in await search_ids(replicas.a, "拿铁")


async def test_two_replicas_on_one_database_see_each_others_writes(replicas: Replicas) -> None:
    product = await create_active(replicas, replicas.a, "袋熊 乌龙", "Numbat Oolong")
    category = product.category_id
    for stub in (replicas.a, replicas.b):  # warm both caches: search, listing, category
        for _ in range(2):
            assert product.id in await search_ids(stub, "numbat")
            assert product.id in await listed_ids(stub)
            assert product.id in await listed_ids(stub, category)
            assert await search_ids(stub, "platypus") == []
    # A write through B is seen by A ...
    await rename(replicas.b, product, "鸭嘴兽 乌龙", "Platypus Oolong")
    for stub in (replicas.a, replicas.b):
        assert await search_ids(stub, "numbat") == []
        assert await search_ids(stub, "platypus") == [product.id]
    # ... and a write through A by B: archived, it leaves search and every listing.
    await replicas.a.ArchiveProduct(catalog_pb2.ArchiveProductRequest(id=product.id))
    for stub in (replicas.b, replicas.a):
        assert await search_ids(stub, "platypus") == []
        assert product.id not in await listed_ids(stub)
        assert product.id not in await listed_ids(stub, category)


# --------------------------------------------------------------------------- ranked results

TEA = next(
    p for p in ACTIVE if p.category_id.startswith("cat_tea") and "茶" in p.title.values["zh-Hans"]
)
QUERIES: list[dict[str, Any]] = [
    {"query": "咖啡"},
    {"query": "拿铁"},
    {"query": "latte"},
    {"query": "云南咖啡豆"},  # 4 tokens, 3 needed: scores differ
    {"query": "", "category_ids": ["cat_coffee"]},  # a subtree: the union of cat: postings
    {"query": "", "brand_ids": [ACTIVE[0].brand_id, ACTIVE[5].brand_id]},
    {"query": "咖啡", "price_range": catalog_pb2.PriceRange(min_amount=1000, max_amount=5000)},
    {"query": "茶", "category_ids": ["cat_tea"], "brand_ids": [TEA.brand_id, ACTIVE[0].brand_id]},
    {"query": ""},  # every active product
]


async def all_pages(
    stub: Stub, page_size: int = 7, **fields: Any
) -> list[catalog_pb2.SearchProductsResponse]:
    """Every page of a search, as answered (products, total, facets, next-page tokens)."""
    pages = []
    token = ""
    while True:
        reply = await stub.SearchProducts(
            catalog_pb2.SearchProductsRequest(page_size=page_size, page_token=token, **fields)
        )
        pages.append(reply)
        token = reply.next_page_token
        if not token:
            return pages


async def first_page(stub: Stub, **fields: Any) -> catalog_pb2.SearchProductsResponse:
    return await stub.SearchProducts(catalog_pb2.SearchProductsRequest(page_size=10, **fields))


def facet_count(reply: catalog_pb2.SearchProductsResponse, category_id: str) -> int:
    return next((f.count for f in reply.category_facets if f.value == category_id), 0)


async def assert_same_as_uncached(replicas: Replicas, **fields: Any) -> None:
    """A's answer, cold or warm, is the uncached service's, page for page."""
    uncached = await all_pages(replicas.c, **fields)
    assert await all_pages(replicas.a, **fields) == uncached, fields
    assert await all_pages(replicas.a, **fields) == uncached, fields
    assert await all_pages(replicas.b, **fields) == uncached, fields


async def test_ranked_results_equal_the_uncached_service_page_for_page(
    replicas: Replicas,
) -> None:
    for fields in QUERIES:
        await assert_same_as_uncached(replicas, **fields)
        pages = await all_pages(replicas.c, **fields)
        assert sum(len(p.products) for p in pages) == pages[0].total_count > 0, fields


async def test_a_repeated_search_is_ranked_once(replicas: Replicas) -> None:
    stats = replicas.cache.stats
    request = catalog_pb2.SearchProductsRequest(
        query="咖啡", brand_ids=[ACTIVE[0].brand_id], page_size=2
    )
    first = await replicas.a.SearchProducts(request)
    assert first.next_page_token
    hits_before = stats.result_hits
    with replicas.reads.counting() as reads:
        again = await replicas.a.SearchProducts(request)
        request.page_token = first.next_page_token
        second_page = await replicas.a.SearchProducts(request)
    assert again == first
    assert second_page.total_count == first.total_count
    assert not {p.id for p in second_page.products} & {p.id for p in first.products}
    assert stats.result_hits == hits_before + 2  # both calls answered from the ranked result
    assert reads.get(POSTINGS, 0) == 0
    assert reads[META] == 2  # the revision, once per call


async def test_publish_update_and_archive_show_in_warm_results_at_once(
    replicas: Replicas,
) -> None:
    coffee = {"query": "咖啡"}
    cheap = {"query": "咖啡", "price_range": catalog_pb2.PriceRange(max_amount=1900)}
    before = await first_page(replicas.a, **coffee)
    before_cheap = await first_page(replicas.a, **cheap)
    template = ACTIVE[0]
    draft = await replicas.b.CreateProduct(
        catalog_pb2.CreateProductRequest(
            product=catalog_pb2.Product(
                title=common_pb2.LocalizedText(values={"zh-Hans": "考拉 冷萃咖啡", "en": "Koala"}),
                category_id="cat_coffee_rtd",
                brand_id=template.brand_id,
                skus=[catalog_pb2.Sku(price=common_pb2.Money(amount=1500, currency="CNY"))],
            ),
            request_id=f"cache-{unique_name('r')}",
        )
    )
    product = draft.product
    # A draft is in no posting: nothing changes, and the warm results are still exact.
    assert await first_page(replicas.a, **coffee) == before
    assert await search_ids(replicas.a, "考拉") == []
    # Published through replica B: A's warm ranked results see it at once.
    published = (
        await replicas.b.PublishProduct(catalog_pb2.PublishProductRequest(id=product.id))
    ).product
    after = await first_page(replicas.a, **coffee)
    assert after.total_count == before.total_count + 1
    assert facet_count(after, "cat_coffee_rtd") == facet_count(before, "cat_coffee_rtd") + 1
    assert await search_ids(replicas.a, "考拉") == [product.id]
    assert (await first_page(replicas.a, **cheap)).total_count == before_cheap.total_count + 1
    for fields in (coffee, cheap, {"query": "考拉"}):
        await assert_same_as_uncached(replicas, **fields)
    # Updated through A: another category and a price above the cheap range.
    changed = catalog_pb2.Product()
    changed.CopyFrom(published)
    changed.category_id = "cat_coffee_beans"
    changed.skus[0].price.amount = 2500
    await replicas.a.UpdateProduct(catalog_pb2.UpdateProductRequest(product=changed))
    updated = await first_page(replicas.a, **coffee)
    assert updated.total_count == before.total_count + 1
    assert facet_count(updated, "cat_coffee_rtd") == facet_count(before, "cat_coffee_rtd")
    assert facet_count(updated, "cat_coffee_beans") == facet_count(before, "cat_coffee_beans") + 1
    assert (await first_page(replicas.a, **cheap)).total_count == before_cheap.total_count
    for fields in (coffee, cheap, {"query": "", "category_ids": ["cat_coffee_beans"]}):
        await assert_same_as_uncached(replicas, **fields)
    # Archived through B: gone from A's warm results.
    await replicas.b.ArchiveProduct(catalog_pb2.ArchiveProductRequest(id=product.id))
    assert await first_page(replicas.a, **coffee) == before
    assert await search_ids(replicas.a, "考拉") == []
    for fields in (coffee, {"query": "考拉"}, {"query": "", "category_ids": ["cat_coffee"]}):
        await assert_same_as_uncached(replicas, **fields)


async def test_a_moved_category_is_searched_under_its_new_parent_at_once(
    replicas: Replicas,
) -> None:
    """Moving a category writes no posting and bumps no revision: the result key holds the
    expanded subtree, read per call, so a warm result of the old tree is never served."""
    category_id = f"cat_{unique_name('moved')}"

    async def place(parent_id: str) -> None:
        await replicas.a.UpsertCategory(
            catalog_pb2.UpsertCategoryRequest(
                category=catalog_pb2.Category(
                    id=category_id,
                    name=common_pb2.LocalizedText(values={"zh-Hans": "新品", "en": "New"}),
                    parent_id=parent_id,
                )
            )
        )

    await place("cat_tea")
    template = ACTIVE[0]
    created = await replicas.a.CreateProduct(
        catalog_pb2.CreateProductRequest(
            product=catalog_pb2.Product(
                title=common_pb2.LocalizedText(values={"zh-Hans": "袋鼠 新品", "en": "Kangaroo"}),
                category_id=category_id,
                brand_id=template.brand_id,
                skus=[catalog_pb2.Sku(price=common_pb2.Money(amount=990, currency="CNY"))],
            ),
            request_id=f"cache-{unique_name('r')}",
        )
    )
    product_id = created.product.id
    await replicas.a.PublishProduct(catalog_pb2.PublishProductRequest(id=product_id))
    under_tea = {"query": "", "category_ids": ["cat_tea"]}
    under_home = {"query": "", "category_ids": ["cat_home"]}
    word_under_tea = {"query": "袋鼠", "category_ids": ["cat_tea"]}  # the subtree as a filter
    for _ in range(2):  # warm
        assert product_id in await search_ids(replicas.a, **under_tea)
        assert product_id not in await search_ids(replicas.a, **under_home)
        assert await search_ids(replicas.a, **word_under_tea) == [product_id]
    await place("cat_home")
    assert product_id not in await search_ids(replicas.a, **under_tea)
    assert product_id in await search_ids(replicas.a, **under_home)
    assert await search_ids(replicas.a, **word_under_tea) == []
    for fields in (under_tea, under_home, word_under_tea):
        await assert_same_as_uncached(replicas, **fields)


# --------------------------------------------------------------------------- the cache alone


def posting(*ids: str) -> Posting:
    return Posting({pid: ["c", "b", 100] for pid in ids})


def test_a_posting_read_before_a_write_is_tagged_with_the_older_revision() -> None:
    cache = PostingCache(max_entries=100)
    # Reader: revision r1, then the posting; a write (posting, then bump to r2) lands between.
    cache.observe("r1")
    stale = posting("p1")  # read after r1, misses the write
    cache.put("r1", "t:x", stale)
    assert cache.get("t:x") is stale  # callers still at r1 started before the bump
    cache.observe("r2")  # the next call reads the bumped revision: everything goes
    assert cache.get("t:x") is None
    # A slower call that read r1 cannot put its pre-write posting under r2.
    cache.put("r1", "t:x", stale)
    assert cache.get("t:x") is None
    assert cache.stats.drops == 1


def test_the_cache_is_an_lru_bounded_by_entries() -> None:
    cache = PostingCache(max_entries=10)
    cache.observe("r")
    cache.put("r", "a", posting("1", "2", "3"))  # weight 4
    cache.put("r", "b", posting("1", "2"))  # weight 3
    assert cache.get("a") is not None  # a is now the most recent
    cache.put("r", "c", posting("1", "2"))  # 10 held: fits
    assert cache.size == 10
    cache.put("r", "d", posting())  # 11: b, the least recent, goes
    assert cache.get("b") is None
    assert [cache.get(k) is not None for k in ("a", "c", "d")] == [True, True, True]
    cache.put("r", "huge", posting(*map(str, range(20))))  # larger than the budget: not kept
    assert cache.get("huge") is None
    assert cache.size <= 10
    assert cache.stats.evictions == 1


def test_listing_ids_after_a_cursor() -> None:
    p = posting("p3", "p1", "p2", "p5")
    assert p.ids_after(None, 2) == ["p1", "p2"]
    assert p.ids_after("p2", 5) == ["p3", "p5"]
    assert p.ids_after("p4", 1) == ["p5"]
    assert p.ids_after("p9", 3) == []


def result(*ids: str) -> SearchResult:
    return SearchResult(list(ids), [1] * len(ids), [("c", len(ids))], [("b", len(ids))])


def test_ranked_results_are_tagged_with_the_revision_and_bounded_by_hits() -> None:
    cache = PostingCache(max_entries=100, max_results=12)
    cache.observe("r1")
    cache.put_result("r1", "q1", result("p1", "p2"))  # weight 2 + 2 facets + 1 = 5
    cache.put_result("r1", "q2", result("p1"))  # weight 4
    assert cache.results_size == 9
    assert cache.get_result("q1") is not None  # q1 is now the most recent
    cache.put_result("r1", "q3", result("p3"))  # 13 > 12: q2, the least recent, goes
    assert cache.get_result("q2") is None
    assert cache.get_result("q1") is not None and cache.get_result("q3") is not None
    assert cache.stats.result_evictions == 1
    cache.put_result("r1", "huge", result(*map(str, range(20))))  # larger than the budget
    assert cache.get_result("huge") is None
    # A new revision drops every result; a slow caller of the old one cannot put it back.
    cache.observe("r2")
    assert cache.get_result("q1") is None and cache.results_size == 0
    cache.put_result("r1", "q1", result("p1"))
    assert cache.get_result("q1") is None
    cache.put_result("r2", "q1", result("p1"))
    assert cache.get_result("q1") is not None
    # Off: nothing kept.
    off = PostingCache(max_entries=100, max_results=0)
    off.observe("r")
    off.put_result("r", "q", result())
    assert off.get_result("q") is None
