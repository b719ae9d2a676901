"""Pure order rules: money arithmetic, priced lines, totals, and the document/proto mappings."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from order_svc.domain import (
    Channel,
    FulfillmentType,
    Money,
    Order,
    OrderLine,
    OrderStatus,
    PaymentStatus,
    order_totals,
)
from order_svc.repository import order_from_document, order_to_document
from order_svc.servicer import (
    CHANNEL_TO_PROTO,
    FULFILLMENT_TO_PROTO,
    PAYMENT_STATUS_TO_PROTO,
    STATUS_TO_PROTO,
    order_cursor_key,
    order_to_proto,
)
from retail.common.v1 import common_pb2
from retail.order.v1 import order_pb2


def test_money_adds_and_subtracts_within_one_currency() -> None:
    assert Money(1590) + Money(410) == Money(2000, "CNY")
    assert Money(2000) - Money(500) == Money(1500)
    assert Money(1590).times(3) == Money(4770)
    assert Money.zero("HKD") == Money(0, "HKD")


def test_money_never_mixes_currencies() -> None:
    with pytest.raises(ValueError, match="CNY with HKD"):
        Money(100) + Money(100, "HKD")
    with pytest.raises(ValueError):
        Money(100) - Money(100, "USD")


def test_priced_line_records_its_total() -> None:
    line = OrderLine.priced("sku_1", 3, Money(1590))
    assert line.line_total == Money(4770)


@pytest.mark.parametrize(("quantity", "price"), [(0, 100), (-1, 100), (1, -1)])
def test_priced_line_refuses_empty_quantities_and_negative_prices(
    quantity: int, price: int
) -> None:
    with pytest.raises(ValueError):
        OrderLine.priced("sku_1", quantity, Money(price))


def test_totals_subtract_the_discount_from_the_subtotal() -> None:
    lines = [OrderLine.priced("a", 2, Money(1000)), OrderLine.priced("b", 1, Money(590))]
    totals = order_totals(lines, Money(500))
    assert (totals.subtotal, totals.discount, totals.total) == (
        Money(2590),
        Money(500),
        Money(2090),
    )
    assert order_totals(lines).discount == Money(0)


def test_a_discount_may_make_an_order_free_but_not_negative() -> None:
    lines = [OrderLine.priced("a", 1, Money(1000))]
    assert order_totals(lines, Money(1000)).total == Money(0)
    with pytest.raises(ValueError, match="exceeds"):
        order_totals(lines, Money(1001))
    with pytest.raises(ValueError):
        order_totals(lines, Money(-1))


def test_totals_need_lines_of_one_currency() -> None:
    with pytest.raises(ValueError):
        order_totals([])
    with pytest.raises(ValueError):
        order_totals(
            [OrderLine.priced("a", 1, Money(1)), OrderLine.priced("b", 1, Money(1, "HKD"))]
        )
    with pytest.raises(ValueError):
        order_totals([OrderLine.priced("a", 1, Money(1))], Money(1, "HKD"))


def sample_order(**changes: object) -> Order:
    lines = (OrderLine.priced("sku_1", 2, Money(1590)),)
    totals = order_totals(lines, Money(180))
    fields: dict[str, object] = {
        "id": "o_0001",
        "member_id": "m_0001",
        "store_id": "st_001",
        "fulfillment": FulfillmentType.PICKUP_IN_STORE,
        "status": OrderStatus.CONFIRMED,
        "payment_status": PaymentStatus.PAID,
        "lines": lines,
        "subtotal": totals.subtotal,
        "discount": totals.discount,
        "total": totals.total,
        "channel": Channel.APP,
        "create_time": datetime(2026, 3, 1, 2, 0, 0, 123000, tzinfo=UTC),
        "update_time": datetime(2026, 3, 1, 2, 5, tzinfo=UTC),
        "associate_id": "as_1",
    }
    fields.update(changes)
    return Order(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "order",
    [sample_order(), sample_order(member_id=None, store_id=None, associate_id=None)],
    ids=["full", "no-owner-ids"],
)
def test_order_survives_the_document_round_trip(order: Order) -> None:
    assert order_from_document(order_to_document(order)) == order


def test_order_document_spells_money_and_enums_plainly() -> None:
    doc = order_to_document(sample_order())
    assert doc["_id"] == "o_0001"
    assert doc["total"] == {"amount": 3000, "currency": "CNY"}
    assert doc["lines"][0]["line_total"] == {"amount": 3180, "currency": "CNY"}
    assert (doc["fulfillment"], doc["status"], doc["payment_status"], doc["channel"]) == (
        "pickup_in_store",
        "confirmed",
        "paid",
        "app",
    )


def assert_same_names(mapping: Mapping[Any, int], domain_enum: Any, proto_enum: Any) -> None:
    """Every domain value maps to the proto value of the same name, and every proto value
    but UNSPECIFIED has a domain counterpart."""
    assert set(mapping) == set(domain_enum)
    prefix = proto_enum.Name(0).removesuffix("UNSPECIFIED")
    for member, number in mapping.items():
        assert proto_enum.Name(number) == prefix + member.name
    assert len(proto_enum.values()) == len(mapping) + 1


def test_every_domain_enum_value_has_a_proto_value_of_the_same_name() -> None:
    assert_same_names(FULFILLMENT_TO_PROTO, FulfillmentType, order_pb2.FulfillmentType)
    assert_same_names(STATUS_TO_PROTO, OrderStatus, order_pb2.OrderStatus)
    assert_same_names(PAYMENT_STATUS_TO_PROTO, PaymentStatus, order_pb2.PaymentStatus)
    assert_same_names(CHANNEL_TO_PROTO, Channel, common_pb2.Channel)


def test_proto_leaves_absent_ids_empty() -> None:
    message = order_to_proto(sample_order(member_id=None, store_id=None, associate_id=None))
    assert (message.member_id, message.store_id, message.associate_id) == ("", "", "")
    assert message.total.amount == 3000


def test_cursor_key_is_millisecond_time_and_id() -> None:
    assert order_cursor_key(sample_order()) == [1772330400123, "o_0001"]
