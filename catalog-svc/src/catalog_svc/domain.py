"""Catalog domain: products (SPU) with SKUs, categories and brands. No proto, no BSON."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

DEFAULT_LOCALE = "zh-Hans"
SUPPORTED_LOCALES = ("zh-Hans", "en")


class Channel(enum.StrEnum):
    """Sales channels (retail.common.v1.Channel)."""

    MINI_PROGRAM = "mini_program"
    APP = "app"
    POS = "pos"
    KIOSK = "kiosk"


MEMBER_TIERS = ("bronze", "silver", "gold", "platinum")
"""Member tier codes, lowest first (member-svc computes a member's tier)."""


class ProductStatus(enum.StrEnum):
    DRAFT = "draft"
    ACTIVE = "active"
    ARCHIVED = "archived"


@dataclass(frozen=True, slots=True)
class Money:
    """Integer minor units (fen for CNY)."""

    amount: int
    currency: str = "CNY"


@dataclass(frozen=True, slots=True)
class LocalizedText:
    """Text per BCP 47 locale; zh-Hans first, en second."""

    values: dict[str, str]

    def resolve(self, locale: str | None) -> str:
        if locale and locale in self.values:
            return self.values[locale]
        for fallback in SUPPORTED_LOCALES:
            if fallback in self.values:
                return self.values[fallback]
        return next(iter(self.values.values()), "")


@dataclass(frozen=True, slots=True)
class Category:
    id: str
    name: LocalizedText
    parent_id: str | None = None
    sort_order: int = 0


@dataclass(frozen=True, slots=True)
class Brand:
    id: str
    name: LocalizedText


@dataclass(frozen=True, slots=True)
class SkuOption:
    name: str
    value: str


@dataclass(frozen=True, slots=True)
class PriceRule:
    """A price for one channel, one tier or both, within [start, end) when those are set."""

    price: Money
    channel: Channel | None = None
    tier: str | None = None
    start: datetime | None = None
    end: datetime | None = None

    @property
    def label(self) -> str:
        if self.channel is not None and self.tier is not None:
            return f"channel+tier:{self.channel.value}+{self.tier}"
        if self.channel is not None:
            return f"channel:{self.channel.value}"
        return f"tier:{self.tier}"

    @property
    def specificity(self) -> int:
        return (self.channel is not None) + (self.tier is not None)

    def applies(self, channel: Channel | None, tier: str | None, now: datetime) -> bool:
        if self.channel is not None and self.channel is not channel:
            return False
        if self.tier is not None and self.tier != tier:
            return False
        if self.start is not None and now < self.start:
            return False
        return self.end is None or now < self.end


@dataclass(frozen=True, slots=True)
class Sku:
    id: str
    barcode: str
    price: Money
    options: tuple[SkuOption, ...] = ()
    price_rules: tuple[PriceRule, ...] = ()


@dataclass(frozen=True, slots=True)
class Product:
    id: str
    spu_code: str
    title: LocalizedText
    description: LocalizedText
    category_id: str
    brand_id: str
    status: ProductStatus
    skus: tuple[Sku, ...]
    image_urls: tuple[str, ...] = ()
    create_time: datetime | None = None
    update_time: datetime | None = None
    attributes: dict[str, str] = field(default_factory=dict)
    revision: int = 0

    @property
    def etag(self) -> str:
        return f"r{self.revision}" if self.revision else ""

    @property
    def min_price(self) -> int:
        """The cheapest SKU's base price: what the search price filter compares."""
        return min((sku.price.amount for sku in self.skus), default=0)


@dataclass(frozen=True, slots=True)
class Quote:
    sku_id: str
    unit_price: Money
    base_price: Money
    rule: str


def quote_price(sku: Sku, channel: Channel | None, tier: str | None, now: datetime) -> Quote:
    """The one price rule: the lowest price among the rules that apply at `now`.

    The base price always applies. A channel rule applies in its channel, a tier rule to
    members of that tier, a channel+tier rule to both at once; a rule with a window applies
    from its start (inclusive) to its end (exclusive). Ties go to the more specific rule
    (channel+tier, then a single-dimension rule, then base); between equally specific rules
    the channel rule wins, then the earlier rule in the SKU's list.
    """
    best_amount, best_rank, best_label = sku.price.amount, (0, 0, 0), "base"
    for index, rule in enumerate(sku.price_rules):
        if not rule.applies(channel, tier, now):
            continue
        rank = (rule.specificity, rule.channel is not None, -index)
        if rule.price.amount < best_amount or (
            rule.price.amount == best_amount and rank > best_rank
        ):
            best_amount, best_rank, best_label = rule.price.amount, rank, rule.label
    return Quote(sku.id, Money(best_amount, sku.price.currency), sku.price, best_label)


def gtin_check_digit(body: str) -> int:
    """GS1 check digit of the digits before it: weights 3, 1, 3 ... from the right."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - total % 10) % 10


def barcode_problem(barcode: str) -> str | None:
    """Why a barcode is not a valid EAN-13, UPC-A or EAN-8, or None when it is."""
    if not barcode.isascii() or not barcode.isdigit():
        return "must be digits only (EAN-13, UPC-A or EAN-8)"
    if len(barcode) not in (8, 12, 13):
        return f"must have 13 (EAN-13), 12 (UPC-A) or 8 (EAN-8) digits, got {len(barcode)}"
    if gtin_check_digit(barcode[:-1]) != int(barcode[-1]):
        return f"check digit should be {gtin_check_digit(barcode[:-1])}, got {barcode[-1]}"
    return None


def barcode_key(barcode: str) -> str:
    """One key per GTIN: UPC-A 012345678905 and EAN-13 0012345678905 are the same item."""
    return barcode.zfill(13)
