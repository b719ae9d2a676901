"""Reservations keyed by order id: all-or-nothing reserve, commit, release, expiry sweep.

No transactions: a reservation document (`_id` = order id) records the action under way and
each line's progress; each line moves stock by one atomic single-document change of the
inventory document (see `inventory`), conditioned on that line's hold ("r:<order>:<line>"):
held or not, closed or not. Any call that finds the reservation PENDING (another call
crashed mid-way) first drives it to its end state, so every path converges:

- reserve:  line by line `available >= q` -> reserved += q, the line held; the first short
  line records the failure, every line is closed (stock given back if held, a later take
  barred), status FAILED; else RESERVED.
- commit:   RESERVED -> each line's hold on_hand -= q, reserved -= q, closed -> COMMITTED.
- release:  RESERVED -> each line's hold given back, closed -> RELEASED (`expired` when swept).

No lock anywhere, so several replicas (and concurrent replays of one order) may drive one
reservation at once. What makes that safe (the argument is in store-svc/DESIGN.md):

- per line, the inventory document decides: a hold is taken at most once, and not after it
  was closed; giving back and committing act only on a hold that is held;
- per order, the reservation document decides the outcome once: the failure is recorded
  only if none is, and every reserve step (a line reserved, RESERVED) only if none is; a
  line is closed in a reserve only after the failure was recorded;
- every change of the reservation's status is conditioned on the status and action it was
  judged against, so a commit and a release of one order cannot both start, and a late
  writer never overwrites a newer state: it re-reads and continues from what it finds.

Expiry: an index on (status, hold_until) lets the sweeper find held reservations whose hold
has passed without any bucket documents.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from retail_kit.errors import ServiceError, not_found
from retail_kit.mongo import Document, IndexDeclaration
from store_svc.domain import (
    Reservation,
    ReservationFailure,
    ReservationLine,
    ReservationStatus,
)
from store_svc.errors import invalid_state, key_reused, out_of_stock
from store_svc.inventory import Closed, InventoryBook, Short

__all__ = ["RESERVATIONS", "ReservationBook"]

log = logging.getLogger(__name__)

RESERVATIONS = "reservations"  # _id = order id
PENDING = ReservationStatus.PENDING.value
HELD = (PENDING, ReservationStatus.RESERVED.value)
SWEEP_BATCH = 500
MAX_REDRIVES = 20

INDEXES = (
    # The sweeper's query: held reservations whose hold has ended, oldest first.
    IndexDeclaration(RESERVATIONS, (("status", 1), ("hold_until", 1)), "status_hold_until"),
)


class _Moved(Exception):
    """The reservation changed under us (another replica or replay): re-read, go on."""


@dataclass(frozen=True, slots=True)
class _Taken:
    """A hold taken by this call (not found held already)."""

    sku_id: str
    hold_id: str
    quantity: int


def _hold_id(order_id: str, index: int) -> str:
    """The operation id of a line's hold on its inventory document."""
    return f"r:{order_id}:{index}"


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


def _fingerprint(store_id: str, lines: Sequence[ReservationLine]) -> str:
    payload = [store_id, [[line.sku_id, line.quantity] for line in lines]]
    return hashlib.sha256(json.dumps(payload).encode()).hexdigest()[:24]


class ReservationBook:
    def __init__(self, database: AsyncDatabase[Document], book: InventoryBook) -> None:
        self._db = database
        self._inventory = book
        self._reservations = database[RESERVATIONS]

    async def get(self, order_id: str) -> Reservation | None:
        doc = await self._reservations.find_one({"_id": order_id})
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
        refuse_new: ServiceError | None = None,
    ) -> Reservation:
        """Reserves every line or none. A replay with the same lines answers what the first
        call decided (the same reservation, or the same OUT_OF_STOCK error).

        `refuse_new` (unknown store or SKU, judged by the caller) is raised if the order id
        is new, and nothing is written; an existing order is judged as a replay (so reusing
        its id with other lines is IDEMPOTENCY_KEY_REUSED, as before).

        A new order costs one insert (the reservation, PENDING, every line pending), then
        per line one conditional inventory update and one progress write (the last line's
        also sets RESERVED): no read. The reservation is read only when the insert finds
        the order id taken (a replay, or a concurrent one)."""
        fingerprint = _fingerprint(store_id, lines)
        if refuse_new is not None:
            found = await self._reservations.find_one({"_id": order_id})
            if found is None:
                raise refuse_new
            doc = found
        else:
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
            try:
                await self._reservations.insert_one(doc)
            except DuplicateKeyError:
                # A replay, or a concurrent call inserted it first: continue from its
                # document. (insert_one set no field of ours on failure but `_id`.)
                found = await self._reservations.find_one({"_id": order_id})
                if found is None:  # pragma: no cover - reservations are never deleted
                    raise RuntimeError(f"reservation {order_id}: duplicate but absent") from None
                doc = found
        if doc["fingerprint"] != fingerprint:
            raise key_reused("order_id", order_id)
        return self._answer(await self._settled(doc, now))

    def _answer(self, doc: Document) -> Reservation:
        reservation = reservation_from_document(doc)
        if reservation.status is ReservationStatus.FAILED and reservation.failure is not None:
            failure = reservation.failure
            raise out_of_stock(
                reservation.store_id, failure.sku_id, failure.requested, failure.available
            )
        return reservation

    async def _settled(self, doc: Document, now: datetime) -> Document:
        """Drives the reservation to the end of its action, re-reading whenever another
        writer moved it first, and returns the settled document.

        Holds this call took itself are checked once it is settled: if it did not end
        RESERVED, none may remain (see `_drop_strays`)."""
        taken: list[_Taken] = []
        for _ in range(MAX_REDRIVES):
            try:
                doc = await self._settle(doc, now, taken)
            except _Moved:
                fresh = await self._reservations.find_one({"_id": doc["_id"]})
                if fresh is None:  # pragma: no cover - reservations are never deleted
                    raise not_found("reservation", doc["_id"]) from None
                doc = fresh
                continue
            if taken and doc["status"] != ReservationStatus.RESERVED.value:
                await self._drop_strays(doc, taken)
            return doc
        raise RuntimeError(f"reservation {doc['_id']}: too much contention")  # pragma: no cover

    async def _settle(self, doc: Document, now: datetime, taken: list[_Taken]) -> Document:
        """Drives a PENDING reservation to the end of its action; others are returned as is."""
        if doc["status"] != PENDING:
            return doc
        action = doc["action"]
        if action == "reserve":
            if doc.get("failure"):
                return await self._unwind(doc, now, ReservationStatus.FAILED)
            return await self._reserve_lines(doc, now, taken)
        if action == "commit":
            return await self._commit_lines(doc, now)
        return await self._unwind(doc, now, ReservationStatus.RELEASED)

    async def _reserve_lines(self, doc: Document, now: datetime, taken: list[_Taken]) -> Document:
        """Takes the pending lines in order. Every write here is conditioned on no failure
        being recorded (`undecided`), and the failure only on none recorded yet: so once a
        line is judged short nothing can mark a line reserved or the order RESERVED, and
        once RESERVED no failure can be recorded."""
        order_id, store_id = doc["_id"], doc["store_id"]
        last = len(doc["lines"]) - 1
        for index, line in enumerate(doc["lines"]):
            if line["state"] != "pending":
                continue
            quantity = int(line["quantity"])
            hold_id = _hold_id(order_id, index)
            try:
                if await self._inventory.take(store_id, line["sku_id"], hold_id, quantity):
                    taken.append(_Taken(line["sku_id"], hold_id, quantity))
            except Closed:
                raise _Moved from None  # its hold was closed: the reservation moved on
            except Short as short:
                failure = {
                    "sku_id": line["sku_id"],
                    "requested": quantity,
                    "available": short.available,
                }
                doc = await self._set(doc, {"failure": failure}, now, undecided=True)
                return await self._unwind(doc, now, ReservationStatus.FAILED)
            progress: Document = {f"lines.{index}.state": "reserved"}
            if index == last:
                progress["status"] = ReservationStatus.RESERVED.value
            doc = await self._set(doc, progress, now, undecided=True)
        if doc["status"] == PENDING:  # every line was reserved by an earlier try
            doc = await self._set(
                doc, {"status": ReservationStatus.RESERVED.value}, now, undecided=True
            )
        return doc

    async def _unwind(self, doc: Document, now: datetime, end: ReservationStatus) -> Document:
        """Closes every line's hold (gives its stock back if it holds any, and bars a take of
        it arriving later), then sets `end` (FAILED or RELEASED)."""
        order_id, store_id = doc["_id"], doc["store_id"]
        for index, line in enumerate(doc["lines"]):
            if line["state"] in ("released", "committed"):
                continue
            await self._inventory.give_back(
                store_id,
                line["sku_id"],
                _hold_id(order_id, index),
                int(line["quantity"]),
                held=line["state"] == "reserved",
            )
            doc = await self._set(doc, {f"lines.{index}.state": "released"}, now)
        return await self._set(doc, {"status": end.value}, now)

    async def _drop_strays(self, doc: Document, taken: Sequence[_Taken]) -> None:
        """Gives back any hold this call took that is still held although the reservation
        ended otherwise than RESERVED (FAILED, RELEASED or COMMITTED hold nothing). The
        closing of each line bars a later take, so this finds one only if the bar had left
        the document's last OPS_KEPT operation ids before this call's take arrived."""
        for item in taken:
            if await self._inventory.give_back(
                doc["store_id"], item.sku_id, item.hold_id, item.quantity, held=True
            ):
                log.warning(
                    "reservation %s is %s: gave back %d of %s taken late by %s",
                    doc["_id"],
                    doc["status"],
                    item.quantity,
                    item.sku_id,
                    item.hold_id,
                )

    async def _commit_lines(self, doc: Document, now: datetime) -> Document:
        order_id, store_id = doc["_id"], doc["store_id"]
        for index, line in enumerate(doc["lines"]):
            if line["state"] == "committed":
                continue
            await self._inventory.hand_over(
                store_id, line["sku_id"], _hold_id(order_id, index), int(line["quantity"])
            )
            doc = await self._set(doc, {f"lines.{index}.state": "committed"}, now)
        return await self._set(
            doc, {"status": ReservationStatus.COMMITTED.value, "commit_time": now}, now
        )

    async def _set(
        self, doc: Document, fields: Document, now: datetime, *, undecided: bool = False
    ) -> Document:
        """Records progress, only if the reservation is still in the status and action it
        was judged in and, when `undecided`, has no failure recorded (raises _Moved
        otherwise)."""
        fields = {**fields, "update_time": now}
        query: Document = {"_id": doc["_id"], "status": doc["status"], "action": doc["action"]}
        if undecided:
            query["failure"] = None
        result = await self._reservations.update_one(query, {"$set": fields})
        if result.matched_count == 0:
            raise _Moved
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
        for _ in range(MAX_REDRIVES):
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
            try:
                doc = await self._set(doc, {"status": PENDING, "action": "commit"}, now)
            except _Moved:
                continue  # a concurrent commit or release started first: see what it is
            return reservation_from_document(await self._settled(doc, now))
        raise RuntimeError(f"reservation {order_id}: too much contention")  # pragma: no cover

    async def release(self, order_id: str, now: datetime, *, expired: bool = False) -> Reservation:
        for _ in range(MAX_REDRIVES):
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
            try:
                doc = await self._set(
                    doc, {"status": PENDING, "action": "release", "expired": expired}, now
                )
            except _Moved:
                continue
            return reservation_from_document(await self._settled(doc, now))
        raise RuntimeError(f"reservation {order_id}: too much contention")  # pragma: no cover

    async def _load(self, order_id: str, now: datetime) -> Document:
        doc = await self._reservations.find_one({"_id": order_id})
        if doc is None:
            raise not_found("reservation", order_id)
        return await self._settled(doc, now)

    # -- expiry ----------------------------------------------------------------------------

    async def sweep(self, now: datetime) -> list[str]:
        """One pass of the sweeper: releases every held reservation whose hold ended by
        `now` (a crashed PENDING one is settled first), and returns their order ids. Safe
        to run on every replica at once: each release is a conditional transition."""
        released: list[str] = []
        while True:
            cursor = (
                self._reservations.find(
                    {"status": {"$in": list(HELD)}, "hold_until": {"$lte": now}}, {"_id": 1}
                )
                .sort("hold_until", 1)
                .limit(SWEEP_BATCH)
            )
            due = [doc["_id"] async for doc in cursor]
            for order_id in due:
                if await self._expire(order_id, now):
                    released.append(order_id)
            # Every due reservation left the held states (released, or committed meanwhile),
            # so the next page holds only ones not seen yet.
            if len(due) < SWEEP_BATCH:
                return released

    async def _expire(self, order_id: str, now: datetime) -> bool:
        """True when this call released it as expired."""
        try:
            reservation = await self.release(order_id, now, expired=True)
        except ServiceError as error:  # committed meanwhile, or failed while settling
            log.info("sweeper left %s: %s", order_id, error.message)
            return False
        return reservation.expired
