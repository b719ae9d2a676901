"""Reservations keyed by order id: all-or-nothing reserve, commit, release, expiry sweep.

No transactions: a reservation document (`_id` = order id) records the action under way and
each line's progress; each line moves stock by one atomic single-document change of the
inventory document (see `inventory`), whose operation id ("r|u|c:<order>:<line>") makes a
retried step a no-op. Any call that finds the reservation PENDING (another call crashed
mid-way) first drives it to its end state, so every path converges:

- reserve:  line by line `available >= q` -> reserved += q; the first short line records the
  failure, every line already reserved is released ("u"), status FAILED; else RESERVED.
- commit:   RESERVED -> each line on_hand -= q, reserved -= q ("c") -> COMMITTED.
- release:  RESERVED -> each line reserved -= q ("u") -> RELEASED (`expired` when swept).

On FerretDB all calls for one order are serialized by the write guard's per-order lock,
so concurrent replays of the same order id wait for the first and answer what it decided.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from retail_kit.atomic import DocumentWriteGuard
from retail_kit.errors import ServiceError, not_found
from retail_kit.mongo import Document
from store_svc.domain import (
    InventoryLevel,
    Reservation,
    ReservationFailure,
    ReservationLine,
    ReservationStatus,
)
from store_svc.errors import invalid_state, key_reused, out_of_stock
from store_svc.inventory import Change, InventoryBook
from store_svc.partitioning import EXPIRY, RESERVATIONS

__all__ = ["EXPIRY", "RESERVATIONS", "ReservationBook"]

log = logging.getLogger(__name__)

CURSOR_ID = "cursor"

PENDING = ReservationStatus.PENDING.value


class _Short(Exception):
    def __init__(self, available: int) -> None:
        super().__init__(available)
        self.available = available


def reservation_from_document(doc: Document) -> Reservation:
    failure = doc.get("failure")
    return Reservation(
        order_id=doc["_id"],
        store_id=doc["store_id"],
        lines=tuple(
            ReservationLine(line["sku_id"], int(line["quantity"])) for line in doc["lines"]
        ),
        status=ReservationStatus(doc["status"]),
        hold_until=doc["hold_until"],
        create_time=doc["create_time"],
        update_time=doc["update_time"],
        failure=(
            ReservationFailure(
                failure["sku_id"], int(failure["requested"]), int(failure["available"])
            )
            if failure
            else None
        ),
        expired=bool(doc.get("expired", False)),
    )


def _hour(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%d%H")


def _fingerprint(store_id: str, lines: Sequence[ReservationLine]) -> str:
    payload = [store_id, [[line.sku_id, line.quantity] for line in lines]]
    return hashlib.sha256(json.dumps(payload).encode()).hexdigest()[:24]


class ReservationBook:
    def __init__(
        self, database: AsyncDatabase[Document], guard: DocumentWriteGuard, book: InventoryBook
    ) -> None:
        self._db = database
        self._guard = guard
        self._inventory = book
        self._reservations = book.collections.reservations
        self._expiry = book.collections.expiry
        self._cursor_known: set[str] = set()

    def _collection(self, order_id: str) -> AsyncCollection[Document]:
        return self._reservations.for_key(order_id)

    async def get(self, order_id: str) -> Reservation | None:
        doc = await self._collection(order_id).find_one({"_id": order_id})
        return reservation_from_document(doc) if doc else None

    # -- reserve ---------------------------------------------------------------------------

    async def reserve(
        self,
        order_id: str,
        store_id: str,
        lines: Sequence[ReservationLine],
        hold_until: datetime,
        now: datetime,
        *,
        check_new: Callable[[], Awaitable[None]] | None = None,
    ) -> Reservation:
        """Reserves every line or none. A replay with the same lines answers what the first
        call decided (the same reservation, or the same OUT_OF_STOCK error). `check_new`
        runs only for a new order id, before anything is written (unknown store or SKU)."""
        fingerprint = _fingerprint(store_id, lines)
        collection = self._collection(order_id)
        async with self._guard.hold(collection.name, order_id):
            doc = await collection.find_one({"_id": order_id})
            if doc is not None:
                if doc["fingerprint"] != fingerprint:
                    raise key_reused("order_id", order_id)
                doc = await self._settle(doc, now)
                return self._answer(doc)
            if check_new is not None:
                await check_new()
            doc = {
                "_id": order_id,
                "store_id": store_id,
                "lines": [
                    {"sku_id": line.sku_id, "quantity": line.quantity, "state": "pending"}
                    for line in lines
                ],
                "fingerprint": fingerprint,
                "status": PENDING,
                "action": "reserve",
                "hold_until": hold_until,
                "create_time": now,
                "update_time": now,
                "failure": None,
                "expired": False,
            }
            await collection.insert_one(doc)
            await self._register_expiry(order_id, hold_until, now)
            doc = await self._settle(doc, now)
            return self._answer(doc)

    def _answer(self, doc: Document) -> Reservation:
        reservation = reservation_from_document(doc)
        if reservation.status is ReservationStatus.FAILED and reservation.failure is not None:
            failure = reservation.failure
            raise out_of_stock(
                reservation.store_id, failure.sku_id, failure.requested, failure.available
            )
        return reservation

    async def _settle(self, doc: Document, now: datetime) -> Document:
        """Drives a PENDING reservation to the end of its action; others are returned as is."""
        if doc["status"] != PENDING:
            return doc
        action = doc["action"]
        if action == "reserve":
            if doc.get("failure"):
                return await self._unwind(doc, now, ReservationStatus.FAILED)
            return await self._reserve_lines(doc, now)
        if action == "commit":
            return await self._commit_lines(doc, now)
        return await self._unwind(doc, now, ReservationStatus.RELEASED)

    async def _reserve_lines(self, doc: Document, now: datetime) -> Document:
        order_id, store_id = doc["_id"], doc["store_id"]
        for index, line in enumerate(doc["lines"]):
            if line["state"] != "pending":
                continue
            quantity = int(line["quantity"])

            def take(level: InventoryLevel, _doc: Document, q: int = quantity) -> Change:
                if level.available < q:
                    raise _Short(level.available)
                return Change(
                    InventoryLevel(
                        level.store_id,
                        level.sku_id,
                        level.on_hand,
                        level.reserved + q,
                        level.safety_stock,
                    ),
                    {},
                )

            try:
                await self._inventory.mutate(
                    store_id, line["sku_id"], f"r:{order_id}:{index}", take, create=True
                )
            except _Short as short:
                failure = {
                    "sku_id": line["sku_id"],
                    "requested": quantity,
                    "available": short.available,
                }
                doc = await self._set(doc, {"failure": failure}, now)
                return await self._unwind(doc, now, ReservationStatus.FAILED)
            doc = await self._set(doc, {f"lines.{index}.state": "reserved"}, now)
        return await self._set(doc, {"status": ReservationStatus.RESERVED.value}, now)

    async def _unwind(self, doc: Document, now: datetime, end: ReservationStatus) -> Document:
        """Gives back every line that holds stock, then sets `end` (FAILED or RELEASED)."""
        order_id, store_id = doc["_id"], doc["store_id"]
        for index, line in enumerate(doc["lines"]):
            if line["state"] in ("released", "committed"):
                continue
            reserve_op = f"r:{order_id}:{index}"
            was_reserved = line["state"] == "reserved"
            quantity = int(line["quantity"])

            def give_back(
                level: InventoryLevel,
                inv: Document,
                q: int = quantity,
                known: bool = was_reserved,
                op: str = reserve_op,
            ) -> Change | None:
                # A pending line holds stock only if its reserve step got through.
                if not known and op not in inv.get("ops", ()):
                    return None
                return Change(
                    InventoryLevel(
                        level.store_id,
                        level.sku_id,
                        level.on_hand,
                        level.reserved - q,
                        level.safety_stock,
                    ),
                    {},
                )

            await self._inventory.mutate(
                store_id, line["sku_id"], f"u:{order_id}:{index}", give_back, create=True
            )
            doc = await self._set(doc, {f"lines.{index}.state": "released"}, now)
        return await self._set(doc, {"status": end.value}, now)

    async def _commit_lines(self, doc: Document, now: datetime) -> Document:
        order_id, store_id = doc["_id"], doc["store_id"]
        for index, line in enumerate(doc["lines"]):
            if line["state"] == "committed":
                continue
            quantity = int(line["quantity"])

            def hand_over(level: InventoryLevel, _doc: Document, q: int = quantity) -> Change:
                return Change(
                    InventoryLevel(
                        level.store_id,
                        level.sku_id,
                        level.on_hand - q,
                        level.reserved - q,
                        level.safety_stock,
                    ),
                    {},
                )

            await self._inventory.mutate(
                store_id, line["sku_id"], f"c:{order_id}:{index}", hand_over
            )
            doc = await self._set(doc, {f"lines.{index}.state": "committed"}, now)
        return await self._set(
            doc, {"status": ReservationStatus.COMMITTED.value, "commit_time": now}, now
        )

    async def _set(self, doc: Document, fields: Document, now: datetime) -> Document:
        """Records progress on the reservation (the caller holds the order's lock)."""
        fields = {**fields, "update_time": now}
        await self._collection(doc["_id"]).update_one({"_id": doc["_id"]}, {"$set": fields})
        updated = dict(doc)
        for path, value in fields.items():
            if path.startswith("lines."):
                _, index, key = path.split(".")
                lines = [dict(line) for line in updated["lines"]]
                lines[int(index)][key] = value
                updated["lines"] = lines
            else:
                updated[path] = value
        return updated

    # -- commit / release ------------------------------------------------------------------

    async def commit(self, order_id: str, now: datetime) -> Reservation:
        async with self._guard.hold(self._collection(order_id).name, order_id):
            doc = await self._load(order_id, now)
            status = doc["status"]
            if status == ReservationStatus.COMMITTED.value:
                return reservation_from_document(doc)
            if status != ReservationStatus.RESERVED.value:
                raise invalid_state(
                    f"reservation of order {order_id!r} is {status}; only a reserved one "
                    "can be committed",
                    order_id=order_id,
                    status=status,
                )
            doc = await self._set(doc, {"status": PENDING, "action": "commit"}, now)
            return reservation_from_document(await self._commit_lines(doc, now))

    async def release(self, order_id: str, now: datetime, *, expired: bool = False) -> Reservation:
        async with self._guard.hold(self._collection(order_id).name, order_id):
            doc = await self._load(order_id, now)
            status = doc["status"]
            if status in (ReservationStatus.RELEASED.value, ReservationStatus.FAILED.value):
                return reservation_from_document(doc)
            if status != ReservationStatus.RESERVED.value:
                raise invalid_state(
                    f"reservation of order {order_id!r} is {status} and cannot be released",
                    order_id=order_id,
                    status=status,
                )
            doc = await self._set(
                doc, {"status": PENDING, "action": "release", "expired": expired}, now
            )
            return reservation_from_document(
                await self._unwind(doc, now, ReservationStatus.RELEASED)
            )

    async def _load(self, order_id: str, now: datetime) -> Document:
        doc = await self._collection(order_id).find_one({"_id": order_id})
        if doc is None:
            raise not_found("reservation", order_id)
        return await self._settle(doc, now)

    # -- expiry ----------------------------------------------------------------------------

    async def _register_expiry(self, order_id: str, hold_until: datetime, now: datetime) -> None:
        """Lists the order in the bucket of the hour its hold ends (read by `_id` when swept).

        Buckets and cursor live in the order's expiry partition: every reserve writes one
        bucket, so one bucket for all orders would be a hot document (one lock, rewritten
        whole each time); N partitions give N buckets per hour, each 1/N as long.
        """
        expiry = self._expiry.for_key(order_id)
        if expiry.name not in self._cursor_known:
            await self._guard.update_one(
                expiry,
                {"_id": CURSOR_ID},
                {"$setOnInsert": {"next_hour": _hour(now)}},
                upsert=True,
            )
            # The cursor is never deleted: one upsert per partition and process is enough.
            self._cursor_known.add(expiry.name)
        await self._guard.update_one(
            expiry,
            {"_id": f"h:{_hour(hold_until)}"},
            {"$addToSet": {"orders": order_id}},
            upsert=True,
        )

    async def sweep(self, now: datetime) -> list[str]:
        """One pass of the sweeper over every expiry partition: releases every reservation
        whose hold ended by `now`, and returns their order ids."""
        released: list[str] = []
        for expiry in self._expiry:
            released.extend(await self._sweep_partition(expiry, now))
        return released

    async def _sweep_partition(self, expiry: AsyncCollection[Document], now: datetime) -> list[str]:
        """Reads the partition's hour buckets from its cursor's hour to now's; entries of
        reservations no longer held are dropped, past buckets left empty are deleted, and
        the cursor moves to the oldest bucket still holding something."""
        cursor = await expiry.find_one({"_id": CURSOR_ID})
        if cursor is None:
            return []
        hour = datetime.strptime(cursor["next_hour"], "%Y%m%d%H").replace(tzinfo=UTC)
        current = _hour(now)
        released: list[str] = []
        next_hour: str | None = None
        while _hour(hour) <= current:
            bucket_id = f"h:{_hour(hour)}"
            bucket = await expiry.find_one({"_id": bucket_id})
            remaining = []
            for order_id in (bucket or {}).get("orders", ()):
                if await self._expire(order_id, now):
                    released.append(order_id)
                doc = await self._collection(order_id).find_one({"_id": order_id})
                if doc is not None and doc["status"] in (PENDING, "reserved"):
                    remaining.append(order_id)
            if bucket is not None:
                done = [o for o in bucket.get("orders", ()) if o not in remaining]
                if done:
                    await self._guard.update_one(
                        expiry, {"_id": bucket_id}, {"$pull": {"orders": {"$in": done}}}
                    )
                if not remaining and _hour(hour) < current:
                    await expiry.delete_one({"_id": bucket_id, "orders": {"$size": 0}})
            if remaining and next_hour is None:
                next_hour = _hour(hour)
            hour += timedelta(hours=1)
        if (next_hour or current) != cursor["next_hour"]:
            await self._guard.update_one(
                expiry, {"_id": CURSOR_ID}, {"$set": {"next_hour": next_hour or current}}
            )
        return released

    async def _expire(self, order_id: str, now: datetime) -> bool:
        doc = await self._collection(order_id).find_one({"_id": order_id})
        if doc is None or doc["hold_until"] > now:
            return False
        if doc["status"] not in (PENDING, ReservationStatus.RESERVED.value):
            return False
        try:
            reservation = await self.release(order_id, now, expired=True)
        except ServiceError as error:  # committed meanwhile, or failed while settling
            log.info("sweeper left %s: %s", order_id, error.message)
            return False
        return reservation.expired
