"""Partner access to order-svc over gRPC: which methods need a partner API key with which
scope (retail_kit.apikeys), and the interceptors the host runs with.

Methods not listed stay open to the internal network (the gateway, which authorizes its
users' actors itself, and the other services); issue 9 puts every method behind a key.
"""

from __future__ import annotations

import grpc

from order_svc.settings import OrderSettings
from retail.order.v1 import order_pb2
from retail_kit.apikeys import ApiKeyInterceptor, ScopePolicy, parse_api_keys

_SERVICE = order_pb2.DESCRIPTOR.services_by_name["OrderService"].full_name

# Payment partners confirm payments.
SCOPE_PAYMENTS = "order.payments"
# Delivery partners mark delivery fulfilments shipped and delivered (checked in the handler:
# the store's associates call the same RPCs through the gateway without a key).
SCOPE_DELIVERY = "order.delivery"

METHOD_SCOPES: dict[str, str] = {
    f"/{_SERVICE}/ConfirmPayment": SCOPE_PAYMENTS,
}


def policy() -> ScopePolicy:
    return ScopePolicy(METHOD_SCOPES)


def interceptors(settings: OrderSettings) -> list[grpc.aio.ServerInterceptor]:  # type: ignore[type-arg]
    """The API-key interceptor over the keys of ORDER_PARTNER_API_KEYS (a bad value fails
    the start, naming the entry)."""
    return [ApiKeyInterceptor(parse_api_keys(settings.partner_api_keys), policy())]
