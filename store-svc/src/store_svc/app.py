"""Wires store-svc: repository and servicer on a ServiceHost."""

from __future__ import annotations

import grpc

from retail.store.v1 import store_pb2, store_pb2_grpc
from retail_kit.server import ServiceContext, ServiceHost
from store_svc.repository import StoreRepository
from store_svc.servicer import StoreServicer
from store_svc.settings import StoreSettings

NAME = "store-svc"
SERVICE_NAMES = (store_pb2.DESCRIPTOR.services_by_name["StoreService"].full_name,)


def register(server: grpc.aio.Server, context: ServiceContext) -> None:
    servicer = StoreServicer(StoreRepository(context.database))
    store_pb2_grpc.add_StoreServiceServicer_to_server(servicer, server)


async def on_ready(context: ServiceContext) -> None:
    await StoreRepository(context.database).ensure_indexes()


def build_host(settings: StoreSettings) -> ServiceHost:
    return ServiceHost(NAME, settings, SERVICE_NAMES, register, on_ready)
