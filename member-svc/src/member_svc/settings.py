"""member-svc settings: MEMBER_* variables (MONGODB_URI and LOG_LEVEL shared)."""

from __future__ import annotations

from dataclasses import dataclass

from retail_kit.settings import ServiceSettings, load_settings

DEFAULT_PORT = 50054


@dataclass(frozen=True, slots=True)
class MemberSettings(ServiceSettings):
    port: int = DEFAULT_PORT
    database: str = "member"
    # Background jobs (points expiry, tier review, coupon lock release, campaigns) run every
    # this many seconds on every replica; 0 turns them off (tests drive them by hand).
    worker_interval_seconds: float = 5.0
    # Development only: RequestIdentityVerification returns the code it would have sent.
    expose_verification_codes: bool = False


def load() -> MemberSettings:
    return load_settings(MemberSettings, "MEMBER")
