"""member-svc settings: MEMBER_* variables (MONGODB_URI and LOG_LEVEL shared)."""

from __future__ import annotations

from dataclasses import dataclass

from retail_kit.settings import ServiceSettings, load_settings

DEFAULT_PORT = 50054


@dataclass(frozen=True, slots=True)
class MemberSettings(ServiceSettings):
    port: int = DEFAULT_PORT
    database: str = "member"


def load() -> MemberSettings:
    return load_settings(MemberSettings, "MEMBER")
