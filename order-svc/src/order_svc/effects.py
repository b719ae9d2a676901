"""The outbox worker: delivers the pending effects of orders (`effects_due <= now`) with
retries, on every replica at once.

An effect is written in the same update as the status change that implies it
(`OrderRepository.transition`), so it can be neither lost nor exist without its change.
Delivering one is: **claim** it (one conditional update: pending and due -> its `next_time`
moves one lease ahead, so no other replica picks it up meanwhile, and a deliverer that dies
leaves it due again when the lease ends), **call** the service (every call is idempotent by
order, reservation, reference or return id there), then **finish** it (one conditional
update: pending -> done with its outcome) or record the failure (attempts + 1, the error,
`next_time` after an exponential back-off of 1 s, 2 s, 4 s ... 5 min). A crash between the
call and the finish re-delivers after the lease; the service answers the replay, so the
effect lands once.

Kinds: the saga's and the lifecycle's (`participants.HANDLERS`: release/commit stock,
revert points, release/redeem coupon; those calls also deliver them at once, this worker
delivers what they left), and this module's: `record_completed` (member
RecordOrderCompleted with the associate attribution pinned on the effect before the call),
`record_returned` (member RecordOrderReturned, after the completion is recorded), `restock`
(store AdjustInventory RETURN per SKU, key "<return>:<sku>") and `refund` (the record is
the order's `refunds[]`; the contract has no partner refund call, so delivering it logs it).
A release of stock refused because the reservation was committed means the goods left the
store: that is recorded as the outcome, not retried.

The design is order-svc/DESIGN.md, "Effects (the outbox) and events".
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import grpc
from pymongo.asynchronous.collection import AsyncCollection

from order_svc import participants
from order_svc.convert import CHANNEL_TO_PROTO, money, timestamp
from order_svc.domain import (
    FULFILLED_STATUSES,
    Effect,
    EffectKind,
    EffectState,
    FulfillmentType,
    Order,
)
from order_svc.repository import ORDERS
from order_svc.saga import crashpoint
from order_svc.services import OrderServices
from retail.member.v1 import member_pb2
from retail.store.v1 import store_pb2
from retail_kit.errors import RpcErrorDetails
from retail_kit.mongo import Document

log = logging.getLogger(__name__)

# Orders one pass reads (the jobs loop runs again at once while a pass found work).
JOB_BATCH = 100
# Orders whose effects one process delivers at once (their effects one after another).
JOB_CONCURRENCY = 8
# A claimed effect is due again this long after its claim if it was not finished (the
# deliverer died). Longer than any delivery: a restock of 50 SKUs is 50 calls of at most
# the call deadline each, one after another.
EFFECT_LEASE = timedelta(seconds=60)
# An effect waiting for another one of its order is looked at again after at least this.
BLOCKED_RETRY = timedelta(seconds=1)
# Stored errors are cut to this length.
MAX_ERROR = 500

RECORD_COMPLETED = EffectKind.RECORD_COMPLETED.value
RECORD_RETURNED = EffectKind.RECORD_RETURNED.value
RESTOCK = EffectKind.RESTOCK.value
REFUND = EffectKind.REFUND.value

# An effect of the first kind waits while an effect of the second kind of its order is
# pending: member-svc refuses a return of an order it has not recorded as completed.
PREREQUISITES: Mapping[str, tuple[str, ...]] = {RECORD_RETURNED: (RECORD_COMPLETED,)}

# Where the associate credited with a sale came from (record_completed's attribution).
SOURCE_SERVING = "serving_associate"  # the till: the associate who served
SOURCE_GUIDE = "exclusive_guide"  # online: the member's exclusive guide at completion
SOURCE_PLACING = "placing_associate"  # online, no guide: the associate who placed it
SOURCE_NONE = "none"

# The same expression as the repository's: the earliest next_time of a pending effect.
_PENDING = {
    "$filter": {
        "input": {"$ifNull": ["$effects", []]},
        "as": "e",
        "cond": {"$eq": ["$$e.state", EffectState.PENDING.value]},
    }
}
_EFFECTS_DUE = {"$min": {"$map": {"input": _PENDING, "as": "e", "in": "$$e.next_time"}}}

Result = dict[str, Any]
Handler = Callable[[OrderServices, Order, Effect], Awaitable[Result | None]]


def _lit(value: Any) -> Any:
    return {"$literal": value}


# -- the outbox's writes --------------------------------------------------------------------


class Outbox:
    """The conditional updates of one effect inside its order document. None of them bumps
    the order's `version`: delivering an effect never fails a business change's check."""

    def __init__(self, services: OrderServices) -> None:
        self._orders: AsyncCollection[Document] = services.repository.database[ORDERS]

    async def _update_effect(
        self,
        order_id: str,
        effect_id: str,
        match: Mapping[str, Any],
        changes: Mapping[str, Any],
        extra: Mapping[str, Any] | None = None,
    ) -> bool:
        """Merges `changes` into the effect where it is pending and matches `match` (one
        update_one; `effects_due` recomputed in the same write); True if it did."""
        merged = {key: _lit(value) for key, value in changes.items()}
        stage: dict[str, Any] = {
            "effects": {
                "$map": {
                    "input": "$effects",
                    "as": "e",
                    "in": {
                        "$cond": [
                            {
                                "$and": [
                                    {"$eq": ["$$e.id", _lit(effect_id)]},
                                    {"$eq": ["$$e.state", EffectState.PENDING.value]},
                                ]
                            },
                            {"$mergeObjects": ["$$e", merged]},
                            "$$e",
                        ]
                    },
                }
            },
            **(extra or {}),
        }
        result = await self._orders.update_one(
            {
                "_id": order_id,
                "effects": {
                    "$elemMatch": {"id": effect_id, "state": EffectState.PENDING.value, **match}
                },
            },
            [{"$set": stage}, {"$set": {"effects_due": _EFFECTS_DUE}}],
        )
        return result.modified_count == 1

    async def claim(self, order_id: str, effect_id: str, owner: str, now: datetime) -> bool:
        """Takes a pending effect that is due: its next_time moves one lease ahead."""
        return await self._update_effect(
            order_id,
            effect_id,
            {"next_time": {"$lte": now}},
            {"next_time": now + EFFECT_LEASE, "claimed_by": owner, "claim_time": now},
        )

    async def finish(
        self,
        order_id: str,
        effect_id: str,
        now: datetime,
        result: Result | None,
        *,
        return_id: str = "",
        points_clawed_back: int | None = None,
    ) -> bool:
        """pending -> done with its outcome; a claw-back also lands on its return."""
        extra: dict[str, Any] = {}
        if return_id and points_clawed_back is not None:
            extra["returns"] = {
                "$map": {
                    "input": {"$ifNull": ["$returns", []]},
                    "as": "r",
                    "in": {
                        "$cond": [
                            {"$eq": ["$$r.id", _lit(return_id)]},
                            {
                                "$mergeObjects": [
                                    "$$r",
                                    {"points_clawed_back": _lit(points_clawed_back)},
                                ]
                            },
                            "$$r",
                        ]
                    },
                }
            }
        changes = {"state": EffectState.DONE.value, "done_time": now, "result": result or {}}
        return await self._update_effect(order_id, effect_id, {}, changes, extra)

    async def defer(self, order_id: str, effect_id: str, until: datetime) -> bool:
        """Moves a pending effect's next try (it waits for another effect)."""
        return await self._update_effect(order_id, effect_id, {}, {"next_time": until})

    async def pin(self, order_id: str, effect_id: str, key: str, value: Any) -> Any:
        """Sets `data.<key>` of a pending effect unless it is set already; answers the value
        stored (this call's or an earlier one's), so every delivery sends the same."""
        data_key = f"$$e.data.{key}"
        stage = {
            "effects": {
                "$map": {
                    "input": "$effects",
                    "as": "e",
                    "in": {
                        "$cond": [
                            {
                                "$and": [
                                    {"$eq": ["$$e.id", _lit(effect_id)]},
                                    # unset (null or missing; SecantusDB 0.7 types a
                                    # missing path "null", so $type is not used)
                                    {"$eq": [{"$ifNull": [data_key, None]}, None]},
                                ]
                            },
                            {
                                "$mergeObjects": [
                                    "$$e",
                                    {
                                        "data": {
                                            "$mergeObjects": [
                                                {"$ifNull": ["$$e.data", {}]},
                                                {key: _lit(value)},
                                            ]
                                        }
                                    },
                                ]
                            },
                            "$$e",
                        ]
                    },
                }
            }
        }
        await self._orders.update_one(
            {"_id": order_id, "effects": {"$elemMatch": {"id": effect_id}}}, [{"$set": stage}]
        )
        doc = await self._orders.find_one({"_id": order_id}, {"effects": 1})
        for effect in (doc or {}).get("effects") or ():
            if effect.get("id") == effect_id:
                return (effect.get("data") or {}).get(key, value)
        return value


# -- handlers -------------------------------------------------------------------------------


def _details(error: grpc.aio.AioRpcError) -> RpcErrorDetails:
    return RpcErrorDetails.from_rpc_error(error)


async def release_stock(services: OrderServices, order: Order, effect: Effect) -> Result | None:
    """participants.release_stock; a reservation already committed (the goods left the
    store: a hand-over or a shipment won a race) is an outcome, not a failure to retry."""
    try:
        await participants.release_stock(services, order, effect)
    except grpc.aio.AioRpcError as error:
        details = _details(error)
        if (
            error.code() is grpc.StatusCode.FAILED_PRECONDITION
            and details.metadata.get("status") == "committed"
        ):
            log.warning(
                "order %s: %s refused, the reservation was committed (the goods left)",
                order.id,
                effect.id,
            )
            return {"outcome": "committed", "message": details.message[:MAX_ERROR]}
        raise
    return None


async def commit_stock(services: OrderServices, order: Order, effect: Effect) -> Result | None:
    """participants.commit_stock; a reservation already released or failed cannot be
    committed by any retry: recorded (and logged as an error: stock on hand is then too
    high by what was handed over), not retried."""
    try:
        await participants.commit_stock(services, order, effect)
    except grpc.aio.AioRpcError as error:
        details = _details(error)
        status = details.metadata.get("status", "")
        if error.code() is grpc.StatusCode.FAILED_PRECONDITION and status in (
            "released",
            "failed",
        ):
            log.error(
                "order %s: %s refused, the reservation is %s: count the stock",
                order.id,
                effect.id,
                status,
            )
            return {"outcome": status, "message": details.message[:MAX_ERROR]}
        raise
    return None


def _participant(handler: participants.Handler) -> Handler:
    async def run(services: OrderServices, order: Order, effect: Effect) -> Result | None:
        await handler(services, order, effect)
        return None

    return run


def complete_time(order: Order) -> datetime:
    """When the order was handed over, delivered or sold: its first event in such a status."""
    for event in order.events:
        if event.status in FULFILLED_STATUSES:
            return event.occur_time
    return order.update_time


async def exclusive_guide(services: OrderServices, member_id: str) -> tuple[str, str]:
    """(associate id, store id) of the member's exclusive guide, following merges; ("", "")
    when the member has none."""
    for _ in range(4):
        reply = await services.clients.member.GetMember(member_pb2.GetMemberRequest(id=member_id))
        member = reply.member
        if member.merged_into_member_id and member.merged_into_member_id != member.id:
            member_id = member.merged_into_member_id
            continue
        return member.associate.associate_id, member.associate.store_id
    return "", ""


async def attribution(
    services: OrderServices, order: Order, effect: Effect, now: datetime
) -> dict[str, str]:
    """Who is credited with the sale, decided once per order and pinned on the effect, so a
    re-delivery credits the same associate. The till: the serving associate. Online: the
    member's exclusive guide as of the completion's first delivery (a guide assigned while
    the order waited for pickup serves the hand-over and is credited), else the associate
    who placed it, else nobody."""
    pinned = effect.data.get("attribution")
    if isinstance(pinned, dict):
        return {str(k): str(v) for k, v in pinned.items()}
    decided: dict[str, str]
    if order.fulfillment is FulfillmentType.IN_STORE_PURCHASE:
        decided = {
            "associate_id": order.associate_id or "",
            "store_id": order.store_id or "",
            "source": SOURCE_SERVING if order.associate_id else SOURCE_NONE,
        }
    else:
        guide, guide_store = ("", "")
        if order.member_id:
            guide, guide_store = await exclusive_guide(services, order.member_id)
        if guide:
            decided = {"associate_id": guide, "store_id": guide_store, "source": SOURCE_GUIDE}
        elif order.associate_id:
            decided = {
                "associate_id": order.associate_id,
                "store_id": order.store_id or "",
                "source": SOURCE_PLACING,
            }
        else:
            decided = {"associate_id": "", "store_id": "", "source": SOURCE_NONE}
    decided["decide_time"] = now.isoformat()
    stored = await Outbox(services).pin(order.id, effect.id, "attribution", decided)
    return {str(k): str(v) for k, v in stored.items()}


async def record_completed(services: OrderServices, order: Order, effect: Effect) -> Result | None:
    """member RecordOrderCompleted: pending points until the return window ends, tier
    spend, last purchase, a referral reward on a first order; the associate credited."""
    if not order.member_id:
        return {"skipped": "guest order"}
    now = services.now()
    credited = await attribution(services, order, effect, now)
    completed = complete_time(order)
    window_end = completed + timedelta(days=services.settings.return_window_days)
    request = member_pb2.RecordOrderCompletedRequest(
        member_id=order.member_id,
        order_id=order.id,
        paid_amount=money(order.total, order.currency),
        channel=CHANNEL_TO_PROTO[order.channel],
        store_id=order.store_id or "",
        associate_id=credited.get("associate_id", ""),
        complete_time=timestamp(completed),
        return_window_end_time=timestamp(window_end),
    )
    reply = await services.clients.member.RecordOrderCompleted(request)
    return {
        "points_earned": reply.earned.delta if reply.HasField("earned") else 0,
        "referral_rewards": len(reply.referral_rewards),
        "tier": reply.tier,
        "upgraded": reply.upgraded,
        "associate_id": credited.get("associate_id", ""),
    }


async def record_returned(services: OrderServices, order: Order, effect: Effect) -> Result | None:
    """member RecordOrderReturned: the points earned on the refunded part clawed back and
    the rolling spend reduced (idempotent by return id)."""
    refund = int(effect.data.get("refund_amount", 0))
    if not order.member_id:
        return {"skipped": "guest order"}
    if refund <= 0 or order.total <= 0:
        return {"skipped": "nothing refunded", "points_clawed_back": 0}
    order_return = next((r for r in order.returns if r.id == effect.ref), None)
    return_time = order_return.create_time if order_return else services.now()
    reply = await services.clients.member.RecordOrderReturned(
        member_pb2.RecordOrderReturnedRequest(
            member_id=order.member_id,
            order_id=order.id,
            return_id=effect.ref,
            refunded_amount=money(refund, order.currency),
            paid_amount=money(order.total, order.currency),
            return_time=timestamp(return_time),
        )
    )
    clawed = -reply.clawed_back.delta if reply.HasField("clawed_back") else 0
    return {"points_clawed_back": clawed, "shortfall": reply.clawed_back.shortfall}


async def restock(services: OrderServices, order: Order, effect: Effect) -> Result | None:
    """store AdjustInventory RETURN at the receiving store, one per SKU, key
    "<return>:<sku>": audited in store-svc's trail, and applied once whatever the retries."""
    store_id = str(effect.data.get("store_id", ""))
    actor_id = str(effect.data.get("actor_id", "")) or "order-svc"
    lines = list(effect.data.get("lines", ()))
    for line in lines:
        sku_id, quantity = str(line["sku_id"]), int(line["quantity"])
        await services.clients.store.AdjustInventory(
            store_pb2.AdjustInventoryRequest(
                store_id=store_id,
                sku_id=sku_id,
                delta=quantity,
                reason=store_pb2.ADJUSTMENT_REASON_RETURN,
                actor_id=actor_id,
                note=f"return {effect.ref} of order {order.id}",
                idempotency_key=f"{effect.ref}:{sku_id}",
            )
        )
    return {"restocked": sum(int(line["quantity"]) for line in lines), "store_id": store_id}


async def refund(services: OrderServices, order: Order, effect: Effect) -> Result | None:
    """The refund is recorded in the order (`refunds[]`, in the transition's write); the
    contract has no call to a payment partner to pay it out, so delivering it logs it for
    the partner's settlement (and the watch stream carries the event)."""
    log.info(
        "order %s: refund %s of %s %s (%s) via %s transaction %r",
        order.id,
        effect.ref,
        effect.data.get("amount"),
        effect.data.get("currency", order.currency),
        effect.data.get("reason", ""),
        effect.data.get("provider", "") or "counter",
        effect.data.get("transaction_id", ""),
    )
    return {"recorded": True, "amount": int(effect.data.get("amount", 0))}


HANDLERS: Mapping[str, Handler] = {
    **{kind: _participant(handler) for kind, handler in participants.HANDLERS.items()},
    EffectKind.RELEASE_STOCK.value: release_stock,
    EffectKind.COMMIT_STOCK.value: commit_stock,
    RECORD_COMPLETED: record_completed,
    RECORD_RETURNED: record_returned,
    RESTOCK: restock,
    REFUND: refund,
}


# -- delivery -------------------------------------------------------------------------------


def _message(error: Exception) -> str:
    if isinstance(error, grpc.aio.AioRpcError):
        return f"{error.code().name}: {error.details()}"[:MAX_ERROR]
    return repr(error)[:MAX_ERROR]


@dataclass
class Pass:
    """One delivery pass over one order: what it delivered, and who it claims as."""

    owner: str
    delivered: int = 0


async def _deliver_one(
    services: OrderServices, outbox: Outbox, order: Order, effect: Effect, run: Pass
) -> bool:
    """Claim, call, finish (or record the failure). True when this call finished it."""
    handler = HANDLERS.get(effect.kind)
    now = services.now()
    if handler is None:
        # Written by a newer version of the service? Looked at again after the longest
        # back-off instead of on every pass.
        log.error("order %s: no handler for effect %s", order.id, effect.id)
        await outbox.defer(order.id, effect.id, now + participants.backoff(64))
        return False
    if not await outbox.claim(order.id, effect.id, run.owner, now):
        return False  # another deliverer has it, or it is done
    try:
        result = await handler(services, order, effect)
    except Exception as error:
        message = _message(error)
        log.warning("order %s: effect %s failed: %s", order.id, effect.id, message)
        await services.repository.mark_effect_failed(
            order.id, effect.id, message, services.now() + participants.backoff(effect.attempts)
        )
        return False
    await crashpoint("effect_delivered", order.idempotency_key)
    clawed = (result or {}).get("points_clawed_back") if effect.kind == RECORD_RETURNED else None
    finished = await outbox.finish(
        order.id,
        effect.id,
        services.now(),
        result,
        return_id=effect.ref if effect.kind == RECORD_RETURNED else "",
        points_clawed_back=int(clawed) if clawed is not None else None,
    )
    if finished:
        run.delivered += 1
    return finished


async def deliver_order(
    services: OrderServices,
    order: Order,
    now: datetime,
    *,
    only: Collection[str] | None = None,
    owner: str = "",
) -> int:
    """Delivers the order's pending effects that are due at `now` (those in `only` and what
    they wait for, when given), one after another in the order they were written; an
    effect waiting for another that is not done is deferred. Returns how many it finished."""
    outbox = Outbox(services)
    run = Pass(owner or secrets.token_hex(6))
    pending = {e.id: e for e in order.pending_effects()}
    wanted: set[str] | None = None
    if only is not None:
        wanted = set(only)
        for effect_id in list(wanted):
            effect = pending.get(effect_id)
            for kind in PREREQUISITES.get(effect.kind, ()) if effect else ():
                wanted.update(e.id for e in pending.values() if e.kind == kind)
    for effect in order.pending_effects():
        if wanted is not None and effect.id not in wanted:
            continue
        if effect.next_time is not None and effect.next_time > now:
            continue
        blockers = [
            e
            for e in pending.values()
            if e.kind in PREREQUISITES.get(effect.kind, ()) and e.id != effect.id
        ]
        if blockers:
            later = max((e.next_time or now for e in blockers), default=now)
            await outbox.defer(order.id, effect.id, max(later, now + BLOCKED_RETRY))
            continue
        if await _deliver_one(services, outbox, order, effect, run):
            pending.pop(effect.id, None)
    return run.delivered


async def deliver_now(services: OrderServices, order: Order, effect_ids: Collection[str]) -> Order:
    """Delivers these effects of a just-written order at once (for latency; what fails is
    left to the worker) and answers the order as it is then."""
    await deliver_order(services, order, services.now(), only=effect_ids)
    return await services.repository.get_order(order.id) or order


async def effects_job(services: OrderServices, now: datetime) -> int:
    """Delivers due effects; returns how many were delivered."""
    due = await services.repository.due_effects(now, JOB_BATCH)
    if not due:
        return 0
    owner = secrets.token_hex(6)
    slots = asyncio.Semaphore(JOB_CONCURRENCY)

    async def one(order: Order) -> int:
        try:
            async with slots:
                return await deliver_order(services, order, now, owner=owner)
        except Exception:
            log.exception("order %s: delivering its effects failed", order.id)
            return 0

    return sum(await asyncio.gather(*(one(order) for order in due)))
