"""Store persistence: documents <-> domain objects, the queries and the indexes they need."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from retail_kit.mongo import Document, IndexDeclaration, ensure_indexes
from store_svc.domain import (
    Address,
    GeoPoint,
    OpeningInterval,
    Store,
    StoreService,
    StoreStatus,
    StoreType,
)
from store_svc.hours import format_hhmm, parse_hhmm

STORES = "stores"

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
    )


class StoreRepository:
    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self._db = database

    async def ensure_indexes(self) -> None:
        await ensure_indexes(self._db, INDEXES)

    async def get_store(self, store_id: str) -> Store | None:
        doc = await self._db[STORES].find_one({"_id": store_id})
        return store_from_document(doc) if doc else None

    async def get_stores(self, store_ids: Sequence[str]) -> dict[str, Store]:
        return {
            doc["_id"]: store_from_document(doc)
            async for doc in self._db[STORES].find({"_id": {"$in": list(store_ids)}})
        }

    async def list_stores(self, *, limit: int, after: tuple[str, str] | None) -> list[Store]:
        """Every store, whatever its status, in (code, _id) order, `limit` of them after `after`.

        `_id` breaks ties so paging stays exact even where the unique code index is not
        enforced (data loaded before the index existed).
        """
        query: dict[str, Any] = {}
        if after is not None:
            code, store_id = after
            query["$or"] = [{"code": {"$gt": code}}, {"code": code, "_id": {"$gt": store_id}}]
        cursor = self._db[STORES].find(query).sort([("code", 1), ("_id", 1)]).limit(limit)
        return [store_from_document(doc) async for doc in cursor]
