"""One schema from the per-domain slices, with the limits every public GraphQL API needs."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator

from graphql import GraphQLError
from strawberry.extensions import (
    AddValidationRules,
    DisableIntrospection,
    MaxTokensLimiter,
    ParserCache,
    SchemaExtension,
    ValidationCache,
)
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext

from gateway.catalog import CatalogQuery
from gateway.catalog_admin import CatalogAdminMutation
from gateway.channel import ChannelCheck
from gateway.errors import ErrorCodes, log_unexpected
from gateway.federation import DisableServiceSdl, SubgraphSchema
from gateway.inventory import InventoryMutation, InventoryQuery
from gateway.limits import document_limits_rule
from gateway.members import MemberCustomerMutation
from gateway.members_admin import MemberAdminMutation, MemberAdminQuery
from gateway.members_console import MemberConsoleMutation, MemberConsoleQuery
from gateway.orders import OrderMutation, OrderQuery
from gateway.stores import StoreQuery
from gateway.subscriptions import OrderSubscription
from gateway.suggestions import HideFieldSuggestions
from gateway.tracing import OperationTracing
from gateway.viewer import ViewerQuery

MAX_DEPTH = 10
MAX_ALIASES = 30
MAX_TOKENS = 2000
DOCUMENT_CACHE_SIZE = 256
"""Parsed documents and validation results kept (each an LRU of that many query texts)."""

Query = merge_types(
    "Query",
    (
        CatalogQuery,
        StoreQuery,
        InventoryQuery,
        ViewerQuery,
        OrderQuery,
        MemberConsoleQuery,
        MemberAdminQuery,
    ),
)
Mutation = merge_types(
    "Mutation",
    (
        CatalogAdminMutation,
        InventoryMutation,
        OrderMutation,
        MemberCustomerMutation,
        MemberConsoleMutation,
        MemberAdminMutation,
    ),
)

Subscription = merge_types("Subscription", (OrderSubscription,))

DOCUMENT_LIMITS = document_limits_rule(MAX_DEPTH, MAX_ALIASES)
"""Built once: the validation cache keys on the rule classes (gateway/limits.py)."""


class CachedParser(ParserCache):
    """strawberry's ParserCache, except that a document that does not parse (syntax, token
    limit) is left to strawberry's own parsing step, which answers it as a GraphQL error
    (GRAPHQL_PARSE_FAILED); raised from this hook it would bypass the error handling."""

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        # On an error nothing is cached (lru_cache keeps no exceptions): parsed and answered.
        with contextlib.suppress(GraphQLError):
            context.graphql_document = self.cached_parse_document(
                context.query, **context.parse_options
            )
        yield


class DocumentLimits(AddValidationRules):
    """Depth and alias limits (DOCUMENT_LIMITS) for every operation."""

    def __init__(self) -> None:
        super().__init__([DOCUMENT_LIMITS])


class GatewaySchema(SubgraphSchema):
    """A Federation v2 subgraph schema (gateway/federation.py)."""

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        # Client mistakes (bad input, not found, refused documents) are answered, not logged
        # as failures; only unexpected ones are, with their traceback, before being masked.
        log_unexpected(errors)


def build_schema(*, introspection: bool = True, field_suggestions: bool = True) -> GatewaySchema:
    """Parsing and validation are cached per query text (bounded LRUs shared by the process):
    a document seen before costs neither again. Documents refused by the token limit fail
    while parsing and are not kept; refused by validation, they are kept with their errors.
    """
    extensions: list[type[SchemaExtension] | Callable[[], SchemaExtension]] = [
        OperationTracing,
        ErrorCodes,
        ChannelCheck,
        functools.partial(MaxTokensLimiter, max_token_count=MAX_TOKENS),
        functools.partial(CachedParser, maxsize=DOCUMENT_CACHE_SIZE),
        DocumentLimits,
        functools.partial(ValidationCache, maxsize=DOCUMENT_CACHE_SIZE),
    ]
    if not introspection:
        extensions += [DisableIntrospection, DisableServiceSdl]
    if not field_suggestions:
        extensions.append(HideFieldSuggestions)
    return GatewaySchema(
        query=Query, mutation=Mutation, subscription=Subscription, extensions=extensions
    )
