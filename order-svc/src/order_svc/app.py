"""Wires order-svc: repository and servicer on a ServiceHost."""

from __future__ import annotations

import grpc

from order_svc.repository import OrderRepository
from order_svc.servicer import OrderServicer
from order_svc.settings import OrderSettings
from retail.order.v1 import order_pb2, order_pb2_grpc
from retail_kit.server import ServiceContext, ServiceHost

NAME = "order-svc"
SERVICE_NAMES = (order_pb2.DESCRIPTOR.services_by_name["OrderService"].full_name,)


def register(server: grpc.aio.Server, context: ServiceContext) -> None:
    servicer = OrderServicer(OrderRepository(context.database))
    order_pb2_grpc.add_OrderServiceServicer_to_server(servicer, server)


async def on_ready(context: ServiceContext) -> None:
    await OrderRepository(context.database).ensure_indexes()


def build_host(settings: OrderSettings) -> ServiceHost:
    return ServiceHost(NAME, settings, SERVICE_NAMES, register, on_ready)
