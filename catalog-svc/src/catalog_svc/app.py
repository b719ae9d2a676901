"""Wires catalog-svc: repository and servicer on a ServiceHost."""

from __future__ import annotations

import grpc

from catalog_svc.repository import CatalogRepository
from catalog_svc.servicer import CatalogServicer
from catalog_svc.settings import CatalogSettings
from retail.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from retail_kit.server import ServiceContext, ServiceHost

NAME = "catalog-svc"
SERVICE_NAMES = (catalog_pb2.DESCRIPTOR.services_by_name["CatalogService"].full_name,)


def register(server: grpc.aio.Server, context: ServiceContext) -> None:
    servicer = CatalogServicer(CatalogRepository(context.database, context.guard))
    catalog_pb2_grpc.add_CatalogServiceServicer_to_server(servicer, server)


async def on_ready(context: ServiceContext) -> None:
    await CatalogRepository(context.database).ensure_indexes()


def build_host(settings: CatalogSettings) -> ServiceHost:
    return ServiceHost(NAME, settings, SERVICE_NAMES, register, on_ready)
