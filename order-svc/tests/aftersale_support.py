"""What the effects, events and returns tests share: orders brought past hand-over over
gRPC, the outbox run by RunMaintenance, a member's ledger, an order-svc replica on the same
database (or one whose store-svc / member-svc address answers nothing), and a member-svc
started on a port chosen in advance (so an order-svc can be pointed at it before it runs)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import grpc

import member_svc.app
from member_svc.settings import MemberSettings
from retail.member.v1 import member_pb2
from retail.order.v1 import order_pb2
from retail_kit.embedded import free_port
from retail_kit.mongo import Document
from retail_kit.server import ServiceHost

from .conftest import (
    ADMIN,
    PICKUP_STORE,
    OrderService,
    Stack,
    new_member,
    order_service,
    pickup_request,
    set_stock,
)
from .lifecycle_support import Placed, associate, kiosk, pay, ready_pickup, stored


async def handed_over(
    stack: Stack, orders: OrderService, *, by_kiosk: bool = True, **options: Any
) -> Placed:
    """A paid pickup order, marked ready and handed over with its code (PICKED_UP)."""
    placed, code = await ready_pickup(stack, orders, **options)
    reply = await orders.stub.ConfirmPickup(
        order_pb2.ConfirmPickupRequest(
            order_id=placed.order.id,
            pickup_code=code,
            actor=kiosk() if by_kiosk else associate(),
        )
    )
    placed.order = reply.order
    assert placed.order.status == order_pb2.ORDER_STATUS_PICKED_UP
    return placed


async def handed_over_many(stack: Stack, orders: OrderService, count: int) -> list[Placed]:
    """`count` orders of one unit of one SKU (SKUs are a budget the whole suite shares),
    each by a fresh member, paid, marked ready and handed over at a kiosk."""
    (sku,) = stack.take_skus(1)
    await set_stock(stack, PICKUP_STORE, sku, count)

    async def one() -> Placed:
        member = await new_member(stack)
        order = (await orders.stub.PlaceOrder(pickup_request(member, [(sku, 1)]))).order
        order = await pay(orders, order)
        ready = await orders.stub.MarkReadyForPickup(
            order_pb2.MarkReadyForPickupRequest(order_id=order.id, actor=associate())
        )
        handed = await orders.stub.ConfirmPickup(
            order_pb2.ConfirmPickupRequest(
                order_id=order.id, pickup_code=ready.pickup_code, actor=kiosk()
            )
        )
        assert handed.order.status == order_pb2.ORDER_STATUS_PICKED_UP
        return Placed(handed.order, member, [sku])

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def maintenance(orders: OrderService) -> order_pb2.RunMaintenanceResponse:
    return await orders.stub.RunMaintenance(order_pb2.RunMaintenanceRequest())


async def ledger(stack: Stack, member_id: str) -> list[member_pb2.PointsEntry]:
    reply = await stack.member.ListPointsLedger(
        member_pb2.ListPointsLedgerRequest(member_id=member_id, page_size=100)
    )
    return list(reply.entries)


def effect(doc: Document, effect_id: str) -> Document:
    found = [e for e in doc.get("effects", ()) if e["id"] == effect_id]
    assert len(found) == 1, [e["id"] for e in doc.get("effects", ())]
    return found[0]


async def stored_effect(orders: OrderService, order_id: str, effect_id: str) -> Document:
    return effect(await stored(orders, order_id), effect_id)


async def assign_guide(stack: Stack, member_id: str, associate_id: str, store_id: str) -> None:
    await stack.member.AssignAssociate(
        member_pb2.AssignAssociateRequest(
            member_id=member_id,
            associate_id=associate_id,
            store_id=store_id,
            actor=ADMIN,
            reason="tests",
        )
    )


@asynccontextmanager
async def replica(
    orders: OrderService, stack: Stack, **overrides: Any
) -> AsyncIterator[OrderService]:
    """Another order-svc on the same order database (jobs off, its own clock)."""
    async with order_service(
        stack, database=orders.services.settings.database, **overrides
    ) as other:
        yield other


def dead_address() -> str:
    """A loopback address nothing listens on (calls to it fail UNAVAILABLE)."""
    return f"127.0.0.1:{free_port()}"


class CallCounter(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Counts the calls a server receives of one method, by one field of the request."""

    def __init__(self, method: str, field: str) -> None:
        self.method = method
        self.field = field
        self.calls: Counter[str] = Counter()

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        details: grpc.HandlerCallDetails,
    ) -> Any:
        handler = await continuation(details)
        if handler is None or not details.method.endswith(f"/{self.method}"):
            return handler
        inner = handler.unary_unary

        async def counted(request: Any, context: Any) -> Any:
            self.calls[getattr(request, self.field)] += 1
            return await inner(request, context)

        return handler._replace(unary_unary=counted)


@asynccontextmanager
async def member_service_on(
    stack: Stack,
    address: str,
    *,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),  # type: ignore[type-arg]
) -> AsyncIterator[ServiceHost]:
    """A second member-svc on the stack's member database, listening on `address`."""
    port = int(address.rsplit(":", 1)[1])
    base = stack.hosts["member"].context.settings
    assert isinstance(base, MemberSettings)
    settings = dataclasses.replace(base, host="127.0.0.1", port=port, grace_seconds=1.0)
    host = ServiceHost(
        member_svc.app.NAME,
        settings,
        member_svc.app.SERVICE_NAMES,
        member_svc.app.register,
        member_svc.app.on_ready,
        member_svc.app.on_stop,
        interceptors=interceptors,
    )
    await host.start()
    try:
        await host.ready.wait()
        yield host
    finally:
        await host.stop()
