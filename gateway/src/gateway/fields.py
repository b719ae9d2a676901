"""`resolver(description=...)`: strawberry.field with arguments, typed for mypy strict.

strawberry.field(description=...) is annotated as returning Any, so under mypy strict every
resolver it decorates would be "untyped". This wrapper keeps the resolver's own signature
for type checking; at run time it is exactly strawberry.field.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import strawberry

_Resolver = TypeVar("_Resolver", bound=Callable[..., Any])


def resolver(*, description: str) -> Callable[[_Resolver], _Resolver]:
    decorator: Callable[[_Resolver], _Resolver] = strawberry.field(description=description)
    return decorator
