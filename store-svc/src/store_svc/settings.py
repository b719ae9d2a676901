"""store-svc settings: STORE_* variables (MONGODB_URI and LOG_LEVEL shared)."""

from __future__ import annotations

from dataclasses import dataclass

from retail_kit.settings import ServiceSettings, load_settings

DEFAULT_PORT = 50052


@dataclass(frozen=True, slots=True)
class StoreSettings(ServiceSettings):
    port: int = DEFAULT_PORT
    database: str = "store"
    # Seconds between passes of the sweeper releasing reservations whose hold has passed;
    # 0 turns it off. Every replica may sweep: each release is a conditional transition.
    sweep_interval_seconds: float = 30.0


def load() -> StoreSettings:
    return load_settings(StoreSettings, "STORE")
