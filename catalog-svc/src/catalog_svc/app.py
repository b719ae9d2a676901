"""Wires catalog-svc: repository and servicer on a ServiceHost."""

from __future__ import annotations

import grpc
from pymongo.asynchronous.database import AsyncDatabase

from catalog_svc import access
from catalog_svc.posting_cache import PostingCache
from catalog_svc.repository import CatalogRepository
from catalog_svc.servicer import CatalogServicer
from catalog_svc.settings import CatalogSettings
from retail.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from retail_kit.mongo import Document
from retail_kit.server import ServiceContext, ServiceHost
from retail_kit.settings import ServiceSettings

NAME = "catalog-svc"
SERVICE_NAMES = (catalog_pb2.DESCRIPTOR.services_by_name["CatalogService"].full_name,)


def build_repository(
    database: AsyncDatabase[Document], settings: ServiceSettings
) -> CatalogRepository:
    """The service's repository, with a posting cache unless `search_cache_entries` is 0 (and
    in it a ranked-result cache unless `search_result_cache_entries` is 0)."""
    if not isinstance(settings, CatalogSettings) or settings.search_cache_entries <= 0:
        return CatalogRepository(database, None)
    results = max(settings.search_result_cache_entries, 0)
    return CatalogRepository(database, PostingCache(settings.search_cache_entries, results))


def register(server: grpc.aio.Server, context: ServiceContext) -> None:
    repository = build_repository(context.database, context.settings)
    catalog_pb2_grpc.add_CatalogServiceServicer_to_server(CatalogServicer(repository), server)


async def on_ready(context: ServiceContext) -> None:
    await CatalogRepository(context.database).ensure_indexes()


def build_host(settings: CatalogSettings) -> ServiceHost:
    return ServiceHost(
        NAME,
        settings,
        SERVICE_NAMES,
        register,
        on_ready,
        interceptors=access.interceptors(settings),
    )
