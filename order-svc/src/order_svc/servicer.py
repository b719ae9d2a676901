"""OrderService over gRPC: proto <-> domain and status codes; rules stay in domain/repository."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from order_svc.domain import Channel, FulfillmentType, Money, Order, OrderStatus, PaymentStatus
from order_svc.repository import OrderRepository
from retail.common.v1 import common_pb2
from retail.order.v1 import order_pb2, order_pb2_grpc
from retail_kit.errors import (
    Context,
    FieldViolation,
    invalid_argument,
    not_found,
    unimplemented,
)
from retail_kit.paging import (
    decode_page_token,
    encode_page_token,
    invalid_page_token,
    page_size,
    query_fingerprint,
)
from retail_kit.validation import batch_ids, require_id

FULFILLMENT_TO_PROTO = {
    FulfillmentType.PICKUP_IN_STORE: order_pb2.FULFILLMENT_TYPE_PICKUP_IN_STORE,
    FulfillmentType.DELIVERY: order_pb2.FULFILLMENT_TYPE_DELIVERY,
    FulfillmentType.IN_STORE_PURCHASE: order_pb2.FULFILLMENT_TYPE_IN_STORE_PURCHASE,
}

STATUS_TO_PROTO = {
    OrderStatus.PENDING: order_pb2.ORDER_STATUS_PENDING,
    OrderStatus.CONFIRMED: order_pb2.ORDER_STATUS_CONFIRMED,
    OrderStatus.READY_FOR_PICKUP: order_pb2.ORDER_STATUS_READY_FOR_PICKUP,
    OrderStatus.PICKED_UP: order_pb2.ORDER_STATUS_PICKED_UP,
    OrderStatus.CANCELLED: order_pb2.ORDER_STATUS_CANCELLED,
    OrderStatus.EXPIRED: order_pb2.ORDER_STATUS_EXPIRED,
    OrderStatus.SHIPPED: order_pb2.ORDER_STATUS_SHIPPED,
    OrderStatus.DELIVERED: order_pb2.ORDER_STATUS_DELIVERED,
    OrderStatus.COMPLETED: order_pb2.ORDER_STATUS_COMPLETED,
}

PAYMENT_STATUS_TO_PROTO = {
    PaymentStatus.PENDING: order_pb2.PAYMENT_STATUS_PENDING,
    PaymentStatus.PAID: order_pb2.PAYMENT_STATUS_PAID,
    PaymentStatus.PAY_AT_PICKUP: order_pb2.PAYMENT_STATUS_PAY_AT_PICKUP,
    PaymentStatus.REFUNDED: order_pb2.PAYMENT_STATUS_REFUNDED,
}

CHANNEL_TO_PROTO = {
    Channel.MINI_PROGRAM: common_pb2.CHANNEL_MINI_PROGRAM,
    Channel.APP: common_pb2.CHANNEL_APP,
    Channel.POS: common_pb2.CHANNEL_POS,
    Channel.KIOSK: common_pb2.CHANNEL_KIOSK,
}

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)


def _timestamp(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def _money(money: Money) -> common_pb2.Money:
    return common_pb2.Money(amount=money.amount, currency=money.currency)


def order_to_proto(order: Order) -> order_pb2.Order:
    return order_pb2.Order(
        id=order.id,
        member_id=order.member_id or "",
        store_id=order.store_id or "",
        fulfillment=FULFILLMENT_TO_PROTO[order.fulfillment],
        status=STATUS_TO_PROTO[order.status],
        payment_status=PAYMENT_STATUS_TO_PROTO[order.payment_status],
        lines=[
            order_pb2.OrderLine(
                sku_id=line.sku_id,
                quantity=line.quantity,
                unit_price=_money(line.unit_price),
                line_total=_money(line.line_total),
            )
            for line in order.lines
        ],
        subtotal=_money(order.subtotal),
        discount=_money(order.discount),
        total=_money(order.total),
        channel=CHANNEL_TO_PROTO[order.channel],
        associate_id=order.associate_id or "",
        create_time=_timestamp(order.create_time),
        update_time=_timestamp(order.update_time),
    )


def order_cursor_key(order: Order) -> list[Any]:
    """[create_time in epoch milliseconds (MongoDB's precision), id]: JSON for the token."""
    return [(order.create_time - _EPOCH) // _MILLISECOND, order.id]


def _order_cursor(key: Any) -> tuple[datetime, str] | None:
    """The (create_time, id) a ListOrders token resumes after; None for the first page."""
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


def _owner(request: order_pb2.ListOrdersRequest) -> tuple[str, str]:
    """("member_id" | "store_id", value): exactly one of the two must be given."""
    candidates = (("member_id", request.member_id), ("store_id", request.store_id))
    given = [(field, value) for field, value in candidates if value]
    if len(given) != 1:
        problem = "is required" if not given else "cannot be combined"
        raise invalid_argument(
            FieldViolation("member_id", f"exactly one of member_id and store_id {problem}"),
            FieldViolation("store_id", f"exactly one of member_id and store_id {problem}"),
        )
    field, value = given[0]
    return field, require_id(field, value)


class OrderServicer(order_pb2_grpc.OrderServiceServicer):
    def __init__(self, repository: OrderRepository) -> None:
        self._repository = repository

    async def GetOrder(
        self, request: order_pb2.GetOrderRequest, context: Context
    ) -> order_pb2.GetOrderResponse:
        order = await self._repository.get_order(require_id("id", request.id))
        if order is None:
            raise not_found("order", request.id)
        return order_pb2.GetOrderResponse(order=order_to_proto(order))

    async def BatchGetOrders(
        self, request: order_pb2.BatchGetOrdersRequest, context: Context
    ) -> order_pb2.BatchGetOrdersResponse:
        ids = batch_ids("ids", request.ids)
        found = await self._repository.get_orders(ids) if ids else {}
        return order_pb2.BatchGetOrdersResponse(
            orders=[order_to_proto(found[i]) for i in ids if i in found],
            missing_ids=[i for i in ids if i not in found],
        )

    async def ListOrders(
        self, request: order_pb2.ListOrdersRequest, context: Context
    ) -> order_pb2.ListOrdersResponse:
        field, owner_id = _owner(request)
        size = page_size(request.page_size)
        fingerprint = query_fingerprint("ListOrders", field, owner_id)
        before = _order_cursor(decode_page_token(request.page_token, fingerprint))
        # One extra row tells whether another page exists without a count query.
        orders = await self._repository.list_orders(
            member_id=owner_id if field == "member_id" else None,
            store_id=owner_id if field == "store_id" else None,
            limit=size + 1,
            before=before,
        )
        page, more = orders[:size], len(orders) > size
        return order_pb2.ListOrdersResponse(
            orders=[order_to_proto(o) for o in page],
            next_page_token=(
                encode_page_token(fingerprint, order_cursor_key(page[-1])) if more else ""
            ),
        )

    async def PlaceOrder(
        self, request: order_pb2.PlaceOrderRequest, context: Context
    ) -> order_pb2.PlaceOrderResponse:
        raise unimplemented("PlaceOrder")

    async def CancelOrder(
        self, request: order_pb2.CancelOrderRequest, context: Context
    ) -> order_pb2.CancelOrderResponse:
        raise unimplemented("CancelOrder")

    async def ConfirmPayment(
        self, request: order_pb2.ConfirmPaymentRequest, context: Context
    ) -> order_pb2.ConfirmPaymentResponse:
        raise unimplemented("ConfirmPayment")

    async def MarkReadyForPickup(
        self, request: order_pb2.MarkReadyForPickupRequest, context: Context
    ) -> order_pb2.MarkReadyForPickupResponse:
        raise unimplemented("MarkReadyForPickup")

    async def ConfirmPickup(
        self, request: order_pb2.ConfirmPickupRequest, context: Context
    ) -> order_pb2.ConfirmPickupResponse:
        raise unimplemented("ConfirmPickup")

    async def WatchOrderEvents(
        self, request: order_pb2.WatchOrderEventsRequest, context: Context
    ) -> AsyncIterator[order_pb2.WatchOrderEventsResponse]:
        # An async generator, as a server-streaming handler must be: the kit's interceptor
        # iterates it, and a plain coroutine would surface as INTERNAL instead.
        raise unimplemented("WatchOrderEvents")
        yield  # unreachable; makes this function an async generator
