"""Coupon templates and coupons: issue, claim, evaluate, lock, redeem, release.

Collections (member-svc/DESIGN.md, "Coupons"):

- `coupon_templates`: `_id` = template id; rules (immutable once created), `status`,
  `issued_count` and `ops` (the last OPS_KEPT issue operations counted). A claim code is
  unique by a partial unique index (templates without one carry no `claim_code` field).
- `coupons`: `_id` = "<template>:<member>:<slot>", slot 1..per-member limit, so the
  per-member limit is `_id` uniqueness; `issue_ref` unique (the idempotency of every way a
  coupon is issued); `code` unique (what the till scans).

Issuing, without a transaction: (1) insert the coupon ISSUING in the first free slot;
(2) count it: `update_one({_id: template, issued_count < total_limit, ops != op},
{$inc: issued_count, $push: ops})` with op = the coupon's code (new for every insert), so a
retried step is never counted twice; (3) mark it AVAILABLE. When (2) finds the template sold
out, the coupon is deleted. An ISSUING coupon left by a crash is finished by the next call
with its issue_ref, or by the job, by looking at `ops`.

Lock, redeem and release are each one conditional update on the coupon's status and order,
so of any number of concurrent calls for one coupon exactly one changes it, and a replay by
the same order answers what the first call did.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from member_svc.coupon_domain import (
    Coupon,
    CouponKind,
    CouponScope,
    CouponStatus,
    CouponTemplate,
    LineDiscount,
    TemplateStatus,
    coupon_id,
    new_code,
)
from member_svc.coupon_errors import (
    coupon_not_found,
    invalid_state,
    limit_reached,
    template_expired,
)
from member_svc.domain import Actor, Channel, MemberStatus
from member_svc.repository import MEMBERS
from member_svc.settings import MemberSettings
from retail_kit.errors import ServiceError, not_found
from retail_kit.mongo import Document, IndexDeclaration, find_by_ids

if TYPE_CHECKING:
    from member_svc.books import Books

__all__ = ["COUPONS", "COUPON_TEMPLATES", "Coupon", "CouponBook", "CouponTemplate"]

log = logging.getLogger(__name__)

COUPON_TEMPLATES = "coupon_templates"
COUPONS = "coupons"
OPS_KEPT = 1_000
MAX_MERGE_HOPS = 8
MAX_ATTEMPTS = 20
# An ISSUING coupon older than this was left by a crash; the job finishes it.
STALE_ISSUING = timedelta(minutes=1)


class PartialIndex(IndexDeclaration):
    """A unique index over the documents that have the (string) field: a claim code is
    unique among the templates that have one."""

    def model(self) -> Any:
        from pymongo import IndexModel

        field = self.keys[0][0]
        return IndexModel(
            list(self.keys),
            name=self.name,
            unique=self.unique,
            partialFilterExpression={field: {"$type": "string"}},
        )


INDEXES: tuple[IndexDeclaration, ...] = (
    PartialIndex(COUPON_TEMPLATES, (("claim_code", 1),), "claim_code", unique=True),
    # ListCouponTemplates: newest first.
    IndexDeclaration(COUPON_TEMPLATES, (("create_time", -1), ("_id", -1)), "newest"),
    IndexDeclaration(COUPONS, (("issue_ref", 1),), "issue_ref", unique=True),
    IndexDeclaration(COUPONS, (("code", 1),), "code", unique=True),
    # A member's coupons, newest first (ListMemberCoupons, EvaluateCoupons, merges).
    IndexDeclaration(COUPONS, (("member_id", 1), ("issue_time", -1), ("_id", -1)), "member_newest"),
    # The job: locks past lock_until, ISSUING coupons left by a crash, ended windows.
    IndexDeclaration(COUPONS, (("status", 1), ("lock_until", 1)), "status_lock_until"),
    IndexDeclaration(COUPONS, (("status", 1), ("valid_until", 1)), "status_valid_until"),
    IndexDeclaration(COUPONS, (("status", 1), ("issue_time", 1)), "status_issue_time"),
)


# -- documents -------------------------------------------------------------------------------


def template_to_document(template: CouponTemplate) -> Document:
    doc: Document = {
        "_id": template.id,
        "name": dict(template.name),
        "kind": template.kind.value,
        "currency": template.currency,
        "amount_off": template.amount_off,
        "percent_off": template.percent_off,
        "cap": template.cap,
        "threshold": template.threshold,
        "valid_from": template.valid_from,
        "valid_until": template.valid_until,
        "valid_days": template.valid_days,
        "scope": {
            "channels": [c.value for c in template.scope.channels],
            "store_ids": list(template.scope.store_ids),
            "category_ids": list(template.scope.category_ids),
            "sku_ids": list(template.scope.sku_ids),
        },
        "total_limit": template.total_limit,
        "per_member_limit": template.per_member_limit,
        "issued_count": template.issued_count,
        "ops": [],
        "combinable_with_points": template.combinable_with_points,
        "claim_store_ids": list(template.claim_store_ids),
        "status": template.status.value,
        "create_time": template.create_time,
    }
    if template.claim_code:
        doc["claim_code"] = template.claim_code
    return doc


def template_from_document(doc: Document) -> CouponTemplate:
    scope = doc.get("scope") or {}
    return CouponTemplate(
        id=doc["_id"],
        name=dict(doc.get("name") or {}),
        kind=CouponKind(doc["kind"]),
        scope=CouponScope(
            channels=tuple(Channel(c) for c in scope.get("channels", ())),
            store_ids=tuple(scope.get("store_ids", ())),
            category_ids=tuple(scope.get("category_ids", ())),
            sku_ids=tuple(scope.get("sku_ids", ())),
        ),
        amount_off=doc.get("amount_off", 0),
        percent_off=doc.get("percent_off", 0),
        cap=doc.get("cap", 0),
        threshold=doc.get("threshold", 0),
        valid_from=doc.get("valid_from"),
        valid_until=doc.get("valid_until"),
        valid_days=doc.get("valid_days", 0),
        total_limit=doc.get("total_limit", 0),
        per_member_limit=doc.get("per_member_limit", 0),
        issued_count=doc.get("issued_count", 0),
        combinable_with_points=doc.get("combinable_with_points", True),
        claim_code=doc.get("claim_code", ""),
        claim_store_ids=tuple(doc.get("claim_store_ids", ())),
        status=TemplateStatus(doc.get("status", TemplateStatus.ACTIVE.value)),
        create_time=doc.get("create_time"),
        currency=doc.get("currency", "CNY"),
    )


def _line_discounts_to_documents(lines: Sequence[LineDiscount]) -> list[Document]:
    return [{"i": d.line_index, "sku_id": d.sku_id, "amount": d.amount} for d in lines]


def coupon_from_document(doc: Document) -> Coupon:
    return Coupon(
        id=doc["_id"],
        template_id=doc["template_id"],
        member_id=doc["member_id"],
        status=CouponStatus(doc["status"]),
        valid_from=doc["valid_from"],
        valid_until=doc["valid_until"],
        code=doc["code"],
        issue_ref=doc["issue_ref"],
        source=doc.get("source", ""),
        issue_time=doc["issue_time"],
        order_id=doc.get("order_id") or "",
        lock_until=doc.get("lock_until"),
        redeem_time=doc.get("redeem_time"),
        discount=doc.get("discount", 0),
        line_discounts=tuple(
            LineDiscount(d["i"], d["sku_id"], d["amount"]) for d in doc.get("line_discounts", ())
        ),
        with_points=bool(doc.get("with_points", False)),
    )


def _duplicate_key(error: DuplicateKeyError) -> str:
    """The first field of the unique index a duplicate key error names."""
    pattern = (error.details or {}).get("keyPattern") or {}
    if pattern:
        return str(next(iter(pattern)))
    message = str(error)
    for key in ("issue_ref", "code", "claim_code"):
        if f"index: {key} " in message:
            return key
    return "_id"


class CouponBook:
    def __init__(
        self,
        database: AsyncDatabase[Document],
        settings: MemberSettings,
        clock: Callable[[], datetime],
    ) -> None:
        self._db = database
        self._settings = settings
        self._clock = clock
        self._templates = database[COUPON_TEMPLATES]
        self._coupons = database[COUPONS]

    # -- reads -----------------------------------------------------------------------------

    async def get_template(self, template_id: str) -> CouponTemplate | None:
        doc = await self._templates.find_one({"_id": template_id})
        return template_from_document(doc) if doc else None

    async def require_template(
        self, template_id: str, field: str = "template_id"
    ) -> CouponTemplate:
        template = await self.get_template(template_id)
        if template is None:
            raise coupon_not_found(field, template_id, "coupon template")
        return template

    async def get_templates(self, template_ids: Sequence[str]) -> dict[str, CouponTemplate]:
        found = await find_by_ids(self._templates, template_ids)
        return {key: template_from_document(doc) for key, doc in found.items()}

    async def get_coupon(self, coupon_id_: str) -> Coupon | None:
        doc = await self._coupons.find_one({"_id": coupon_id_})
        if doc is None or doc["status"] == CouponStatus.ISSUING.value:
            return None
        return coupon_from_document(doc)

    async def get_coupons(self, coupon_ids: Sequence[str]) -> dict[str, Coupon]:
        """Issued coupons by id (an ISSUING one is not issued yet)."""
        found = await find_by_ids(self._coupons, coupon_ids)
        return {
            key: coupon_from_document(doc)
            for key, doc in found.items()
            if doc["status"] != CouponStatus.ISSUING.value
        }

    async def _resolve_member(self, member_id: str) -> str:
        """The member standing for `member_id` now (merges followed), or NOT_FOUND."""
        current = member_id
        for _ in range(MAX_MERGE_HOPS):
            doc = await self._db[MEMBERS].find_one(
                {"_id": current}, {"status": 1, "merged_into": 1}
            )
            if doc is None:
                raise not_found("member", current)
            if doc.get("status") != MemberStatus.MERGED.value or not doc.get("merged_into"):
                return current
            current = doc["merged_into"]
        return current  # pragma: no cover - merge chains are short

    # -- issue -----------------------------------------------------------------------------

    async def issue(
        self, template_id: str, member_id: str, *, issue_ref: str, source: str, actor: Actor
    ) -> Coupon:
        """Issues one coupon of the template to the member (merges followed); idempotent by
        `issue_ref`: a replay answers the coupon the first call issued, whatever happened
        since. NOT_FOUND (template, member), FAILED_PRECONDITION LIMIT_REACHED
        {"limit": "total"|"per_member"}, INVALID_STATE (paused), EXPIRED (window over)."""
        existing = await self._coupons.find_one({"issue_ref": issue_ref})
        if existing is not None:
            return await self._finish(existing)
        template = await self.require_template(template_id)
        owner = await self._resolve_member(member_id)
        now = self._clock()
        self.check_issuable(template, now)
        return await self._issue_new(template, owner, issue_ref, source, actor, now)

    def check_issuable(self, template: CouponTemplate, now: datetime) -> None:
        if template.status is not TemplateStatus.ACTIVE:
            raise invalid_state(
                f"coupon template {template.id!r} is paused; nothing is issued",
                template_id=template.id,
                status=template.status.value,
            )
        if template.issue_closed(now):
            assert template.valid_until is not None
            raise template_expired(template.id, template.valid_until.isoformat())

    async def find_issued(self, issue_ref: str) -> Coupon | None:
        """The coupon issued under `issue_ref` (finished if a crash left it ISSUING)."""
        existing = await self._coupons.find_one({"issue_ref": issue_ref})
        return await self._finish(existing) if existing is not None else None

    async def _issue_new(
        self,
        template: CouponTemplate,
        member_id: str,
        issue_ref: str,
        source: str,
        actor: Actor,
        now: datetime,
    ) -> Coupon:
        limit = template.member_limit
        slots = [coupon_id(template.id, member_id, slot) for slot in range(1, limit + 1)]
        taken = await find_by_ids(self._coupons, slots) if limit > 1 else {}
        valid_from, valid_until = template.window_for(now)
        for candidate in (s for s in slots if s not in taken):
            for _ in range(MAX_ATTEMPTS):
                doc: Document = {
                    "_id": candidate,
                    "template_id": template.id,
                    "member_id": member_id,
                    "status": CouponStatus.ISSUING.value,
                    "valid_from": valid_from,
                    "valid_until": valid_until,
                    "code": new_code(),
                    "issue_ref": issue_ref,
                    "source": source,
                    "issue_time": now,
                    "actor": {"kind": actor.kind.value, "id": actor.id, "store_id": actor.store_id},
                }
                try:
                    await self._coupons.insert_one(doc)
                except DuplicateKeyError as error:
                    key = _duplicate_key(error)
                    if key == "code":
                        continue  # 50 random bits collided: draw another code
                    if key == "issue_ref":  # a concurrent replay inserted it first
                        return await self._replayed(issue_ref, template, member_id)
                    break  # the slot is taken: try the next one
                return await self._count(doc, template)
        # Every slot is taken; a concurrent replay may hold one of them.
        replayed = await self._coupons.find_one({"issue_ref": issue_ref})
        if replayed is not None:
            return await self._finish(replayed)
        raise limit_reached(template.id, "per_member", limit)

    async def _replayed(self, issue_ref: str, template: CouponTemplate, member_id: str) -> Coupon:
        doc = await self._coupons.find_one({"issue_ref": issue_ref})
        if doc is None:  # it was sold out and deleted meanwhile: the replay is sold out too
            raise limit_reached(template.id, "total", template.total_limit)
        return await self._finish(doc, template)

    async def _finish(self, doc: Document, template: CouponTemplate | None = None) -> Coupon:
        if doc["status"] != CouponStatus.ISSUING.value:
            return coupon_from_document(doc)
        if template is None:
            template = await self.require_template(doc["template_id"])
        return await self._count(doc, template)

    async def _count(self, doc: Document, template: CouponTemplate) -> Coupon:
        """Counts an ISSUING coupon against the total limit once, then makes it AVAILABLE;
        deletes it (LIMIT_REACHED) when the template is sold out."""
        op = doc["code"]
        condition: Document = {"_id": template.id, "ops": {"$ne": op}}
        if template.total_limit > 0:
            condition["issued_count"] = {"$lt": template.total_limit}
        counted = await self._templates.update_one(
            condition,
            {"$inc": {"issued_count": 1}, "$push": {"ops": {"$each": [op], "$slice": -OPS_KEPT}}},
        )
        if counted.matched_count == 0:
            current = await self._templates.find_one({"_id": template.id}, {"ops": 1})
            if current is None or op not in current.get("ops", ()):
                await self._coupons.delete_one(
                    {"_id": doc["_id"], "code": op, "status": CouponStatus.ISSUING.value}
                )
                raise limit_reached(template.id, "total", template.total_limit)
        await self._coupons.update_one(
            {"_id": doc["_id"], "code": op, "status": CouponStatus.ISSUING.value},
            {"$set": {"status": CouponStatus.AVAILABLE.value}},
        )
        fresh = await self._coupons.find_one({"_id": doc["_id"]})
        if fresh is None or fresh["code"] != op:  # pragma: no cover - counted coupons stay
            raise coupon_not_found("coupon_id", doc["_id"])
        return coupon_from_document(fresh)

    # -- merges ----------------------------------------------------------------------------

    async def reassign_member(self, absorbed_id: str, survivor_id: str) -> int:
        """The absorbed member's coupons now belong to the survivor (ids, codes and states
        unchanged); idempotent. Returns how many coupons this call moved."""
        result = await self._coupons.update_many(
            {"member_id": absorbed_id}, {"$set": {"member_id": survivor_id}}
        )
        return result.modified_count

    # -- job -------------------------------------------------------------------------------

    async def finish_stale_issuing(self, now: datetime, limit: int) -> int:
        """Finishes ISSUING coupons a crash left behind (counted or deleted)."""
        done = 0
        cursor = self._coupons.find(
            {"status": CouponStatus.ISSUING.value, "issue_time": {"$lte": now - STALE_ISSUING}}
        ).limit(limit)
        async for doc in cursor:
            with contextlib.suppress(ServiceError):  # sold out: the coupon was deleted
                await self._finish(doc)
            done += 1
        return done


async def lock_release_job(books: Books, now: datetime) -> int:
    """One pass of the background job; returns how much it did (0 = nothing due)."""
    return await books.coupons.finish_stale_issuing(now, 500)
