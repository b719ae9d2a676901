"""A static cost estimate of a GraphQL operation, checked against a budget per role.

Computed from the parsed document, the schema and the request's variables before anything
runs (gateway/edge.py), so a refused operation makes no gRPC call. The estimate is an upper
bound of the work an operation can ask for, not a measurement:

- a field that returns an object (or a list of them) costs 1, or its weight in
  FIELD_WEIGHTS (root fields that fan out in a service: search, nearbyStores); a scalar or
  enum field costs 0, and so do introspection fields (`__schema`, `__type`, `__typename`:
  their size is the schema's, and production turns introspection off);
- a list field costs its weight once (one batched read) plus its length x what each item
  selects. A field with a `first` (or `last`, `limit`) argument sets that length: the
  literal, the variable's value, else the argument's default, at most MAX_PAGE_SIZE (a
  larger page is refused before anything is read); on a field returning a `...Connection`
  it is the length of the connection's `edges`/`nodes`, so pageInfo and facets count once
  (`products(first: 20) { edges { node { id } } }` costs 1 + (1 + 20 x 1));
- any other list's length is LIST_SIZES, else DEFAULT_LIST_SIZE;
  `_entities(representations: [...])`'s is the number of representations;
- abstract types (the `_Entity` union) count every type condition's selections;
- each fragment is costed once per document and reused at every spread (linear in the
  document, like gateway/limits.py), a fragment spread n times costs n times.

The figure is a Python int: a document that multiplies without bound just gets a large
number and is refused. Budgets per role (BUDGETS, GATEWAY_COST_BUDGETS): anonymous <
customer and kiosk < associate and store manager < admin.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    GraphQLUnionType,
    InlineFragmentNode,
    IntValueNode,
    ListValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    ValueNode,
    VariableNode,
    get_named_type,
    is_composite_type,
)

from gateway.auth import Role
from retail_kit.paging import MAX_PAGE_SIZE

COST_LIMIT_EXCEEDED = "COST_LIMIT_EXCEEDED"

FIELD_WEIGHTS: dict[str, int] = {
    "Query.search": 5,  # full-text search with facets in catalog-svc
    "Query.nearbyStores": 5,  # geo grid, opening hours and stock in store-svc
}
"""`Type.field` -> cost of the field itself, where 1 would understate it."""

LIST_SIZES: dict[str, int] = {
    "Product.skus": 5,
    "Product.imageUrls": 5,
}
"""`Type.field` -> assumed length of a list field that has no `first`."""

DEFAULT_LIST_SIZE = 10
SIZE_ARGUMENTS = ("first", "last", "limit")
COUNT_ARGUMENTS = {"_entities": "representations"}
"""List fields whose length is the number of items of one of their arguments."""

BUDGETS: dict[Role, int] = {
    Role.ANONYMOUS: 2_000,
    Role.CUSTOMER: 4_000,
    Role.KIOSK: 4_000,
    Role.ASSOCIATE: 10_000,
    Role.STORE_MANAGER: 10_000,
    Role.ADMIN: 25_000,
}
"""Default budget per role (a page of 50 products with SKUs and quotes costs ~950)."""


class BudgetError(ValueError):
    pass


def parse_budgets(text: str) -> dict[Role, int]:
    """ "role=points,..." over the defaults; "" keeps the defaults."""
    budgets = dict(BUDGETS)
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        try:
            role = Role(name.strip().lower())
            points = int(value)
        except ValueError:
            raise BudgetError(
                f"expected role=points (roles: {', '.join(r.value for r in Role)}), got {part!r}"
            ) from None
        if points < 1:
            raise BudgetError(f"{role.value}: a budget must be at least 1, got {points}")
        budgets[role] = points
    return budgets


@dataclass
class _Estimate:
    schema: GraphQLSchema
    fragments: dict[str, FragmentDefinitionNode]
    variables: Mapping[str, Any]
    done: dict[tuple[str, int | None], int] = field(default_factory=dict)
    open: set[str] = field(default_factory=set)

    def selections(
        self, selection_set: SelectionSetNode | None, parent: Any, page: int | None = None
    ) -> int:
        """Cost of a selection set on `parent`; `page` is the size a paging argument gave the
        connection these selections are on (its `edges`/`nodes` have that many items)."""
        if selection_set is None:
            return 0
        total = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                total += self.field(selection, parent, page)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                inner = self.schema.get_type(condition.name.value) if condition else parent
                total += self.selections(selection.selection_set, inner, page)
            elif isinstance(selection, FragmentSpreadNode):
                total += self.fragment(selection.name.value, page)
        return total

    def fragment(self, name: str, page: int | None) -> int:
        key = (name, page)
        if key in self.done:
            return self.done[key]
        definition = self.fragments.get(name)
        if definition is None or name in self.open:
            return 0  # unknown or cyclic: validation refuses the document anyway
        self.open.add(name)
        condition = self.schema.get_type(definition.type_condition.name.value)
        cost = self.selections(definition.selection_set, condition, page)
        self.open.discard(name)
        self.done[key] = cost
        return cost

    def field(self, node: FieldNode, parent: Any, page: int | None) -> int:
        name = node.name.value
        if name.startswith("__"):
            return 0
        definition: GraphQLField | None = None
        if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
            definition = parent.fields.get(name)
        if definition is None:
            # Unknown here (validation will refuse it) or a field of a union member selected
            # without a type condition: count it as an object field.
            return 1 + self.selections(node.selection_set, None)
        named = get_named_type(definition.type)
        key = f"{getattr(parent, 'name', '?')}.{name}"
        weight = FIELD_WEIGHTS.get(key, 1 if is_composite_type(named) else 0)
        if node.selection_set is None:
            return weight
        size = self.page_size(node, definition)
        if size is not None and not _is_list(definition.type):
            # A connection: the size applies to its edges/nodes, not to pageInfo or facets.
            return weight + self.selections(node.selection_set, named, size)
        if size is None:
            size = self.list_size(node, definition, parent, key, page)
        return weight + size * self.selections(node.selection_set, named)

    def page_size(self, node: FieldNode, definition: GraphQLField) -> int | None:
        """The value of the field's paging argument (given, else its default), if it has one."""
        for argument in SIZE_ARGUMENTS:
            if argument in definition.args:
                size = self.int_argument(node, argument)
                if size is None:
                    default = definition.args[argument].default_value
                    size = default if isinstance(default, int) else DEFAULT_LIST_SIZE
                # A larger page is refused (by the field or its service) before anything is
                # read, so no page is larger than MAX_PAGE_SIZE.
                return min(max(size, 0), MAX_PAGE_SIZE)
        return None

    def list_size(
        self, node: FieldNode, definition: GraphQLField, parent: Any, key: str, page: int | None
    ) -> int:
        if not _is_list(definition.type):
            return 1
        if getattr(parent, "name", "").endswith("Connection") and node.name.value in (
            "edges",
            "nodes",
        ):
            return DEFAULT_LIST_SIZE if page is None else page
        counted = COUNT_ARGUMENTS.get(node.name.value)
        if counted is not None:
            count = self.list_length(node, counted)
            if count is not None:
                return count
        return LIST_SIZES.get(key, DEFAULT_LIST_SIZE)

    def value(self, node: ValueNode) -> Any:
        if isinstance(node, VariableNode):
            return self.variables.get(node.name.value)
        if isinstance(node, IntValueNode):
            return int(node.value)
        if isinstance(node, ListValueNode):
            return list(node.values)
        return None

    def argument(self, node: FieldNode, name: str) -> Any:
        for argument in node.arguments or ():
            if argument.name.value == name:
                return self.value(argument.value)
        return None

    def int_argument(self, node: FieldNode, name: str) -> int | None:
        value = self.argument(node, name)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def list_length(self, node: FieldNode, name: str) -> int | None:
        value = self.argument(node, name)
        return len(value) if isinstance(value, list) else None


def _is_list(output: GraphQLOutputType) -> bool:
    while isinstance(output, GraphQLNonNull):
        output = output.of_type
    return isinstance(output, GraphQLList)


def operation_of(
    document: DocumentNode, operation_name: str | None
) -> OperationDefinitionNode | None:
    """The operation a request runs: the named one, or the only one; None if unclear."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name:
        return next((o for o in operations if o.name and o.name.value == operation_name), None)
    return operations[0] if len(operations) == 1 else None


def estimate(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None = None,
    variables: Mapping[str, Any] | None = None,
) -> int:
    """The cost of the operation the request names (0 if it names none: it will fail)."""
    operation = operation_of(document, operation_name)
    if operation is None:
        return 0
    root: GraphQLObjectType | GraphQLUnionType | None = {
        OperationType.QUERY: schema.query_type,
        OperationType.MUTATION: schema.mutation_type,
        OperationType.SUBSCRIPTION: schema.subscription_type,
    }[operation.operation]
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    return _Estimate(schema, fragments, variables or {}).selections(operation.selection_set, root)


def over_budget(cost: int, budget: int, role: Role) -> GraphQLError:
    return GraphQLError(
        f"query cost {cost} exceeds the {role.value} budget of {budget}: ask for fewer items "
        "(smaller `first`), fewer nested lists or fewer aliases",
        extensions={
            "code": COST_LIMIT_EXCEEDED,
            "cost": {"estimated": cost, "budget": budget, "role": role.value},
        },
    )
