"""Who may call order-svc over gRPC: the scope each method needs (retail_kit.apikeys) and
the interceptors the host runs with (docs/PARTNERS.md lists every scope).

`order.payments`: ConfirmPayment, partner-only (a payment partner confirms payments; the
first-party `internal` key of the gateway does not, and with ORDER_REQUIRE_API_KEY false a
call without a key does not either). `order.delivery`: MarkShipped / MarkDelivered (a courier;
the handler also lets the shipping store's staff move a fulfilment through the gateway).
`order.read`: orders, store queues and the event stream (an ERP, a BI feed). Everything that
acts for a customer or the store's staff (placing, previewing, cancelling, readying, handing
over, returns) and maintenance are first-party only (`internal`), as is any method added
later.
"""

from __future__ import annotations

import grpc

from retail.order.v1 import order_pb2
from retail_kit.apikeys import INTERNAL_SCOPE, ScopePolicy, server_interceptors
from retail_kit.settings import ServiceSettings

_SERVICE = order_pb2.DESCRIPTOR.services_by_name["OrderService"].full_name
SERVICE = _SERVICE

# Payment partners confirm payments.
SCOPE_PAYMENTS = "order.payments"
# Delivery partners mark delivery fulfilments shipped and delivered (checked in the handler:
# the store's associates call the same RPCs through the gateway, as its internal key).
SCOPE_DELIVERY = "order.delivery"
# Reading orders, store queues and the order event stream.
SCOPE_READ = "order.read"

_BY_SCOPE: dict[str, tuple[str, ...]] = {
    SCOPE_PAYMENTS: ("ConfirmPayment",),
    SCOPE_DELIVERY: ("MarkShipped", "MarkDelivered"),
    SCOPE_READ: ("GetOrder", "BatchGetOrders", "ListOrders", "ListStoreOrders", "WatchOrderEvents"),
}

METHOD_SCOPES: dict[str, str] = {
    f"/{_SERVICE}/*": INTERNAL_SCOPE,
    **{f"/{_SERVICE}/{name}": scope for scope, names in _BY_SCOPE.items() for name in names},
}


def policy() -> ScopePolicy:
    return ScopePolicy(METHOD_SCOPES, partner_only=(SCOPE_PAYMENTS,))


def interceptors(settings: ServiceSettings) -> list[grpc.aio.ServerInterceptor]:  # type: ignore[type-arg]
    """The API-key interceptor over ORDER_PARTNER_API_KEYS (a bad value fails the start,
    naming the entry)."""
    return server_interceptors(settings, policy())
