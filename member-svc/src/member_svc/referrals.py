"""Referrals (以老带新): invite codes, one referrer, no cycles, rewards on the first order.

A member's invite code is its `referral_code` (unique index on `members`). A referral is a
`referrals` document, `_id` = the referee's member id (a member has at most one referrer
by construction), with the referrer, the join time and the reward state:

    joined -> rewarding (reward_order_id chosen by a compare-and-set) -> rewarded
    void     a link a merge would have turned into a self-referral or a cycle
    merged   the referee was absorbed; the survivor carries the referral on (its own record)

The member document keeps `referred_by` (the contract's `referred_by_member_id`) and
`referral_rev`, a counter only the join transaction increments (see `join`).

Joining is the one rule here that spans documents: "the referrer's chain of referrers does
not contain the referee" reads other members than the one it writes. Two members joining
with each other's codes at the same time would each pass that check alone (each sees the
other without a referrer) and together make a cycle, and as they write different documents
no single-document condition can see the other. So the check and the writes run in one
transaction that also writes the ROOT of the referrer's chain (the member at its end, which
the check read as having no referrer): a concurrent join that would close a cycle must give
that root a referrer, i.e. write the same document, so the two transactions write-conflict
and the later one is retried against the committed state and refused. Writing only the
root (not the whole chain) is enough: a new cycle through a committed check's chain can only
come from an edge added at the chain's root.

Rewards: `reward_first_order` is called for every completed order. On the referee's first
one, a compare-and-set `joined -> rewarding` chooses that order; both sides then earn
through the points ledger (kind "referral_reward", references
"referral:<referee>:referrer" / "referral:<referee>:referee", idempotent there), and the
record becomes `rewarded`. A crash in between is finished by the next call for that member.
Amounts are the module constants REFERRER_REWARD_POINTS / REFEREE_REWARD_POINTS.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import grpc
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from member_svc.domain import SYSTEM, Member, MemberStatus
from member_svc.points import LedgerEntry
from member_svc.repository import MEMBERS, member_from_document
from member_svc.settings import MemberSettings
from retail.common.v1 import common_pb2
from retail_kit.errors import FieldViolation, ServiceError, not_found
from retail_kit.mongo import Document, IndexDeclaration

if TYPE_CHECKING:
    from member_svc.books import Books

log = logging.getLogger(__name__)

REFERRALS = "referrals"  # _id = referee member id

# Reward amounts, in points, given once per referral on the referee's first completed order.
# Constants (not settings): a change of the programme is a code change with its own review.
REFERRER_REWARD_POINTS = 200
REFEREE_REWARD_POINTS = 100
REWARD_KIND = "referral_reward"

JOINED = "joined"
REWARDING = "rewarding"
REWARDED = "rewarded"
VOID = "void"
MERGED = "merged"
LISTED_STATES = (JOINED, REWARDING, REWARDED)
# What a survivor's referral takes over from the absorbed member's.
CARRIED_ON_MERGE = ("state", "reward_order_id", "reward_time", "referrer_points", "referee_points")

MAX_CHAIN = 10_000  # referrer chains are short; a guard against corrupt data
MAX_MERGE_HOPS = 8

INDEXES = (
    # A referrer's referrals, newest first (ListReferrals), and the merge step's query.
    IndexDeclaration(
        REFERRALS, (("referrer_id", 1), ("join_time", -1), ("_id", -1)), "referrer_newest"
    ),
)


def reward_reference(referee_id: str, side: str) -> str:
    return f"referral:{referee_id}:{side}"


@dataclass(frozen=True, slots=True)
class Referral:
    referee_id: str
    referrer_id: str
    state: str
    join_time: datetime
    reward_order_id: str | None = None
    reward_time: datetime | None = None
    referrer_points: int = 0
    referee_points: int = 0


def referral_from_document(doc: Document) -> Referral:
    return Referral(
        referee_id=doc["_id"],
        referrer_id=doc["referrer_id"],
        state=doc["state"],
        join_time=doc["join_time"],
        reward_order_id=doc.get("reward_order_id"),
        reward_time=doc.get("reward_time"),
        referrer_points=int(doc.get("referrer_points", 0)),
        referee_points=int(doc.get("referee_points", 0)),
    )


def refused(rule: str, message: str, **metadata: str) -> ServiceError:
    """A join the member's state does not allow; metadata "rule" says which rule."""
    reason = (
        common_pb2.ERROR_REASON_LIMIT_REACHED
        if rule == "one_referrer"
        else common_pb2.ERROR_REASON_INVALID_STATE
    )
    return ServiceError(
        grpc.StatusCode.FAILED_PRECONDITION, reason, message, metadata={"rule": rule, **metadata}
    )


def unknown_invite_code() -> ServiceError:
    return ServiceError(
        grpc.StatusCode.NOT_FOUND,
        common_pb2.ERROR_REASON_NOT_FOUND,
        "no member has this invite code",
        violations=[FieldViolation("invite_code", "no member has this invite code")],
        metadata={"entity": "member", "field": "invite_code"},
    )


def self_referral() -> ServiceError:
    return ServiceError(
        grpc.StatusCode.INVALID_ARGUMENT,
        common_pb2.ERROR_REASON_INVALID_ARGUMENT,
        "invalid request: invite_code: is the member's own invite code",
        violations=[FieldViolation("invite_code", "is the member's own invite code")],
        metadata={"rule": "self_referral"},
    )


@dataclass(frozen=True, slots=True)
class ReferralPage:
    referrals: list[Referral]
    referees: dict[str, Member]
    next_key: list[Any] | None
    total_count: int
    total_points: int


class ReferralBook:
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
        self._referrals = database[REFERRALS]

    # -- joining --------------------------------------------------------------------------

    async def join(self, member_id: str, invite_code: str, now: datetime) -> tuple[Member, str]:
        """The referee (after the join) and its referrer's id. A replay with the code of the
        member's present referrer answers the same, changing nothing."""
        answer: list[tuple[str, str]] = []

        async def work(session: AsyncClientSession) -> None:
            answer.clear()
            answer.append(await self._join(session, member_id, invite_code, now))

        async with self._db.client.start_session() as session:
            await session.with_transaction(work)
        referee_id, referrer_id = answer[0]
        doc = await self._members.find_one({"_id": referee_id})
        if doc is None:  # pragma: no cover - members are never deleted
            raise not_found("member", referee_id)
        return member_from_document(doc), referrer_id

    async def _join(
        self, session: AsyncClientSession, member_id: str, invite_code: str, now: datetime
    ) -> tuple[str, str]:
        referee = await self._resolve(session, member_id, "member_id")
        # Codes are issued in capitals; one typed in small letters is the same code.
        codes = list(dict.fromkeys((invite_code, invite_code.upper())))
        code_owner = await self._members.find_one(
            {"referral_code": {"$in": codes}}, session=session
        )
        if code_owner is None:
            raise unknown_invite_code()
        referrer = await self._follow(session, code_owner)
        if referrer["_id"] == referee["_id"]:
            raise self_referral()
        if referee.get("referred_by") is not None:
            if referee["referred_by"] == referrer["_id"]:
                return referee["_id"], referrer["_id"]  # a replay
            raise refused(
                "one_referrer",
                f"member {referee['_id']!r} already has a referrer",
                referred_by=referee["referred_by"],
            )
        if referee.get("last_purchase_time") is not None:
            raise refused(
                "no_completed_order",
                f"member {referee['_id']!r} has already completed an order",
            )
        chain = await self._chain(session, referrer)
        if referee["_id"] in chain:
            raise refused(
                "no_cycle",
                f"member {referee['_id']!r} is in the referrer chain of {referrer['_id']!r}",
            )
        await self._link(session, referee["_id"], referrer["_id"], chain[-1], now)
        return referee["_id"], referrer["_id"]

    async def _link(
        self,
        session: AsyncClientSession,
        referee_id: str,
        referrer_id: str,
        root_id: str,
        join_time: datetime,
        extra: Document | None = None,
    ) -> None:
        """The writes of a join: the referee's link, the root touched (module docstring), the
        referral record (replaced if one exists, e.g. a void one)."""
        result = await self._members.update_one(
            {"_id": referee_id, "referred_by": None},
            {"$set": {"referred_by": referrer_id}, "$inc": {"referral_rev": 1}},
            session=session,
        )
        if result.matched_count != 1:  # pragma: no cover - read in this transaction
            raise RuntimeError(f"member {referee_id} changed inside its transaction")
        await self._members.update_one(
            {"_id": root_id}, {"$inc": {"referral_rev": 1}}, session=session
        )
        record = {
            "referrer_id": referrer_id,
            "state": JOINED,
            "join_time": join_time,
            "reward_order_id": None,
            "reward_time": None,
            "referrer_points": 0,
            "referee_points": 0,
            **(extra or {}),
        }
        await self._referrals.replace_one(
            {"_id": referee_id}, {"_id": referee_id, **record}, upsert=True, session=session
        )

    async def _resolve(
        self, session: AsyncClientSession | None, member_id: str, field: str
    ) -> Document:
        doc = await self._members.find_one({"_id": member_id}, session=session)
        if doc is None:
            raise not_found("member", member_id)
        return await self._follow(session, doc)

    async def _follow(self, session: AsyncClientSession | None, doc: Document) -> Document:
        """The member that stands for `doc` now (merged members lead to their survivor)."""
        for _ in range(MAX_MERGE_HOPS):
            if doc.get("status") != MemberStatus.MERGED.value or not doc.get("merged_into"):
                return doc
            survivor = await self._members.find_one({"_id": doc["merged_into"]}, session=session)
            if survivor is None:  # pragma: no cover - members are never deleted
                return doc
            doc = survivor
        return doc  # pragma: no cover - merge chains are short

    async def _chain(self, session: AsyncClientSession | None, start: Document) -> list[str]:
        """`start` and its referrers up to the root (the member with no referrer), following
        merges; the root is the last id."""
        chain = [start["_id"]]
        doc = start
        for _ in range(MAX_CHAIN):
            parent_id = doc.get("referred_by")
            if parent_id is None:
                return chain
            parent = await self._resolve(session, parent_id, "referred_by")
            if parent["_id"] in chain:  # a cycle in stored data: stop here, never loop
                log.error("referral cycle through %s", parent["_id"])
                return chain
            chain.append(parent["_id"])
            doc = parent
        raise RuntimeError(f"referral chain of {start['_id']} is too long")  # pragma: no cover

    # -- rewards --------------------------------------------------------------------------

    async def reward_first_order(
        self, books: Books, member_id: str, order_id: str, now: datetime
    ) -> list[LedgerEntry]:
        """Rewards both sides exactly once, on the referee's first completed order: the
        referrer's and the referee's `referral_reward` ledger entries (in that order) for the
        order that was first (and for its replays), [] for any other order or member."""
        doc = await self._referral_of(member_id)
        if doc is None:
            return []
        if doc["state"] == JOINED:
            await self._referrals.update_one(
                {"_id": doc["_id"], "state": JOINED},
                {"$set": {"state": REWARDING, "reward_order_id": order_id, "reward_time": now}},
            )
            doc = await self._referrals.find_one({"_id": doc["_id"]}) or doc
        if doc["state"] not in (REWARDING, REWARDED):
            return []
        if doc["state"] == REWARDING or doc.get("reward_order_id") == order_id:
            entries = await self._give(books, doc)
            if doc.get("reward_order_id") == order_id:
                return entries
        return []

    async def _give(self, books: Books, doc: Document) -> list[LedgerEntry]:
        """Both earn entries of a referral being (or already) rewarded; idempotent."""
        referee_id = doc["_id"]
        points = books.points
        note = f"referral reward, first order {doc['reward_order_id']}"
        referrer_entry = await points.earn(
            doc["referrer_id"],
            REFERRER_REWARD_POINTS,
            kind=REWARD_KIND,
            reference=reward_reference(referee_id, "referrer"),
            note=note,
            actor=SYSTEM,
        )
        referee_entry = await points.earn(
            referee_id,
            REFEREE_REWARD_POINTS,
            kind=REWARD_KIND,
            reference=reward_reference(referee_id, "referee"),
            note=note,
            actor=SYSTEM,
        )
        if doc["state"] == REWARDING:
            await self._referrals.update_one(
                {"_id": referee_id, "state": REWARDING},
                {
                    "$set": {
                        "state": REWARDED,
                        "referrer_points": REFERRER_REWARD_POINTS,
                        "referee_points": REFEREE_REWARD_POINTS,
                    }
                },
            )
        return [referrer_entry, referee_entry]

    async def _referral_of(self, member_id: str) -> Document | None:
        """The referral of `member_id`, or of the member it was merged into."""
        doc = await self._referrals.find_one({"_id": member_id})
        if doc is not None and doc["state"] != MERGED:
            return doc
        member = await self._members.find_one({"_id": member_id})
        if member is None or member.get("status") != MemberStatus.MERGED.value:
            return None
        survivor = await self._follow(None, member)
        if survivor["_id"] == member_id:  # pragma: no cover - a merged member has a survivor
            return None
        return await self._referrals.find_one({"_id": survivor["_id"]})

    # -- merges ---------------------------------------------------------------------------

    async def reassign_member(self, absorbed_id: str, survivor_id: str) -> None:
        """Members referred by the absorbed now point to the survivor, and the survivor takes
        the absorbed's referrer if it has none. A link that would become a self-referral or a
        cycle is voided instead (the member keeps no referrer; nothing more is rewarded).
        Idempotent: links already moved are skipped. Each link moves in a transaction with
        the same check (and root write) as a join."""
        cursor = self._referrals.find(
            {"referrer_id": absorbed_id, "state": {"$in": list(LISTED_STATES)}}, {"_id": 1}
        )
        referee_ids = [doc["_id"] async for doc in cursor]
        async with self._db.client.start_session() as session:
            for referee_id in referee_ids:

                async def move(s: AsyncClientSession, rid: str = referee_id) -> None:
                    await self._move_link(s, rid, absorbed_id, survivor_id)

                await session.with_transaction(move)

            async def take(s: AsyncClientSession) -> None:
                await self._take_referrer(s, absorbed_id, survivor_id)

            await session.with_transaction(take)

    async def _move_link(
        self, session: AsyncClientSession, referee_id: str, absorbed_id: str, survivor_id: str
    ) -> None:
        record = await self._referrals.find_one({"_id": referee_id}, session=session)
        if record is None or record["referrer_id"] != absorbed_id:
            return
        survivor = await self._resolve(session, survivor_id, "survivor_id")
        chain = await self._chain(session, survivor)
        if referee_id == survivor["_id"] or referee_id in chain:
            await self._members.update_one(
                {"_id": referee_id, "referred_by": absorbed_id},
                {"$set": {"referred_by": None}, "$inc": {"referral_rev": 1}},
                session=session,
            )
            await self._referrals.update_one(
                {"_id": referee_id}, {"$set": {"state": VOID}}, session=session
            )
            return
        await self._members.update_one(
            {"_id": referee_id},
            {"$set": {"referred_by": survivor["_id"]}, "$inc": {"referral_rev": 1}},
            session=session,
        )
        await self._members.update_one(
            {"_id": chain[-1]}, {"$inc": {"referral_rev": 1}}, session=session
        )
        await self._referrals.update_one(
            {"_id": referee_id},
            {"$set": {"referrer_id": survivor["_id"], "moved_from": absorbed_id}},
            session=session,
        )

    async def _take_referrer(
        self, session: AsyncClientSession, absorbed_id: str, survivor_id: str
    ) -> None:
        record = await self._referrals.find_one({"_id": absorbed_id}, session=session)
        if record is None or record["state"] not in LISTED_STATES:
            return
        survivor = await self._resolve(session, survivor_id, "survivor_id")
        if survivor.get("referred_by") is not None:
            return  # the survivor keeps its own referrer
        if record["state"] == JOINED and survivor.get("last_purchase_time") is not None:
            return  # the person has completed orders already: no first order to reward
        referrer = await self._resolve(session, record["referrer_id"], "referrer_id")
        chain = await self._chain(session, referrer)
        if survivor["_id"] in chain:
            return
        carried = {key: record.get(key) for key in CARRIED_ON_MERGE}
        await self._link(
            session,
            survivor["_id"],
            referrer["_id"],
            chain[-1],
            record["join_time"],
            {**carried, "merged_from": absorbed_id},
        )
        await self._referrals.update_one(
            {"_id": absorbed_id}, {"$set": {"state": MERGED}}, session=session
        )

    # -- reading --------------------------------------------------------------------------

    async def get(self, referee_id: str) -> Referral | None:
        doc = await self._referrals.find_one({"_id": referee_id})
        return referral_from_document(doc) if doc else None

    async def list_referrals(
        self, referrer_id: str, after: Sequence[Any] | None, limit: int
    ) -> ReferralPage:
        """The referrer's referrals newest first, after the (join_time, _id) key `after`."""
        query: Document = {"referrer_id": referrer_id, "state": {"$in": list(LISTED_STATES)}}
        page_query = dict(query)
        if after is not None:
            after_time = datetime.fromisoformat(after[0])
            page_query["$or"] = [
                {"join_time": {"$lt": after_time}},
                {"join_time": after_time, "_id": {"$lt": after[1]}},
            ]
        cursor = (
            self._referrals.find(page_query).sort([("join_time", -1), ("_id", -1)]).limit(limit + 1)
        )
        docs = [doc async for doc in cursor]
        more = len(docs) > limit
        docs = docs[:limit]
        referrals = [referral_from_document(doc) for doc in docs]
        found = {
            doc["_id"]: member_from_document(doc)
            async for doc in self._members.find({"_id": {"$in": [r.referee_id for r in referrals]}})
        }
        total_count = await self._referrals.count_documents(query)
        totals = [
            doc
            async for doc in await self._referrals.aggregate(
                [
                    {"$match": {"referrer_id": referrer_id, "state": REWARDED}},
                    {"$group": {"_id": None, "points": {"$sum": "$referrer_points"}}},
                ]
            )
        ]
        last = referrals[-1] if referrals else None
        return ReferralPage(
            referrals=referrals,
            referees=found,
            next_key=[last.join_time.isoformat(), last.referee_id] if more and last else None,
            total_count=total_count,
            total_points=int(totals[0]["points"]) if totals else 0,
        )
