"""Tier policy, rolling 12-month qualifying spend, upgrades at once, downgrades at review.

- Policy: one document `tier_policy` `_id` "current"; `loyalty_rules.DEFAULT_POLICY` until
  an admin sets one.
- Spend: `spend_records`, `_id` "<order>:completed" (+paid) / "<order>:<return id>"
  (-refunded); an insert is the idempotency of an order effect. Qualifying spend at `now` =
  sum of the member's records with `time` in (now - 365 days, now].
- Tier fields of the member document (tier, tier_since, tier_review_time,
  qualifying_spend, last_tier_change) change with a `version` compare-and-set; the
  spend is summed after reading the version, so a concurrent order's record is either in
  the sum or makes the compare-and-set fail and the sum is taken again.
- Upgrade at once when the spend reaches a higher tier (review a year later); at the
  review (`review_job`), spend that no longer qualifies drops the tier one step, otherwise
  it is retained, and the next review is a year on (none for the lowest tier).
- History: `tier_changes`, `_id` "<member>:<order|review|merge>:<reference>"; the member
  document carries its latest change too, and it is (re)inserted whenever that member's
  tiers are touched or listed, so a change whose history insert was lost still shows.
- Birthday bonus: given by the review job during the birthday month (Shanghai calendar),
  once per year (ledger reference "<member>:<year>"), by the tier held at that moment.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from member_svc import loyalty_rules as rules
from member_svc.domain import Tier
from member_svc.loyalty_errors import contention
from member_svc.repository import MEMBERS
from member_svc.settings import MemberSettings
from retail_kit.errors import ServiceError, not_found
from retail_kit.mongo import Document, IndexDeclaration
from retail_kit.seeding import SeedReport

if TYPE_CHECKING:
    from member_svc.books import Books

POLICY = "tier_policy"
POLICY_ID = "current"
SPEND = "spend_records"
CHANGES = "tier_changes"

INDEXES: tuple[IndexDeclaration, ...] = (
    IndexDeclaration(SPEND, (("member_id", 1), ("time", 1)), "member_time"),
    IndexDeclaration(SPEND, (("order_id", 1),), "order"),
    IndexDeclaration(CHANGES, (("member_id", 1), ("seq", -1)), "member_seq"),
    IndexDeclaration(MEMBERS, (("tier_review_time", 1),), "tier_review_time"),
    IndexDeclaration(MEMBERS, (("birthday", 1),), "birthday"),
)

MAX_ATTEMPTS = 50
DEFAULT_BATCH = 500
BIRTHDAY_BONUS_KIND = "birthday_bonus"

log = logging.getLogger(__name__)

# Given the member document: the fields to set and the change to record, or None.
Mutation = Callable[[Document], Awaitable["tuple[Document, Document | None] | None"]]


@dataclass(frozen=True, slots=True)
class TierChange:
    id: str
    member_id: str
    from_tier: str
    to_tier: str
    reason: str
    qualifying_spend: int
    change_time: datetime
    seq: int  # the member document version the change made: orders a member's changes


def change_from_document(doc: Document) -> TierChange:
    return TierChange(
        id=doc["_id"],
        member_id=doc["member_id"],
        from_tier=doc["from_tier"],
        to_tier=doc["to_tier"],
        reason=doc["reason"],
        qualifying_spend=int(doc.get("qualifying_spend", 0)),
        change_time=doc["change_time"],
        seq=int(doc.get("seq", 0)),
    )


def policy_to_document(policy: rules.TierPolicy) -> Document:
    return {
        "_id": POLICY_ID,
        "tiers": [
            {
                "code": level.code.value,
                "names": dict(level.names),
                "threshold": level.threshold,
                "multiplier_percent": level.multiplier_percent,
                "birthday_bonus": level.birthday_bonus,
            }
            for level in policy.tiers
        ],
        "points_per_yuan": policy.points_per_yuan,
        "points_per_yuan_redeemed": policy.points_per_yuan_redeemed,
        "max_redeem_percent": policy.max_redeem_percent,
        "update_time": policy.update_time,
    }


def policy_from_document(doc: Document) -> rules.TierPolicy:
    return rules.TierPolicy(
        tiers=tuple(
            rules.TierLevel(
                code=Tier(level["code"]),
                names=tuple(sorted(dict(level.get("names", {})).items())),
                threshold=int(level["threshold"]),
                multiplier_percent=int(level["multiplier_percent"]),
                birthday_bonus=int(level.get("birthday_bonus", 0)),
            )
            for level in doc["tiers"]
        ),
        points_per_yuan=int(doc["points_per_yuan"]),
        points_per_yuan_redeemed=int(doc["points_per_yuan_redeemed"]),
        max_redeem_percent=int(doc["max_redeem_percent"]),
        update_time=doc.get("update_time"),
    )


def _version_filter(doc: Document) -> Document:
    if "version" in doc:
        return {"_id": doc["_id"], "version": doc["version"]}
    return {"_id": doc["_id"], "version": {"$exists": False}}


class TierBook:
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
        self._spend = database[SPEND]
        self._changes = database[CHANGES]

    # ---- policy ---------------------------------------------------------------------------

    async def policy(self) -> rules.TierPolicy:
        doc = await self._db[POLICY].find_one({"_id": POLICY_ID})
        return policy_from_document(doc) if doc else rules.DEFAULT_POLICY

    async def set_policy(self, policy: rules.TierPolicy) -> rules.TierPolicy:
        """Replaces the policy (validated by the caller), stamped with the clock."""
        stored = rules.TierPolicy(
            tiers=policy.tiers,
            points_per_yuan=policy.points_per_yuan,
            points_per_yuan_redeemed=policy.points_per_yuan_redeemed,
            max_redeem_percent=policy.max_redeem_percent,
            update_time=self._clock(),
        )
        await self._db[POLICY].replace_one(
            {"_id": POLICY_ID}, policy_to_document(stored), upsert=True
        )
        return stored

    # ---- spend -------------------------------------------------------------------------------

    async def record_spend(
        self, member_id: str, record_id: str, order_id: str, amount: int, time: datetime
    ) -> tuple[Document, bool]:
        """Inserts a spend record once; (the stored record, whether this call inserted it)."""
        doc = {
            "_id": record_id,
            "member_id": member_id,
            "order_id": order_id,
            "amount": amount,
            "time": time,
            "create_time": self._clock(),
        }
        try:
            await self._spend.insert_one(doc)
            return doc, True
        except DuplicateKeyError:
            found = await self._spend.find_one({"_id": record_id})
            assert found is not None
            return found, False

    async def order_spend(self, order_id: str) -> list[Document]:
        return [doc async for doc in self._spend.find({"order_id": order_id})]

    async def rolling_spend(self, member_id: str, now: datetime) -> int:
        since = now - timedelta(days=rules.ROLLING_SPEND_DAYS)
        total = 0
        async for doc in self._spend.find(
            {"member_id": member_id, "time": {"$gt": since, "$lte": now}}, {"amount": 1}
        ):
            total += int(doc["amount"])
        return max(total, 0)

    # ---- tier changes ------------------------------------------------------------------------

    async def apply_spend(self, member_id: str, change_key: str) -> tuple[Tier, bool]:
        """After a spend record: the rolling spend is stored and the tier raised at once if
        it reaches a higher one (never lowered here). (tier now, whether this key raised it)"""
        policy = await self.policy()
        now = self._clock()
        change_id = f"{member_id}:{change_key}"

        async def mutate(doc: Document) -> tuple[Document, Document | None] | None:
            spend = await self.rolling_spend(member_id, now)
            current = Tier(doc["tier"])
            earned = policy.tier_for_spend(spend)
            if rules.RANK[earned] > rules.RANK[current]:
                change = _change_doc(change_id, member_id, current, earned, "upgrade", spend, now)
                return {
                    "tier": earned.value,
                    "tier_since": now,
                    "tier_review_time": rules.one_year_later(now),
                    "qualifying_spend": spend,
                }, change
            if doc.get("qualifying_spend") == spend:
                return None
            return {"qualifying_spend": spend}, None

        doc = await self._mutate(member_id, mutate)
        last = doc.get("last_tier_change") or {}
        return Tier(doc["tier"]), last.get("_id") == change_id

    async def review_member(self, member_id: str, now: datetime) -> str | None:
        """Reviews a member whose review time has come: "retained", "downgrade", "upgrade",
        or None when it is not due (already reviewed: idempotent)."""
        policy = await self.policy()
        outcome: list[str] = []

        async def mutate(doc: Document) -> tuple[Document, Document | None] | None:
            outcome.clear()
            review_time = doc.get("tier_review_time")
            if review_time is None or review_time > now:
                return None
            if doc.get("status") == "merged":
                return {"tier_review_time": None}, None
            spend = await self.rolling_spend(member_id, now)
            current = Tier(doc["tier"])
            new, reason = rules.review(policy, current, spend)
            if new == current and reason != "retained":
                reason = "retained"
            next_review: datetime | None = rules.one_year_later(review_time)
            while next_review is not None and next_review <= now:
                next_review = rules.one_year_later(next_review)
            if rules.RANK[new] <= rules.RANK[policy.tiers[0].code]:
                next_review = None
            fields: Document = {
                "tier": new.value,
                "tier_review_time": next_review,
                "qualifying_spend": spend,
            }
            if new != current:
                fields["tier_since"] = now
            change_id = f"{member_id}:review:{review_time.isoformat()}"
            outcome.append(reason)
            return fields, _change_doc(change_id, member_id, current, new, reason, spend, now)

        await self._mutate(member_id, mutate)
        return outcome[0] if outcome else None

    async def review_due(self, now: datetime, limit: int = DEFAULT_BATCH) -> tuple[int, int, bool]:
        """One batch of the review: (reviewed, downgraded, more due)."""
        cursor = self._members.find(
            {"tier_review_time": {"$lte": now}}, {"_id": 1}, limit=limit + 1
        ).sort("tier_review_time", 1)
        due = [doc["_id"] async for doc in cursor]
        reviewed = downgraded = 0
        for member_id in due[:limit]:
            outcome = await self.review_member(member_id, now)
            if outcome is not None:
                reviewed += 1
                downgraded += outcome == "downgrade"
        return reviewed, downgraded, len(due) > limit

    async def merge_history(self, absorbed_id: str, survivor_id: str, merge_id: str) -> None:
        """Merge step: the absorbed member's spend records follow the survivor; the survivor's
        rolling spend is recomputed; its tier becomes the best of its own, the absorbed's and
        what the spend reaches (a merge never lowers a tier); last purchase = max, join time
        = min. Idempotent."""
        absorbed = await self._members.find_one({"_id": absorbed_id})
        if absorbed is None:
            raise not_found("member", absorbed_id)
        await self._spend.update_many(
            {"member_id": absorbed_id}, {"$set": {"member_id": survivor_id}}
        )
        policy = await self.policy()
        now = self._clock()
        change_id = f"{survivor_id}:merge:{merge_id}"

        async def mutate(doc: Document) -> tuple[Document, Document | None] | None:
            spend = await self.rolling_spend(survivor_id, now)
            current = Tier(doc["tier"])
            absorbed_tier = Tier(absorbed["tier"])
            best = rules.higher(rules.higher(current, absorbed_tier), policy.tier_for_spend(spend))
            purchases = [
                t for t in (doc.get("last_purchase_time"), absorbed.get("last_purchase_time")) if t
            ]
            last_purchase = max(purchases) if purchases else None
            join_time = min(doc["join_time"], absorbed["join_time"])
            fields: Document = {
                "qualifying_spend": spend,
                "last_purchase_time": last_purchase,
                "join_time": join_time,
                "last_activity_time": max(join_time, last_purchase) if last_purchase else join_time,
            }
            change = None
            if best != current:
                if best == absorbed_tier and absorbed.get("tier_review_time") is not None:
                    review = absorbed["tier_review_time"]
                else:
                    review = rules.one_year_later(now)
                fields.update(tier=best.value, tier_since=now, tier_review_time=review)
                change = _change_doc(change_id, survivor_id, current, best, "merge", spend, now)
            if all(doc.get(key) == value for key, value in fields.items()):
                return None
            return fields, change

        await self._mutate(survivor_id, mutate)

    async def changes(self, member_id: str, limit: int, before_seq: int | None) -> list[TierChange]:
        """Newest first; the member's latest change is made sure of first."""
        doc = await self._members.find_one({"_id": member_id}, {"last_tier_change": 1})
        if doc is None:
            raise not_found("member", member_id)
        await self._record(doc.get("last_tier_change"))
        query: Document = {"member_id": member_id}
        if before_seq is not None:
            query["seq"] = {"$lt": before_seq}
        cursor = self._changes.find(query).sort("seq", -1).limit(limit)
        return [change_from_document(item) async for item in cursor]

    async def _record(self, change: Document | None) -> None:
        if change:
            with contextlib.suppress(DuplicateKeyError):
                await self._changes.insert_one(dict(change))

    async def _mutate(self, member_id: str, mutate: Mutation) -> Document:
        """Version compare-and-set of tier fields; returns the member document after it."""
        for _ in range(MAX_ATTEMPTS):
            doc = await self._members.find_one({"_id": member_id})
            if doc is None:
                raise not_found("member", member_id)
            result = await mutate(doc)
            if result is None:
                return doc
            fields, change = result
            update: Document = {"$set": dict(fields), "$inc": {"version": 1}}
            if change is not None:
                change = {**change, "seq": int(doc.get("version", 0)) + 1}
                update["$set"]["last_tier_change"] = change
            written = await self._members.update_one(_version_filter(doc), update)
            if written.matched_count == 1:
                await self._record(change)
                doc = {**doc, **update["$set"], "version": doc.get("version", 0) + 1}
                return doc
        raise contention(member_id)

    # ---- birthday bonus ------------------------------------------------------------------------

    async def birthday_bonuses(
        self, books: Books, now: datetime, limit: int = DEFAULT_BATCH
    ) -> int:
        """Gives this month's birthday members their tier's bonus once this year."""
        year, month = rules.business_year_month(now)
        policy = await self.policy()
        # A range on `birthday` alone is answered from its index; a regex, or a second
        # condition in the filter, makes SecantusDB 0.7 scan every member on every pass
        # (0.73 s against 0.08 s at 50k members), so the rest is checked here.
        cursor = self._members.find(
            {"birthday": {"$gte": f"{month:02d}-", "$lt": f"{month:02d}-~"}},
            {"_id": 1, "tier": 1, "birthday_bonus_year": 1, "status": 1},
        )
        due = [
            doc
            async for doc in cursor
            if doc.get("birthday_bonus_year") != year and doc.get("status") != "merged"
        ][:limit]
        given = 0
        for doc in due:
            bonus = policy.level(Tier(doc["tier"])).birthday_bonus
            if bonus > 0:
                try:
                    await books.points.earn(
                        doc["_id"],
                        bonus,
                        kind=BIRTHDAY_BONUS_KIND,
                        reference=f"{doc['_id']}:{year}",
                        note=f"birthday bonus {year}",
                    )
                except ServiceError:
                    log.warning("birthday bonus of %s deferred", doc["_id"], exc_info=True)
                    continue
            await self._members.update_one(
                {"_id": doc["_id"]}, {"$set": {"birthday_bonus_year": year}}
            )
            given += 1
        return given


def _change_doc(
    change_id: str,
    member_id: str,
    from_tier: Tier,
    to_tier: Tier,
    reason: str,
    spend: int,
    now: datetime,
) -> Document:
    return {
        "_id": change_id,
        "member_id": member_id,
        "from_tier": from_tier.value,
        "to_tier": to_tier.value,
        "reason": reason,
        "qualifying_spend": spend,
        "change_time": now,
    }


async def seed_default_policy(database: AsyncDatabase[Document]) -> SeedReport:
    """Demo seed: the default tier policy, stored only when there is none."""
    result = await database[POLICY].update_one(
        {"_id": POLICY_ID},
        {"$setOnInsert": policy_to_document(rules.DEFAULT_POLICY)},
        upsert=True,
    )
    inserted = int(result.upserted_id is not None)
    return SeedReport(POLICY, inserted, 0, 1 - inserted)


async def review_job(books: Books, now: datetime) -> int:
    """One pass of the background job: a batch of due tier reviews and of this month's
    birthday bonuses. Returns how much it did (0 = nothing due)."""
    reviewed, _, _ = await books.tiers.review_due(now)
    bonuses = await books.tiers.birthday_bonuses(books, now)
    return reviewed + bonuses
