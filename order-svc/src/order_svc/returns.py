"""Returns in store: ReturnItems of an order bought in any channel, at any store offering
returns.

Judged on the order as read: it is PICKED_UP, COMPLETED or DELIVERED; each line returns at
most what was bought less what was returned before (RETURN_EXCEEDS_PURCHASE); each line's
refund is `domain.refund_for_units` (cumulative floor of the line's paid amount, the last
unit takes what is left), so the refunds of a line returned in any number of steps sum to
exactly what was paid for it. Recorded by **one** `transition` (same status, event
"returned") that sets the lines' returned quantities and refunds, pushes the return and its
refund record and appends the effects — restock (the receiving store's AdjustInventory
RETURN, key "<return>:<sku>"), record_returned (member RecordOrderReturned: points earned on
the refunded part clawed back, spend reduced) and refund — conditioned on every line's
returned quantity as read and on the return id not being recorded yet. Two concurrent
returns therefore cannot both take the same units: the loser re-reads and is judged again.
The effects are delivered at once and, what fails, by the outbox worker.

Idempotent by return id, which is unique across orders: a `return_ids` claim document
(`_id` = the return id, the order and the request's fingerprint) is inserted before the
write, so the restock keys "<return>:<sku>" can never meet another order's. The same id
with the same request answers the recorded return; with other lines, another store or
another order: FAILED_PRECONDITION / IDEMPOTENCY_KEY_REUSED. The coupon stays redeemed: its
discount was allocated to the lines, so a refund is already net of it.

The design is order-svc/DESIGN.md, "Returns".
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import grpc
from pymongo.errors import DuplicateKeyError

from order_svc import effects
from order_svc.domain import (
    FULFILLED_STATUSES,
    Actor,
    ActorKind,
    Effect,
    EffectKind,
    Order,
    OrderLine,
    OrderReturn,
    PaymentStatus,
    ReturnLine,
    new_effect,
    refund_for_units,
)
from order_svc.errors import invalid_state, store_service_unavailable
from order_svc.lifecycle import forbidden, is_staff_of
from order_svc.repository import actor_to_document, line_to_document
from order_svc.services import OrderServices
from retail.common.v1 import common_pb2
from retail.store.v1 import store_pb2
from retail_kit.errors import FieldViolation, ServiceError, invalid_argument, not_found

# Claims of return ids (unique across orders).
RETURN_IDS = "return_ids"
# A write lost to a concurrent change of the order is judged again this many times.
RETRIES = 16
RETURNS_SERVICE = store_pb2.STORE_SERVICE_KIND_RETURNS
EVENT_RETURNED = "returned"
REFUND_REASON = "returned"


@dataclass(frozen=True, slots=True)
class ReturnRequest:
    order_id: str
    return_id: str
    store_id: str
    lines: tuple[tuple[str, int], ...]  # (sku id, quantity), distinct SKUs
    reason: str
    actor: Actor

    @property
    def fingerprint(self) -> str:
        """What makes two requests with one return id the same return."""
        body = json.dumps([self.order_id, self.store_id, sorted(self.lines)])
        return hashlib.sha256(body.encode()).hexdigest()[:32]


# -- errors ---------------------------------------------------------------------------------


def exceeds_purchase(index: int, line: OrderLine, requested: int) -> ServiceError:
    left = line.quantity - line.returned_quantity
    return ServiceError(
        grpc.StatusCode.FAILED_PRECONDITION,
        common_pb2.ERROR_REASON_RETURN_EXCEEDS_PURCHASE,
        f"{requested} of {line.sku_id!r} cannot be returned: {line.quantity} bought, "
        f"{line.returned_quantity} returned before, {left} left",
        violations=[FieldViolation(f"lines[{index}].quantity", f"at most {left}")],
        metadata={
            "sku_id": line.sku_id,
            "bought": str(line.quantity),
            "returned": str(line.returned_quantity),
            "requested": str(requested),
        },
    )


def _reused(return_id: str) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.FAILED_PRECONDITION,
        common_pb2.ERROR_REASON_IDEMPOTENCY_KEY_REUSED,
        f"return_id {return_id!r} was already used for a different return",
        violations=[FieldViolation("return_id", "already used for a different return")],
        metadata={"return_id": return_id},
    )


# -- checks ---------------------------------------------------------------------------------


def authorize(actor: Actor, store_id: str) -> None:
    """The receiving store's associates and managers, or an admin."""
    if actor.kind is ActorKind.ADMIN or is_staff_of(actor, [store_id]):
        return
    raise forbidden(
        f"only an associate or manager of store {store_id}, or an admin, may receive a return",
        store_id=store_id,
    )


async def require_returns_store(services: OrderServices, store_id: str) -> None:
    """The store exists, is open and offers returns."""
    try:
        reply = await services.clients.store.GetStore(store_pb2.GetStoreRequest(id=store_id))
    except grpc.aio.AioRpcError as error:
        if error.code() is grpc.StatusCode.NOT_FOUND:
            raise ServiceError(
                grpc.StatusCode.NOT_FOUND,
                common_pb2.ERROR_REASON_NOT_FOUND,
                f"store {store_id!r} not found",
                violations=[FieldViolation("store_id", f"store {store_id!r} not found")],
                metadata={"entity": "store", "id": store_id},
            ) from None
        raise
    store = reply.store
    if store.status != store_pb2.STORE_STATUS_OPEN:
        status = store_pb2.StoreStatus.Name(store.status).removeprefix("STORE_STATUS_").lower()
        raise store_service_unavailable(store_id, "returns", f"is {status.replace('_', ' ')}")
    if RETURNS_SERVICE not in store.services:
        raise store_service_unavailable(store_id, "returns", "does not offer returns")


def _same(recorded: OrderReturn, request: ReturnRequest) -> bool:
    lines = sorted((line.sku_id, line.quantity) for line in recorded.lines)
    return recorded.store_id == request.store_id and lines == sorted(request.lines)


def _recorded(order: Order, request: ReturnRequest) -> OrderReturn | None:
    """The return already recorded under this id (a replay), or None; a different return
    under the id is refused."""
    found = next((r for r in order.returns if r.id == request.return_id), None)
    if found is not None and not _same(found, request):
        raise _reused(request.return_id)
    return found


def _judge(order: Order, request: ReturnRequest) -> list[tuple[int, OrderLine, int, int]]:
    """(line index, line, units, refund) per returned line, or the error that refuses it."""
    if order.status not in FULFILLED_STATUSES:
        raise invalid_state(
            f"order {order.id} is {order.status.value}: only orders picked up, delivered or "
            "sold at the till can be returned",
            order_id=order.id,
            status=order.status.value,
        )
    index_of = {line.sku_id: index for index, line in enumerate(order.lines)}
    unknown = [
        FieldViolation(f"lines[{i}].sku_id", f"{sku!r} is not a line of order {order.id}")
        for i, (sku, _) in enumerate(request.lines)
        if sku not in index_of
    ]
    if unknown:
        raise invalid_argument(*unknown)
    judged = []
    for position, (sku_id, units) in enumerate(request.lines):
        index = index_of[sku_id]
        line = order.lines[index]
        if units > line.quantity - line.returned_quantity:
            raise exceeds_purchase(position, line, units)
        refund = refund_for_units(
            line.paid_amount, line.quantity, line.returned_quantity, line.refunded_amount, units
        )
        judged.append((index, line, units, refund))
    return judged


# -- the write ------------------------------------------------------------------------------


async def _claim(services: OrderServices, request: ReturnRequest, now: datetime) -> None:
    claims = services.repository.database[RETURN_IDS]
    claim = {
        "_id": request.return_id,
        "order_id": request.order_id,
        "fingerprint": request.fingerprint,
        "create_time": now,
    }
    try:
        await claims.insert_one(claim)
    except DuplicateKeyError:
        existing = await claims.find_one({"_id": request.return_id})
        if existing is None or (existing["order_id"], existing["fingerprint"]) != (
            request.order_id,
            request.fingerprint,
        ):
            raise _reused(request.return_id) from None
        # The same request again (a concurrent duplicate, or a retry after a crash before
        # the order was written): the order's write decides.


async def _unclaim(services: OrderServices, request: ReturnRequest) -> None:
    """A refused return gives its id back (only its own claim, never a recorded one)."""
    order = await services.repository.get_order(request.order_id)
    if order is not None and any(r.id == request.return_id for r in order.returns):
        return
    await services.repository.database[RETURN_IDS].delete_one(
        {"_id": request.return_id, "fingerprint": request.fingerprint}
    )


def _changes(
    order: Order,
    request: ReturnRequest,
    judged: Sequence[tuple[int, OrderLine, int, int]],
    now: datetime,
) -> tuple[dict[str, Any], dict[str, list[Any]], list[Effect], OrderReturn]:
    lines = list(order.lines)
    for index, line, units, refund in judged:
        lines[index] = replace(
            line,
            returned_quantity=line.returned_quantity + units,
            refunded_amount=line.refunded_amount + refund,
        )
    amount = sum(refund for *_, refund in judged)
    order_return = OrderReturn(
        id=request.return_id,
        store_id=request.store_id,
        lines=tuple(ReturnLine(line.sku_id, units, refund) for _, line, units, refund in judged),
        refund_amount=amount,
        create_time=now,
        reason=request.reason,
        actor=request.actor,
    )
    fields: dict[str, Any] = {"lines": [line_to_document(line) for line in lines]}
    refunded_before = sum(r.amount for r in order.refunds)
    if (
        order.payment.status is PaymentStatus.PAID
        and order.payment.amount > 0
        and refunded_before + amount >= order.payment.amount
    ):
        fields["payment.status"] = PaymentStatus.REFUNDED.value
    push: dict[str, list[Any]] = {
        "returns": [
            {
                "id": order_return.id,
                "store_id": order_return.store_id,
                "lines": [
                    {"sku_id": r.sku_id, "quantity": r.quantity, "refund_amount": r.refund_amount}
                    for r in order_return.lines
                ],
                "refund_amount": amount,
                "points_clawed_back": 0,
                "reason": request.reason,
                "actor": actor_to_document(request.actor),
                "create_time": now,
            }
        ]
    }
    restock_lines = [{"sku_id": r.sku_id, "quantity": r.quantity} for r in order_return.lines]
    outbox: list[Effect] = [
        new_effect(
            EffectKind.RESTOCK.value,
            now,
            ref=request.return_id,
            data={
                "store_id": request.store_id,
                "actor_id": request.actor.id,
                "lines": restock_lines,
            },
        )
    ]
    if order.member_id:
        outbox.append(
            new_effect(
                EffectKind.RECORD_RETURNED.value,
                now,
                ref=request.return_id,
                data={"refund_amount": amount},
            )
        )
    if amount > 0:
        refund_id = f"{order.id}:return:{request.return_id}"
        push["refunds"] = [
            {
                "id": refund_id,
                "amount": amount,
                "reason": REFUND_REASON,
                "return_id": request.return_id,
                "create_time": now,
                "lines": [
                    {"sku_id": r.sku_id, "quantity": r.quantity, "amount": r.refund_amount}
                    for r in order_return.lines
                ],
            }
        ]
        outbox.append(
            new_effect(
                EffectKind.REFUND.value,
                now,
                ref=refund_id,
                data={
                    "amount": amount,
                    "currency": order.currency,
                    "reason": REFUND_REASON,
                    "return_id": request.return_id,
                    "provider": order.payment.provider,
                    "transaction_id": order.payment.transaction_id,
                },
            )
        )
    return fields, push, outbox, order_return


async def return_items(
    services: OrderServices, request: ReturnRequest
) -> tuple[Order, OrderReturn]:
    """Records the return once (a replay answers it) and delivers its effects."""
    authorize(request.actor, request.store_id)
    order = await services.repository.get_order(request.order_id)
    if order is None:
        raise not_found("order", request.order_id)
    recorded = _recorded(order, request)
    if recorded is not None:
        return order, recorded
    await require_returns_store(services, request.store_id)
    _judge(order, request)  # refuse what is refused before claiming the id
    await _claim(services, request, services.now())
    try:
        for _ in range(RETRIES):
            recorded = _recorded(order, request)
            if recorded is not None:
                return order, recorded
            judged = _judge(order, request)
            now = services.now()
            fields, push, outbox, order_return = _changes(order, request, judged, now)
            condition: dict[str, Any] = {"returns.id": {"$ne": request.return_id}}
            condition.update(
                {
                    f"lines.{index}.returned_quantity": line.returned_quantity
                    for index, line in enumerate(order.lines)
                }
            )
            written = await services.repository.transition(
                order.id,
                [order.status],
                order.status,
                set_fields=fields,
                push_fields=push,
                effects=outbox,
                event_kind=EVENT_RETURNED,
                now=now,
                condition=condition,
            )
            if written is not None:
                delivered = await effects.deliver_now(services, written, [e.id for e in outbox])
                stored = next((r for r in delivered.returns if r.id == request.return_id), None)
                return delivered, stored or order_return
            fresh = await services.repository.get_order(order.id)
            if fresh is None:  # pragma: no cover - orders are never deleted
                raise not_found("order", order.id)
            order = fresh
    except ServiceError:
        await _unclaim(services, request)
        raise
    raise ServiceError(
        grpc.StatusCode.ABORTED,
        common_pb2.ERROR_REASON_IN_PROGRESS,
        f"order {order.id} kept changing under this return; retry with the same return_id",
        metadata={"order_id": order.id, "retry_after_seconds": "1"},
    )
