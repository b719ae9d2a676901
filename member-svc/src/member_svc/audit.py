"""The member audit trail: who changed what about a member, where and when.

One document per entry in `member_audit`, `_id` = "<member>:<kind>:<reference>" when the
change has a natural reference (so a retried step records once), else a random id. Every
area appends to it; ListMemberAudit pages it newest first.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from member_svc.domain import Actor, ActorKind
from retail_kit.mongo import Document, IndexDeclaration

MEMBER_AUDIT = "member_audit"

INDEXES = (
    IndexDeclaration(
        MEMBER_AUDIT, (("member_id", 1), ("occur_time", -1), ("_id", -1)), "member_newest"
    ),
)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: str
    member_id: str
    action: str
    actor: Actor
    occur_time: datetime
    details: Mapping[str, str] = field(default_factory=dict)


def actor_to_document(actor: Actor) -> Document:
    return {"kind": actor.kind.value, "id": actor.id, "store_id": actor.store_id}


def actor_from_document(doc: Document | None) -> Actor:
    if not doc:
        return Actor(ActorKind.SYSTEM)
    return Actor(ActorKind(doc["kind"]), doc.get("id", ""), doc.get("store_id"))


def entry_from_document(doc: Document) -> AuditEntry:
    return AuditEntry(
        id=doc["_id"],
        member_id=doc["member_id"],
        action=doc["action"],
        actor=actor_from_document(doc.get("actor")),
        occur_time=doc["occur_time"],
        details=dict(doc.get("details", {})),
    )


class AuditLog:
    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self._entries = database[MEMBER_AUDIT]

    async def record(
        self,
        member_id: str,
        action: str,
        actor: Actor,
        now: datetime,
        details: Mapping[str, Any] | None = None,
        *,
        reference: str | None = None,
    ) -> None:
        """Appends an entry; with `reference`, a second call for the same change is a no-op."""
        entry_id = (
            f"{member_id}:{action}:{reference}" if reference is not None else uuid.uuid4().hex
        )
        with contextlib.suppress(DuplicateKeyError):
            await self._entries.insert_one(
                {
                    "_id": entry_id,
                    "member_id": member_id,
                    "action": action,
                    "actor": actor_to_document(actor),
                    "occur_time": now,
                    "details": {key: str(value) for key, value in (details or {}).items()},
                }
            )

    async def list(
        self, member_id: str, limit: int, before: tuple[datetime, str] | None
    ) -> list[AuditEntry]:
        """Newest first, `limit` entries after the (occur_time, _id) `before`."""
        query: dict[str, Any] = {"member_id": member_id}
        if before is not None:
            occur_time, entry_id = before
            query["$or"] = [
                {"occur_time": {"$lt": occur_time}},
                {"occur_time": occur_time, "_id": {"$lt": entry_id}},
            ]
        cursor = self._entries.find(query).sort([("occur_time", -1), ("_id", -1)]).limit(limit)
        return [entry_from_document(doc) async for doc in cursor]
