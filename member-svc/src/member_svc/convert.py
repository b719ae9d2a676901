"""proto <-> domain conversions every area of the member servicer shares."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from member_svc.domain import (
    Actor,
    ActorKind,
    Channel,
    Identity,
    IdentityKind,
    LifecycleStage,
    Member,
    MemberStatus,
)
from member_svc.identities import IdentityError, normalize_value
from retail.common.v1 import common_pb2
from retail.member.v1 import member_pb2
from retail_kit.errors import FieldViolation, invalid_argument

DEFAULT_CURRENCY = "CNY"
EXPIRING_SOON_DAYS = 30

KIND_TO_PROTO = {
    IdentityKind.PHONE: member_pb2.IDENTITY_KIND_PHONE,
    IdentityKind.WECHAT_UNIONID: member_pb2.IDENTITY_KIND_WECHAT_UNIONID,
    IdentityKind.WECHAT_OPENID: member_pb2.IDENTITY_KIND_WECHAT_OPENID,
    IdentityKind.APP_ACCOUNT: member_pb2.IDENTITY_KIND_APP_ACCOUNT,
}
KIND_FROM_PROTO = {number: kind for kind, number in KIND_TO_PROTO.items()}

STATUS_TO_PROTO = {
    MemberStatus.ACTIVE: member_pb2.MEMBER_STATUS_ACTIVE,
    MemberStatus.MERGED: member_pb2.MEMBER_STATUS_MERGED,
}

STAGE_TO_PROTO = {
    LifecycleStage.NEW: member_pb2.LIFECYCLE_STAGE_NEW,
    LifecycleStage.ACTIVE: member_pb2.LIFECYCLE_STAGE_ACTIVE,
    LifecycleStage.DORMANT: member_pb2.LIFECYCLE_STAGE_DORMANT,
    LifecycleStage.CHURNED: member_pb2.LIFECYCLE_STAGE_CHURNED,
}
STAGE_FROM_PROTO = {number: stage for stage, number in STAGE_TO_PROTO.items()}

CHANNEL_TO_PROTO = {
    Channel.MINI_PROGRAM: common_pb2.CHANNEL_MINI_PROGRAM,
    Channel.APP: common_pb2.CHANNEL_APP,
    Channel.POS: common_pb2.CHANNEL_POS,
    Channel.KIOSK: common_pb2.CHANNEL_KIOSK,
}
CHANNEL_FROM_PROTO = {number: channel for channel, number in CHANNEL_TO_PROTO.items()}

ACTOR_KIND_TO_PROTO = {
    ActorKind.CUSTOMER: common_pb2.ACTOR_KIND_CUSTOMER,
    ActorKind.ASSOCIATE: common_pb2.ACTOR_KIND_ASSOCIATE,
    ActorKind.STORE_MANAGER: common_pb2.ACTOR_KIND_STORE_MANAGER,
    ActorKind.KIOSK: common_pb2.ACTOR_KIND_KIOSK,
    ActorKind.ADMIN: common_pb2.ACTOR_KIND_ADMIN,
    ActorKind.PARTNER: common_pb2.ACTOR_KIND_PARTNER,
    ActorKind.SYSTEM: common_pb2.ACTOR_KIND_SYSTEM,
}
ACTOR_KIND_FROM_PROTO = {number: kind for kind, number in ACTOR_KIND_TO_PROTO.items()}


def timestamp(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def optional_timestamp(value: datetime | None) -> Timestamp | None:
    return timestamp(value) if value is not None else None


def from_timestamp(stamp: Timestamp) -> datetime:
    return stamp.ToDatetime(tzinfo=UTC)


def money(amount: int, currency: str = DEFAULT_CURRENCY) -> common_pb2.Money:
    return common_pb2.Money(amount=amount, currency=currency)


def actor_from_proto(actor: common_pb2.Actor, field: str = "actor") -> Actor:
    """The actor of a request; unspecified means the system (a service's own worker)."""
    if actor.kind == common_pb2.ACTOR_KIND_UNSPECIFIED:
        return Actor(ActorKind.SYSTEM)
    kind = ACTOR_KIND_FROM_PROTO.get(actor.kind)
    if kind is None:
        raise invalid_argument(FieldViolation(f"{field}.kind", "is not a known actor kind"))
    return Actor(kind, actor.id, actor.store_id or None)


def actor_to_proto(actor: Actor) -> common_pb2.Actor:
    return common_pb2.Actor(
        kind=ACTOR_KIND_TO_PROTO[actor.kind], id=actor.id, store_id=actor.store_id or ""
    )


def identity_from_proto(identity: member_pb2.Identity, field: str = "identity") -> Identity:
    """A valid, canonical identity, or INVALID_ARGUMENT naming `identity.kind` / `.value`."""
    violations: list[FieldViolation] = []
    kind = KIND_FROM_PROTO.get(identity.kind)
    if kind is None:
        names = ", ".join(member_pb2.IdentityKind.Name(n) for n in KIND_FROM_PROTO)
        violations.append(FieldViolation(f"{field}.kind", f"must be one of {names}"))
    value = ""
    if not identity.value.strip():
        violations.append(FieldViolation(f"{field}.value", "is required"))
    elif kind is not None:
        try:
            value = normalize_value(kind, identity.value)
        except IdentityError as error:
            violations.append(FieldViolation(f"{field}.value", str(error)))
    if violations or kind is None:
        raise invalid_argument(*violations)
    return Identity(kind, value)


def points_summary_to_proto(member: Member, now: datetime) -> member_pb2.PointsSummary:
    account = member.points
    soon = now.timestamp() + EXPIRING_SOON_DAYS * 86_400
    expiring = sorted(
        (lot for lot in account.lots if lot.remaining > 0 and now < lot.expire_time),
        key=lambda lot: lot.expire_time,
    )
    return member_pb2.PointsSummary(
        available=account.available(now),
        pending=account.pending(now),
        total=account.total,
        expiring_soon=[
            member_pb2.ExpiringPoints(points=lot.remaining, expire_time=timestamp(lot.expire_time))
            for lot in expiring
            if lot.expire_time.timestamp() <= soon and lot.available_time <= now
        ],
    )


def member_to_proto(member: Member, now: datetime) -> member_pb2.Member:
    """The whole member; masking phone numbers for staff is the gateway's presentation."""
    message = member_pb2.Member(
        id=member.id,
        display_name=member.display_name,
        identities=[
            member_pb2.Identity(kind=KIND_TO_PROTO[i.kind], value=i.value)
            for i in member.identities
        ],
        tier=member.tier.value,
        points_balance=member.points.available(now),
        home_store_id=member.home_store_id or "",
        tags=member.tag_ids,
        join_time=timestamp(member.join_time),
        referral_code=member.referral_code,
        status=STATUS_TO_PROTO[member.status],
        merged_into_member_id=member.merged_into or "",
        merged_member_ids=member.merged_ids,
        tag_records=[
            member_pb2.MemberTag(
                tag_id=tag.tag_id,
                added_by=tag.added_by,
                store_id=tag.store_id or "",
                add_time=timestamp(tag.add_time),
            )
            for tag in member.tags
        ],
        consent=member_pb2.Consent(
            marketing=member.consent.marketing,
            privacy_accept_time=optional_timestamp(member.consent.privacy_accept_time),
            update_time=optional_timestamp(member.consent.update_time),
        ),
        points=points_summary_to_proto(member, now),
        lifecycle_stage=STAGE_TO_PROTO[member.lifecycle_stage(now)],
        last_purchase_time=optional_timestamp(member.last_purchase_time),
        join_channel=CHANNEL_TO_PROTO.get(member.join_channel, common_pb2.CHANNEL_UNSPECIFIED)
        if member.join_channel
        else common_pb2.CHANNEL_UNSPECIFIED,
        join_store_id=member.join_store_id or "",
        referred_by_member_id=member.referred_by or "",
        qualifying_spend=money(member.qualifying_spend),
        tier_review_time=optional_timestamp(member.tier_review_time),
        birthday=member.birthday or "",
    )
    if member.associate is not None:
        message.associate.CopyFrom(
            member_pb2.AssociateBinding(
                associate_id=member.associate.associate_id,
                store_id=member.associate.store_id,
                bind_time=timestamp(member.associate.bind_time),
            )
        )
    return message
