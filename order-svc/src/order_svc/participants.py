"""Effects that are one idempotent call to store-svc or member-svc (by order or reservation
id): releasing and committing stock, reverting points, releasing and redeeming a coupon.

`HANDLERS` maps an effect kind to its call; `deliver` runs one pending effect and records
the outcome on the order (done, or failed with a retry time). The saga delivers its own
compensations with it right after recording them; the outbox worker (effects.py) delivers
whatever is still pending, with these handlers and its own for the other kinds.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import grpc

from order_svc.domain import Effect, EffectKind, EffectState, Order
from retail.member.v1 import member_pb2
from retail.store.v1 import store_pb2

if TYPE_CHECKING:
    from order_svc.services import OrderServices

log = logging.getLogger(__name__)

Handler = Callable[["OrderServices", Order, Effect], Awaitable[None]]

MAX_BACKOFF_SECONDS = 300.0
# A tombstone reservation (see release_stock) holds nothing for longer than this.
TOMBSTONE_HOLD = timedelta(hours=1)


def backoff(attempts: int) -> timedelta:
    """1 s, 2 s, 4 s ... up to 5 minutes between tries of a failing effect."""
    return timedelta(seconds=min(2.0 ** max(attempts, 0), MAX_BACKOFF_SECONDS))


async def release_stock(services: OrderServices, order: Order, effect: Effect) -> None:
    """Releases a fulfilment's reservation. If store-svc has none under that id (the
    reserve never arrived), reserve-then-release leaves a RELEASED tombstone, so a late
    ReserveStock still in flight replays it instead of holding stock."""
    fulfilment = order.fulfilment(effect.ref)
    if fulfilment is None:
        log.warning("order %s: release_stock of unknown fulfilment %r", order.id, effect.ref)
        return
    store = services.clients.store
    release = store_pb2.ReleaseReservationRequest(order_id=fulfilment.reservation_id)
    try:
        await store.ReleaseReservation(release)
        return
    except grpc.aio.AioRpcError as error:
        if error.code() is not grpc.StatusCode.NOT_FOUND:
            raise
    lines = [
        store_pb2.ReservationLine(sku_id=line.sku_id, quantity=line.quantity)
        for line in order.lines_of(fulfilment.id)
    ]
    hold = store_pb2.ReserveStockRequest(
        order_id=fulfilment.reservation_id, store_id=fulfilment.store_id, lines=lines
    )
    hold.hold_until.FromDatetime(services.now() + TOMBSTONE_HOLD)
    try:
        await store.ReserveStock(hold)
    except grpc.aio.AioRpcError as error:
        if error.code() is grpc.StatusCode.FAILED_PRECONDITION:
            return  # OUT_OF_STOCK: a FAILED reservation, holding nothing, is the tombstone
        raise
    await store.ReleaseReservation(release)


async def commit_stock(services: OrderServices, order: Order, effect: Effect) -> None:
    fulfilment = order.fulfilment(effect.ref)
    if fulfilment is None:
        log.warning("order %s: commit_stock of unknown fulfilment %r", order.id, effect.ref)
        return
    await services.clients.store.CommitReservation(
        store_pb2.CommitReservationRequest(order_id=fulfilment.reservation_id)
    )


async def revert_points(services: OrderServices, order: Order, effect: Effect) -> None:
    if order.member_id is None:
        return
    await services.clients.member.RevertPointsRedemption(
        member_pb2.RevertPointsRedemptionRequest(member_id=order.member_id, reference=order.id)
    )


async def release_coupon(services: OrderServices, order: Order, effect: Effect) -> None:
    await services.clients.member.ReleaseCoupon(
        member_pb2.ReleaseCouponRequest(coupon_id=effect.ref, order_id=order.id)
    )


async def redeem_coupon(services: OrderServices, order: Order, effect: Effect) -> None:
    await services.clients.member.RedeemCoupon(
        member_pb2.RedeemCouponRequest(coupon_id=effect.ref, order_id=order.id)
    )


HANDLERS: dict[str, Handler] = {
    EffectKind.RELEASE_STOCK.value: release_stock,
    EffectKind.COMMIT_STOCK.value: commit_stock,
    EffectKind.REVERT_POINTS.value: revert_points,
    EffectKind.RELEASE_COUPON.value: release_coupon,
    EffectKind.REDEEM_COUPON.value: redeem_coupon,
}


async def deliver(
    services: OrderServices,
    order: Order,
    effect: Effect,
    handlers: dict[str, Handler] | None = None,
) -> bool:
    """Runs one pending effect; True when it is done (by this call or an earlier one).
    A failure is recorded with the next try time and logged, never raised."""
    if effect.state is EffectState.DONE:
        return True
    handler = (handlers or HANDLERS).get(effect.kind)
    if handler is None:
        return False
    try:
        await handler(services, order, effect)
    except Exception as error:
        now: datetime = services.now()
        message = (
            f"{error.code().name}: {error.details()}"
            if isinstance(error, grpc.aio.AioRpcError)
            else repr(error)
        )
        log.warning("order %s: effect %s failed: %s", order.id, effect.id, message)
        await services.repository.mark_effect_failed(
            order.id, effect.id, message[:500], now + backoff(effect.attempts)
        )
        return False
    await services.repository.mark_effect_done(order.id, effect.id, services.now())
    return True
