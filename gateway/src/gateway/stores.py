"""Store slice: stores by id (batched) and the store locator.

Distance, open-now, the ready-by promise and availability are decided by store-svc; the
gateway checks only what the proto cannot express (a zero radius or `first` would silently
mean "the default" there) and shapes the answer.
"""

from __future__ import annotations

import enum
import math
from datetime import UTC, datetime

import grpc
import strawberry

from gateway.catalog import resolve_text
from gateway.context import GatewayInfo
from gateway.errors import bad_user_input, from_rpc_error
from gateway.fields import resolver
from retail.common.v1 import common_pb2
from retail.store.v1 import store_pb2
from retail_kit.errors import FieldViolation
from retail_kit.validation import id_violation

_NEARBY_FIELDS = {
    "point": "lat",
    "point.latitude": "lat",
    "point.longitude": "lng",
    "radius_km": "radiusKm",
    "limit": "first",
    "sku_ids": "skuIds",
    "open_now": "openNow",
}
"""NearbyStoresRequest fields as the client named them."""


_NO_SKUS: list[strawberry.ID] = []
"""nearbyStores' default `skuIds: []` (never mutated)."""


@strawberry.enum
class StoreType(enum.Enum):
    FLAGSHIP = "flagship"
    STANDARD = "standard"
    POP_UP = "pop_up"
    WAREHOUSE = "warehouse"


@strawberry.enum(description="What a store offers besides selling at the till.")
class StoreServiceKind(enum.Enum):
    PICKUP = "pickup"
    RETURNS = "returns"
    SHIP_FROM_STORE = "ship_from_store"


@strawberry.enum
class StoreStatus(enum.Enum):
    OPEN = "open"
    TEMPORARILY_CLOSED = "temporarily_closed"
    CLOSED = "closed"


_TYPES = {
    store_pb2.STORE_TYPE_FLAGSHIP: StoreType.FLAGSHIP,
    store_pb2.STORE_TYPE_STANDARD: StoreType.STANDARD,
    store_pb2.STORE_TYPE_POP_UP: StoreType.POP_UP,
    store_pb2.STORE_TYPE_WAREHOUSE: StoreType.WAREHOUSE,
}
_SERVICES = {
    store_pb2.STORE_SERVICE_KIND_PICKUP: StoreServiceKind.PICKUP,
    store_pb2.STORE_SERVICE_KIND_RETURNS: StoreServiceKind.RETURNS,
    store_pb2.STORE_SERVICE_KIND_SHIP_FROM_STORE: StoreServiceKind.SHIP_FROM_STORE,
}
_STATUSES = {
    store_pb2.STORE_STATUS_OPEN: StoreStatus.OPEN,
    store_pb2.STORE_STATUS_TEMPORARILY_CLOSED: StoreStatus.TEMPORARILY_CLOSED,
    store_pb2.STORE_STATUS_CLOSED: StoreStatus.CLOSED,
}


@strawberry.type
class Address:
    line1: str
    district: str
    city: str
    province: str
    postal_code: str
    country: str


@strawberry.type(description="WGS84 coordinates in degrees.")
class GeoPoint:
    lat: float
    lng: float


@strawberry.type(description='Store-local "HH:MM" hours of one ISO weekday (1 = Monday).')
class OpeningInterval:
    weekday: int
    opens: str
    closes: str


@strawberry.type(description='Store-local "HH:MM"; closes <= opens ends the next day.')
class TimeRange:
    opens: str
    closes: str


@strawberry.type(description="Hours of one date that replace the weekly hours.")
class SpecialHours:
    date: str = strawberry.field(description='Store-local "YYYY-MM-DD".')
    intervals: list[TimeRange] = strawberry.field(description="None: closed all day.")


@strawberry.type
class Store:
    id: strawberry.ID
    code: str
    type: StoreType | None
    address: Address
    location: GeoPoint
    timezone: str = strawberry.field(description='IANA zone, e.g. "Asia/Shanghai".')
    weekly_hours: list[OpeningInterval]
    special_hours: list[SpecialHours]
    services: list[StoreServiceKind]
    pickup_preparation_minutes: int
    pickup_hold_days: int
    status: StoreStatus | None
    phone: str
    names: strawberry.Private[dict[str, str]]

    @resolver(description="In `locale` if given, else in the request's locale.")
    def name(self, info: GatewayInfo, locale: str | None = None) -> str:
        return resolve_text(self.names, locale or info.context.locale)

    @classmethod
    def from_proto(cls, store: store_pb2.Store) -> Store:
        address = store.address
        return cls(
            id=strawberry.ID(store.id),
            code=store.code,
            type=_TYPES.get(store.type),
            address=Address(
                line1=address.line1,
                district=address.district,
                city=address.city,
                province=address.province,
                postal_code=address.postal_code,
                country=address.country,
            ),
            location=GeoPoint(lat=store.location.latitude, lng=store.location.longitude),
            timezone=store.timezone,
            weekly_hours=[
                OpeningInterval(weekday=i.weekday, opens=i.opens, closes=i.closes)
                for i in store.weekly_hours
            ],
            special_hours=[
                SpecialHours(
                    date=s.date,
                    intervals=[TimeRange(opens=r.opens, closes=r.closes) for r in s.intervals],
                )
                for s in store.special_hours
            ],
            services=[_SERVICES[s] for s in store.services if s in _SERVICES],
            pickup_preparation_minutes=store.pickup_preparation_minutes,
            pickup_hold_days=store.pickup_hold_days,
            status=_STATUSES.get(store.status),
            phone=store.phone,
            names=dict(store.name.values),
        )


@strawberry.type(description="How many units of a SKU a store can sell or reserve now.")
class SkuAvailability:
    sku_id: strawberry.ID
    available: int


@strawberry.type(description="A store near the given point, as store-svc ranks it.")
class NearbyStore:
    store: Store
    distance_km: float = strawberry.field(description="Great-circle distance.")
    open_now: bool = strawberry.field(description="Open right now in the store's timezone.")
    ready_by: datetime | None = strawberry.field(
        description="When an order placed now can be picked up: now + preparation time, "
        "moved to the next opening if the store is closed."
    )
    availability: list[SkuAvailability] = strawberry.field(
        description="Available units of each requested SKU."
    )


def store_id_or_error(field: str, value: str) -> str:
    if violation := id_violation(field, value):
        raise bad_user_input(violation)
    return value


@strawberry.type
class StoreQuery:
    @resolver(description="A store by id (batched with every other store of the request).")
    async def store(self, info: GatewayInfo, id: strawberry.ID) -> Store | None:
        store_id_or_error("id", id)
        return Store.from_proto(await info.context.loaders.store.load(id))

    @resolver(
        description="Stores within `radiusKm` of the point, nearest first. With `skuIds`, only "
        "stores where every one of them is available; with `openNow`, only open stores."
    )
    async def nearby_stores(
        self,
        info: GatewayInfo,
        lat: float,
        lng: float,
        radius_km: float = 5.0,
        sku_ids: list[strawberry.ID] = _NO_SKUS,
        open_now: bool = False,
        first: int = 10,
    ) -> list[NearbyStore]:
        # Zero means "the default" in the proto; refuse it rather than answer another radius.
        problems = []
        if not (math.isfinite(radius_km) and radius_km > 0):
            problems.append(FieldViolation("radiusKm", f"must be above 0, got {radius_km}"))
        if first < 1:
            problems.append(FieldViolation("first", f"must be at least 1, got {first}"))
        if problems:
            raise bad_user_input(*problems)
        request = store_pb2.NearbyStoresRequest(
            point=common_pb2.GeoPoint(latitude=lat, longitude=lng),
            radius_km=radius_km,
            limit=first,
            open_now=open_now,
            sku_ids=sku_ids,
        )
        try:
            reply = await info.context.clients.store.NearbyStores(request)
        except grpc.aio.AioRpcError as error:
            raise from_rpc_error(error, service="store", field_names=_NEARBY_FIELDS) from None
        info.context.loaders.store.prime_many({s.store.id: s.store for s in reply.stores})
        return [
            NearbyStore(
                store=Store.from_proto(item.store),
                distance_km=item.distance_km,
                open_now=item.open_now,
                ready_by=(
                    item.ready_by_time.ToDatetime(tzinfo=UTC)
                    if item.HasField("ready_by_time")
                    else None
                ),
                availability=[
                    SkuAvailability(sku_id=strawberry.ID(a.sku_id), available=a.available)
                    for a in item.availability
                ],
            )
            for item in reply.stores
        ]
