"""Validation of admin writes: every problem found, each naming its field. No I/O."""

from __future__ import annotations

import re

from catalog_svc.domain import (
    MEMBER_TIERS,
    Brand,
    Category,
    LocalizedText,
    Product,
    barcode_key,
    barcode_problem,
)
from retail_kit.errors import FieldViolation
from retail_kit.validation import id_violation

# Product ids become field names inside posting documents, so no "." or "$" (or ":").
PRODUCT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
MAX_SKUS = 100
MAX_IMAGES = 20
MAX_ATTRIBUTES = 50
MAX_TITLE = 200
MAX_DESCRIPTION = 5000
MAX_PRICE = 10**12  # ten billion yuan in fen: anything above is a typo


def _text(field: str, text: LocalizedText, maximum: int, *, required: bool) -> list[FieldViolation]:
    problems = []
    if required and not text.values.get("zh-Hans", "").strip():
        problems.append(FieldViolation(f"{field}.values[zh-Hans]", "is required"))
    for locale, value in text.values.items():
        if len(value) > maximum:
            problems.append(
                FieldViolation(f"{field}.values[{locale}]", f"at most {maximum} characters")
            )
    return problems


def _amount(field: str, amount: int) -> list[FieldViolation]:
    if amount <= 0:
        return [FieldViolation(field, f"must be positive (minor units), got {amount}")]
    if amount > MAX_PRICE:
        return [FieldViolation(field, f"at most {MAX_PRICE}, got {amount}")]
    return []


def product_violations(product: Product) -> list[FieldViolation]:
    """Field paths are relative to the product ("skus[1].barcode")."""
    problems: list[FieldViolation] = []
    if not PRODUCT_ID.match(product.id):
        problems.append(FieldViolation("id", "1-64 letters, digits, '_' or '-'"))
    if len(product.spu_code) > 64:
        problems.append(FieldViolation("spu_code", "at most 64 characters"))
    problems += _text("title", product.title, MAX_TITLE, required=True)
    problems += _text("description", product.description, MAX_DESCRIPTION, required=False)
    for field, value in (("category_id", product.category_id), ("brand_id", product.brand_id)):
        if violation := id_violation(field, value):
            problems.append(violation)
    if not product.skus:
        problems.append(FieldViolation("skus", "at least one SKU is required"))
    if len(product.skus) > MAX_SKUS:
        problems.append(FieldViolation("skus", f"at most {MAX_SKUS} SKUs"))
    sku_ids: dict[str, int] = {}
    barcodes: dict[str, int] = {}
    option_sets: dict[tuple[tuple[str, str], ...], int] = {}
    for i, sku in enumerate(product.skus):
        at = f"skus[{i}]"
        if violation := id_violation(f"{at}.id", sku.id):
            problems.append(violation)
        elif sku.id in sku_ids:
            problems.append(FieldViolation(f"{at}.id", f"duplicates skus[{sku_ids[sku.id]}].id"))
        sku_ids.setdefault(sku.id, i)
        if sku.barcode:
            if problem := barcode_problem(sku.barcode):
                problems.append(FieldViolation(f"{at}.barcode", problem))
            elif (key := barcode_key(sku.barcode)) in barcodes:
                problems.append(
                    FieldViolation(f"{at}.barcode", f"duplicates skus[{barcodes[key]}].barcode")
                )
            else:
                barcodes[key] = i
        problems += _amount(f"{at}.price.amount", sku.price.amount)
        if not _CURRENCY.match(sku.price.currency):
            problems.append(FieldViolation(f"{at}.price.currency", "an ISO 4217 code like CNY"))
        names: set[str] = set()
        for j, option in enumerate(sku.options):
            if not option.name.strip() or not option.value.strip():
                problems.append(FieldViolation(f"{at}.options[{j}]", "name and value required"))
            elif option.name in names:
                problems.append(FieldViolation(f"{at}.options[{j}].name", "repeated option"))
            names.add(option.name)
        combo = tuple(sorted((o.name, o.value) for o in sku.options))
        if combo in option_sets:
            problems.append(
                FieldViolation(f"{at}.options", f"same options as skus[{option_sets[combo]}]")
            )
        option_sets.setdefault(combo, i)
        for j, rule in enumerate(sku.price_rules):
            rat = f"{at}.price_rules[{j}]"
            problems += _amount(f"{rat}.price.amount", rule.price.amount)
            if rule.price.currency != sku.price.currency:
                problems.append(
                    FieldViolation(
                        f"{rat}.price.currency", f"must be the base currency {sku.price.currency}"
                    )
                )
            if rule.channel is None and rule.tier is None:
                problems.append(FieldViolation(rat, "needs a channel, a tier or both"))
            if rule.tier is not None and rule.tier not in MEMBER_TIERS:
                problems.append(FieldViolation(f"{rat}.tier", f"one of {', '.join(MEMBER_TIERS)}"))
            if rule.start is not None and rule.end is not None and rule.start >= rule.end:
                problems.append(FieldViolation(f"{rat}.end_time", "must be after start_time"))
    if len(product.image_urls) > MAX_IMAGES:
        problems.append(FieldViolation("image_urls", f"at most {MAX_IMAGES} images"))
    for i, url in enumerate(product.image_urls):
        if not url.startswith(("https://", "http://")) or len(url) > 2048:
            problems.append(FieldViolation(f"image_urls[{i}]", "an http(s) URL"))
    if len(product.attributes) > MAX_ATTRIBUTES:
        problems.append(FieldViolation("attributes", f"at most {MAX_ATTRIBUTES} attributes"))
    for key, value in product.attributes.items():
        if not key.strip() or len(key) > 64 or len(value) > 500:
            problems.append(
                FieldViolation(f"attributes[{key[:40]}]", "key 1-64 chars, value up to 500")
            )
    return problems


def category_violations(category: Category) -> list[FieldViolation]:
    problems: list[FieldViolation] = []
    if violation := id_violation("category.id", category.id):
        problems.append(violation)
    problems += _text("category.name", category.name, MAX_TITLE, required=True)
    if category.parent_id is not None:
        if violation := id_violation("category.parent_id", category.parent_id):
            problems.append(violation)
        elif category.parent_id == category.id:
            problems.append(
                FieldViolation("category.parent_id", "a category cannot be its own parent")
            )
    return problems


def brand_violations(brand: Brand) -> list[FieldViolation]:
    problems: list[FieldViolation] = []
    if violation := id_violation("brand.id", brand.id):
        problems.append(violation)
    problems += _text("brand.name", brand.name, MAX_TITLE, required=True)
    return problems
