"""The demo catalog is deterministic, complete and internally consistent."""

from __future__ import annotations

from collections import Counter

import pytest

from catalog_svc.demo_data import DemoCatalog, demo_catalog
from catalog_svc.domain import ProductStatus


@pytest.fixture(scope="module")
def catalog() -> DemoCatalog:
    return demo_catalog()


def _ean13_is_valid(code: str) -> bool:
    if len(code) != 13 or not code.isdigit():
        return False
    digits = [int(c) for c in code]
    weighted = sum(d * (1 if i % 2 == 0 else 3) for i, d in enumerate(digits[:12]))
    return (10 - weighted % 10) % 10 == digits[12]


def test_two_calls_return_equal_data(catalog: DemoCatalog) -> None:
    assert demo_catalog() == catalog


def test_counts(catalog: DemoCatalog) -> None:
    assert len(catalog.products) == 300
    assert 20 <= len(catalog.brands) <= 30
    top_level = [c for c in catalog.categories if c.parent_id is None]
    assert len(top_level) == 6
    for top in top_level:
        children = [c for c in catalog.categories if c.parent_id == top.id]
        assert 2 <= len(children) <= 4, top.id


def test_ids_are_unique_and_well_formed(catalog: DemoCatalog) -> None:
    product_ids = [p.id for p in catalog.products]
    assert product_ids == [f"p_{n:04d}" for n in range(1, 301)]
    assert [p.spu_code for p in catalog.products] == [f"SPU{n:04d}" for n in range(1, 301)]
    sku_ids = [s.id for p in catalog.products for s in p.skus]
    assert len(sku_ids) == len(set(sku_ids))
    for product in catalog.products:
        assert [s.id for s in product.skus] == [
            f"{product.id}_s{n}" for n in range(1, len(product.skus) + 1)
        ]
    assert len({c.id for c in catalog.categories}) == len(catalog.categories)
    assert len({b.id for b in catalog.brands}) == len(catalog.brands)


def test_barcodes_are_unique_chinese_ean13(catalog: DemoCatalog) -> None:
    barcodes = [s.barcode for p in catalog.products for s in p.skus]
    assert len(barcodes) == len(set(barcodes))
    for barcode in barcodes:
        assert _ean13_is_valid(barcode), barcode
        assert 690 <= int(barcode[:3]) <= 699, barcode


def test_products_sit_in_existing_leaf_categories(catalog: DemoCatalog) -> None:
    category_ids = {c.id for c in catalog.categories}
    parent_ids = {c.parent_id for c in catalog.categories if c.parent_id is not None}
    assert parent_ids <= category_ids
    brand_ids = {b.id for b in catalog.brands}
    for product in catalog.products:
        assert product.category_id in category_ids, product.id
        assert product.category_id not in parent_ids, product.id
        assert product.brand_id in brand_ids, product.id


def test_skus_and_prices(catalog: DemoCatalog) -> None:
    for product in catalog.products:
        assert 1 <= len(product.skus) <= 4, product.id
        for sku in product.skus:
            assert isinstance(sku.price.amount, int)
            assert sku.price.amount > 0
            assert sku.price.amount % 10 == 0
            assert sku.price.currency == "CNY"
            assert sku.options
        options = [tuple((o.name, o.value) for o in sku.options) for sku in product.skus]
        assert len(options) == len(set(options)), product.id


def test_localized_texts_have_both_locales(catalog: DemoCatalog) -> None:
    texts = [c.name for c in catalog.categories] + [b.name for b in catalog.brands]
    texts += [p.title for p in catalog.products] + [p.description for p in catalog.products]
    for text in texts:
        assert set(text.values) == {"zh-Hans", "en"}
        assert all(value.strip() for value in text.values.values())
    titles = [p.title.values["zh-Hans"] for p in catalog.products]
    assert len(titles) == len(set(titles))


@pytest.mark.parametrize("word", ["咖啡", "拿铁", "绿茶", "乌龙", "薯片", "T恤", "口红", "面霜"])
def test_titles_are_searchable(catalog: DemoCatalog, word: str) -> None:
    assert any(word in p.title.values["zh-Hans"] for p in catalog.products)


def test_status_mix(catalog: DemoCatalog) -> None:
    statuses = Counter(p.status for p in catalog.products)
    assert statuses[ProductStatus.DRAFT] == 15
    assert statuses[ProductStatus.ARCHIVED] == 9
    assert statuses[ProductStatus.ACTIVE] == 276


def test_images_and_times(catalog: DemoCatalog) -> None:
    for product in catalog.products:
        assert product.image_urls
        assert product.image_urls[0] == f"https://img.example.cn/products/{product.id}/1.jpg"
        assert product.create_time is not None and product.update_time is not None
        assert product.create_time.utcoffset() is not None
        assert product.create_time.utcoffset() == product.update_time.utcoffset()
        assert product.update_time >= product.create_time
