"""The read RPCs' direct document -> proto conversion equals the domain path, without a database.

Documents go through BSON as the database hands them back (tz-aware datetimes at millisecond
precision, lists, missing optional fields).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import bson
from bson.codec_options import CodecOptions
from google.protobuf.timestamp_pb2 import Timestamp

from catalog_svc.demo_data import demo_catalog, large_catalog_products
from catalog_svc.repository import product_from_document, product_to_document
from catalog_svc.servicer import _timestamp, product_document_to_proto, product_to_proto

AS_READ = CodecOptions(tz_aware=True)


def as_read(doc: dict[str, Any]) -> dict[str, Any]:
    return bson.decode(bson.encode(doc), AS_READ)


def test_every_demo_and_generated_product_converts_the_same_both_ways() -> None:
    products = [*demo_catalog().products, *large_catalog_products(300)]
    assert any(sku.price_rules for p in products for sku in p.skus)
    assert any(sku.options for p in products for sku in p.skus)
    for product in products:
        doc = as_read(product_to_document(product))
        direct = product_document_to_proto(doc)
        assert direct == product_to_proto(product_from_document(doc)), product.id
        assert direct.SerializeToString(deterministic=True) == product_to_proto(
            product_from_document(doc)
        ).SerializeToString(deterministic=True)


def test_documents_without_optional_fields_convert_the_same_both_ways() -> None:
    stamp = datetime(2026, 11, 11, 0, 0, 0, 123000, tzinfo=UTC)
    sparse = {
        "_id": "p_sparse",
        "spu_code": "S1",
        "title": {"zh-Hans": "无描述"},
        "category_id": "cat_tea",
        "brand_id": "b_x",
        "status": "archived",
        "skus": [
            {"id": "p_sparse_s1", "barcode": "", "price": {"amount": 1, "currency": "CNY"}},
            {
                "id": "p_sparse_s2",
                "barcode": "6901234567892",
                "price": {"amount": 990, "currency": "USD"},
                "options": [{"name": "size", "value": "L"}],
                "price_rules": [
                    {
                        "price": {"amount": 500, "currency": "USD"},
                        "channel": "kiosk",
                        "tier": None,
                        "start": stamp,
                        "end": None,
                    },
                    {
                        "price": {"amount": 400, "currency": "USD"},
                        "channel": None,
                        "tier": "gold",
                        "start": None,
                        "end": stamp + timedelta(days=1),
                    },
                ],
            },
        ],
        "attributes": {"origin": "云南"},
    }
    for doc in (sparse, {**sparse, "status": "draft", "revision": 7, "image_urls": ["u"]}):
        read = as_read(doc)
        assert product_document_to_proto(read) == product_to_proto(product_from_document(read))
    assert product_document_to_proto(as_read(sparse)).etag == "r1"


def test_timestamps_match_protobufs_own_conversion() -> None:
    east = timezone(timedelta(hours=8))
    for value in (
        datetime(2026, 12, 2, 16, 4, 25, 123456, tzinfo=UTC),
        datetime(2026, 12, 3, 0, 4, 25, 999000, tzinfo=east),
        datetime(1969, 7, 20, 20, 17, 40, 500000, tzinfo=UTC),
        datetime(2026, 1, 1),  # naive: UTC
    ):
        expected = Timestamp()
        expected.FromDatetime(value)
        assert _timestamp(value) == expected, value
    assert _timestamp(None) is None
