"""store-svc over a real gRPC socket against the embedded database (or MONGODB_URI)."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from retail.common.v1 import common_pb2
from retail.store.v1 import store_pb2, store_pb2_grpc
from retail_kit.errors import RpcErrorDetails
from retail_kit.paging import encode_page_token, query_fingerprint
from retail_kit.testing import channel_to, running_service, unique_name
from store_svc import app
from store_svc.domain import (
    Address,
    GeoPoint,
    OpeningInterval,
    Store,
    StoreService,
    StoreStatus,
    StoreType,
)
from store_svc.repository import STORES, store_to_document
from store_svc.settings import StoreSettings

STORE_COUNT = 23
LIST_STORES = query_fingerprint("ListStores")
OTHER_QUERY = query_fingerprint("ListOrders", "store", "st_001")


def make_store(number: int) -> Store:
    return Store(
        id=f"st_{number:03d}",
        # Codes run against ids so ordering by code is visible: st_001 is the last code.
        code=f"SH{STORE_COUNT - number + 1:03d}",
        name={"zh-Hans": f"测试店 {number}", "en": f"Test Store {number}"},
        type=StoreType.FLAGSHIP if number == 1 else StoreType.STANDARD,
        address=Address("南京西路1号", "静安区", "上海市", "上海市", "200040"),
        location=GeoPoint(31.2286 + number / 1000, 121.4476),
        timezone="Asia/Shanghai",
        weekly_hours=tuple(
            OpeningInterval(day, time(10), time(22, 30) if day in (5, 6) else time(22))
            for day in range(1, 8)
        ),
        services=(StoreService.PICKUP, StoreService.SHIP_FROM_STORE),
        pickup_preparation_minutes=30,
        pickup_hold_days=5,
        status=StoreStatus.TEMPORARILY_CLOSED if number == 2 else StoreStatus.OPEN,
        phone=f"021-6000{number:04d}",
    )


STORES_IN_DB = [make_store(n) for n in range(1, STORE_COUNT + 1)]


def settings_for(mongo_uri: str) -> StoreSettings:
    return StoreSettings(mongodb_uri=mongo_uri, database=unique_name("store"))


@pytest.fixture(scope="module")
async def stores(mongo_uri: str) -> AsyncIterator[store_pb2_grpc.StoreServiceStub]:
    async with running_service(
        app.NAME, settings_for(mongo_uri), app.SERVICE_NAMES, app.register, app.on_ready
    ) as host:
        shuffled = list(STORES_IN_DB)
        random.Random(7).shuffle(shuffled)
        await host.context.database[STORES].insert_many([store_to_document(s) for s in shuffled])
        async with channel_to(host) as channel:
            yield store_pb2_grpc.StoreServiceStub(channel)


async def test_health_reports_serving_for_the_service(mongo_uri: str) -> None:
    async with (
        running_service(
            app.NAME, settings_for(mongo_uri), app.SERVICE_NAMES, app.register, app.on_ready
        ) as host,
        channel_to(host) as channel,
    ):
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "retail.store.v1.StoreService"):
            reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_get_store_returns_every_field(stores: store_pb2_grpc.StoreServiceStub) -> None:
    reply = await stores.GetStore(store_pb2.GetStoreRequest(id="st_001"))
    store = reply.store
    assert store.id == "st_001"
    assert store.code == "SH023"
    assert dict(store.name.values) == {"zh-Hans": "测试店 1", "en": "Test Store 1"}
    assert store.type == store_pb2.STORE_TYPE_FLAGSHIP
    assert store.address == store_pb2.Address(
        line1="南京西路1号",
        district="静安区",
        city="上海市",
        province="上海市",
        postal_code="200040",
        country="CN",
    )
    assert store.location == common_pb2.GeoPoint(latitude=31.2296, longitude=121.4476)
    assert store.timezone == "Asia/Shanghai"
    assert [(h.weekday, h.opens, h.closes) for h in store.weekly_hours] == [
        (1, "10:00", "22:00"),
        (2, "10:00", "22:00"),
        (3, "10:00", "22:00"),
        (4, "10:00", "22:00"),
        (5, "10:00", "22:30"),
        (6, "10:00", "22:30"),
        (7, "10:00", "22:00"),
    ]
    assert list(store.services) == [
        store_pb2.STORE_SERVICE_KIND_PICKUP,
        store_pb2.STORE_SERVICE_KIND_SHIP_FROM_STORE,
    ]
    assert store.pickup_preparation_minutes == 30
    assert store.pickup_hold_days == 5
    assert store.status == store_pb2.STORE_STATUS_OPEN
    assert store.phone == "021-60000001"


async def test_temporarily_closed_store_is_readable(
    stores: store_pb2_grpc.StoreServiceStub,
) -> None:
    reply = await stores.GetStore(store_pb2.GetStoreRequest(id="st_002"))
    assert reply.store.status == store_pb2.STORE_STATUS_TEMPORARILY_CLOSED


async def test_unknown_store_is_not_found_with_error_info(
    stores: store_pb2_grpc.StoreServiceStub,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stores.GetStore(store_pb2.GetStoreRequest(id="st_999"))
    details = RpcErrorDetails.from_rpc_error(caught.value)
    assert details.code == grpc.StatusCode.NOT_FOUND
    assert details.reason == "NOT_FOUND"
    assert details.metadata == {"entity": "store", "id": "st_999"}


@pytest.mark.parametrize("bad_id", ["", "st 1", "x" * 200])
async def test_malformed_id_is_invalid_argument_naming_the_field(
    stores: store_pb2_grpc.StoreServiceStub, bad_id: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stores.GetStore(store_pb2.GetStoreRequest(id=bad_id))
    details = RpcErrorDetails.from_rpc_error(caught.value)
    assert details.code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.reason == "INVALID_ARGUMENT"
    assert [v.field for v in details.violations] == ["id"]


async def test_batch_get_keeps_request_order_and_lists_missing(
    stores: store_pb2_grpc.StoreServiceStub,
) -> None:
    reply = await stores.BatchGetStores(
        store_pb2.BatchGetStoresRequest(ids=["st_005", "st_404", "st_001", "st_005"])
    )
    assert [s.id for s in reply.stores] == ["st_005", "st_001"]
    assert list(reply.missing_ids) == ["st_404"]


async def test_batch_get_of_nothing_is_empty(stores: store_pb2_grpc.StoreServiceStub) -> None:
    reply = await stores.BatchGetStores(store_pb2.BatchGetStoresRequest())
    assert list(reply.stores) == [] and list(reply.missing_ids) == []


async def test_batch_get_names_each_bad_id(stores: store_pb2_grpc.StoreServiceStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stores.BatchGetStores(store_pb2.BatchGetStoresRequest(ids=["st_001", "", "a b"]))
    details = RpcErrorDetails.from_rpc_error(caught.value)
    assert details.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in details.violations] == ["ids[1]", "ids[2]"]


async def test_batch_get_refuses_oversized_batches(
    stores: store_pb2_grpc.StoreServiceStub,
) -> None:
    ids = [f"st_{n}" for n in range(501)]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stores.BatchGetStores(store_pb2.BatchGetStoresRequest(ids=ids))
    details = RpcErrorDetails.from_rpc_error(caught.value)
    assert details.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in details.violations] == ["ids"]


async def test_list_pages_through_every_store_once_in_code_order(
    stores: store_pb2_grpc.StoreServiceStub,
) -> None:
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        reply = await stores.ListStores(store_pb2.ListStoresRequest(page_size=5, page_token=token))
        seen.extend(s.code for s in reply.stores)
        pages += 1
        token = reply.next_page_token
        if not token:
            break
    assert seen == [f"SH{n:03d}" for n in range(1, STORE_COUNT + 1)]
    assert pages == 5


async def test_list_includes_stores_of_every_status(
    stores: store_pb2_grpc.StoreServiceStub,
) -> None:
    reply = await stores.ListStores(store_pb2.ListStoresRequest(page_size=100))
    assert len(reply.stores) == STORE_COUNT
    assert reply.next_page_token == ""
    assert store_pb2.STORE_STATUS_TEMPORARILY_CLOSED in {s.status for s in reply.stores}


async def test_list_default_page_size_is_twenty(stores: store_pb2_grpc.StoreServiceStub) -> None:
    reply = await stores.ListStores(store_pb2.ListStoresRequest())
    assert len(reply.stores) == 20
    assert reply.next_page_token


async def test_exact_last_page_has_no_token(stores: store_pb2_grpc.StoreServiceStub) -> None:
    first = await stores.ListStores(store_pb2.ListStoresRequest(page_size=STORE_COUNT - 3))
    last = await stores.ListStores(
        store_pb2.ListStoresRequest(page_size=3, page_token=first.next_page_token)
    )
    assert [s.code for s in last.stores] == ["SH021", "SH022", "SH023"]
    assert last.next_page_token == ""


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"page_size": 101}, "page_size"),
        ({"page_size": -1}, "page_size"),
        ({"page_token": "not-a-token"}, "page_token"),
        ({"page_token": encode_page_token(OTHER_QUERY, ["SH001", "st_023"])}, "page_token"),
        ({"page_token": encode_page_token(LIST_STORES, "SH001")}, "page_token"),
    ],
    ids=["too-big", "negative", "garbage", "other-query", "wrong-key-shape"],
)
async def test_bad_paging_is_invalid_argument(
    stores: store_pb2_grpc.StoreServiceStub, request_fields: dict[str, object], field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stores.ListStores(store_pb2.ListStoresRequest(**request_fields))  # type: ignore[arg-type]
    details = RpcErrorDetails.from_rpc_error(caught.value)
    assert details.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in details.violations] == [field]
    if field == "page_token":
        assert details.reason == "INVALID_PAGE_TOKEN"
