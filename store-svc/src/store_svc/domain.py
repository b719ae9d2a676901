"""Store domain: stores with location, timezone and weekly hours. No proto, no BSON."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import time


class StoreType(enum.StrEnum):
    FLAGSHIP = "flagship"
    STANDARD = "standard"
    POP_UP = "pop_up"
    WAREHOUSE = "warehouse"


class StoreService(enum.StrEnum):
    PICKUP = "pickup"
    RETURNS = "returns"
    SHIP_FROM_STORE = "ship_from_store"


class StoreStatus(enum.StrEnum):
    OPEN = "open"
    TEMPORARILY_CLOSED = "temporarily_closed"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class GeoPoint:
    latitude: float
    longitude: float


@dataclass(frozen=True, slots=True)
class Address:
    line1: str
    district: str
    city: str
    province: str
    postal_code: str
    country: str = "CN"


@dataclass(frozen=True, slots=True)
class OpeningInterval:
    """One opening interval on an ISO weekday (1 = Monday .. 7 = Sunday), store-local time."""

    weekday: int
    opens: time
    closes: time


@dataclass(frozen=True, slots=True)
class Store:
    id: str
    code: str
    name: dict[str, str]
    type: StoreType
    address: Address
    location: GeoPoint
    timezone: str
    weekly_hours: tuple[OpeningInterval, ...]
    services: tuple[StoreService, ...]
    pickup_preparation_minutes: int
    pickup_hold_days: int
    status: StoreStatus
    phone: str = ""
