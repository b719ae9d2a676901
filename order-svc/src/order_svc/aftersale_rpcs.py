"""OrderService RPCs after the sale: returns, the event stream, maintenance.

Requests are checked here (each failure names its field); the rules live in returns.py
(ReturnItems) and events.py (WatchOrderEvents). RunMaintenance runs every background job
once (jobs.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from order_svc import events, jobs, returns
from order_svc.convert import (
    STATUS_TO_PROTO,
    actor_from_proto,
    order_to_proto,
    return_to_proto,
    timestamp,
)
from order_svc.domain import MAX_LINE_QUANTITY, MAX_LINES, ActorKind
from order_svc.rpc_base import OrderRpcBase
from retail.order.v1 import order_pb2
from retail_kit.errors import Context, FieldViolation, invalid_argument
from retail_kit.validation import id_violation

# Sent as initial metadata once the stream is open: every event written after the client
# has it is delivered (a client that must not miss one waits for it before acting).
WATCH_OPEN_METADATA = (("x-watch-open", "1"),)
MAX_TOKEN = 2_048
MAX_REASON = 500


def _watch_filters(request: order_pb2.WatchOrderEventsRequest) -> events.Filters:
    problems: list[FieldViolation] = []
    for field in ("order_id", "member_id", "store_id"):
        value = getattr(request, field)
        if value and (violation := id_violation(field, value)):
            problems.append(violation)
    if request.after_sequence:
        problems.append(
            FieldViolation("after_sequence", "is no longer supported: use resume_token")
        )
    if len(request.resume_token) > MAX_TOKEN:
        problems.append(FieldViolation("resume_token", f"at most {MAX_TOKEN} characters"))
    if problems:
        raise invalid_argument(*problems)
    return events.Filters(
        order_id=request.order_id, member_id=request.member_id, store_id=request.store_id
    )


def _return_request(request: order_pb2.ReturnItemsRequest) -> returns.ReturnRequest:
    """The request's own fields checked, every bad one named."""
    problems: list[FieldViolation] = []
    for field in ("order_id", "return_id", "store_id"):
        if violation := id_violation(field, getattr(request, field)):
            problems.append(violation)
    if not 1 <= len(request.lines) <= MAX_LINES:
        problems.append(FieldViolation("lines", f"1..{MAX_LINES} lines"))
    seen: set[str] = set()
    for index, line in enumerate(request.lines):
        if violation := id_violation(f"lines[{index}].sku_id", line.sku_id):
            problems.append(violation)
        elif line.sku_id in seen:
            problems.append(FieldViolation(f"lines[{index}].sku_id", "appears twice"))
        seen.add(line.sku_id)
        if not 1 <= line.quantity <= MAX_LINE_QUANTITY:
            problems.append(
                FieldViolation(f"lines[{index}].quantity", f"must be 1..{MAX_LINE_QUANTITY}")
            )
    reason = request.reason.strip()
    if len(reason) > MAX_REASON:
        problems.append(FieldViolation("reason", f"at most {MAX_REASON} characters"))
    actor = actor_from_proto(request.actor)
    if actor is None or actor.kind is ActorKind.UNSPECIFIED or not actor.id:
        problems.append(FieldViolation("actor", "is required (kind, id, store_id)"))
    if problems:
        raise invalid_argument(*problems)
    assert actor is not None
    return returns.ReturnRequest(
        order_id=request.order_id,
        return_id=request.return_id,
        store_id=request.store_id,
        lines=tuple((line.sku_id, line.quantity) for line in request.lines),
        reason=reason,
        actor=actor,
    )


def event_to_proto(event: events.WatchedEvent) -> order_pb2.OrderEvent:
    return order_pb2.OrderEvent(
        sequence=event.seq,
        order_id=event.order_id,
        status=STATUS_TO_PROTO[event.status],
        kind=event.kind,
        occur_time=timestamp(event.occur_time),
        store_id=event.store_id,
        member_id=event.member_id,
        resume_token=event.resume_token,
    )


class AftersaleRpcs(OrderRpcBase):
    async def ReturnItems(
        self, request: order_pb2.ReturnItemsRequest, context: Context
    ) -> order_pb2.ReturnItemsResponse:
        order, order_return = await returns.return_items(self.services, _return_request(request))
        return order_pb2.ReturnItemsResponse(
            order=order_to_proto(order),
            order_return=return_to_proto(order_return, order.currency),
        )

    async def WatchOrderEvents(
        self, request: order_pb2.WatchOrderEventsRequest, context: Context
    ) -> AsyncIterator[order_pb2.WatchOrderEventsResponse]:
        filters = _watch_filters(request)
        if request.resume_token:
            events.decode_token(request.resume_token)  # refuse a bad token before opening

        async def opened() -> None:
            await context.send_initial_metadata(WATCH_OPEN_METADATA)

        stream = events.watch(self.services, filters, request.resume_token, on_open=opened)
        async for event in stream:
            yield order_pb2.WatchOrderEventsResponse(event=event_to_proto(event))

    async def RunMaintenance(
        self, request: order_pb2.RunMaintenanceRequest, context: Context
    ) -> order_pb2.RunMaintenanceResponse:
        done = await jobs.run_jobs_once(self.services)
        return order_pb2.RunMaintenanceResponse(
            recovered=done.get(jobs.RECOVERY, 0),
            payment_timeouts=done.get(jobs.PAYMENT_TIMEOUT, 0),
            expired=done.get(jobs.PICKUP_EXPIRY, 0),
            effects_delivered=done.get(jobs.EFFECTS, 0),
        )
