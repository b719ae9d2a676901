"""Who may do what with orders (issue 8), checked in the gateway before any call.

Coarse rules by role come first and send nothing when they refuse. Rules that depend on
the order (whose it is, which store holds it) are judged on the order as order-svc returns
it from a read (BatchGetOrders through the request's loader) BEFORE any change is asked
for; a refusal then answers FORBIDDEN without any of the order's data. order-svc checks
the actor we pass again (defence in depth), and its own rules (statuses, codes, amounts)
are its business.

- A customer places, previews, lists and reads their own orders, and cancels them.
- An associate or store manager sees and works their store's orders: the queue, marking
  ready, handing over (with the code, or by override with a reason, taking payment at the
  counter), till sales, returns received at their store, cancelling an order of their
  store.
- A kiosk reads and hands over (with the code only, never by override or with a counter
  payment) the pickup orders of its own store.
- An admin reads any order, lists any store's queue, cancels and records returns.
- Anonymous callers get UNAUTHENTICATED; signed-in callers without the right FORBIDDEN.
"""

from __future__ import annotations

from collections.abc import Iterable

from graphql import GraphQLError

from gateway.auth import Principal, Role
from gateway.errors import forbidden, unauthenticated
from retail.common.v1 import common_pb2
from retail.order.v1 import order_pb2

STORE_STAFF = frozenset({Role.ASSOCIATE, Role.STORE_MANAGER})

_ACTOR_KINDS = {
    Role.CUSTOMER: common_pb2.ACTOR_KIND_CUSTOMER,
    Role.ASSOCIATE: common_pb2.ACTOR_KIND_ASSOCIATE,
    Role.STORE_MANAGER: common_pb2.ACTOR_KIND_STORE_MANAGER,
    Role.KIOSK: common_pb2.ACTOR_KIND_KIOSK,
    Role.ADMIN: common_pb2.ACTOR_KIND_ADMIN,
}


def actor(principal: Principal) -> common_pb2.Actor:
    """The caller as order-svc records it: a customer by member id, staff and admins by the
    token's subject, a kiosk by its device id; store roles and kiosks with their store."""
    if principal.role is Role.CUSTOMER:
        actor_id = principal.member_id or ""
    elif principal.role is Role.KIOSK:
        actor_id = principal.device_id or principal.subject
    else:
        actor_id = principal.subject or principal.role.value
    return common_pb2.Actor(
        kind=_ACTOR_KINDS.get(principal.role, common_pb2.ACTOR_KIND_UNSPECIFIED),
        id=actor_id,
        store_id=principal.store_id or "",
    )


def order_store_ids(order: order_pb2.Order) -> set[str]:
    """The order's store and every store holding a part of it."""
    return {s for s in (order.store_id, *(f.store_id for f in order.fulfilments)) if s}


def signed_in_error(principal: Principal, action: str) -> GraphQLError | None:
    if not principal.is_authenticated:
        return unauthenticated(f"sign in to {action}")
    return None


def _role_error(principal: Principal, action: str, roles: Iterable[Role]) -> GraphQLError | None:
    if error := signed_in_error(principal, action):
        return error
    if principal.role in set(roles):
        return None
    return forbidden(f"a {principal.role.value} may not {action}")


def customer_error(principal: Principal, action: str) -> GraphQLError | None:
    """Placing, previewing and listing one's own orders: customers only."""
    return _role_error(principal, action, (Role.CUSTOMER,))


def _store_error(
    principal: Principal, store_id: str, action: str, *, admin: bool
) -> GraphQLError | None:
    if error := signed_in_error(principal, action):
        return error
    if admin and principal.role is Role.ADMIN:
        return None
    if principal.role in STORE_STAFF:
        if principal.store_id == store_id:
            return None
        return forbidden(f"staff of store {principal.store_id!r} may not {action} of {store_id!r}")
    return forbidden(f"a {principal.role.value} may not {action}")


def store_orders_error(principal: Principal, store_id: str) -> GraphQLError | None:
    """A store's queue: its associates and manager, or an admin."""
    return _store_error(principal, store_id, "list the orders", admin=True)


def till_error(principal: Principal, store_id: str) -> GraphQLError | None:
    """A till sale: an associate or manager of that store (the serving associate)."""
    return _store_error(principal, store_id, "sell at the till", admin=False)


def return_error(principal: Principal, store_id: str) -> GraphQLError | None:
    """A return received at a store: its associates and manager, or an admin. The order may
    come from any store and channel (order-svc decides what can be returned)."""
    return _store_error(principal, store_id, "receive returns", admin=True)


def read_error(
    principal: Principal, order: order_pb2.Order, merged_member_ids: Iterable[str] = ()
) -> GraphQLError | None:
    """order(id), judged on the order read. `merged_member_ids`: the ids merged into the
    calling customer's member (their orders are theirs too)."""
    if error := signed_in_error(principal, "read orders"):
        return error
    role = principal.role
    if role is Role.ADMIN:
        return None
    if role is Role.CUSTOMER:
        if order.member_id and order.member_id in {principal.member_id, *merged_member_ids}:
            return None
    elif role in STORE_STAFF:
        if principal.store_id in order_store_ids(order):
            return None
    elif role is Role.KIOSK and (
        order.fulfillment == order_pb2.FULFILLMENT_TYPE_PICKUP_IN_STORE
        and order.store_id == principal.store_id
    ):
        return None
    return forbidden(f"a {role.value} may not read order {order.id!r}")


def is_own_order(principal: Principal, order: order_pb2.Order) -> bool:
    return (
        principal.role is Role.CUSTOMER
        and bool(order.member_id)
        and (order.member_id == principal.member_id)
    )


def cancel_role_error(principal: Principal) -> GraphQLError | None:
    return _role_error(principal, "cancel orders", (Role.CUSTOMER, *STORE_STAFF, Role.ADMIN))


def cancel_error(principal: Principal, order: order_pb2.Order) -> GraphQLError | None:
    """The order's customer, staff of one of its stores, or an admin."""
    if principal.role is Role.ADMIN or is_own_order(principal, order):
        return None
    if principal.role in STORE_STAFF and principal.store_id in order_store_ids(order):
        return None
    return forbidden(f"a {principal.role.value} may not cancel order {order.id!r}")


def ready_role_error(principal: Principal) -> GraphQLError | None:
    return _role_error(principal, "mark orders ready", STORE_STAFF)


def ready_error(principal: Principal, order: order_pb2.Order) -> GraphQLError | None:
    """Staff of the pickup store."""
    if principal.role in STORE_STAFF and order.store_id and principal.store_id == order.store_id:
        return None
    return forbidden(f"staff of store {principal.store_id!r} may not mark order {order.id!r} ready")


def hand_over_role_error(
    principal: Principal, *, override: bool, counter_payment: bool
) -> GraphQLError | None:
    """Staff, or a kiosk with the code alone (no override, no payment at a kiosk)."""
    if error := _role_error(principal, "hand orders over", (*STORE_STAFF, Role.KIOSK)):
        return error
    if principal.role is Role.KIOSK and override:
        return forbidden("a kiosk may not hand an order over without its code")
    if principal.role is Role.KIOSK and counter_payment:
        return forbidden("a kiosk may not take a payment: pay at the counter")
    return None


def hand_over_error(principal: Principal, order: order_pb2.Order) -> GraphQLError | None:
    """Staff or a kiosk of the pickup store."""
    if order.store_id and principal.store_id == order.store_id:
        return None
    return forbidden(
        f"a {principal.role.value} of store {principal.store_id!r} may not hand over "
        f"order {order.id!r}"
    )


def may_see_pickup_code(principal: Principal, member_id: str, store_id: str) -> bool:
    """The code (and QR payload) collect the goods: only the order's customer and the
    pickup store's staff see it (a kiosk checks it, it never shows it)."""
    if principal.role is Role.CUSTOMER:
        return bool(member_id) and principal.member_id == member_id
    return principal.role in STORE_STAFF and bool(store_id) and principal.store_id == store_id


def may_see_member(principal: Principal) -> bool:
    """Kiosks hand goods over; they are not shown who bought them."""
    return principal.role in (Role.CUSTOMER, Role.ADMIN, *STORE_STAFF)


def phone_shown_whole(principal: Principal) -> bool:
    """The member (an order a customer may read is theirs) and admins; staff see it masked."""
    return principal.role in (Role.CUSTOMER, Role.ADMIN)
