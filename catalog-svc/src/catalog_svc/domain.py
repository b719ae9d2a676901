"""Catalog domain: products (SPU) with SKUs, categories and brands. No proto, no BSON."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

DEFAULT_LOCALE = "zh-Hans"
SUPPORTED_LOCALES = ("zh-Hans", "en")


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
class Sku:
    id: str
    barcode: str
    price: Money
    options: tuple[SkuOption, ...] = ()


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
