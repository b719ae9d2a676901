"""The demo stores load fully, a second run changes nothing, and the service serves them."""

from __future__ import annotations

from pymongo import AsyncMongoClient

from retail.store.v1 import store_pb2, store_pb2_grpc
from retail_kit.mongo import Document
from retail_kit.testing import channel_to, running_service, unique_name
from store_svc import app
from store_svc.demo_data import demo_stores
from store_svc.repository import STORES
from store_svc.seed import seed
from store_svc.settings import StoreSettings


async def test_seed_twice_changes_nothing(mongo_uri: str) -> None:
    database = unique_name("store_seed")
    stores = demo_stores()
    first = await seed(mongo_uri, database)
    assert [(r.collection, r.inserted, r.updated) for r in first] == [(STORES, len(stores), 0)]
    client: AsyncMongoClient[Document] = AsyncMongoClient(mongo_uri)
    try:
        before = await client[database][STORES].find({}).sort("_id", 1).to_list()
        second = await seed(mongo_uri, database)
        after = await client[database][STORES].find({}).sort("_id", 1).to_list()
    finally:
        await client.close()
    assert [(r.inserted, r.updated, r.unchanged) for r in second] == [(0, 0, len(stores))]
    assert before == after and len(after) == len(stores)


async def test_seeded_stores_are_served_in_code_order(mongo_uri: str) -> None:
    database = unique_name("store_seed")
    await seed(mongo_uri, database)
    settings = StoreSettings(mongodb_uri=mongo_uri, database=database)
    async with (
        running_service(app.NAME, settings, app.SERVICE_NAMES, app.register, app.on_ready) as host,
        channel_to(host) as channel,
    ):
        stub = store_pb2_grpc.StoreServiceStub(channel)
        reply = await stub.ListStores(store_pb2.ListStoresRequest(page_size=100))
        expected = sorted(demo_stores(), key=lambda s: (s.code, s.id))
        assert [s.code for s in reply.stores] == [s.code for s in expected]
        first = expected[0]
        got = await stub.GetStore(store_pb2.GetStoreRequest(id=first.id))
        assert dict(got.store.name.values) == first.name
        assert len(got.store.weekly_hours) == len(first.weekly_hours)
