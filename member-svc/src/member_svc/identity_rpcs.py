"""MemberService RPCs for identity, profile, associates' members, tags and merges.

Requests are checked here (every problem named by its field, nothing written on a bad
request); the rules are in identity_book.py, verification.py, tags.py and merge.py.
"""

from __future__ import annotations

import calendar
import re
from datetime import datetime

import grpc

from member_svc.audit import AuditEntry
from member_svc.convert import (
    CHANNEL_FROM_PROTO,
    actor_from_proto,
    actor_to_proto,
    identity_from_proto,
    member_to_proto,
    timestamp,
)
from member_svc.domain import Actor, ActorKind, Identity, Member, MemberStatus
from member_svc.identities import identity_key
from member_svc.identity_book import Enrolment, IdentityBook
from member_svc.merge import member_merged
from member_svc.repository import IDENTITIES
from member_svc.rpc_base import MemberRpcBase
from member_svc.tags import TagDefinition, definition_violations, tag_id_violation
from member_svc.verification import CodeCheck
from retail.common.v1 import common_pb2
from retail.member.v1 import member_pb2
from retail_kit.errors import Context, FieldViolation, ServiceError, invalid_argument, not_found
from retail_kit.paging import (
    decode_page_token,
    encode_page_token,
    invalid_page_token,
    page_size,
    query_fingerprint,
)
from retail_kit.validation import id_violation

MAX_DISPLAY_NAME = 32
MAX_REASON = 200
MAX_QUERY = 32
BIRTHDAY = re.compile(r"^(\d{2})-(\d{2})$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _text_violation(field: str, value: str, maximum: int) -> FieldViolation | None:
    if len(value) > maximum:
        return FieldViolation(field, f"at most {maximum} characters")
    if _CONTROL.search(value):
        return FieldViolation(field, "must not contain control characters")
    return None


def _birthday_violation(value: str) -> FieldViolation | None:
    match = BIRTHDAY.match(value)
    if match:
        month, day = int(match[1]), int(match[2])
        # A leap year, so "02-29" is a birthday.
        if 1 <= month <= 12 and 1 <= day <= calendar.monthrange(2024, month)[1]:
            return None
    return FieldViolation("birthday", 'must be a date "MM-DD", e.g. "03-14"')


def _identity_violations(identity: member_pb2.Identity, field: str) -> list[FieldViolation]:
    try:
        identity_from_proto(identity, field)
    except ServiceError as error:
        return list(error.violations)
    return []


def _raise(violations: list[FieldViolation | None]) -> None:
    found = [v for v in violations if v is not None]
    if found:
        raise invalid_argument(*found)


def permission_denied(message: str) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.PERMISSION_DENIED, common_pb2.ERROR_REASON_PERMISSION_DENIED, message
    )


def tag_to_proto(tag: TagDefinition) -> member_pb2.TagDefinition:
    return member_pb2.TagDefinition(
        id=tag.id,
        name=common_pb2.LocalizedText(values=dict(tag.names)),
        group=tag.group,
        colour=tag.colour,
        created_by=tag.created_by,
        update_time=timestamp(tag.update_time),
    )


def audit_entry_to_proto(entry: AuditEntry) -> member_pb2.MemberAuditEntry:
    return member_pb2.MemberAuditEntry(
        id=entry.id,
        member_id=entry.member_id,
        action=entry.action,
        actor=actor_to_proto(entry.actor),
        occur_time=timestamp(entry.occur_time),
        details=dict(entry.details),
    )


class IdentityRpcs(MemberRpcBase):
    def identity_book(self) -> IdentityBook:
        return IdentityBook(self.books)

    def _proto(self, member: Member) -> member_pb2.Member:
        return member_to_proto(member, self.now())

    # ---- payment = membership ------------------------------------------------------------

    async def EnsureMember(
        self, request: member_pb2.EnsureMemberRequest, context: Context
    ) -> member_pb2.EnsureMemberResponse:
        violations: list[FieldViolation | None] = list(
            _identity_violations(request.identity, "identity")
        )
        channel = CHANNEL_FROM_PROTO.get(request.channel)
        if channel is None and request.channel != common_pb2.CHANNEL_UNSPECIFIED:
            violations.append(FieldViolation("channel", "is not a known channel"))
        if request.store_id:
            violations.append(id_violation("store_id", request.store_id))
        if request.associate_id:
            violations.append(id_violation("associate_id", request.associate_id))
            if not request.store_id:
                violations.append(
                    FieldViolation("store_id", "is required with associate_id (the guide's store)")
                )
        display_name = request.display_name.strip()
        violations.append(_text_violation("display_name", display_name, MAX_DISPLAY_NAME))
        _raise(violations)
        identity = identity_from_proto(request.identity)
        ensured = await self.identity_book().ensure_member(
            identity,
            Enrolment(
                display_name=display_name,
                channel=channel,
                store_id=request.store_id or None,
                associate_id=request.associate_id or None,
                marketing_consent=request.marketing_consent,
                join_time=self.now(),
            ),
        )
        return member_pb2.EnsureMemberResponse(
            member=self._proto(ensured.member),
            created=ensured.created,
            associate_bound=ensured.associate_bound,
        )

    # ---- identities ----------------------------------------------------------------------

    async def RequestIdentityVerification(
        self, request: member_pb2.RequestIdentityVerificationRequest, context: Context
    ) -> member_pb2.RequestIdentityVerificationResponse:
        identity = identity_from_proto(request.identity)
        issued = await self.books.verifications.request(identity, self.now())
        # The SMS / WeChat partner delivers the code; only development runs return it.
        return member_pb2.RequestIdentityVerificationResponse(
            expire_time=timestamp(issued.expire_time),
            debug_code=issued.code if self.books.settings.expose_verification_codes else "",
        )

    async def BindIdentity(
        self, request: member_pb2.BindIdentityRequest, context: Context
    ) -> member_pb2.BindIdentityResponse:
        actor = actor_from_proto(request.actor)
        violations: list[FieldViolation | None] = [id_violation("member_id", request.member_id)]
        violations += _identity_violations(request.identity, "identity")
        if actor.kind is not ActorKind.ADMIN and not request.verification_code.strip():
            violations.append(
                FieldViolation("verification_code", "is required unless the actor is an admin")
            )
        _raise(violations)
        member = await self.identity_book().bind_identity(
            request.member_id,
            identity_from_proto(request.identity),
            request.verification_code,
            actor,
        )
        return member_pb2.BindIdentityResponse(member=self._proto(member))

    # ---- profile and audit ---------------------------------------------------------------

    async def UpdateMemberProfile(
        self, request: member_pb2.UpdateMemberProfileRequest, context: Context
    ) -> member_pb2.UpdateMemberProfileResponse:
        actor = actor_from_proto(request.actor)
        display_name = request.display_name.strip()
        birthday = request.birthday.strip()
        _raise(
            [
                id_violation("member_id", request.member_id),
                _text_violation("display_name", display_name, MAX_DISPLAY_NAME),
                _birthday_violation(birthday) if birthday else None,
            ]
        )
        member = await self.identity_book().update_profile(
            request.member_id,
            display_name=display_name,
            birthday=birthday,
            consent=(
                (request.marketing_consent, request.accept_privacy_notice)
                if request.update_consent
                else None
            ),
            actor=actor,
        )
        return member_pb2.UpdateMemberProfileResponse(member=self._proto(member))

    async def ListMemberAudit(
        self, request: member_pb2.ListMemberAuditRequest, context: Context
    ) -> member_pb2.ListMemberAuditResponse:
        size = page_size(request.page_size)
        member = await self.require_member(request.member_id)
        fingerprint = query_fingerprint("member_audit", member.id)
        last = decode_page_token(request.page_token, fingerprint)
        before: tuple[datetime, str] | None = None
        if last is not None:
            try:
                before = (datetime.fromisoformat(last[0]), str(last[1]))
            except (TypeError, ValueError, IndexError):
                raise invalid_page_token() from None
        entries = await self.books.audit.list(member.id, size + 1, before)
        token = ""
        if len(entries) > size:
            entries = entries[:size]
            tail = entries[-1]
            token = encode_page_token(fingerprint, [tail.occur_time.isoformat(), tail.id])
        return member_pb2.ListMemberAuditResponse(
            entries=[audit_entry_to_proto(e) for e in entries], next_page_token=token
        )

    # ---- associates' members -------------------------------------------------------------

    async def AssignAssociate(
        self, request: member_pb2.AssignAssociateRequest, context: Context
    ) -> member_pb2.AssignAssociateResponse:
        actor = actor_from_proto(request.actor)
        reason = request.reason.strip()
        _raise(
            [
                id_violation("member_id", request.member_id),
                id_violation("associate_id", request.associate_id),
                id_violation("store_id", request.store_id),
                _text_violation("reason", reason, MAX_REASON),
            ]
        )
        member = await self.identity_book().assign_associate(
            request.member_id, request.associate_id, request.store_id, reason, actor
        )
        return member_pb2.AssignAssociateResponse(member=self._proto(member))

    async def ListMembers(
        self, request: member_pb2.ListMembersRequest, context: Context
    ) -> member_pb2.ListMembersResponse:
        query = request.query.strip()
        violations: list[FieldViolation | None] = []
        if not request.associate_id and not request.store_id:
            violations.append(
                FieldViolation("associate_id", "one of associate_id and store_id is required")
            )
        if request.associate_id:
            violations.append(id_violation("associate_id", request.associate_id))
        if request.store_id:
            violations.append(id_violation("store_id", request.store_id))
        violations.append(_text_violation("query", query, MAX_QUERY))
        _raise(violations)
        size = page_size(request.page_size)
        fingerprint = query_fingerprint("members", request.associate_id, request.store_id, query)
        after = decode_page_token(request.page_token, fingerprint)
        if after is not None and not isinstance(after, str):
            raise invalid_page_token()
        members = await self.identity_book().list_members(
            associate_id=request.associate_id,
            store_id=request.store_id,
            query=query,
            after=after,
            limit=size + 1,
        )
        token = ""
        if len(members) > size:
            members = members[:size]
            token = encode_page_token(fingerprint, members[-1].id)
        return member_pb2.ListMembersResponse(
            members=[self._proto(m) for m in members], next_page_token=token
        )

    # ---- tags ----------------------------------------------------------------------------

    async def UpsertTagDefinition(
        self, request: member_pb2.UpsertTagDefinitionRequest, context: Context
    ) -> member_pb2.UpsertTagDefinitionResponse:
        actor = actor_from_proto(request.actor)
        tag = request.tag
        names = dict(tag.name.values)
        _raise(list(definition_violations(tag.id, names, tag.group, tag.colour)))
        stored = await self.books.tags.upsert(
            tag.id, names, tag.group, tag.colour, actor.id, self.now()
        )
        return member_pb2.UpsertTagDefinitionResponse(tag=tag_to_proto(stored))

    async def ListTagDefinitions(
        self, request: member_pb2.ListTagDefinitionsRequest, context: Context
    ) -> member_pb2.ListTagDefinitionsResponse:
        tags = await self.books.tags.list()
        return member_pb2.ListTagDefinitionsResponse(tags=[tag_to_proto(t) for t in tags])

    async def _check_tag_request(self, member_id: str, tag_id: str) -> None:
        _raise([id_violation("member_id", member_id), tag_id_violation("tag_id", tag_id)])
        if await self.books.tags.get(tag_id) is None:
            raise not_found("tag", tag_id)

    async def TagMember(
        self, request: member_pb2.TagMemberRequest, context: Context
    ) -> member_pb2.TagMemberResponse:
        actor = actor_from_proto(request.actor)
        await self._check_tag_request(request.member_id, request.tag_id)
        member, added = await self.identity_book().tag(request.member_id, request.tag_id, actor)
        return member_pb2.TagMemberResponse(member=self._proto(member), added=added)

    async def UntagMember(
        self, request: member_pb2.UntagMemberRequest, context: Context
    ) -> member_pb2.UntagMemberResponse:
        actor = actor_from_proto(request.actor)
        await self._check_tag_request(request.member_id, request.tag_id)
        member, removed = await self.identity_book().untag(request.member_id, request.tag_id, actor)
        return member_pb2.UntagMemberResponse(member=self._proto(member), removed=removed)

    # ---- merges --------------------------------------------------------------------------

    async def MergeMembers(
        self, request: member_pb2.MergeMembersRequest, context: Context
    ) -> member_pb2.MergeMembersResponse:
        actor = actor_from_proto(request.actor)
        source_id, target_id = request.source_member_id, request.target_member_id
        reason = request.reason.strip()
        violations: list[FieldViolation | None] = [
            id_violation("source_member_id", source_id),
            id_violation("target_member_id", target_id),
            _text_violation("reason", reason, MAX_REASON),
            _text_violation("idempotency_key", request.idempotency_key, 128),
        ]
        if source_id and source_id == target_id:
            violations.append(
                FieldViolation("target_member_id", "must differ from source_member_id")
            )
        if actor.kind is ActorKind.ADMIN and not reason:
            violations.append(FieldViolation("reason", "is required for an admin merge"))
        _raise(violations)
        merges = self.books.merges
        record = await merges.get(source_id)
        if record is None:
            check = await self._judge_merge(request, actor)
            record = await merges.begin(
                source_id,
                target_id,
                reason=reason or "customer proved both identities",
                actor=actor,
                idempotency_key=request.idempotency_key,
                now=self.now(),
            )
            if check is not None and record.survivor_id == target_id:
                await self.books.verifications.consume(check)
        if record.survivor_id != target_id:
            raise member_merged(source_id, record.survivor_id)
        record = await merges.run(self.books, record)
        survivor = await self.identity_book().member(record.survivor_id)
        return member_pb2.MergeMembersResponse(
            member=self._proto(survivor), merge_id=record.merge_id
        )

    async def _judge_merge(
        self, request: member_pb2.MergeMembersRequest, actor: Actor
    ) -> CodeCheck | None:
        """A new merge: both members exist and are active; the actor may merge them (an
        admin, or a customer who is one of them and proves an identity of the other)."""
        source = await self.require_member(request.source_member_id, "source_member_id")
        target = await self.require_member(request.target_member_id, "target_member_id")
        for member in (target, source):
            if member.status is MemberStatus.MERGED:
                raise member_merged(member.id, member.merged_into or "")
        if actor.kind is ActorKind.ADMIN:
            return None
        if actor.kind is not ActorKind.CUSTOMER:
            raise permission_denied("only an admin or the member themself can merge members")
        if actor.id not in (source.id, target.id):
            raise permission_denied("a customer can only merge another member into their own")
        other = source if actor.id == target.id else target
        _raise(
            [
                *_identity_violations(request.proof_identity, "proof_identity"),
                None
                if request.verification_code.strip()
                else FieldViolation(
                    "verification_code", "is required unless the actor is an admin"
                ),
            ]
        )
        proof = identity_from_proto(request.proof_identity, "proof_identity")
        # The code first: whose identity it is is told only to its owner.
        check = await self.books.verifications.check(proof, request.verification_code, self.now())
        if not await self._owns(other, proof):
            raise ServiceError(
                grpc.StatusCode.INVALID_ARGUMENT,
                common_pb2.ERROR_REASON_VERIFICATION_FAILED,
                "the proof identity is not one of the other member's",
                violations=[
                    FieldViolation("proof_identity", "must be an identity of the other member")
                ],
            )
        return check

    async def _owns(self, member: Member, identity: Identity) -> bool:
        claim = await self.books.database[IDENTITIES].find_one({"_id": identity_key(identity)})
        return claim is not None and claim["member_id"] == member.id
