"""One grpc.aio channel per service, opened at start-up and closed at shutdown.

Every unary call gets the configured deadline unless the caller sets its own; streaming
calls (order watch streams) choose theirs explicitly, since a short default would end them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import grpc

from gateway.settings import GatewaySettings
from retail.catalog.v1 import catalog_pb2_grpc
from retail.member.v1 import member_pb2_grpc
from retail.order.v1 import order_pb2_grpc
from retail.store.v1 import store_pb2_grpc
from retail_kit.apikeys import caller_interceptors
from retail_kit.deadlines import DefaultDeadlineInterceptor

if TYPE_CHECKING:
    from retail.catalog.v1.catalog_pb2_grpc import CatalogServiceAsyncStub
    from retail.member.v1.member_pb2_grpc import MemberServiceAsyncStub
    from retail.order.v1.order_pb2_grpc import OrderServiceAsyncStub
    from retail.store.v1.store_pb2_grpc import StoreServiceAsyncStub

CLOSE_GRACE_SECONDS = 1.0


@dataclass(slots=True)
class ServiceClients:
    """The stubs resolvers call; one per backing service, sharing nothing but the deadline."""

    catalog: CatalogServiceAsyncStub
    store: StoreServiceAsyncStub
    order: OrderServiceAsyncStub
    member: MemberServiceAsyncStub
    channels: tuple[grpc.aio.Channel, ...]
    timeout_seconds: float

    @classmethod
    def open(
        cls,
        settings: GatewaySettings,
        interceptors: Sequence[grpc.aio.ClientInterceptor] = (),
    ) -> ServiceClients:
        """Creates the channels (they connect lazily, so a service may start later)."""

        def channel(address: str) -> grpc.aio.Channel:
            return grpc.aio.insecure_channel(
                address,
                interceptors=[
                    # grpc-stubs types ClientInterceptor as a must-cast placeholder.
                    cast(
                        grpc.aio.ClientInterceptor,
                        DefaultDeadlineInterceptor(settings.grpc_timeout_seconds),
                    ),
                    # The gateway's own key (GATEWAY_SERVICE_API_KEY, scope internal), if set.
                    *caller_interceptors(settings.service_api_key),
                    *interceptors,
                ],
            )

        catalog, store, order, member = (
            channel(settings.catalog_addr),
            channel(settings.store_addr),
            channel(settings.order_addr),
            channel(settings.member_addr),
        )
        return cls(
            catalog=catalog_pb2_grpc.CatalogServiceStub(catalog),
            store=store_pb2_grpc.StoreServiceStub(store),
            order=order_pb2_grpc.OrderServiceStub(order),
            member=member_pb2_grpc.MemberServiceStub(member),
            channels=(catalog, store, order, member),
            timeout_seconds=settings.grpc_timeout_seconds,
        )

    async def close(self, grace: float | None = CLOSE_GRACE_SECONDS) -> None:
        for channel in self.channels:
            await channel.close(grace)
