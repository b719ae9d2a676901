"""Segment rules as MongoDB queries over members: count, page, preview.

A rule (tags all/any/none x tier x points range x last purchase x home store x lifecycle
stage x guide; every set part narrows, AND) becomes ONE filter on `members` (`segment_filter`),
so counting is one `count_documents` and paging one indexed `find` after the last `_id`.
`rule_matches` is the same rule as a Python predicate over a `Member`; the tests check that
the two agree on generated members through the real database.

Lifecycle stages (domain.lifecycle_stage) are time ranges at `now`:
  new      join_time >  now - 30 days
  active   join_time <= now - 30 days and last_activity_time >= now - 90 days
  dormant  join_time <= now - 30 days and now - 180 days <= last_activity_time < now - 90 days
  churned  join_time <= now - 30 days and last_activity_time <  now - 180 days
(`last_activity_time` = max(join_time, last_purchase_time), kept in the member document.)
Adjacent selected stages merge into one range. The database keeps times in whole
milliseconds (and the driver cuts a bound's microseconds off when it sends it), so every
bound is rounded here to the millisecond that keeps the comparison exact for stored times:
down for `x > b` / `x <= b`, up for `x >= b` / `x < b`.

`not_purchased_since` T means "no purchase at or after T", so members who never purchased
are in it (a reactivation audience); `purchased_since` T means a purchase at or after T.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from member_svc.domain import (
    ACTIVE_DAYS,
    DORMANT_DAYS,
    NEW_MEMBER_DAYS,
    LifecycleStage,
    Member,
    MemberStatus,
    Tier,
)
from member_svc.repository import MEMBERS, member_from_document
from member_svc.settings import MemberSettings
from retail_kit.errors import FieldViolation
from retail_kit.mongo import Document, IndexDeclaration
from retail_kit.validation import id_violation

MAX_RULE_TAGS = 50  # per tag list
MAX_RULE_IDS = 100  # home stores, associates

# The filters use the member indexes of repository.INDEXES (home_store, associate_id, tags,
# tier, points_total, last_activity, last_purchase, join_time); no index of its own. The
# queries name no index: see "Cost" in member-svc/DESIGN.md for what SecantusDB 0.7 does.
INDEXES: tuple[IndexDeclaration, ...] = ()

# Oldest first: the order in which the stages after "new" follow each other in time.
_AGED_STAGES = (LifecycleStage.CHURNED, LifecycleStage.DORMANT, LifecycleStage.ACTIVE)


@dataclass(frozen=True, slots=True)
class SegmentRule:
    """Every set part narrows the segment (AND); empty parts do not."""

    tags_all: tuple[str, ...] = ()
    tags_any: tuple[str, ...] = ()
    tags_none: tuple[str, ...] = ()
    tiers: tuple[Tier, ...] = ()
    min_points: int | None = None
    max_points: int | None = None
    purchased_since: datetime | None = None
    not_purchased_since: datetime | None = None
    home_store_ids: tuple[str, ...] = ()
    lifecycle_stages: tuple[LifecycleStage, ...] = ()
    associate_ids: tuple[str, ...] = ()


def floor_millis(moment: datetime) -> datetime:
    """`moment` cut to whole milliseconds, as the database stores it."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def ceil_millis(moment: datetime) -> datetime:
    """The first whole millisecond at or after `moment`."""
    down = floor_millis(moment)
    return down if down == moment else down + timedelta(milliseconds=1)


def _ids(field: str, values: Sequence[str], maximum: int, noun: str) -> list[FieldViolation]:
    if len(values) > maximum:
        return [FieldViolation(field, f"at most {maximum} {noun}, got {len(values)}")]
    return [v for i, value in enumerate(values) if (v := id_violation(f"{field}[{i}]", value))]


def rule_violations(rule: SegmentRule, field: str = "rule") -> list[FieldViolation]:
    """Everything wrong with a rule, each naming its field (`rule.max_points`, ...)."""
    violations: list[FieldViolation] = []
    for name in ("tags_all", "tags_any", "tags_none"):
        violations += _ids(f"{field}.{name}", getattr(rule, name), MAX_RULE_TAGS, "tags")
    required = set(rule.tags_all)
    for i, tag in enumerate(rule.tags_none):
        if tag in required:
            violations.append(
                FieldViolation(
                    f"{field}.tags_none[{i}]", f"{tag!r} is also in tags_all: no member can match"
                )
            )
    for name in ("min_points", "max_points"):
        value = getattr(rule, name)
        if value is not None and value < 0:
            violations.append(FieldViolation(f"{field}.{name}", "must not be negative"))
    low, high = rule.min_points, rule.max_points
    if low is not None and high is not None and low > high:
        violations.append(
            FieldViolation(f"{field}.min_points", f"must not exceed max_points ({low} > {high})")
        )
    since, not_since = rule.purchased_since, rule.not_purchased_since
    if since is not None and not_since is not None and not_since <= since:
        violations.append(
            FieldViolation(
                f"{field}.not_purchased_since", "must be after purchased_since: no member can match"
            )
        )
    violations += _ids(f"{field}.home_store_ids", rule.home_store_ids, MAX_RULE_IDS, "stores")
    violations += _ids(f"{field}.associate_ids", rule.associate_ids, MAX_RULE_IDS, "associates")
    return violations


def _distinct(values: Iterable[Any]) -> list[Any]:
    return list(dict.fromkeys(values))


def lifecycle_bounds(now: datetime) -> tuple[datetime, datetime, datetime]:
    """(new if joined after, active if last activity at or after, dormant if at or after) at
    `now`, rounded as the module docstring says."""
    return (
        floor_millis(now) - timedelta(days=NEW_MEMBER_DAYS),
        ceil_millis(now) - timedelta(days=ACTIVE_DAYS),
        ceil_millis(now) - timedelta(days=DORMANT_DAYS),
    )


def lifecycle_filter(stages: Iterable[LifecycleStage], now: datetime) -> Document | None:
    """The members in any of `stages` at `now`; None when every member is (no condition)."""
    wanted = set(stages)
    if not wanted or wanted == set(LifecycleStage):
        return None
    new_after, active_since, dormant_since = lifecycle_bounds(now)
    # [low, high) ranges of last_activity_time, oldest first; None = unbounded.
    edges: dict[LifecycleStage, tuple[datetime | None, datetime | None]] = {
        LifecycleStage.CHURNED: (None, dormant_since),
        LifecycleStage.DORMANT: (dormant_since, active_since),
        LifecycleStage.ACTIVE: (active_since, None),
    }
    ranges: list[list[datetime | None]] = []
    previous_selected = False
    for stage in _AGED_STAGES:
        if stage in wanted:
            low, high = edges[stage]
            if previous_selected:
                ranges[-1][1] = high
            else:
                ranges.append([low, high])
        previous_selected = stage in wanted
    parts: list[Document] = []
    if LifecycleStage.NEW in wanted:
        parts.append({"join_time": {"$gt": new_after}})
    for low, high in ranges:
        activity: Document = {}
        if low is not None:
            activity["$gte"] = low
        if high is not None:
            activity["$lt"] = high
        part: Document = {"join_time": {"$lte": new_after}}
        if activity:
            part["last_activity_time"] = activity
        parts.append(part)
    return parts[0] if len(parts) == 1 else {"$or": parts}


def segment_filter(rule: SegmentRule, now: datetime) -> Document:
    """The rule as one MongoDB filter on `members` (active members only)."""
    query: Document = {"status": MemberStatus.ACTIVE.value}
    tags: Document = {}
    if rule.tags_all:
        tags["$all"] = _distinct(rule.tags_all)
    if rule.tags_any:
        tags["$in"] = _distinct(rule.tags_any)
    if rule.tags_none:
        tags["$nin"] = _distinct(rule.tags_none)
    if tags:
        query["tags"] = tags
    if rule.tiers:
        query["tier"] = {"$in": _distinct(tier.value for tier in rule.tiers)}
    points: Document = {}
    if rule.min_points is not None:
        points["$gte"] = rule.min_points
    if rule.max_points is not None:
        points["$lte"] = rule.max_points
    if points:
        query["points.total"] = points
    purchase: Document = {}
    if rule.purchased_since is not None:
        purchase["$gte"] = ceil_millis(rule.purchased_since)
    if rule.not_purchased_since is not None:
        if rule.purchased_since is not None:
            purchase["$lt"] = ceil_millis(rule.not_purchased_since)
        else:  # never purchased counts as "not since"
            purchase["$not"] = {"$gte": ceil_millis(rule.not_purchased_since)}
    if purchase:
        query["last_purchase_time"] = purchase
    if rule.home_store_ids:
        query["home_store_id"] = {"$in": _distinct(rule.home_store_ids)}
    if rule.associate_ids:
        query["associate.associate_id"] = {"$in": _distinct(rule.associate_ids)}
    stages = lifecycle_filter(rule.lifecycle_stages, now)
    if stages is not None:
        if "$or" in stages:
            query["$or"] = stages["$or"]
        else:
            for key, condition in stages.items():
                if key in query:  # pragma: no cover - the keys above never include these
                    raise AssertionError(key)
                query[key] = condition
    return query


def rule_matches(rule: SegmentRule, member: Member, now: datetime) -> bool:
    """The rule as a Python predicate: what `segment_filter` selects, member by member."""
    tags = set(member.tag_ids)
    purchase = member.last_purchase_time
    checks = (
        member.status is MemberStatus.ACTIVE,
        set(rule.tags_all) <= tags,
        not rule.tags_any or bool(tags & set(rule.tags_any)),
        not tags & set(rule.tags_none),
        not rule.tiers or member.tier in rule.tiers,
        rule.min_points is None or member.points.total >= rule.min_points,
        rule.max_points is None or member.points.total <= rule.max_points,
        rule.purchased_since is None or (purchase is not None and purchase >= rule.purchased_since),
        rule.not_purchased_since is None or purchase is None or purchase < rule.not_purchased_since,
        not rule.home_store_ids or member.home_store_id in rule.home_store_ids,
        not rule.associate_ids
        or (member.associate is not None and member.associate.associate_id in rule.associate_ids),
        not rule.lifecycle_stages or member.lifecycle_stage(now) in rule.lifecycle_stages,
    )
    return all(checks)


# -- storage of a rule (campaigns keep theirs) ------------------------------------------------


def rule_to_document(rule: SegmentRule) -> Document:
    return {
        "tags_all": list(rule.tags_all),
        "tags_any": list(rule.tags_any),
        "tags_none": list(rule.tags_none),
        "tiers": [tier.value for tier in rule.tiers],
        "min_points": rule.min_points,
        "max_points": rule.max_points,
        "purchased_since": rule.purchased_since,
        "not_purchased_since": rule.not_purchased_since,
        "home_store_ids": list(rule.home_store_ids),
        "lifecycle_stages": [stage.value for stage in rule.lifecycle_stages],
        "associate_ids": list(rule.associate_ids),
    }


def rule_from_document(doc: Document) -> SegmentRule:
    return SegmentRule(
        tags_all=tuple(doc.get("tags_all", ())),
        tags_any=tuple(doc.get("tags_any", ())),
        tags_none=tuple(doc.get("tags_none", ())),
        tiers=tuple(Tier(t) for t in doc.get("tiers", ())),
        min_points=doc.get("min_points"),
        max_points=doc.get("max_points"),
        purchased_since=doc.get("purchased_since"),
        not_purchased_since=doc.get("not_purchased_since"),
        home_store_ids=tuple(doc.get("home_store_ids", ())),
        lifecycle_stages=tuple(LifecycleStage(s) for s in doc.get("lifecycle_stages", ())),
        associate_ids=tuple(doc.get("associate_ids", ())),
    )


@dataclass(frozen=True, slots=True)
class SegmentPage:
    members: list[Member]
    more: bool


class SegmentQuery:
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

    async def count(self, rule: SegmentRule, now: datetime) -> int:
        return await self._members.count_documents(segment_filter(rule, now))

    async def count_after(self, rule: SegmentRule, now: datetime, after_id: str | None) -> int:
        query = segment_filter(rule, now)
        if after_id is not None:
            query["_id"] = {"$gt": after_id}
        return await self._members.count_documents(query)

    async def page(
        self, rule: SegmentRule, now: datetime, after_id: str | None, limit: int
    ) -> SegmentPage:
        """Up to `limit` members of the segment after `after_id`, by `_id`."""
        query = segment_filter(rule, now)
        if after_id is not None:
            query["_id"] = {"$gt": after_id}
        cursor = self._members.find(query).sort("_id", 1).limit(limit + 1)
        docs = [doc async for doc in cursor]
        return SegmentPage([member_from_document(d) for d in docs[:limit]], len(docs) > limit)

    async def page_ids(
        self, rule: SegmentRule, now: datetime, after_id: str | None, limit: int
    ) -> list[str]:
        """Only the ids (the campaign job's page)."""
        query = segment_filter(rule, now)
        if after_id is not None:
            query["_id"] = {"$gt": after_id}
        cursor = self._members.find(query, {"_id": 1}).sort("_id", 1).limit(limit)
        return [doc["_id"] async for doc in cursor]
