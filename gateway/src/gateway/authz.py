"""Coarse access rules, in one place. Every check runs before any call to a service, so a
refused operation sends nothing and changes nothing.

- Catalog writes (products, categories, brands): admin only.
- Store inventory (read levels, read the adjustment trail, adjust stock): an associate or a
  store manager of THAT store (the token's store_id), or an admin for any store.
- Safety stock: a store manager of that store, or an admin.
- Anonymous callers get UNAUTHENTICATED (signing in might help); signed-in callers whose
  role or store does not allow the operation get FORBIDDEN (signing in again would not).

Browsing (products, search, prices, stores, the store locator with availability) is public.
"""

from __future__ import annotations

from graphql import GraphQLError

from gateway.auth import Principal, Role
from gateway.errors import forbidden, unauthenticated

STORE_STAFF = frozenset({Role.ASSOCIATE, Role.STORE_MANAGER})


def _signed_in(principal: Principal, action: str) -> GraphQLError | None:
    if not principal.is_authenticated:
        return unauthenticated(f"sign in to {action}")
    return None


def catalog_write_error(principal: Principal) -> GraphQLError | None:
    """None when `principal` may write the catalog, else the error to answer."""
    if error := _signed_in(principal, "change the catalog"):
        return error
    if principal.role is Role.ADMIN:
        return None
    return forbidden(f"a {principal.role.value} may not change the catalog")


def inventory_error(principal: Principal, store_id: str, action: str) -> GraphQLError | None:
    """None when `principal` may read or adjust the inventory of `store_id`."""
    if error := _signed_in(principal, action):
        return error
    if principal.role is Role.ADMIN:
        return None
    if principal.role in STORE_STAFF:
        if principal.store_id == store_id:
            return None
        return forbidden(f"staff of store {principal.store_id!r} may not {action} of {store_id!r}")
    return forbidden(f"a {principal.role.value} may not {action}")


def safety_stock_error(principal: Principal, store_id: str) -> GraphQLError | None:
    """None when `principal` may set safety stock in `store_id` (its manager, or an admin)."""
    action = "set safety stock"
    if error := _signed_in(principal, action):
        return error
    if principal.role is Role.ADMIN:
        return None
    if principal.role is Role.STORE_MANAGER:
        if principal.store_id == store_id:
            return None
        return forbidden(f"the manager of {principal.store_id!r} may not {action} in {store_id!r}")
    return forbidden(f"a {principal.role.value} may not {action}")


def require(error: GraphQLError | None) -> None:
    if error is not None:
        raise error
