"""Order persistence: the order document, one-write transitions, effects, idempotency keys.

Every change of an order is one `update_one` on its document; a change of status is always
`transition` (status + event + last_event + effects + version in that one write), so an event
or an effect can never be lost or exist without its status change. Amounts are int fen.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from order_svc.domain import (
    Actor,
    ActorKind,
    Channel,
    DeliveryAddress,
    Effect,
    EffectState,
    FulfillmentType,
    Fulfilment,
    FulfilmentStatus,
    Order,
    OrderCoupon,
    OrderEvent,
    OrderLine,
    OrderPoints,
    OrderReturn,
    OrderStatus,
    Payment,
    PaymentStatus,
    Pickup,
    Refund,
    RefundLine,
    ReturnLine,
    Saga,
    SagaError,
    SagaState,
    SagaStep,
    can_transition,
)
from retail_kit.mongo import Document, IndexDeclaration, ensure_indexes, find_by_ids

ORDERS = "orders"
IDEMPOTENCY_KEYS = "idempotency_keys"
# Pickup codes claimed by open pickups, `_id` "<store>:<code>" (lifecycle, pickup.py).
PICKUP_CODES = "pickup_codes"

# ListOrders: one member's or one store's orders, newest first, ties broken by _id.
NEWEST_FIRST = (("create_time", -1), ("_id", -1))
OLDEST_FIRST = (("create_time", 1), ("_id", 1))

INDEXES = (
    IndexDeclaration(ORDERS, (("member_id", 1), *NEWEST_FIRST), "member_newest"),
    # store_ids: the order's store and every fulfilment's (a split delivery is in each list).
    IndexDeclaration(ORDERS, (("store_ids", 1), *NEWEST_FIRST), "store_newest"),
    # The store's queue by status, oldest first (ListStoreOrders).
    IndexDeclaration(ORDERS, (("store_ids", 1), ("status", 1), *OLDEST_FIRST), "store_queue"),
    # Recovery: sagas whose owner stopped (lease passed).
    IndexDeclaration(ORDERS, (("saga.state", 1), ("saga.lease_until", 1)), "saga_lease"),
    # The outbox worker: orders with an effect due.
    IndexDeclaration(ORDERS, (("effects_due", 1),), "effects_due"),
    # Pickup expiry and payment timeout sweepers.
    IndexDeclaration(ORDERS, (("status", 1), ("pickup.hold_until_time", 1)), "pickup_hold"),
    IndexDeclaration(ORDERS, (("status", 1), ("payment.deadline_time", 1)), "payment_deadline"),
    # One pickup code per order: concurrent MarkReadyForPickup calls share one claim.
    IndexDeclaration(PICKUP_CODES, (("order_id", 1),), "pickup_code_order", unique=True),
)

_PENDING_EFFECTS = {
    "$filter": {
        "input": {"$ifNull": ["$effects", []]},
        "as": "e",
        "cond": {"$eq": ["$$e.state", EffectState.PENDING.value]},
    }
}
# The earliest next_time of a pending effect; null when none is pending.
_EFFECTS_DUE = {"$min": {"$map": {"input": _PENDING_EFFECTS, "as": "e", "in": "$$e.next_time"}}}


def _lit(value: Any) -> Any:
    """A value for an update pipeline: taken literally, never as an expression or a path."""
    return {"$literal": value}


def apply_set(document: Document, fields: Mapping[str, Any]) -> None:
    """Applies `$set` paths ("a.b", "lines.2.paid_amount") to a document in memory, as the
    server did, so a writer that knows its write succeeded need not read it back."""
    for path, value in fields.items():
        parts = path.split(".")
        target: Any = document
        for part in parts[:-1]:
            target = target[int(part)] if isinstance(target, list) else target.setdefault(part, {})
        last = parts[-1]
        if isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value


# -- documents <-> domain ------------------------------------------------------------------


def actor_to_document(actor: Actor | None) -> Document | None:
    if actor is None:
        return None
    return {"kind": actor.kind.value, "id": actor.id, "store_id": actor.store_id}


def actor_from_document(doc: Document | None) -> Actor | None:
    if not doc:
        return None
    return Actor(
        ActorKind(doc.get("kind", "unspecified")), doc.get("id", ""), doc.get("store_id", "")
    )


def line_to_document(line: OrderLine) -> Document:
    return {
        "sku_id": line.sku_id,
        "product_id": line.product_id,
        "category_ids": list(line.category_ids),
        "quantity": line.quantity,
        "unit_price": line.unit_price,
        "price_rule": line.price_rule,
        "line_total": line.line_total,
        "coupon_discount": line.coupon_discount,
        "points_discount": line.points_discount,
        "paid_amount": line.paid_amount,
        "returned_quantity": line.returned_quantity,
        "refunded_amount": line.refunded_amount,
        "fulfilment_id": line.fulfilment_id,
    }


def line_from_document(doc: Document) -> OrderLine:
    return OrderLine(
        sku_id=doc["sku_id"],
        quantity=int(doc["quantity"]),
        unit_price=int(doc["unit_price"]),
        line_total=int(doc["line_total"]),
        product_id=doc.get("product_id", ""),
        category_ids=tuple(doc.get("category_ids", ())),
        price_rule=doc.get("price_rule", ""),
        coupon_discount=int(doc.get("coupon_discount", 0)),
        points_discount=int(doc.get("points_discount", 0)),
        paid_amount=int(doc["paid_amount"] if "paid_amount" in doc else doc["line_total"]),
        returned_quantity=int(doc.get("returned_quantity", 0)),
        refunded_amount=int(doc.get("refunded_amount", 0)),
        fulfilment_id=doc.get("fulfilment_id", ""),
    )


def fulfilment_to_document(fulfilment: Fulfilment) -> Document:
    return {
        "id": fulfilment.id,
        "store_id": fulfilment.store_id,
        "reservation_id": fulfilment.reservation_id,
        "status": fulfilment.status.value,
        "carrier": fulfilment.carrier,
        "tracking_number": fulfilment.tracking_number,
        "hold_until": fulfilment.hold_until,
    }


def fulfilment_from_document(doc: Document) -> Fulfilment:
    return Fulfilment(
        id=doc["id"],
        store_id=doc["store_id"],
        reservation_id=doc["reservation_id"],
        status=FulfilmentStatus(doc.get("status", "pending")),
        carrier=doc.get("carrier", ""),
        tracking_number=doc.get("tracking_number", ""),
        hold_until=doc.get("hold_until"),
    )


def address_to_document(address: DeliveryAddress | None) -> Document | None:
    if address is None:
        return None
    return {
        "recipient": address.recipient,
        "phone": address.phone,
        "line1": address.line1,
        "district": address.district,
        "city": address.city,
        "province": address.province,
        "postal_code": address.postal_code,
        "latitude": address.latitude,
        "longitude": address.longitude,
    }


def address_from_document(doc: Document | None) -> DeliveryAddress | None:
    if not doc:
        return None
    return DeliveryAddress(
        recipient=doc.get("recipient", ""),
        phone=doc.get("phone", ""),
        line1=doc.get("line1", ""),
        district=doc.get("district", ""),
        city=doc.get("city", ""),
        province=doc.get("province", ""),
        postal_code=doc.get("postal_code", ""),
        latitude=doc.get("latitude"),
        longitude=doc.get("longitude"),
    )


def coupon_to_document(coupon: OrderCoupon | None) -> Document | None:
    if coupon is None:
        return None
    return {
        "id": coupon.id,
        "code": coupon.code,
        "discount": coupon.discount,
        "state": coupon.state,
    }


def points_to_document(points: OrderPoints | None) -> Document | None:
    if points is None:
        return None
    return {
        "requested": points.requested,
        "redeemed": points.redeemed,
        "value": points.value,
        "state": points.state,
    }


def payment_to_document(payment: Payment) -> Document:
    return {
        "status": payment.status.value,
        "provider": payment.provider,
        "transaction_id": payment.transaction_id,
        "amount": payment.amount,
        "paid_time": payment.paid_time,
        "deadline_time": payment.deadline_time,
    }


def payment_from_document(doc: Document | None) -> Payment:
    if not doc:
        return Payment()
    return Payment(
        status=PaymentStatus(doc.get("status", "pending")),
        provider=doc.get("provider", ""),
        transaction_id=doc.get("transaction_id", ""),
        amount=int(doc.get("amount", 0)),
        paid_time=doc.get("paid_time"),
        deadline_time=doc.get("deadline_time"),
    )


def pickup_to_document(pickup: Pickup | None) -> Document | None:
    if pickup is None:
        return None
    return {
        "code": pickup.code,
        "qr_payload": pickup.qr_payload,
        "ready_by_time": pickup.ready_by_time,
        "ready_time": pickup.ready_time,
        "hold_until_time": pickup.hold_until_time,
        "wrong_code_attempts": pickup.wrong_code_attempts,
        "code_locked": pickup.code_locked,
        "picked_up_time": pickup.picked_up_time,
        "handed_over_by": actor_to_document(pickup.handed_over_by),
    }


def pickup_from_document(doc: Document | None) -> Pickup | None:
    if not doc:
        return None
    return Pickup(
        code=doc.get("code", ""),
        qr_payload=doc.get("qr_payload", ""),
        ready_by_time=doc.get("ready_by_time"),
        ready_time=doc.get("ready_time"),
        hold_until_time=doc.get("hold_until_time"),
        wrong_code_attempts=int(doc.get("wrong_code_attempts", 0)),
        code_locked=bool(doc.get("code_locked", False)),
        picked_up_time=doc.get("picked_up_time"),
        handed_over_by=actor_from_document(doc.get("handed_over_by")),
    )


def saga_error_to_document(error: SagaError | None) -> Document | None:
    if error is None:
        return None
    return {
        "code": error.code,
        "reason": error.reason,
        "message": error.message,
        "metadata": dict(error.metadata),
        "violations": [[f, d] for f, d in error.violations],
    }


def saga_error_from_document(doc: Document | None) -> SagaError | None:
    if not doc:
        return None
    return SagaError(
        code=doc["code"],
        reason=doc.get("reason", ""),
        message=doc.get("message", ""),
        metadata=dict(doc.get("metadata", {})),
        violations=tuple((f, d) for f, d in doc.get("violations", ())),
    )


def saga_to_document(saga: Saga | None) -> Document | None:
    if saga is None:
        return None
    return {
        "step": saga.step.value,
        "state": saga.state.value,
        "lease_until": saga.lease_until,
        "owner": saga.owner,
        "attempts": saga.attempts,
        "error": saga_error_to_document(saga.error),
    }


def saga_from_document(doc: Document | None) -> Saga | None:
    if not doc:
        return None
    return Saga(
        step=SagaStep(doc["step"]),
        state=SagaState(doc["state"]),
        lease_until=doc.get("lease_until"),
        owner=doc.get("owner", ""),
        attempts=int(doc.get("attempts", 0)),
        error=saga_error_from_document(doc.get("error")),
    )


def effect_to_document(effect: Effect) -> Document:
    return {
        "id": effect.id,
        "kind": effect.kind,
        "state": effect.state.value,
        "attempts": effect.attempts,
        "next_time": effect.next_time,
        "error": effect.error,
        "ref": effect.ref,
        "data": dict(effect.data),
    }


def effect_from_document(doc: Document) -> Effect:
    return Effect(
        id=doc["id"],
        kind=doc["kind"],
        state=EffectState(doc.get("state", "pending")),
        attempts=int(doc.get("attempts", 0)),
        next_time=doc.get("next_time"),
        error=doc.get("error", ""),
        ref=doc.get("ref", ""),
        data=dict(doc.get("data", {})),
    )


def refund_to_document(refund: Refund) -> Document:
    return {
        "id": refund.id,
        "amount": refund.amount,
        "reason": refund.reason,
        "return_id": refund.return_id,
        "create_time": refund.create_time,
        "lines": [
            {"sku_id": line.sku_id, "quantity": line.quantity, "amount": line.amount}
            for line in refund.lines
        ],
    }


def refund_from_document(doc: Document) -> Refund:
    return Refund(
        id=doc["id"],
        amount=int(doc["amount"]),
        reason=doc.get("reason", ""),
        create_time=doc["create_time"],
        return_id=doc.get("return_id", ""),
        lines=tuple(
            RefundLine(line["sku_id"], int(line["quantity"]), int(line["amount"]))
            for line in doc.get("lines", ())
        ),
    )


def return_to_document(order_return: OrderReturn) -> Document:
    return {
        "id": order_return.id,
        "store_id": order_return.store_id,
        "lines": [
            {"sku_id": line.sku_id, "quantity": line.quantity, "refund_amount": line.refund_amount}
            for line in order_return.lines
        ],
        "refund_amount": order_return.refund_amount,
        "points_clawed_back": order_return.points_clawed_back,
        "reason": order_return.reason,
        "actor": actor_to_document(order_return.actor),
        "create_time": order_return.create_time,
    }


def return_from_document(doc: Document) -> OrderReturn:
    return OrderReturn(
        id=doc["id"],
        store_id=doc["store_id"],
        lines=tuple(
            ReturnLine(line["sku_id"], int(line["quantity"]), int(line["refund_amount"]))
            for line in doc.get("lines", ())
        ),
        refund_amount=int(doc.get("refund_amount", 0)),
        create_time=doc["create_time"],
        points_clawed_back=int(doc.get("points_clawed_back", 0)),
        reason=doc.get("reason", ""),
        actor=actor_from_document(doc.get("actor")),
    )


def event_to_document(event: OrderEvent) -> Document:
    return {
        "seq": event.seq,
        "kind": event.kind,
        "status": event.status.value,
        "occur_time": event.occur_time,
    }


def event_from_document(doc: Document) -> OrderEvent:
    return OrderEvent(
        seq=int(doc["seq"]),
        kind=doc["kind"],
        status=OrderStatus(doc["status"]),
        occur_time=doc["occur_time"],
    )


def order_to_document(order: Order) -> Document:
    """The whole document of a new order (later changes are field updates, never this)."""
    return {
        "_id": order.id,
        "idempotency_key": order.idempotency_key,
        "request_fingerprint": order.request_fingerprint,
        "member_id": order.member_id,
        "channel": order.channel.value,
        "fulfillment": order.fulfillment.value,
        "store_id": order.store_id,
        "store_ids": list(order.store_ids),
        "delivery_address": address_to_document(order.delivery_address),
        "associate_id": order.associate_id,
        "actor": actor_to_document(order.actor),
        "currency": order.currency,
        "lines": [line_to_document(line) for line in order.lines],
        "fulfilments": [fulfilment_to_document(f) for f in order.fulfilments],
        "coupon": coupon_to_document(order.coupon),
        "points": points_to_document(order.points),
        "subtotal": order.subtotal,
        "coupon_discount": order.coupon_discount,
        "points_discount": order.points_discount,
        "total": order.total,
        "status": order.status.value,
        "end_reason": order.end_reason,
        "payment": payment_to_document(order.payment),
        "pickup": pickup_to_document(order.pickup),
        "saga": saga_to_document(order.saga),
        "events": [event_to_document(e) for e in order.events],
        "last_event": None,
        "effects": [effect_to_document(e) for e in order.effects],
        "effects_due": order.effects_due,
        "refunds": [refund_to_document(r) for r in order.refunds],
        "returns": [return_to_document(r) for r in order.returns],
        "version": order.version,
        "create_time": order.create_time,
        "update_time": order.update_time,
    }


def order_from_document(doc: Document) -> Order:
    coupon = doc.get("coupon")
    points = doc.get("points")
    return Order(
        id=doc["_id"],
        idempotency_key=doc.get("idempotency_key", ""),
        request_fingerprint=doc.get("request_fingerprint", ""),
        member_id=doc.get("member_id"),
        channel=Channel(doc["channel"]),
        fulfillment=FulfillmentType(doc["fulfillment"]),
        store_id=doc.get("store_id"),
        delivery_address=address_from_document(doc.get("delivery_address")),
        associate_id=doc.get("associate_id"),
        actor=actor_from_document(doc.get("actor")),
        currency=doc.get("currency", "CNY"),
        lines=tuple(line_from_document(line) for line in doc["lines"]),
        fulfilments=tuple(fulfilment_from_document(f) for f in doc.get("fulfilments", ())),
        coupon=(
            OrderCoupon(
                coupon["id"],
                coupon.get("code", ""),
                int(coupon.get("discount", 0)),
                coupon.get("state", "locked"),
            )
            if coupon
            else None
        ),
        points=(
            OrderPoints(
                int(points["requested"]),
                int(points.get("redeemed", 0)),
                int(points.get("value", 0)),
                points.get("state", "redeemed"),
            )
            if points
            else None
        ),
        subtotal=int(doc.get("subtotal", 0)),
        coupon_discount=int(doc.get("coupon_discount", 0)),
        points_discount=int(doc.get("points_discount", 0)),
        total=int(doc.get("total", 0)),
        status=OrderStatus(doc["status"]),
        end_reason=doc.get("end_reason", ""),
        payment=payment_from_document(doc.get("payment")),
        pickup=pickup_from_document(doc.get("pickup")),
        saga=saga_from_document(doc.get("saga")),
        events=tuple(event_from_document(e) for e in doc.get("events", ())),
        effects=tuple(effect_from_document(e) for e in doc.get("effects", ())),
        effects_due=doc.get("effects_due"),
        refunds=tuple(refund_from_document(r) for r in doc.get("refunds", ())),
        returns=tuple(return_from_document(r) for r in doc.get("returns", ())),
        version=int(doc.get("version", 0)),
        create_time=doc["create_time"],
        update_time=doc["update_time"],
    )


# -- idempotency keys ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IdempotencyKey:
    """`idempotency_keys` document: `_id` = "<scope>:<key>"; the first insert executes."""

    id: str
    fingerprint: str
    order_id: str
    owner: str
    lease_until: datetime
    create_time: datetime
    # A refusal decided before the order was inserted (validation against other services).
    error: SagaError | None = None


def _key_from_document(doc: Document) -> IdempotencyKey:
    return IdempotencyKey(
        id=doc["_id"],
        fingerprint=doc["fingerprint"],
        order_id=doc["order_id"],
        owner=doc.get("owner", ""),
        lease_until=doc["lease_until"],
        create_time=doc["create_time"],
        error=saga_error_from_document(doc.get("error")),
    )


class IdempotencyKeys:
    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self._keys = database[IDEMPOTENCY_KEYS]

    async def claim(self, key: IdempotencyKey) -> tuple[IdempotencyKey, bool]:
        """Inserts the key; (the stored key, True) when this call won, else (theirs, False)."""
        doc = {
            "_id": key.id,
            "fingerprint": key.fingerprint,
            "order_id": key.order_id,
            "owner": key.owner,
            "lease_until": key.lease_until,
            "create_time": key.create_time,
            "error": None,
        }
        try:
            await self._keys.insert_one(doc)
            return key, True
        except DuplicateKeyError:
            existing = await self.get(key.id)
            if existing is None:  # pragma: no cover - keys are never deleted
                raise
            return existing, False

    async def get(self, key_id: str) -> IdempotencyKey | None:
        doc = await self._keys.find_one({"_id": key_id})
        return _key_from_document(doc) if doc else None

    async def take_over(
        self, key: IdempotencyKey, owner: str, lease_until: datetime
    ) -> IdempotencyKey | None:
        """Becomes the key's executor if it is still `key.owner`'s (compare-and-set)."""
        result = await self._keys.update_one(
            {"_id": key.id, "owner": key.owner, "error": None},
            {"$set": {"owner": owner, "lease_until": lease_until}},
        )
        if result.modified_count == 0:
            return None
        return IdempotencyKey(
            key.id, key.fingerprint, key.order_id, owner, lease_until, key.create_time
        )

    async def give_up(self, key: IdempotencyKey, now: datetime) -> None:
        """Ends the owner's lease at once (it could not finish): a retry may take over."""
        await self._keys.update_one(
            {"_id": key.id, "owner": key.owner}, {"$set": {"lease_until": now}}
        )

    async def record_error(self, key: IdempotencyKey, error: SagaError) -> bool:
        result = await self._keys.update_one(
            {"_id": key.id, "owner": key.owner},
            {"$set": {"error": saga_error_to_document(error)}},
        )
        return result.modified_count == 1


# -- orders --------------------------------------------------------------------------------


class OrderRepository:
    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self._db = database
        self.database = database
        self._orders = database[ORDERS]
        self.keys = IdempotencyKeys(database)

    async def ensure_indexes(self) -> None:
        await ensure_indexes(self._db, INDEXES)

    # reads

    async def get_order(self, order_id: str) -> Order | None:
        doc = await self._orders.find_one({"_id": order_id})
        return order_from_document(doc) if doc else None

    async def get_orders(self, order_ids: Sequence[str]) -> dict[str, Order]:
        found = await find_by_ids(self._orders, order_ids)
        return {key: order_from_document(doc) for key, doc in found.items()}

    async def list_orders(
        self,
        *,
        member_ids: Sequence[str] | None = None,
        store_id: str | None = None,
        limit: int,
        before: tuple[datetime, str] | None,
        exclude_statuses: Iterable[OrderStatus] = (),
    ) -> list[Order]:
        """Orders of some member ids (a member and those merged into it) or of one store,
        newest first (create_time, then _id, both descending), `limit` of them after the
        (create_time, _id) `before`."""
        if (member_ids is None) == (store_id is None):
            raise ValueError("exactly one of member_ids and store_id")
        query: dict[str, Any] = (
            {"member_id": {"$in": list(member_ids)}}
            if member_ids is not None
            else {"store_ids": store_id}
        )
        excluded = [s.value for s in exclude_statuses]
        if excluded:
            query["status"] = {"$nin": excluded}
        if before is not None:
            create_time, order_id = before
            query["$or"] = [
                {"create_time": {"$lt": create_time}},
                {"create_time": create_time, "_id": {"$lt": order_id}},
            ]
        cursor = self._orders.find(query).sort(list(NEWEST_FIRST)).limit(limit)
        return [order_from_document(doc) async for doc in cursor]

    async def store_queue(
        self,
        store_id: str,
        statuses: Sequence[OrderStatus],
        *,
        limit: int,
        after: tuple[datetime, str] | None,
    ) -> list[Order]:
        """A store's orders in the statuses, oldest first (create_time, _id ascending)."""
        query: dict[str, Any] = {
            "store_ids": store_id,
            "status": {"$in": [s.value for s in statuses]},
        }
        if after is not None:
            create_time, order_id = after
            query["$or"] = [
                {"create_time": {"$gt": create_time}},
                {"create_time": create_time, "_id": {"$gt": order_id}},
            ]
        cursor = self._orders.find(query).sort(list(OLDEST_FIRST)).limit(limit)
        return [order_from_document(doc) async for doc in cursor]

    async def find_due(
        self, status: OrderStatus, time_field: str, now: datetime, limit: int
    ) -> list[Order]:
        """Orders in `status` whose `time_field` (e.g. "payment.deadline_time",
        "pickup.hold_until_time") is at or before `now`, earliest first."""
        cursor = (
            self._orders.find({"status": status.value, time_field: {"$lte": now}})
            .sort(time_field, 1)
            .limit(limit)
        )
        return [order_from_document(doc) async for doc in cursor]

    # writes

    async def insert(self, order: Order) -> None:
        """Inserts a new order (DuplicateKeyError if its id exists)."""
        await self._orders.insert_one(order_to_document(order))

    async def transition(
        self,
        order_id: str,
        from_statuses: Iterable[OrderStatus],
        to_status: OrderStatus,
        *,
        expected_version: int | None = None,
        set_fields: Mapping[str, Any] | None = None,
        push_fields: Mapping[str, Sequence[Any]] | None = None,
        effects: Sequence[Effect] = (),
        event_kind: str,
        now: datetime,
        condition: Mapping[str, Any] | None = None,
    ) -> Order | None:
        """One `update_one` that, only if the order is in one of `from_statuses` (and at
        `expected_version`, and matches `condition`, when given): sets the status and
        `set_fields` (document paths, e.g. "payment.status"), appends `push_fields`
        (path -> documents), pushes the event (seq = previous + 1) and sets `last_event`,
        appends the effects and sets `effects_due`, bumps `version`. Returns the order as
        written, or None when the condition did not hold (the caller re-reads and decides).
        """
        sources = list(dict.fromkeys(from_statuses))
        for source in sources:
            if not can_transition(source, to_status):
                raise ValueError(f"no transition from {source} to {to_status}")
        query: dict[str, Any] = {"_id": order_id, "status": {"$in": [s.value for s in sources]}}
        if expected_version is not None:
            query["version"] = expected_version
        if condition:
            query.update(condition)
        seq = {"$add": [{"$size": {"$ifNull": ["$events", []]}}, 1]}
        event = {
            "seq": seq,
            "kind": _lit(event_kind),
            "status": _lit(to_status.value),
            "occur_time": _lit(now),
        }
        stage: dict[str, Any] = {key: _lit(value) for key, value in (set_fields or {}).items()}
        for key, values in (push_fields or {}).items():
            stage[key] = {"$concatArrays": [{"$ifNull": [f"${key}", []]}, _lit(list(values))]}
        stage.update(
            {
                "status": _lit(to_status.value),
                "events": {"$concatArrays": [{"$ifNull": ["$events", []]}, [event]]},
                "last_event": {
                    **event,
                    "order_id": "$_id",
                    "store_id": "$store_id",
                    "store_ids": "$store_ids",
                    "member_id": "$member_id",
                },
                "version": {"$add": ["$version", 1]},
                "update_time": _lit(now),
            }
        )
        if effects:
            stage["effects"] = {
                "$concatArrays": [
                    {"$ifNull": ["$effects", []]},
                    _lit([effect_to_document(e) for e in effects]),
                ]
            }
        pipeline: list[Document] = [{"$set": stage}]
        if effects:
            pipeline.append({"$set": {"effects_due": _EFFECTS_DUE}})
        result = await self._orders.update_one(query, pipeline)
        if result.matched_count == 0:
            return None
        return await self.get_order(order_id)

    async def update(
        self,
        order_id: str,
        *,
        condition: Mapping[str, Any],
        set_fields: Mapping[str, Any],
        now: datetime,
        inc_fields: Mapping[str, int] | None = None,
    ) -> bool:
        """A change without a status change (saga progress, pickup attempts): `$set` (and
        `$inc`) where `condition` holds; bumps `version`. True when it was applied."""
        update: dict[str, Any] = {
            "$set": {**set_fields, "update_time": now},
            "$inc": {"version": 1, **(inc_fields or {})},
        }
        result = await self._orders.update_one({"_id": order_id, **condition}, update)
        return result.modified_count == 1

    # the saga

    async def stalled_sagas(self, now: datetime, limit: int) -> list[Order]:
        """Orders whose saga is running or compensating and whose owner's lease passed."""
        cursor = (
            self._orders.find(
                {
                    "saga.state": {"$in": [SagaState.RUNNING.value, SagaState.COMPENSATING.value]},
                    "saga.lease_until": {"$lte": now},
                }
            )
            .sort("saga.lease_until", 1)
            .limit(limit)
        )
        return [order_from_document(doc) async for doc in cursor]

    async def take_over_saga(
        self, order: Order, owner: str, lease_until: datetime, now: datetime
    ) -> bool:
        """Becomes the saga's executor if its lease has passed and nobody took it since."""
        saga = order.saga
        if saga is None:
            return False
        return await self.update(
            order.id,
            condition={
                "saga.state": saga.state.value,
                "saga.owner": saga.owner,
                "saga.step": saga.step.value,
                "saga.lease_until": {"$lte": now},
            },
            set_fields={"saga.owner": owner, "saga.lease_until": lease_until},
            inc_fields={"saga.attempts": 1},
            now=now,
        )

    # effects (outbox)

    async def due_effects(self, now: datetime, limit: int) -> list[Order]:
        """Orders with an effect due at or before `now`, the longest waiting first."""
        cursor = (
            self._orders.find({"effects_due": {"$lte": now}}).sort("effects_due", 1).limit(limit)
        )
        return [order_from_document(doc) async for doc in cursor]

    async def mark_effect_done(self, order_id: str, effect_id: str, now: datetime) -> bool:
        """Marks a pending effect done (and recomputes `effects_due`); True when this call
        did it, False when it was done already (or unknown). Does not bump `version`: the
        outbox's bookkeeping never conflicts with business changes."""
        return await self._set_effect(order_id, effect_id, {"state": "done", "done_time": now})

    async def mark_effect_failed(
        self, order_id: str, effect_id: str, error: str, next_time: datetime
    ) -> bool:
        """Records a failed delivery: attempts + 1, the error, retried at `next_time`."""
        return await self._set_effect(
            order_id,
            effect_id,
            {"error": error, "next_time": next_time},
            attempts=True,
        )

    async def _set_effect(
        self, order_id: str, effect_id: str, fields: Mapping[str, Any], *, attempts: bool = False
    ) -> bool:
        changes: dict[str, Any] = {key: _lit(value) for key, value in fields.items()}
        if attempts:
            changes["attempts"] = {"$add": [{"$ifNull": ["$$e.attempts", 0]}, 1]}
        pipeline: list[Document] = [
            {
                "$set": {
                    "effects": {
                        "$map": {
                            "input": "$effects",
                            "as": "e",
                            "in": {
                                "$cond": [
                                    {
                                        "$and": [
                                            {"$eq": ["$$e.id", _lit(effect_id)]},
                                            {"$eq": ["$$e.state", EffectState.PENDING.value]},
                                        ]
                                    },
                                    {"$mergeObjects": ["$$e", changes]},
                                    "$$e",
                                ]
                            },
                        }
                    }
                }
            },
            {"$set": {"effects_due": _EFFECTS_DUE}},
        ]
        result = await self._orders.update_one(
            {
                "_id": order_id,
                "effects": {"$elemMatch": {"id": effect_id, "state": EffectState.PENDING.value}},
            },
            pipeline,
        )
        return result.modified_count == 1
