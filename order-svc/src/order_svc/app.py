"""Wires order-svc: the services (repository, clients, settings, clock), the servicer and
the background jobs on a ServiceHost."""

from __future__ import annotations

import asyncio
import contextlib

import grpc

from order_svc import access
from order_svc.clients import ServiceClients
from order_svc.jobs import run_jobs_forever
from order_svc.repository import OrderRepository
from order_svc.servicer import OrderServicer
from order_svc.services import Clock, OrderServices, utc_now
from order_svc.settings import OrderSettings
from retail.order.v1 import order_pb2, order_pb2_grpc
from retail_kit.server import OnReady, OnStop, Register, ServiceContext, ServiceHost

NAME = "order-svc"
SERVICE_NAMES = (order_pb2.DESCRIPTOR.services_by_name["OrderService"].full_name,)

# Per running context (ServiceContext has slots, no weakref): its services and job loop.
_services: dict[int, OrderServices] = {}
_workers: dict[int, asyncio.Task[None]] = {}


def services_of(context: ServiceContext) -> OrderServices:
    """The services a running host's servicer uses (tests reach the clock and jobs here)."""
    return _services[id(context)]


def hooks(clock: Clock = utc_now) -> tuple[Register, OnReady, OnStop]:
    """register / on_ready / on_stop for a ServiceHost, with an injected clock."""

    def register(server: grpc.aio.Server, context: ServiceContext) -> None:
        settings = context.settings
        assert isinstance(settings, OrderSettings)
        services = OrderServices(
            OrderRepository(context.database), ServiceClients(settings), settings, clock
        )
        _services[id(context)] = services
        order_pb2_grpc.add_OrderServiceServicer_to_server(OrderServicer(services), server)

    async def on_ready(context: ServiceContext) -> None:
        services = services_of(context)
        await services.repository.ensure_indexes()
        services.clients.open()
        interval = services.settings.worker_interval_seconds
        if interval > 0:
            _workers[id(context)] = asyncio.create_task(run_jobs_forever(services, interval))

    async def on_stop(context: ServiceContext) -> None:
        task = _workers.pop(id(context), None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        services = _services.pop(id(context), None)
        if services is not None:
            await services.clients.close()

    return register, on_ready, on_stop


register, on_ready, on_stop = hooks()


def build_host(settings: OrderSettings, clock: Clock = utc_now) -> ServiceHost:
    return ServiceHost(
        NAME, settings, SERVICE_NAMES, *hooks(clock), interceptors=access.interceptors(settings)
    )
