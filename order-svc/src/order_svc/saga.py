"""PlaceOrder as a saga whose progress lives in the order document.

1. The idempotency key is claimed (`idempotency_keys`, insert wins): one execution per key.
2. quote (no side effects): member tier, catalog prices, store checks, the fulfilment plan.
   A refusal here is recorded on the key (no order is created) and replayed as is.
3. The order is inserted PENDING with `saga {step, state: running, owner, lease_until}`.
4. Steps, each one idempotent call by order id whose result is written (compare-and-set on
   saga owner + step) before the next starts: coupon (LockCoupon) -> points (RedeemPoints)
   -> stock (ReserveStock per fulfilment) -> confirm (one `transition` to AWAITING_PAYMENT,
   CONFIRMED, or COMPLETED at the till).
5. A refusal at a step: one `transition` to FAILED that records the error and the
   compensations (release stock, revert points, release coupon: the reverse of the steps
   done) as effects; they are delivered at once and marked done, and the saga ends
   `compensated`. PlaceOrder answers the step's error; a replay answers the same.

A step whose call failed in a way a retry may fix (service unreachable) leaves the saga
running and gives its lease up: a retry of the same key, or the recovery job on any replica,
takes it over and re-runs the step (idempotent in the service called), which also tells
whether the lost call had been applied. A saga found stopped after the saga deadline re-runs
its current step the same way, then compensates instead of continuing (except a saga that
only has to confirm: everything is held, so it confirms).

`ORDER_TEST_CRASH_AT=<point>` (tests only) makes the process SIGKILL itself at that point.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import secrets
import signal
import time
from dataclasses import replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import grpc
from pymongo.errors import DuplicateKeyError

from order_svc import participants
from order_svc.convert import CHANNEL_TO_PROTO
from order_svc.domain import (
    COMPENSATION_KINDS,
    Effect,
    EffectKind,
    EffectState,
    FulfillmentType,
    Fulfilment,
    FulfilmentStatus,
    Order,
    OrderCoupon,
    OrderPoints,
    OrderStatus,
    Payment,
    PaymentStatus,
    Pickup,
    Saga,
    SagaState,
    SagaStep,
    apply_discounts,
    new_effect,
    order_totals,
)
from order_svc.errors import (
    amount_mismatch,
    in_progress,
    key_reused,
    relay,
    saga_error_from_service_error,
    service_error_from_saga_error,
    unavailable,
)
from order_svc.pricing import (
    PlaceInput,
    Quote,
    Transient,
    coupon_shares,
    evaluate_coupon,
    evaluation_lines,
    quote,
    rpc,
    validate,
)
from order_svc.repository import (
    IdempotencyKey,
    apply_set,
    fulfilment_to_document,
    line_to_document,
    order_from_document,
    order_to_document,
    saga_error_to_document,
)
from order_svc.services import OrderServices
from retail.common.v1 import common_pb2
from retail.member.v1 import member_pb2
from retail.order.v1 import order_pb2
from retail.store.v1 import store_pb2
from retail_kit.errors import FieldViolation, ServiceError

log = logging.getLogger(__name__)

CRASH_ENV = "ORDER_TEST_CRASH_AT"
_CRASH_AT = os.environ.get(CRASH_ENV, "")
# "<key>=<point>,...": those orders stop at their points (tests then kill -9 the process).
_HOLD = dict(item.split("=", 1) for item in _CRASH_AT.split(",") if "=" in item)

RECOVERY_BATCH = 50
POLL_FIRST_SECONDS = 0.02
POLL_MAX_SECONDS = 0.2


async def crashpoint(name: str, key: str) -> None:
    """Tests only (ORDER_TEST_CRASH_AT; never set in production). "<point>": the process
    SIGKILLs itself when any order reaches that point. "<key>=<point>,...": each listed
    order stops for good at its point and logs "crash point <point> reached by <key>", so a
    test can bring many orders to their points in one process, then kill -9 it."""
    if not _CRASH_AT:
        return
    if _HOLD:
        if _HOLD.get(key) == name:
            log.warning("crash point %s reached by %s", name, key)
            await asyncio.Event().wait()
        return
    if name == _CRASH_AT:
        log.warning("%s=%s: killing this process", CRASH_ENV, name)
        os.kill(os.getpid(), signal.SIGKILL)


def new_owner() -> str:
    return secrets.token_hex(8)


def new_order_id() -> str:
    return "o_" + secrets.token_hex(13)


def fingerprint(request: order_pb2.PlaceOrderRequest) -> str:
    """The request without its key: the same key with another request is a reuse."""
    copy = order_pb2.PlaceOrderRequest()
    copy.CopyFrom(request)
    copy.idempotency_key = ""
    return hashlib.sha256(copy.SerializeToString(deterministic=True)).hexdigest()[:32]


def key_scope(order: PlaceInput) -> str:
    """Whose keys a key is unique among: the member's, or the store's at the till."""
    if order.fulfillment is FulfillmentType.IN_STORE_PURCHASE:
        return f"store:{order.store_id}"
    return f"member:{order.member_id}"


def first_step(order: Order) -> SagaStep:
    return SagaStep.STOCK


def step_after(order: Order, step: SagaStep) -> SagaStep:
    """stock -> coupon (if any) -> points (if any) -> confirm."""
    if step is SagaStep.STOCK and order.coupon is not None:
        return SagaStep.COUPON
    if step in (SagaStep.STOCK, SagaStep.COUPON) and order.points is not None:
        return SagaStep.POINTS
    if step in (SagaStep.STOCK, SagaStep.COUPON, SagaStep.POINTS):
        return SagaStep.CONFIRM
    return SagaStep.FINISHED


def end_reason(error: ServiceError) -> str:
    return (error.reason if error.reason != "UNSPECIFIED" else error.code.name).lower()


def answer(order: Order) -> Order:
    """What PlaceOrder answers for an order whose saga left `running`."""
    if order.status is OrderStatus.FAILED and order.saga and order.saga.error:
        raise service_error_from_saga_error(order.saga.error)
    return order


class _Lost(Exception):
    """Another executor owns the saga now (it took over after our lease passed)."""


def build_order(
    key: IdempotencyKey,
    request_key: str,
    order: PlaceInput,
    priced: Quote,
    settings_lease: timedelta,
    now: datetime,
) -> Order:
    """The PENDING order as inserted after the quote."""
    order_id = key.order_id
    single = len(priced.fulfilments) == 1
    fulfilments = tuple(
        Fulfilment(
            id=f"f{number}",
            store_id=planned.store_id,
            reservation_id=order_id if single else f"{order_id}:{number}",
            status=FulfilmentStatus.PENDING,
            hold_until=planned.hold_until,
        )
        for number, planned in enumerate(priced.fulfilments, start=1)
    )
    till = order.till_payment
    payment = Payment(
        status=PaymentStatus.PAY_AT_PICKUP if order.pay_at_pickup else PaymentStatus.PENDING,
        provider=till.provider if till else "",
        transaction_id=till.transaction_id if till else "",
        amount=till.amount if till else 0,
    )
    totals = order_totals(priced.lines)
    draft = Order(
        id=order_id,
        member_id=order.member_id,
        channel=order.channel,
        fulfillment=order.fulfillment,
        store_id=order.store_id or priced.store_id,
        lines=priced.lines,
        status=OrderStatus.PENDING,
        create_time=now,
        update_time=now,
        currency=priced.currency,
        idempotency_key=request_key,
        request_fingerprint=key.fingerprint,
        delivery_address=order.delivery_address,
        associate_id=order.associate_id,
        actor=order.actor,
        fulfilments=fulfilments,
        coupon=(
            OrderCoupon(id=order.coupon_id, code=order.coupon_code, state="pending")
            if order.has_coupon
            else None
        ),
        points=OrderPoints(order.redeem_points, state="pending") if order.redeem_points else None,
        subtotal=totals.subtotal,
        total=totals.total,
        payment=payment,
        pickup=(
            Pickup(ready_by_time=priced.ready_by, hold_until_time=priced.hold_until_time)
            if order.fulfillment is FulfillmentType.PICKUP_IN_STORE
            else None
        ),
    )
    saga = Saga(
        step=first_step(draft),
        state=SagaState.RUNNING,
        lease_until=now + settings_lease,
        owner=key.owner,
    )
    return replace(draft, saga=saga)


def _totals_fields(order: Order, lines: tuple[Any, ...]) -> dict[str, Any]:
    totals = order_totals(lines)
    return {
        "lines": [line_to_document(line) for line in lines],
        "subtotal": totals.subtotal,
        "coupon_discount": totals.coupon_discount,
        "points_discount": totals.points_discount,
        "total": totals.total,
    }


class SagaRunner:
    """Drives one order's saga as its current owner."""

    def __init__(self, services: OrderServices, order: Order) -> None:
        assert order.saga is not None
        self.services = services
        self.order = order
        self.owner = order.saga.owner

    @property
    def _saga(self) -> Saga:
        assert self.order.saga is not None
        return self.order.saga

    def _lease_until(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self.services.settings.saga_lease_seconds)

    async def run(self, *, expire: bool = False) -> Order:
        """Runs the remaining steps (or, with `expire`, only the current one, then
        compensates) and the compensations; returns the order as it ended. Raises
        Transient (the saga stays running, lease given up) or _Lost."""
        try:
            while self._saga.state is SagaState.RUNNING:
                step = self._saga.step
                try:
                    if step is SagaStep.COUPON:
                        await self._coupon()
                    elif step is SagaStep.POINTS:
                        await self._points()
                    elif step is SagaStep.STOCK:
                        await self._stock()
                    elif step is SagaStep.CONFIRM:
                        await self._confirm()
                    else:  # pragma: no cover - FINISHED is never running
                        break
                except ServiceError as refusal:
                    await self._fail(refusal)
                    break
                if (
                    expire
                    and self._saga.state is SagaState.RUNNING
                    and self._saga.step is not SagaStep.CONFIRM
                ):
                    await self._fail(self._timeout())
        except Transient:
            await self._give_up_lease()
            raise
        if self._saga.state is SagaState.COMPENSATING:
            await self.compensate()
        return self.order

    def _timeout(self) -> ServiceError:
        seconds = self.services.settings.saga_deadline_seconds
        return ServiceError(
            grpc.StatusCode.DEADLINE_EXCEEDED,
            common_pb2.ERROR_REASON_UNSPECIFIED,
            f"placing order {self.order.id} did not finish within {seconds:g} s; "
            "nothing is held and nothing was charged",
            metadata={"order_id": self.order.id},
        )

    async def _give_up_lease(self) -> None:
        await self.services.repository.update(
            self.order.id,
            condition={"saga.owner": self.owner, "saga.state": self._saga.state.value},
            set_fields={"saga.lease_until": self.services.now()},
            now=self.services.now(),
        )

    async def _reload(self) -> None:
        fresh = await self.services.repository.get_order(self.order.id)
        if fresh is None:  # pragma: no cover - orders are never deleted
            raise _Lost
        self.order = fresh

    async def _record(self, step: SagaStep, fields: dict[str, Any], next_step: SagaStep) -> None:
        now = self.services.now()
        applied = await self.services.repository.update(
            self.order.id,
            condition={
                "saga.owner": self.owner,
                "saga.step": step.value,
                "saga.state": SagaState.RUNNING.value,
            },
            set_fields={
                **fields,
                "saga.step": next_step.value,
                "saga.lease_until": self._lease_until(now),
            },
            now=now,
        )
        if not applied:
            raise _Lost
        document = order_to_document(self.order)
        apply_set(document, {**fields, "saga.step": next_step.value, "update_time": now})
        document["saga"]["lease_until"] = self._lease_until(now)
        document["version"] += 1
        self.order = order_from_document(document)

    # -- the steps ---------------------------------------------------------------------------

    async def _coupon(self) -> None:
        order = self.order
        coupon = order.coupon
        assert coupon is not None and order.member_id is not None
        coupon_id = coupon.id
        if not coupon_id:
            coupon_id = await self._coupon_by_code(coupon.code)
        lock_until = max(f.hold_until for f in order.fulfilments if f.hold_until is not None)
        request = member_pb2.LockCouponRequest(
            coupon_id=coupon_id,
            member_id=order.member_id,
            order_id=order.id,
            lines=evaluation_lines(order.lines, order.currency),
            channel=CHANNEL_TO_PROTO[order.channel],
            store_id=order.store_id or "",
            with_points=order.points is not None,
        )
        request.lock_until.FromDatetime(lock_until)
        try:
            reply = await rpc("member", lambda: self.services.clients.member.LockCoupon(request))
        except grpc.aio.AioRpcError as error:
            field = "coupon_code" if coupon.code and not coupon.id else "coupon_id"
            raise relay(
                error,
                service="member",
                violations=(FieldViolation(field, error.details() or "refused"),),
            ) from None
        await crashpoint("coupon", self.order.idempotency_key)
        shares = coupon_shares(order.lines, reply.discount.amount, reply.line_discounts)
        lines = apply_discounts(order.lines, shares, 0)
        await self._record(
            SagaStep.COUPON,
            {
                "coupon": {
                    "id": coupon_id,
                    "code": coupon.code or reply.coupon.code,
                    "discount": sum(shares),
                    "state": "locked",
                },
                **_totals_fields(order, lines),
            },
            step_after(order, SagaStep.COUPON),
        )

    async def _coupon_by_code(self, code: str) -> str:
        order = self.order
        assert order.member_id is not None
        lookup = PlaceInput(
            member_id=order.member_id,
            channel=order.channel,
            fulfillment=order.fulfillment,
            store_id=order.store_id,
            lines=tuple((line.sku_id, line.quantity) for line in order.lines),
            coupon_code=code,
        )
        priced = Quote("", order.currency, order.lines, ())
        evaluation = await evaluate_coupon(self.services, lookup, priced)
        return evaluation.coupon.id

    async def _points(self) -> None:
        order = self.order
        points = order.points
        assert points is not None and order.member_id is not None
        after_coupon = order.subtotal - order.coupon_discount
        request = member_pb2.RedeemPointsRequest(
            member_id=order.member_id,
            points=points.requested,
            reference=order.id,
            order_amount=common_pb2.Money(amount=after_coupon, currency=order.currency),
        )
        try:
            reply = await rpc("member", lambda: self.services.clients.member.RedeemPoints(request))
        except grpc.aio.AioRpcError as error:
            raise relay(
                error,
                service="member",
                violations=(FieldViolation("redeem_points", error.details() or "refused"),),
            ) from None
        await crashpoint("points", self.order.idempotency_key)
        redeemed = -reply.entry.delta if reply.entry.delta < 0 else points.requested
        value = reply.value.amount
        recorded = {
            "requested": points.requested,
            "redeemed": redeemed,
            "value": value,
            "state": "redeemed",
        }
        if value > after_coupon:
            # member-svc gave more than is left to pay: keep the redemption on record, so
            # the compensation gives it back, and refuse.
            await self._record(SagaStep.POINTS, {"points": recorded}, SagaStep.POINTS)
            raise ServiceError(
                grpc.StatusCode.FAILED_PRECONDITION,
                common_pb2.ERROR_REASON_INSUFFICIENT_POINTS,
                f"points worth {value} exceed the {after_coupon} left to pay",
                violations=[FieldViolation("redeem_points", "worth more than the order")],
            )
        shares = [line.coupon_discount for line in order.lines]
        lines = apply_discounts(order.lines, shares, value)
        await self._record(
            SagaStep.POINTS,
            {"points": recorded, **_totals_fields(order, lines)},
            step_after(order, SagaStep.POINTS),
        )

    async def _stock(self) -> None:
        order = self.order
        for index, fulfilment in enumerate(order.fulfilments):
            if fulfilment.status is FulfilmentStatus.RESERVED:
                continue
            lines = order.lines_of(fulfilment.id)
            request = store_pb2.ReserveStockRequest(
                order_id=fulfilment.reservation_id,
                store_id=fulfilment.store_id,
                lines=[
                    store_pb2.ReservationLine(sku_id=line.sku_id, quantity=line.quantity)
                    for line in lines
                ],
            )
            if fulfilment.hold_until is not None:
                request.hold_until.FromDatetime(fulfilment.hold_until)
            store = self.services.clients.store
            try:
                await rpc("store", partial(store.ReserveStock, request))
            except grpc.aio.AioRpcError as error:
                raise self._stock_refusal(error, fulfilment) from None
            await crashpoint("stock", self.order.idempotency_key)
            last = all(
                f.status is FulfilmentStatus.RESERVED
                for f in order.fulfilments
                if f.id != fulfilment.id
            )
            await self._record(
                SagaStep.STOCK,
                {f"fulfilments.{index}.status": FulfilmentStatus.RESERVED.value},
                step_after(order, SagaStep.STOCK) if last else SagaStep.STOCK,
            )
            order = self.order

    def _stock_refusal(self, error: grpc.aio.AioRpcError, fulfilment: Fulfilment) -> ServiceError:
        """OUT_OF_STOCK naming this API's line; a SKU the store never stocked is out of
        stock there too."""
        relayed = relay(error, service="store")
        sku_id = relayed.metadata.get("sku_id", "")
        index = next((i for i, line in enumerate(self.order.lines) if line.sku_id == sku_id), -1)
        field = f"lines[{index}].quantity" if index >= 0 else "lines"
        if relayed.reason == "OUT_OF_STOCK":
            return ServiceError(
                relayed.code,
                common_pb2.ERROR_REASON_OUT_OF_STOCK,
                relayed.message,
                violations=[FieldViolation(field, "not enough stock")],
                metadata=relayed.metadata,
            )
        if error.code() is grpc.StatusCode.NOT_FOUND and sku_id:
            return ServiceError(
                grpc.StatusCode.FAILED_PRECONDITION,
                common_pb2.ERROR_REASON_OUT_OF_STOCK,
                f"store {fulfilment.store_id!r} does not stock {sku_id!r}",
                violations=[FieldViolation(field, "not stocked in this store")],
                metadata={
                    "store_id": fulfilment.store_id,
                    "sku_id": sku_id,
                    "available": "0",
                    "service": "store",
                },
            )
        return relayed

    async def _confirm(self) -> None:
        order = self.order
        now = self.services.now()
        settings = self.services.settings
        fields: dict[str, Any] = {
            "saga.state": SagaState.DONE.value,
            "saga.step": SagaStep.FINISHED.value,
            "saga.lease_until": None,
            "payment.amount": order.total,
        }
        effects: list[Effect] = []
        if order.fulfillment is FulfillmentType.IN_STORE_PURCHASE:
            given = order.payment.amount
            if given != order.total:
                raise amount_mismatch("till_payment.amount", order.total, given, order.currency)
            status, kind = OrderStatus.COMPLETED, "completed"
            fields.update(
                {
                    "payment.status": PaymentStatus.PAID.value,
                    "payment.paid_time": now,
                    "fulfilments": _fulfilments_with_status(
                        order, {f.id: FulfilmentStatus.DELIVERED for f in order.fulfilments}
                    ),
                }
            )
            effects += [
                new_effect(EffectKind.COMMIT_STOCK.value, now, ref=f.id) for f in order.fulfilments
            ]
            if order.coupon is not None:
                fields["coupon.state"] = "redeemed"
                effects.append(new_effect(EffectKind.REDEEM_COUPON.value, now, ref=order.coupon.id))
            if order.member_id is not None:
                effects.append(new_effect(EffectKind.RECORD_COMPLETED.value, now))
        elif order.payment.status is PaymentStatus.PAY_AT_PICKUP:
            status, kind = OrderStatus.CONFIRMED, "placed"
        else:
            status, kind = OrderStatus.AWAITING_PAYMENT, "placed"
            fields["payment.deadline_time"] = now + timedelta(
                seconds=settings.payment_window_seconds
            )
        confirmed = await self.services.repository.transition(
            order.id,
            [OrderStatus.PENDING],
            status,
            set_fields=fields,
            effects=effects,
            event_kind=kind,
            now=now,
            condition={
                "saga.owner": self.owner,
                "saga.step": SagaStep.CONFIRM.value,
                "saga.state": SagaState.RUNNING.value,
            },
        )
        if confirmed is None:
            raise _Lost
        self.order = confirmed
        await crashpoint("confirmed", self.order.idempotency_key)
        for effect in confirmed.pending_effects():
            await participants.deliver(self.services, confirmed, effect)

    # -- failure and compensation ------------------------------------------------------------

    async def _fail(self, refusal: ServiceError) -> None:
        order = self.order
        now = self.services.now()
        # The reverse of the steps (stock -> coupon -> points): points, coupon, stock.
        effects: list[Effect] = []
        fields: dict[str, Any] = {}
        if order.points is not None and order.points.state == "redeemed":
            effects.append(new_effect(EffectKind.REVERT_POINTS.value, now))
            fields["points.state"] = "reverted"
        if order.coupon is not None and order.coupon.state == "locked":
            effects.append(new_effect(EffectKind.RELEASE_COUPON.value, now, ref=order.coupon.id))
            fields["coupon.state"] = "released"
        for fulfilment in order.fulfilments:
            if fulfilment.status is FulfilmentStatus.RESERVED:
                effects.append(new_effect(EffectKind.RELEASE_STOCK.value, now, ref=fulfilment.id))
        fields["fulfilments"] = _fulfilments_with_status(
            order, {f.id: FulfilmentStatus.RELEASED for f in order.fulfilments}
        )
        state = SagaState.COMPENSATING if effects else SagaState.COMPENSATED
        fields.update(
            {
                "end_reason": end_reason(refusal),
                "saga.state": state.value,
                "saga.error": saga_error_to_document(saga_error_from_service_error(refusal)),
                "saga.lease_until": self._lease_until(now) if effects else None,
            }
        )
        failed = await self.services.repository.transition(
            order.id,
            [OrderStatus.PENDING],
            OrderStatus.FAILED,
            set_fields=fields,
            effects=effects,
            event_kind="failed",
            now=now,
            condition={"saga.owner": self.owner, "saga.state": SagaState.RUNNING.value},
        )
        if failed is None:
            raise _Lost
        self.order = failed
        await crashpoint("failed", self.order.idempotency_key)

    async def compensate(self) -> None:
        """Delivers the pending compensations (reverse order of the steps), then ends the
        saga `compensated`; what fails stays pending for the next try (lease, worker)."""
        for effect in self.order.pending_effects():
            if effect.kind in COMPENSATION_KINDS:
                await participants.deliver(self.services, self.order, effect)
                await crashpoint("compensation", self.order.idempotency_key)
        await self._reload()
        if any(
            e.kind in COMPENSATION_KINDS and e.state is EffectState.PENDING
            for e in self.order.effects
        ):
            return
        now = self.services.now()
        await self.services.repository.update(
            self.order.id,
            condition={"saga.state": SagaState.COMPENSATING.value},
            set_fields={"saga.state": SagaState.COMPENSATED.value, "saga.lease_until": None},
            now=now,
        )
        await self._reload()


# -- PlaceOrder ----------------------------------------------------------------------------


async def place_order(services: OrderServices, request: order_pb2.PlaceOrderRequest) -> Order:
    """Places the order once per idempotency key; answers the order or raises the error
    (a replay answers the same)."""
    order = validate(request, preview=False)
    settings = services.settings
    now = services.now()
    key = IdempotencyKey(
        id=f"{key_scope(order)}:{request.idempotency_key}",
        fingerprint=fingerprint(request),
        order_id=new_order_id(),
        owner=new_owner(),
        lease_until=now + timedelta(seconds=settings.saga_lease_seconds),
        create_time=now,
    )
    stored, won = await services.repository.keys.claim(key)
    await crashpoint("claimed", request.idempotency_key)
    if not won:
        if stored.fingerprint != key.fingerprint:
            raise key_reused(request.idempotency_key)
        return await _await_answer(services, stored, order, request)
    return await _execute(services, stored, order, request)


async def _execute(
    services: OrderServices,
    key: IdempotencyKey,
    order: PlaceInput,
    request: order_pb2.PlaceOrderRequest,
) -> Order:
    """Quote, insert, run the saga, as the key's owner; at most `max_concurrent_placements`
    of these run at once in a process (a flash sale queues here, so each order's stock
    check sees the reservations made before it, and a sold-out SKU is refused by a read)."""
    async with services.placement_slots:
        return await _execute_now(services, key, order, request)


async def _execute_now(
    services: OrderServices,
    key: IdempotencyKey,
    order: PlaceInput,
    request: order_pb2.PlaceOrderRequest,
) -> Order:
    repository = services.repository
    now = services.now()
    lease = timedelta(seconds=services.settings.saga_lease_seconds)
    try:
        priced = await quote(services, order, now)
    except ServiceError as refusal:
        await repository.keys.record_error(key, saga_error_from_service_error(refusal))
        raise
    except Transient as failure:
        await repository.keys.give_up(key, services.now())
        raise _unreachable(key.order_id, failure) from None
    await crashpoint("quoted", request.idempotency_key)
    draft = build_order(key, request.idempotency_key, order, priced, lease, services.now())
    try:
        await repository.insert(draft)
    except DuplicateKeyError:
        return await _await_answer(services, key, order, request)
    await crashpoint("inserted", request.idempotency_key)
    return await _drive(services, draft, key, order, request)


async def _drive(
    services: OrderServices,
    order: Order,
    key: IdempotencyKey,
    placed: PlaceInput,
    request: order_pb2.PlaceOrderRequest,
    *,
    expire: bool = False,
) -> Order:
    runner = SagaRunner(services, order)
    try:
        return answer(await runner.run(expire=expire))
    except Transient as failure:
        raise _unreachable(order.id, failure) from None
    except _Lost:
        return await _await_answer(services, key, placed, request)


def _unreachable(order_id: str, failure: Transient) -> ServiceError:
    return unavailable(
        f"order {order_id} could not be placed now ({failure.service}-svc did not answer: "
        f"{failure.error.code().name}); retry with the same idempotency key",
        order_id=order_id,
        service=failure.service,
    )


async def _await_answer(
    services: OrderServices,
    key: IdempotencyKey,
    placed: PlaceInput,
    request: order_pb2.PlaceOrderRequest,
) -> Order:
    """A duplicate of a call that owns the key: waits (bounded) for its answer; takes the
    work over when its owner stopped (lease passed); else ABORTED / IN_PROGRESS."""
    repository = services.repository
    settings = services.settings
    lease = timedelta(seconds=settings.saga_lease_seconds)
    deadline = time.monotonic() + settings.idempotency_wait_seconds
    pause = POLL_FIRST_SECONDS
    current: IdempotencyKey | None = key
    while True:
        if current is None:  # pragma: no cover - keys are never deleted
            raise in_progress(key.order_id)
        if current.error is not None:
            raise service_error_from_saga_error(current.error)
        order = await repository.get_order(current.order_id)
        now = services.now()
        if order is not None and order.saga is not None:
            if order.saga.state is not SagaState.RUNNING:
                return answer(order)
            lease_until = order.saga.lease_until
            if lease_until is not None and lease_until <= now:
                owner = new_owner()
                if await repository.take_over_saga(order, owner, now + lease, now):
                    fresh = await repository.get_order(order.id)
                    assert fresh is not None
                    expire = now - fresh.create_time > timedelta(
                        seconds=settings.saga_deadline_seconds
                    )
                    return await _drive(services, fresh, current, placed, request, expire=expire)
        elif order is None and current.lease_until <= now:
            taken = await repository.keys.take_over(current, new_owner(), now + lease)
            if taken is not None:
                return await _execute(services, taken, placed, request)
        if time.monotonic() >= deadline:
            raise in_progress(current.order_id)
        await asyncio.sleep(pause)
        pause = min(pause * 2, POLL_MAX_SECONDS)
        current = await repository.keys.get(current.id)


# -- recovery ------------------------------------------------------------------------------


async def recovery_job(services: OrderServices, now: datetime) -> int:
    """Takes over sagas whose owner stopped (lease passed) and drives them to their end:
    resumes a young one, compensates one past the saga deadline, finishes compensations.
    Safe on every replica at once (taking over is a compare-and-set). Returns how many
    sagas it took over."""
    repository = services.repository
    settings = services.settings
    stalled = await repository.stalled_sagas(now, RECOVERY_BATCH)
    lease = timedelta(seconds=settings.saga_lease_seconds)
    deadline = timedelta(seconds=settings.saga_deadline_seconds)

    async def recover(order: Order) -> int:
        owner = new_owner()
        if not await repository.take_over_saga(order, owner, now + lease, now):
            return 0
        fresh = await repository.get_order(order.id)
        if fresh is None:  # pragma: no cover - orders are never deleted
            return 0
        try:
            await SagaRunner(services, fresh).run(expire=now - fresh.create_time > deadline)
        except (Transient, _Lost) as stopped:
            log.info("recovery of order %s stopped: %r", order.id, stopped)
        except Exception:
            log.exception("recovery of order %s failed; the next pass retries", order.id)
        return 1

    results = await asyncio.gather(*(recover(order) for order in stalled))
    return sum(results)


def _fulfilments_with_status(
    order: Order, statuses: dict[str, FulfilmentStatus]
) -> list[dict[str, Any]]:
    """The whole `fulfilments` array with new statuses. `transition` is an update pipeline,
    where MongoDB reads "fulfilments.0.status" as a field named "0" in every element
    (SERVER-59309), so array elements are never addressed by position there."""
    return [
        fulfilment_to_document(replace(f, status=statuses.get(f.id, f.status)))
        for f in order.fulfilments
    ]
