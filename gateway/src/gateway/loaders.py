"""Per-request DataLoaders: every product a query touches is fetched in one batched call."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from strawberry.dataloader import DataLoader

from gateway.clients import ServiceClients
from gateway.errors import from_rpc_error, not_found
from retail.catalog.v1 import catalog_pb2
from retail_kit.validation import MAX_BATCH_SIZE


@dataclass(frozen=True, slots=True)
class Loaders:
    """Fresh per request, so one caller never sees another's cached (possibly scoped) data."""

    product: DataLoader[str, catalog_pb2.Product]


def build_loaders(clients: ServiceClients) -> Loaders:
    async def load_products(ids: list[str]) -> list[catalog_pb2.Product | BaseException]:
        try:
            reply = await clients.catalog.BatchGetProducts(
                catalog_pb2.BatchGetProductsRequest(ids=ids)
            )
        except grpc.aio.AioRpcError as error:
            raise from_rpc_error(error, service="catalog") from None
        found = {product.id: product for product in reply.products}
        return [found.get(i) or not_found("product", i) for i in ids]

    return Loaders(product=DataLoader(load_fn=load_products, max_batch_size=MAX_BATCH_SIZE))
