"""OrderService RPCs after the sale: returns, the event stream, maintenance.

Owned by the EVENTS area; ReturnItems and WatchOrderEvents answer UNIMPLEMENTED until it
lands. RunMaintenance runs every background job once (jobs.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from order_svc import jobs
from order_svc.rpc_base import OrderRpcBase
from retail.order.v1 import order_pb2
from retail_kit.errors import Context, unimplemented


class AftersaleRpcs(OrderRpcBase):
    async def ReturnItems(
        self, request: order_pb2.ReturnItemsRequest, context: Context
    ) -> order_pb2.ReturnItemsResponse:
        raise unimplemented("ReturnItems")

    async def WatchOrderEvents(
        self, request: order_pb2.WatchOrderEventsRequest, context: Context
    ) -> AsyncIterator[order_pb2.WatchOrderEventsResponse]:
        # An async generator, as a server-streaming handler must be: the kit's interceptor
        # iterates it, and a plain coroutine would surface as INTERNAL instead.
        raise unimplemented("WatchOrderEvents")
        yield  # unreachable; makes this function an async generator

    async def RunMaintenance(
        self, request: order_pb2.RunMaintenanceRequest, context: Context
    ) -> order_pb2.RunMaintenanceResponse:
        done = await jobs.run_jobs_once(self.services)
        return order_pb2.RunMaintenanceResponse(
            recovered=done.get(jobs.RECOVERY, 0),
            payment_timeouts=done.get(jobs.PAYMENT_TIMEOUT, 0),
            expired=done.get(jobs.PICKUP_EXPIRY, 0),
            effects_delivered=done.get(jobs.EFFECTS, 0),
        )
