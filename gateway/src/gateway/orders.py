"""Orders slice (issue 8): preview and place online orders, read and list them, cancel; the
store's pick list, marking ready, handing over at the counter or a kiosk, till sales and
returns.

The gateway authenticates, authorizes (orders_access, before anything is changed), passes
the caller as the Actor, batches and shapes; prices, stock, coupons, points, statuses,
codes and amounts are order-svc's (and the services it calls). Payment confirmations are
not here: payment partners call order-svc's ConfirmPayment over gRPC with an API key.
"""

from __future__ import annotations

from collections.abc import Mapping

import grpc
import strawberry
from graphql import GraphQLError

from gateway import authz, orders_access
from gateway.auth import Role
from gateway.channel import CHANNEL_HEADER
from gateway.context import GatewayInfo
from gateway.errors import ErrorCode, bad_user_input, from_rpc_error
from gateway.fields import resolver
from gateway.orders_types import (
    FULFILLMENT_TO_PROTO,
    STATUS_TO_PROTO,
    FulfillmentType,
    Order,
    OrderConnection,
    OrderLineInput,
    OrderPreview,
    OrderReady,
    OrderReturn,
    OrderStatus,
    PaymentInput,
    PlaceOrderInput,
    ReturnResult,
    TillSaleInput,
    lines_to_proto,
    order_connection,
)
from retail.common.v1 import common_pb2
from retail.member.v1 import member_pb2
from retail.order.v1 import order_pb2
from retail_kit.errors import FieldViolation
from retail_kit.paging import MAX_PAGE_SIZE
from retail_kit.validation import id_violation

_PLACE_FIELDS = {
    "idempotency_key": "idempotencyKey",
    "channel": CHANNEL_HEADER,
    "member_id": "member",
    "store_id": "input.storeId",
    "fulfillment": "input.fulfillment",
    "lines": "input.lines",
    "coupon_id": "input.couponId",
    "coupon_code": "input.couponCode",
    "redeem_points": "input.redeemPoints",
    "pay_at_pickup": "input.payAtPickup",
    "delivery_address": "input.deliveryAddress",
    "delivery_address.location": "input.deliveryAddress.lat",
    "delivery_address.location.latitude": "input.deliveryAddress.lat",
    "delivery_address.location.longitude": "input.deliveryAddress.lng",
    "till_payment": "input.payment",
    "till_payment.transaction_id": "input.payment.transactionId",
    "associate_id": "associate",
}
"""PlaceOrder / PreviewOrder request fields as the client named them."""

_PAGE_FIELDS = {"page_size": "first", "page_token": "after", "statuses": "status"}
_HAND_OVER_FIELDS = {
    "associate_override": "override",
    "override_reason": "reason",
    "pickup_code": "pickupCode",
}
_ENSURE_MEMBER_FIELDS = {"identity": "input.memberPhone", "identity.value": "input.memberPhone"}


def _order_error(
    error: grpc.aio.AioRpcError, field_names: Mapping[str, str] | None = None
) -> GraphQLError:
    """order-svc's refusal with its reason (OUT_OF_STOCK, AMOUNT_MISMATCH, PICKUP_CODE_LOCKED,
    VERIFICATION_FAILED, STORE_SERVICE_UNAVAILABLE, RETURN_EXCEEDS_PURCHASE, ...); a reused
    idempotency key is a CONFLICT, a duplicate still being executed RETRY_LATER."""
    mapped = from_rpc_error(error, service="order", field_names=field_names)
    extensions = mapped.extensions if mapped.extensions is not None else {}
    reason = extensions.get("reason")
    if reason == "IDEMPOTENCY_KEY_REUSED":
        extensions["code"] = ErrorCode.CONFLICT.value
    elif reason == "IN_PROGRESS":
        extensions["code"] = ErrorCode.RETRY_LATER.value
    return mapped


def _check_ids(**ids: str) -> None:
    """Ids are checked before a batch: one malformed id would fail everyone's BatchGet."""
    problems = [v for field, value in ids.items() if (v := id_violation(field, value))]
    if problems:
        raise bad_user_input(*problems)


def _check_first(first: int) -> None:
    # Zero means "the default" in the proto; refuse it rather than answer another size.
    if not 1 <= first <= MAX_PAGE_SIZE:
        raise bad_user_input(
            FieldViolation("first", f"must be between 1 and {MAX_PAGE_SIZE}, got {first}")
        )


async def _read_order(info: GatewayInfo, order_id: str, field: str) -> order_pb2.Order:
    """The order (one batched read), to judge a rule that depends on it."""
    _check_ids(**{field: order_id})
    return await info.context.loaders.order.load(order_id)


async def _merged_ids(info: GatewayInfo) -> list[str]:
    """The members merged into the calling customer's member (their orders are theirs)."""
    member_id = info.context.principal.member_id
    if not member_id:
        return []
    try:
        member = await info.context.loaders.member.load(member_id)
    except GraphQLError as error:
        if (error.extensions or {}).get("code") == ErrorCode.NOT_FOUND.value:
            return []
        raise
    return list(member.merged_member_ids)


def _place_request(
    info: GatewayInfo, data: PlaceOrderInput, idempotency_key: str = ""
) -> order_pb2.PlaceOrderRequest:
    if data.fulfillment is FulfillmentType.IN_STORE_PURCHASE:
        raise bad_user_input(
            FieldViolation("input.fulfillment", "IN_STORE_PURCHASE is a till sale (tillSale)")
        )
    principal = info.context.principal
    request = order_pb2.PlaceOrderRequest(
        idempotency_key=idempotency_key,
        member_id=principal.member_id or "",
        store_id=data.store_id or "",
        fulfillment=FULFILLMENT_TO_PROTO[data.fulfillment],
        lines=lines_to_proto(data.lines),
        channel=info.context.channel.channel,
        coupon_id=data.coupon_id or "",
        redeem_points=data.redeem_points,
        pay_at_pickup=data.pay_at_pickup,
        actor=orders_access.actor(principal),
    )
    if data.delivery_address is not None:
        request.delivery_address.CopyFrom(data.delivery_address.to_proto())
    return request


@strawberry.type
class OrderQuery:
    @resolver(
        description="What an order would cost now (prices for the X-Retail-Channel header "
        "and the member's tier, coupon, points, pickup promise); holds and changes nothing. "
        "Customers."
    )
    async def preview_order(self, info: GatewayInfo, input: PlaceOrderInput) -> OrderPreview:
        principal = info.context.principal
        authz.require(orders_access.customer_error(principal, "preview orders"))
        request = order_pb2.PreviewOrderRequest(order=_place_request(info, input))
        try:
            reply = await info.context.clients.order.PreviewOrder(request)
        except grpc.aio.AioRpcError as error:
            raise _order_error(error, _PLACE_FIELDS) from None
        return OrderPreview.from_proto(reply)

    @resolver(
        description="An order by id: its customer, its stores' staff, the pickup store's "
        "kiosks, admins (FORBIDDEN for anyone else, without any of its data)."
    )
    async def order(self, info: GatewayInfo, id: strawberry.ID) -> Order | None:
        principal = info.context.principal
        authz.require(orders_access.signed_in_error(principal, "read orders"))
        order = await _read_order(info, id, "id")
        merged: list[str] = []
        if principal.role is Role.CUSTOMER and order.member_id != principal.member_id:
            merged = await _merged_ids(info)
        authz.require(orders_access.read_error(principal, order, merged))
        return Order.from_proto(order)

    @resolver(
        description="The signed-in customer's orders, newest first (with the orders of "
        "members merged into theirs). Customers."
    )
    async def my_orders(
        self, info: GatewayInfo, first: int = 20, after: str | None = None
    ) -> OrderConnection:
        principal = info.context.principal
        authz.require(orders_access.customer_error(principal, "list your orders"))
        _check_first(first)
        request = order_pb2.ListOrdersRequest(
            member_id=principal.member_id or "", page_size=first, page_token=after or ""
        )
        try:
            reply = await info.context.clients.order.ListOrders(request)
        except grpc.aio.AioRpcError as error:
            raise _order_error(error, _PAGE_FIELDS) from None
        info.context.loaders.order.prime_many({o.id: o for o in reply.orders})
        return order_connection(reply.orders, reply.next_page_token)

    @resolver(
        description="A store's orders, oldest first: the pick list and pickup queue. Without "
        "`status`, the open ones (AWAITING_PAYMENT, CONFIRMED, READY_FOR_PICKUP). Staff of "
        "that store, or admin."
    )
    async def store_orders(
        self,
        info: GatewayInfo,
        store_id: strawberry.ID,
        status: list[OrderStatus] | None = None,
        first: int = 20,
        after: str | None = None,
    ) -> OrderConnection:
        authz.require(orders_access.store_orders_error(info.context.principal, store_id))
        _check_ids(storeId=store_id)
        _check_first(first)
        request = order_pb2.ListStoreOrdersRequest(
            store_id=store_id,
            statuses=[STATUS_TO_PROTO[s] for s in status or ()],
            page_size=first,
            page_token=after or "",
        )
        try:
            reply = await info.context.clients.order.ListStoreOrders(request)
        except grpc.aio.AioRpcError as error:
            raise _order_error(error, _PAGE_FIELDS) from None
        info.context.loaders.order.prime_many({o.id: o for o in reply.orders})
        return order_connection(reply.orders, reply.next_page_token)


@strawberry.type
class OrderMutation:
    @resolver(
        description="Places an online order for the signed-in customer (pickup in store or "
        "delivery), priced for the X-Retail-Channel header. A retry with the same "
        "idempotencyKey and input answers the same order; the key with another input is a "
        "CONFLICT; a retry while the first is still running is RETRY_LATER. Customers."
    )
    async def place_order(
        self, info: GatewayInfo, input: PlaceOrderInput, idempotency_key: str
    ) -> Order:
        principal = info.context.principal
        authz.require(orders_access.customer_error(principal, "place orders"))
        request = _place_request(info, input, idempotency_key)
        try:
            reply = await info.context.clients.order.PlaceOrder(request)
        except grpc.aio.AioRpcError as error:
            raise _order_error(error, _PLACE_FIELDS) from None
        return Order.from_proto(reply.order)

    @resolver(
        description="Cancels an order, releasing stock, coupon and points (refunded if paid): "
        "its customer before it is ready, its store's staff and admins before hand-over."
    )
    async def cancel_order(self, info: GatewayInfo, id: strawberry.ID, reason: str = "") -> Order:
        principal = info.context.principal
        authz.require(orders_access.cancel_role_error(principal))
        order = await _read_order(info, id, "id")
        authz.require(orders_access.cancel_error(principal, order))
        request = order_pb2.CancelOrderRequest(
            id=id, reason=reason, actor=orders_access.actor(principal)
        )
        try:
            reply = await info.context.clients.order.CancelOrder(request)
        except grpc.aio.AioRpcError as error:
            raise _order_error(error) from None
        return Order.from_proto(reply.order)

    @resolver(
        description="Marks a confirmed pickup order ready and issues its pickup code. Staff of "
        "the pickup store; a replay answers the same code."
    )
    async def mark_order_ready(self, info: GatewayInfo, order_id: strawberry.ID) -> OrderReady:
        principal = info.context.principal
        authz.require(orders_access.ready_role_error(principal))
        order = await _read_order(info, order_id, "orderId")
        authz.require(orders_access.ready_error(principal, order))
        request = order_pb2.MarkReadyForPickupRequest(
            order_id=order_id,
            associate_id=principal.subject,
            actor=orders_access.actor(principal),
        )
        try:
            reply = await info.context.clients.order.MarkReadyForPickup(request)
        except grpc.aio.AioRpcError as error:
            raise _order_error(error) from None
        return OrderReady(order=Order.from_proto(reply.order), pickup_code=reply.pickup_code)

    @resolver(
        description="Hands a ready pickup order over: with its pickup code (the 6 digits or "
        "the scanned QR payload) at the counter or a kiosk of the pickup store; staff only: "
        "`override` with a `reason` (locked code, ID checked) and `counterPayment` (pay at "
        "pickup, exactly the total). Wrong codes: VERIFICATION_FAILED, then "
        "PICKUP_CODE_LOCKED after 5."
    )
    async def hand_over_order(
        self,
        info: GatewayInfo,
        order_id: strawberry.ID,
        pickup_code: str | None = None,
        override: bool = False,
        reason: str | None = None,
        counter_payment: PaymentInput | None = None,
    ) -> Order:
        principal = info.context.principal
        authz.require(
            orders_access.hand_over_role_error(
                principal, override=override, counter_payment=counter_payment is not None
            )
        )
        order = await _read_order(info, order_id, "orderId")
        authz.require(orders_access.hand_over_error(principal, order))
        request = order_pb2.ConfirmPickupRequest(
            order_id=order_id,
            pickup_code=pickup_code or "",
            actor=orders_access.actor(principal),
            associate_override=override,
            override_reason=reason or "",
        )
        if counter_payment is not None:
            request.counter_payment.CopyFrom(counter_payment.to_proto())
        try:
            reply = await info.context.clients.order.ConfirmPickup(request)
        except grpc.aio.AioRpcError as error:
            raise _order_error(error, _HAND_OVER_FIELDS) from None
        return Order.from_proto(reply.order)

    @resolver(
        description="A sale at the till, completed at once: the shopper's phone finds or "
        "enrols the member (paying is joining), then the order is placed with the serving "
        "associate (the caller) and the payment taken, which must equal the total "
        "(AMOUNT_MISMATCH otherwise). Staff of that store; idempotent by idempotencyKey."
    )
    async def till_sale(
        self, info: GatewayInfo, input: TillSaleInput, idempotency_key: str
    ) -> Order:
        principal = info.context.principal
        authz.require(orders_access.till_error(principal, input.store_id))
        channel = info.context.channel.channel or common_pb2.CHANNEL_POS
        member_id = ""
        if input.member_phone:
            ensure = member_pb2.EnsureMemberRequest(
                identity=member_pb2.Identity(
                    kind=member_pb2.IDENTITY_KIND_PHONE, value=input.member_phone.strip()
                ),
                channel=channel,
                store_id=input.store_id,
                associate_id=principal.subject,
            )
            try:
                ensured = await info.context.clients.member.EnsureMember(ensure)
            except grpc.aio.AioRpcError as error:
                raise from_rpc_error(
                    error, service="member", field_names=_ENSURE_MEMBER_FIELDS
                ) from None
            member_id = ensured.member.id
            info.context.loaders.member.prime(member_id, ensured.member)
        request = order_pb2.PlaceOrderRequest(
            idempotency_key=idempotency_key,
            member_id=member_id,
            store_id=input.store_id,
            fulfillment=order_pb2.FULFILLMENT_TYPE_IN_STORE_PURCHASE,
            lines=lines_to_proto(input.lines),
            channel=channel,
            coupon_code=(input.coupon_code or "").strip(),
            redeem_points=input.redeem_points,
            associate_id=principal.subject,
            actor=orders_access.actor(principal),
            till_payment=input.payment.to_proto(),
        )
        try:
            reply = await info.context.clients.order.PlaceOrder(request)
        except grpc.aio.AioRpcError as error:
            raise _order_error(error, _PLACE_FIELDS) from None
        return Order.from_proto(reply.order)

    @resolver(
        description="Items of a completed order brought back to a store offering returns (any "
        "channel, any store): restocked there, the allocated paid amount refunded, points "
        "clawed back. Idempotent by returnId. Staff of the receiving store, or admin."
    )
    async def return_items(
        self,
        info: GatewayInfo,
        order_id: strawberry.ID,
        return_id: strawberry.ID,
        store_id: strawberry.ID,
        lines: list[OrderLineInput],
        reason: str = "",
    ) -> ReturnResult:
        principal = info.context.principal
        authz.require(orders_access.return_error(principal, store_id))
        request = order_pb2.ReturnItemsRequest(
            order_id=order_id,
            return_id=return_id,
            store_id=store_id,
            lines=lines_to_proto(lines),
            reason=reason,
            actor=orders_access.actor(principal),
        )
        try:
            reply = await info.context.clients.order.ReturnItems(request)
        except grpc.aio.AioRpcError as error:
            raise _order_error(error) from None
        return ReturnResult(
            order=Order.from_proto(reply.order),
            order_return=OrderReturn.from_proto(reply.order_return),
        )
