"""Field suggestions ("Did you mean 'title'?") off: they spell out the schema to anyone.

graphql-core adds them to validation errors (unknown fields, arguments, types, enum values,
input fields) and to variable coercion errors. With introspection off (production) they
would still let a client map the schema by guessing; GATEWAY_FIELD_SUGGESTIONS=false (and
GATEWAY_PROFILE=production) removes the suggestion and keeps the rest of the message.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from strawberry.extensions import SchemaExtension

_SUGGESTION = re.compile(r"\s*Did you mean [^?]*\?")


def without_suggestion(message: str) -> str:
    return _SUGGESTION.sub("", message)


class HideFieldSuggestions(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        yield
        for error in getattr(self.execution_context.result, "errors", None) or ():
            if "Did you mean" in error.message:
                # Cached validation errors are the same objects next time: stripping again
                # changes nothing.
                error.message = without_suggestion(error.message)
