"""Who may call catalog-svc over gRPC: the scope each method needs (retail_kit.apikeys) and
the interceptors the host runs with (docs/PARTNERS.md lists every scope).

Reads are `catalog.read` (a marketplace, an ERP or a price comparison pulling products,
prices and categories); product and category writes are `catalog.write` (a PIM feeding the
catalog). Every other method, and any method added later, is first-party only (`internal`).
"""

from __future__ import annotations

import grpc

from retail.catalog.v1 import catalog_pb2
from retail_kit.apikeys import INTERNAL_SCOPE, ScopePolicy, server_interceptors
from retail_kit.settings import ServiceSettings

SERVICE = catalog_pb2.DESCRIPTOR.services_by_name["CatalogService"].full_name

SCOPE_READ = "catalog.read"
SCOPE_WRITE = "catalog.write"

_READS = (
    "GetProduct",
    "BatchGetProducts",
    "ListProducts",
    "BatchGetSkus",
    "GetProductByBarcode",
    "SearchProducts",
    "QuotePrices",
    "ListCategories",
    "BatchGetCategories",
    "BatchGetBrands",
)
_WRITES = (
    "CreateProduct",
    "UpdateProduct",
    "PublishProduct",
    "ArchiveProduct",
    "UpsertCategory",
    "UpsertBrand",
)

METHOD_SCOPES: dict[str, str] = {
    f"/{SERVICE}/*": INTERNAL_SCOPE,
    **{f"/{SERVICE}/{name}": SCOPE_READ for name in _READS},
    **{f"/{SERVICE}/{name}": SCOPE_WRITE for name in _WRITES},
}


def policy() -> ScopePolicy:
    return ScopePolicy(METHOD_SCOPES)


def interceptors(settings: ServiceSettings) -> list[grpc.aio.ServerInterceptor]:  # type: ignore[type-arg]
    """The API-key interceptor over CATALOG_PARTNER_API_KEYS (a bad value fails the start)."""
    return server_interceptors(settings, policy())
