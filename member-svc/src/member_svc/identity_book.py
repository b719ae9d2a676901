"""Identity work on members: payment = membership (EnsureMember), binding further
identities, profile and consent, exclusive guides (专属导购), member tags and the
associates' member lists. Rules in member-svc/DESIGN.md ("Identity", "Associates' members
and tags"); merges are in merge.py.

Every write to a member document is one atomic update conditioned on the member being
ACTIVE (and on the state it was judged in); a write that finds the member MERGED follows
it to the survivor and is made there.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import grpc
from pymongo.errors import DuplicateKeyError

from member_svc.books import Books
from member_svc.domain import (
    Actor,
    ActorKind,
    AssociateBinding,
    Channel,
    Consent,
    Identity,
    IdentityKind,
    Member,
    MemberStatus,
    MemberTag,
    Tier,
)
from member_svc.identities import identity_key, normalize
from member_svc.merge import follow_merges
from member_svc.repository import (
    IDENTITIES,
    MEMBERS,
    member_from_document,
    member_to_document,
)
from member_svc.tags import pull_tag, push_tag
from member_svc.verification import CodeCheck
from retail.common.v1 import common_pb2
from retail_kit.errors import FieldViolation, ServiceError, not_found

ACTIVE = MemberStatus.ACTIVE.value
INVITE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud at the till
INVITE_LENGTH = 8
INVITE_ATTEMPTS = 10
MAX_RETRIES = 8


def new_member_id() -> str:
    return f"m_{secrets.token_hex(8)}"


def new_invite_code() -> str:
    return "".join(secrets.choice(INVITE_ALPHABET) for _ in range(INVITE_LENGTH))


def default_display_name(identity: Identity) -> str:
    """ "会员8000" for a phone (its last four digits), "会员" otherwise."""
    if identity.kind is IdentityKind.PHONE:
        return f"会员{identity.value[-4:]}"
    return "会员"


@dataclass(frozen=True, slots=True)
class Enrolment:
    """What EnsureMember knows about a new member; kept on the identity claim so that a
    member whose insert was cut short is completed with the data it was claimed with."""

    display_name: str
    channel: Channel | None
    store_id: str | None
    associate_id: str | None
    marketing_consent: bool
    join_time: datetime

    def to_document(self) -> dict[str, Any]:
        return {
            "display_name": self.display_name,
            "channel": self.channel.value if self.channel else None,
            "store_id": self.store_id,
            "associate_id": self.associate_id,
            "marketing_consent": self.marketing_consent,
            "join_time": self.join_time,
        }

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> Enrolment:
        return cls(
            display_name=doc["display_name"],
            channel=Channel(doc["channel"]) if doc.get("channel") else None,
            store_id=doc.get("store_id"),
            associate_id=doc.get("associate_id"),
            marketing_consent=bool(doc.get("marketing_consent")),
            join_time=doc["join_time"],
        )

    @property
    def actor(self) -> Actor:
        if self.associate_id:
            return Actor(ActorKind.ASSOCIATE, self.associate_id, self.store_id)
        return Actor(ActorKind.SYSTEM)


@dataclass(frozen=True, slots=True)
class Ensured:
    member: Member
    created: bool
    associate_bound: bool


def identity_bound_elsewhere(member_id: str) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.ALREADY_EXISTS,
        common_pb2.ERROR_REASON_IDENTITY_BOUND_ELSEWHERE,
        f"the identity already belongs to member {member_id!r}; merge the members to combine",
        metadata={"member_id": member_id},
    )


def birthday_already_set() -> ServiceError:
    return ServiceError(
        grpc.StatusCode.FAILED_PRECONDITION,
        common_pb2.ERROR_REASON_INVALID_STATE,
        "the birthday is set once; only an admin can correct it",
        violations=[FieldViolation("birthday", "is already set")],
        metadata={"field": "birthday"},
    )


class IdentityBook:
    def __init__(self, books: Books) -> None:
        self.books = books
        self._members = books.database[MEMBERS]
        self._identities = books.database[IDENTITIES]
        # Draws invite codes; tests replace it to show a taken code is drawn again.
        self.invite_codes: Callable[[], str] = new_invite_code

    # ---- lookups -------------------------------------------------------------------------

    async def member(self, member_id: str) -> Member:
        """The member now standing for `member_id` (merges followed), or NOT_FOUND."""
        member = await self.books.members.get_member(member_id)
        if member is None:
            raise not_found("member", member_id)
        return await follow_merges(self.books.members, member)

    async def _fresh(self, member_id: str) -> Member:
        return await self.member(member_id)

    # ---- EnsureMember --------------------------------------------------------------------

    async def ensure_member(self, identity: Identity, enrolment: Enrolment) -> Ensured:
        """Finds or creates the member owning `identity`: claim first, then the member."""
        identity = normalize(identity)
        claim = await self.claim(identity, enrolment)
        member = await self.books.members.get_member(claim["member_id"])
        created = False
        if member is None:
            member, created = await self.complete(claim, enrolment)
        member = await follow_merges(self.books.members, member)
        bound = (
            created
            and member.associate is not None
            and (member.associate.associate_id == enrolment.associate_id)
        )
        if not created:
            if enrolment.associate_id and enrolment.store_id:
                bound = await self._bind_guide_if_none(member, enrolment)
            if enrolment.marketing_consent and not member.consent.marketing:
                await self._consent_at_enrolment(member, enrolment)
            if bound or enrolment.marketing_consent:
                member = await self._fresh(member.id)
        return Ensured(member, created, bound)

    async def claim(self, identity: Identity, enrolment: Enrolment) -> dict[str, Any]:
        """Step 1: the identity's claim document, inserted for a new member id unless one
        exists. Of any number of concurrent callers one insert wins; the rest read it."""
        key = identity_key(identity)
        for _ in range(MAX_RETRIES):
            existing = await self._identities.find_one({"_id": key})
            if existing is not None:
                return existing
            claim = {
                "_id": key,
                "kind": identity.kind.value,
                "value": identity.value,
                "member_id": new_member_id(),
                "claim_time": enrolment.join_time,
                "enrolment": enrolment.to_document(),
            }
            try:
                await self._identities.insert_one(claim)
            except DuplicateKeyError:
                continue
            return claim
        raise RuntimeError("identity claim kept changing")  # pragma: no cover

    async def complete(self, claim: Mapping[str, Any], fallback: Enrolment) -> tuple[Member, bool]:
        """Step 2: inserts the member the claim names, with the claimed id and the data it
        was claimed with (`fallback` for claims written without it). True when this call
        inserted it; a concurrent completer's insert loses on `_id` and reads the winner."""
        member_id = claim["member_id"]
        enrolment = (
            Enrolment.from_document(claim["enrolment"]) if claim.get("enrolment") else fallback
        )
        identity = Identity(IdentityKind(claim["kind"]), claim["value"])
        # Audit first, keyed by the enrolment, so a member never exists without its entries.
        await self.books.audit.record(
            member_id,
            "enrolled",
            enrolment.actor,
            enrolment.join_time,
            {
                "channel": enrolment.channel.value if enrolment.channel else "",
                "store_id": enrolment.store_id or "",
                "identity_kind": identity.kind.value,
            },
            reference="enrolment",
        )
        guide = None
        if enrolment.associate_id and enrolment.store_id:
            guide = AssociateBinding(
                enrolment.associate_id, enrolment.store_id, enrolment.join_time
            )
            await self.books.audit.record(
                member_id,
                "associate_assigned",
                enrolment.actor,
                enrolment.join_time,
                {
                    "associate_id": guide.associate_id,
                    "store_id": guide.store_id,
                    "reason": "enrolled at the counter",
                },
                reference="enrolment",
            )
        member = Member(
            id=member_id,
            display_name=enrolment.display_name or default_display_name(identity),
            identities=(identity,),
            tier=Tier.BRONZE,
            home_store_id=enrolment.store_id,
            join_time=enrolment.join_time,
            referral_code="",
            consent=Consent(
                marketing=enrolment.marketing_consent,
                update_time=enrolment.join_time if enrolment.marketing_consent else None,
            ),
            associate=guide,
            join_channel=enrolment.channel,
            join_store_id=enrolment.store_id,
            tier_since=enrolment.join_time,
        )
        for _ in range(INVITE_ATTEMPTS):
            member = replace(member, referral_code=self.invite_codes())
            try:
                await self._members.insert_one(member_to_document(member))
            except DuplicateKeyError as error:
                pattern = (error.details or {}).get("keyPattern", {})
                if "referral_code" in pattern:
                    continue  # another member has this invite code: draw again
                existing = await self.books.members.get_member(member_id)
                if existing is None:  # pragma: no cover - only _id and the code are unique
                    raise
                return existing, False
            return member, True
        raise RuntimeError("no free invite code after 10 draws")  # pragma: no cover

    async def _bind_guide_if_none(self, member: Member, enrolment: Enrolment) -> bool:
        """Makes the enrolling associate the exclusive guide of a member that has none."""
        assert enrolment.associate_id and enrolment.store_id
        now = self.books.clock()
        binding = {
            "associate_id": enrolment.associate_id,
            "store_id": enrolment.store_id,
            "bind_time": now,
        }
        for _ in range(MAX_RETRIES):
            if member.associate is not None:
                return False
            done = await self._members.update_one(
                {"_id": member.id, "status": ACTIVE, "associate": None},
                {"$set": {"associate": binding}, "$inc": {"version": 1}},
            )
            if done.modified_count:
                await self.books.audit.record(
                    member.id,
                    "associate_assigned",
                    enrolment.actor,
                    now,
                    {
                        "associate_id": enrolment.associate_id,
                        "store_id": enrolment.store_id,
                        "reason": "enrolled at the counter",
                    },
                    reference=f"{enrolment.associate_id}@{enrolment.store_id}:{now.isoformat()}",
                )
                return True
            member = await self._fresh(member.id)
        return False  # pragma: no cover - contention on one member's guide

    async def _consent_at_enrolment(self, member: Member, enrolment: Enrolment) -> None:
        now = self.books.clock()
        for _ in range(MAX_RETRIES):
            done = await self._members.update_one(
                {"_id": member.id, "status": ACTIVE, "consent.marketing": {"$ne": True}},
                {
                    "$set": {"consent.marketing": True, "consent.update_time": now},
                    "$inc": {"version": 1},
                },
            )
            if done.modified_count:
                await self.books.audit.record(
                    member.id,
                    "consent_updated",
                    enrolment.actor,
                    now,
                    {"marketing": "true", "source": "enrolment"},
                )
                return
            member = await self._fresh(member.id)
            if member.consent.marketing:
                return

    # ---- BindIdentity --------------------------------------------------------------------

    async def bind_identity(
        self, member_id: str, identity: Identity, code: str, actor: Actor
    ) -> Member:
        """Binds `identity` to the member. Proof: a verification code, unless the actor is an
        admin; checked before anything about other members is told. Already this member's:
        nothing changes. Another member's: IDENTITY_BOUND_ELSEWHERE naming it (the code stays
        valid, for the merge that follows)."""
        identity = normalize(identity)
        member = await self.member(member_id)
        key = identity_key(identity)
        check: CodeCheck | None = None
        for _ in range(MAX_RETRIES):
            claim = await self._identities.find_one({"_id": key})
            owner: Member | None = None
            if claim is not None:
                owner = await self._claim_owner(claim)
                if owner.id == member.id:
                    member = await self._list_identity(member, identity)
                    await self._consume(check)
                    return member
            if check is None and actor.kind is not ActorKind.ADMIN:
                check = await self.books.verifications.check(identity, code, self.books.clock())
            if owner is not None:
                raise identity_bound_elsewhere(owner.id)
            try:
                await self._identities.insert_one(
                    {
                        "_id": key,
                        "kind": identity.kind.value,
                        "value": identity.value,
                        "member_id": member.id,
                        "claim_time": self.books.clock(),
                    }
                )
            except DuplicateKeyError:
                continue  # bound by a concurrent call: judge again
            member = await self._list_identity(member, identity)
            await self.books.audit.record(
                member.id,
                "identity_bound",
                actor,
                self.books.clock(),
                {"identity_kind": identity.kind.value},
                reference=key,
            )
            await self._consume(check)
            return member
        raise RuntimeError("identity claim kept changing")  # pragma: no cover

    async def _consume(self, check: CodeCheck | None) -> None:
        if check is not None:
            await self.books.verifications.consume(check)

    async def _claim_owner(self, claim: Mapping[str, Any]) -> Member:
        """The member a claim stands for now: a claim whose member insert was cut short is
        completed first (so it never names a member that does not exist)."""
        member = await self.books.members.get_member(claim["member_id"])
        if member is None:
            if not claim.get("enrolment"):  # pragma: no cover - only seeding writes such claims
                raise not_found("member", claim["member_id"])
            member, _ = await self.complete(claim, Enrolment.from_document(claim["enrolment"]))
        return await follow_merges(self.books.members, member)

    async def _list_identity(self, member: Member, identity: Identity) -> Member:
        """Adds the claimed identity to the member's list. A member merged meanwhile: the
        claim moves to the survivor, which lists it."""
        item = {"kind": identity.kind.value, "value": identity.value}
        key = identity_key(identity)
        for _ in range(MAX_RETRIES):
            if identity in member.identities:
                return member
            done = await self._members.update_one(
                {"_id": member.id, "status": ACTIVE},
                {"$addToSet": {"identities": item}, "$inc": {"version": 1}},
            )
            if done.matched_count:
                return await self._fresh(member.id)
            survivor = await self._fresh(member.id)
            await self._identities.update_one(
                {"_id": key, "member_id": member.id}, {"$set": {"member_id": survivor.id}}
            )
            member = survivor
        raise RuntimeError("member kept changing")  # pragma: no cover

    # ---- profile -------------------------------------------------------------------------

    async def update_profile(
        self,
        member_id: str,
        *,
        display_name: str,
        birthday: str,
        consent: tuple[bool, bool] | None,
        actor: Actor,
    ) -> Member:
        """Display name and birthday (set once; an admin may correct it); with `consent`
        = (marketing, accept_privacy_notice), the consent flags. A version compare-and-set;
        audited as profile_updated / consent_updated."""
        for _ in range(MAX_RETRIES):
            member = await self.member(member_id)
            now = self.books.clock()
            changes: dict[str, Any] = {}
            profile: dict[str, str] = {}
            consent_details: dict[str, str] = {}
            if display_name and display_name != member.display_name:
                changes["display_name"] = profile["display_name"] = display_name
            if birthday and birthday != member.birthday:
                if member.birthday is not None and actor.kind is not ActorKind.ADMIN:
                    raise birthday_already_set()
                changes["birthday"] = profile["birthday"] = birthday
            if consent is not None:
                marketing, accept_privacy = consent
                if marketing != member.consent.marketing:
                    changes["consent.marketing"] = marketing
                    consent_details["marketing"] = str(marketing).lower()
                if accept_privacy and member.consent.privacy_accept_time is None:
                    changes["consent.privacy_accept_time"] = now
                    consent_details["privacy_notice"] = "accepted"
                if consent_details:
                    changes["consent.update_time"] = now
            if not changes:
                return member
            done = await self._members.update_one(
                {"_id": member.id, "status": ACTIVE, "version": member.version},
                {"$set": changes, "$inc": {"version": 1}},
            )
            if not done.modified_count:
                continue
            reference = f"v{member.version + 1}"
            if profile:
                await self.books.audit.record(
                    member.id, "profile_updated", actor, now, profile, reference=reference
                )
            if consent_details:
                await self.books.audit.record(
                    member.id, "consent_updated", actor, now, consent_details, reference=reference
                )
            return await self._fresh(member.id)
        raise RuntimeError("member kept changing")  # pragma: no cover

    # ---- associates ----------------------------------------------------------------------

    async def assign_associate(
        self, member_id: str, associate_id: str, store_id: str, reason: str, actor: Actor
    ) -> Member:
        """Makes `associate_id` the member's exclusive guide in `store_id` (replacing any
        other); the same guide again changes nothing. Audited as associate_assigned."""
        for _ in range(MAX_RETRIES):
            member = await self.member(member_id)
            previous = member.associate
            if (
                previous is not None
                and previous.associate_id == associate_id
                and previous.store_id == store_id
            ):
                return member
            now = self.books.clock()
            done = await self._members.update_one(
                {"_id": member.id, "status": ACTIVE, "version": member.version},
                {
                    "$set": {
                        "associate": {
                            "associate_id": associate_id,
                            "store_id": store_id,
                            "bind_time": now,
                        }
                    },
                    "$inc": {"version": 1},
                },
            )
            if not done.modified_count:
                continue
            await self.books.audit.record(
                member.id,
                "associate_assigned",
                actor,
                now,
                {
                    "associate_id": associate_id,
                    "store_id": store_id,
                    "previous_associate_id": previous.associate_id if previous else "",
                    "previous_store_id": previous.store_id if previous else "",
                    "reason": reason,
                },
                reference=f"{associate_id}@{store_id}:{now.isoformat()}",
            )
            return await self._fresh(member.id)
        raise RuntimeError("member kept changing")  # pragma: no cover

    async def list_members(
        self,
        *,
        associate_id: str,
        store_id: str,
        query: str,
        after: str | None,
        limit: int,
    ) -> list[Member]:
        """Active members by guide and/or store (guide's store, home store or store of
        enrolment), optionally matching a display-name fragment or the last 4+ digits of a
        phone number; by id, after `after`."""
        parts: list[dict[str, Any]] = [{"status": ACTIVE}]
        if associate_id:
            parts.append({"associate.associate_id": associate_id})
        if store_id:
            parts.append(
                {
                    "$or": [
                        {"associate.store_id": store_id},
                        {"home_store_id": store_id},
                        {"join_store_id": store_id},
                    ]
                }
            )
        if query:
            matches: list[dict[str, Any]] = [
                {"display_name": {"$regex": re.escape(query), "$options": "i"}}
            ]
            if query.isdigit() and len(query) >= 4:
                matches.append(
                    {
                        "identities": {
                            "$elemMatch": {
                                "kind": IdentityKind.PHONE.value,
                                "value": {"$regex": f"{query}$"},
                            }
                        }
                    }
                )
            parts.append({"$or": matches})
        if after is not None:
            parts.append({"_id": {"$gt": after}})
        cursor = self._members.find({"$and": parts}).sort("_id", 1).limit(limit)
        return [member_from_document(doc) async for doc in cursor]

    # ---- member tags ---------------------------------------------------------------------

    async def tag(self, member_id: str, tag_id: str, actor: Actor) -> tuple[Member, bool]:
        """Adds the tag with who/where/when; False when the member already had it."""
        for _ in range(MAX_RETRIES):
            member = await self.member(member_id)
            if tag_id in member.tag_ids:
                return member, False
            now = self.books.clock()
            record = MemberTag(tag_id, actor.id, actor.store_id, now)
            if await push_tag(self._members, member.id, record):
                await self.books.audit.record(
                    member.id,
                    "tagged",
                    actor,
                    now,
                    {"tag_id": tag_id},
                    reference=f"{tag_id}:{now.isoformat()}",
                )
                return await self._fresh(member.id), True
        raise RuntimeError("member kept changing")  # pragma: no cover

    async def untag(self, member_id: str, tag_id: str, actor: Actor) -> tuple[Member, bool]:
        """Removes the tag; audited with the removed record's who/where/when."""
        for _ in range(MAX_RETRIES):
            member = await self.member(member_id)
            record = next((t for t in member.tags if t.tag_id == tag_id), None)
            if record is None:
                return member, False
            if await pull_tag(self._members, member.id, tag_id):
                await self.books.audit.record(
                    member.id,
                    "untagged",
                    actor,
                    self.books.clock(),
                    {
                        "tag_id": tag_id,
                        "added_by": record.added_by,
                        "added_store_id": record.store_id or "",
                        "add_time": record.add_time.isoformat(),
                    },
                    reference=f"{tag_id}:{record.add_time.isoformat()}",
                )
                return await self._fresh(member.id), True
        raise RuntimeError("member kept changing")  # pragma: no cover
