"""Order domain: orders with priced lines, fulfilment, status and payment. No proto, no BSON."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

DEFAULT_CURRENCY = "CNY"


class FulfillmentType(enum.StrEnum):
    PICKUP_IN_STORE = "pickup_in_store"
    DELIVERY = "delivery"
    IN_STORE_PURCHASE = "in_store_purchase"


class OrderStatus(enum.StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    READY_FOR_PICKUP = "ready_for_pickup"
    PICKED_UP = "picked_up"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    COMPLETED = "completed"


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


@dataclass(frozen=True, slots=True)
class OrderLine:
    """A SKU at the unit price quoted when the order was placed; line_total is recorded, not
    recomputed, because a later price change must not rewrite what the customer paid."""

    sku_id: str
    quantity: int
    unit_price: Money
    line_total: Money

    @classmethod
    def priced(cls, sku_id: str, quantity: int, unit_price: Money) -> OrderLine:
        if quantity < 1:
            raise ValueError(f"quantity must be at least 1, got {quantity}")
        if unit_price.amount < 0:
            raise ValueError("unit price cannot be negative")
        return cls(sku_id, quantity, unit_price, unit_price.times(quantity))


@dataclass(frozen=True, slots=True)
class Totals:
    subtotal: Money
    discount: Money
    total: Money


def order_totals(lines: Sequence[OrderLine], discount: Money | None = None) -> Totals:
    """Subtotal of the lines, and the total after a discount that never exceeds the subtotal."""
    if not lines:
        raise ValueError("an order has at least one line")
    currency = lines[0].line_total.currency
    subtotal = Money.zero(currency)
    for line in lines:
        subtotal += line.line_total
    discount = discount if discount is not None else Money.zero(currency)
    if discount.amount < 0:
        raise ValueError("discount cannot be negative")
    if (subtotal - discount).amount < 0:
        raise ValueError(f"discount {discount.amount} exceeds subtotal {subtotal.amount}")
    return Totals(subtotal, discount, subtotal - discount)


@dataclass(frozen=True, slots=True)
class Order:
    id: str
    member_id: str | None
    # None for delivery shipped from a warehouse.
    store_id: str | None
    fulfillment: FulfillmentType
    status: OrderStatus
    payment_status: PaymentStatus
    lines: tuple[OrderLine, ...]
    subtotal: Money
    discount: Money
    total: Money
    channel: Channel
    create_time: datetime
    update_time: datetime
    # The store associate credited with the sale, if any.
    associate_id: str | None = None
