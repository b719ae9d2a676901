"""Merging two members: crash-safe, idempotent, step by step from a merge record.

A merge record in `merges`, `_id` = the absorbed member's id (a member is absorbed at most
once), names the survivor and lists the steps done. Every step is idempotent and reads the
state it needs from the documents themselves, so a merge interrupted anywhere and run again
(by a retried MergeMembers, a concurrent duplicate, or the resume job) ends in exactly the
state of an uninterrupted one. Steps, in order:

- mark       absorbed -> status MERGED, merged_into = survivor; survivor gets the absorbed
             id in `absorbing`. One transaction over the two documents (the one rule here that
             spans documents): it needs the absorbed ACTIVE and absorbing nothing, and the
             survivor ACTIVE. Two merges A->B and B->A (or A->B and B->C) started together
             both pass alone; writing both documents in one transaction makes them conflict,
             the second is retried and refused. From here on every write naming the absorbed
             is redirected to the survivor (`resolve_member`, `follow_merges`), so its state
             is frozen for the steps below.
- identities claims of the absorbed point to the survivor; its identity list is moved.
- points_out / points_in   a transfer_out entry empties the absorbed's lots, a transfer_in
             entry on the survivor adds exactly those lots (PointsBook, keyed by the merge).
- coupons    the absorbed's coupons belong to the survivor (CouponBook, ids unchanged).
- tags       union: each absorbed tag record is pushed with its original who/where/when
             unless the survivor has the tag (then the survivor's record stays).
- referrals  ReferralBook.reassign_member: members the absorbed invited now point to the
             survivor; the survivor keeps its own referrer, else takes the absorbed one's; a
             link that would become a self-referral or a cycle is voided.
- guide      the survivor keeps its exclusive guide (and home store), else takes the
             absorbed one's; audited as associate_assigned.
- history    birthday kept, else taken; TierBook.merge_history: spend records follow the
             survivor, tier recomputed (a merge never lowers it), last purchase = the later,
             join time = the earlier, last_activity_time with them.
- finish     survivor: merged_ids += absorbed + what the absorbed had absorbed; `absorbing`
             released.
- audit      merged_away on the absorbed, merged_in on the survivor; the record COMPLETED.

Tests interrupt a merge after any step with `MergeProcess.run(..., fail_after=step)`; the
RPC never passes it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import grpc
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from member_svc.audit import actor_from_document, actor_to_document
from member_svc.domain import Actor, Member, MemberStatus
from member_svc.repository import IDENTITIES, MEMBERS, MemberRepository, member_from_document
from member_svc.settings import MemberSettings
from member_svc.tags import push_tag
from retail.common.v1 import common_pb2
from retail_kit.errors import ServiceError
from retail_kit.mongo import Document, IndexDeclaration

if TYPE_CHECKING:
    from member_svc.books import Books

log = logging.getLogger(__name__)

MERGES = "merges"
RUNNING = "running"
COMPLETED = "completed"
MAX_MERGE_HOPS = 8
# A running merge untouched this long is taken over by the resume job (a crashed caller).
RESUME_AFTER = timedelta(seconds=30)
RESUME_BATCH = 20

STEPS: tuple[str, ...] = (
    "mark",
    "identities",
    "points_out",
    "points_in",
    "coupons",
    "tags",
    "referrals",
    "guide",
    "history",
    "finish",
    "audit",
)

INDEXES: tuple[IndexDeclaration, ...] = (
    # The resume job: running merges nobody has moved for a while.
    IndexDeclaration(MERGES, (("status", 1), ("update_time", 1)), "status_update_time"),
)


class MergeInterrupted(Exception):
    """Raised by `run(..., fail_after=step)`: a simulated crash right after `step`."""


class _Refused(Exception):
    pass


@dataclass(frozen=True, slots=True)
class MergeRecord:
    absorbed_id: str
    survivor_id: str
    merge_id: str
    reason: str
    actor: Actor
    idempotency_key: str
    status: str
    steps: tuple[str, ...]
    create_time: datetime
    update_time: datetime
    finish_time: datetime | None


def merge_id_for(absorbed_id: str) -> str:
    return f"merge:{absorbed_id}"


def record_from_document(doc: Document) -> MergeRecord:
    return MergeRecord(
        absorbed_id=doc["_id"],
        survivor_id=doc["survivor_id"],
        merge_id=doc["merge_id"],
        reason=doc.get("reason", ""),
        actor=actor_from_document(doc.get("actor")),
        idempotency_key=doc.get("idempotency_key", ""),
        status=doc["status"],
        steps=tuple(doc.get("steps", ())),
        create_time=doc["create_time"],
        update_time=doc["update_time"],
        finish_time=doc.get("finish_time"),
    )


def member_merged(member_id: str, merged_into: str) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.FAILED_PRECONDITION,
        common_pb2.ERROR_REASON_MEMBER_MERGED,
        f"member {member_id!r} was merged into {merged_into!r}",
        metadata={"member_id": member_id, "merged_into": merged_into},
    )


def merge_in_progress(member_id: str) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.ABORTED,
        common_pb2.ERROR_REASON_IN_PROGRESS,
        f"member {member_id!r} is absorbing another member right now; retry shortly",
        metadata={"member_id": member_id},
    )


async def follow_merges(repository: MemberRepository, member: Member) -> Member:
    """The member standing for `member` now: MERGED members are followed to the survivor."""
    for _ in range(MAX_MERGE_HOPS):
        if member.status is not MemberStatus.MERGED or not member.merged_into:
            return member
        survivor = await repository.get_member(member.merged_into)
        if survivor is None:  # pragma: no cover - survivors are never deleted
            return member
        member = survivor
    return member  # pragma: no cover - merge chains are short


class MergeProcess:
    def __init__(
        self,
        database: AsyncDatabase[Document],
        settings: MemberSettings,
        clock: Callable[[], datetime],
    ) -> None:
        self._db = database
        self._merges = database[MERGES]
        self._members = database[MEMBERS]
        self._identities = database[IDENTITIES]
        self._settings = settings
        self._clock = clock

    async def get(self, absorbed_id: str) -> MergeRecord | None:
        doc = await self._merges.find_one({"_id": absorbed_id})
        return record_from_document(doc) if doc else None

    async def begin(
        self,
        absorbed_id: str,
        survivor_id: str,
        *,
        reason: str,
        actor: Actor,
        idempotency_key: str,
        now: datetime,
    ) -> MergeRecord:
        """The merge record of `absorbed_id`: a new one, or the one a concurrent or earlier
        call made (the caller compares its survivor)."""
        doc: Document = {
            "_id": absorbed_id,
            "survivor_id": survivor_id,
            "merge_id": merge_id_for(absorbed_id),
            "reason": reason,
            "actor": actor_to_document(actor),
            "idempotency_key": idempotency_key,
            "status": RUNNING,
            "steps": [],
            "create_time": now,
            "update_time": now,
            "finish_time": None,
        }
        try:
            await self._merges.insert_one(doc)
        except DuplicateKeyError:
            existing = await self._merges.find_one({"_id": absorbed_id})
            if existing is None:  # pragma: no cover - refused records are deleted at once
                raise
            return record_from_document(existing)
        return record_from_document(doc)

    async def run(
        self, books: Books, record: MergeRecord, *, fail_after: str | None = None
    ) -> MergeRecord:
        """Drives the merge to its end from wherever it stands. `fail_after` (tests only)
        raises MergeInterrupted right after that step is recorded."""
        if fail_after is not None and fail_after not in STEPS:
            raise ValueError(f"unknown merge step {fail_after!r}")
        done = set(record.steps)
        for step in STEPS:
            if step not in done:
                await getattr(self, f"_step_{step}")(books, record)
                now = self._clock()
                update: dict[str, Any] = {
                    "$addToSet": {"steps": step},
                    "$set": {"update_time": now},
                }
                if step == STEPS[-1]:
                    update["$set"] |= {"status": COMPLETED, "finish_time": now}
                await self._merges.update_one({"_id": record.absorbed_id}, update)
            if step == fail_after:
                raise MergeInterrupted(step)
        fresh = await self.get(record.absorbed_id)
        assert fresh is not None
        return fresh

    async def resume_stale(self, books: Books, now: datetime) -> int:
        """Runs merges left RUNNING by a caller that went away; returns how many finished."""
        cursor = (
            self._merges.find({"status": RUNNING, "update_time": {"$lt": now - RESUME_AFTER}})
            .sort("update_time", 1)
            .limit(RESUME_BATCH)
        )
        finished = 0
        async for doc in cursor:
            try:
                await self.run(books, record_from_document(doc))
                finished += 1
            except ServiceError as error:
                log.warning("merge of %s refused on resume: %s", doc["_id"], error.message)
        return finished

    # ---- steps ---------------------------------------------------------------------------

    async def _member_doc(self, member_id: str) -> Document:
        doc = await self._members.find_one({"_id": member_id})
        if doc is None:  # pragma: no cover - members are never deleted
            raise RuntimeError(f"member {member_id} vanished during a merge")
        return doc

    async def _step_mark(self, books: Books, record: MergeRecord) -> None:
        absorbed, survivor = record.absorbed_id, record.survivor_id

        async def mark(session: AsyncClientSession) -> None:
            took = await self._members.update_one(
                {
                    "_id": absorbed,
                    "status": MemberStatus.ACTIVE.value,
                    "absorbing.0": {"$exists": False},
                },
                {
                    "$set": {
                        "status": MemberStatus.MERGED.value,
                        "merged_into": survivor,
                        "merge_id": record.merge_id,
                    },
                    "$inc": {"version": 1},
                },
                session=session,
            )
            if took.matched_count == 0:
                raise _Refused()
            held = await self._members.update_one(
                {"_id": survivor, "status": MemberStatus.ACTIVE.value},
                {"$addToSet": {"absorbing": absorbed}, "$inc": {"version": 1}},
                session=session,
            )
            if held.matched_count == 0:
                raise _Refused()

        try:
            async with self._db.client.start_session() as session:
                await session.with_transaction(mark)
        except _Refused:
            await self._refuse(record)

    async def _refuse(self, record: MergeRecord) -> None:
        """The mark could not be made: either a retried mark (done already) or the members
        changed since the request was judged; then the record goes and the caller learns why
        (a member merged away is final and named first; a member busy absorbing another is
        worth a retry)."""
        absorbed = await self._member_doc(record.absorbed_id)
        if absorbed.get("merge_id") == record.merge_id:
            return  # marked by an earlier run of this merge
        await self._merges.delete_one({"_id": record.absorbed_id, "steps": []})
        survivor = await self._member_doc(record.survivor_id)
        for doc in (absorbed, survivor):
            if doc["status"] == MemberStatus.MERGED.value:
                raise member_merged(doc["_id"], doc.get("merged_into") or "")
        raise merge_in_progress(record.absorbed_id)

    async def _step_identities(self, books: Books, record: MergeRecord) -> None:
        absorbed = await self._member_doc(record.absorbed_id)
        identities = [{"kind": i["kind"], "value": i["value"]} for i in absorbed["identities"]]
        async for claim in self._identities.find({"member_id": record.absorbed_id}):
            item = {"kind": claim["kind"], "value": claim["value"]}
            if item not in identities:
                identities.append(item)
        for item in identities:  # each added once, whoever runs the step
            await self._members.update_one(
                {"_id": record.survivor_id, "identities": {"$ne": item}},
                {"$push": {"identities": item}, "$inc": {"version": 1}},
            )
        await self._identities.update_many(
            {"member_id": record.absorbed_id}, {"$set": {"member_id": record.survivor_id}}
        )
        await self._members.update_one(
            {"_id": record.absorbed_id, "identities.0": {"$exists": True}},
            {"$set": {"identities": []}},
        )

    async def _step_points_out(self, books: Books, record: MergeRecord) -> None:
        await books.points.transfer_out(record.absorbed_id, record.merge_id)

    async def _step_points_in(self, books: Books, record: MergeRecord) -> None:
        await books.points.transfer_in(record.survivor_id, record.merge_id)

    async def _step_coupons(self, books: Books, record: MergeRecord) -> None:
        await books.coupons.reassign_member(record.absorbed_id, record.survivor_id)

    async def _step_tags(self, books: Books, record: MergeRecord) -> None:
        absorbed = member_from_document(await self._member_doc(record.absorbed_id))
        for tag in absorbed.tags:
            await push_tag(self._members, record.survivor_id, tag)

    async def _step_referrals(self, books: Books, record: MergeRecord) -> None:
        # Links to the absorbed follow the survivor, the survivor takes the absorbed's referrer
        # if it has none; a link that would become a self-referral or a cycle is voided.
        await books.referrals.reassign_member(record.absorbed_id, record.survivor_id)

    async def _step_guide(self, books: Books, record: MergeRecord) -> None:
        absorbed = await self._member_doc(record.absorbed_id)
        guide = absorbed.get("associate")
        if guide:
            await self._members.update_one(
                {"_id": record.survivor_id, "associate": None},
                {"$set": {"associate": guide}, "$inc": {"version": 1}},
            )
            survivor = await self._member_doc(record.survivor_id)
            if survivor.get("associate") == guide:
                await books.audit.record(
                    record.survivor_id,
                    "associate_assigned",
                    record.actor,
                    record.create_time,
                    {
                        "associate_id": guide["associate_id"],
                        "store_id": guide["store_id"],
                        "reason": f"merged from {record.absorbed_id}",
                        "merge_id": record.merge_id,
                    },
                    reference=record.merge_id,
                )
        if absorbed.get("home_store_id"):
            await self._members.update_one(
                {"_id": record.survivor_id, "home_store_id": None},
                {"$set": {"home_store_id": absorbed["home_store_id"]}, "$inc": {"version": 1}},
            )

    async def _step_history(self, books: Books, record: MergeRecord) -> None:
        absorbed = await self._member_doc(record.absorbed_id)
        if absorbed.get("birthday"):
            await self._members.update_one(
                {"_id": record.survivor_id, "birthday": None},
                {"$set": {"birthday": absorbed["birthday"]}, "$inc": {"version": 1}},
            )
        # Spend records, qualifying spend and tier, last purchase = max, join time = min and
        # last_activity_time with them.
        await books.tiers.merge_history(record.absorbed_id, record.survivor_id, record.merge_id)

    async def _step_finish(self, books: Books, record: MergeRecord) -> None:
        absorbed = await self._member_doc(record.absorbed_id)
        merged_ids = [record.absorbed_id, *absorbed.get("merged_ids", ())]
        await self._members.update_one(
            {"_id": record.survivor_id, "absorbing": record.absorbed_id},
            {
                "$addToSet": {"merged_ids": {"$each": merged_ids}},
                "$pull": {"absorbing": record.absorbed_id},
                "$inc": {"version": 1},
            },
        )

    async def _step_audit(self, books: Books, record: MergeRecord) -> None:
        details = {"merge_id": record.merge_id, "reason": record.reason}
        await books.audit.record(
            record.absorbed_id,
            "merged_away",
            record.actor,
            record.create_time,
            {**details, "into_member_id": record.survivor_id},
            reference=record.merge_id,
        )
        await books.audit.record(
            record.survivor_id,
            "merged_in",
            record.actor,
            record.create_time,
            {**details, "from_member_id": record.absorbed_id},
            reference=record.merge_id,
        )


async def resume_job(books: Books, now: datetime) -> int:
    """Background job: finishes merges whose caller went away mid-way."""
    return await books.merges.resume_stale(books, now)
