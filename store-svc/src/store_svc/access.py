"""Who may call store-svc over gRPC: the scope each method needs (retail_kit.apikeys) and
the interceptors the host runs with (docs/PARTNERS.md lists every scope).

`store.read`: stores, hours and the locator. `store.inventory.read`: stock levels and the
adjustment trail (a marketplace showing stock, an ERP reconciling). `store.inventory`:
stock adjustments and safety stock (a WMS receiving deliveries; the key's partner is
recorded as the actor by the caller's `actor_id`). `store.reservations`: reserve, commit,
release and read reservations (an external order system). Store, associate and kiosk
administration and staff look-ups are first-party only (`internal`), as is any method added
later.
"""

from __future__ import annotations

import grpc

from retail.store.v1 import store_pb2
from retail_kit.apikeys import INTERNAL_SCOPE, ScopePolicy, server_interceptors
from retail_kit.settings import ServiceSettings

SERVICE = store_pb2.DESCRIPTOR.services_by_name["StoreService"].full_name

SCOPE_READ = "store.read"
SCOPE_INVENTORY_READ = "store.inventory.read"
SCOPE_INVENTORY = "store.inventory"
SCOPE_RESERVATIONS = "store.reservations"

_BY_SCOPE: dict[str, tuple[str, ...]] = {
    SCOPE_READ: ("GetStore", "BatchGetStores", "ListStores", "NearbyStores"),
    SCOPE_INVENTORY_READ: ("BatchGetInventory", "ListInventoryAdjustments"),
    SCOPE_INVENTORY: ("AdjustInventory", "SetSafetyStock"),
    SCOPE_RESERVATIONS: (
        "ReserveStock",
        "CommitReservation",
        "ReleaseReservation",
        "GetReservation",
    ),
}

METHOD_SCOPES: dict[str, str] = {
    f"/{SERVICE}/*": INTERNAL_SCOPE,
    **{f"/{SERVICE}/{name}": scope for scope, names in _BY_SCOPE.items() for name in names},
}


def policy() -> ScopePolicy:
    return ScopePolicy(METHOD_SCOPES)


def interceptors(settings: ServiceSettings) -> list[grpc.aio.ServerInterceptor]:  # type: ignore[type-arg]
    """The API-key interceptor over STORE_PARTNER_API_KEYS (a bad value fails the start)."""
    return server_interceptors(settings, policy())
