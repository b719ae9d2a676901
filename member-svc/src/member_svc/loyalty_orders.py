"""Order effects (RecordOrderCompleted / RecordOrderReturned): steps that are each idempotent
by the order (and return) id, so order-svc retrying a call after any failure finishes it.

Completed: spend record "<order>:completed" -> earn (pending until the return window ends,
floor(paid yuan x points_per_yuan x the tier multiplier held when the order completed)) ->
last purchase / last activity (`$max`) -> rolling spend and an upgrade at once -> the
first-order referral rewards (GROWTH's `reward_first_order`).

Returned: claw back (its exact running-refund check is serialized with the member's other
points writes) -> spend record "<order>:<return>" with the refund negative -> rolling spend
(never a downgrade here: that waits for the review).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import grpc

from member_svc import loyalty_rules as rules
from member_svc.books import Books
from member_svc.domain import Member, Tier
from member_svc.loyalty_errors import invalid_state, return_exceeds_purchase
from member_svc.points import EARN, Written
from member_svc.repository import MEMBERS
from member_svc.tiers import CHANGES
from retail.common.v1 import common_pb2
from retail_kit.errors import ServiceError


@dataclass(frozen=True, slots=True)
class Completed:
    earned: Written | None
    referral_rewards: list[Any]
    tier: Tier
    upgraded: bool


def amount_mismatch(order_id: str, recorded: int, requested: int) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.FAILED_PRECONDITION,
        common_pb2.ERROR_REASON_AMOUNT_MISMATCH,
        f"order {order_id!r} was recorded as paying {recorded} fen, not {requested}",
        metadata={"order_id": order_id, "recorded": str(recorded), "requested": str(requested)},
    )


async def record_order_completed(
    books: Books,
    member: Member,
    order_id: str,
    paid_fen: int,
    complete_time: datetime,
    window_end: datetime,
) -> Completed:
    now = books.clock()
    policy = await books.tiers.policy()
    spend, created = await books.tiers.record_spend(
        member.id, f"{order_id}:completed", order_id, paid_fen, complete_time
    )
    if int(spend["amount"]) != paid_fen:
        raise amount_mismatch(order_id, int(spend["amount"]), paid_fen)
    earned: Written | None = None
    if created:
        multiplier = policy.level(member.tier).multiplier_percent
        points = rules.order_points(paid_fen, policy.points_per_yuan, multiplier)
    else:
        # A replay: the earn (if any) was decided by the first call, at the tier held then.
        found = await books.points.find_entry(EARN, order_id)
        points = int(found["asked"]) if found else 0
        if found is None:  # the first call stopped before its earn: decide it now
            multiplier = policy.level(member.tier).multiplier_percent
            points = rules.order_points(paid_fen, policy.points_per_yuan, multiplier)
    if points > 0:
        earned = await books.points.earn_lot(
            member.id,
            points,
            kind=EARN,
            reference=order_id,
            available_time=max(window_end, complete_time),
            earn_time=complete_time,
            note=f"order {order_id}",
        )
    await books.database[MEMBERS].update_one(
        {"_id": member.id},
        {"$max": {"last_purchase_time": complete_time, "last_activity_time": complete_time}},
    )
    change_key = f"order:{order_id}"
    tier, upgraded = await books.tiers.apply_spend(member.id, change_key)
    if not upgraded and not created:
        found_change = await books.database[CHANGES].find_one(
            {"_id": f"{member.id}:{change_key}"}, {"_id": 1}
        )
        upgraded = found_change is not None
    rewards = await books.referrals.reward_first_order(books, member.id, order_id, now)
    return Completed(earned, list(rewards), tier, upgraded)


async def record_order_returned(
    books: Books,
    member: Member,
    order_id: str,
    return_id: str,
    refunded_fen: int,
    paid_fen: int,
    return_time: datetime,
) -> Written | None:
    records = await books.tiers.order_spend(order_id)
    completed = next((r for r in records if r["_id"] == f"{order_id}:completed"), None)
    if completed is None:
        raise invalid_state(
            f"order {order_id!r} has not been recorded as completed", order_id=order_id
        )
    this_id = f"{order_id}:{return_id}"
    if not any(r["_id"] == this_id for r in records):
        refunded_before = -sum(
            int(r["amount"]) for r in records if r["_id"] != f"{order_id}:completed"
        )
        if refunded_before + refunded_fen > int(completed["amount"]):
            raise return_exceeds_purchase(
                order_id, int(completed["amount"]), refunded_before + refunded_fen
            )
    clawed = await books.points.claw_back(
        member.id, order_id, return_id, refunded_fen=refunded_fen, paid_fen=paid_fen
    )
    spend, _ = await books.tiers.record_spend(
        member.id, this_id, order_id, -refunded_fen, return_time
    )
    if int(spend["amount"]) != -refunded_fen:
        raise amount_mismatch(this_id, -int(spend["amount"]), refunded_fen)
    await books.tiers.apply_spend(member.id, f"return:{order_id}:{return_id}")
    return clawed
