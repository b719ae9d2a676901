"""Member domain: one member across channels, identified by phone / WeChat / app account."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime


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


@dataclass(frozen=True, slots=True)
class Identity:
    kind: IdentityKind
    value: str


@dataclass(frozen=True, slots=True)
class Member:
    id: str
    display_name: str
    identities: tuple[Identity, ...]
    tier: Tier
    points_balance: int
    home_store_id: str | None
    tags: tuple[str, ...]
    join_time: datetime
    referral_code: str
