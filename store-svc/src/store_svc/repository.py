"""Store persistence: documents <-> domain objects, the queries and the indexes they need."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from retail_kit.mongo import Document, IndexDeclaration, ensure_indexes, find_by_ids
from store_svc.domain import (
    Address,
    Associate,
    AssociateRole,
    GeoPoint,
    KioskDevice,
    OpeningInterval,
    SpecialHours,
    Store,
    StoreService,
    StoreStatus,
    StoreType,
)
from store_svc.geo import cells_of
from store_svc.hours import format_hhmm, parse_hhmm

__all__ = ["ASSOCIATES", "GEO_GRID", "KIOSK_DEVICES", "STORES", "StoreRepository"]

STORES = "stores"
GEO_GRID = "geo_grid"  # _id: cell id -> {stores: [{id, lat, lng}]}; see geo.py
ASSOCIATES = "associates"
KIOSK_DEVICES = "kiosk_devices"
GRID_ATTEMPTS = 5


class DuplicateStore(Exception):
    """A store with the same id or code exists; `field` says which ("id" or "code")."""

    def __init__(self, field: str) -> None:
        super().__init__(field)
        self.field = field


INDEXES = (
    # Store codes are the business key (printed on receipts, used by ERP): one store each.
    # ListStores pages in (code, _id) order.
    IndexDeclaration(STORES, (("code", 1),), "code", unique=True),
)


def store_to_document(store: Store) -> Document:
    return {
        "_id": store.id,
        "code": store.code,
        "name": dict(store.name),
        "type": store.type.value,
        "address": {
            "line1": store.address.line1,
            "district": store.address.district,
            "city": store.address.city,
            "province": store.address.province,
            "postal_code": store.address.postal_code,
            "country": store.address.country,
        },
        "location": {
            "latitude": store.location.latitude,
            "longitude": store.location.longitude,
        },
        "timezone": store.timezone,
        "weekly_hours": [
            {
                "weekday": interval.weekday,
                "opens": format_hhmm(interval.opens),
                "closes": format_hhmm(interval.closes),
            }
            for interval in store.weekly_hours
        ],
        "services": [service.value for service in store.services],
        "pickup_preparation_minutes": store.pickup_preparation_minutes,
        "pickup_hold_days": store.pickup_hold_days,
        "status": store.status.value,
        "phone": store.phone,
        "special_hours": [
            {
                "date": special.date.isoformat(),
                "intervals": [
                    {"opens": format_hhmm(opens), "closes": format_hhmm(closes)}
                    for opens, closes in special.intervals
                ],
            }
            for special in store.special_hours
        ],
    }


def store_from_document(doc: Document) -> Store:
    address = doc["address"]
    return Store(
        id=doc["_id"],
        code=doc["code"],
        name=dict(doc["name"]),
        type=StoreType(doc["type"]),
        address=Address(
            line1=address["line1"],
            district=address["district"],
            city=address["city"],
            province=address["province"],
            postal_code=address["postal_code"],
            country=address.get("country", "CN"),
        ),
        location=GeoPoint(doc["location"]["latitude"], doc["location"]["longitude"]),
        timezone=doc["timezone"],
        weekly_hours=tuple(
            OpeningInterval(
                weekday=interval["weekday"],
                opens=parse_hhmm(interval["opens"]),
                closes=parse_hhmm(interval["closes"]),
            )
            for interval in doc.get("weekly_hours", ())
        ),
        services=tuple(StoreService(service) for service in doc.get("services", ())),
        pickup_preparation_minutes=doc["pickup_preparation_minutes"],
        pickup_hold_days=doc["pickup_hold_days"],
        status=StoreStatus(doc["status"]),
        phone=doc.get("phone", ""),
        special_hours=tuple(
            SpecialHours(
                date=date.fromisoformat(special["date"]),
                intervals=tuple(
                    (parse_hhmm(i["opens"]), parse_hhmm(i["closes"]))
                    for i in special.get("intervals", ())
                ),
            )
            for special in doc.get("special_hours", ())
        ),
    )


def associate_to_document(associate: Associate) -> Document:
    return {
        "_id": associate.id,
        "store_id": associate.store_id,
        "display_name": associate.display_name,
        "role": associate.role.value,
    }


def associate_from_document(doc: Document) -> Associate:
    return Associate(doc["_id"], doc["store_id"], doc["display_name"], AssociateRole(doc["role"]))


def kiosk_to_document(device: KioskDevice) -> Document:
    return {"_id": device.id, "store_id": device.store_id, "label": device.label}


def kiosk_from_document(doc: Document) -> KioskDevice:
    return KioskDevice(doc["_id"], doc["store_id"], doc.get("label", ""))


class StoreRepository:
    """`stores` (unique code, listing), the geo grid, associates and kiosk devices."""

    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self._db = database
        self._grid = database[GEO_GRID]

    @property
    def database(self) -> AsyncDatabase[Document]:
        return self._db

    async def ensure_indexes(self) -> None:
        await ensure_indexes(self._db, INDEXES)

    async def get_store(self, store_id: str) -> Store | None:
        return (await self.get_stores([store_id])).get(store_id)

    async def pickup_hold_days(self, store_id: str) -> int | None:
        """The store's pickup hold days, None when there is no such store: one read by `_id`
        of that one field (ReserveStock needs nothing else of the store)."""
        doc = await self._db[STORES].find_one({"_id": store_id}, {"pickup_hold_days": 1})
        return None if doc is None else int(doc.get("pickup_hold_days") or 0)

    async def get_stores(self, store_ids: Sequence[str]) -> dict[str, Store]:
        found = await find_by_ids(self._db[STORES], store_ids)
        return {store_id: store_from_document(doc) for store_id, doc in found.items()}

    async def create_store(self, store: Store) -> None:
        """Inserts the store, then lists it in its grid cells.

        The unique `code` index and the `_id` refuse duplicates before anything is written.
        Should the process die between the two steps, `reindex_store` (run by UpdateStore
        and by the seed) puts it back into the grid.
        """
        try:
            await self._db[STORES].insert_one(store_to_document(store))
        except DuplicateKeyError:
            exists = await self._db[STORES].find_one({"_id": store.id}, {"_id": 1})
            raise DuplicateStore("id" if exists else "code") from None
        await self._grid_put(store)

    async def update_store(self, store: Store, previous: Store) -> None:
        document = store_to_document(store)
        del document["_id"]
        try:
            # The unique code index decides a clash, also between concurrent updates.
            await self._db[STORES].update_one({"_id": store.id}, {"$set": document})
        except DuplicateKeyError:
            raise DuplicateStore("code") from None
        if previous.location != store.location:
            await self._grid_remove(previous)
        await self._grid_put(store)

    async def reindex_store(self, store: Store) -> None:
        """Puts the store's grid entries back (seed, bigdata, repair); idempotent."""
        await self._grid_put(store)

    async def _grid_put(self, store: Store) -> None:
        """Lists the store in its cells: one atomic update per cell (replace its entry if
        listed, else append it), so concurrent writes of stores sharing a cell lose none."""
        entry = {
            "id": store.id,
            "lat": store.location.latitude,
            "lng": store.location.longitude,
        }
        for cell in cells_of(store.location.latitude, store.location.longitude):
            for _ in range(GRID_ATTEMPTS):
                listed = await self._grid.update_one(
                    {"_id": cell, "stores.id": store.id}, {"$set": {"stores.$": entry}}
                )
                if listed.matched_count == 1:
                    break
                try:
                    # Not listed: append (creating the cell). If a concurrent write listed
                    # the store meanwhile, the filter misses and the upsert's insert
                    # collides with the cell: go round and replace the entry instead.
                    await self._grid.update_one(
                        {"_id": cell, "stores.id": {"$ne": store.id}},
                        {"$push": {"stores": entry}},
                        upsert=True,
                    )
                    break
                except DuplicateKeyError:
                    continue

    async def _grid_remove(self, store: Store) -> None:
        for cell in cells_of(store.location.latitude, store.location.longitude):
            await self._grid.update_one({"_id": cell}, {"$pull": {"stores": {"id": store.id}}})

    async def grid_entries(self, cells: Sequence[str]) -> list[tuple[str, float, float]]:
        """(store id, lat, lng) of every store listed in the cells, read by `_id`."""
        docs = await find_by_ids(self._grid, cells)
        return [
            (entry["id"], float(entry["lat"]), float(entry["lng"]))
            for doc in docs.values()
            for entry in doc.get("stores", ())
        ]

    async def create_associate(self, associate: Associate) -> None:
        await self._db[ASSOCIATES].insert_one(associate_to_document(associate))

    async def get_associates(self, ids: Sequence[str]) -> dict[str, Associate]:
        found = await find_by_ids(self._db[ASSOCIATES], ids)
        return {i: associate_from_document(doc) for i, doc in found.items()}

    async def register_kiosk(self, device: KioskDevice) -> None:
        await self._db[KIOSK_DEVICES].insert_one(kiosk_to_document(device))

    async def get_kiosks(self, ids: Sequence[str]) -> dict[str, KioskDevice]:
        found = await find_by_ids(self._db[KIOSK_DEVICES], ids)
        return {i: kiosk_from_document(doc) for i, doc in found.items()}

    async def list_stores(self, *, limit: int, after: tuple[str, str] | None) -> list[Store]:
        """Every store, whatever its status, in (code, _id) order, `limit` of them after `after`
        (the unique code index serves the order; `_id` keeps the key total)."""
        query: dict[str, Any] = {}
        if after is not None:
            code, store_id = after
            query["$or"] = [{"code": {"$gt": code}}, {"code": code, "_id": {"$gt": store_id}}]
        cursor = self._db[STORES].find(query).sort([("code", 1), ("_id", 1)]).limit(limit)
        return [store_from_document(doc) async for doc in cursor]
