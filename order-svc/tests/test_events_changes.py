"""How a change of `orders` becomes an order event, for every shape a server may report it
in (SecantusDB reports the first transition's `last_event` whole and later ones as changed
leaves with the appended `events.<i>`; MongoDB may report an array whole, or log a large
diff as a replacement): the event is the same, and what the change lacks is read from the
order (its events are append-only, its store and member never change)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from order_svc import events
from order_svc.domain import OrderStatus
from order_svc.events import IDENTITIES, complete_event, parse_change
from retail.order.v1 import order_pb2

from .conftest import PICKUP_STORE, OrderService, Stack, new_member, pickup_request, set_stock
from .lifecycle_support import pay, stored


async def paid_order(stack: Stack, orders: OrderService) -> tuple[order_pb2.Order, dict[str, Any]]:
    (sku,) = stack.take_skus(1)
    await set_stock(stack, PICKUP_STORE, sku, 3)
    member = await new_member(stack)
    order = (await orders.stub.PlaceOrder(pickup_request(member, [(sku, 1)]))).order
    order = await pay(orders, order)
    return order, await stored(orders, order.id)


def expected(
    doc: dict[str, Any], seq: int
) -> tuple[str, int, str, OrderStatus, datetime, str, str]:
    event = doc["events"][seq - 1]
    return (
        doc["_id"],
        seq,
        event["kind"],
        OrderStatus(event["status"]),
        event["occur_time"],
        doc["store_id"],
        doc["member_id"],
    )


def seen(
    event: events.WatchedEvent | None,
) -> tuple[str, int, str, OrderStatus, datetime, str, str]:
    assert event is not None
    return (
        event.order_id,
        event.seq,
        event.kind,
        event.status,
        event.occur_time,
        event.store_id,
        event.member_id,
    )


async def test_every_shape_of_a_change_gives_the_same_event(
    stack: Stack, orders: OrderService
) -> None:
    order, doc = await paid_order(stack, orders)
    services = orders.services
    key = {"_id": order.id}
    paid = doc["events"][1]
    whole_first = {
        "operationType": "update",
        "documentKey": key,
        "fields": [
            {"k": "events", "v": doc["events"][:1]},
            {
                "k": "last_event",
                "v": {
                    **doc["events"][0],
                    "order_id": order.id,
                    "store_id": doc["store_id"],
                    "store_ids": doc["store_ids"],
                    "member_id": doc["member_id"],
                },
            },
        ],
    }
    leaves = {
        "operationType": "update",
        "documentKey": key,
        "fields": [
            {"k": "events.1", "v": paid},
            {"k": "last_event.seq", "v": 2},
            {"k": "last_event.kind", "v": "paid"},
        ],
    }
    whole_array = {
        "operationType": "update",
        "documentKey": key,
        "fields": [{"k": "events", "v": doc["events"]}, {"k": "last_event.seq", "v": 2}],
    }
    # Only the seq: the event and the order's store and member are read from the order.
    bare = {
        "operationType": "update",
        "documentKey": key,
        "fields": [{"k": "last_event.seq", "v": 2}],
    }
    replaced = {
        "operationType": "replace",
        "documentKey": key,
        "fullDocument": {"last_event": doc["last_event"]},
    }
    first = parse_change(whole_first)
    assert first is not None
    assert seen(await complete_event(services, first, "t")) == expected(doc, 1)
    for change in (leaves, whole_array, replaced):
        parsed = parse_change(change)
        assert parsed is not None
        assert seen(await complete_event(services, parsed, "t")) == expected(doc, 2)
    IDENTITIES.forget(order.id)  # forget the order: nothing left but the seq
    parsed = parse_change(bare)
    assert parsed is not None and parsed.event is None and parsed.identity is None
    assert seen(await complete_event(services, parsed, "t")) == expected(doc, 2)


def test_changes_without_an_event_are_skipped() -> None:
    key = {"_id": "o_x"}
    assert parse_change({"operationType": "update", "documentKey": key, "fields": []}) is None
    assert (
        parse_change(
            {
                "operationType": "update",
                "documentKey": key,
                "fields": [{"k": "last_event.kind", "v": "x"}],
            }
        )
        is None
    )
    assert (
        parse_change({"operationType": "replace", "documentKey": key, "fullDocument": {}}) is None
    )


def test_tokens_round_trip() -> None:
    token = {"_data": "8265ab", "_typeBits": b"\x01"}
    assert events.decode_token(events.encode_token(token)) == token
