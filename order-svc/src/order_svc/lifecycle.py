"""Payment, ready for pickup, hand-over, cancel, payment timeout, pickup expiry, shipping.

Every change is one `OrderRepository.transition` conditioned on the status it was judged in
(and, where the decision read more, on those fields too), so two concurrent calls can never
both apply: the loser re-reads and answers from what the winner wrote (a replay answers the
order, anything else a clear error). The effects a transition implies (release or commit
stock, revert points, release or redeem the coupon, completion, refund) are written in that
same update (the outbox); the call then delivers the ones `participants` knows at once, for
latency, and the outbox worker (effects.py) delivers whatever is left, with retries.

Fulfilment changes set the whole `fulfilments` array as read, guarded by the statuses read:
an update pipeline's "fulfilments.<n>.status" is a field named "<n>" in every element on
MongoDB (it indexes the array only on SecantusDB), so positional paths are left out.

The design is order-svc/DESIGN.md, "Payment, pickup, cancel, expiry".
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import grpc

from order_svc import participants
from order_svc.access import SCOPE_DELIVERY
from order_svc.domain import (
    Actor,
    ActorKind,
    Effect,
    EffectKind,
    FulfillmentType,
    Fulfilment,
    FulfilmentStatus,
    Order,
    OrderStatus,
    PaymentStatus,
    new_effect,
)
from order_svc.errors import amount_mismatch, invalid_state
from order_svc.pickup import PickupCodes, codes_match, looks_like_qr, qr_payload, read_qr
from order_svc.repository import actor_to_document, fulfilment_to_document
from order_svc.services import OrderServices
from retail.common.v1 import common_pb2
from retail_kit.apikeys import Principal
from retail_kit.errors import FieldViolation, ServiceError, invalid_argument, not_found

log = logging.getLogger(__name__)

# Orders a job ends per pass (the next pass takes the rest at once: jobs.py loops while busy).
JOB_BATCH = 100
# Orders a job ends at once (each delivers up to three effects to store-svc and member-svc).
JOB_CONCURRENCY = 8
# A transition lost to a concurrent change is judged again from the order as it is now.
RETRIES = 8

STAFF = frozenset({ActorKind.ASSOCIATE, ActorKind.STORE_MANAGER})
# Before hand-over, by who may cancel.
CUSTOMER_CANCELLABLE = frozenset({OrderStatus.AWAITING_PAYMENT, OrderStatus.CONFIRMED})
STORE_CANCELLABLE = frozenset(
    {OrderStatus.AWAITING_PAYMENT, OrderStatus.CONFIRMED, OrderStatus.READY_FOR_PICKUP}
)
# Pickups that are still to be collected (expiry).
UNCOLLECTED = (OrderStatus.CONFIRMED, OrderStatus.READY_FOR_PICKUP)

# end_reason of orders ended here.
END_PAYMENT_TIMEOUT = "payment_timeout"
END_NOT_COLLECTED = "not_collected"


# -- errors ---------------------------------------------------------------------------------


def forbidden(message: str, **metadata: str) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.PERMISSION_DENIED,
        common_pb2.ERROR_REASON_PERMISSION_DENIED,
        message,
        metadata=metadata,
    )


def wrong_code(order_id: str, remaining: int) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.INVALID_ARGUMENT,
        common_pb2.ERROR_REASON_VERIFICATION_FAILED,
        f"the pickup code does not match order {order_id}; {remaining} tries left",
        violations=[FieldViolation("pickup_code", "does not match")],
        metadata={"order_id": order_id, "attempts_remaining": str(remaining)},
    )


def code_locked(order_id: str) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.FAILED_PRECONDITION,
        common_pb2.ERROR_REASON_PICKUP_CODE_LOCKED,
        f"too many wrong pickup codes for order {order_id}: an associate must hand it over "
        "(associate_override with a reason, after checking the customer's ID)",
        metadata={"order_id": order_id},
    )


def _state_error(order: Order, action: str) -> ServiceError:
    return invalid_state(
        f"order {order.id} is {order.status.value}: cannot {action}",
        order_id=order.id,
        status=order.status.value,
    )


# -- actors ---------------------------------------------------------------------------------


def is_staff_of(actor: Actor | None, store_ids: Iterable[str]) -> bool:
    """An associate or store manager acting for one of these stores."""
    return (
        actor is not None
        and actor.kind in STAFF
        and bool(actor.store_id)
        and actor.store_id in set(store_ids)
    )


def is_kiosk_of(actor: Actor | None, store_id: str | None) -> bool:
    return (
        actor is not None
        and actor.kind is ActorKind.KIOSK
        and bool(actor.store_id)
        and actor.store_id == store_id
    )


def require_actor(actor: Actor | None) -> Actor:
    if actor is None or actor.kind is ActorKind.UNSPECIFIED:
        raise invalid_argument(FieldViolation("actor", "is required (kind, id, store)"))
    return actor


# -- shared pieces --------------------------------------------------------------------------


async def _get(services: OrderServices, order_id: str) -> Order:
    order = await services.repository.get_order(order_id)
    if order is None:
        raise not_found("order", order_id)
    return order


def _fulfilments(order: Order, changes: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The whole `fulfilments` array with `changes` (fulfilment id -> fields) applied."""
    documents = []
    for fulfilment in order.fulfilments:
        document = fulfilment_to_document(fulfilment)
        document.update(changes.get(fulfilment.id, {}))
        documents.append(document)
    return documents


def _fulfilments_as_read(order: Order) -> dict[str, Any]:
    """A condition: every fulfilment still has the status it was read with."""
    return {
        f"fulfilments.{index}.status": fulfilment.status.value
        for index, fulfilment in enumerate(order.fulfilments)
    }


async def deliver_now(services: OrderServices, order: Order, effects: Sequence[Effect]) -> None:
    """Delivers the effects `participants` knows (stock, points, coupon) right away; the rest
    (completion, refund) and any failure stay pending for the outbox worker."""
    wanted = {effect.id for effect in effects}
    for effect in order.pending_effects():
        if effect.id in wanted and effect.kind in participants.HANDLERS:
            await participants.deliver(services, order, effect)


@dataclass(frozen=True, slots=True)
class Ending:
    """How an open order ends: the status, why, the event, and who asked."""

    status: OrderStatus
    reason: str
    event_kind: str
    refund_reason: str
    actor: Actor | None = None
    note: str = ""


def _ending_changes(
    order: Order, ending: Ending, now: datetime
) -> tuple[dict[str, Any], dict[str, list[Any]], list[Effect]]:
    """The fields and compensations of ending `order` as read, in the saga's compensation
    order: points reverted, coupon released, stock of each reserved fulfilment released;
    then a paid order refunded."""
    fields: dict[str, Any] = {"end_reason": ending.reason}
    effects: list[Effect] = []
    if order.points is not None and order.points.state == "redeemed":
        effects.append(new_effect(EffectKind.REVERT_POINTS.value, now))
        fields["points.state"] = "reverted"
    if order.coupon is not None and order.coupon.state == "locked":
        effects.append(new_effect(EffectKind.RELEASE_COUPON.value, now, ref=order.coupon.id))
        fields["coupon.state"] = "released"
    released = {
        f.id: {"status": FulfilmentStatus.RELEASED.value}
        for f in order.fulfilments
        if f.status in (FulfilmentStatus.RESERVED, FulfilmentStatus.PENDING)
    }
    for fulfilment in order.fulfilments:
        if fulfilment.status is FulfilmentStatus.RESERVED:
            effects.append(new_effect(EffectKind.RELEASE_STOCK.value, now, ref=fulfilment.id))
    if released:
        fields["fulfilments"] = _fulfilments(order, released)
    push: dict[str, list[Any]] = {}
    if order.payment.status is PaymentStatus.PAID and order.payment.amount > 0:
        refund_id = f"{order.id}:{ending.refund_reason}"
        fields["payment.status"] = PaymentStatus.REFUNDED.value
        push["refunds"] = [
            {
                "id": refund_id,
                "amount": order.payment.amount,
                "reason": ending.refund_reason,
                "return_id": "",
                "create_time": now,
                "lines": [
                    {"sku_id": line.sku_id, "quantity": line.quantity, "amount": line.paid_amount}
                    for line in order.lines
                ],
            }
        ]
        effects.append(
            new_effect(
                EffectKind.REFUND.value,
                now,
                ref=refund_id,
                data={
                    "amount": order.payment.amount,
                    "currency": order.currency,
                    "reason": ending.refund_reason,
                    "provider": order.payment.provider,
                    "transaction_id": order.payment.transaction_id,
                },
            )
        )
    if ending.actor is not None:
        fields["ended_by"] = actor_to_document(ending.actor)
    if ending.note:
        fields["end_note"] = ending.note
    return fields, push, effects


async def _end(
    services: OrderServices,
    order: Order,
    ending: Ending,
    *,
    condition: Mapping[str, Any] | None = None,
) -> Order | None:
    """One transition of `order` (in the status it was read in) to the ending; None when the
    order changed meanwhile. Frees its pickup code and delivers the compensations."""
    now = services.now()
    fields, push, effects = _ending_changes(order, ending, now)
    ended = await services.repository.transition(
        order.id,
        [order.status],
        ending.status,
        set_fields=fields,
        push_fields=push,
        effects=effects,
        event_kind=ending.event_kind,
        now=now,
        condition={**_fulfilments_as_read(order), **(condition or {})},
    )
    if ended is None:
        return None
    await PickupCodes(services.repository.database).free(order.id)
    await deliver_now(services, ended, effects)
    return ended


# -- payment --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PaymentInput:
    order_id: str
    transaction_id: str
    amount: int
    currency: str
    provider: str
    partner_key: str = ""


async def confirm_payment(services: OrderServices, payment: PaymentInput) -> Order:
    """AWAITING_PAYMENT -> CONFIRMED with the payment recorded. The same transaction again
    answers the order unchanged; another transaction for a paid order is refused (never a
    second charge); the amount must be the order's total."""
    order = await _get(services, payment.order_id)
    if not payment.currency:
        payment = replace(payment, currency=order.currency)
    for _ in range(RETRIES):
        recorded = order.payment
        if recorded.transaction_id and recorded.status in (
            PaymentStatus.PAID,
            PaymentStatus.REFUNDED,
        ):
            if (recorded.transaction_id, recorded.provider) != (
                payment.transaction_id,
                payment.provider,
            ):
                raise invalid_state(
                    f"order {order.id} is already paid by another transaction",
                    order_id=order.id,
                    status=order.status.value,
                )
            if (payment.amount, payment.currency) != (recorded.amount, order.currency):
                raise amount_mismatch(
                    "amount.amount", recorded.amount, payment.amount, order.currency
                )
            return order  # a replay
        if order.status is not OrderStatus.AWAITING_PAYMENT:
            raise _state_error(order, "confirm a payment")
        if payment.currency != order.currency or payment.amount != order.total:
            error = amount_mismatch("amount.amount", order.total, payment.amount, order.currency)
            error.metadata["given_currency"] = payment.currency
            raise error
        now = services.now()
        paid = await services.repository.transition(
            order.id,
            [OrderStatus.AWAITING_PAYMENT],
            OrderStatus.CONFIRMED,
            set_fields={
                "payment.status": PaymentStatus.PAID.value,
                "payment.provider": payment.provider,
                "payment.transaction_id": payment.transaction_id,
                "payment.amount": payment.amount,
                "payment.paid_time": now,
                "payment.partner_key": payment.partner_key,
            },
            event_kind="paid",
            now=now,
            condition={"payment.status": PaymentStatus.PENDING.value},
        )
        if paid is not None:
            return paid
        order = await _get(services, order.id)
    raise _contended(order.id)


def _contended(order_id: str) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.ABORTED,
        common_pb2.ERROR_REASON_IN_PROGRESS,
        f"order {order_id} kept changing under this call; retry",
        metadata={"order_id": order_id, "retry_after_seconds": "1"},
    )


# -- ready for pickup -----------------------------------------------------------------------


async def mark_ready(
    services: OrderServices, order_id: str, actor: Actor, associate_id: str
) -> Order:
    """CONFIRMED pickup -> READY_FOR_PICKUP with a pickup code and its signed QR payload;
    an associate or manager of the order's store only; a replay answers the same code."""
    order = await _get(services, order_id)
    if not is_staff_of(actor, [order.store_id or ""]):
        raise forbidden(
            f"only an associate or manager of store {order.store_id} may mark order "
            f"{order.id} ready",
            order_id=order.id,
            store_id=order.store_id or "",
        )
    if order.fulfillment is not FulfillmentType.PICKUP_IN_STORE or order.pickup is None:
        raise invalid_state(
            f"order {order.id} is not a pickup order", order_id=order.id, status=order.status.value
        )
    if order.status is OrderStatus.READY_FOR_PICKUP:
        return order
    if order.status is not OrderStatus.CONFIRMED:
        raise _state_error(order, "mark it ready for pickup")
    store_id = order.store_id or ""
    codes = PickupCodes(services.repository.database)
    now = services.now()

    async def is_open(holder: str) -> bool:
        held = await services.repository.get_order(holder)
        return held is not None and held.status in UNCOLLECTED

    code = await codes.claim(store_id, order.id, now, is_open)
    secret = services.settings.pickup_secret
    ready = await services.repository.transition(
        order.id,
        [OrderStatus.CONFIRMED],
        OrderStatus.READY_FOR_PICKUP,
        set_fields={
            "pickup.code": code,
            "pickup.qr_payload": qr_payload(secret, order.id, store_id, code),
            "pickup.ready_time": now,
            "pickup.prepared_by": actor_to_document(actor),
            "pickup.prepared_by_associate": associate_id or actor.id,
        },
        event_kind="ready_for_pickup",
        now=now,
    )
    if ready is not None:
        return ready
    fresh = await _get(services, order.id)
    if fresh.status is OrderStatus.READY_FOR_PICKUP:
        return fresh  # a concurrent call marked it, with the same claimed code
    await codes.free(order.id)
    raise _state_error(fresh, "mark it ready for pickup")


# -- hand-over ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CounterPayment:
    provider: str
    transaction_id: str
    amount: int
    currency: str


@dataclass(frozen=True, slots=True)
class HandOver:
    order_id: str
    code: str
    actor: Actor
    override: bool = False
    override_reason: str = ""
    counter_payment: CounterPayment | None = None


def _is_locked(order: Order, limit: int) -> bool:
    pickup = order.pickup
    return pickup is not None and (pickup.code_locked or pickup.wrong_code_attempts >= limit)


def _code_of(request: HandOver, order: Order, secret: str) -> str:
    """The 6-digit code given, or the code inside a QR payload signed for this order (a
    payload that is not is a wrong code)."""
    given = request.code.strip()
    if looks_like_qr(given):
        payload = read_qr(secret, given)
        if payload is None or payload.order_id != order.id or payload.store_id != order.store_id:
            return ""
        return payload.code
    return given


async def confirm_pickup(services: OrderServices, request: HandOver) -> Order:
    """READY_FOR_PICKUP -> PICKED_UP after the code (or an associate's override), with
    effects [commit stock, redeem coupon, completion]; a replay answers the order."""
    settings = services.settings
    limit = settings.max_pickup_code_attempts
    order = await _get(services, request.order_id)
    actor = request.actor
    staff = is_staff_of(actor, [order.store_id or ""])
    kiosk = is_kiosk_of(actor, order.store_id)
    if not (staff or kiosk):
        raise forbidden(
            f"only an associate or a kiosk of store {order.store_id} may hand over order "
            f"{order.id}",
            order_id=order.id,
            store_id=order.store_id or "",
        )
    if order.fulfillment is not FulfillmentType.PICKUP_IN_STORE or order.pickup is None:
        raise invalid_state(
            f"order {order.id} is not a pickup order", order_id=order.id, status=order.status.value
        )
    if request.override and not staff:
        raise forbidden("only an associate may hand over without the code", order_id=order.id)
    if request.override and not request.override_reason.strip():
        raise invalid_argument(
            FieldViolation("override_reason", "is required with associate_override")
        )
    code = "" if request.override else _code_of(request, order, settings.pickup_secret)
    if order.status is OrderStatus.PICKED_UP:
        if request.override or codes_match(code, order.pickup.code):
            return order  # a replay
        raise _state_error(order, "hand it over again")
    if order.status is not OrderStatus.READY_FOR_PICKUP:
        raise _state_error(order, "hand it over")
    counter = request.counter_payment
    pay_here = order.payment.status is PaymentStatus.PAY_AT_PICKUP
    if pay_here:
        if kiosk:
            raise forbidden(
                f"order {order.id} is paid at the counter: an associate hands it over",
                order_id=order.id,
                payment_status=order.payment.status.value,
            )
        if counter is None:
            raise invalid_argument(
                FieldViolation("counter_payment", "is required: the order is paid at pickup")
            )
        if counter.amount != order.total or (counter.currency or order.currency) != order.currency:
            raise amount_mismatch(
                "counter_payment.amount.amount", order.total, counter.amount, order.currency
            )
    elif counter is not None:
        raise invalid_state(
            f"order {order.id} is already paid ({order.payment.status.value}): "
            "no counter payment is taken",
            order_id=order.id,
            payment_status=order.payment.status.value,
        )
    if not request.override:
        if _is_locked(order, limit):
            raise code_locked(order.id)
        if not codes_match(code, order.pickup.code):
            raise await _count_wrong_code(services, order, limit)
    return await _hand_over(services, order, request, pay_here)


async def _count_wrong_code(services: OrderServices, order: Order, limit: int) -> ServiceError:
    """Counts one wrong code (atomically, never past the limit) and answers the error."""
    repository = services.repository
    now = services.now()
    open_code = {
        "status": OrderStatus.READY_FOR_PICKUP.value,
        "pickup.code_locked": False,
        "pickup.wrong_code_attempts": {"$lt": limit},
    }
    counted = await repository.update(
        order.id,
        condition=open_code,
        set_fields={},
        inc_fields={"pickup.wrong_code_attempts": 1},
        now=now,
    )
    fresh = await _get(services, order.id)
    if not counted and fresh.status is not OrderStatus.READY_FOR_PICKUP:
        return _state_error(fresh, "hand it over")
    assert fresh.pickup is not None
    attempts = fresh.pickup.wrong_code_attempts
    if attempts >= limit:
        if not fresh.pickup.code_locked:
            await repository.update(
                order.id,
                condition={
                    "pickup.code_locked": False,
                    "pickup.wrong_code_attempts": {"$gte": limit},
                },
                set_fields={"pickup.code_locked": True},
                now=now,
            )
        return code_locked(order.id)
    return wrong_code(order.id, limit - attempts)


async def _hand_over(
    services: OrderServices, order: Order, request: HandOver, pay_here: bool
) -> Order:
    now = services.now()
    limit = services.settings.max_pickup_code_attempts
    assert order.pickup is not None
    fields: dict[str, Any] = {
        "pickup.picked_up_time": now,
        "pickup.handed_over_by": actor_to_document(request.actor),
        "pickup.override_reason": request.override_reason.strip() if request.override else "",
        "fulfilments": _fulfilments(
            order,
            {
                f.id: {"status": FulfilmentStatus.DELIVERED.value}
                for f in order.fulfilments
                if f.status is FulfilmentStatus.RESERVED
            },
        ),
    }
    condition: dict[str, Any] = {
        **_fulfilments_as_read(order),
        "pickup.code": order.pickup.code,
        "payment.status": order.payment.status.value,
    }
    if not request.override:
        condition["pickup.code_locked"] = False
        condition["pickup.wrong_code_attempts"] = {"$lt": limit}
    effects = [
        new_effect(EffectKind.COMMIT_STOCK.value, now, ref=f.id)
        for f in order.fulfilments
        if f.status is FulfilmentStatus.RESERVED
    ]
    if order.coupon is not None and order.coupon.state == "locked":
        fields["coupon.state"] = "redeemed"
        effects.append(new_effect(EffectKind.REDEEM_COUPON.value, now, ref=order.coupon.id))
    if order.member_id is not None:
        effects.append(new_effect(EffectKind.RECORD_COMPLETED.value, now))
    counter = request.counter_payment
    if pay_here and counter is not None:
        fields.update(
            {
                "payment.status": PaymentStatus.PAID.value,
                "payment.provider": counter.provider or "counter",
                "payment.transaction_id": counter.transaction_id,
                "payment.amount": counter.amount,
                "payment.paid_time": now,
            }
        )
    handed = await services.repository.transition(
        order.id,
        [OrderStatus.READY_FOR_PICKUP],
        OrderStatus.PICKED_UP,
        set_fields=fields,
        effects=effects,
        event_kind="picked_up",
        now=now,
        condition=condition,
    )
    if handed is None:
        fresh = await _get(services, order.id)
        if fresh.status is OrderStatus.PICKED_UP:
            return fresh  # a concurrent hand-over of the same order
        if fresh.status is OrderStatus.READY_FOR_PICKUP and _is_locked(fresh, limit):
            raise code_locked(order.id)
        raise _state_error(fresh, "hand it over")
    await PickupCodes(services.repository.database).free(order.id)
    await deliver_now(services, handed, effects)
    return handed


# -- cancel ---------------------------------------------------------------------------------


async def cancel_order(services: OrderServices, order_id: str, actor: Actor, note: str) -> Order:
    """-> CANCELLED with [release stock, revert points, release coupon, refund if paid].
    The customer (the order's member) before READY_FOR_PICKUP; the store's associates and
    managers, and admins, before hand-over. Cancelling a cancelled order answers it."""
    order = await _get(services, order_id)
    for _ in range(RETRIES):
        if actor.kind is ActorKind.CUSTOMER and actor.id and actor.id == order.member_id:
            who, allowed = "customer", CUSTOMER_CANCELLABLE
        elif is_staff_of(actor, order.store_ids):
            who, allowed = "store", STORE_CANCELLABLE
        elif actor.kind is ActorKind.ADMIN:
            who, allowed = "admin", STORE_CANCELLABLE
        else:
            raise forbidden(
                f"{actor.kind.value} {actor.id!r} may not cancel order {order.id}",
                order_id=order.id,
            )
        if order.status is OrderStatus.CANCELLED:
            return order
        if order.status not in allowed:
            if who == "customer" and order.status is OrderStatus.READY_FOR_PICKUP:
                raise invalid_state(
                    f"order {order.id} is ready for pickup: only the store can cancel it now",
                    order_id=order.id,
                    status=order.status.value,
                )
            raise _state_error(order, "cancel it")
        ending = Ending(OrderStatus.CANCELLED, who, "cancelled", "cancelled", actor, note)
        ended = await _end(services, order, ending)
        if ended is not None:
            return ended
        order = await _get(services, order.id)
    raise _contended(order.id)


# -- jobs -----------------------------------------------------------------------------------


async def _end_due(
    services: OrderServices, due: Sequence[Order], ending: Ending, time_field: str, now: datetime
) -> int:
    slots = asyncio.Semaphore(JOB_CONCURRENCY)

    async def end(order: Order) -> int:
        try:
            async with slots:
                ended = await _end(services, order, ending, condition={time_field: {"$lte": now}})
        except Exception:
            log.exception("order %s: could not end as %s", order.id, ending.reason)
            return 0
        return 1 if ended is not None else 0

    return sum(await asyncio.gather(*(end(order) for order in due)))


async def payment_timeout_job(services: OrderServices, now: datetime) -> int:
    """Cancels AWAITING_PAYMENT orders past their payment deadline (end_reason
    payment_timeout), releasing stock, points and coupon; returns how many."""
    field = "payment.deadline_time"
    due = await services.repository.find_due(OrderStatus.AWAITING_PAYMENT, field, now, JOB_BATCH)
    ending = Ending(OrderStatus.CANCELLED, END_PAYMENT_TIMEOUT, "cancelled", END_PAYMENT_TIMEOUT)
    return await _end_due(services, due, ending, field, now)


async def pickup_expiry_job(services: OrderServices, now: datetime) -> int:
    """Expires pickups not collected by their hold end (CONFIRMED or READY_FOR_PICKUP past
    pickup.hold_until_time), releasing and refunding; returns how many."""
    field = "pickup.hold_until_time"
    ending = Ending(OrderStatus.EXPIRED, END_NOT_COLLECTED, "expired", "expired")
    done = 0
    for status in UNCOLLECTED:
        due = await services.repository.find_due(status, field, now, JOB_BATCH)
        pickups = [o for o in due if o.fulfillment is FulfillmentType.PICKUP_IN_STORE]
        done += await _end_due(services, pickups, ending, field, now)
    return done


# -- shipping -------------------------------------------------------------------------------


def _fulfilment(order: Order, fulfilment_id: str) -> tuple[int, Fulfilment]:
    for index, fulfilment in enumerate(order.fulfilments):
        if fulfilment.id == fulfilment_id:
            return index, fulfilment
    raise not_found("fulfilment", fulfilment_id)


def authorize_shipping(
    order: Order, fulfilment: Fulfilment, actor: Actor | None, partner: Principal | None
) -> None:
    """The shipping store's associates and managers, admins, or a delivery partner (an API
    key with scope order.delivery) may move a delivery fulfilment."""
    if partner is not None and partner.has_scope(SCOPE_DELIVERY):
        return
    if is_staff_of(actor, [fulfilment.store_id]):
        return
    if actor is not None and actor.kind is ActorKind.ADMIN:
        return
    raise forbidden(
        f"only store {fulfilment.store_id}'s staff, an admin or a delivery partner (scope "
        f"{SCOPE_DELIVERY}) may move fulfilment {fulfilment.id} of order {order.id}",
        order_id=order.id,
        store_id=fulfilment.store_id,
        required_scope=SCOPE_DELIVERY,
    )


def _require_delivery(order: Order) -> None:
    if order.fulfillment is not FulfillmentType.DELIVERY:
        raise invalid_state(
            f"order {order.id} is not a delivery order",
            order_id=order.id,
            status=order.status.value,
        )


@dataclass(frozen=True, slots=True)
class Shipping:
    order_id: str
    fulfilment_id: str
    actor: Actor | None
    partner: Principal | None
    carrier: str = ""
    tracking_number: str = ""


async def mark_shipped(services: OrderServices, request: Shipping) -> Order:
    """A reserved fulfilment of a CONFIRMED/SHIPPED delivery -> shipped (its stock committed);
    the order SHIPPED. Shipping a shipped fulfilment again answers the order."""
    order = await _get(services, request.order_id)
    fulfilment_id = request.fulfilment_id
    _require_delivery(order)
    authorize_shipping(order, _fulfilment(order, fulfilment_id)[1], request.actor, request.partner)
    for _ in range(RETRIES):
        _, fulfilment = _fulfilment(order, fulfilment_id)
        if fulfilment.status in (FulfilmentStatus.SHIPPED, FulfilmentStatus.DELIVERED):
            return order
        if (
            order.status not in (OrderStatus.CONFIRMED, OrderStatus.SHIPPED)
            or fulfilment.status is not FulfilmentStatus.RESERVED
        ):
            raise _state_error(order, f"ship fulfilment {fulfilment_id}")
        now = services.now()
        changes = {
            fulfilment_id: {
                "status": FulfilmentStatus.SHIPPED.value,
                "carrier": request.carrier,
                "tracking_number": request.tracking_number,
                "shipped_time": now,
            }
        }
        effect = new_effect(EffectKind.COMMIT_STOCK.value, now, ref=fulfilment_id)
        shipped = await services.repository.transition(
            order.id,
            [order.status],
            OrderStatus.SHIPPED,
            set_fields={"fulfilments": _fulfilments(order, changes)},
            effects=[effect],
            event_kind="shipped",
            now=now,
            condition=_fulfilments_as_read(order),
        )
        if shipped is not None:
            await deliver_now(services, shipped, [effect])
            return shipped
        order = await _get(services, order.id)
    raise _contended(order.id)


async def mark_delivered(services: OrderServices, request: Shipping) -> Order:
    """A shipped fulfilment -> delivered; the last one makes the order DELIVERED with effects
    [redeem coupon, completion]. Delivering a delivered fulfilment again answers the order."""
    order = await _get(services, request.order_id)
    fulfilment_id = request.fulfilment_id
    _require_delivery(order)
    authorize_shipping(order, _fulfilment(order, fulfilment_id)[1], request.actor, request.partner)
    for _ in range(RETRIES):
        _, fulfilment = _fulfilment(order, fulfilment_id)
        if fulfilment.status is FulfilmentStatus.DELIVERED:
            return order
        if order.status is not OrderStatus.SHIPPED or fulfilment.status is not (
            FulfilmentStatus.SHIPPED
        ):
            raise _state_error(order, f"deliver fulfilment {fulfilment_id} (not shipped)")
        now = services.now()
        changes = {
            fulfilment_id: {"status": FulfilmentStatus.DELIVERED.value, "delivered_time": now}
        }
        last = all(
            f.status is FulfilmentStatus.DELIVERED
            for f in order.fulfilments
            if f.id != fulfilment_id
        )
        fields: dict[str, Any] = {"fulfilments": _fulfilments(order, changes)}
        effects: list[Effect] = []
        if last:
            if order.coupon is not None and order.coupon.state == "locked":
                fields["coupon.state"] = "redeemed"
                effects.append(new_effect(EffectKind.REDEEM_COUPON.value, now, ref=order.coupon.id))
            if order.member_id is not None:
                effects.append(new_effect(EffectKind.RECORD_COMPLETED.value, now))
        delivered = await services.repository.transition(
            order.id,
            [OrderStatus.SHIPPED],
            OrderStatus.DELIVERED if last else OrderStatus.SHIPPED,
            set_fields=fields,
            effects=effects,
            event_kind="delivered" if last else "fulfilment_delivered",
            now=now,
            condition=_fulfilments_as_read(order),
        )
        if delivered is not None:
            await deliver_now(services, delivered, effects)
            return delivered
        order = await _get(services, order.id)
    raise _contended(order.id)
