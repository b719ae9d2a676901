"""The gateway's schema as an Apollo Federation v2 subgraph.

A retailer running Apollo Router, Hive Gateway or another Federation v2 router can mount this
gateway as one subgraph of a larger supergraph. The served schema is a strawberry federation
schema: it declares `@link(url: "https://specs.apollo.dev/federation/v2.3", import:
["@key"])`, puts `@key(fields: "id")` on every entity in ENTITIES, and answers

- `_service { sdl }`: the subgraph SDL (committed as gateway/subgraph.graphql, checked by a
  test, composed with @apollo/composition in another);
- `_entities(representations: [{__typename, id}])`: each entity resolved exactly as the
  query field that reads it by id (`product(id:)`, `store(id:)`, `order(id:)`,
  `member(id:)`): the same id
  checks, the same authorization, the same per-request DataLoaders, so n representations of
  one type cost one batched call and `_entities` reveals nothing its query would not. Sku
  has no query field; it is read through the SKU DataLoader (BatchGetSkus).

Adding an entity is one line below: the type and the query field that reads it by id
(e.g. `entity(Member, query_field(MemberConsoleQuery, "member"))`).

gateway/schema.graphql stays the plain SDL for clients (their code generators know nothing
of federation): the same schema without `_service`, `_entities`, the `@link`/`@key`
directives and federation's own types (`plain_sdl`).

When introspection is off (production), `_service` is refused too: its SDL is the whole
schema. A router in production composes from the committed subgraph.graphql instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, cast

import strawberry
from graphql import (
    FieldNode,
    GraphQLError,
    GraphQLObjectType,
    GraphQLSchema,
    ValidationRule,
    is_introspection_type,
    is_specified_scalar_type,
)
from graphql.utilities.print_schema import print_type
from strawberry.extensions import AddValidationRules
from strawberry.federation.schema import FederationAny
from strawberry.federation.schema_directives import Key
from strawberry.printer import print_schema

from gateway.catalog import CatalogQuery, Product, Sku
from gateway.context import GatewayInfo
from gateway.errors import bad_user_input
from gateway.members_console import MemberConsoleQuery
from gateway.members_types import Member
from gateway.orders import OrderQuery
from gateway.orders_types import Order
from gateway.stores import Store, StoreQuery
from retail_kit.errors import FieldViolation
from retail_kit.validation import id_violation

FEDERATION_VERSION: Final = "2.3"
"""The lowest version with everything imported (@key needs 2.0); routers since 2023 take it."""

FEDERATION_FIELDS = ("_entities", "_service")

Resolve = Callable[[GatewayInfo, str], Awaitable[Any]]
"""Reads one entity by id for `_entities` (None or an error if it cannot be seen)."""

_RESOLVERS: dict[str, Resolve] = {}


def entity(cls: type, resolve: Resolve, key: str = "id") -> None:
    """Declares `cls` a federation entity with `@key(fields: key)`, read by `resolve`."""
    definition = cls.__strawberry_definition__  # type: ignore[attr-defined]
    if not any(isinstance(d, Key) for d in definition.directives):
        definition.directives = [*definition.directives, Key(fields=key)]  # type: ignore[arg-type]
    _RESOLVERS[definition.name] = resolve


def query_field(query: type, name: str) -> Resolve:
    """The resolver of `query`'s field `name(id:)`, called as the query would call it."""
    field = next(f for f in query.__strawberry_definition__.fields if f.python_name == name)  # type: ignore[attr-defined]
    function = field.base_resolver.wrapped_func

    async def resolve(info: GatewayInfo, entity_id: str) -> Any:
        return await function(None, info=info, id=strawberry.ID(entity_id))

    return resolve


async def _sku(info: GatewayInfo, sku_id: str) -> Sku:
    if violation := id_violation("id", sku_id):
        raise bad_user_input(violation)
    return Sku.from_proto(await info.context.loaders.sku.load(sku_id), "")


# The entities: one line each.
entity(Product, query_field(CatalogQuery, "product"))
entity(Sku, _sku)
entity(Store, query_field(StoreQuery, "store"))
entity(Order, query_field(OrderQuery, "order"))
entity(Member, query_field(MemberConsoleQuery, "member"))


def _bad_representation(index: int, problem: str) -> GraphQLError:
    return bad_user_input(FieldViolation(f"representations[{index}]", problem))


class SubgraphSchema(strawberry.federation.Schema):
    """strawberry's federation schema with our `_entities`: every representation checked
    (an object with a known `__typename` and a string `id`) and answered on its own (a bad
    or unseen one is an error at its index, the others still resolve), all read at once so
    the DataLoaders batch them."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(federation_version=FEDERATION_VERSION, **kwargs)

    async def entities_resolver(  # type: ignore[override]
        self, info: GatewayInfo, representations: list[FederationAny]
    ) -> list[FederationAny]:
        async def one(index: int, representation: object) -> Any:
            if not isinstance(representation, dict):
                raise _bad_representation(index, "must be an object")
            type_name = representation.get("__typename")
            resolve = _RESOLVERS.get(type_name) if isinstance(type_name, str) else None
            if resolve is None:
                known = ", ".join(sorted(_RESOLVERS))
                raise _bad_representation(index, f"__typename must be one of {known}")
            entity_id = representation.get("id")
            if not isinstance(entity_id, str):
                raise _bad_representation(index, "id must be a string")
            return await resolve(info, entity_id)

        results = await asyncio.gather(
            *(one(i, r) for i, r in enumerate(representations)), return_exceptions=True
        )
        return cast(list[FederationAny], results)


def subgraph_sdl(schema: strawberry.Schema) -> str:
    """What `_service { sdl }` answers."""
    return print_schema(schema).rstrip("\n") + "\n"


def _federation_only(name: str) -> bool:
    # _Any, _Entity, _Service, _FieldSet; link__Import, link__Purpose, federation__...
    return name.startswith("_") or "__" in name


def plain_sdl(schema: GraphQLSchema) -> str:
    """The schema as clients see it, without what federation adds (same printer as before)."""
    printed = []
    for name in sorted(schema.type_map):
        named = schema.type_map[name]
        if (
            _federation_only(name)
            or is_specified_scalar_type(named)
            or is_introspection_type(named)
        ):
            continue
        if named is schema.query_type:
            assert isinstance(named, GraphQLObjectType)
            fields = {k: v for k, v in named.fields.items() if k not in FEDERATION_FIELDS}
            named = GraphQLObjectType(named.name, fields, description=named.description)
        printed.append(print_type(named))
    return "\n\n".join(printed) + "\n"


class NoServiceSdl(ValidationRule):
    """With introspection off, `_service` is introspection too: refused like `__schema`."""

    def enter_field(self, node: FieldNode, *_args: Any) -> None:
        parent = self.context.get_parent_type()
        if node.name.value == "_service" and parent is self.context.schema.query_type:
            self.report_error(
                GraphQLError(
                    "GraphQL introspection has been disabled, but the requested query "
                    "contained the field '_service'.",
                    node,
                )
            )


def entity_types() -> Sequence[str]:
    return sorted(_RESOLVERS)


class DisableServiceSdl(AddValidationRules):
    """NoServiceSdl for every operation (added with DisableIntrospection)."""

    def __init__(self) -> None:
        super().__init__([NoServiceSdl])
