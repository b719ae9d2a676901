"""Subscriptions (issue 9) over graphql-transport-ws on /graphql: live order status.

- `orderUpdated(orderId, after)`: the events of one order, for whoever may read it (its
  customer, its stores' staff, the pickup store's kiosks, admins: orders_access.read_error).
- `storePickupQueue(storeId, after)`: the events of a store's orders, for its associates and
  manager (every order of the store), its kiosks (pickup orders only) and admins.

Each event carries `resumeToken`; a client that reconnects passes the last one it got as
`after` and receives every later event once (order_events.py: one shared upstream stream
per gateway process, a ring of recent events, a private upstream stream only to catch up).

Authentication: the bearer token comes in the `connection_init` payload
(`{"Authorization": "Bearer <token>"}`, browsers cannot set WebSocket headers) or as the
upgrade request's Authorization header; a bad token closes the connection (4403). All
authorization is judged when the client subscribes, before anything is asked of
order-svc: anonymous -> UNAUTHENTICATED, not allowed -> FORBIDDEN, a malformed id ->
BAD_USER_INPUT, an order that does not exist -> NOT_FOUND. A subscriber that falls behind
(order_events.QUEUE_SIZE events unsent) gets RESUME_REQUIRED with `resumeToken`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

import grpc
import strawberry
from graphql import GraphQLError
from graphql.execution.executor import Executor
from strawberry.exceptions import ConnectionRejectionError

from gateway import authz, orders_access
from gateway.auth import AuthError, Principal, Role, principal_from_header
from gateway.context import GatewayContext, GatewayInfo
from gateway.errors import bad_user_input, forbidden, from_rpc_error
from gateway.fields import resolver
from gateway.loaders import build_loaders
from gateway.order_events import Key, OrderEventHub, ResumeRequired
from gateway.orders_types import STATUS_TO_PROTO, Order, OrderStatus
from retail.order.v1 import order_pb2
from retail_kit.errors import FieldViolation
from retail_kit.validation import id_violation


def _per_event_memo_fix() -> None:
    """graphql-core 3.3.2's per-event executor is a shallow copy of the subscription's, so
    every event shares its sub-field memo, keyed by the id of each event's new field lists
    and keeping them alive: a subscription's memory grew by about 1 KiB per event delivered
    (measured: 150 -> 570 MiB over 120,000 deliveries). Each event gets its own memo (the
    memo still serves the lists inside one event)."""
    build = Executor.build_per_event_executor
    if getattr(build, "_fresh_memo", False):
        return

    def build_per_event_executor(self: Executor[Any], payload: Any) -> Executor[Any]:
        executor = build(self, payload)
        if hasattr(executor, "_relevant_sub_fields"):
            executor._relevant_sub_fields = {}
        return executor

    build_per_event_executor._fresh_memo = True  # type: ignore[attr-defined]
    Executor.build_per_event_executor = build_per_event_executor  # type: ignore[method-assign]


_per_event_memo_fix()

RESUME_REQUIRED = "RESUME_REQUIRED"
_Resolver = TypeVar("_Resolver", bound=Callable[..., Any])


def subscription(*, description: str) -> Callable[[_Resolver], _Resolver]:
    """strawberry.subscription typed for mypy strict (as fields.resolver)."""
    decorator: Callable[[_Resolver], _Resolver] = strawberry.subscription(description=description)
    return decorator


MAX_TOKEN_LENGTH = 2048
_FIELDS = {"resume_token": "after"}
_STATUS_FROM_PROTO = {number: status for status, number in STATUS_TO_PROTO.items()}
_PICKUP_STAFF = frozenset({Role.ASSOCIATE, Role.STORE_MANAGER})


@strawberry.type(description="A change of an order's status, as order-svc recorded it.")
class OrderEvent:
    order_id: strawberry.ID
    sequence: int = strawberry.field(description="The order's own event number: 1, 2, ...")
    kind: str = strawberry.field(
        description="placed, confirmed, paid, ready_for_pickup, picked_up, cancelled, "
        "expired, failed, shipped, delivered, completed, returned"
    )
    status: OrderStatus | None = strawberry.field(description="The order's status after it.")
    occurred_at: datetime | None
    store_id: strawberry.ID | None
    resume_token: str = strawberry.field(
        description="Pass as `after` when subscribing again to continue right after this event."
    )

    @resolver(description="The order as it is when the event is delivered (one read per event).")
    async def order(self, info: GatewayInfo) -> Order | None:
        proto = await info.context.loaders.order.load(str(self.order_id))
        return Order.from_proto(proto)

    @classmethod
    def from_proto(cls, event: order_pb2.OrderEvent) -> OrderEvent:
        return cls(
            order_id=strawberry.ID(event.order_id),
            sequence=event.sequence,
            kind=event.kind,
            status=_STATUS_FROM_PROTO.get(event.status),
            occurred_at=event.occur_time.ToDatetime(tzinfo=UTC)
            if event.HasField("occur_time")
            else None,
            store_id=strawberry.ID(event.store_id) if event.store_id else None,
            resume_token=event.resume_token,
        )


def _check(after: str | None, **ids: str) -> None:
    problems = [v for field, value in ids.items() if (v := id_violation(field, value))]
    if after is not None and not 0 < len(after) <= MAX_TOKEN_LENGTH:
        problems.append(FieldViolation("after", f"1 to {MAX_TOKEN_LENGTH} characters"))
    if problems:
        raise bad_user_input(*problems)


def _hub(info: GatewayInfo) -> OrderEventHub:
    hub = info.context.events
    if hub is None:
        raise RuntimeError("the gateway's order event hub is not open (lifespan not run)")
    return hub


def _fresh_loaders(context: GatewayContext) -> None:
    """Per event: a long-lived connection must not keep every order or member it showed."""
    context.loaders = build_loaders(context.clients, context.principal, context.channel)


async def _stream(
    info: GatewayInfo, key: Key, after: str | None, kiosk_store: str = ""
) -> AsyncGenerator[OrderEvent, None]:
    """The hub's events as GraphQL values; kiosks see pickup orders only."""
    context = info.context
    events = _hub(info).events(key, after or "")
    try:
        async for event in events:
            _fresh_loaders(context)
            if kiosk_store:
                order = await context.loaders.order.load(event.order_id)
                if order.fulfillment != order_pb2.FULFILLMENT_TYPE_PICKUP_IN_STORE:
                    continue
            yield OrderEvent.from_proto(event)
    except ResumeRequired as resume:
        raise GraphQLError(
            f"{resume.why}: subscribe again with after: resumeToken",
            extensions={"code": RESUME_REQUIRED, "resumeToken": resume.token or after or ""},
        ) from None
    except grpc.aio.AioRpcError as error:
        raise from_rpc_error(
            error, service="order", field_names={"resume_token": "after"}
        ) from None
    finally:
        await events.aclose()


@strawberry.type
class OrderSubscription:
    @subscription(
        description="Live events of one order (its customer, its stores' staff, the pickup "
        "store's kiosks, admins). `after`: the resumeToken of the last event received, to "
        "continue after it with nothing missed or repeated; none = from now on."
    )
    async def order_updated(
        self, info: GatewayInfo, order_id: strawberry.ID, after: str | None = None
    ) -> AsyncGenerator[OrderEvent, None]:
        principal = info.context.principal
        authz.require(orders_access.signed_in_error(principal, "follow orders"))
        _check(after, orderId=str(order_id))
        order = await info.context.loaders.order.load(str(order_id))
        merged: list[str] = []
        if principal.role is Role.CUSTOMER and order.member_id != principal.member_id:
            merged = await _merged_ids(info)
        authz.require(orders_access.read_error(principal, order, merged))
        async for event in _stream(info, Key(order_id=str(order_id)), after):
            yield event

    @subscription(
        description="Live events of a store's orders: its associates and manager (every "
        "order), its kiosks (pickup orders), admins. `after` as for orderUpdated."
    )
    async def store_pickup_queue(
        self, info: GatewayInfo, store_id: strawberry.ID, after: str | None = None
    ) -> AsyncGenerator[OrderEvent, None]:
        principal = info.context.principal
        authz.require(_queue_error(principal, str(store_id)))
        _check(after, storeId=str(store_id))
        kiosk_store = str(store_id) if principal.role is Role.KIOSK else ""
        async for event in _stream(info, Key(store_id=str(store_id)), after, kiosk_store):
            yield event


def _queue_error(principal: Principal, store_id: str) -> GraphQLError | None:
    if error := orders_access.signed_in_error(principal, "follow a store's orders"):
        return error
    if principal.role is Role.ADMIN:
        return None
    if principal.role in (*_PICKUP_STAFF, Role.KIOSK) and principal.store_id == store_id:
        return None
    return forbidden(f"a {principal.role.value} may not follow the orders of store {store_id!r}")


async def _merged_ids(info: GatewayInfo) -> list[str]:
    member_id = info.context.principal.member_id
    if not member_id:
        return []
    try:
        member = await info.context.loaders.member.load(member_id)
    except GraphQLError:
        return []
    return list(member.merged_member_ids)


# -- connection_init ------------------------------------------------------------------------


def connection_principal(
    params: Mapping[str, Any] | None, current: Principal, secret: str, issuer: str
) -> Principal:
    """The principal of a WebSocket connection: the connection_init payload's
    `Authorization` (or `authorization`) if given, else the upgrade request's. A bad token
    rejects the connection (strawberry closes it with 4403)."""
    header = None
    for name in ("Authorization", "authorization"):
        value = (params or {}).get(name)
        if isinstance(value, str):
            header = value
            break
    if header is None:
        return current
    try:
        return principal_from_header(header, secret, issuer)
    except AuthError as error:
        raise ConnectionRejectionError({"message": error.message}) from None
