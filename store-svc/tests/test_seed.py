"""The demo stores load fully, a second run changes nothing, and the service serves them."""

from __future__ import annotations

from pymongo import AsyncMongoClient

from retail.common.v1 import common_pb2
from retail.store.v1 import store_pb2, store_pb2_grpc
from retail_kit.mongo import Document
from retail_kit.testing import channel_to, running_service, unique_name
from store_svc import app
from store_svc.demo_data import demo_stores
from store_svc.domain import StoreService
from store_svc.inventory import INVENTORY
from store_svc.repository import ASSOCIATES, GEO_GRID, KIOSK_DEVICES, STORES
from store_svc.seed import seed
from store_svc.settings import StoreSettings


async def test_seed_twice_changes_nothing(mongo_uri: str) -> None:
    database = unique_name("store_seed")
    stores = demo_stores()
    first = await seed(mongo_uri, database)
    pickup = [s for s in stores if StoreService.PICKUP in s.services]
    inserted = {r.collection: (r.inserted, r.updated) for r in first}
    assert inserted[STORES] == (len(stores), 0)
    assert inserted[ASSOCIATES] == (2 * len(pickup), 0)
    assert inserted[KIOSK_DEVICES] == (len(pickup), 0)
    assert inserted[INVENTORY] == (300 * len(pickup), 0)
    assert inserted[GEO_GRID][0] > 0
    client: AsyncMongoClient[Document] = AsyncMongoClient(mongo_uri)
    collections = (STORES, ASSOCIATES, KIOSK_DEVICES, GEO_GRID, INVENTORY)
    try:
        before = {
            c: await client[database][c].find({}).sort("_id", 1).to_list() for c in collections
        }
        second = await seed(mongo_uri, database)
        after = {
            c: await client[database][c].find({}).sort("_id", 1).to_list() for c in collections
        }
    finally:
        await client.close()
    assert all(r.inserted == 0 and r.updated == 0 for r in second), second
    assert before == after and len(after[STORES]) == len(stores)
    assert len(after[GEO_GRID]) > 0 and len(after[INVENTORY]) == 300 * len(pickup)


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


async def test_seeded_staff_kiosks_and_stock_are_served(mongo_uri: str) -> None:
    database = unique_name("store_seed")
    await seed(mongo_uri, database, ["p_0001_s1", "p_0002_s1"])
    settings = StoreSettings(mongodb_uri=mongo_uri, database=database, sweep_interval_seconds=0)
    async with (
        running_service(app.NAME, settings, app.SERVICE_NAMES, app.register, app.on_ready) as host,
        channel_to(host) as channel,
    ):
        stub = store_pb2_grpc.StoreServiceStub(channel)
        staff = await stub.BatchGetAssociates(
            store_pb2.BatchGetAssociatesRequest(ids=["as_st_001_01", "as_st_001_02", "as_x"])
        )
        assert [a.role for a in staff.associates] == [
            store_pb2.ASSOCIATE_ROLE_STORE_MANAGER,
            store_pb2.ASSOCIATE_ROLE_ASSOCIATE,
        ]
        assert list(staff.missing_ids) == ["as_x"]
        kiosks = await stub.BatchGetKioskDevices(
            store_pb2.BatchGetKioskDevicesRequest(ids=["k_st_001_01"])
        )
        assert kiosks.devices[0].store_id == "st_001"
        stock = await stub.BatchGetInventory(
            store_pb2.BatchGetInventoryRequest(store_id="st_001", sku_ids=["p_0001_s1"])
        )
        assert stock.levels[0].on_hand >= 0
        nearby = await stub.NearbyStores(
            store_pb2.NearbyStoresRequest(
                point=common_pb2.GeoPoint(latitude=31.2304, longitude=121.4737), radius_km=5
            )
        )
        assert nearby.stores
        distances = [s.distance_km for s in nearby.stores]
        assert distances == sorted(distances) and distances[-1] <= 5
