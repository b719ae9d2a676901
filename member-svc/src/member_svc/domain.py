"""Member domain: one member across channels, identified by phone / WeChat / app account.

Plain dataclasses and rules; no proto, no BSON. Each area of the service (identity, points
and tiers, coupons, referrals and segments) keeps its own rules in its own module; this one
holds what they share: the member as every area reads it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timedelta

DEFAULT_CURRENCY = "CNY"


class IdentityKind(enum.StrEnum):
    PHONE = "phone"
    WECHAT_UNIONID = "wechat_unionid"
    WECHAT_OPENID = "wechat_openid"
    APP_ACCOUNT = "app_account"


class Tier(enum.StrEnum):
    BRONZE = "bronze"
    SILVER = "silver"
    GOLD = "gold"
    PLATINUM = "platinum"


class MemberStatus(enum.StrEnum):
    ACTIVE = "active"
    MERGED = "merged"


class Channel(enum.StrEnum):
    MINI_PROGRAM = "mini_program"
    APP = "app"
    POS = "pos"
    KIOSK = "kiosk"


class LifecycleStage(enum.StrEnum):
    NEW = "new"
    ACTIVE = "active"
    DORMANT = "dormant"
    CHURNED = "churned"


NEW_MEMBER_DAYS = 30
ACTIVE_DAYS = 90
DORMANT_DAYS = 180


class ActorKind(enum.StrEnum):
    CUSTOMER = "customer"
    ASSOCIATE = "associate"
    STORE_MANAGER = "store_manager"
    KIOSK = "kiosk"
    ADMIN = "admin"
    PARTNER = "partner"
    SYSTEM = "system"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who asks for a change; recorded in audit entries and ledger entries."""

    kind: ActorKind
    id: str = ""
    store_id: str | None = None


SYSTEM = Actor(ActorKind.SYSTEM)


@dataclass(frozen=True, slots=True)
class Identity:
    kind: IdentityKind
    value: str


@dataclass(frozen=True, slots=True)
class Consent:
    marketing: bool = False
    privacy_accept_time: datetime | None = None
    update_time: datetime | None = None


@dataclass(frozen=True, slots=True)
class AssociateBinding:
    """The member's exclusive guide (专属导购) in one store."""

    associate_id: str
    store_id: str
    bind_time: datetime


@dataclass(frozen=True, slots=True)
class MemberTag:
    tag_id: str
    added_by: str
    store_id: str | None
    add_time: datetime


@dataclass(frozen=True, slots=True)
class PointsLot:
    """Points earned together, spent soonest-expiring first; `remaining` never below zero.

    A lot whose `available_time` is in the future is pending (an order's return window);
    one whose `expire_time` has passed is worth nothing to a redemption and is taken by the
    next expiry entry."""

    id: str
    points: int
    remaining: int
    available_time: datetime
    expire_time: datetime
    # The entry that created the lot ("earn:<order>", "transfer_in:<merge>", ...).
    source: str


@dataclass(frozen=True, slots=True)
class PointsAccount:
    """The head of a member's points ledger, kept in the member document.

    `seq` is the sequence number of the last ledger entry applied: the next entry is
    `seq + 1`, and the member document only moves from `seq` to `seq + 1` (compare-and-set),
    so the entries and the head can never disagree for long (see points.py)."""

    seq: int = 0
    total: int = 0
    lots: tuple[PointsLot, ...] = ()

    def available(self, now: datetime) -> int:
        return sum(
            lot.remaining
            for lot in self.lots
            if lot.available_time <= now and lot.expire_time > now
        )

    def pending(self, now: datetime) -> int:
        return sum(
            lot.remaining for lot in self.lots if lot.available_time > now and lot.expire_time > now
        )


@dataclass(frozen=True, slots=True)
class Member:
    id: str
    display_name: str
    identities: tuple[Identity, ...]
    tier: Tier
    home_store_id: str | None
    join_time: datetime
    referral_code: str
    status: MemberStatus = MemberStatus.ACTIVE
    merged_into: str | None = None
    merged_ids: tuple[str, ...] = ()
    tags: tuple[MemberTag, ...] = ()
    consent: Consent = field(default_factory=Consent)
    associate: AssociateBinding | None = None
    points: PointsAccount = field(default_factory=PointsAccount)
    birthday: str | None = None  # "MM-DD"
    join_channel: Channel | None = None
    join_store_id: str | None = None
    referred_by: str | None = None
    last_purchase_time: datetime | None = None
    # Rolling 12-month qualifying spend in fen, as of `spend_time`.
    qualifying_spend: int = 0
    tier_since: datetime | None = None
    tier_review_time: datetime | None = None
    version: int = 0

    @property
    def tag_ids(self) -> tuple[str, ...]:
        return tuple(tag.tag_id for tag in self.tags)

    @property
    def last_activity_time(self) -> datetime:
        if self.last_purchase_time is None:
            return self.join_time
        return max(self.join_time, self.last_purchase_time)

    def lifecycle_stage(self, now: datetime) -> LifecycleStage:
        return lifecycle_stage(self.join_time, self.last_activity_time, now)


def lifecycle_stage(join_time: datetime, last_activity: datetime, now: datetime) -> LifecycleStage:
    """new: joined < 30 days ago; else by the last purchase (or joining): <= 90 days active,
    <= 180 dormant, older churned."""
    if now - join_time < timedelta(days=NEW_MEMBER_DAYS):
        return LifecycleStage.NEW
    idle = now - last_activity
    if idle <= timedelta(days=ACTIVE_DAYS):
        return LifecycleStage.ACTIVE
    if idle <= timedelta(days=DORMANT_DAYS):
        return LifecycleStage.DORMANT
    return LifecycleStage.CHURNED
