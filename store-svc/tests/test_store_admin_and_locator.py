"""CreateStore / UpdateStore validation and NearbyStores over real gRPC and the database."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import grpc
import pytest

from retail.common.v1 import common_pb2
from retail.store.v1 import store_pb2
from retail_kit.errors import RpcErrorDetails
from store_svc.repository import GEO_GRID, STORES

from .conftest import Service, store_message

_numbers = itertools.count(1)
CENTRE = (31.2304, 121.4737)  # People's Square


def next_ids() -> tuple[str, str]:
    number = next(_numbers)
    return f"st_adm_{number:03d}", f"ADM{number:03d}"


async def failure(call: object) -> RpcErrorDetails:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    return RpcErrorDetails.from_rpc_error(caught.value)


async def test_create_update_and_move_a_store(service: Service) -> None:
    store_id, code = next_ids()
    message = store_message(store_id, code, latitude=31.50, longitude=120.30)
    message.special_hours.add(date="2025-10-01").intervals.add(opens="12:00", closes="18:00")
    message.special_hours.add(date="2025-10-02")
    created = await service.stub.CreateStore(store_pb2.CreateStoreRequest(store=message))
    assert created.store.id == store_id
    got = await service.stub.GetStore(store_pb2.GetStoreRequest(id=store_id))
    assert got.store == created.store
    assert [d.date for d in got.store.special_hours] == ["2025-10-01", "2025-10-02"]
    near = store_pb2.NearbyStoresRequest(
        point=common_pb2.GeoPoint(latitude=31.50, longitude=120.30), radius_km=1
    )
    assert [s.store.id for s in (await service.stub.NearbyStores(near)).stores] == [store_id]
    # Moving the store moves it in the grid.
    message.location.latitude, message.location.longitude = 31.60, 120.60
    await service.stub.UpdateStore(store_pb2.UpdateStoreRequest(store=message))
    assert [s.store.id for s in (await service.stub.NearbyStores(near)).stores] == []
    near.point.latitude, near.point.longitude = 31.60, 120.60
    assert [s.store.id for s in (await service.stub.NearbyStores(near)).stores] == [store_id]
    generated = store_message("", next_ids()[1], latitude=31.7, longitude=120.7)
    reply = await service.stub.CreateStore(store_pb2.CreateStoreRequest(store=generated))
    assert reply.store.id.startswith("st_")


async def test_duplicate_code_or_id_is_already_exists(service: Service) -> None:
    store_id, code = next_ids()
    await service.stub.CreateStore(
        store_pb2.CreateStoreRequest(store=store_message(store_id, code))
    )
    other_id, other_code = next_ids()
    details = await failure(
        service.stub.CreateStore(store_pb2.CreateStoreRequest(store=store_message(other_id, code)))
    )
    assert details.code == grpc.StatusCode.ALREADY_EXISTS
    assert [v.field for v in details.violations] == ["store.code"]
    assert await service.database[STORES].find_one({"_id": other_id}) is None
    details = await failure(
        service.stub.CreateStore(
            store_pb2.CreateStoreRequest(store=store_message(store_id, other_code))
        )
    )
    assert details.code == grpc.StatusCode.ALREADY_EXISTS
    assert [v.field for v in details.violations] == ["store.id"]
    # Updating another store to a taken code is refused too, and changes nothing.
    await service.stub.CreateStore(
        store_pb2.CreateStoreRequest(store=store_message(other_id, other_code))
    )
    details = await failure(
        service.stub.UpdateStore(store_pb2.UpdateStoreRequest(store=store_message(other_id, code)))
    )
    assert details.code == grpc.StatusCode.ALREADY_EXISTS
    got = await service.stub.GetStore(store_pb2.GetStoreRequest(id=other_id))
    assert got.store.code == other_code
    details = await failure(
        service.stub.UpdateStore(
            store_pb2.UpdateStoreRequest(store=store_message("st_missing", "MISSING"))
        )
    )
    assert details.code == grpc.StatusCode.NOT_FOUND


def _bad(change: str) -> tuple[store_pb2.Store, list[str]]:
    store_id, code = next_ids()
    message = store_message(store_id, code)
    expected: list[str]
    if change == "latitude":
        message.location.latitude = 91
        expected = ["store.location.latitude"]
    elif change == "longitude":
        message.location.longitude = -180.5
        expected = ["store.location.longitude"]
    elif change == "timezone":
        message.timezone = "Asia/Beijing"
        expected = ["store.timezone"]
    elif change == "malformed-hours":
        message.weekly_hours[2].closes = "25:00"
        expected = ["store.weekly_hours[2].closes"]
    elif change == "weekday":
        message.weekly_hours[0].weekday = 8
        expected = ["store.weekly_hours[0].weekday"]
    elif change == "overlap":
        message.weekly_hours.add(weekday=3, opens="21:00", closes="23:00")
        expected = ["store.weekly_hours[7].opens"]
    elif change == "overlap-after-midnight":
        # Tuesday 20:00-02:00 runs into Wednesday's 01:00 opening.
        del message.weekly_hours[:]
        message.weekly_hours.add(weekday=2, opens="20:00", closes="02:00")
        message.weekly_hours.add(weekday=3, opens="01:00", closes="05:00")
        expected = ["store.weekly_hours[1].opens"]
    elif change == "code":
        message.code = "bad code"
        expected = ["store.code"]
    elif change == "special-date":
        message.special_hours.add(date="2025-02-30")
        expected = ["store.special_hours[0].date"]
    else:
        message.type = store_pb2.STORE_TYPE_UNSPECIFIED
        message.pickup_preparation_minutes = -5
        expected = ["store.type", "store.pickup_preparation_minutes"]
    return message, expected


@pytest.mark.parametrize(
    "change",
    [
        "latitude",
        "longitude",
        "timezone",
        "malformed-hours",
        "weekday",
        "overlap",
        "overlap-after-midnight",
        "code",
        "special-date",
        "several",
    ],
)
async def test_bad_store_names_each_field_and_writes_nothing(service: Service, change: str) -> None:
    message, expected = _bad(change)
    grid = service.database[GEO_GRID]
    grid_before = await grid.find({}).sort("_id", 1).to_list()
    details = await failure(service.stub.CreateStore(store_pb2.CreateStoreRequest(store=message)))
    assert details.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in details.violations] == expected
    assert await service.database[STORES].find_one({"_id": message.id}) is None
    assert await grid.find({}).sort("_id", 1).to_list() == grid_before


async def test_hours_crossing_midnight_are_accepted(service: Service) -> None:
    store_id, code = next_ids()
    message = store_message(store_id, code, hours=tuple((d, "18:00", "03:00") for d in range(1, 8)))
    reply = await service.stub.CreateStore(store_pb2.CreateStoreRequest(store=message))
    assert reply.store.weekly_hours[0].closes == "03:00"


async def _stock(service: Service, store_id: str, sku_id: str, quantity: int) -> None:
    await service.stub.AdjustInventory(
        store_pb2.AdjustInventoryRequest(
            store_id=store_id,
            sku_id=sku_id,
            delta=quantity,
            reason=store_pb2.ADJUSTMENT_REASON_RECEIVE,
            actor_id="as_1",
            idempotency_key=f"loc-{store_id}-{sku_id}",
        )
    )


async def test_nearby_orders_by_distance_with_stock_open_now_and_ready_by(
    service: Service,
) -> None:
    # A cluster far from the other tests' stores: around (30.0, 119.0).
    base_lat, base_lng = 30.0, 119.0
    ids = []
    for n, offset_km in enumerate((3.0, 1.0, 2.0, 8.0, 30.0)):
        store_id, code = next_ids()
        ids.append(store_id)
        all_day = tuple((d, "00:00", "00:00") for d in range(1, 8))
        message = store_message(
            store_id,
            code,
            latitude=base_lat + offset_km / 111.2,
            longitude=base_lng,
            hours=all_day if n != 2 else ((1, "03:00", "03:01"),),
        )
        await service.stub.CreateStore(store_pb2.CreateStoreRequest(store=message))
    point = common_pb2.GeoPoint(latitude=base_lat, longitude=base_lng)
    reply = await service.stub.NearbyStores(
        store_pb2.NearbyStoresRequest(point=point, radius_km=10, limit=10)
    )
    assert [s.store.id for s in reply.stores] == [ids[1], ids[2], ids[0], ids[3]]
    assert [round(s.distance_km) for s in reply.stores] == [1, 2, 3, 8]
    first = reply.stores[0]
    assert first.open_now
    now = datetime.now(UTC)
    ready = first.ready_by_time.ToDatetime(tzinfo=UTC)
    assert 29 * 60 <= (ready - now).total_seconds() <= 31 * 60
    # open_now drops the store that is almost never open.
    reply = await service.stub.NearbyStores(
        store_pb2.NearbyStoresRequest(point=point, radius_km=10, open_now=True)
    )
    assert ids[2] not in [s.store.id for s in reply.stores]
    # SKU filter: only stores where every SKU has enough available.
    await _stock(service, ids[0], "p_0700_s1", 5)
    await _stock(service, ids[0], "p_0701_s1", 1)
    await _stock(service, ids[3], "p_0700_s1", 9)
    await _stock(service, ids[3], "p_0701_s1", 9)
    await _stock(service, ids[1], "p_0700_s1", 9)
    reply = await service.stub.NearbyStores(
        store_pb2.NearbyStoresRequest(point=point, radius_km=10, sku_ids=["p_0700_s1", "p_0701_s1"])
    )
    assert [s.store.id for s in reply.stores] == [ids[0], ids[3]]
    assert [(a.sku_id, a.available) for a in reply.stores[0].availability] == [
        ("p_0700_s1", 5),
        ("p_0701_s1", 1),
    ]
    reply = await service.stub.NearbyStores(
        store_pb2.NearbyStoresRequest(
            point=point, radius_km=10, sku_ids=["p_0700_s1", "p_0701_s1"], min_available=2
        )
    )
    assert [s.store.id for s in reply.stores] == [ids[3]]
    reply = await service.stub.NearbyStores(
        store_pb2.NearbyStoresRequest(point=point, radius_km=50, limit=2)
    )
    assert [s.store.id for s in reply.stores] == [ids[1], ids[2]]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"radius_km": -1.0}, "radius_km"),
        ({"radius_km": 101.0}, "radius_km"),
        ({"limit": 51}, "limit"),
        ({"limit": -1}, "limit"),
        ({"sku_ids": ["bad sku"]}, "sku_ids[0]"),
        ({"point": common_pb2.GeoPoint(latitude=-91, longitude=0)}, "point.latitude"),
        ({"point": common_pb2.GeoPoint(latitude=0, longitude=181)}, "point.longitude"),
        ({"point": None}, "point"),
    ],
)
async def test_bad_nearby_requests_name_the_field(
    service: Service, fields: dict[str, object], field: str
) -> None:
    request = store_pb2.NearbyStoresRequest(
        point=common_pb2.GeoPoint(latitude=CENTRE[0], longitude=CENTRE[1]), radius_km=5
    )
    for key, value in fields.items():
        if value is None:
            request.ClearField(key)  # type: ignore[arg-type]
        elif key == "point":
            request.point.CopyFrom(value)  # type: ignore[arg-type]
        elif key == "sku_ids":
            request.sku_ids.extend(value)  # type: ignore[arg-type]
        else:
            setattr(request, key, value)
    details = await failure(service.stub.NearbyStores(request))
    assert details.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in details.violations] == [field]


async def test_associates_and_kiosks(service: Service) -> None:
    store_id, code = next_ids()
    await service.stub.CreateStore(
        store_pb2.CreateStoreRequest(store=store_message(store_id, code))
    )
    created = await service.stub.CreateAssociate(
        store_pb2.CreateAssociateRequest(
            associate=store_pb2.Associate(
                store_id=store_id, display_name="王芳", role=store_pb2.ASSOCIATE_ROLE_ASSOCIATE
            )
        )
    )
    device = await service.stub.RegisterKioskDevice(
        store_pb2.RegisterKioskDeviceRequest(
            device=store_pb2.KioskDevice(id=f"k_{store_id}_01", store_id=store_id, label="入口")
        )
    )
    staff = await service.stub.BatchGetAssociates(
        store_pb2.BatchGetAssociatesRequest(ids=[created.associate.id])
    )
    assert staff.associates[0].display_name == "王芳"
    kiosks = await service.stub.BatchGetKioskDevices(
        store_pb2.BatchGetKioskDevicesRequest(ids=[device.device.id, "k_none"])
    )
    assert [k.label for k in kiosks.devices] == ["入口"] and list(kiosks.missing_ids) == ["k_none"]
    again = await failure(
        service.stub.RegisterKioskDevice(
            store_pb2.RegisterKioskDeviceRequest(
                device=store_pb2.KioskDevice(id=f"k_{store_id}_01", store_id=store_id)
            )
        )
    )
    assert again.code == grpc.StatusCode.ALREADY_EXISTS
    bad = await failure(
        service.stub.CreateAssociate(
            store_pb2.CreateAssociateRequest(associate=store_pb2.Associate(store_id=store_id))
        )
    )
    assert [v.field for v in bad.violations] == ["associate.display_name", "associate.role"]
    unknown = await failure(
        service.stub.CreateAssociate(
            store_pb2.CreateAssociateRequest(
                associate=store_pb2.Associate(
                    store_id="st_nowhere", display_name="x", role=store_pb2.ASSOCIATE_ROLE_ASSOCIATE
                )
            )
        )
    )
    assert unknown.code == grpc.StatusCode.NOT_FOUND
