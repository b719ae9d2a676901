"""Order domain: the order document as Python values, money rules, the status table.

No proto, no BSON, no I/O. Amounts are integers in minor units (fen for CNY) of the order's
one currency (`Order.currency`); `Money` pairs an amount with its currency where amounts
cross a boundary (proto, other services).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

DEFAULT_CURRENCY = "CNY"
MAX_LINE_QUANTITY = 99
MAX_LINES = 50


class FulfillmentType(enum.StrEnum):
    PICKUP_IN_STORE = "pickup_in_store"
    DELIVERY = "delivery"
    IN_STORE_PURCHASE = "in_store_purchase"


class OrderStatus(enum.StrEnum):
    # The placing saga runs; nothing is promised to the customer yet.
    PENDING = "pending"
    AWAITING_PAYMENT = "awaiting_payment"
    CONFIRMED = "confirmed"
    READY_FOR_PICKUP = "ready_for_pickup"
    PICKED_UP = "picked_up"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    # Placing failed; every step done was compensated (or is being, by effects).
    FAILED = "failed"


# Which status may follow which. A status may "follow itself" where an event happens without
# a status change (a return of a completed order, one of several fulfilments shipped).
TRANSITIONS: Mapping[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.PENDING: frozenset(
        {
            OrderStatus.AWAITING_PAYMENT,
            OrderStatus.CONFIRMED,
            OrderStatus.COMPLETED,
            OrderStatus.FAILED,
        }
    ),
    OrderStatus.AWAITING_PAYMENT: frozenset({OrderStatus.CONFIRMED, OrderStatus.CANCELLED}),
    OrderStatus.CONFIRMED: frozenset(
        {
            OrderStatus.CONFIRMED,
            OrderStatus.READY_FOR_PICKUP,
            OrderStatus.SHIPPED,
            OrderStatus.DELIVERED,
            OrderStatus.CANCELLED,
            OrderStatus.EXPIRED,
        }
    ),
    OrderStatus.READY_FOR_PICKUP: frozenset(
        {
            OrderStatus.READY_FOR_PICKUP,
            OrderStatus.PICKED_UP,
            OrderStatus.CANCELLED,
            OrderStatus.EXPIRED,
        }
    ),
    OrderStatus.SHIPPED: frozenset({OrderStatus.SHIPPED, OrderStatus.DELIVERED}),
    OrderStatus.PICKED_UP: frozenset({OrderStatus.PICKED_UP}),
    OrderStatus.DELIVERED: frozenset({OrderStatus.DELIVERED}),
    OrderStatus.COMPLETED: frozenset({OrderStatus.COMPLETED}),
    OrderStatus.CANCELLED: frozenset(),
    OrderStatus.EXPIRED: frozenset(),
    OrderStatus.FAILED: frozenset(),
}

# Orders a store works on (ListStoreOrders without statuses).
OPEN_STATUSES = (
    OrderStatus.AWAITING_PAYMENT,
    OrderStatus.CONFIRMED,
    OrderStatus.READY_FOR_PICKUP,
)
# Bought and handed over: returns are possible.
FULFILLED_STATUSES = (OrderStatus.PICKED_UP, OrderStatus.DELIVERED, OrderStatus.COMPLETED)


def can_transition(source: OrderStatus, target: OrderStatus) -> bool:
    return target in TRANSITIONS[source]


class PaymentStatus(enum.StrEnum):
    PENDING = "pending"
    PAID = "paid"
    PAY_AT_PICKUP = "pay_at_pickup"
    REFUNDED = "refunded"


class Channel(enum.StrEnum):
    MINI_PROGRAM = "mini_program"
    APP = "app"
    POS = "pos"
    KIOSK = "kiosk"


class FulfilmentStatus(enum.StrEnum):
    # Planned; its reservation has not been confirmed by store-svc yet.
    PENDING = "pending"
    RESERVED = "reserved"
    SHIPPED = "shipped"
    # Handed to the customer: delivered, picked up, or sold at the till.
    DELIVERED = "delivered"
    RELEASED = "released"


class SagaState(enum.StrEnum):
    RUNNING = "running"
    DONE = "done"
    COMPENSATING = "compensating"
    COMPENSATED = "compensated"


class SagaStep(enum.StrEnum):
    """PlaceOrder's steps after the quote, in order (the quote runs before the insert):
    stock first, so an order that cannot get stock (a sold-out flash sale) fails before it
    has locked or redeemed anything."""

    STOCK = "stock"
    COUPON = "coupon"
    POINTS = "points"
    CONFIRM = "confirm"
    FINISHED = "finished"


class EffectState(enum.StrEnum):
    PENDING = "pending"
    DONE = "done"


class EffectKind(enum.StrEnum):
    """Effects this module knows of; an effect's kind is a plain string, so areas may add
    kinds without changing this table."""

    # Compensations (saga failure, cancel, expiry).
    RELEASE_STOCK = "release_stock"  # ref = fulfilment id
    REVERT_POINTS = "revert_points"
    RELEASE_COUPON = "release_coupon"  # ref = coupon id
    # Completion (hand-over, delivery, till sale).
    COMMIT_STOCK = "commit_stock"  # ref = fulfilment id
    REDEEM_COUPON = "redeem_coupon"  # ref = coupon id
    RECORD_COMPLETED = "record_completed"
    # Money and returns.
    REFUND = "refund"  # ref = refund id
    RESTOCK = "restock"  # ref = return id
    RECORD_RETURNED = "record_returned"  # ref = return id


# Compensations of the saga, in the order they run (the reverse of its steps: stock,
# coupon, points).
COMPENSATION_KINDS = (
    EffectKind.REVERT_POINTS.value,
    EffectKind.RELEASE_COUPON.value,
    EffectKind.RELEASE_STOCK.value,
)


class ActorKind(enum.StrEnum):
    UNSPECIFIED = "unspecified"
    CUSTOMER = "customer"
    ASSOCIATE = "associate"
    STORE_MANAGER = "store_manager"
    KIOSK = "kiosk"
    ADMIN = "admin"
    PARTNER = "partner"
    SYSTEM = "system"


@dataclass(frozen=True, slots=True)
class Money:
    """Integer minor units (fen for CNY); amounts in different currencies never mix."""

    amount: int
    currency: str = DEFAULT_CURRENCY

    def __add__(self, other: Money) -> Money:
        return Money(self.amount + self._same_currency(other).amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        return Money(self.amount - self._same_currency(other).amount, self.currency)

    def times(self, quantity: int) -> Money:
        return Money(self.amount * quantity, self.currency)

    def _same_currency(self, other: Money) -> Money:
        if other.currency != self.currency:
            raise ValueError(f"cannot combine {self.currency} with {other.currency}")
        return other

    @classmethod
    def zero(cls, currency: str = DEFAULT_CURRENCY) -> Money:
        return cls(0, currency)


# -- money rules ---------------------------------------------------------------------------


def allocate(amount: int, weights: Sequence[int]) -> list[int]:
    """Splits `amount` over `weights` in proportion, by largest remainder: the shares sum to
    `amount` exactly, each is floor or ceiling of its exact share, ties go to the earlier
    weight, and a zero weight gets nothing. Needs amount >= 0, weights >= 0 and, when
    amount > 0, a positive total weight."""
    if amount < 0 or any(w < 0 for w in weights):
        raise ValueError("amount and weights must not be negative")
    total = sum(weights)
    if total == 0:
        if amount:
            raise ValueError(f"cannot allocate {amount} over zero weights")
        return [0] * len(weights)
    shares = [amount * w // total for w in weights]
    remainders = [amount * w % total for w in weights]
    left = amount - sum(shares)
    # Largest remainder first; the earlier index wins a tie (stable sort).
    for index in sorted(range(len(weights)), key=lambda i: -remainders[i])[:left]:
        shares[index] += 1
    return shares


def refund_for_units(
    paid_amount: int, quantity: int, returned_before: int, refunded_before: int, units: int
) -> int:
    """What returning `units` more of a line refunds: the cumulative share
    floor(paid x returned_after / quantity) minus what was refunded before, and for the last
    units of the line whatever is left, so the refunds of a fully returned line sum to
    exactly its paid amount and no two units' refunds differ by more than one fen."""
    if units < 1 or returned_before < 0 or returned_before + units > quantity:
        raise ValueError(
            f"cannot return {units} of {quantity} with {returned_before} already returned"
        )
    after = returned_before + units
    if after == quantity:
        return paid_amount - refunded_before
    return paid_amount * after // quantity - refunded_before


# -- the order document ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Actor:
    kind: ActorKind = ActorKind.UNSPECIFIED
    id: str = ""
    store_id: str = ""


@dataclass(frozen=True, slots=True)
class DeliveryAddress:
    recipient: str = ""
    phone: str = ""
    line1: str = ""
    district: str = ""
    city: str = ""
    province: str = ""
    postal_code: str = ""
    latitude: float | None = None
    longitude: float | None = None


@dataclass(frozen=True, slots=True)
class OrderLine:
    """A SKU at the price quoted when the order was placed. Everything is recorded, not
    recomputed: a later price change must not rewrite what the customer paid."""

    sku_id: str
    quantity: int
    unit_price: int
    line_total: int
    product_id: str = ""
    category_ids: tuple[str, ...] = ()
    price_rule: str = ""
    coupon_discount: int = 0
    points_discount: int = 0
    # line_total - coupon_discount - points_discount: what a full return refunds.
    paid_amount: int = 0
    returned_quantity: int = 0
    refunded_amount: int = 0
    fulfilment_id: str = ""

    @classmethod
    def priced(
        cls,
        sku_id: str,
        quantity: int,
        unit_price: int,
        *,
        product_id: str = "",
        category_ids: Sequence[str] = (),
        price_rule: str = "",
    ) -> OrderLine:
        if not 1 <= quantity <= MAX_LINE_QUANTITY:
            raise ValueError(f"quantity must be 1..{MAX_LINE_QUANTITY}, got {quantity}")
        if unit_price < 0:
            raise ValueError("unit price cannot be negative")
        total = unit_price * quantity
        return cls(
            sku_id=sku_id,
            quantity=quantity,
            unit_price=unit_price,
            line_total=total,
            product_id=product_id,
            category_ids=tuple(category_ids),
            price_rule=price_rule,
            paid_amount=total,
        )


def apply_discounts(
    lines: Sequence[OrderLine], coupon_by_line: Sequence[int], points_value: int
) -> tuple[OrderLine, ...]:
    """The lines with the coupon discount per line (as member-svc allocated it, eligible lines
    only) and the points value allocated by largest remainder in proportion to what each line
    costs after the coupon; paid_amount = line_total - coupon - points per line."""
    if len(coupon_by_line) != len(lines):
        raise ValueError("one coupon share per line")
    for line, share in zip(lines, coupon_by_line, strict=True):
        if not 0 <= share <= line.line_total:
            raise ValueError(f"coupon share {share} outside 0..{line.line_total}")
    after_coupon = [
        line.line_total - share for line, share in zip(lines, coupon_by_line, strict=True)
    ]
    if points_value > sum(after_coupon):
        raise ValueError(f"points value {points_value} exceeds what is left to pay")
    points = allocate(points_value, after_coupon)
    return tuple(
        replace(
            line,
            coupon_discount=coupon,
            points_discount=point,
            paid_amount=line.line_total - coupon - point,
        )
        for line, coupon, point in zip(lines, coupon_by_line, points, strict=True)
    )


@dataclass(frozen=True, slots=True)
class Totals:
    subtotal: int
    coupon_discount: int
    points_discount: int
    total: int

    @property
    def discount(self) -> int:
        return self.coupon_discount + self.points_discount


def order_totals(lines: Sequence[OrderLine]) -> Totals:
    """Sums of the lines; total = subtotal - coupon - points = sum of paid amounts."""
    if not lines:
        raise ValueError("an order has at least one line")
    subtotal = sum(line.line_total for line in lines)
    coupon = sum(line.coupon_discount for line in lines)
    points = sum(line.points_discount for line in lines)
    total = sum(line.paid_amount for line in lines)
    if subtotal - coupon - points != total:  # pragma: no cover - apply_discounts keeps it
        raise ValueError("lines do not reconcile")
    return Totals(subtotal, coupon, points, total)


@dataclass(frozen=True, slots=True)
class Fulfilment:
    """One store's part of an order, with its own stock reservation in store-svc."""

    id: str
    store_id: str
    reservation_id: str
    status: FulfilmentStatus = FulfilmentStatus.PENDING
    carrier: str = ""
    tracking_number: str = ""
    # The hold asked of store-svc: order-svc always ends the order before it.
    hold_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class OrderCoupon:
    id: str
    code: str = ""
    discount: int = 0
    state: str = "locked"  # locked | redeemed | released


@dataclass(frozen=True, slots=True)
class OrderPoints:
    requested: int
    redeemed: int = 0
    value: int = 0
    state: str = "redeemed"  # redeemed | reverted


@dataclass(frozen=True, slots=True)
class Payment:
    status: PaymentStatus = PaymentStatus.PENDING
    provider: str = ""
    transaction_id: str = ""
    amount: int = 0
    paid_time: datetime | None = None
    deadline_time: datetime | None = None


@dataclass(frozen=True, slots=True)
class Pickup:
    code: str = ""
    qr_payload: str = ""
    ready_by_time: datetime | None = None
    ready_time: datetime | None = None
    hold_until_time: datetime | None = None
    wrong_code_attempts: int = 0
    code_locked: bool = False
    picked_up_time: datetime | None = None
    handed_over_by: Actor | None = None


@dataclass(frozen=True, slots=True)
class SagaError:
    """The error a failed placement answers, replayed as is for the same idempotency key."""

    code: str  # grpc.StatusCode name, e.g. "FAILED_PRECONDITION"
    reason: str  # ErrorInfo.reason, e.g. "OUT_OF_STOCK"
    message: str
    metadata: Mapping[str, str] = field(default_factory=dict)
    violations: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Saga:
    step: SagaStep
    state: SagaState
    # Another executor may take the saga over after this time (the owner stopped).
    lease_until: datetime | None = None
    owner: str = ""
    attempts: int = 0
    error: SagaError | None = None


@dataclass(frozen=True, slots=True)
class OrderEvent:
    seq: int
    kind: str
    status: OrderStatus
    occur_time: datetime


@dataclass(frozen=True, slots=True)
class Effect:
    """Something to do in another service because of a transition (outbox)."""

    id: str
    kind: str
    state: EffectState = EffectState.PENDING
    attempts: int = 0
    next_time: datetime | None = None
    error: str = ""
    ref: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)


def new_effect(
    kind: str, now: datetime, *, ref: str = "", data: Mapping[str, Any] | None = None
) -> Effect:
    """A pending effect due now; its id ("<kind>" or "<kind>:<ref>") is unique in the order."""
    return Effect(
        id=f"{kind}:{ref}" if ref else kind,
        kind=kind,
        next_time=now,
        ref=ref,
        data=dict(data or {}),
    )


@dataclass(frozen=True, slots=True)
class RefundLine:
    sku_id: str
    quantity: int
    amount: int


@dataclass(frozen=True, slots=True)
class Refund:
    id: str
    amount: int
    reason: str  # cancelled, expired, returned, payment_timeout
    create_time: datetime
    return_id: str = ""
    lines: tuple[RefundLine, ...] = ()


@dataclass(frozen=True, slots=True)
class ReturnLine:
    sku_id: str
    quantity: int
    refund_amount: int


@dataclass(frozen=True, slots=True)
class OrderReturn:
    id: str
    store_id: str
    lines: tuple[ReturnLine, ...]
    refund_amount: int
    create_time: datetime
    points_clawed_back: int = 0
    reason: str = ""
    actor: Actor | None = None


@dataclass(frozen=True, slots=True)
class Order:
    id: str
    member_id: str | None
    channel: Channel
    fulfillment: FulfillmentType
    # PICKUP / IN_STORE: the store; DELIVERY: the first (nearest) shipping store.
    store_id: str | None
    lines: tuple[OrderLine, ...]
    status: OrderStatus
    create_time: datetime
    update_time: datetime
    currency: str = DEFAULT_CURRENCY
    idempotency_key: str = ""
    request_fingerprint: str = ""
    delivery_address: DeliveryAddress | None = None
    associate_id: str | None = None
    actor: Actor | None = None
    fulfilments: tuple[Fulfilment, ...] = ()
    coupon: OrderCoupon | None = None
    points: OrderPoints | None = None
    subtotal: int = 0
    coupon_discount: int = 0
    points_discount: int = 0
    total: int = 0
    end_reason: str = ""
    payment: Payment = field(default_factory=Payment)
    pickup: Pickup | None = None
    saga: Saga | None = None
    events: tuple[OrderEvent, ...] = ()
    effects: tuple[Effect, ...] = ()
    effects_due: datetime | None = None
    refunds: tuple[Refund, ...] = ()
    returns: tuple[OrderReturn, ...] = ()
    version: int = 0

    @property
    def discount(self) -> int:
        return self.coupon_discount + self.points_discount

    @property
    def store_ids(self) -> tuple[str, ...]:
        """Every store the order involves: its store and each fulfilment's."""
        ids = [self.store_id] if self.store_id else []
        ids += [f.store_id for f in self.fulfilments]
        return tuple(dict.fromkeys(ids))

    @property
    def last_seq(self) -> int:
        return self.events[-1].seq if self.events else 0

    def money(self, amount: int) -> Money:
        return Money(amount, self.currency)

    def fulfilment(self, fulfilment_id: str) -> Fulfilment | None:
        return next((f for f in self.fulfilments if f.id == fulfilment_id), None)

    def lines_of(self, fulfilment_id: str) -> tuple[OrderLine, ...]:
        return tuple(line for line in self.lines if line.fulfilment_id == fulfilment_id)

    def effect(self, effect_id: str) -> Effect | None:
        return next((e for e in self.effects if e.id == effect_id), None)

    def pending_effects(self) -> tuple[Effect, ...]:
        return tuple(e for e in self.effects if e.state is EffectState.PENDING)
