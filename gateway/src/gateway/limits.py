"""Depth and alias limits as one graphql-core validation rule, built once per process.

Why not strawberry's QueryDepthLimiter and MaxAliasesLimiter:

- Constructed per request (the only way to pass their settings as schema extensions), each
  creates a new rule *class* every time, and strawberry's ValidationCache keys on the rule
  classes, so it would never hit. This rule is one class, made at import.
- Both walk every fragment spread into its fragment again, without remembering what a
  fragment holds (strawberry-graphql 0.341.2). A document whose fragments each spread the
  next one twice (`fragment F1 on Query { ...F2 ...F2 }` ...) costs 2^n steps: 18 such
  fragments, ~200 tokens, took 1.8 s of validation CPU on this machine, 25 would take
  minutes, while the token limit allows hundreds. Here each fragment's depth and alias
  count are computed once per document and reused, so the cost is linear in the document.

The counting is theirs: an alias counts once per place it would be executed (a fragment
spread twice counts twice, which is what CVE-2026-47707 fixed in strawberry 0.315.7:
aliases behind fragment spreads count), the depth is the number of nested selection sets
of an operation (fields whose name starts with "__" do not count, nor do their children),
and the messages are the same. A depth beyond the limit is not explored further (the
document is refused anyway), which also keeps the walk short.
"""

from __future__ import annotations

from typing import Any

from graphql import (
    ASTValidationRule,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
    ValidationRule,
)


class _Walk:
    """Depth (capped at `cap`) and alias count of selection sets of one document, with each
    fragment's figures computed once. A fragment reached again while it is being computed
    (a cycle, which NoFragmentCyclesRule refuses) counts as empty."""

    def __init__(self, document: DocumentNode, cap: int) -> None:
        self.cap = cap
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        self.done: dict[str, tuple[int, int]] = {}
        self.open: set[str] = set()

    def selections(self, selection_set: SelectionSetNode | None, budget: int) -> tuple[int, int]:
        """(depth, aliases) of a selection set; `budget` levels may still be explored."""
        if selection_set is None or budget <= 0:
            return 0, 0
        depth = aliases = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                if selection.alias is not None:
                    aliases += 1
                if selection.selection_set is None or selection.name.value.startswith("__"):
                    continue
                inner_depth, inner_aliases = self.selections(selection.selection_set, budget - 1)
                depth = max(depth, 1 + inner_depth)
                aliases += inner_aliases
            elif isinstance(selection, InlineFragmentNode):
                inner_depth, inner_aliases = self.selections(selection.selection_set, budget)
                depth = max(depth, inner_depth)
                aliases += inner_aliases
            elif isinstance(selection, FragmentSpreadNode):
                inner_depth, inner_aliases = self.fragment(selection.name.value)
                depth = max(depth, inner_depth)
                aliases += inner_aliases
        return min(depth, self.cap), aliases

    def fragment(self, name: str) -> tuple[int, int]:
        """A fragment's own (depth, aliases), explored with the whole budget once: a depth
        relative to where it is spread, capped, so one figure serves every spread."""
        if name in self.done:
            return self.done[name]
        definition = self.fragments.get(name)
        if definition is None or name in self.open:
            return 0, 0
        self.open.add(name)
        figures = self.selections(definition.selection_set, self.cap)
        self.open.discard(name)
        self.done[name] = figures
        return figures


def document_limits_rule(max_depth: int, max_aliases: int) -> type[ASTValidationRule]:
    """One rule class refusing operations deeper than `max_depth` and documents with more
    than `max_aliases` aliases (counted as executed, fragments included)."""

    class DocumentLimitsRule(ValidationRule):
        def __init__(self, context: ValidationContext, *args: Any) -> None:
            super().__init__(context)
            walk = _Walk(context.document, max_depth + 1)
            total_aliases = 0
            for definition in context.document.definitions:
                if not isinstance(definition, OperationDefinitionNode):
                    continue
                depth, aliases = walk.selections(definition.selection_set, max_depth + 1)
                total_aliases += aliases
                if depth > max_depth:
                    name = definition.name.value if definition.name else "anonymous"
                    context.report_error(
                        GraphQLError(
                            f"'{name}' exceeds maximum operation depth of {max_depth}",
                            definition,
                        )
                    )
            if total_aliases > max_aliases:
                context.report_error(
                    GraphQLError(f"{total_aliases} aliases found. Allowed: {max_aliases}")
                )

    return DocumentLimitsRule
