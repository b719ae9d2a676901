"""One schema from the per-domain slices, with the limits every public GraphQL API needs."""

from __future__ import annotations

import functools
from collections.abc import Callable

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    DisableIntrospection,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
    SchemaExtension,
)
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext

from gateway.catalog import CatalogQuery
from gateway.catalog_admin import CatalogAdminMutation
from gateway.channel import ChannelCheck
from gateway.errors import ErrorCodes, log_unexpected
from gateway.inventory import InventoryMutation, InventoryQuery
from gateway.stores import StoreQuery
from gateway.tracing import OperationTracing
from gateway.viewer import ViewerQuery

MAX_DEPTH = 10
MAX_ALIASES = 30
MAX_TOKENS = 2000

Query = merge_types("Query", (CatalogQuery, StoreQuery, InventoryQuery, ViewerQuery))
Mutation = merge_types("Mutation", (CatalogAdminMutation, InventoryMutation))


class GatewaySchema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        # Client mistakes (bad input, not found, refused documents) are answered, not logged
        # as failures; only unexpected ones are, with their traceback, before being masked.
        log_unexpected(errors)


def build_schema(*, introspection: bool = True) -> GatewaySchema:
    extensions: list[type[SchemaExtension] | Callable[[], SchemaExtension]] = [
        OperationTracing,
        ErrorCodes,
        ChannelCheck,
        functools.partial(QueryDepthLimiter, max_depth=MAX_DEPTH),
        functools.partial(MaxAliasesLimiter, max_alias_count=MAX_ALIASES),
        functools.partial(MaxTokensLimiter, max_token_count=MAX_TOKENS),
    ]
    if not introspection:
        extensions.append(DisableIntrospection)
    return GatewaySchema(query=Query, mutation=Mutation, extensions=extensions)
