"""MemberService RPCs for the points ledger, tiers and order effects.

Requests are checked here (every failure names its field); rules live in `points.py`,
`tiers.py`, `loyalty_rules.py` and `loyalty_orders.py`. A points write for a MERGED member
lands on its survivor (the book follows `merged_into`).
"""

from __future__ import annotations

from member_svc import loyalty_rules as rules
from member_svc.convert import actor_from_proto, money
from member_svc.domain import Actor, ActorKind
from member_svc.loyalty_convert import (
    amount_fen,
    change_to_proto,
    entry_to_proto,
    optional_time,
    policy_from_proto,
    policy_to_proto,
    summary_to_proto,
)
from member_svc.loyalty_errors import key_reused, permission_denied
from member_svc.loyalty_orders import record_order_completed, record_order_returned
from member_svc.points import EARN, MAX_POINTS, Written
from member_svc.rpc_base import MemberRpcBase
from retail.member.v1 import member_pb2
from retail_kit.errors import Context, FieldViolation, invalid_argument
from retail_kit.paging import (
    decode_page_token,
    encode_page_token,
    invalid_page_token,
    page_size,
    query_fingerprint,
)
from retail_kit.validation import require_id

DEFAULT_BATCH = 500
MAX_BATCH = 5_000


def _points(value: int, field: str = "points", *, allow_zero: bool = False) -> int:
    if value < 0 or (value == 0 and not allow_zero):
        raise invalid_argument(FieldViolation(field, "must be positive"))
    if value > MAX_POINTS:
        raise invalid_argument(FieldViolation(field, f"must be at most {MAX_POINTS}"))
    return value


def _reference(value: str, field: str = "reference") -> str:
    return require_id(field, value)


def _batch(limit: int) -> int:
    if limit == 0:
        return DEFAULT_BATCH
    if not 1 <= limit <= MAX_BATCH:
        raise invalid_argument(FieldViolation("limit", f"must be between 1 and {MAX_BATCH}"))
    return limit


def _require_admin(actor: Actor, what: str) -> None:
    if actor.kind is not ActorKind.ADMIN:
        raise permission_denied(
            f"{what} needs an admin actor", required="admin", actor_kind=actor.kind.value
        )


def _same_request(written: Written, asked: int) -> None:
    """A replay (same kind and reference) must ask for the same amount."""
    if written.replayed and int(written.doc.get("asked", asked)) != asked:
        raise key_reused(written.entry.kind, written.entry.reference)


class LoyaltyRpcs(MemberRpcBase):
    # ---- points ---------------------------------------------------------------------------

    async def EarnPoints(
        self, request: member_pb2.EarnPointsRequest, context: Context
    ) -> member_pb2.EarnPointsResponse:
        member_id = require_id("member_id", request.member_id)
        points = _points(request.points)
        reference = _reference(request.reference)
        written = await self.books.points.earn_lot(
            member_id,
            points,
            kind=EARN,
            reference=reference,
            available_time=optional_time(request, "available_time"),
            note=request.note,
        )
        _same_request(written, points)
        return member_pb2.EarnPointsResponse(
            entry=entry_to_proto(written.entry), balance=written.entry.total_after
        )

    async def RedeemPoints(
        self, request: member_pb2.RedeemPointsRequest, context: Context
    ) -> member_pb2.RedeemPointsResponse:
        member_id = require_id("member_id", request.member_id)
        points = _points(request.points)
        reference = _reference(request.reference)
        order_amount = amount_fen(request.order_amount, "order_amount")
        policy = await self.books.tiers.policy()
        value = rules.redemption_value(points, policy.points_per_yuan_redeemed)
        if value is None:
            step = rules.point_step(policy.points_per_yuan_redeemed)
            raise invalid_argument(
                FieldViolation("points", f"must be a multiple of {step} (whole fen only)")
            )
        max_points = rules.max_redeemable(
            order_amount, policy.points_per_yuan_redeemed, policy.max_redeem_percent
        )
        written = await self.books.points.redeem(
            member_id, points, reference, value_fen=value, max_points=max_points
        )
        _same_request(written, points)
        return member_pb2.RedeemPointsResponse(
            entry=entry_to_proto(written.entry),
            balance=written.entry.total_after,
            value=money(int(written.doc.get("value", value))),
        )

    async def RevertPointsRedemption(
        self, request: member_pb2.RevertPointsRedemptionRequest, context: Context
    ) -> member_pb2.RevertPointsRedemptionResponse:
        member_id = require_id("member_id", request.member_id)
        reference = _reference(request.reference)
        written = await self.books.points.revert_redemption(member_id, reference)
        reply = member_pb2.RevertPointsRedemptionResponse(balance=written.entry.total_after)
        if written.doc.get("redeem_id") is not None:
            reply.entry.CopyFrom(entry_to_proto(written.entry))
        return reply

    async def ClawBackPoints(
        self, request: member_pb2.ClawBackPointsRequest, context: Context
    ) -> member_pb2.ClawBackPointsResponse:
        member_id = require_id("member_id", request.member_id)
        order_id = require_id("order_id", request.order_id)
        return_id = require_id("return_id", request.return_id)
        refunded = amount_fen(request.refunded_amount, "refunded_amount")
        paid = amount_fen(request.paid_amount, "paid_amount")
        if refunded > paid:
            raise invalid_argument(FieldViolation("refunded_amount", "must not exceed paid_amount"))
        written = await self.books.points.claw_back(
            member_id, order_id, return_id, refunded_fen=refunded, paid_fen=paid
        )
        if written is None:
            head = await self.books.points.head(member_id)
            return member_pb2.ClawBackPointsResponse(balance=head.total)
        return member_pb2.ClawBackPointsResponse(
            entry=entry_to_proto(written.entry), balance=written.entry.total_after
        )

    async def AdjustPoints(
        self, request: member_pb2.AdjustPointsRequest, context: Context
    ) -> member_pb2.AdjustPointsResponse:
        actor = actor_from_proto(request.actor)
        _require_admin(actor, "AdjustPoints")
        member_id = require_id("member_id", request.member_id)
        violations = []
        if request.delta == 0:
            violations.append(FieldViolation("delta", "must not be zero"))
        elif abs(request.delta) > MAX_POINTS:
            violations.append(FieldViolation("delta", f"must be at most {MAX_POINTS} either way"))
        if not request.reason.strip():
            violations.append(FieldViolation("reason", "is required"))
        if violations:
            raise invalid_argument(*violations)
        reference = _reference(request.reference)
        written = await self.books.points.adjust(
            member_id,
            request.delta,
            reason=request.reason.strip(),
            reference=reference,
            actor=actor,
        )
        _same_request(written, request.delta)
        return member_pb2.AdjustPointsResponse(
            entry=entry_to_proto(written.entry), balance=written.entry.total_after
        )

    async def ExpirePoints(
        self, request: member_pb2.ExpirePointsRequest, context: Context
    ) -> member_pb2.ExpirePointsResponse:
        limit = _batch(request.limit)
        now = self.now()
        await self.books.points.roll_forward_recent(now)
        members, points, more = await self.books.points.expire_due(now, limit)
        return member_pb2.ExpirePointsResponse(members=members, points=points, more=more)

    async def ListPointsLedger(
        self, request: member_pb2.ListPointsLedgerRequest, context: Context
    ) -> member_pb2.ListPointsLedgerResponse:
        member_id = require_id("member_id", request.member_id)
        size = page_size(request.page_size)
        fingerprint = query_fingerprint("points_ledger", member_id)
        last = decode_page_token(request.page_token, fingerprint)
        if last is not None and (not isinstance(last, int) or isinstance(last, bool)):
            raise invalid_page_token()
        await self.require_member(member_id)
        _, entries = await self.books.points.entries(member_id, size + 1, last)
        reply = member_pb2.ListPointsLedgerResponse(
            entries=[entry_to_proto(entry) for entry in entries[:size]]
        )
        if len(entries) > size:
            reply.next_page_token = encode_page_token(fingerprint, entries[size - 1].seq)
        return reply

    async def GetPointsSummary(
        self, request: member_pb2.GetPointsSummaryRequest, context: Context
    ) -> member_pb2.GetPointsSummaryResponse:
        member_id = require_id("member_id", request.member_id)
        head = await self.books.points.head(member_id)
        return member_pb2.GetPointsSummaryResponse(points=summary_to_proto(head, self.now()))

    async def QuotePointsRedemption(
        self, request: member_pb2.QuotePointsRedemptionRequest, context: Context
    ) -> member_pb2.QuotePointsRedemptionResponse:
        member_id = require_id("member_id", request.member_id)
        order_amount = amount_fen(request.order_amount, "order_amount")
        wanted = _points(request.points, allow_zero=True)
        policy = await self.books.tiers.policy()
        head = await self.books.points.head(member_id, roll_forward=False)
        available = rules.available(head.lots, self.now())
        usable, cap = rules.quote(
            wanted,
            available,
            order_amount,
            policy.points_per_yuan_redeemed,
            policy.max_redeem_percent,
        )
        value = rules.redemption_value(usable, policy.points_per_yuan_redeemed) or 0
        return member_pb2.QuotePointsRedemptionResponse(
            points=usable, value=money(value), max_points=cap, available=available
        )

    # ---- tiers -----------------------------------------------------------------------------

    async def SetTierPolicy(
        self, request: member_pb2.SetTierPolicyRequest, context: Context
    ) -> member_pb2.SetTierPolicyResponse:
        _require_admin(actor_from_proto(request.actor), "SetTierPolicy")
        policy = policy_from_proto(request.policy)
        stored = await self.books.tiers.set_policy(policy)
        return member_pb2.SetTierPolicyResponse(policy=policy_to_proto(stored))

    async def GetTierPolicy(
        self, request: member_pb2.GetTierPolicyRequest, context: Context
    ) -> member_pb2.GetTierPolicyResponse:
        return member_pb2.GetTierPolicyResponse(
            policy=policy_to_proto(await self.books.tiers.policy())
        )

    async def ListTierChanges(
        self, request: member_pb2.ListTierChangesRequest, context: Context
    ) -> member_pb2.ListTierChangesResponse:
        member_id = require_id("member_id", request.member_id)
        size = page_size(request.page_size)
        fingerprint = query_fingerprint("tier_changes", member_id)
        last = decode_page_token(request.page_token, fingerprint)
        if last is not None and (not isinstance(last, int) or isinstance(last, bool)):
            raise invalid_page_token()
        changes = await self.books.tiers.changes(member_id, size + 1, last)
        reply = member_pb2.ListTierChangesResponse(
            changes=[change_to_proto(change) for change in changes[:size]]
        )
        if len(changes) > size:
            reply.next_page_token = encode_page_token(fingerprint, changes[size - 1].seq)
        return reply

    async def ReviewTiers(
        self, request: member_pb2.ReviewTiersRequest, context: Context
    ) -> member_pb2.ReviewTiersResponse:
        limit = _batch(request.limit)
        reviewed, downgraded, more = await self.books.tiers.review_due(self.now(), limit)
        return member_pb2.ReviewTiersResponse(reviewed=reviewed, downgraded=downgraded, more=more)

    # ---- order effects ------------------------------------------------------------------------

    async def RecordOrderCompleted(
        self, request: member_pb2.RecordOrderCompletedRequest, context: Context
    ) -> member_pb2.RecordOrderCompletedResponse:
        order_id = require_id("order_id", request.order_id)
        paid = amount_fen(request.paid_amount, "paid_amount", allow_zero=True)
        member = await self.resolve_member(request.member_id)
        now = self.now()
        complete_time = optional_time(request, "complete_time") or now
        window_end = optional_time(request, "return_window_end_time") or complete_time
        done = await record_order_completed(
            self.books, member, order_id, paid, complete_time, window_end
        )
        reply = member_pb2.RecordOrderCompletedResponse(
            referral_rewards=[entry_to_proto(entry) for entry in done.referral_rewards],
            tier=done.tier.value,
            upgraded=done.upgraded,
        )
        if done.earned is not None:
            reply.earned.CopyFrom(entry_to_proto(done.earned.entry))
        return reply

    async def RecordOrderReturned(
        self, request: member_pb2.RecordOrderReturnedRequest, context: Context
    ) -> member_pb2.RecordOrderReturnedResponse:
        order_id = require_id("order_id", request.order_id)
        return_id = require_id("return_id", request.return_id)
        refunded = amount_fen(request.refunded_amount, "refunded_amount")
        paid = amount_fen(request.paid_amount, "paid_amount")
        if refunded > paid:
            raise invalid_argument(FieldViolation("refunded_amount", "must not exceed paid_amount"))
        member = await self.resolve_member(request.member_id)
        return_time = optional_time(request, "return_time") or self.now()
        clawed = await record_order_returned(
            self.books, member, order_id, return_id, refunded, paid, return_time
        )
        reply = member_pb2.RecordOrderReturnedResponse()
        if clawed is not None:
            reply.clawed_back.CopyFrom(entry_to_proto(clawed.entry))
        return reply
