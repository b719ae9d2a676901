"""The points ledger: entries idempotent by (kind, reference), lots, the account head.

Entries live in `points_ledger`, `_id` = "<member>:<seq, 10 digits>", with a unique index
on (kind, reference) (global: a replay after a merge still finds its entry). The member
document's `points` is the head: the `seq` of the last applied entry, `total`, the lots,
`next_expiry` (for the expiry sweep) and `closed` (the merge that transferred every lot
away). Each entry carries the whole head it leads to (`head`), so applying an entry is one
`$set`.

A change (`PointsBook._change`):
1. read the head (`seq = n`), following `merged_into` to the survivor;
2. look the (kind, reference) up: found -> answer that entry (rolling its head forward if
   its head write was lost);
3. compute the new lots in the rules (`loyalty_rules`, pure functions);
4. insert the entry `<member>:<n+1>`; a duplicate `_id` means another writer took n+1:
   roll it forward and start again; a duplicate (kind, reference) is a concurrent replay:
   answer that entry;
5. compare-and-set the head `{points.seq: n} -> entry.head`.

Rolling forward = step 5 done by whoever finds entry n+1 while the head is at n (the next
writer of that member, a replay of the entry, a ledger listing, or the expiry job's scan
of recent entries), so a crash between 4 and 5 is finished later and, at rest, the head
total = sum of entry deltas = sum of remaining lots >= 0. At most one entry can be ahead
of its head (n+2 is only written by someone who saw the head at n+1). No transaction.

Writes of one member in one process queue on an asyncio lock, so they do not collide with
each other; across replicas the compare-and-set alone keeps the ledger exact.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from member_svc import loyalty_rules as rules
from member_svc.audit import actor_from_document, actor_to_document
from member_svc.domain import SYSTEM, Actor, PointsAccount, PointsLot
from member_svc.loyalty_errors import (
    contention,
    insufficient_points,
    invalid_state,
    key_reused,
    merge_in_progress,
    over_cap,
    return_exceeds_purchase,
    reverted_first,
)
from member_svc.repository import MEMBERS, lot_from_document
from member_svc.settings import MemberSettings
from retail_kit.errors import FieldViolation, ServiceError, invalid_argument, not_found
from retail_kit.mongo import Document, IndexDeclaration, ensure_indexes
from retail_kit.seeding import SeedReport

if TYPE_CHECKING:
    from member_svc.books import Books

LEDGER = "points_ledger"
JOB_STATE = "points_job_state"

INDEXES: tuple[IndexDeclaration, ...] = (
    # Idempotency: one entry per (kind, reference), whichever member it landed on.
    # (reference first: the redeem's look-up of its revert reads every kind of a reference.)
    IndexDeclaration(LEDGER, (("reference", 1), ("kind", 1)), "reference_kind", unique=True),
    # A member's ledger, newest first.
    IndexDeclaration(LEDGER, (("member_id", 1), ("seq", -1)), "member_newest"),
    # The claw-backs of one order (running refund total).
    IndexDeclaration(LEDGER, (("order_id", 1),), "order"),
    # The roll-forward scan of recent entries.
    IndexDeclaration(LEDGER, (("create_time", 1),), "create_time"),
    # The expiry sweep: members with a lot due.
    IndexDeclaration(MEMBERS, (("points.next_expiry", 1),), "points_next_expiry"),
)

EARN = "earn"
REDEEM = "redeem"
REVERT = "revert"
EXPIRE = "expire"
CLAW_BACK = "claw_back"
ADJUST = "adjust"
TRANSFER_OUT = "transfer_out"
TRANSFER_IN = "transfer_in"
OPENING = "opening"
BIRTHDAY_BONUS = "birthday_bonus"

MAX_POINTS = 1_000_000_000
MAX_ATTEMPTS = 200
MAX_BATCH = 64
MAX_MERGE_HOPS = 8
# The roll-forward scan looks again at entries this much older than where it stopped (an
# entry is stamped before its insert lands) and leaves the newest ones to their writers.
ROLL_FORWARD_OVERLAP_SECONDS = 60.0
ROLL_FORWARD_SETTLE_SECONDS = 2.0
DEFAULT_BATCH = 500


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    id: str
    member_id: str
    seq: int
    kind: str
    reference: str
    delta: int
    total_after: int
    note: str
    shortfall: int
    actor: Actor
    create_time: datetime
    available_time: datetime | None
    expire_time: datetime | None


def entry_id(member_id: str, seq: int) -> str:
    return f"{member_id}:{seq:010d}"


def lot_to_document(lot: PointsLot) -> Document:
    return {
        "id": lot.id,
        "points": lot.points,
        "remaining": lot.remaining,
        "available_time": lot.available_time,
        "expire_time": lot.expire_time,
        "source": lot.source,
    }


def take_to_document(item: rules.LotTake) -> Document:
    return {"lot": lot_to_document(item.lot), "points": item.points}


def take_from_document(doc: Document) -> rules.LotTake:
    return rules.LotTake(lot_from_document(doc["lot"]), int(doc["points"]))


def head_document(seq: int, lots: Sequence[PointsLot], closed: str | None) -> Document:
    """The member's `points` after entry `seq`: total and next expiry derive from the lots."""
    expiry = rules.next_expiry(lots)
    return {
        "seq": seq,
        "total": rules.total(lots),
        "lots": [lot_to_document(lot) for lot in lots],
        "next_expiry": expiry,
        "closed": closed,
    }


def entry_from_document(doc: Document) -> LedgerEntry:
    return LedgerEntry(
        id=doc["_id"],
        member_id=doc["member_id"],
        seq=int(doc["seq"]),
        kind=doc["kind"],
        reference=doc["reference"],
        delta=int(doc["delta"]),
        total_after=int(doc["total_after"]),
        note=doc.get("note", ""),
        shortfall=int(doc.get("shortfall", 0)),
        actor=actor_from_document(doc.get("actor")),
        create_time=doc["create_time"],
        available_time=doc.get("available_time"),
        expire_time=doc.get("expire_time"),
    )


def takes_of(doc: Document) -> tuple[rules.LotTake, ...]:
    return tuple(take_from_document(item) for item in doc.get("takes", ()))


@dataclass(frozen=True, slots=True)
class Head:
    """A member's points head as read: the member it belongs to (after following merges)."""

    member_id: str
    seq: int
    lots: tuple[PointsLot, ...]
    closed: str | None
    merged_ids: tuple[str, ...]

    @property
    def total(self) -> int:
        return rules.total(self.lots)

    @property
    def account(self) -> PointsAccount:
        return PointsAccount(seq=self.seq, total=self.total, lots=self.lots)


def head_from_member_document(doc: Document) -> Head:
    points = doc.get("points") or {}
    return Head(
        member_id=doc["_id"],
        seq=int(points.get("seq", 0)),
        lots=rules.normalize(lot_from_document(lot) for lot in points.get("lots", ())),
        closed=points.get("closed"),
        merged_ids=tuple(doc.get("merged_ids", ())),
    )


@dataclass(frozen=True, slots=True)
class Plan:
    """What one change computed: the lots after it and what to record with it."""

    lots: tuple[PointsLot, ...]
    takes: tuple[rules.LotTake, ...] = ()
    shortfall: int = 0
    available_time: datetime | None = None
    expire_time: datetime | None = None
    closed: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Written:
    """An entry a change wrote, or found (`replayed`) under its (kind, reference)."""

    entry: LedgerEntry
    doc: Document
    replayed: bool


class Lookup:
    """Ledger look-ups for a change being computed: entries computed earlier in the same
    batch, not inserted yet, count as written."""

    def __init__(self, ledger: AsyncCollection[Document]) -> None:
        self._ledger = ledger
        self.pending: dict[tuple[str, str], Document] = {}

    async def entry(self, kind: str, reference: str) -> Document | None:
        doc = self.pending.get((reference, kind))
        if doc is not None:
            return doc
        return await self._ledger.find_one({"reference": reference, "kind": kind})

    async def claw_backs(self, order_id: str) -> list[Document]:
        found = {
            doc["_id"]: doc
            async for doc in self._ledger.find({"order_id": order_id, "kind": CLAW_BACK})
        }
        for doc in self.pending.values():
            if doc["kind"] == CLAW_BACK and doc.get("order_id") == order_id:
                found[doc["_id"]] = doc
        return list(found.values())


# Given the head (as the batch has left it), the clock's now, the id the new entry will take
# and the look-ups: the plan, or None when there is nothing to write.
Compute = Callable[[Head, datetime, str, Lookup], Awaitable[Plan | None]]


@dataclass(slots=True)
class _Request:
    kind: str
    reference: str | Callable[[Head], str]
    compute: Compute
    note: str
    actor: Actor
    future: asyncio.Future[Written | None]


def _settle(request: _Request, outcome: Written | BaseException | None) -> None:
    if request.future.done():
        return
    if isinstance(outcome, BaseException):
        request.future.set_exception(outcome)
    else:
        request.future.set_result(outcome)


def void_marker(reference: str, now: datetime) -> Document:
    """Takes the (reference, "redeem") slot for a revert that found no redemption, so a
    redeem of that reference arriving later collides with it and is refused. Not an entry
    (no member, no seq)."""
    return {
        "_id": f"void:{REDEEM}:{reference}",
        "kind": REDEEM,
        "reference": reference,
        "void": True,
        "void_time": now,
    }


MEMBER_PROJECTION = {"points": 1, "merged_into": 1, "merged_ids": 1, "status": 1}


def _positive_points(points: int, name: str = "points") -> None:
    if points <= 0:
        raise invalid_argument(FieldViolation(name, "must be positive"))
    if points > MAX_POINTS:
        raise invalid_argument(FieldViolation(name, f"must be at most {MAX_POINTS}"))


class PointsBook:
    def __init__(
        self,
        database: AsyncDatabase[Document],
        settings: MemberSettings,
        clock: Callable[[], datetime],
    ) -> None:
        self._db = database
        self._settings = settings
        self._clock = clock
        self._members = database[MEMBERS]
        self._ledger = database[LEDGER]
        self._queues: dict[tuple[str, bool], list[_Request]] = {}
        self._drainers: dict[tuple[str, bool], asyncio.Task[None]] = {}

    # ---- the cross-area contract ------------------------------------------------------------

    async def earn(
        self,
        member_id: str,
        points: int,
        *,
        kind: str,
        reference: str,
        available_time: datetime | None = None,
        note: str = "",
        actor: Actor = SYSTEM,
    ) -> LedgerEntry:
        """A new lot of `points` (pending until `available_time`, expiring at the end of the
        next calendar year); idempotent by (kind, reference); a merged member's points go
        to its survivor."""
        written = await self.earn_lot(
            member_id,
            points,
            kind=kind,
            reference=reference,
            available_time=available_time,
            note=note,
            actor=actor,
        )
        return written.entry

    async def transfer_out(self, absorbed_id: str, merge_id: str) -> LedgerEntry:
        """Merge step on the absorbed member: every lot leaves, total -> 0, and the head is
        closed (a later write finds the survivor through `merged_into`, or is refused with
        IN_PROGRESS until the merge names it)."""

        async def compute(head: Head, now: datetime, new_id: str, ledger: Lookup) -> Plan:
            lots, takes = rules.take(head.lots, head.total, list(head.lots))
            return Plan(lots=lots, takes=takes, closed=merge_id)

        written = await self._change(
            absorbed_id,
            TRANSFER_OUT,
            merge_id,
            compute,
            note=f"merge {merge_id}",
            follow_merges=False,
        )
        assert written is not None
        return written.entry

    async def transfer_in(self, survivor_id: str, merge_id: str) -> LedgerEntry:
        """Merge step on the survivor: exactly the lots the merge's transfer_out took (same
        ids, availability and expiry)."""
        out = await self._ledger.find_one({"kind": TRANSFER_OUT, "reference": merge_id})

        async def compute(head: Head, now: datetime, new_id: str, ledger: Lookup) -> Plan:
            if out is None:
                raise invalid_state(
                    f"merge {merge_id!r} has not transferred any points out yet",
                    merge_id=merge_id,
                )
            takes = takes_of(out)
            return Plan(lots=rules.restore(head.lots, takes), takes=takes)

        written = await self._change(
            survivor_id,
            TRANSFER_IN,
            merge_id,
            compute,
            note=f"merge {merge_id} from {out['member_id'] if out else '?'}",
        )
        assert written is not None
        return written.entry

    # ---- the other changes --------------------------------------------------------------------

    async def earn_lot(
        self,
        member_id: str,
        points: int,
        *,
        kind: str,
        reference: str,
        available_time: datetime | None = None,
        earn_time: datetime | None = None,
        note: str = "",
        actor: Actor = SYSTEM,
        extra: Mapping[str, Any] | None = None,
    ) -> Written:
        """`earn` with what RPCs need: the entry document, whether it was a replay, the time
        the expiry counts from (an order's completion; now by default)."""
        _positive_points(points)
        _reference(reference)

        async def compute(head: Head, now: datetime, new_id: str, ledger: Lookup) -> Plan:
            start = available_time or now
            expire = rules.expiry_for(earn_time or now)
            if start >= expire:
                raise invalid_argument(
                    FieldViolation("available_time", "must be before the points expire")
                )
            lot = PointsLot(new_id, points, points, start, expire, f"{kind}:{reference}")
            return Plan(
                lots=rules.add_lot(head.lots, lot),
                available_time=start,
                expire_time=expire,
                extra={"asked": points, **(extra or {})},
            )

        written = await self._change(member_id, kind, reference, compute, note=note, actor=actor)
        assert written is not None
        return written

    async def redeem(
        self,
        member_id: str,
        points: int,
        reference: str,
        *,
        value_fen: int,
        max_points: int | None = None,
        actor: Actor = SYSTEM,
        note: str = "",
    ) -> Written:
        """Spends `points` from available lots, soonest-expiring first; INSUFFICIENT_POINTS
        when fewer are available; refused once the reference's redemption was reverted (a
        late redeem after its order's compensation). The cap (`max_points`) and the value
        are the policy's (the caller's); a replay answers the first entry whatever they are
        now."""
        _positive_points(points)
        _reference(reference)

        async def compute(head: Head, now: datetime, new_id: str, ledger: Lookup) -> Plan:
            if (reference, REVERT) in ledger.pending:
                raise reverted_first(reference)
            if max_points is not None and points > max_points:
                raise over_cap(points, max_points)
            have = rules.available(head.lots, now)
            if have < points:
                raise insufficient_points(head.member_id, points, have)
            lots, takes = rules.take(head.lots, points, rules.redeemable_order(head.lots, now))
            return Plan(lots=lots, takes=takes, extra={"asked": points, "value": value_fen})

        written = await self._change(
            member_id,
            REDEEM,
            reference,
            compute,
            note=note or f"order {reference}",
            actor=actor,
        )
        assert written is not None
        return written

    async def revert_redemption(
        self, member_id: str, reference: str, *, actor: Actor = SYSTEM
    ) -> Written:
        """Gives a redemption back to the very lots it took. With no redemption under the
        reference, records an empty revert, so a redeem arriving later is refused."""
        _reference(reference)

        async def compute(head: Head, now: datetime, new_id: str, ledger: Lookup) -> Plan:
            redeemed = await ledger.entry(REDEEM, reference)
            if redeemed is None:
                try:
                    await self._ledger.insert_one(void_marker(reference, now))
                except DuplicateKeyError:  # a redeem landed meanwhile (or our marker, retried)
                    redeemed = await ledger.entry(REDEEM, reference)
            if redeemed is None or redeemed.get("void"):
                return Plan(lots=head.lots, extra={"redeem_id": None})
            takes = takes_of(redeemed)
            return Plan(
                lots=rules.restore(head.lots, takes),
                takes=takes,
                extra={"redeem_id": redeemed["_id"]},
            )

        written = await self._change(
            member_id, REVERT, reference, compute, note=f"order {reference}", actor=actor
        )
        assert written is not None
        return written

    async def claw_back(
        self,
        member_id: str,
        order_id: str,
        return_id: str,
        *,
        refunded_fen: int,
        paid_fen: int,
        actor: Actor = SYSTEM,
    ) -> Written | None:
        """Claws back round(earned x refunded / paid) of what the order earned (on the running
        refund total of its returns): from the order's own lot first, then available lots
        soonest-expiring first, then pending ones; never below zero, the rest recorded as
        `shortfall`. None when the order earned nothing."""
        _reference(order_id, "order_id")
        _reference(return_id, "return_id")
        if paid_fen <= 0:
            raise invalid_argument(FieldViolation("paid_amount", "must be positive"))
        if refunded_fen <= 0:
            raise invalid_argument(FieldViolation("refunded_amount", "must be positive"))
        if refunded_fen > paid_fen:
            raise invalid_argument(
                FieldViolation("refunded_amount", "must not exceed the paid amount")
            )
        reference = f"{order_id}:{return_id}"
        earned_doc = await self._ledger.find_one({"kind": EARN, "reference": order_id})
        if earned_doc is None:
            existing = await self._ledger.find_one({"kind": CLAW_BACK, "reference": reference})
            if existing is None:
                return None
        earned = int(earned_doc["delta"]) if earned_doc else 0

        async def compute(head: Head, now: datetime, new_id: str, ledger: Lookup) -> Plan:
            before = sum(
                int(doc.get("refunded", 0))
                for doc in await ledger.claw_backs(order_id)
                if doc["reference"] != reference
            )
            if before + refunded_fen > paid_fen:
                raise return_exceeds_purchase(order_id, paid_fen, before + refunded_fen)
            asked = rules.claw_back_points(earned, paid_fen, before, refunded_fen)
            order = rules.removal_order(head.lots, now, first_source=f"{EARN}:{order_id}")
            lots, takes = rules.take(head.lots, asked, order)
            taken = sum(item.points for item in takes)
            return Plan(
                lots=lots,
                takes=takes,
                shortfall=asked - taken,
                extra={
                    "asked": asked,
                    "order_id": order_id,
                    "refunded": refunded_fen,
                    "paid": paid_fen,
                },
            )

        return await self._change(
            member_id,
            CLAW_BACK,
            reference,
            compute,
            note=f"return {return_id} of order {order_id}",
            actor=actor,
        )

    async def adjust(
        self, member_id: str, delta: int, *, reason: str, reference: str, actor: Actor
    ) -> Written:
        """Adds a lot available at once, or removes points (available first, then pending),
        never below zero: what could not be removed is the entry's `shortfall`."""
        if delta == 0:
            raise invalid_argument(FieldViolation("delta", "must not be zero"))
        _positive_points(abs(delta), "delta")
        _reference(reference)

        async def compute(head: Head, now: datetime, new_id: str, ledger: Lookup) -> Plan:
            if delta > 0:
                lot = PointsLot(
                    new_id, delta, delta, now, rules.expiry_for(now), f"{ADJUST}:{reference}"
                )
                return Plan(
                    lots=rules.add_lot(head.lots, lot),
                    available_time=now,
                    expire_time=lot.expire_time,
                    extra={"asked": delta},
                )
            lots, takes = rules.take(head.lots, -delta, rules.removal_order(head.lots, now))
            taken = sum(item.points for item in takes)
            return Plan(lots=lots, takes=takes, shortfall=-delta - taken, extra={"asked": delta})

        written = await self._change(
            member_id, ADJUST, reference, compute, note=reason, actor=actor
        )
        assert written is not None
        return written

    async def expire(self, member_id: str) -> Written | None:
        """Expires the member's due lots (one entry); None when nothing is due. Safe to run
        any number of times, concurrently: a second run finds nothing due."""

        async def compute(head: Head, now: datetime, new_id: str, ledger: Lookup) -> Plan | None:
            lots, takes = rules.expire_due(head.lots, now)
            if not takes:
                return None
            return Plan(lots=lots, takes=takes)

        return await self._change(
            member_id,
            EXPIRE,
            lambda head: entry_id(head.member_id, head.seq + 1),
            compute,
            note="expired",
            follow_merges=False,
        )

    async def expire_due(self, now: datetime, limit: int = DEFAULT_BATCH) -> tuple[int, int, bool]:
        """One batch of the expiry sweep: (members expired, points expired, more due)."""
        cursor = self._members.find(
            {"points.next_expiry": {"$lte": now}}, {"_id": 1}, limit=limit + 1
        )
        due = [doc["_id"] async for doc in cursor]
        members = points = 0
        for member_id in due[:limit]:
            written = await self.expire(member_id)
            if written is not None:
                members += 1
                points -= written.entry.delta
        return members, points, len(due) > limit

    # ---- reads ------------------------------------------------------------------------------

    async def head(
        self, member_id: str, *, follow_merges: bool = True, roll_forward: bool = True
    ) -> Head:
        """The member's head (the survivor's for a merged member), with a dangling entry
        rolled forward first (unless `roll_forward` is off: a read without any write)."""
        head = await self._head(member_id, follow_merges)
        if roll_forward and await self._roll_forward(head):
            head = await self._head(head.member_id, False)
        return head

    async def find_entry(self, kind: str, reference: str) -> Document | None:
        return await self._ledger.find_one({"kind": kind, "reference": reference})

    async def entries(
        self, member_id: str, limit: int, before_seq: int | None
    ) -> tuple[Head, list[LedgerEntry]]:
        """The member's own entries (not its survivor's), newest first, up to its head."""
        head = await self.head(member_id, follow_merges=False)
        upper = head.seq if before_seq is None else min(head.seq, before_seq - 1)
        cursor = (
            self._ledger.find({"member_id": head.member_id, "seq": {"$lte": upper}})
            .sort("seq", -1)
            .limit(limit)
        )
        return head, [entry_from_document(doc) async for doc in cursor]

    # ---- crash recovery -----------------------------------------------------------------------

    async def roll_forward_recent(self, now: datetime) -> int:
        """Applies entries whose head write was lost (a crash between insert and head write)
        among those written since the last scan; returns how many were applied."""
        state = await self._db[JOB_STATE].find_one({"_id": "roll_forward"})
        checked = state["checked_until"] if state else None
        until = now.timestamp() - ROLL_FORWARD_SETTLE_SECONDS
        upper = datetime.fromtimestamp(until, UTC)
        query: Document = {"create_time": {"$lte": upper}}
        if checked is not None:
            lower = datetime.fromtimestamp(checked.timestamp() - ROLL_FORWARD_OVERLAP_SECONDS, UTC)
            query["create_time"]["$gt"] = lower
        newest: dict[str, int] = {}
        async for doc in self._ledger.find(query, {"member_id": 1, "seq": 1}):
            member = doc["member_id"]
            newest[member] = max(newest.get(member, 0), int(doc["seq"]))
        applied = 0
        if newest:
            heads = self._members.find({"_id": {"$in": list(newest)}}, {"points.seq": 1})
            async for doc in heads:
                seq = int((doc.get("points") or {}).get("seq", 0))
                if seq < newest[doc["_id"]]:
                    head = await self._head(doc["_id"], False)
                    if await self._roll_forward(head):
                        applied += 1
        if checked is None or upper > checked:
            await self._db[JOB_STATE].update_one(
                {"_id": "roll_forward"}, {"$max": {"checked_until": upper}}, upsert=True
            )
        return applied

    # ---- the write path -------------------------------------------------------------------

    async def _head(self, member_id: str, follow_merges: bool) -> Head:
        doc = await self._members.find_one({"_id": member_id}, MEMBER_PROJECTION)
        if doc is None:
            raise not_found("member", member_id)
        hops = 0
        while follow_merges and doc.get("merged_into"):
            hops += 1
            target = doc["merged_into"]
            next_doc = await self._members.find_one({"_id": target}, MEMBER_PROJECTION)
            if next_doc is None or hops > MAX_MERGE_HOPS:
                raise invalid_state(
                    f"member {member_id!r} was merged into {target!r}, which is not found",
                    member_id=member_id,
                )
            doc = next_doc
        return head_from_member_document(doc)

    async def _roll_forward(self, head: Head) -> bool:
        """Applies the entries after head.seq that exist (their head write was lost or is in
        flight), one compare-and-set each, in order."""
        seq = head.seq
        while True:
            ahead = await self._ledger.find_one({"_id": entry_id(head.member_id, seq + 1)})
            if ahead is None:
                return seq > head.seq
            await self._advance(head.member_id, seq, ahead)
            seq += 1

    async def _advance(self, member_id: str, seq: int, doc: Document) -> None:
        """Head `seq` -> the entry `doc`; a no-op if someone already moved it."""
        await self._members.update_one(
            {"_id": member_id, "points.seq": seq}, {"$set": {"points": doc["head"]}}
        )

    async def _commit(self, head: Head, docs: Sequence[Document]) -> None:
        """The head write after our own inserts: from `head` straight to the last of `docs`
        (tests replace it to simulate a crash). If another writer moved the head meanwhile
        (rolling some of our entries forward), the rest is rolled forward."""
        result = await self._members.update_one(
            {"_id": head.member_id, "points.seq": head.seq},
            {"$set": {"points": docs[-1]["head"]}},
        )
        if result.matched_count == 0:
            await self._roll_forward(await self._head(head.member_id, False))

    async def _find(self, kind: str, reference: str) -> Document | None:
        return await self._ledger.find_one({"reference": reference, "kind": kind})

    async def _answer(self, doc: Document, head: Head, requested_id: str) -> Written:
        """An entry found under a change's (reference, kind): it must be this member's (or a
        member merged into it); its head is brought up to it before answering."""
        if doc.get("void"):
            raise reverted_first(doc["reference"])
        owner = doc["member_id"]
        if owner not in (requested_id, head.member_id, *head.merged_ids):
            survivor = await self._head(owner, True)
            if survivor.member_id != head.member_id:
                raise key_reused(doc["kind"], doc["reference"])
        if owner != head.member_id or head.seq < int(doc["seq"]):
            await self._roll_forward(await self._head(owner, False))
        return Written(entry_from_document(doc), doc, replayed=True)

    async def _change(
        self,
        member_id: str,
        kind: str,
        reference: str | Callable[[Head], str],
        compute: Compute,
        *,
        note: str = "",
        actor: Actor = SYSTEM,
        follow_merges: bool = True,
    ) -> Written | None:
        """Queues the change on its member; one drainer per member and process writes the
        queued changes in batches (group commit)."""
        request = _Request(
            kind, reference, compute, note, actor, asyncio.get_running_loop().create_future()
        )
        key = (member_id, follow_merges)
        self._queues.setdefault(key, []).append(request)
        if key not in self._drainers:
            self._drainers[key] = asyncio.create_task(self._drain(key))
        # A caller that goes away does not cancel the change (it may be written already).
        return await asyncio.shield(request.future)

    async def _drain(self, key: tuple[str, bool]) -> None:
        member_id, follow_merges = key
        batch: list[_Request] = []
        try:
            while queue := self._queues.get(key):
                batch = queue[:MAX_BATCH]
                del queue[: len(batch)]
                try:
                    await self._run(member_id, follow_merges, batch)
                except Exception as error:  # a failed command fails its batch, not the queue
                    for request in batch:
                        _settle(request, error)
        finally:
            self._drainers.pop(key, None)
            # Anything left unanswered (only when the process is stopping) fails as aborted.
            for request in [*batch, *self._queues.pop(key, [])]:
                _settle(request, contention(member_id))

    async def _run(self, member_id: str, follow_merges: bool, batch: list[_Request]) -> None:
        """One batch: read the head, compute each change on the head the previous ones left,
        insert the entries in one ordered insert, move the head once. An entry that collides
        ends the insert there: a replay is answered, a lost race for its seq rolls the other
        writer forward, and the changes after it are computed again on the new head."""
        for attempt in range(MAX_ATTEMPTS):
            if not batch:
                return
            try:
                head = await self._head(member_id, follow_merges)
            except ServiceError as error:
                for request in batch:
                    _settle(request, error)
                return
            lookup = Lookup(self._ledger)
            now = self._clock()
            state = head
            written: list[tuple[_Request, Document]] = []
            same: list[tuple[_Request, Document]] = []  # a replay of a change in this batch
            for request in batch:
                fixed = isinstance(request.reference, str)
                ref = (
                    request.reference
                    if isinstance(request.reference, str)
                    else (request.reference(state))
                )
                if fixed and (ref, request.kind) in lookup.pending:
                    same.append((request, lookup.pending[(ref, request.kind)]))
                    continue
                try:
                    if state.closed is not None and request.kind not in (TRANSFER_OUT, EXPIRE):
                        raise merge_in_progress(state.member_id, state.closed)
                    new_id = entry_id(state.member_id, state.seq + 1)
                    plan = await request.compute(state, now, new_id, lookup)
                except ServiceError as error:
                    # A replay is answered even when the change would be refused now.
                    found = await self._find(request.kind, ref) if fixed else None
                    if found is None:
                        _settle(request, error)
                    else:
                        await self._settle_answer(request, found, head, member_id)
                    continue
                if plan is None:
                    _settle(request, None)
                    continue
                doc = self._entry_document(
                    state, new_id, request.kind, ref, plan, now, request.note, request.actor
                )
                written.append((request, doc))
                lookup.pending[(ref, request.kind)] = doc
                state = Head(
                    state.member_id,
                    int(doc["seq"]),
                    head_from_member_document({"_id": state.member_id, "points": doc["head"]}).lots,
                    doc["head"]["closed"],
                    state.merged_ids,
                )
            inserted = len(written)
            if written:
                try:
                    await self._ledger.insert_many([doc for _, doc in written], ordered=True)
                except BulkWriteError as error:
                    inserted = int(error.details.get("nInserted", 0))
                if inserted:
                    await self._commit(head, [doc for _, doc in written[:inserted]])
            done = {doc["_id"] for _, doc in written[:inserted]}
            for request, doc in written[:inserted]:
                _settle(request, Written(entry_from_document(doc), doc, replayed=False))
            for request, doc in same:
                if doc["_id"] in done:
                    _settle(request, Written(entry_from_document(doc), doc, replayed=True))
            if inserted == len(written):
                return
            # written[inserted] collided: a replay of an entry in the ledger, or its seq was
            # taken by another writer (another replica, or a merge writing the same head).
            request, doc = written[inserted]
            rest = [r for r, _ in written[inserted + 1 :]]
            rest += [r for r, d in same if d["_id"] not in done]
            found = (
                await self._find(request.kind, doc["reference"])
                if isinstance(request.reference, str)
                else None
            )
            if found is not None:
                await self._settle_answer(request, found, head, member_id)
            else:
                rest.insert(0, request)
                await self._roll_forward(await self._head(member_id, follow_merges))
                await asyncio.sleep(random.uniform(0, 0.001 * min(attempt + 1, 20)))
            batch = rest
        for request in batch:
            _settle(request, contention(member_id))

    async def _settle_answer(
        self, request: _Request, found: Document, head: Head, requested_id: str
    ) -> None:
        try:
            _settle(request, await self._answer(found, head, requested_id))
        except ServiceError as error:
            _settle(request, error)

    @staticmethod
    def _entry_document(
        head: Head,
        new_id: str,
        kind: str,
        reference: str,
        plan: Plan,
        now: datetime,
        note: str,
        actor: Actor,
    ) -> Document:
        seq = head.seq + 1
        closed = plan.closed if plan.closed is not None else head.closed
        after = head_document(seq, rules.consolidate(plan.lots, now), closed)
        return {
            "_id": new_id,
            "member_id": head.member_id,
            "seq": seq,
            "kind": kind,
            "reference": reference,
            "delta": after["total"] - head.total,
            "total_after": after["total"],
            "note": note,
            "shortfall": plan.shortfall,
            "actor": actor_to_document(actor),
            "create_time": now,
            "available_time": plan.available_time,
            "expire_time": plan.expire_time,
            "takes": [take_to_document(item) for item in plan.takes],
            **plan.extra,
            "head": after,
        }


def _reference(value: str, name: str = "reference") -> None:
    if not value or not value.strip():
        raise invalid_argument(FieldViolation(name, "is required"))
    if len(value) > 200:
        raise invalid_argument(FieldViolation(name, "must be at most 200 characters"))


async def expiry_job(books: Books, now: datetime) -> int:
    """One pass of the background job: entries whose head write was lost are applied, then
    one batch of due lots is expired. Returns how much it did (0 = nothing due)."""
    applied = await books.points.roll_forward_recent(now)
    members, _, _ = await books.points.expire_due(now)
    return applied + members


# ---- demo data -------------------------------------------------------------------------------

OPENING_TIME = datetime(2025, 12, 31, 16, 0, tzinfo=UTC)  # 2026-01-01 00:00 Shanghai
"""Demo opening balances are dated at the start of 2026 (Shanghai), so they expire at the
end of 2027 whenever the seed runs, and the seed writes the same documents every time."""


def opening_entry(member_id: str, points: int) -> Document:
    """The demo member's first ledger entry: its opening balance as one available lot."""
    new_id = entry_id(member_id, 1)
    lot = PointsLot(
        new_id,
        points,
        points,
        OPENING_TIME,
        rules.expiry_for(OPENING_TIME),
        f"{OPENING}:{member_id}",
    )
    after = head_document(1, (lot,), None)
    return {
        "_id": new_id,
        "member_id": member_id,
        "seq": 1,
        "kind": OPENING,
        "reference": member_id,
        "delta": points,
        "total_after": points,
        "note": "opening balance",
        "shortfall": 0,
        "actor": actor_to_document(SYSTEM),
        "create_time": OPENING_TIME,
        "available_time": OPENING_TIME,
        "expire_time": lot.expire_time,
        "takes": [],
        "asked": points,
        "head": after,
    }


async def seed_opening_points(
    database: AsyncDatabase[Document],
    member_documents: Sequence[Document],
    opening: Mapping[str, int],
) -> SeedReport:
    """Demo seed: each member's opening balance as an "opening" entry (seq 1), and the member
    documents' `points` set to that entry's head, so the documents the seed then upserts
    agree with the ledger (and are the same on every run). Entries are inserted before the
    members are written: a crash in between leaves an entry its head has not caught up
    with, which any later write or the expiry job rolls forward."""
    await ensure_indexes(database, INDEXES)
    inserted = unchanged = 0
    for member in member_documents:
        points = opening.get(member["_id"], 0)
        if points <= 0:
            continue
        entry = opening_entry(member["_id"], points)
        try:
            await database[LEDGER].insert_one(entry)
            inserted += 1
        except DuplicateKeyError:
            unchanged += 1
        member["points"] = entry["head"]
    return SeedReport(LEDGER, inserted, 0, unchanged)
