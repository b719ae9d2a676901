"""gRPC clients of the services order-svc calls: catalog (prices), store (stock, stores),
member (members, coupons, points). Channels connect lazily; every unary call gets the
settings' deadline unless it sets its own. Opened in on_ready, closed in on_stop; tests
point them at their own in-process services through the settings' *_addr fields."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import grpc
import grpc.aio

from order_svc.settings import OrderSettings
from retail.catalog.v1 import catalog_pb2_grpc
from retail.common.v1 import common_pb2
from retail.member.v1 import member_pb2_grpc
from retail.store.v1 import store_pb2_grpc
from retail_kit.apikeys import caller_interceptors
from retail_kit.deadlines import DefaultDeadlineInterceptor
from retail_kit.errors import ServiceError

if TYPE_CHECKING:
    from retail.catalog.v1.catalog_pb2_grpc import CatalogServiceAsyncStub
    from retail.member.v1.member_pb2_grpc import MemberServiceAsyncStub
    from retail.store.v1.store_pb2_grpc import StoreServiceAsyncStub

CLOSE_GRACE_SECONDS = 1.0


def not_connected(service: str) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.UNAVAILABLE,
        common_pb2.ERROR_REASON_UNSPECIFIED,
        f"order-svc is starting: its {service} client is not open yet",
        metadata={"service": service},
    )


class ServiceClients:
    """The three stubs; `open` before use, `close` at stop."""

    def __init__(self, settings: OrderSettings) -> None:
        self._settings = settings
        self._channels: tuple[grpc.aio.Channel, ...] = ()
        self._catalog: CatalogServiceAsyncStub | None = None
        self._store: StoreServiceAsyncStub | None = None
        self._member: MemberServiceAsyncStub | None = None

    def open(self) -> None:
        if self._channels:
            return
        settings = self._settings

        def channel(address: str) -> grpc.aio.Channel:
            return grpc.aio.insecure_channel(
                address,
                interceptors=[
                    # grpc-stubs types ClientInterceptor as a must-cast placeholder.
                    cast(
                        grpc.aio.ClientInterceptor,
                        DefaultDeadlineInterceptor(settings.call_timeout_seconds),
                    ),
                    # order-svc's own key (ORDER_SERVICE_API_KEY, scope internal), if set.
                    *caller_interceptors(settings.service_api_key),
                ],
            )

        catalog, store, member = (
            channel(settings.catalog_addr),
            channel(settings.store_addr),
            channel(settings.member_addr),
        )
        self._catalog = catalog_pb2_grpc.CatalogServiceStub(catalog)
        self._store = store_pb2_grpc.StoreServiceStub(store)
        self._member = member_pb2_grpc.MemberServiceStub(member)
        self._channels = (catalog, store, member)

    async def close(self, grace: float | None = CLOSE_GRACE_SECONDS) -> None:
        channels, self._channels = self._channels, ()
        self._catalog = self._store = self._member = None
        for channel in channels:
            await channel.close(grace)

    @property
    def catalog(self) -> CatalogServiceAsyncStub:
        if self._catalog is None:
            raise not_connected("catalog")
        return self._catalog

    @property
    def store(self) -> StoreServiceAsyncStub:
        if self._store is None:
            raise not_connected("store")
        return self._store

    @property
    def member(self) -> MemberServiceAsyncStub:
        if self._member is None:
            raise not_connected("member")
        return self._member
