"""OrderService RPCs of the order lifecycle: cancel, payment, pickup, store queue, shipping.

Owned by the LIFECYCLE area; stubs answer UNIMPLEMENTED until it lands."""

from __future__ import annotations

from order_svc.rpc_base import OrderRpcBase
from retail.order.v1 import order_pb2
from retail_kit.errors import Context, unimplemented


class LifecycleRpcs(OrderRpcBase):
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

    async def ListStoreOrders(
        self, request: order_pb2.ListStoreOrdersRequest, context: Context
    ) -> order_pb2.ListStoreOrdersResponse:
        raise unimplemented("ListStoreOrders")

    async def MarkShipped(
        self, request: order_pb2.MarkShippedRequest, context: Context
    ) -> order_pb2.MarkShippedResponse:
        raise unimplemented("MarkShipped")

    async def MarkDelivered(
        self, request: order_pb2.MarkDeliveredRequest, context: Context
    ) -> order_pb2.MarkDeliveredResponse:
        raise unimplemented("MarkDelivered")
