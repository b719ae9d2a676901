"""What every area's RPC mixin shares: the services (repository, clients, settings, clock)."""

from __future__ import annotations

from datetime import datetime

from order_svc.domain import Order
from order_svc.services import OrderServices
from retail.order.v1 import order_pb2_grpc
from retail_kit.errors import not_found
from retail_kit.validation import require_id


class OrderRpcBase(order_pb2_grpc.OrderServiceServicer):
    def __init__(self, services: OrderServices) -> None:
        self.services = services

    def now(self) -> datetime:
        return self.services.now()

    async def require_order(self, order_id: str, field: str = "order_id") -> Order:
        """The order by id, or NOT_FOUND naming it (INVALID_ARGUMENT for a malformed id)."""
        order = await self.services.repository.get_order(require_id(field, order_id))
        if order is None:
            raise not_found("order", order_id)
        return order
