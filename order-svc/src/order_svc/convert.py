"""proto <-> domain conversions every RPC area shares (orders, actors, money, enums)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from order_svc.domain import (
    Actor,
    ActorKind,
    Channel,
    DeliveryAddress,
    FulfillmentType,
    Fulfilment,
    FulfilmentStatus,
    Order,
    OrderLine,
    OrderReturn,
    OrderStatus,
    PaymentStatus,
)
from retail.common.v1 import common_pb2
from retail.order.v1 import order_pb2
from retail_kit.paging import invalid_page_token

FULFILLMENT_TO_PROTO = {
    FulfillmentType.PICKUP_IN_STORE: order_pb2.FULFILLMENT_TYPE_PICKUP_IN_STORE,
    FulfillmentType.DELIVERY: order_pb2.FULFILLMENT_TYPE_DELIVERY,
    FulfillmentType.IN_STORE_PURCHASE: order_pb2.FULFILLMENT_TYPE_IN_STORE_PURCHASE,
}
FULFILLMENT_FROM_PROTO = {v: k for k, v in FULFILLMENT_TO_PROTO.items()}

STATUS_TO_PROTO = {
    OrderStatus.PENDING: order_pb2.ORDER_STATUS_PENDING,
    OrderStatus.AWAITING_PAYMENT: order_pb2.ORDER_STATUS_AWAITING_PAYMENT,
    OrderStatus.CONFIRMED: order_pb2.ORDER_STATUS_CONFIRMED,
    OrderStatus.READY_FOR_PICKUP: order_pb2.ORDER_STATUS_READY_FOR_PICKUP,
    OrderStatus.PICKED_UP: order_pb2.ORDER_STATUS_PICKED_UP,
    OrderStatus.SHIPPED: order_pb2.ORDER_STATUS_SHIPPED,
    OrderStatus.DELIVERED: order_pb2.ORDER_STATUS_DELIVERED,
    OrderStatus.COMPLETED: order_pb2.ORDER_STATUS_COMPLETED,
    OrderStatus.CANCELLED: order_pb2.ORDER_STATUS_CANCELLED,
    OrderStatus.EXPIRED: order_pb2.ORDER_STATUS_EXPIRED,
    OrderStatus.FAILED: order_pb2.ORDER_STATUS_FAILED,
}
STATUS_FROM_PROTO = {v: k for k, v in STATUS_TO_PROTO.items()}

PAYMENT_STATUS_TO_PROTO = {
    PaymentStatus.PENDING: order_pb2.PAYMENT_STATUS_PENDING,
    PaymentStatus.PAID: order_pb2.PAYMENT_STATUS_PAID,
    PaymentStatus.PAY_AT_PICKUP: order_pb2.PAYMENT_STATUS_PAY_AT_PICKUP,
    PaymentStatus.REFUNDED: order_pb2.PAYMENT_STATUS_REFUNDED,
}

FULFILMENT_STATUS_TO_PROTO = {
    FulfilmentStatus.PENDING: order_pb2.FULFILMENT_STATUS_UNSPECIFIED,
    FulfilmentStatus.RESERVED: order_pb2.FULFILMENT_STATUS_RESERVED,
    FulfilmentStatus.SHIPPED: order_pb2.FULFILMENT_STATUS_SHIPPED,
    FulfilmentStatus.DELIVERED: order_pb2.FULFILMENT_STATUS_DELIVERED,
    FulfilmentStatus.RELEASED: order_pb2.FULFILMENT_STATUS_RELEASED,
}

CHANNEL_TO_PROTO = {
    Channel.MINI_PROGRAM: common_pb2.CHANNEL_MINI_PROGRAM,
    Channel.APP: common_pb2.CHANNEL_APP,
    Channel.POS: common_pb2.CHANNEL_POS,
    Channel.KIOSK: common_pb2.CHANNEL_KIOSK,
}
CHANNEL_FROM_PROTO = {v: k for k, v in CHANNEL_TO_PROTO.items()}

ACTOR_KIND_TO_PROTO = {
    ActorKind.UNSPECIFIED: common_pb2.ACTOR_KIND_UNSPECIFIED,
    ActorKind.CUSTOMER: common_pb2.ACTOR_KIND_CUSTOMER,
    ActorKind.ASSOCIATE: common_pb2.ACTOR_KIND_ASSOCIATE,
    ActorKind.STORE_MANAGER: common_pb2.ACTOR_KIND_STORE_MANAGER,
    ActorKind.KIOSK: common_pb2.ACTOR_KIND_KIOSK,
    ActorKind.ADMIN: common_pb2.ACTOR_KIND_ADMIN,
    ActorKind.PARTNER: common_pb2.ACTOR_KIND_PARTNER,
    ActorKind.SYSTEM: common_pb2.ACTOR_KIND_SYSTEM,
}
ACTOR_KIND_FROM_PROTO = {v: k for k, v in ACTOR_KIND_TO_PROTO.items()}

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)


def timestamp(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def from_timestamp(stamp: Timestamp) -> datetime:
    return stamp.ToDatetime(tzinfo=UTC)


def money(amount: int, currency: str) -> common_pb2.Money:
    return common_pb2.Money(amount=amount, currency=currency)


def actor_to_proto(actor: Actor | None) -> common_pb2.Actor | None:
    if actor is None:
        return None
    return common_pb2.Actor(
        kind=ACTOR_KIND_TO_PROTO[actor.kind], id=actor.id, store_id=actor.store_id
    )


def actor_from_proto(actor: common_pb2.Actor) -> Actor | None:
    if actor.kind == common_pb2.ACTOR_KIND_UNSPECIFIED and not actor.id and not actor.store_id:
        return None
    return Actor(
        ACTOR_KIND_FROM_PROTO.get(actor.kind, ActorKind.UNSPECIFIED), actor.id, actor.store_id
    )


def address_from_proto(address: order_pb2.DeliveryAddress) -> DeliveryAddress:
    has_location = address.HasField("location")
    return DeliveryAddress(
        recipient=address.recipient,
        phone=address.phone,
        line1=address.line1,
        district=address.district,
        city=address.city,
        province=address.province,
        postal_code=address.postal_code,
        latitude=address.location.latitude if has_location else None,
        longitude=address.location.longitude if has_location else None,
    )


def address_to_proto(address: DeliveryAddress) -> order_pb2.DeliveryAddress:
    reply = order_pb2.DeliveryAddress(
        recipient=address.recipient,
        phone=address.phone,
        line1=address.line1,
        district=address.district,
        city=address.city,
        province=address.province,
        postal_code=address.postal_code,
    )
    if address.latitude is not None and address.longitude is not None:
        reply.location.CopyFrom(
            common_pb2.GeoPoint(latitude=address.latitude, longitude=address.longitude)
        )
    return reply


def line_to_proto(line: OrderLine, currency: str) -> order_pb2.OrderLine:
    return order_pb2.OrderLine(
        sku_id=line.sku_id,
        quantity=line.quantity,
        unit_price=money(line.unit_price, currency),
        line_total=money(line.line_total, currency),
        product_id=line.product_id,
        price_rule=line.price_rule,
        coupon_discount=money(line.coupon_discount, currency),
        points_discount=money(line.points_discount, currency),
        paid_amount=money(line.paid_amount, currency),
        returned_quantity=line.returned_quantity,
        refunded_amount=money(line.refunded_amount, currency),
        fulfilment_id=line.fulfilment_id,
    )


def fulfilment_to_proto(fulfilment: Fulfilment) -> order_pb2.Fulfilment:
    return order_pb2.Fulfilment(
        id=fulfilment.id,
        store_id=fulfilment.store_id,
        reservation_id=fulfilment.reservation_id,
        status=FULFILMENT_STATUS_TO_PROTO[fulfilment.status],
        carrier=fulfilment.carrier,
        tracking_number=fulfilment.tracking_number,
    )


def return_to_proto(order_return: OrderReturn, currency: str) -> order_pb2.OrderReturn:
    reply = order_pb2.OrderReturn(
        id=order_return.id,
        store_id=order_return.store_id,
        lines=[
            order_pb2.ReturnLine(
                sku_id=line.sku_id,
                quantity=line.quantity,
                refund_amount=money(line.refund_amount, currency),
            )
            for line in order_return.lines
        ],
        refund_amount=money(order_return.refund_amount, currency),
        points_clawed_back=order_return.points_clawed_back,
        reason=order_return.reason,
        create_time=timestamp(order_return.create_time),
    )
    if (actor := actor_to_proto(order_return.actor)) is not None:
        reply.actor.CopyFrom(actor)
    return reply


def order_to_proto(order: Order) -> order_pb2.Order:
    currency = order.currency
    reply = order_pb2.Order(
        id=order.id,
        member_id=order.member_id or "",
        store_id=order.store_id or "",
        fulfillment=FULFILLMENT_TO_PROTO[order.fulfillment],
        status=STATUS_TO_PROTO[order.status],
        payment_status=PAYMENT_STATUS_TO_PROTO[order.payment.status],
        lines=[line_to_proto(line, currency) for line in order.lines],
        subtotal=money(order.subtotal, currency),
        discount=money(order.discount, currency),
        total=money(order.total, currency),
        channel=CHANNEL_TO_PROTO[order.channel],
        associate_id=order.associate_id or "",
        create_time=timestamp(order.create_time),
        update_time=timestamp(order.update_time),
        coupon_id=order.coupon.id if order.coupon else "",
        coupon_discount=money(order.coupon_discount, currency),
        points_redeemed=order.points.redeemed if order.points else 0,
        points_discount=money(order.points_discount, currency),
        fulfilments=[fulfilment_to_proto(f) for f in order.fulfilments],
        refunds=[
            order_pb2.Refund(
                id=refund.id,
                amount=money(refund.amount, currency),
                reason=refund.reason,
                return_id=refund.return_id,
                create_time=timestamp(refund.create_time),
            )
            for refund in order.refunds
        ],
        returns=[return_to_proto(r, currency) for r in order.returns],
        end_reason=order.end_reason,
        idempotency_key=order.idempotency_key,
    )
    if order.delivery_address is not None:
        reply.delivery_address.CopyFrom(address_to_proto(order.delivery_address))
    payment = order.payment
    reply.payment.CopyFrom(
        order_pb2.Payment(
            status=PAYMENT_STATUS_TO_PROTO[payment.status],
            provider=payment.provider,
            transaction_id=payment.transaction_id,
            amount=money(payment.amount, currency),
        )
    )
    if payment.paid_time is not None:
        reply.payment.paid_time.CopyFrom(timestamp(payment.paid_time))
    if payment.deadline_time is not None:
        reply.payment.deadline_time.CopyFrom(timestamp(payment.deadline_time))
    if (pickup := order.pickup) is not None:
        reply.pickup.code = pickup.code
        reply.pickup.qr_payload = pickup.qr_payload
        reply.pickup.wrong_code_attempts = pickup.wrong_code_attempts
        reply.pickup.code_locked = pickup.code_locked
        for name, value in (
            ("ready_by_time", pickup.ready_by_time),
            ("ready_time", pickup.ready_time),
            ("hold_until_time", pickup.hold_until_time),
            ("picked_up_time", pickup.picked_up_time),
        ):
            if value is not None:
                getattr(reply.pickup, name).CopyFrom(timestamp(value))
        if (handed := actor_to_proto(pickup.handed_over_by)) is not None:
            reply.pickup.handed_over_by.CopyFrom(handed)
    return reply


def order_cursor_key(order: Order) -> list[Any]:
    """[create_time in epoch milliseconds (MongoDB's precision), id]: JSON for the token."""
    return [(order.create_time - _EPOCH) // _MILLISECOND, order.id]


def order_cursor(key: Any) -> tuple[datetime, str] | None:
    """The (create_time, id) a page token resumes after; None for the first page."""
    if key is None:
        return None
    if isinstance(key, list) and len(key) == 2:
        millis, order_id = key
        if isinstance(millis, int) and not isinstance(millis, bool) and isinstance(order_id, str):
            try:
                return _EPOCH + millis * _MILLISECOND, order_id
            except OverflowError:
                pass
    raise invalid_page_token()
