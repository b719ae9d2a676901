"""Inventory per (store, SKU): levels, adjustments with an audit trail, safety stock.

One document per (store, SKU), `_id` "<store_id>:<sku_id>", holds on_hand, reserved,
safety_stock and the derived `available` (= max(0, on_hand - reserved - safety_stock)),
rewritten together by every change so a reader or a conditional filter never sees them
disagree. Every change is atomic on that one document, so any number of store-svc replicas
may change stock at once:

- the reservation steps are single conditional updates the server applies atomically: a
  reserve is `{available >= q, held != h, ops != h} -> reserved += q, available -= q, push
  h to held` (exact: available was >= q > 0, so it equalled on_hand - reserved - safety), a
  commit is `{held: h} -> on_hand -= q, reserved -= q, h from held to ops` (available
  unchanged);
- every other change (adjustments, safety stock, giving a hold back) is a read-compute-write
  with a `version` compare-and-set: a lost race re-reads and retries.

Invariants kept by every change: 0 <= reserved <= on_hand (an adjustment may not take on
hand below what is reserved; a commit takes both down together), safety_stock >= 0, and
reserved = the sum of the quantities of the holds in `held`.

Holds: `held` lists the reservation lines ("r:<order>:<line>") holding stock now, for as
long as they hold it, so whether a line holds stock is known exactly however late a step is
retried (no window). A hold's life on the document is open -> held -> closed, or open ->
closed (barred before any take): closing (`give_back`, `hand_over`) records its id in `ops`
and a take requires it absent, so a take arriving after the line was closed cannot land.

`ops` keeps the last OPS_KEPT ids of applied adjustments ("a:<key>", so a step retried after
a crash is not applied twice) and of closed holds; only that bar is bounded by it (see
store-svc/DESIGN.md).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from retail_kit.mongo import Document, IndexDeclaration, find_by_ids
from store_svc.domain import Adjustment, AdjustmentReason, InventoryLevel
from store_svc.errors import invalid_state, key_reused

__all__ = ["ADJUSTMENTS", "INVENTORY", "TRAIL", "InventoryBook"]

INVENTORY = "inventory"  # _id "<store>:<sku>"
ADJUSTMENTS = "adjustments"  # _id = idempotency key
TRAIL = "inventory_trail"  # _id "<store>:<sku>:<sequence>"

INDEXES = (
    # A store's stock list (BatchGetInventory reads by _id; this serves scans by store).
    IndexDeclaration(INVENTORY, (("store_id", 1), ("sku_id", 1)), "store_sku"),
)
OPS_KEPT = 100
MAX_CAS_ATTEMPTS = 50


def inventory_id(store_id: str, sku_id: str) -> str:
    return f"{store_id}:{sku_id}"


def level_from_document(doc: Document) -> InventoryLevel:
    return InventoryLevel(
        store_id=doc["store_id"],
        sku_id=doc["sku_id"],
        on_hand=int(doc.get("on_hand", 0)),
        reserved=int(doc.get("reserved", 0)),
        safety_stock=int(doc.get("safety_stock", 0)),
    )


def level_fields(level: InventoryLevel) -> Document:
    return {
        "store_id": level.store_id,
        "sku_id": level.sku_id,
        "on_hand": level.on_hand,
        "reserved": level.reserved,
        "safety_stock": level.safety_stock,
        "available": level.available,
    }


def adjustment_from_document(doc: Document) -> Adjustment:
    return Adjustment(
        key=doc["key"],
        store_id=doc["store_id"],
        sku_id=doc["sku_id"],
        delta=int(doc["delta"]),
        reason=AdjustmentReason(doc["reason"]),
        actor_id=doc["actor_id"],
        note=doc.get("note", ""),
        on_hand_after=int(doc["on_hand_after"]),
        sequence=int(doc["sequence"]),
        create_time=doc["create_time"],
    )


@dataclass(frozen=True, slots=True)
class Change:
    """What a mutation computed: the new level and extra fields to set with it."""

    level: InventoryLevel
    extra: Document


Mutation = Callable[[InventoryLevel, Document], Change | None]
"""Given the current level and document, the change to write (None: nothing to do)."""


class MissingInventory(Exception):
    pass


class Short(Exception):
    """Not enough available stock for a reserve; `available` is what there was."""

    def __init__(self, available: int) -> None:
        super().__init__(available)
        self.available = available


class Closed(Exception):
    """The hold was closed (given back, barred or committed): the reservation moved on."""


class OnHandBelowReserved(Exception):
    def __init__(self, level: InventoryLevel) -> None:
        super().__init__(level)
        self.level = level


@dataclass(frozen=True, slots=True)
class AdjustmentResult:
    level: InventoryLevel
    adjustment: Adjustment


class InventoryBook:
    """Inventory documents (by "<store>:<sku>"), adjustment records (by idempotency key) and
    the insert-only trail."""

    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self._db = database
        self._inventory = database[INVENTORY]
        self._records = database[ADJUSTMENTS]

    @property
    def database(self) -> AsyncDatabase[Document]:
        return self._db

    async def levels(self, store_id: str, sku_ids: Sequence[str]) -> dict[str, InventoryLevel]:
        ids = [inventory_id(store_id, sku) for sku in sku_ids]
        found = await find_by_ids(self._inventory, ids)
        return {doc["sku_id"]: level_from_document(doc) for doc in found.values()}

    async def stocked(self, store_id: str, sku_ids: Sequence[str]) -> set[str]:
        """Which of `sku_ids` the store has an inventory document for (ever stocked): one
        `$in` by `_id`, projected to the SKU id (a hot document's `ops` list stays unread)."""
        ids = [inventory_id(store_id, sku) for sku in sku_ids]
        cursor = self._inventory.find({"_id": {"$in": ids}}, {"sku_id": 1})
        return {doc["sku_id"] async for doc in cursor}

    async def levels_by_id(self, ids: Sequence[str]) -> dict[str, InventoryLevel]:
        found = await find_by_ids(self._inventory, ids)
        return {key: level_from_document(doc) for key, doc in found.items()}

    async def take(self, store_id: str, sku_id: str, hold_id: str, quantity: int) -> bool:
        """Holds `quantity` for `hold_id` ("r:<order>:<line>") in one atomic conditional
        update: `{available >= q, held != hold_id, ops != hold_id}` -> reserved += q,
        available -= q, `hold_id` pushed to `held`. So a hold is taken at most once, and never
        after it was closed (`give_back`, `hand_over`: `hold_id` in `ops`).

        True when this call took it; False when it was held already (an earlier or a
        concurrent try); raises Short with what is available when it is not enough, Closed
        when the hold was closed.
        """
        key = inventory_id(store_id, sku_id)
        for _ in range(MAX_CAS_ATTEMPTS):
            result = await self._inventory.update_one(
                {
                    "_id": key,
                    "available": {"$gte": quantity},
                    "held": {"$ne": hold_id},
                    "ops": {"$ne": hold_id},
                },
                {
                    "$inc": {"reserved": quantity, "available": -quantity, "version": 1},
                    "$push": {"held": hold_id},
                    "$set": {"update_time": datetime.now(UTC)},
                },
            )
            if result.matched_count == 1:
                return True
            doc = await self._inventory.find_one(
                {"_id": key}, {"available": 1, "held": 1, "ops": 1}
            )
            if doc is None:
                raise Short(0)
            if hold_id in doc.get("held", ()):
                return False
            if hold_id in doc.get("ops", ()):
                raise Closed(key, hold_id)
            available = int(doc.get("available", 0))
            if available < quantity:
                raise Short(available)
            # Stock arrived between the update and the read: try again.
        raise RuntimeError(f"inventory {key}: too much contention")  # pragma: no cover

    async def hand_over(self, store_id: str, sku_id: str, hold_id: str, quantity: int) -> None:
        """Commits the hold `hold_id` (on hand and reserved both fall by `quantity`) and
        closes it, in one atomic update conditioned on the hold: done at most once. A hold
        no longer held was handed over already (only its own commit or a release, which
        excludes the commit, ends a hold of a RESERVED reservation)."""
        key = inventory_id(store_id, sku_id)
        result = await self._inventory.update_one(
            {"_id": key, "held": hold_id, "reserved": {"$gte": quantity}},
            {
                "$inc": {"on_hand": -quantity, "reserved": -quantity, "version": 1},
                "$pull": {"held": hold_id},
                "$push": {"ops": {"$each": [hold_id], "$slice": -OPS_KEPT}},
                "$set": {"update_time": datetime.now(UTC)},
            },
        )
        if result.matched_count == 1:
            return
        doc = await self._inventory.find_one({"_id": key}, {"held": 1, "reserved": 1})
        if doc is None:
            raise MissingInventory(key)
        if hold_id in doc.get("held", ()):
            raise RuntimeError(f"inventory {key}: {quantity} to commit but {doc['reserved']} held")

    async def give_back(
        self, store_id: str, sku_id: str, hold_id: str, quantity: int, *, held: bool
    ) -> bool:
        """Closes the hold `hold_id`: gives its `quantity` back if it holds stock, and records
        `hold_id` in `ops` either way, so a take of it arriving later cannot land. Idempotent.

        Not known `held`: first one conditional update bars it where it was never taken
        (`{held != h, ops != h}` -> push h to ops); else (or when that did not match) a
        read and a `{_id, version, held: h}` compare-and-set that gives the stock back
        (available is recomputed, which a `$inc` cannot do). True when this call gave stock
        back."""
        key = inventory_id(store_id, sku_id)
        bar: Document = {
            "$push": {"ops": {"$each": [hold_id], "$slice": -OPS_KEPT}},
            "$inc": {"version": 1},
            "$set": {"update_time": datetime.now(UTC)},
        }
        open_hold = {"_id": key, "held": {"$ne": hold_id}, "ops": {"$ne": hold_id}}
        if not held and (await self._inventory.update_one(open_hold, bar)).matched_count == 1:
            return False
        for _ in range(MAX_CAS_ATTEMPTS):
            doc = await self._inventory.find_one({"_id": key})
            if doc is None:
                return False  # nothing was ever held (and no take can land on no document)
            if hold_id not in doc.get("held", ()):
                if hold_id in doc.get("ops", ()):
                    return False  # closed already
                if (await self._inventory.update_one(open_hold, bar)).matched_count == 1:
                    return False
                continue  # a take landed meanwhile
            level = level_from_document(doc)
            after = InventoryLevel(
                store_id, sku_id, level.on_hand, level.reserved - quantity, level.safety_stock
            )
            result = await self._inventory.update_one(
                {"_id": key, "version": doc.get("version", 0), "held": hold_id},
                {
                    "$set": {**level_fields(after), "update_time": datetime.now(UTC)},
                    "$inc": {"version": 1},
                    "$pull": {"held": hold_id},
                    "$push": {"ops": {"$each": [hold_id], "$slice": -OPS_KEPT}},
                },
            )
            if result.matched_count == 1:
                return True
        raise RuntimeError(f"inventory {key}: too much contention")  # pragma: no cover

    async def mutate(
        self,
        store_id: str,
        sku_id: str,
        op_id: str | None,
        mutation: Mutation,
        *,
        create: bool = False,
    ) -> tuple[InventoryLevel, Document, bool]:
        """Applies `mutation` once: returns (level after, document after, applied now).

        An `op_id` already recorded in the document is not applied again (the current state
        is returned with applied=False). Without `create`, a missing document raises
        MissingInventory.
        """
        key = inventory_id(store_id, sku_id)
        collection = self._inventory
        for _ in range(MAX_CAS_ATTEMPTS):
            doc = await collection.find_one({"_id": key})
            if doc is None:
                if not create:
                    raise MissingInventory(key)
                doc = {
                    "_id": key,
                    **level_fields(InventoryLevel(store_id, sku_id)),
                    "version": 0,
                    "trail_seq": 0,
                    "ops": [],
                }
                exists = False
            else:
                exists = True
            current = level_from_document(doc)
            if op_id is not None and op_id in doc.get("ops", ()):
                return current, doc, False
            change = mutation(current, doc)
            if change is None:
                return current, doc, False
            ops = list(doc.get("ops", ()))
            if op_id is not None:
                ops = [*ops, op_id][-OPS_KEPT:]
            fields = {
                **level_fields(change.level),
                **change.extra,
                "ops": ops,
                "version": int(doc.get("version", 0)) + 1,
                "update_time": datetime.now(UTC),
            }
            if exists:
                # Compare-and-set: only if nobody changed the document since it was read.
                query: Document = {"_id": key, "version": doc.get("version", 0)}
                result = await collection.update_one(query, {"$set": fields})
                if result.matched_count == 1:
                    return change.level, {**doc, **fields}, True
            else:
                try:
                    await collection.insert_one({"_id": key, **fields})
                    return change.level, {"_id": key, **fields}, True
                except DuplicateKeyError:
                    pass
        raise RuntimeError(f"inventory {key}: too much contention")  # pragma: no cover

    async def set_safety_stock(self, store_id: str, sku_id: str, safety: int) -> InventoryLevel:
        def apply(level: InventoryLevel, doc: Document) -> Change | None:
            if level.safety_stock == safety and "version" in doc and doc.get("version"):
                return None
            return Change(
                InventoryLevel(store_id, sku_id, level.on_hand, level.reserved, safety), {}
            )

        level, _, _ = await self.mutate(store_id, sku_id, None, apply, create=True)
        return level

    async def adjust(
        self,
        *,
        key: str,
        store_id: str,
        sku_id: str,
        delta: int,
        reason: AdjustmentReason,
        actor_id: str,
        note: str,
        now: datetime,
    ) -> AdjustmentResult:
        """Applies an adjustment once per idempotency key; a replay answers the same.

        The request is recorded under its key first ("pending"), then applied to the
        inventory document (the key is the operation id, so a resumed step is not applied
        twice), then written to the trail, then the record is marked "applied" with the
        level it produced. A refused adjustment (on hand would fall below what is reserved)
        removes its record: nothing changed, and a retry is judged afresh.
        """
        fingerprint = _fingerprint(store_id, sku_id, delta, reason.value, actor_id, note)
        records = self._records
        record = await records.find_one({"_id": key})
        if record is None:
            record = {
                "_id": key,
                "fingerprint": fingerprint,
                "state": "pending",
                "create_time": now,
            }
            try:
                await records.insert_one(record)
            except DuplicateKeyError:
                # A concurrent replay recorded it first: judge against its record.
                record = await records.find_one({"_id": key}) or record
        if record["fingerprint"] != fingerprint:
            raise key_reused("idempotency_key", key)
        if record["state"] == "applied":
            return AdjustmentResult(
                level_from_document(record["level"]),
                adjustment_from_document(record["adjustment"]),
            )
        # Pending: new, crashed mid-way or under way in a concurrent replay. Applying is
        # safe in every case: the operation id lets the inventory change land once.
        op_id = f"a:{key}"

        def apply(level: InventoryLevel, doc: Document) -> Change:
            on_hand = level.on_hand + delta
            if on_hand < level.reserved:
                raise OnHandBelowReserved(level)
            sequence = int(doc.get("trail_seq", 0)) + 1
            return Change(
                InventoryLevel(store_id, sku_id, on_hand, level.reserved, level.safety_stock),
                {"trail_seq": sequence, "last_adjustment": [key, sequence]},
            )

        try:
            level, doc, applied = await self.mutate(
                store_id, sku_id, op_id, apply, create=delta > 0
            )
        except (OnHandBelowReserved, MissingInventory) as error:
            await records.delete_one({"_id": key, "state": "pending"})
            current = error.level if isinstance(error, OnHandBelowReserved) else None
            on_hand = current.on_hand if current else 0
            reserved = current.reserved if current else 0
            raise invalid_state(
                f"on hand {on_hand} {delta:+d} would fall below the {reserved} reserved "
                f"(or below zero)",
                store_id=store_id,
                sku_id=sku_id,
                on_hand=str(on_hand),
                reserved=str(reserved),
                delta=str(delta),
            ) from None
        if not applied:
            # Resumed after a crash: the document already carries this key's change.
            last = doc.get("last_adjustment") or [None, 0]
            sequence = int(last[1]) if last[0] == key else int(doc.get("trail_seq", 0))
        else:
            sequence = int(doc["trail_seq"])
        adjustment = Adjustment(
            key=key,
            store_id=store_id,
            sku_id=sku_id,
            delta=delta,
            reason=reason,
            actor_id=actor_id,
            note=note,
            on_hand_after=level.on_hand,
            sequence=sequence,
            create_time=now,
        )
        adjustment_doc = _adjustment_document(adjustment)
        await self._db[TRAIL].replace_one(
            {"_id": _trail_id(store_id, sku_id, sequence)}, adjustment_doc, upsert=True
        )
        await records.update_one(
            {"_id": key},
            {
                "$set": {
                    "state": "applied",
                    "level": level_fields(level),
                    "adjustment": adjustment_doc,
                }
            },
        )
        return AdjustmentResult(level, adjustment)

    async def trail(
        self, store_id: str, sku_id: str, *, limit: int, before: int | None
    ) -> tuple[list[Adjustment], int | None]:
        """Adjustments newest first, `limit` of them with sequence < `before`; and the
        sequence to continue before (None when the trail is exhausted)."""
        key = inventory_id(store_id, sku_id)
        doc = await self._inventory.find_one({"_id": key})
        top = int(doc.get("trail_seq", 0)) if doc else 0
        start = top if before is None else min(top, before - 1)
        sequences = list(range(start, max(0, start - limit), -1))
        found = await find_by_ids(
            self._db[TRAIL], [_trail_id(store_id, sku_id, seq) for seq in sequences]
        )
        adjustments = [
            adjustment_from_document(found[_trail_id(store_id, sku_id, seq)])
            for seq in sequences
            if _trail_id(store_id, sku_id, seq) in found
        ]
        last = sequences[-1] if sequences else 0
        return adjustments, (last if last > 1 else None)


def _trail_id(store_id: str, sku_id: str, sequence: int) -> str:
    return f"{store_id}:{sku_id}:{sequence:010d}"


def _adjustment_document(adjustment: Adjustment) -> Document:
    return {
        "key": adjustment.key,
        "store_id": adjustment.store_id,
        "sku_id": adjustment.sku_id,
        "delta": adjustment.delta,
        "reason": adjustment.reason.value,
        "actor_id": adjustment.actor_id,
        "note": adjustment.note,
        "on_hand_after": adjustment.on_hand_after,
        "sequence": adjustment.sequence,
        "create_time": adjustment.create_time,
    }


def _fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:24]
