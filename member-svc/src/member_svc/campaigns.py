"""Campaigns: a coupon template issued to a segment, resumable, once per member.

A campaign is one `campaigns` document: the template, the rule and `segment_time` (the
`now` its lifecycle stages are judged at, the launch time, so the audience does not drift
while the campaign runs), `total` (the segment's count at launch), the progress (`cursor`
= the last member id visited, `processed`, `issued`, `skipped`, `sold_out`), the lease
(`lease_owner`, `lease_until`) and `version`, a counter every step of the job moves by a
compare-and-set.

The job (`campaign_job`, on every replica) takes the lease of a running campaign whose lease
is free or expired (CAS on `version`), then page by page: the segment's next member ids after
the cursor (by `_id`), one `CouponBook.issue` per member with issue_ref
"campaign:<id>:<member>", then the cursor and the counters in one CAS on `version` (which
also renews the lease). Hence:

- a crash (or a lost lease) between issuing and the CAS leaves the cursor where it was; the
  next runner visits the page again and `issue` answers the coupons already issued by their
  issue_ref, so no member ever gets two, and the page is counted once, by the CAS that lands;
- two runners on one campaign (a lease stolen after expiring) each issue idempotently; the
  CAS lets only one of them advance from a given version, the other stops;
- cancel (`status` running -> cancelled) does not touch `version`, so the page in flight
  still records its counts and the job stops before the next page;
- LIMIT_REACHED per_member counts the member as skipped; LIMIT_REACHED total (sold out) ends
  the campaign: the members not reached are counted as sold_out, status completed;
- a paused template leaves the campaign running (the job tries again later); a template
  whose issue window is over, or that vanished, completes it (`stop_reason`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import socket
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import grpc
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from member_svc.audit import actor_from_document, actor_to_document
from member_svc.domain import SYSTEM, Actor, ActorKind
from member_svc.segments import SegmentRule, rule_from_document, rule_to_document
from member_svc.settings import MemberSettings
from retail.common.v1 import common_pb2
from retail_kit.errors import FieldViolation, ServiceError, not_found
from retail_kit.mongo import Document, IndexDeclaration, find_by_ids

if TYPE_CHECKING:
    from member_svc.books import Books

log = logging.getLogger(__name__)

CAMPAIGNS = "campaigns"

RUNNING = "running"
COMPLETED = "completed"
CANCELLED = "cancelled"

# A page's query costs about as much as counting the whole segment on SecantusDB 0.7 (0.4 s
# for "dormant of one store" at 100k members; docs/BENCHMARKS.md): pages are large, so that
# cost is paid a few times per campaign; cancel takes effect within one page.
PAGE_SIZE = 500
PAGES_PER_PASS = 4
LEASE_SECONDS = 60.0
ISSUE_CONCURRENCY = 8
LAUNCHERS = (ActorKind.ADMIN, ActorKind.STORE_MANAGER)

INDEXES = (
    # The job's query: running campaigns whose lease is free or over.
    IndexDeclaration(CAMPAIGNS, (("status", 1), ("lease_until", 1)), "status_lease"),
    # ListCampaigns, newest first.
    IndexDeclaration(CAMPAIGNS, (("create_time", -1), ("_id", -1)), "newest"),
)


@dataclass(frozen=True, slots=True)
class Campaign:
    id: str
    name: str
    template_id: str
    rule: SegmentRule
    status: str
    total: int
    processed: int
    issued: int
    skipped: int
    sold_out: int
    actor: Actor
    create_time: datetime
    finish_time: datetime | None
    segment_time: datetime
    cursor: str | None = None
    stop_reason: str | None = None


def campaign_from_document(doc: Document) -> Campaign:
    return Campaign(
        id=doc["_id"],
        name=doc["name"],
        template_id=doc["template_id"],
        rule=rule_from_document(doc["rule"]),
        status=doc["status"],
        total=int(doc["total"]),
        processed=int(doc.get("processed", 0)),
        issued=int(doc.get("issued", 0)),
        skipped=int(doc.get("skipped", 0)),
        sold_out=int(doc.get("sold_out", 0)),
        actor=actor_from_document(doc.get("actor")),
        create_time=doc["create_time"],
        finish_time=doc.get("finish_time"),
        segment_time=doc["segment_time"],
        cursor=doc.get("cursor"),
        stop_reason=doc.get("stop_reason"),
    )


def campaign_id_for(actor: Actor, idempotency_key: str) -> str:
    """The id a launch with this key gets: one campaign per (launcher, key)."""
    digest = hashlib.sha256(f"{actor.kind.value}\0{actor.id}\0{idempotency_key}".encode())
    return f"cp_{digest.hexdigest()[:20]}"


def _fingerprint(name: str, template_id: str, rule: SegmentRule) -> str:
    payload = [name, template_id, rule_to_document(rule)]
    return hashlib.sha256(json.dumps(payload, default=str, sort_keys=True).encode()).hexdigest()


def permission_denied(message: str, field: str) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.PERMISSION_DENIED,
        common_pb2.ERROR_REASON_PERMISSION_DENIED,
        message,
        violations=[FieldViolation(field, message)],
    )


def check_campaigner(actor: Actor, rule: SegmentRule) -> None:
    """An admin, or a store manager targeting exactly their own store's members."""
    if actor.kind not in LAUNCHERS:
        raise permission_denied("only an admin or a store manager runs campaigns", "actor.kind")
    if actor.kind is ActorKind.STORE_MANAGER:
        if not actor.store_id:
            raise permission_denied("a store manager acts for a store", "actor.store_id")
        if set(rule.home_store_ids) != {actor.store_id}:
            raise permission_denied(
                f"a store manager targets the members of store {actor.store_id!r} only: "
                f"set rule.home_store_ids to [{actor.store_id!r}]",
                "rule.home_store_ids",
            )


def key_reused(key: str) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.FAILED_PRECONDITION,
        common_pb2.ERROR_REASON_IDEMPOTENCY_KEY_REUSED,
        f"idempotency_key {key!r} already launched a different campaign",
        violations=[FieldViolation("idempotency_key", "already used for a different campaign")],
        metadata={"key": key},
    )


def invalid_state(message: str, **metadata: str) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.FAILED_PRECONDITION,
        common_pb2.ERROR_REASON_INVALID_STATE,
        message,
        metadata=metadata,
    )


class _Paused(Exception):
    """The template is paused: the campaign waits (stays running) until it is resumed."""


@dataclass(slots=True)
class _PageResult:
    issued: int = 0
    skipped: int = 0
    sold_out: int = 0
    stop_reason: str | None = None


class CampaignRunner:
    def __init__(
        self,
        database: AsyncDatabase[Document],
        settings: MemberSettings,
        clock: Callable[[], datetime],
    ) -> None:
        self._db = database
        self._settings = settings
        self._clock = clock
        self._campaigns = database[CAMPAIGNS]
        # Who holds a lease: this process and this runner (each Books has its own).
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.page_size = PAGE_SIZE
        self.pages_per_pass = PAGES_PER_PASS
        self.lease = timedelta(seconds=LEASE_SECONDS)
        self.issue_concurrency = ISSUE_CONCURRENCY

    # -- launch, read, cancel ---------------------------------------------------------------

    async def launch(
        self,
        books: Books,
        *,
        name: str,
        template_id: str,
        rule: SegmentRule,
        idempotency_key: str,
        actor: Actor,
        now: datetime,
    ) -> Campaign:
        """Launches once per (launcher, idempotency_key): a replay answers the campaign as it
        is now; the same key with another name, template or rule is IDEMPOTENCY_KEY_REUSED.
        The template must exist and be issuable now; `total` is the segment's count now."""
        check_campaigner(actor, rule)
        campaign_id = campaign_id_for(actor, idempotency_key)
        fingerprint = _fingerprint(name, template_id, rule)
        existing = await self._campaigns.find_one({"_id": campaign_id})
        if existing is not None:
            return self._replay(existing, fingerprint, idempotency_key)
        template = await books.coupons.require_template(template_id, "template_id")
        books.coupons.check_issuable(template, now)
        total = await books.segments.count(rule, now)
        doc: Document = {
            "_id": campaign_id,
            "name": name,
            "template_id": template_id,
            "rule": rule_to_document(rule),
            "segment_time": now,
            "status": RUNNING if total else COMPLETED,
            "total": total,
            "processed": 0,
            "issued": 0,
            "skipped": 0,
            "sold_out": 0,
            "cursor": None,
            "actor": actor_to_document(actor),
            "create_time": now,
            "finish_time": None if total else now,
            "lease_owner": None,
            "lease_until": None,
            "version": 0,
            "idempotency_key": idempotency_key,
            "fingerprint": fingerprint,
        }
        try:
            await self._campaigns.insert_one(doc)
        except DuplicateKeyError:
            existing = await self._campaigns.find_one({"_id": campaign_id})
            if existing is None:  # pragma: no cover - campaigns are never deleted
                raise
            return self._replay(existing, fingerprint, idempotency_key)
        return campaign_from_document(doc)

    @staticmethod
    def _replay(doc: Document, fingerprint: str, key: str) -> Campaign:
        if doc.get("fingerprint") != fingerprint:
            raise key_reused(key)
        return campaign_from_document(doc)

    async def get(self, campaign_id: str) -> Campaign | None:
        doc = await self._campaigns.find_one({"_id": campaign_id})
        return campaign_from_document(doc) if doc else None

    async def get_many(self, campaign_ids: Sequence[str]) -> dict[str, Campaign]:
        found = await find_by_ids(self._campaigns, campaign_ids)
        return {key: campaign_from_document(doc) for key, doc in found.items()}

    async def list_newest(
        self, limit: int, after: tuple[datetime, str] | None
    ) -> tuple[list[Campaign], bool]:
        query: Document = {}
        if after is not None:
            create_time, last_id = after
            query["$or"] = [
                {"create_time": {"$lt": create_time}},
                {"create_time": create_time, "_id": {"$lt": last_id}},
            ]
        cursor = self._campaigns.find(query).sort([("create_time", -1), ("_id", -1)])
        docs = [doc async for doc in cursor.limit(limit + 1)]
        return [campaign_from_document(d) for d in docs[:limit]], len(docs) > limit

    async def cancel(self, campaign_id: str, actor: Actor, now: datetime) -> Campaign:
        """Stops a running campaign at its next page; coupons issued stay. Idempotent: a
        cancelled campaign answers as it is; a completed one is INVALID_STATE."""
        campaign = await self.get(campaign_id)
        if campaign is None:
            raise not_found("campaign", campaign_id)
        check_campaigner(actor, campaign.rule)
        await self._campaigns.update_one(
            {"_id": campaign_id, "status": RUNNING},
            {
                "$set": {
                    "status": CANCELLED,
                    "finish_time": now,
                    "cancelled_by": actor_to_document(actor),
                }
            },
        )
        campaign = await self.get(campaign_id)
        assert campaign is not None
        if campaign.status == COMPLETED:
            raise invalid_state(
                f"campaign {campaign_id!r} has completed; there is nothing to cancel",
                campaign_id=campaign_id,
                status=campaign.status,
            )
        return campaign

    # -- the job ----------------------------------------------------------------------------

    async def run_pass(self, books: Books, now: datetime) -> int:
        """Takes the lease of one running campaign that is free (or whose lease is over) and
        runs up to `pages_per_pass` pages of it; returns the members visited (plus one for a
        campaign completed), 0 when nothing was due."""
        cursor = (
            self._campaigns.find({"status": RUNNING, "$or": self._lease_free(now)})
            .sort("lease_until", 1)
            .limit(5)
        )
        for doc in [d async for d in cursor]:
            version = await self._take_lease(doc, now)
            if version is not None:
                return await self._run(books, doc["_id"], version)
        return 0

    def _lease_free(self, now: datetime) -> list[Document]:
        """Free, over, or already this runner's (it goes on where its last pass stopped)."""
        return [
            {"lease_until": None},
            {"lease_until": {"$lte": now}},
            {"lease_owner": self.owner},
        ]

    async def _take_lease(self, doc: Document, now: datetime) -> int | None:
        result = await self._campaigns.update_one(
            {
                "_id": doc["_id"],
                "status": RUNNING,
                "version": doc["version"],
                "$or": self._lease_free(now),
            },
            {
                "$set": {"lease_owner": self.owner, "lease_until": self._clock() + self.lease},
                "$inc": {"version": 1},
            },
        )
        return int(doc["version"]) + 1 if result.modified_count == 1 else None

    async def _run(self, books: Books, campaign_id: str, version: int) -> int:
        visited = 0
        for _ in range(self.pages_per_pass):
            doc = await self._campaigns.find_one({"_id": campaign_id})
            if (
                doc is None
                or doc["status"] != RUNNING
                or doc["version"] != version
                or doc.get("lease_owner") != self.owner
            ):
                break  # cancelled, or another runner holds it now
            campaign = campaign_from_document(doc)
            ids = await books.segments.page_ids(
                campaign.rule, campaign.segment_time, campaign.cursor, self.page_size
            )
            try:
                result = await self._issue_page(books, campaign, ids)
            except _Paused:
                await self._release(campaign_id, version)
                break
            finished = len(ids) < self.page_size or result.stop_reason is not None
            rest = 0
            if result.stop_reason == "sold_out" and ids:
                rest = await books.segments.count_after(
                    campaign.rule, campaign.segment_time, ids[-1]
                )
            advanced = await self._advance(campaign_id, version, ids, result, rest, finished)
            if not advanced:
                break
            version += 1
            visited += len(ids) + rest + (1 if finished else 0)
            if finished:
                break
        return visited

    async def _issue_page(
        self, books: Books, campaign: Campaign, member_ids: Sequence[str]
    ) -> _PageResult:
        result = _PageResult()
        gate = asyncio.Semaphore(self.issue_concurrency)

        async def one(member_id: str) -> str:
            async with gate:
                return await self._issue_one(books, campaign, member_id)

        outcomes = await asyncio.gather(*(one(m) for m in member_ids))
        if "paused" in outcomes:
            raise _Paused
        for outcome in outcomes:
            if outcome == "issued":
                result.issued += 1
            elif outcome == "sold_out":
                result.sold_out += 1
                result.stop_reason = "sold_out"
            elif outcome == "skipped":
                result.skipped += 1
            else:  # the template's window is over or it is gone: nothing more can be issued
                result.skipped += 1
                result.stop_reason = result.stop_reason or outcome
        return result

    async def _issue_one(self, books: Books, campaign: Campaign, member_id: str) -> str:
        try:
            await books.coupons.issue(
                campaign.template_id,
                member_id,
                issue_ref=f"campaign:{campaign.id}:{member_id}",
                source=f"campaign:{campaign.id}",
                actor=SYSTEM,
            )
        except ServiceError as error:
            if error.reason == "LIMIT_REACHED":
                return "sold_out" if error.metadata.get("limit") == "total" else "skipped"
            if error.reason == "INVALID_STATE":
                return "paused"
            if error.reason == "EXPIRED":
                return "template_expired"
            if error.reason == "NOT_FOUND" and error.metadata.get("entity") == "member":
                return "skipped"
            if error.reason == "NOT_FOUND":
                return "template_gone"
            if error.reason in ("MEMBER_MERGED", "IDEMPOTENCY_KEY_REUSED"):
                return "skipped"  # merged away since the page was read
            raise
        return "issued"

    async def _advance(
        self,
        campaign_id: str,
        version: int,
        ids: Sequence[str],
        result: _PageResult,
        rest: int,
        finished: bool,
    ) -> bool:
        """The page's cursor and counts, in one CAS on `version` (and the lease renewed);
        `finished` completes the campaign unless it was cancelled meanwhile."""
        now = self._clock()
        update: Document = {
            "$set": {"lease_until": now + self.lease},
            "$inc": {
                "version": 1,
                "processed": len(ids) + rest,
                "issued": result.issued,
                "skipped": result.skipped,
                "sold_out": result.sold_out + rest,
            },
        }
        if ids:
            update["$set"]["cursor"] = ids[-1]
        condition: Document = {"_id": campaign_id, "version": version, "lease_owner": self.owner}
        if finished:
            done = {
                **update["$set"],
                "status": COMPLETED,
                "finish_time": now,
                "lease_owner": None,
                "lease_until": None,
            }
            if result.stop_reason:
                done["stop_reason"] = result.stop_reason
                if result.stop_reason != "sold_out":
                    log.warning("campaign %s stopped: %s", campaign_id, result.stop_reason)
            completed = await self._campaigns.update_one(
                {**condition, "status": RUNNING}, {**update, "$set": done}
            )
            if completed.modified_count == 1:
                return True
        moved = await self._campaigns.update_one(condition, update)
        return moved.modified_count == 1

    async def _release(self, campaign_id: str, version: int) -> None:
        """Gives the lease up for one lease period (a paused template is tried again then)."""
        await self._campaigns.update_one(
            {"_id": campaign_id, "version": version, "lease_owner": self.owner},
            {
                "$set": {"lease_owner": None, "lease_until": self._clock() + self.lease},
                "$inc": {"version": 1},
            },
        )


async def campaign_job(books: Books, now: datetime) -> int:
    """One pass of the background job; returns how much it did (0 = nothing due)."""
    return await books.campaigns.run_pass(books, now)


def campaign_fields(campaign: Campaign) -> dict[str, Any]:
    """The counters, for logs and benchmarks."""
    return {
        "total": campaign.total,
        "processed": campaign.processed,
        "issued": campaign.issued,
        "skipped": campaign.skipped,
        "sold_out": campaign.sold_out,
        "status": campaign.status,
    }
