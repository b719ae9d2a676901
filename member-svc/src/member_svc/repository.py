"""Member persistence: documents <-> domain objects, the shared queries and their indexes.

Collections owned by this module: `members` (one document per member, the head of every
area's state: identities, tags, guide, tier, the points account) and `identities` (one
document per identity, `_id` = "<kind>:<canonical value>" (see `identities.identity_key`),
pointing to its member: `_id` uniqueness makes every identity belong to at most one member
without a transaction). Other areas keep their own collections in their own modules
(points ledger, coupons, referrals, campaigns, audit); see member-svc/DESIGN.md.

The member document is changed only by atomic single-document updates: `$addToSet` /
`$pull` for tags and identities, a `points.seq` compare-and-set for the points account, a
`version` compare-and-set for the rest.
"""

from __future__ import annotations

from collections.abc import Sequence

from pymongo.asynchronous.database import AsyncDatabase

from member_svc.domain import (
    AssociateBinding,
    Channel,
    Consent,
    Identity,
    IdentityKind,
    Member,
    MemberStatus,
    MemberTag,
    PointsAccount,
    PointsLot,
    Tier,
)
from member_svc.identities import identity_key, normalize
from retail_kit.mongo import Document, IndexDeclaration, ensure_indexes, find_by_ids

MEMBERS = "members"
IDENTITIES = "identities"

INDEXES = (
    # Invite codes are unique; referrals find the inviting member by code.
    IndexDeclaration(MEMBERS, (("referral_code", 1),), "referral_code", unique=True),
    # The identity documents of one member, for merging and re-linking.
    IndexDeclaration(IDENTITIES, (("member_id", 1),), "member_id"),
    # Associates' members and a store's members (ListMembers), by id for stable paging.
    IndexDeclaration(MEMBERS, (("associate.associate_id", 1), ("_id", 1)), "associate_id"),
    IndexDeclaration(MEMBERS, (("associate.store_id", 1), ("_id", 1)), "associate_store"),
    IndexDeclaration(MEMBERS, (("home_store_id", 1), ("_id", 1)), "home_store"),
    IndexDeclaration(MEMBERS, (("join_store_id", 1), ("_id", 1)), "join_store"),
    # Segment rules (tags x tier x points x last purchase x lifecycle).
    IndexDeclaration(MEMBERS, (("tags", 1),), "tags"),
    IndexDeclaration(MEMBERS, (("tier", 1), ("_id", 1)), "tier"),
    IndexDeclaration(MEMBERS, (("points.total", 1),), "points_total"),
    IndexDeclaration(MEMBERS, (("last_activity_time", 1),), "last_activity"),
    IndexDeclaration(MEMBERS, (("last_purchase_time", 1),), "last_purchase"),
    IndexDeclaration(MEMBERS, (("join_time", 1),), "join_time"),
)


def _lot_to_document(lot: PointsLot) -> Document:
    return {
        "id": lot.id,
        "points": lot.points,
        "remaining": lot.remaining,
        "available_time": lot.available_time,
        "expire_time": lot.expire_time,
        "source": lot.source,
    }


def lot_from_document(doc: Document) -> PointsLot:
    return PointsLot(
        id=doc["id"],
        points=doc["points"],
        remaining=doc["remaining"],
        available_time=doc["available_time"],
        expire_time=doc["expire_time"],
        source=doc.get("source", ""),
    )


def points_to_document(account: PointsAccount) -> Document:
    """The `points` subdocument; `next_expiry` lets the expiry sweeper find due accounts."""
    live = [lot.expire_time for lot in account.lots if lot.remaining > 0]
    return {
        "seq": account.seq,
        "total": account.total,
        "lots": [_lot_to_document(lot) for lot in account.lots],
        "next_expiry": min(live) if live else None,
    }


def points_from_document(doc: Document | None) -> PointsAccount:
    if not doc:
        return PointsAccount()
    return PointsAccount(
        seq=doc.get("seq", 0),
        total=doc.get("total", 0),
        lots=tuple(lot_from_document(lot) for lot in doc.get("lots", ())),
    )


def _tag_to_document(tag: MemberTag) -> Document:
    return {
        "tag_id": tag.tag_id,
        "added_by": tag.added_by,
        "store_id": tag.store_id,
        "add_time": tag.add_time,
    }


def tag_from_document(doc: Document) -> MemberTag:
    return MemberTag(doc["tag_id"], doc.get("added_by", ""), doc.get("store_id"), doc["add_time"])


def member_to_document(member: Member) -> Document:
    """The whole member document. `tags` (ids, multikey-indexed for segments) and
    `tag_records` (who, where, when) always change together in one update."""
    return {
        "_id": member.id,
        "status": member.status.value,
        "merged_into": member.merged_into,
        "merged_ids": list(member.merged_ids),
        "display_name": member.display_name,
        "birthday": member.birthday,
        "identities": [{"kind": i.kind.value, "value": i.value} for i in member.identities],
        "consent": {
            "marketing": member.consent.marketing,
            "privacy_accept_time": member.consent.privacy_accept_time,
            "update_time": member.consent.update_time,
        },
        "tier": member.tier.value,
        "tier_since": member.tier_since,
        "tier_review_time": member.tier_review_time,
        "qualifying_spend": member.qualifying_spend,
        "points": points_to_document(member.points),
        "home_store_id": member.home_store_id,
        "join_time": member.join_time,
        "join_channel": member.join_channel.value if member.join_channel else None,
        "join_store_id": member.join_store_id,
        "associate": (
            {
                "associate_id": member.associate.associate_id,
                "store_id": member.associate.store_id,
                "bind_time": member.associate.bind_time,
            }
            if member.associate
            else None
        ),
        "tags": [tag.tag_id for tag in member.tags],
        "tag_records": [_tag_to_document(tag) for tag in member.tags],
        "referral_code": member.referral_code,
        "referred_by": member.referred_by,
        "last_purchase_time": member.last_purchase_time,
        "last_activity_time": member.last_activity_time,
        "version": member.version,
    }


def member_from_document(doc: Document) -> Member:
    consent = doc.get("consent") or {}
    associate = doc.get("associate")
    channel = doc.get("join_channel")
    return Member(
        id=doc["_id"],
        display_name=doc["display_name"],
        identities=tuple(
            Identity(IdentityKind(i["kind"]), i["value"]) for i in doc.get("identities", ())
        ),
        tier=Tier(doc["tier"]),
        home_store_id=doc.get("home_store_id"),
        join_time=doc["join_time"],
        referral_code=doc.get("referral_code", ""),
        status=MemberStatus(doc.get("status", MemberStatus.ACTIVE.value)),
        merged_into=doc.get("merged_into"),
        merged_ids=tuple(doc.get("merged_ids", ())),
        tags=tuple(tag_from_document(t) for t in doc.get("tag_records", ())),
        consent=Consent(
            marketing=bool(consent.get("marketing", False)),
            privacy_accept_time=consent.get("privacy_accept_time"),
            update_time=consent.get("update_time"),
        ),
        associate=(
            AssociateBinding(
                associate["associate_id"], associate["store_id"], associate["bind_time"]
            )
            if associate
            else None
        ),
        points=points_from_document(doc.get("points")),
        birthday=doc.get("birthday"),
        join_channel=Channel(channel) if channel else None,
        join_store_id=doc.get("join_store_id"),
        referred_by=doc.get("referred_by"),
        last_purchase_time=doc.get("last_purchase_time"),
        qualifying_spend=doc.get("qualifying_spend", 0),
        tier_since=doc.get("tier_since"),
        tier_review_time=doc.get("tier_review_time"),
        version=doc.get("version", 0),
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

    @property
    def database(self) -> AsyncDatabase[Document]:
        return self._db

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
