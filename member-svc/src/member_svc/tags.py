"""The tag catalogue and member tags (who, where, when; removals audited).

`tag_definitions`: one document per tag, `_id` = the tag id ("coffee_lover"), with its
zh-Hans (required) / en names, group and colour. A member's tags live in the member
document as `tags` (ids, multikey-indexed for segments) and `tag_records` (who added each,
in which store, when); both always change in one update guarded by the tag id:

    update_one({_id, status: active, tags: {$ne: t}}, {$push: {tags: t, tag_records: r}})

so any number of concurrent TagMember calls add one record, and a merge carrying tags over
uses the same guarded push (the survivor keeps its own record when both had the tag).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from member_svc.domain import MemberStatus, MemberTag
from member_svc.repository import MEMBERS
from member_svc.settings import MemberSettings
from retail_kit.errors import FieldViolation
from retail_kit.mongo import Document, IndexDeclaration, upsert_one
from retail_kit.seeding import SeedReport, upsert_documents

TAG_DEFINITIONS = "tag_definitions"
TAG_ID = re.compile(r"^[a-z][a-z0-9_]{1,31}$")
GROUP = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
COLOUR = re.compile(r"^#[0-9A-Fa-f]{6}$")
LOCALES = ("zh-Hans", "en")
MAX_NAME_LENGTH = 32
DEFAULT_GROUP = "general"
DEFAULT_COLOUR = "#8C8C8C"
MAX_CATALOGUE = 1_000

INDEXES: tuple[IndexDeclaration, ...] = (
    IndexDeclaration(TAG_DEFINITIONS, (("group", 1), ("_id", 1)), "group"),
)


@dataclass(frozen=True, slots=True)
class TagDefinition:
    id: str
    names: Mapping[str, str]
    group: str
    colour: str
    created_by: str
    update_time: datetime


def tag_id_violation(field: str, tag_id: str) -> FieldViolation | None:
    if not tag_id:
        return FieldViolation(field, "is required")
    if not TAG_ID.match(tag_id):
        return FieldViolation(
            field, "must be 2-32 lowercase letters, digits or underscores, starting with a letter"
        )
    return None


def definition_violations(
    tag_id: str, names: Mapping[str, str], group: str, colour: str, field: str = "tag"
) -> list[FieldViolation]:
    """Every problem of a tag definition, each naming its field."""
    violations: list[FieldViolation] = []
    if violation := tag_id_violation(f"{field}.id", tag_id):
        violations.append(violation)
    if not names.get("zh-Hans", "").strip():
        violations.append(FieldViolation(f"{field}.name.values[zh-Hans]", "is required"))
    for locale, text in names.items():
        if locale not in LOCALES:
            violations.append(
                FieldViolation(f"{field}.name.values[{locale}]", f"locale must be one of {LOCALES}")
            )
        elif len(text.strip()) > MAX_NAME_LENGTH:
            violations.append(
                FieldViolation(
                    f"{field}.name.values[{locale}]", f"at most {MAX_NAME_LENGTH} characters"
                )
            )
    if group and not GROUP.match(group):
        violations.append(
            FieldViolation(f"{field}.group", "must be lowercase letters, digits or underscores")
        )
    if colour and not COLOUR.match(colour):
        violations.append(FieldViolation(f"{field}.colour", 'must be "#RRGGBB"'))
    return violations


def definition_from_document(doc: Document) -> TagDefinition:
    return TagDefinition(
        id=doc["_id"],
        names=dict(doc.get("name", {})),
        group=doc.get("group", DEFAULT_GROUP),
        colour=doc.get("colour", DEFAULT_COLOUR),
        created_by=doc.get("created_by", ""),
        update_time=doc["update_time"],
    )


def tag_record_document(tag: MemberTag) -> Document:
    return {
        "tag_id": tag.tag_id,
        "added_by": tag.added_by,
        "store_id": tag.store_id,
        "add_time": tag.add_time,
    }


async def push_tag(members: AsyncCollection[Document], member_id: str, tag: MemberTag) -> bool:
    """Adds `tag` to an active member that does not have it yet: `tags` and `tag_records`
    in one update guarded by the tag id. False: the member has it, or is not active."""
    result = await members.update_one(
        {"_id": member_id, "status": MemberStatus.ACTIVE.value, "tags": {"$ne": tag.tag_id}},
        {
            "$push": {"tags": tag.tag_id, "tag_records": tag_record_document(tag)},
            "$inc": {"version": 1},
        },
    )
    return result.modified_count == 1


async def pull_tag(members: AsyncCollection[Document], member_id: str, tag_id: str) -> bool:
    """Removes `tag_id` (id and record together) from an active member that has it."""
    result = await members.update_one(
        {"_id": member_id, "status": MemberStatus.ACTIVE.value, "tags": tag_id},
        {"$pull": {"tags": tag_id, "tag_records": {"tag_id": tag_id}}, "$inc": {"version": 1}},
    )
    return result.modified_count == 1


class TagCatalogue:
    def __init__(
        self,
        database: AsyncDatabase[Document],
        settings: MemberSettings,
        clock: Callable[[], datetime],
    ) -> None:
        self._definitions = database[TAG_DEFINITIONS]
        self._members = database[MEMBERS]
        self._settings = settings
        self._clock = clock

    @property
    def members(self) -> AsyncCollection[Document]:
        return self._members

    async def upsert(
        self,
        tag_id: str,
        names: Mapping[str, str],
        group: str,
        colour: str,
        actor_id: str,
        now: datetime,
    ) -> TagDefinition:
        """Creates or replaces the definition (validated by `definition_violations`);
        `created_by` stays the first writer's."""
        await upsert_one(
            self._definitions,
            {"_id": tag_id},
            {
                "$set": {
                    "name": {k: v.strip() for k, v in names.items() if v.strip()},
                    "group": group or DEFAULT_GROUP,
                    "colour": (colour or DEFAULT_COLOUR).upper(),
                    "updated_by": actor_id,
                    "update_time": now,
                },
                "$setOnInsert": {"created_by": actor_id, "create_time": now},
            },
        )
        doc = await self._definitions.find_one({"_id": tag_id})
        assert doc is not None
        return definition_from_document(doc)

    async def get(self, tag_id: str) -> TagDefinition | None:
        doc = await self._definitions.find_one({"_id": tag_id})
        return definition_from_document(doc) if doc else None

    async def list(self) -> list[TagDefinition]:
        """The whole catalogue by group, then id (a brand has tens to hundreds of tags)."""
        cursor = self._definitions.find({}).sort([("group", 1), ("_id", 1)]).limit(MAX_CATALOGUE)
        return [definition_from_document(doc) async for doc in cursor]


# ---- demo catalogue ----------------------------------------------------------------------

_SEED_TIME = datetime(2024, 1, 1, tzinfo=UTC)

# (id, zh-Hans, en, group, colour): every tag the demo members carry.
DEMO_TAGS: tuple[tuple[str, str, str, str, str], ...] = (
    ("coffee_lover", "咖啡爱好者", "Coffee lover", "interest", "#6F4E37"),
    ("tea_lover", "茶饮爱好者", "Tea lover", "interest", "#4C9A2A"),
    ("snack_fan", "零食达人", "Snack fan", "interest", "#F5A623"),
    ("fashion", "时尚达人", "Fashion", "interest", "#D0021B"),
    ("home_decor", "家居生活", "Home decor", "interest", "#8B572A"),
    ("beauty_vip", "美妆VIP", "Beauty VIP", "value", "#BD10E0"),
    ("weekend_shopper", "周末购物", "Weekend shopper", "lifestyle", "#4A90E2"),
    ("office_worker", "上班族", "Office worker", "lifestyle", "#50E3C2"),
    ("new_member", "新会员", "New member", "lifecycle", "#7ED321"),
)


def demo_tag_documents() -> list[Document]:
    documents: list[Document] = []
    for tag_id, zh, en, group, colour in DEMO_TAGS:
        document: dict[str, Any] = {
            "_id": tag_id,
            "name": {"zh-Hans": zh, "en": en},
            "group": group,
            "colour": colour,
            "created_by": "seed",
            "create_time": _SEED_TIME,
            "updated_by": "seed",
            "update_time": _SEED_TIME,
        }
        documents.append(document)
    return documents


async def seed_tags(database: AsyncDatabase[Document]) -> SeedReport:
    """Loads the demo tag catalogue; a second run changes nothing."""
    return await upsert_documents(database[TAG_DEFINITIONS], demo_tag_documents())
