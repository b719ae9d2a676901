"""The price rule: lowest applicable price, ties to the more specific rule, windows [start, end)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest

from catalog_svc.demo_data import ANNIVERSARY, DOUBLE_11, demo_catalog
from catalog_svc.domain import (
    Channel,
    Money,
    PriceRule,
    Sku,
    barcode_key,
    barcode_problem,
    quote_price,
)

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)

SKU = Sku(
    "s1",
    "",
    Money(1000),
    price_rules=(
        PriceRule(Money(950), channel=Channel.MINI_PROGRAM),
        PriceRule(Money(900), tier="gold"),
        PriceRule(Money(900), channel=Channel.MINI_PROGRAM, tier="gold"),
        PriceRule(
            Money(700),
            channel=Channel.POS,
            start=datetime(2026, 6, 1, tzinfo=UTC),
            end=datetime(2026, 6, 2, tzinfo=UTC),
        ),
        PriceRule(Money(600), channel=Channel.KIOSK, end=datetime(2026, 1, 1, tzinfo=UTC)),
        PriceRule(Money(1200), channel=Channel.APP),
    ),
)


@pytest.mark.parametrize(
    ("channel", "tier", "now", "amount", "rule"),
    [
        (None, None, NOW, 1000, "base"),
        (Channel.MINI_PROGRAM, None, NOW, 950, "channel:mini_program"),
        (None, "gold", NOW, 900, "tier:gold"),
        (None, "silver", NOW, 1000, "base"),
        # 900 twice: the channel+tier rule is more specific than the tier rule.
        (Channel.MINI_PROGRAM, "gold", NOW, 900, "channel+tier:mini_program+gold"),
        (Channel.POS, None, NOW, 700, "channel:pos"),
        (Channel.POS, "gold", NOW, 700, "channel:pos"),
        # The window is [start, end): the end itself is outside, the start inside.
        (Channel.POS, None, datetime(2026, 6, 2, tzinfo=UTC), 1000, "base"),
        (Channel.POS, None, datetime(2026, 6, 1, tzinfo=UTC), 700, "channel:pos"),
        (Channel.POS, None, datetime(2026, 5, 31, 23, 59, tzinfo=UTC), 1000, "base"),
        (Channel.KIOSK, None, NOW, 1000, "base"),
        (Channel.KIOSK, None, datetime(2025, 12, 31, tzinfo=UTC), 600, "channel:kiosk"),
        # A rule above the base price never wins.
        (Channel.APP, None, NOW, 1000, "base"),
    ],
)
def test_quote_picks_the_lowest_applicable_rule(
    channel: Channel | None, tier: str | None, now: datetime, amount: int, rule: str
) -> None:
    quote = quote_price(SKU, channel, tier, now)
    assert (quote.unit_price.amount, quote.rule) == (amount, rule)
    assert quote.base_price == Money(1000)


def test_equal_price_goes_to_the_rule_not_base() -> None:
    sku = Sku("s", "", Money(500), price_rules=(PriceRule(Money(500), tier="gold"),))
    assert quote_price(sku, None, "gold", NOW).rule == "tier:gold"


@pytest.mark.parametrize(
    ("barcode", "ok"),
    [
        ("6901234567892", True),  # EAN-13
        ("6901234567891", False),
        ("036000291452", True),  # UPC-A
        ("036000291453", False),
        ("96385074", True),  # EAN-8
        ("96385075", False),
        ("690123456789", False),  # 12 digits but a bad UPC-A check digit
        ("69012345678a", False),
        ("123", False),
    ],
)
def test_barcode_check_digits(barcode: str, ok: bool) -> None:
    assert (barcode_problem(barcode) is None) is ok


def test_upc_a_and_its_ean13_form_are_one_key() -> None:
    assert barcode_key("036000291452") == barcode_key("0036000291452")


def test_demo_prices_cover_channels_tiers_and_windows() -> None:
    skus = [s for p in demo_catalog().products for s in p.skus]
    with_rules = [s for s in skus if s.price_rules]
    assert len(with_rules) >= len(skus) * 0.4
    labels = Counter(r.label for s in with_rules for r in s.price_rules)
    for label in ("channel:mini_program", "channel:app", "tier:gold", "tier:platinum"):
        assert labels[label] > 20, label
    assert labels["channel+tier:mini_program+platinum"] > 0
    windows = {(r.start, r.end) for s in with_rules for r in s.price_rules if r.start}
    assert windows == {ANNIVERSARY, DOUBLE_11}
    for sku in with_rules:
        for rule in sku.price_rules:
            assert 0 < rule.price.amount < sku.price.amount
