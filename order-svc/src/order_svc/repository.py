"""Order persistence: documents <-> domain objects, the queries and the indexes they need."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from order_svc.domain import (
    Channel,
    FulfillmentType,
    Money,
    Order,
    OrderLine,
    OrderStatus,
    PaymentStatus,
)
from retail_kit.mongo import Document, IndexDeclaration, ensure_indexes, find_by_ids

ORDERS = "orders"

# ListOrders: one member's or one store's orders, newest first, ties broken by _id.
NEWEST_FIRST = (("create_time", -1), ("_id", -1))

INDEXES = (
    IndexDeclaration(ORDERS, (("member_id", 1), *NEWEST_FIRST), "member_newest"),
    IndexDeclaration(ORDERS, (("store_id", 1), *NEWEST_FIRST), "store_newest"),
)


def money_to_document(money: Money) -> Document:
    return {"amount": money.amount, "currency": money.currency}


def money_from_document(doc: Document) -> Money:
    return Money(doc["amount"], doc["currency"])


def order_to_document(order: Order) -> Document:
    return {
        "_id": order.id,
        "member_id": order.member_id,
        "store_id": order.store_id,
        "fulfillment": order.fulfillment.value,
        "status": order.status.value,
        "payment_status": order.payment_status.value,
        "lines": [
            {
                "sku_id": line.sku_id,
                "quantity": line.quantity,
                "unit_price": money_to_document(line.unit_price),
                "line_total": money_to_document(line.line_total),
            }
            for line in order.lines
        ],
        "subtotal": money_to_document(order.subtotal),
        "discount": money_to_document(order.discount),
        "total": money_to_document(order.total),
        "channel": order.channel.value,
        "associate_id": order.associate_id,
        "create_time": order.create_time,
        "update_time": order.update_time,
    }


def order_from_document(doc: Document) -> Order:
    return Order(
        id=doc["_id"],
        member_id=doc.get("member_id"),
        store_id=doc.get("store_id"),
        fulfillment=FulfillmentType(doc["fulfillment"]),
        status=OrderStatus(doc["status"]),
        payment_status=PaymentStatus(doc["payment_status"]),
        lines=tuple(
            OrderLine(
                sku_id=line["sku_id"],
                quantity=line["quantity"],
                unit_price=money_from_document(line["unit_price"]),
                line_total=money_from_document(line["line_total"]),
            )
            for line in doc["lines"]
        ),
        subtotal=money_from_document(doc["subtotal"]),
        discount=money_from_document(doc["discount"]),
        total=money_from_document(doc["total"]),
        channel=Channel(doc["channel"]),
        associate_id=doc.get("associate_id"),
        create_time=doc["create_time"],
        update_time=doc["update_time"],
    )


class OrderRepository:
    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self._db = database

    async def ensure_indexes(self) -> None:
        await ensure_indexes(self._db, INDEXES)

    async def get_order(self, order_id: str) -> Order | None:
        doc = await self._db[ORDERS].find_one({"_id": order_id})
        return order_from_document(doc) if doc else None

    async def get_orders(self, order_ids: Sequence[str]) -> dict[str, Order]:
        found = await find_by_ids(self._db[ORDERS], order_ids)
        return {key: order_from_document(doc) for key, doc in found.items()}

    async def list_orders(
        self,
        *,
        member_id: str | None = None,
        store_id: str | None = None,
        limit: int,
        before: tuple[datetime, str] | None,
    ) -> list[Order]:
        """One member's or one store's orders, newest first (create_time, then _id, both
        descending), `limit` of them after the (create_time, _id) `before`."""
        if (member_id is None) == (store_id is None):
            raise ValueError("exactly one of member_id and store_id")
        query: dict[str, Any] = (
            {"member_id": member_id} if member_id is not None else {"store_id": store_id}
        )
        if before is not None:
            create_time, order_id = before
            query["$or"] = [
                {"create_time": {"$lt": create_time}},
                {"create_time": create_time, "_id": {"$lt": order_id}},
            ]
        cursor = self._db[ORDERS].find(query).sort(list(NEWEST_FIRST)).limit(limit)
        return [order_from_document(doc) async for doc in cursor]
