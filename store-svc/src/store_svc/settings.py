"""store-svc settings: STORE_* variables (MONGODB_URI and LOG_LEVEL shared)."""

from __future__ import annotations

from dataclasses import dataclass

from retail_kit.partitions import DEFAULT_PARTITIONS
from retail_kit.settings import ServiceSettings, load_settings

DEFAULT_PORT = 50052


@dataclass(frozen=True, slots=True)
class StoreSettings(ServiceSettings):
    port: int = DEFAULT_PORT
    database: str = "store"
    # Seconds between passes of the sweeper releasing reservations whose hold has passed;
    # 0 turns it off.
    sweep_interval_seconds: float = 30.0
    # Physical collections per hot collection (inventory, adjustments, reservations,
    # reservation_expiry; see store_svc.partitioning). Recorded in the database on first
    # start; a different value later refuses to start until the data is repartitioned.
    partitions: int = DEFAULT_PARTITIONS


def load() -> StoreSettings:
    return load_settings(StoreSettings, "STORE")
