"""Per-request DataLoaders: whatever a query touches is fetched in one batched call per kind.

Every entity a resolver reaches goes through one of these, so the number of gRPC calls a
request makes does not grow with the number of items it returns. They are fresh per request
(one caller never sees another's cache) and each knows the request's principal and channel,
which is what the price quotes depend on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import grpc
from graphql import GraphQLError
from strawberry.dataloader import DataLoader

from gateway.auth import Principal, Role
from gateway.channel import ChannelChoice
from gateway.clients import ServiceClients
from gateway.errors import ErrorCode, from_rpc_error, not_found
from gateway.members_loaders import MembershipLoaders, build_membership_loaders
from retail.catalog.v1 import catalog_pb2
from retail.member.v1 import member_pb2
from retail.order.v1 import order_pb2
from retail.store.v1 import store_pb2
from retail_kit.validation import MAX_BATCH_SIZE

_T = TypeVar("_T")

ALL_CATEGORIES = "*"
"""The one key of the category-tree loader: the whole tree is one ListCategories call."""


@dataclass(frozen=True, slots=True)
class Loaders:
    """Fresh per request, so one caller never sees another's cached (possibly scoped) data."""

    product: DataLoader[str, catalog_pb2.Product]
    sku: DataLoader[str, catalog_pb2.Sku]
    """SKUs by id (BatchGetSkus): federation's Sku entity."""
    category: DataLoader[str, catalog_pb2.Category]
    brand: DataLoader[str, catalog_pb2.Brand]
    category_tree: DataLoader[str, Sequence[catalog_pb2.Category]]
    quote: DataLoader[str, catalog_pb2.PriceQuote]
    store: DataLoader[str, store_pb2.Store]
    member: DataLoader[str, member_pb2.Member]
    order: DataLoader[str, order_pb2.Order]
    membership: MembershipLoaders
    """Coupon templates, campaigns, the tag catalogue (members_loaders.py)."""
    principal: Principal

    async def viewer_tier(self) -> str:
        """The calling customer's member tier; "" for anyone else or an unknown member."""
        principal = self.principal
        if principal.role is not Role.CUSTOMER or not principal.member_id:
            return ""
        try:
            member = await self.member.load(principal.member_id)
        except GraphQLError as error:
            if (error.extensions or {}).get("code") == ErrorCode.NOT_FOUND.value:
                return ""  # a token for a member since merged away prices like a guest
            raise
        return member.tier


async def _batch_get(
    ids: Sequence[str],
    fetch: Callable[[list[str]], Awaitable[Sequence[_T]]],
    key: Callable[[_T], str],
    entity: str,
    service: str,
) -> list[_T | BaseException]:
    """One BatchGet call; each key gets its item or a NOT_FOUND error of its own."""
    try:
        items = await fetch(list(ids))
    except grpc.aio.AioRpcError as error:
        raise from_rpc_error(error, service=service) from None
    found = {key(item): item for item in items}
    return [found.get(i) or not_found(entity, i) for i in ids]


def build_loaders(clients: ServiceClients, principal: Principal, channel: ChannelChoice) -> Loaders:
    catalog, store, member, order = clients.catalog, clients.store, clients.member, clients.order

    async def load_products(ids: list[str]) -> list[catalog_pb2.Product | BaseException]:
        async def fetch(batch: list[str]) -> Sequence[catalog_pb2.Product]:
            request = catalog_pb2.BatchGetProductsRequest(ids=batch)
            return (await catalog.BatchGetProducts(request)).products

        return await _batch_get(ids, fetch, lambda p: p.id, "product", "catalog")

    async def load_skus(ids: list[str]) -> list[catalog_pb2.Sku | BaseException]:
        async def fetch(batch: list[str]) -> Sequence[catalog_pb2.Sku]:
            return (await catalog.BatchGetSkus(catalog_pb2.BatchGetSkusRequest(ids=batch))).skus

        return await _batch_get(ids, fetch, lambda s: s.id, "sku", "catalog")

    async def load_categories(ids: list[str]) -> list[catalog_pb2.Category | BaseException]:
        async def fetch(batch: list[str]) -> Sequence[catalog_pb2.Category]:
            request = catalog_pb2.BatchGetCategoriesRequest(ids=batch)
            return (await catalog.BatchGetCategories(request)).categories

        return await _batch_get(ids, fetch, lambda c: c.id, "category", "catalog")

    async def load_brands(ids: list[str]) -> list[catalog_pb2.Brand | BaseException]:
        async def fetch(batch: list[str]) -> Sequence[catalog_pb2.Brand]:
            request = catalog_pb2.BatchGetBrandsRequest(ids=batch)
            return (await catalog.BatchGetBrands(request)).brands

        return await _batch_get(ids, fetch, lambda b: b.id, "brand", "catalog")

    async def load_stores(ids: list[str]) -> list[store_pb2.Store | BaseException]:
        async def fetch(batch: list[str]) -> Sequence[store_pb2.Store]:
            return (await store.BatchGetStores(store_pb2.BatchGetStoresRequest(ids=batch))).stores

        return await _batch_get(ids, fetch, lambda s: s.id, "store", "store")

    async def load_members(ids: list[str]) -> list[member_pb2.Member | BaseException]:
        async def fetch(batch: list[str]) -> Sequence[member_pb2.Member]:
            request = member_pb2.BatchGetMembersRequest(ids=batch)
            return (await member.BatchGetMembers(request)).members

        return await _batch_get(ids, fetch, lambda m: m.id, "member", "member")

    async def load_orders(ids: list[str]) -> list[order_pb2.Order | BaseException]:
        async def fetch(batch: list[str]) -> Sequence[order_pb2.Order]:
            return (await order.BatchGetOrders(order_pb2.BatchGetOrdersRequest(ids=batch))).orders

        return await _batch_get(ids, fetch, lambda o: o.id, "order", "order")

    async def load_tree(keys: list[str]) -> list[Sequence[catalog_pb2.Category]]:
        try:
            reply = await catalog.ListCategories(catalog_pb2.ListCategoriesRequest())
        except grpc.aio.AioRpcError as error:
            raise from_rpc_error(error, service="catalog") from None
        categories = list(reply.categories)
        category_loader.prime_many({c.id: c for c in categories})
        return [categories for _ in keys]

    async def load_quotes(sku_ids: list[str]) -> list[catalog_pb2.PriceQuote | BaseException]:
        # One QuotePrices for every SKU of the request, priced for its channel and tier.
        request = catalog_pb2.QuotePricesRequest(
            sku_ids=sku_ids,
            channel=channel.channel,
            tier=await loaders.viewer_tier(),
            store_id=principal.store_id or "",
        )
        try:
            reply = await catalog.QuotePrices(request)
        except grpc.aio.AioRpcError as error:
            raise from_rpc_error(error, service="catalog") from None
        found = {quote.sku_id: quote for quote in reply.quotes}
        return [found.get(i) or not_found("price quote", i) for i in sku_ids]

    def loader(
        load_fn: Callable[[list[str]], Awaitable[list[_T | BaseException]]],
    ) -> DataLoader[str, _T]:
        return DataLoader(load_fn=load_fn, max_batch_size=MAX_BATCH_SIZE)

    category_loader: DataLoader[str, catalog_pb2.Category] = loader(load_categories)
    loaders = Loaders(
        product=loader(load_products),
        sku=loader(load_skus),
        category=category_loader,
        brand=loader(load_brands),
        category_tree=DataLoader(load_fn=load_tree),
        quote=loader(load_quotes),
        store=loader(load_stores),
        member=loader(load_members),
        order=loader(load_orders),
        membership=build_membership_loaders(clients),
        principal=principal,
    )
    return loaders
