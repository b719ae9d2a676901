"""Pure rules of store-svc: clock times, the document mapping and the proto enum mapping."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import time
from typing import Any

import pytest

from retail.store.v1 import store_pb2
from store_svc.demo_data import demo_stores
from store_svc.domain import StoreService, StoreStatus, StoreType
from store_svc.hours import format_hhmm, parse_hhmm
from store_svc.repository import store_from_document, store_to_document
from store_svc.servicer import SERVICE_TO_PROTO, STATUS_TO_PROTO, TYPE_TO_PROTO, store_to_proto


@pytest.mark.parametrize(
    ("value", "text"),
    [(time(0, 0), "00:00"), (time(9, 5), "09:05"), (time(23, 59), "23:59")],
)
def test_hhmm_round_trips(value: time, text: str) -> None:
    assert format_hhmm(value) == text
    assert parse_hhmm(text) == value


def test_hhmm_drops_seconds() -> None:
    assert format_hhmm(time(10, 30, 59)) == "10:30"


@pytest.mark.parametrize("text", ["", "9:00", "24:00", "12:60", "09:00:00", "ab:cd", " 09:00"])
def test_hhmm_refuses_anything_else(text: str) -> None:
    with pytest.raises(ValueError):
        parse_hhmm(text)


def test_every_demo_store_survives_the_document_round_trip() -> None:
    for store in demo_stores():
        assert store_from_document(store_to_document(store)) == store


def test_documents_spell_hours_and_location_as_the_design_says() -> None:
    doc = store_to_document(demo_stores()[0])
    assert doc["_id"] == "st_001"
    assert doc["weekly_hours"][0] == {"weekday": 1, "opens": "10:00", "closes": "22:30"}
    assert set(doc["location"]) == {"latitude", "longitude"}
    assert doc["name"]["zh-Hans"]


def assert_same_names(mapping: Mapping[Any, int], domain_enum: Any, proto_enum: Any) -> None:
    """Every domain value maps to the proto value of the same name, and every proto value
    but UNSPECIFIED has a domain counterpart."""
    assert set(mapping) == set(domain_enum)
    prefix = proto_enum.Name(0).removesuffix("UNSPECIFIED")
    for member, number in mapping.items():
        assert proto_enum.Name(number) == prefix + member.name
    assert len(proto_enum.values()) == len(mapping) + 1


def test_every_domain_enum_value_has_a_proto_value_of_the_same_name() -> None:
    assert_same_names(TYPE_TO_PROTO, StoreType, store_pb2.StoreType)
    assert_same_names(SERVICE_TO_PROTO, StoreService, store_pb2.StoreServiceKind)
    assert_same_names(STATUS_TO_PROTO, StoreStatus, store_pb2.StoreStatus)


def test_every_demo_store_converts_to_proto() -> None:
    for store in demo_stores():
        message = store_to_proto(store)
        assert message.id == store.id
        assert len(message.weekly_hours) == len(store.weekly_hours)
