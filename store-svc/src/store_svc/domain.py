"""Store domain: stores, inventory levels, reservations, staff. No proto, no BSON."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, datetime, time


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
class SpecialHours:
    """Hours of one store-local date replacing the weekly hours; no intervals = closed."""

    date: date
    intervals: tuple[tuple[time, time], ...] = ()


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
    special_hours: tuple[SpecialHours, ...] = ()


class AdjustmentReason(enum.StrEnum):
    RECEIVE = "receive"
    COUNT_CORRECTION = "count_correction"
    DAMAGE = "damage"
    TILL_SALE = "till_sale"
    # Goods a customer returned, put back on sale (order-svc ReturnItems): adds stock.
    RETURN = "return"


@dataclass(frozen=True, slots=True)
class InventoryLevel:
    store_id: str
    sku_id: str
    on_hand: int = 0
    reserved: int = 0
    safety_stock: int = 0

    @property
    def available(self) -> int:
        """What can still be promised: never below zero."""
        return max(0, self.on_hand - self.reserved - self.safety_stock)


@dataclass(frozen=True, slots=True)
class Adjustment:
    key: str
    store_id: str
    sku_id: str
    delta: int
    reason: AdjustmentReason
    actor_id: str
    note: str
    on_hand_after: int
    sequence: int
    create_time: datetime


class ReservationStatus(enum.StrEnum):
    PENDING = "pending"
    RESERVED = "reserved"
    COMMITTED = "committed"
    RELEASED = "released"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class ReservationLine:
    sku_id: str
    quantity: int


@dataclass(frozen=True, slots=True)
class ReservationFailure:
    sku_id: str
    requested: int
    available: int


@dataclass(frozen=True, slots=True)
class Reservation:
    order_id: str
    store_id: str
    lines: tuple[ReservationLine, ...]
    status: ReservationStatus
    hold_until: datetime
    create_time: datetime
    update_time: datetime
    failure: ReservationFailure | None = None
    expired: bool = False


class AssociateRole(enum.StrEnum):
    ASSOCIATE = "associate"
    STORE_MANAGER = "store_manager"


@dataclass(frozen=True, slots=True)
class Associate:
    id: str
    store_id: str
    display_name: str
    role: AssociateRole


@dataclass(frozen=True, slots=True)
class KioskDevice:
    id: str
    store_id: str
    label: str = ""
