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

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from pymongo import IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from member_svc.audit import actor_to_document
from member_svc.coupon_domain import (
    Coupon,
    CouponKind,
    CouponScope,
    CouponStatus,
    CouponTemplate,
    Evaluation,
    Line,
    LineDiscount,
    Reason,
    TemplateStatus,
    coupon_id,
    evaluate,
    new_code,
    rank,
)
from member_svc.coupon_errors import (
    already_exists,
    claim_refused,
    coupon_expired,
    coupon_not_found,
    invalid_state,
    key_reused,
    limit_reached,
    not_applicable,
    template_expired,
)
from member_svc.domain import Actor, ActorKind, Channel, MemberStatus
from member_svc.repository import MEMBERS
from member_svc.settings import MemberSettings
from retail_kit.errors import FieldViolation, ServiceError, invalid_argument, not_found
from retail_kit.mongo import Document, IndexDeclaration, ensure_indexes, find_by_ids
from retail_kit.seeding import SeedReport

if TYPE_CHECKING:
    from member_svc.books import Books

__all__ = ["COUPONS", "COUPON_TEMPLATES", "Coupon", "CouponBook", "CouponTemplate"]

log = logging.getLogger(__name__)

COUPON_TEMPLATES = "coupon_templates"
COUPONS = "coupons"
OPS_KEPT = 100
MAX_MERGE_HOPS = 8
MAX_ATTEMPTS = 20
# An ISSUING coupon older than this was left by a crash; the job finishes it.
STALE_ISSUING = timedelta(minutes=1)
JOB_BATCH = 500
# EvaluateCoupons judges at most this many of a member's newest live coupons.
MAX_EVALUATED = 500
LIVE = (CouponStatus.AVAILABLE.value, CouponStatus.LOCKED.value)
HELD = (CouponStatus.LOCKED, CouponStatus.REDEEMED)


@dataclass(frozen=True, slots=True)
class PartialIndex(IndexDeclaration):
    """An index over the documents matching `partial` only: a claim code is unique among the
    templates that have one; a coupon is in the job's index of its status only, so each
    coupon write maintains one of them, not three."""

    partial: Mapping[str, Any] = field(default_factory=dict)

    def model(self) -> IndexModel:
        return IndexModel(
            list(self.keys),
            name=self.name,
            unique=self.unique,
            partialFilterExpression=dict(self.partial),
        )


INDEXES: tuple[IndexDeclaration, ...] = (
    PartialIndex(
        COUPON_TEMPLATES,
        (("claim_code", 1),),
        "claim_code",
        unique=True,
        partial={"claim_code": {"$type": "string"}},
    ),
    # ListCouponTemplates: newest first.
    IndexDeclaration(COUPON_TEMPLATES, (("create_time", -1), ("_id", -1)), "newest"),
    IndexDeclaration(COUPONS, (("issue_ref", 1),), "issue_ref", unique=True),
    IndexDeclaration(COUPONS, (("code", 1),), "code", unique=True),
    # A member's coupons, newest first (ListMemberCoupons, EvaluateCoupons, merges).
    IndexDeclaration(COUPONS, (("member_id", 1), ("issue_time", -1), ("_id", -1)), "member_newest"),
    # The job: locks past lock_until, ended windows, ISSUING coupons left by a crash.
    PartialIndex(COUPONS, (("lock_until", 1),), "locked_until", partial={"status": "locked"}),
    PartialIndex(
        COUPONS, (("valid_until", 1),), "available_until", partial={"status": "available"}
    ),
    PartialIndex(COUPONS, (("issue_time", 1),), "issuing_since", partial={"status": "issuing"}),
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
        "issue_only": template.issue_only,
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
        issue_only=bool(doc.get("issue_only", False)),
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

    # -- templates -------------------------------------------------------------------------

    async def create_template(
        self, template: CouponTemplate, *, request_id: str, fingerprint: str, actor: Actor
    ) -> CouponTemplate:
        """Creates the template once: a replay (same id, same request) answers the stored
        template; another request for the id is IDEMPOTENCY_KEY_REUSED (same request id) or
        ALREADY_EXISTS; a claim code of another template is ALREADY_EXISTS."""
        doc = template_to_document(template)
        doc.update(
            request_id=request_id,
            fingerprint=fingerprint,
            created_by=actor_to_document(actor),
            update_time=template.create_time,
        )
        try:
            await self._templates.insert_one(doc)
        except DuplicateKeyError as error:
            existing = await self._templates.find_one({"_id": template.id})
            if existing is not None:
                if existing.get("fingerprint") == fingerprint:
                    return template_from_document(existing)
                if request_id and existing.get("request_id") == request_id:
                    raise key_reused("request_id", request_id) from None
                raise already_exists("coupon template", "template.id", template.id) from None
            if _duplicate_key(error) == "claim_code":
                raise already_exists(
                    "coupon template", "template.claim_code", template.claim_code
                ) from None
            raise  # pragma: no cover - no other unique index
        return template

    async def set_template_status(
        self, template_id: str, status: TemplateStatus, now: datetime
    ) -> CouponTemplate:
        """Pauses or resumes issuing; coupons already issued stay usable. Idempotent."""
        result = await self._templates.update_one(
            {"_id": template_id}, {"$set": {"status": status.value, "update_time": now}}
        )
        if result.matched_count == 0:
            raise coupon_not_found("template_id", template_id, "coupon template")
        return await self.require_template(template_id)

    async def list_templates(
        self, limit: int, after: tuple[datetime, str] | None
    ) -> list[CouponTemplate]:
        """Newest first, `limit` templates after the (create_time, _id) `after`."""
        query: Document = {}
        if after is not None:
            create_time, last_id = after
            query["$or"] = [
                {"create_time": {"$lt": create_time}},
                {"create_time": create_time, "_id": {"$lt": last_id}},
            ]
        cursor = self._templates.find(query).sort([("create_time", -1), ("_id", -1)]).limit(limit)
        return [template_from_document(doc) async for doc in cursor]

    # -- issue -----------------------------------------------------------------------------

    async def issue(
        self, template_id: str, member_id: str, *, issue_ref: str, source: str, actor: Actor
    ) -> Coupon:
        """Issues one coupon of the template to the member (merges followed); idempotent by
        `issue_ref`: a replay answers the coupon the first call issued, whatever happened
        since. NOT_FOUND (template, member), FAILED_PRECONDITION LIMIT_REACHED
        {"limit": "total"|"per_member"}, INVALID_STATE (paused), EXPIRED (window over)."""
        # Three independent reads at once: the replay, the template, the member.
        found = await asyncio.gather(
            self.find_issued(issue_ref),
            self.get_template(template_id),
            self._resolve_member(member_id),
            return_exceptions=True,
        )
        for result in found:
            if isinstance(result, BaseException):
                raise result
        existing, template, owner = cast(
            tuple[Coupon | None, CouponTemplate | None, str], tuple(found)
        )
        if existing is not None:
            if existing.template_id != template_id or existing.member_id != owner:
                raise key_reused("reference", issue_ref)
            return existing
        if template is None:
            raise coupon_not_found("template_id", template_id, "coupon template")
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
                    "actor": actor_to_document(actor),
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
        made = await self._coupons.update_one(
            {"_id": doc["_id"], "code": op, "status": CouponStatus.ISSUING.value},
            {"$set": {"status": CouponStatus.AVAILABLE.value}},
        )
        if made.matched_count:
            return coupon_from_document({**doc, "status": CouponStatus.AVAILABLE.value})
        # A concurrent replay finished it first (and it may have moved on since).
        fresh = await self._coupons.find_one({"_id": doc["_id"], "code": op})
        if fresh is None:  # pragma: no cover - a counted coupon is never deleted
            raise coupon_not_found("coupon_id", doc["_id"])
        return coupon_from_document(fresh)

    # -- claim -----------------------------------------------------------------------------

    async def template_by_claim_code(self, claim_code: str) -> CouponTemplate:
        doc = await self._templates.find_one({"claim_code": claim_code})
        if doc is None:
            raise coupon_not_found("claim_code", claim_code, "claim code")
        return template_from_document(doc)

    async def claim(
        self,
        member_id: str,
        *,
        template_id: str,
        claim_code: str,
        store_id: str,
        request_id: str,
    ) -> Coupon:
        """A member takes a coupon of a template (by id, or by its public claim code; a
        template with a code is claimed only with it), in one of the template's stores when
        it names any (a trade-area promotion). Idempotent by (member, request id)."""
        if claim_code:
            template = await self.template_by_claim_code(claim_code)
        else:
            template = await self.require_template(template_id)
        issue_ref = f"claim:{member_id}:{request_id}"
        existing = await self.find_issued(issue_ref)
        if existing is not None:
            if existing.template_id != template.id:
                raise key_reused("request_id", request_id)
            return existing
        owner = await self._resolve_member(member_id)
        if template.issue_only:
            raise claim_refused(
                template.id, Reason.ISSUE_ONLY, "template_id", "this coupon is only issued"
            )
        if template.claim_code and not claim_code:
            raise claim_refused(
                template.id, Reason.CLAIM_CODE, "claim_code", "this coupon is claimed with its code"
            )
        if template.claim_store_ids and store_id not in template.claim_store_ids:
            raise claim_refused(
                template.id,
                Reason.STORE,
                "store_id",
                "this coupon is claimed only in the stores of its trade area "
                + ", ".join(template.claim_store_ids),
            )
        now = self._clock()
        self.check_issuable(template, now)
        actor = Actor(ActorKind.CUSTOMER, owner)
        return await self._issue_new(template, owner, issue_ref, "claim", actor, now)

    # -- a member's coupons ----------------------------------------------------------------

    async def list_member_coupons(
        self,
        member_id: str,
        status: CouponStatus | None,
        limit: int,
        after: tuple[datetime, str] | None,
        now: datetime,
    ) -> list[Coupon]:
        """Newest first; `status` as a reader sees it (an ended window reads EXPIRED)."""
        query: Document = {"member_id": member_id}
        available, expired = CouponStatus.AVAILABLE.value, CouponStatus.EXPIRED.value
        if status is None:
            query["status"] = {"$ne": CouponStatus.ISSUING.value}
        elif status is CouponStatus.AVAILABLE:
            query.update(status=available, valid_until={"$gt": now})
        elif status is CouponStatus.EXPIRED:
            query["$or"] = [
                {"status": expired},
                {"status": available, "valid_until": {"$lte": now}},
            ]
        else:
            query["status"] = status.value
        if after is not None:
            issue_time, last_id = after
            page = [
                {"issue_time": {"$lt": issue_time}},
                {"issue_time": issue_time, "_id": {"$lt": last_id}},
            ]
            query = {"$and": [query, {"$or": page}]}
        cursor = self._coupons.find(query).sort([("issue_time", -1), ("_id", -1)]).limit(limit)
        return [coupon_from_document(doc) async for doc in cursor]

    async def resolve_member(self, member_id: str) -> str:
        return await self._resolve_member(member_id)

    async def evaluate(
        self,
        member_id: str,
        lines: Sequence[Line],
        channel: Channel | None,
        store_id: str | None,
        now: datetime,
    ) -> list[Evaluation]:
        """Every live coupon of the member (available or locked, the newest MAX_EVALUATED)
        judged against the lines; usable first, the largest discount first."""
        cursor = (
            self._coupons.find(
                {"member_id": member_id, "status": {"$in": list(LIVE)}},
            )
            .sort([("issue_time", -1), ("_id", -1)])
            .limit(MAX_EVALUATED)
        )
        coupons = [coupon_from_document(doc) async for doc in cursor]
        templates = await self.get_templates([c.template_id for c in coupons])
        return rank(
            [
                evaluate(c, templates[c.template_id], lines, channel, store_id, now)
                for c in coupons
                if c.template_id in templates
            ]
        )

    # -- lock, redeem, release -------------------------------------------------------------

    async def _require_coupon(self, coupon_id_: str) -> Document:
        doc = await self._coupons.find_one({"_id": coupon_id_})
        if doc is None:
            raise coupon_not_found("coupon_id", coupon_id_)
        if doc["status"] == CouponStatus.ISSUING.value:
            with contextlib.suppress(ServiceError):
                await self._finish(doc)
            doc = await self._coupons.find_one({"_id": coupon_id_})
            if doc is None:
                raise coupon_not_found("coupon_id", coupon_id_)
        return doc

    async def _judge(
        self,
        coupon: Coupon,
        member_id: str,
        lines: Sequence[Line],
        channel: Channel | None,
        store_id: str | None,
        with_points: bool,
        now: datetime,
    ) -> Evaluation:
        """The coupon as an AVAILABLE coupon of `member_id` for these lines, or the error
        that says why it does not apply."""
        if coupon.member_id != member_id:
            raise not_applicable(coupon.id, Reason.MEMBER, member_id=member_id)
        template = await self.require_template(coupon.template_id)
        available = replace(coupon, status=CouponStatus.AVAILABLE)
        evaluation = evaluate(available, template, lines, channel, store_id, now)
        if evaluation.reason is Reason.EXPIRED:
            raise coupon_expired(coupon.id, coupon.valid_until.isoformat())
        if evaluation.reason is not None:
            raise not_applicable(coupon.id, evaluation.reason)
        if with_points and not template.combinable_with_points:
            raise not_applicable(coupon.id, Reason.POINTS)
        return evaluation

    async def lock(
        self,
        coupon_id_: str,
        member_id: str,
        order_id: str,
        lines: Sequence[Line],
        channel: Channel | None,
        store_id: str | None,
        lock_until: datetime,
        with_points: bool,
    ) -> Coupon:
        """Locks the coupon for the order with the discount these lines get (recomputed
        here). Idempotent by order id: a replay answers the lock (or redemption) the order
        already holds. A lock whose time has passed may be taken by another order."""
        owner = await self._resolve_member(member_id)
        for _ in range(MAX_ATTEMPTS):
            doc = await self._require_coupon(coupon_id_)
            coupon = coupon_from_document(doc)
            now = self._clock()
            if coupon.order_id == order_id and coupon.status in HELD:
                return coupon
            if coupon.member_id != owner:
                raise not_applicable(coupon.id, Reason.MEMBER, member_id=owner)
            if coupon.status is CouponStatus.EXPIRED:
                raise coupon_expired(coupon.id, coupon.valid_until.isoformat())
            if _held(coupon, now):
                raise _held_elsewhere(coupon)
            evaluation = await self._judge(
                coupon, owner, lines, channel, store_id, with_points, now
            )
            condition = _as_judged(doc, now)
            result = await self._coupons.update_one(
                condition,
                {
                    "$set": {
                        "status": CouponStatus.LOCKED.value,
                        "order_id": order_id,
                        "lock_until": lock_until,
                        "discount": evaluation.discount,
                        "line_discounts": _line_discounts_to_documents(evaluation.line_discounts),
                        "with_points": with_points,
                        "update_time": now,
                    }
                },
            )
            if result.matched_count:
                return replace(
                    coupon,
                    status=CouponStatus.LOCKED,
                    order_id=order_id,
                    lock_until=lock_until,
                    discount=evaluation.discount,
                    line_discounts=evaluation.line_discounts,
                    with_points=with_points,
                )
        raise invalid_state(f"coupon {coupon_id_!r} keeps changing; retry", coupon_id=coupon_id_)

    async def redeem_locked(self, coupon_id_: str, order_id: str) -> Coupon:
        """核销 of the coupon the order locked; idempotent by order id."""
        for _ in range(MAX_ATTEMPTS):
            doc = await self._require_coupon(coupon_id_)
            coupon = coupon_from_document(doc)
            if coupon.order_id == order_id and coupon.status is CouponStatus.REDEEMED:
                return coupon
            if coupon.order_id != order_id or coupon.status is not CouponStatus.LOCKED:
                raise invalid_state(
                    f"coupon {coupon.id!r} is not locked by order {order_id!r}; lock it first",
                    coupon_id=coupon.id,
                    status=coupon.status_at(self._clock()).value,
                )
            now = self._clock()
            redeemed = await self._coupons.update_one(
                {"_id": coupon.id, "status": CouponStatus.LOCKED.value, "order_id": order_id},
                {
                    "$set": {
                        "status": CouponStatus.REDEEMED.value,
                        "redeem_time": now,
                        "update_time": now,
                    }
                },
            )
            if redeemed.matched_count:
                return replace(coupon, status=CouponStatus.REDEEMED, redeem_time=now)
        raise invalid_state(f"coupon {coupon_id_!r} keeps changing; retry", coupon_id=coupon_id_)

    async def redeem_at_till(
        self,
        coupon_code: str,
        member_id: str,
        order_id: str,
        lines: Sequence[Line],
        channel: Channel | None,
        store_id: str | None,
        coupon_id_: str = "",
    ) -> Coupon:
        """核销 at the till by the code the member shows: judged against the lines, channel and
        store, straight from AVAILABLE (or from this order's own lock); idempotent by order."""
        doc = await self._coupons.find_one({"code": coupon_code})
        if doc is None or doc["status"] == CouponStatus.ISSUING.value:
            raise coupon_not_found("coupon_code", coupon_code)
        if coupon_id_ and doc["_id"] != coupon_id_:
            raise invalid_argument(
                FieldViolation("coupon_code", "is the code of another coupon than coupon_id")
            )
        owner = await self._resolve_member(member_id)
        for _ in range(MAX_ATTEMPTS):
            coupon = coupon_from_document(doc)
            now = self._clock()
            if coupon.member_id != owner:
                raise not_applicable(coupon.id, Reason.MEMBER, member_id=owner)
            if coupon.order_id == order_id and coupon.status is CouponStatus.REDEEMED:
                return coupon
            if coupon.order_id == order_id and coupon.status is CouponStatus.LOCKED:
                return await self.redeem_locked(coupon.id, order_id)
            if coupon.status is CouponStatus.EXPIRED:
                raise coupon_expired(coupon.id, coupon.valid_until.isoformat())
            if _held(coupon, now):
                raise _held_elsewhere(coupon)
            evaluation = await self._judge(coupon, owner, lines, channel, store_id, False, now)
            result = await self._coupons.update_one(
                _as_judged(doc, now),
                {
                    "$set": {
                        "status": CouponStatus.REDEEMED.value,
                        "order_id": order_id,
                        "lock_until": None,
                        "discount": evaluation.discount,
                        "line_discounts": _line_discounts_to_documents(evaluation.line_discounts),
                        "with_points": False,
                        "redeem_time": now,
                        "update_time": now,
                    }
                },
            )
            if result.matched_count:
                return replace(
                    coupon,
                    status=CouponStatus.REDEEMED,
                    order_id=order_id,
                    lock_until=None,
                    discount=evaluation.discount,
                    line_discounts=evaluation.line_discounts,
                    with_points=False,
                    redeem_time=now,
                )
            doc = await self._require_coupon(coupon.id)
        raise invalid_state(f"coupon {coupon_code!r} keeps changing; retry")

    async def release(self, coupon_id_: str, order_id: str) -> Coupon:
        """Gives the coupon the order holds back to the member (EXPIRED if its window has
        ended). Idempotent: a coupon this order does not hold is answered as it is; one this
        order redeemed cannot be released (INVALID_STATE)."""
        for _ in range(MAX_ATTEMPTS):
            doc = await self._require_coupon(coupon_id_)
            coupon = coupon_from_document(doc)
            if coupon.order_id != order_id:
                return coupon
            if coupon.status is CouponStatus.REDEEMED:
                raise invalid_state(
                    f"coupon {coupon.id!r} was redeemed by order {order_id!r}; it cannot be "
                    "released",
                    coupon_id=coupon.id,
                    status=coupon.status.value,
                )
            now = self._clock()
            released = await self._free(coupon, now)
            if released is not None:
                return released
        raise invalid_state(f"coupon {coupon_id_!r} keeps changing; retry", coupon_id=coupon_id_)

    async def _free(
        self, coupon: Coupon, now: datetime, expired_lock: bool = False
    ) -> Coupon | None:
        """LOCKED (by coupon.order_id) -> AVAILABLE, or EXPIRED after its window; None when
        the coupon moved first."""
        status = CouponStatus.EXPIRED if now >= coupon.valid_until else CouponStatus.AVAILABLE
        condition: Document = {
            "_id": coupon.id,
            "status": CouponStatus.LOCKED.value,
            "order_id": coupon.order_id,
        }
        if expired_lock:
            condition["lock_until"] = {"$lte": now}
        result = await self._coupons.update_one(
            condition,
            {
                "$set": {
                    "status": status.value,
                    "order_id": None,
                    "lock_until": None,
                    "discount": 0,
                    "line_discounts": [],
                    "with_points": False,
                    "update_time": now,
                }
            },
        )
        if result.matched_count == 0:
            return None
        return replace(
            coupon,
            status=status,
            order_id="",
            lock_until=None,
            discount=0,
            line_discounts=(),
            with_points=False,
        )

    async def release_expired_locks(self, limit: int) -> tuple[int, bool]:
        """Frees up to `limit` locks whose time has passed; (released, more due)."""
        now = self._clock()
        query = {"status": CouponStatus.LOCKED.value, "lock_until": {"$lte": now}}
        cursor = self._coupons.find(query).sort("lock_until", 1).limit(limit + 1)
        due = [coupon_from_document(doc) async for doc in cursor]
        released = 0
        for coupon in due[:limit]:
            if await self._free(coupon, now, expired_lock=True) is not None:
                released += 1
        return released, len(due) > limit

    async def mark_expired(self, now: datetime, limit: int) -> int:
        """Stores EXPIRED on AVAILABLE coupons whose window has ended (readers already see
        them EXPIRED; this keeps the status index honest)."""
        query = {"status": CouponStatus.AVAILABLE.value, "valid_until": {"$lte": now}}
        ids = [doc["_id"] async for doc in self._coupons.find(query, {"_id": 1}).limit(limit)]
        if not ids:
            return 0
        result = await self._coupons.update_many(
            {"_id": {"$in": ids}, **query},
            {"$set": {"status": CouponStatus.EXPIRED.value, "update_time": now}},
        )
        return result.modified_count

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
        )
        cursor = cursor.sort([("issue_time", 1), ("_id", 1)]).limit(limit)
        async for doc in cursor:
            try:
                await self._finish(doc)
            except ServiceError as error:
                if error.reason != "LIMIT_REACHED":  # sold out: the coupon was deleted
                    log.warning("ISSUING coupon %s not finished: %s", doc["_id"], error)
                    continue
            done += 1
        return done


# -- demo data -------------------------------------------------------------------------------

_DEMO_TIME = datetime(2026, 1, 1, tzinfo=UTC)

DEMO_TEMPLATES: tuple[CouponTemplate, ...] = (
    CouponTemplate(
        id="ct_demo_300_minus_50",
        name={"zh-Hans": "满300减50", "en": "¥50 off orders of ¥300"},
        kind=CouponKind.THRESHOLD,
        amount_off=5_000,
        threshold=30_000,
        valid_days=30,
        per_member_limit=1,
        combinable_with_points=True,
        create_time=_DEMO_TIME,
    ),
    CouponTemplate(
        id="ct_demo_coffee8",
        name={"zh-Hans": "咖啡92折（最高减20元）", "en": "8% off coffee, up to ¥20"},
        kind=CouponKind.PERCENT,
        percent_off=8,
        cap=2_000,
        scope=CouponScope(category_ids=("cat_coffee",)),
        valid_days=14,
        total_limit=10_000,
        per_member_limit=1,
        combinable_with_points=True,
        claim_code="COFFEE8",
        create_time=_DEMO_TIME + timedelta(minutes=1),
    ),
    CouponTemplate(
        id="ct_demo_welcome_back",
        name={"zh-Hans": "欢迎回来 立减30元", "en": "Welcome back: ¥30 off"},
        kind=CouponKind.FIXED,
        amount_off=3_000,
        valid_days=30,
        per_member_limit=1,
        combinable_with_points=False,
        issue_only=True,
        create_time=_DEMO_TIME + timedelta(minutes=2),
    ),
)


async def seed_coupon_templates(database: AsyncDatabase[Document]) -> SeedReport:
    """Loads the demo templates if they are missing; a template already there (with the
    coupons issued from it and its count) is left alone, so a second run changes nothing."""
    await ensure_indexes(database, INDEXES)
    inserted = 0
    for template in DEMO_TEMPLATES:
        doc = template_to_document(template)
        doc.update(request_id="", fingerprint="seed", created_by=None, update_time=_DEMO_TIME)
        result = await database[COUPON_TEMPLATES].update_one(
            {"_id": template.id}, {"$setOnInsert": doc}, upsert=True
        )
        inserted += 1 if result.upserted_id is not None else 0
    return SeedReport(COUPON_TEMPLATES, inserted, 0, len(DEMO_TEMPLATES) - inserted)


def _held(coupon: Coupon, now: datetime) -> bool:
    """Redeemed, or locked by an order whose lock has not lapsed."""
    if coupon.status is CouponStatus.REDEEMED:
        return True
    return (
        coupon.status is CouponStatus.LOCKED
        and coupon.lock_until is not None
        and coupon.lock_until > now
    )


def _held_elsewhere(coupon: Coupon) -> ServiceError:
    if coupon.status is CouponStatus.REDEEMED:
        return invalid_state(
            f"coupon {coupon.id!r} was redeemed by another order",
            coupon_id=coupon.id,
            status=coupon.status.value,
            reason=Reason.REDEEMED.value,
        )
    until = coupon.lock_until.isoformat() if coupon.lock_until else ""
    return invalid_state(
        f"coupon {coupon.id!r} is locked by another order until {until}",
        coupon_id=coupon.id,
        status=coupon.status.value,
        reason=Reason.LOCKED.value,
    )


def _as_judged(doc: Document, now: datetime) -> Document:
    """The condition that the coupon is still as it was judged: AVAILABLE inside its window,
    or LOCKED by the same order with the same (passed) lock time."""
    if doc["status"] == CouponStatus.LOCKED.value:
        return {
            "_id": doc["_id"],
            "status": CouponStatus.LOCKED.value,
            "order_id": doc.get("order_id"),
            "lock_until": doc.get("lock_until"),
        }
    return {
        "_id": doc["_id"],
        "status": CouponStatus.AVAILABLE.value,
        "valid_until": {"$gt": now},
    }


async def lock_release_job(books: Books, now: datetime) -> int:
    """One pass: frees locks past lock_until, finishes ISSUING coupons a crash left, stores
    EXPIRED on ended windows; returns how much it did (0 = nothing due)."""
    released, _ = await books.coupons.release_expired_locks(JOB_BATCH)
    finished = await books.coupons.finish_stale_issuing(now, JOB_BATCH)
    return released + finished + await books.coupons.mark_expired(now, JOB_BATCH)
