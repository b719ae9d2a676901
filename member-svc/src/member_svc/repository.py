"""Member persistence: documents <-> domain objects, the queries and the indexes they need.

Two collections. `members` holds one document per member. `identities` holds one document
per identity, `_id` = "<kind>:<canonical value>" (see `identities.identity_key`), pointing to
the member that owns it: `_id` uniqueness makes every identity belong to at most one member
without a transaction, and a lookup by identity is an `_id` lookup, the one filter FerretDB v1
on SQLite pushes down. A member's document is written before its identity documents, so an
identity never points to a member that was never stored.
"""

from __future__ import annotations

from collections.abc import Sequence

from pymongo.asynchronous.database import AsyncDatabase

from member_svc.domain import Identity, IdentityKind, Member, Tier
from member_svc.identities import identity_key, normalize
from retail_kit.mongo import Document, IndexDeclaration, ensure_indexes, find_by_ids

MEMBERS = "members"
IDENTITIES = "identities"

INDEXES = (
    # Invite codes are unique; referrals find the inviting member by code.
    IndexDeclaration(MEMBERS, (("referral_code", 1),), "referral_code", unique=True),
    # The identity documents of one member, for merging and re-linking.
    IndexDeclaration(IDENTITIES, (("member_id", 1),), "member_id"),
)


def member_to_document(member: Member) -> Document:
    return {
        "_id": member.id,
        "display_name": member.display_name,
        "identities": [{"kind": i.kind.value, "value": i.value} for i in member.identities],
        "tier": member.tier.value,
        "points_balance": member.points_balance,
        "home_store_id": member.home_store_id,
        "tags": list(member.tags),
        "join_time": member.join_time,
        "referral_code": member.referral_code,
    }


def member_from_document(doc: Document) -> Member:
    return Member(
        id=doc["_id"],
        display_name=doc["display_name"],
        identities=tuple(
            Identity(IdentityKind(i["kind"]), i["value"]) for i in doc.get("identities", ())
        ),
        tier=Tier(doc["tier"]),
        points_balance=doc.get("points_balance", 0),
        home_store_id=doc.get("home_store_id"),
        tags=tuple(doc.get("tags", ())),
        join_time=doc["join_time"],
        referral_code=doc.get("referral_code", ""),
    )


def identity_to_document(identity: Identity, member_id: str) -> Document:
    canonical = normalize(identity)
    return {
        "_id": identity_key(canonical),
        "kind": canonical.kind.value,
        "value": canonical.value,
        "member_id": member_id,
    }


def identity_documents(members: Sequence[Member]) -> list[Document]:
    """The identity documents of `members`; an identity claimed twice is a data error."""
    documents: dict[str, Document] = {}
    for member in members:
        for identity in member.identities:
            doc = identity_to_document(identity, member.id)
            owner = documents.get(doc["_id"])
            if owner is not None and owner["member_id"] != member.id:
                raise ValueError(
                    f"{identity.kind.value} identity of {member.id} already belongs to "
                    f"{owner['member_id']}"
                )
            documents[doc["_id"]] = doc
    return list(documents.values())


class MemberRepository:
    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self._db = database

    async def ensure_indexes(self) -> None:
        await ensure_indexes(self._db, INDEXES)

    async def get_member(self, member_id: str) -> Member | None:
        doc = await self._db[MEMBERS].find_one({"_id": member_id})
        return member_from_document(doc) if doc else None

    async def get_members(self, member_ids: Sequence[str]) -> dict[str, Member]:
        found = await find_by_ids(self._db[MEMBERS], member_ids)
        return {key: member_from_document(doc) for key, doc in found.items()}

    async def get_member_by_identity(self, identity: Identity) -> Member | None:
        """The member owning `identity` (any spelling of it), or None."""
        link = await self._db[IDENTITIES].find_one({"_id": identity_key(identity)})
        if link is None:
            return None
        return await self.get_member(link["member_id"])
