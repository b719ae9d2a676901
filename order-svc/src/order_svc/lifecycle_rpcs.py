"""OrderService RPCs of the order lifecycle: cancel, payment, pickup, store queue, shipping.

Requests are checked here (each failure names its field) and turned into lifecycle.py's
inputs; the rules live in lifecycle.py."""

from __future__ import annotations

from order_svc import lifecycle
from order_svc.convert import (
    STATUS_FROM_PROTO,
    actor_from_proto,
    order_cursor,
    order_cursor_key,
    order_to_proto,
)
from order_svc.domain import OPEN_STATUSES, Actor, OrderStatus
from order_svc.rpc_base import OrderRpcBase
from retail.common.v1 import common_pb2
from retail.order.v1 import order_pb2
from retail_kit.apikeys import current_principal, unauthenticated
from retail_kit.errors import Context, FieldViolation, invalid_argument
from retail_kit.paging import decode_page_token, encode_page_token, page_size, query_fingerprint
from retail_kit.validation import require_id

MAX_TEXT = 500
MAX_REFERENCE = 128


def _actor(actor: common_pb2.Actor, field: str = "actor") -> Actor:
    converted = actor_from_proto(actor)
    if converted is None:
        raise invalid_argument(FieldViolation(field, "is required (kind, id, store_id)"))
    return lifecycle.require_actor(converted)


def _text(field: str, value: str, maximum: int = MAX_TEXT) -> str:
    if len(value) > maximum:
        raise invalid_argument(FieldViolation(field, f"at most {maximum} characters"))
    return value


def _reference(field: str, value: str) -> str:
    """A partner's transaction id: required, printable, bounded."""
    value = value.strip()
    if not value:
        raise invalid_argument(FieldViolation(field, "is required"))
    if len(value) > MAX_REFERENCE or not value.isprintable():
        raise invalid_argument(
            FieldViolation(field, f"at most {MAX_REFERENCE} printable characters")
        )
    return value


def _statuses(request: order_pb2.ListStoreOrdersRequest) -> tuple[OrderStatus, ...]:
    if not request.statuses:
        return OPEN_STATUSES
    statuses: list[OrderStatus] = []
    for index, value in enumerate(request.statuses):
        status = STATUS_FROM_PROTO.get(value)
        if status is None:
            raise invalid_argument(
                FieldViolation(f"statuses[{index}]", f"{value} is not an order status")
            )
        statuses.append(status)
    return tuple(dict.fromkeys(statuses))


class LifecycleRpcs(OrderRpcBase):
    async def CancelOrder(
        self, request: order_pb2.CancelOrderRequest, context: Context
    ) -> order_pb2.CancelOrderResponse:
        order_id = require_id("id", request.id)
        actor = _actor(request.actor)
        note = _text("reason", request.reason.strip())
        order = await lifecycle.cancel_order(self.services, order_id, actor, note)
        return order_pb2.CancelOrderResponse(order=order_to_proto(order))

    async def ConfirmPayment(
        self, request: order_pb2.ConfirmPaymentRequest, context: Context
    ) -> order_pb2.ConfirmPaymentResponse:
        partner = current_principal()
        if partner is None:  # the interceptor refuses first; never run unauthenticated
            raise unauthenticated("ConfirmPayment needs a partner API key")
        order_id = require_id("order_id", request.order_id)
        reference = _reference("payment_reference", request.payment_reference)
        if not request.HasField("amount"):
            raise invalid_argument(FieldViolation("amount", "is required"))
        provider = _text("provider", request.provider.strip(), 64) or partner.partner_id
        order = await lifecycle.confirm_payment(
            self.services,
            lifecycle.PaymentInput(
                order_id=order_id,
                transaction_id=reference,
                amount=request.amount.amount,
                currency=request.amount.currency,
                provider=provider,
                partner_key=partner.key_id,
            ),
        )
        return order_pb2.ConfirmPaymentResponse(order=order_to_proto(order))

    async def MarkReadyForPickup(
        self, request: order_pb2.MarkReadyForPickupRequest, context: Context
    ) -> order_pb2.MarkReadyForPickupResponse:
        order_id = require_id("order_id", request.order_id)
        actor = _actor(request.actor)
        associate_id = _text("associate_id", request.associate_id.strip(), 128)
        order = await lifecycle.mark_ready(self.services, order_id, actor, associate_id)
        code = order.pickup.code if order.pickup else ""
        return order_pb2.MarkReadyForPickupResponse(order=order_to_proto(order), pickup_code=code)

    async def ConfirmPickup(
        self, request: order_pb2.ConfirmPickupRequest, context: Context
    ) -> order_pb2.ConfirmPickupResponse:
        order_id = require_id("order_id", request.order_id)
        actor = _actor(request.actor)
        code = _text("pickup_code", request.pickup_code.strip())
        if not code and not request.associate_override:
            raise invalid_argument(
                FieldViolation("pickup_code", "is required (or associate_override)")
            )
        counter = None
        if request.HasField("counter_payment"):
            payment = request.counter_payment
            counter = lifecycle.CounterPayment(
                provider=_text("counter_payment.provider", payment.provider.strip(), 64),
                transaction_id=_text(
                    "counter_payment.transaction_id", payment.transaction_id.strip(), 128
                ),
                amount=payment.amount.amount,
                currency=payment.amount.currency,
            )
        order = await lifecycle.confirm_pickup(
            self.services,
            lifecycle.HandOver(
                order_id=order_id,
                code=code,
                actor=actor,
                override=request.associate_override,
                override_reason=_text("override_reason", request.override_reason.strip()),
                counter_payment=counter,
            ),
        )
        return order_pb2.ConfirmPickupResponse(order=order_to_proto(order))

    async def ListStoreOrders(
        self, request: order_pb2.ListStoreOrdersRequest, context: Context
    ) -> order_pb2.ListStoreOrdersResponse:
        """The store's queue, oldest first (create_time, then id), paged."""
        store_id = require_id("store_id", request.store_id)
        statuses = _statuses(request)
        size = page_size(request.page_size)
        fingerprint = query_fingerprint(
            "ListStoreOrders", store_id, sorted(s.value for s in statuses)
        )
        after = order_cursor(decode_page_token(request.page_token, fingerprint))
        orders = await self.services.repository.store_queue(
            store_id, statuses, limit=size + 1, after=after
        )
        page, more = orders[:size], len(orders) > size
        return order_pb2.ListStoreOrdersResponse(
            orders=[order_to_proto(o) for o in page],
            next_page_token=(
                encode_page_token(fingerprint, order_cursor_key(page[-1])) if more else ""
            ),
        )

    async def MarkShipped(
        self, request: order_pb2.MarkShippedRequest, context: Context
    ) -> order_pb2.MarkShippedResponse:
        order = await lifecycle.mark_shipped(
            self.services,
            lifecycle.Shipping(
                order_id=require_id("order_id", request.order_id),
                fulfilment_id=require_id("fulfilment_id", request.fulfilment_id),
                actor=actor_from_proto(request.actor),
                partner=current_principal(),
                carrier=_text("carrier", request.carrier.strip(), 64),
                tracking_number=_text("tracking_number", request.tracking_number.strip(), 128),
            ),
        )
        return order_pb2.MarkShippedResponse(order=order_to_proto(order))

    async def MarkDelivered(
        self, request: order_pb2.MarkDeliveredRequest, context: Context
    ) -> order_pb2.MarkDeliveredResponse:
        order = await lifecycle.mark_delivered(
            self.services,
            lifecycle.Shipping(
                order_id=require_id("order_id", request.order_id),
                fulfilment_id=require_id("fulfilment_id", request.fulfilment_id),
                actor=actor_from_proto(request.actor),
                partner=current_principal(),
            ),
        )
        return order_pb2.MarkDeliveredResponse(order=order_to_proto(order))
