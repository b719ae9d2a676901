"""The points ledger over real gRPC against the embedded database: every change idempotent by
(kind, reference), exact under concurrency, rolled forward after a lost head write, clear
errors that change nothing."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from member_svc import app
from member_svc.domain import Member, Tier
from member_svc.points import LEDGER, Head, PointsBook
from member_svc.repository import MEMBERS, member_to_document
from member_svc.servicer import MemberServicer
from member_svc.settings import MemberSettings
from retail.common.v1 import common_pb2
from retail.member.v1 import member_pb2, member_pb2_grpc
from retail_kit.errors import RpcErrorDetails
from retail_kit.mongo import Document
from retail_kit.testing import channel_to, running_service, unique_name

T0 = datetime(2026, 5, 1, 4, 0, tzinfo=UTC)
ADMIN = common_pb2.Actor(kind=common_pb2.ACTOR_KIND_ADMIN, id="admin_1")
_numbers = itertools.count(1)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Service:
    stub: member_pb2_grpc.MemberServiceStub
    database: AsyncDatabase[Document]
    clock: Clock
    settings: MemberSettings
    hosts: list[Any]


def _register(clock: Clock) -> Any:
    def register(server: grpc.aio.Server, context: Any) -> None:
        member_pb2_grpc.add_MemberServiceServicer_to_server(
            MemberServicer(app.books_for(context, clock)), server
        )

    return register


@pytest.fixture(scope="module")
async def service(mongo_uri: str) -> AsyncIterator[Service]:
    clock = Clock(T0)
    settings = MemberSettings(
        mongodb_uri=mongo_uri, database=unique_name("member"), worker_interval_seconds=0
    )
    async with (
        running_service(
            app.NAME, settings, app.SERVICE_NAMES, _register(clock), app.on_ready, app.on_stop
        ) as host,
        channel_to(host) as channel,
    ):
        yield Service(
            member_pb2_grpc.MemberServiceStub(channel),
            host.context.database,
            clock,
            settings,
            [host],
        )


@pytest.fixture
def svc(service: Service) -> Service:
    service.clock.now = T0
    return service


async def new_member(svc: Service, *, tier: Tier = Tier.BRONZE, **fields: Any) -> str:
    number = next(_numbers)
    member = Member(
        id=f"mp_{number:04d}_{unique_name('x')[-6:]}",
        display_name=f"会员 {number}",
        identities=(),
        tier=tier,
        home_store_id=None,
        join_time=T0 - timedelta(days=400),
        referral_code=unique_name("R"),
    )
    doc = member_to_document(member)
    doc.update(fields)
    await svc.database[MEMBERS].insert_one(doc)
    return member.id


async def earn(
    svc: Service, member_id: str, amount: int, reference: str, **kwargs: Any
) -> member_pb2.EarnPointsResponse:
    return await svc.stub.EarnPoints(
        member_pb2.EarnPointsRequest(
            member_id=member_id, points=amount, reference=reference, **kwargs
        )
    )


async def redeem(
    svc: Service, member_id: str, amount: int, reference: str, order_fen: int = 1_000_000
) -> member_pb2.RedeemPointsResponse:
    return await svc.stub.RedeemPoints(
        member_pb2.RedeemPointsRequest(
            member_id=member_id,
            points=amount,
            reference=reference,
            order_amount=common_pb2.Money(amount=order_fen, currency="CNY"),
        )
    )


async def summary(svc: Service, member_id: str) -> member_pb2.PointsSummary:
    reply = await svc.stub.GetPointsSummary(member_pb2.GetPointsSummaryRequest(member_id=member_id))
    return reply.points


async def fails(call: Any) -> RpcErrorDetails:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return RpcErrorDetails.from_rpc_error(caught.value)


async def ledger_state(svc: Service, member_id: str) -> tuple[Document, list[Document]]:
    member = await svc.database[MEMBERS].find_one({"_id": member_id})
    assert member is not None
    entries = await svc.database[LEDGER].find({"member_id": member_id}).sort("seq", 1).to_list()
    return member["points"], entries


async def assert_ledger_exact(svc: Service, member_id: str) -> tuple[Document, list[Document]]:
    """total = sum of entry deltas = sum of remaining lots >= 0; entries 1..seq, none beyond;
    every entry's own head is consistent and never negative."""
    head, entries = await ledger_state(svc, member_id)
    assert [e["seq"] for e in entries] == list(range(1, head["seq"] + 1))
    assert head["total"] == sum(e["delta"] for e in entries)
    assert head["total"] == sum(lot["remaining"] for lot in head["lots"])
    assert head["total"] >= 0
    running = 0
    for entry in entries:
        running += entry["delta"]
        assert entry["total_after"] == running >= 0
        assert entry["head"]["total"] == running
        assert all(lot["remaining"] >= 0 for lot in entry["head"]["lots"])
    if entries:
        assert entries[-1]["head"] == head
    return head, entries


# ---- earn, redeem, revert --------------------------------------------------------------------


async def test_earn_is_a_pending_lot_until_available_time_and_expires_end_of_next_year(
    svc: Service,
) -> None:
    member_id = await new_member(svc)
    available_at = T0 + timedelta(days=7)
    reply = await earn(
        svc,
        member_id,
        120,
        "order-earn-1",
        available_time=_ts(available_at),
        note="order",
    )
    assert reply.balance == 120
    assert reply.entry.kind == "earn" and reply.entry.delta == 120
    assert reply.entry.available_time.ToDatetime(UTC) == available_at
    assert reply.entry.expire_time.ToDatetime(UTC) == datetime(2027, 12, 31, 16, tzinfo=UTC)
    before = await summary(svc, member_id)
    assert (before.available, before.pending, before.total) == (0, 120, 120)
    svc.clock.now = available_at
    after = await summary(svc, member_id)
    assert (after.available, after.pending, after.total) == (120, 0, 120)
    await assert_ledger_exact(svc, member_id)


async def test_earn_replay_answers_the_first_entry_and_a_different_amount_is_refused(
    svc: Service,
) -> None:
    member_id = await new_member(svc)
    first = await earn(svc, member_id, 50, "gift-1")
    again = await earn(svc, member_id, 50, "gift-1")
    assert again.entry == first.entry
    details = await fails(earn(svc, member_id, 60, "gift-1"))
    assert details.code == grpc.StatusCode.FAILED_PRECONDITION
    assert details.reason == "IDEMPOTENCY_KEY_REUSED"
    assert [v.field for v in details.violations] == ["reference"]
    other = await new_member(svc)
    elsewhere = await fails(earn(svc, other, 50, "gift-1"))
    assert elsewhere.reason == "IDEMPOTENCY_KEY_REUSED"
    head, entries = await assert_ledger_exact(svc, member_id)
    assert head["total"] == 50 and len(entries) == 1
    assert (await ledger_state(svc, other))[1] == []


async def test_redeem_takes_soonest_expiring_lots_and_revert_restores_the_same_lots(
    svc: Service,
) -> None:
    member_id = await new_member(svc)
    await earn(svc, member_id, 300, "early")  # expires end of 2027
    svc.clock.now = datetime(2027, 3, 1, tzinfo=UTC)
    await earn(svc, member_id, 500, "late")  # expires end of 2028
    before, _ = await ledger_state(svc, member_id)
    reply = await redeem(svc, member_id, 400, "order-r1", order_fen=100_000)
    assert reply.entry.delta == -400 and reply.balance == 400
    assert reply.value == common_pb2.Money(amount=400, currency="CNY")
    head, entries = await assert_ledger_exact(svc, member_id)
    assert [(lot["id"], lot["remaining"]) for lot in head["lots"]] == [
        (entries[1]["_id"], 400)  # "early" emptied, 100 taken from "late"
    ]
    reverted = await svc.stub.RevertPointsRedemption(
        member_pb2.RevertPointsRedemptionRequest(member_id=member_id, reference="order-r1")
    )
    assert reverted.entry.kind == "revert" and reverted.entry.delta == 400
    assert reverted.balance == 800
    after, _ = await assert_ledger_exact(svc, member_id)
    assert after["lots"] == before["lots"]
    # replaying the revert changes nothing more; a replayed redeem answers the first entry
    again = await svc.stub.RevertPointsRedemption(
        member_pb2.RevertPointsRedemptionRequest(member_id=member_id, reference="order-r1")
    )
    assert again.entry == reverted.entry
    replay = await redeem(svc, member_id, 400, "order-r1", order_fen=100_000)
    assert replay.entry == reply.entry
    final, entries = await assert_ledger_exact(svc, member_id)
    assert final["total"] == 800 and len(entries) == 4


async def test_revert_before_redeem_is_empty_and_a_late_redeem_is_refused(svc: Service) -> None:
    member_id = await new_member(svc)
    await earn(svc, member_id, 500, "start-1")
    reverted = await svc.stub.RevertPointsRedemption(
        member_pb2.RevertPointsRedemptionRequest(member_id=member_id, reference="order-late")
    )
    assert not reverted.HasField("entry") and reverted.balance == 500
    details = await fails(redeem(svc, member_id, 100, "order-late"))
    assert details.code == grpc.StatusCode.FAILED_PRECONDITION
    assert details.reason == "INVALID_STATE"
    head, _ = await assert_ledger_exact(svc, member_id)
    assert head["total"] == 500


async def test_redeem_bad_input_is_refused_and_changes_nothing(svc: Service) -> None:
    member_id = await new_member(svc)
    await earn(svc, member_id, 1_000, "start-2")
    before = await ledger_state(svc, member_id)

    unknown = await fails(redeem(svc, "m_nobody", 10, "o-x"))
    assert unknown.code == grpc.StatusCode.NOT_FOUND and unknown.reason == "NOT_FOUND"
    assert unknown.metadata["entity"] == "member"

    for amount in (0, -5):
        bad = await fails(redeem(svc, member_id, amount, "o-neg"))
        assert bad.code == grpc.StatusCode.INVALID_ARGUMENT
        assert [v.field for v in bad.violations] == ["points"]

    # ¥10 order, 50 % cap = 500 points
    capped = await fails(redeem(svc, member_id, 501, "o-cap", order_fen=1_000))
    assert capped.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in capped.violations] == ["points"]
    assert capped.metadata["max_points"] == "500"

    short = await fails(redeem(svc, member_id, 1_001, "o-short"))
    assert short.code == grpc.StatusCode.FAILED_PRECONDITION
    assert short.reason == "INSUFFICIENT_POINTS"
    assert short.metadata["available"] == "1000" and short.metadata["requested"] == "1001"

    no_ref = await fails(redeem(svc, member_id, 10, ""))
    assert [v.field for v in no_ref.violations] == ["reference"]

    money = await fails(
        svc.stub.RedeemPoints(
            member_pb2.RedeemPointsRequest(
                member_id=member_id,
                points=10,
                reference="o-usd",
                order_amount=common_pb2.Money(amount=1_000, currency="USD"),
            )
        )
    )
    assert [v.field for v in money.violations] == ["order_amount.currency"]
    assert await ledger_state(svc, member_id) == before


async def test_pending_points_cannot_be_redeemed(svc: Service) -> None:
    member_id = await new_member(svc)
    await earn(svc, member_id, 200, "pending", available_time=_ts(T0 + timedelta(days=7)))
    short = await fails(redeem(svc, member_id, 100, "o-pending"))
    assert short.reason == "INSUFFICIENT_POINTS" and short.metadata["available"] == "0"


async def test_quote_is_the_least_of_request_available_and_cap_and_changes_nothing(
    svc: Service,
) -> None:
    member_id = await new_member(svc)
    await earn(svc, member_id, 700, "start-3")
    before = await ledger_state(svc, member_id)

    async def quote(order_fen: int, wanted: int = 0) -> member_pb2.QuotePointsRedemptionResponse:
        return await svc.stub.QuotePointsRedemption(
            member_pb2.QuotePointsRedemptionRequest(
                member_id=member_id,
                order_amount=common_pb2.Money(amount=order_fen, currency="CNY"),
                points=wanted,
            )
        )

    most = await quote(1_000)  # cap 500
    assert (most.points, most.max_points, most.available) == (500, 500, 700)
    assert most.value.amount == 500
    rich = await quote(1_000_000)
    assert (rich.points, rich.max_points) == (700, 500_000)
    asked = await quote(1_000_000, 123)
    assert (asked.points, asked.value.amount) == (123, 123)
    assert await ledger_state(svc, member_id) == before


# ---- concurrency ---------------------------------------------------------------------------


async def test_concurrent_mixed_changes_keep_the_ledger_exact(svc: Service) -> None:
    member_id = await new_member(svc)
    await earn(svc, member_id, 600, "seed")
    calls: list[Any] = []
    for i in range(12):
        calls.append(earn(svc, member_id, 50, f"mix-earn-{i}"))
        calls.append(redeem(svc, member_id, 70, f"mix-order-{i}"))
    for i in range(0, 12, 2):
        calls.append(
            svc.stub.RevertPointsRedemption(
                member_pb2.RevertPointsRedemptionRequest(
                    member_id=member_id, reference=f"mix-order-{i}"
                )
            )
        )
    for i in range(0, 12, 3):
        calls.append(
            svc.stub.ClawBackPoints(
                member_pb2.ClawBackPointsRequest(
                    member_id=member_id,
                    order_id=f"mix-earn-{i}",
                    return_id="r1",
                    refunded_amount=common_pb2.Money(amount=5_000, currency="CNY"),
                    paid_amount=common_pb2.Money(amount=10_000, currency="CNY"),
                )
            )
        )
    calls.append(
        svc.stub.AdjustPoints(
            member_pb2.AdjustPointsRequest(
                member_id=member_id,
                delta=-90,
                reason="goodwill reversal",
                reference="mix-adj",
                actor=ADMIN,
            )
        )
    )
    results = await asyncio.gather(*calls, return_exceptions=True)
    for result in results:
        if isinstance(result, grpc.aio.AioRpcError):
            details = RpcErrorDetails.from_rpc_error(result)
            # a redeem may find too few points, or arrive after its revert
            assert details.reason in ("INSUFFICIENT_POINTS", "INVALID_STATE"), details
        else:
            assert not isinstance(result, BaseException), result
    _, entries = await assert_ledger_exact(svc, member_id)
    kinds = [(e["kind"], e["reference"]) for e in entries]
    assert len(kinds) == len(set(kinds))  # each (kind, reference) applied once
    assert sum(1 for kind, _ in kinds if kind == "earn") == 13
    assert sum(1 for kind, _ in kinds if kind == "revert") == 6
    # a redeem never takes more than there was available: every entry's total stayed >= 0
    # and redeems took whole amounts (never partial)
    for entry in entries:
        if entry["kind"] == "redeem":
            assert entry["delta"] == -70
            assert sum(t["points"] for t in entry["takes"]) == 70


async def test_a_redeem_and_its_revert_sent_together_never_lose_or_make_points(
    svc: Service,
) -> None:
    """Whichever lands first: redeem then revert gives the points back; revert then redeem
    refuses the redeem. Sent all at once, they are computed in shared batches."""
    member_id = await new_member(svc)
    await earn(svc, member_id, 1_000, "start-race")
    calls: list[Any] = []
    for i in range(10):
        reference = f"race-order-{i}"
        revert = svc.stub.RevertPointsRedemption(
            member_pb2.RevertPointsRedemptionRequest(member_id=member_id, reference=reference)
        )
        redeeming = redeem(svc, member_id, 40, reference)
        calls += [revert, redeeming] if i % 2 else [redeeming, revert]
    results = await asyncio.gather(*calls, return_exceptions=True)
    for result in results:
        if isinstance(result, grpc.aio.AioRpcError):
            details = RpcErrorDetails.from_rpc_error(result)
            assert (details.code, details.reason) == (
                grpc.StatusCode.FAILED_PRECONDITION,
                "INVALID_STATE",
            )
    head, entries = await assert_ledger_exact(svc, member_id)
    assert head["total"] == 1_000
    for i in range(10):
        mine = [e for e in entries if e["reference"] == f"race-order-{i}"]
        assert sum(e["delta"] for e in mine) == 0
        assert [e["kind"] for e in mine] in (["redeem", "revert"], ["revert"])


async def test_thirty_concurrent_replays_of_one_redeem_apply_once(svc: Service) -> None:
    member_id = await new_member(svc)
    await earn(svc, member_id, 1_000, "start-4")
    replies = await asyncio.gather(
        *(redeem(svc, member_id, 250, "order-replayed") for _ in range(30))
    )
    assert len({reply.entry.id for reply in replies}) == 1
    assert {reply.balance for reply in replies} == {750}
    head, entries = await assert_ledger_exact(svc, member_id)
    assert head["total"] == 750 and len(entries) == 2


async def test_two_replicas_never_redeem_more_than_available(svc: Service) -> None:
    """Two service processes on one database: the head compare-and-set alone keeps it exact
    (the in-process queue only helps within one replica)."""
    member_id = await new_member(svc)
    await earn(svc, member_id, 1_000, "start-5")
    async with (
        running_service(
            app.NAME, svc.settings, app.SERVICE_NAMES, _register(svc.clock), app.on_ready
        ) as second,
        channel_to(second) as channel,
    ):
        other = Service(
            member_pb2_grpc.MemberServiceStub(channel), svc.database, svc.clock, svc.settings, []
        )
        calls = [
            redeem(svc if i % 2 else other, member_id, 100, f"two-replicas-{i}") for i in range(16)
        ]
        results = await asyncio.gather(*calls, return_exceptions=True)
    ok = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(ok) == 10 and len(refused) == 6
    assert all(RpcErrorDetails.from_rpc_error(r).reason == "INSUFFICIENT_POINTS" for r in refused)
    head, _ = await assert_ledger_exact(svc, member_id)
    assert head["total"] == 0


# ---- crash recovery ---------------------------------------------------------------------------


class LostHeadWrite(PointsBook):
    """A book that dies between inserting its entry and writing the head."""

    async def _commit(self, head: Head, docs: Sequence[Document]) -> None:
        return None


def crashing_book(svc: Service) -> LostHeadWrite:
    return LostHeadWrite(svc.database, svc.settings, svc.clock)


async def test_an_entry_whose_head_write_was_lost_is_rolled_forward_by_the_next_change(
    svc: Service,
) -> None:
    member_id = await new_member(svc)
    await earn(svc, member_id, 100, "before")
    await crashing_book(svc).earn(member_id, 40, kind="earn", reference="crashed")
    head, entries = await ledger_state(svc, member_id)
    assert head["seq"] == 1 and len(entries) == 2  # the entry is there, the head is not
    reply = await earn(svc, member_id, 5, "after")
    assert reply.balance == 145 and reply.entry.id.endswith(":0000000003")
    await assert_ledger_exact(svc, member_id)


async def test_a_replay_of_the_lost_entry_rolls_it_forward_and_answers_it(svc: Service) -> None:
    member_id = await new_member(svc)
    lost = await crashing_book(svc).earn(member_id, 40, kind="earn", reference="crash-replay")
    reply = await earn(svc, member_id, 40, "crash-replay")
    assert reply.entry.id == lost.id and reply.balance == 40
    head, _ = await assert_ledger_exact(svc, member_id)
    assert head["total"] == 40


async def test_a_stalled_head_write_arriving_late_cannot_move_the_head_back(
    svc: Service,
) -> None:
    member_id = await new_member(svc)
    await earn(svc, member_id, 10, "stall-1")
    await earn(svc, member_id, 20, "stall-2")
    _, entries = await ledger_state(svc, member_id)
    book = PointsBook(svc.database, svc.settings, svc.clock)
    # the writer of entry 1 wakes up now and writes its head (seq 0 -> 1) again
    stale = Head(member_id, 0, (), None, ())
    await book._commit(stale, [entries[0]])
    head, _ = await assert_ledger_exact(svc, member_id)
    assert head["seq"] == 2 and head["total"] == 30


async def test_the_expiry_job_rolls_forward_lost_head_writes(svc: Service) -> None:
    member_id = await new_member(svc)
    await crashing_book(svc).earn(member_id, 70, kind="earn", reference="crash-job")
    head, _ = await ledger_state(svc, member_id)
    assert head["seq"] == 0
    svc.clock.now = T0 + timedelta(minutes=1)
    await svc.stub.ExpirePoints(member_pb2.ExpirePointsRequest())
    head, _ = await assert_ledger_exact(svc, member_id)
    assert head["total"] == 70


async def test_listing_and_summary_roll_forward_a_lost_head_write(svc: Service) -> None:
    member_id = await new_member(svc)
    await earn(svc, member_id, 10, "l1")
    await crashing_book(svc).earn(member_id, 20, kind="earn", reference="l2")
    listed = await svc.stub.ListPointsLedger(
        member_pb2.ListPointsLedgerRequest(member_id=member_id)
    )
    assert [e.reference for e in listed.entries] == ["l2", "l1"]
    assert (await summary(svc, member_id)).total == 30
    await assert_ledger_exact(svc, member_id)


# ---- expiry ---------------------------------------------------------------------------------


async def test_expiry_takes_due_lots_once_even_when_run_twice_and_concurrently(
    svc: Service,
) -> None:
    member_id = await new_member(svc)
    await earn(svc, member_id, 300, "old")  # expires 2027-12-31 16:00 UTC
    svc.clock.now = datetime(2027, 6, 1, tzinfo=UTC)
    await earn(svc, member_id, 200, "new")  # 2027 -> expires end of 2028
    await redeem(svc, member_id, 100, "o-exp")  # from "old"
    svc.clock.now = datetime(2027, 12, 31, 16, 0, tzinfo=UTC)
    replies = await asyncio.gather(
        *(svc.stub.ExpirePoints(member_pb2.ExpirePointsRequest()) for _ in range(5))
    )
    assert sum(r.members for r in replies) >= 1
    again = await svc.stub.ExpirePoints(member_pb2.ExpirePointsRequest())
    assert again.members == 0 and not again.more
    head, entries = await assert_ledger_exact(svc, member_id)
    expired = [e for e in entries if e["kind"] == "expire"]
    assert len(expired) == 1 and expired[0]["delta"] == -200
    assert head["total"] == 200
    assert head["next_expiry"] == datetime(2028, 12, 31, 16, 0, tzinfo=UTC)
    current = await summary(svc, member_id)
    assert (current.available, current.total) == (200, 200)


async def test_expiry_pages_through_many_members(svc: Service) -> None:
    ids = [await new_member(svc) for _ in range(5)]
    for member_id in ids:
        await earn(svc, member_id, 10, f"page-{member_id}")
    svc.clock.now = datetime(2030, 1, 1, tzinfo=UTC)
    seen = 0
    for _ in range(50):
        reply = await svc.stub.ExpirePoints(member_pb2.ExpirePointsRequest(limit=2))
        seen += reply.members
        if not reply.more:
            break
    for member_id in ids:
        head, _ = await assert_ledger_exact(svc, member_id)
        assert head["total"] == 0 and head["next_expiry"] is None
    assert seen >= 5


async def test_expiring_soon_lists_lots_within_thirty_days(svc: Service) -> None:
    member_id = await new_member(svc)
    await earn(svc, member_id, 80, "soon")
    svc.clock.now = datetime(2027, 12, 10, tzinfo=UTC)
    current = await summary(svc, member_id)
    assert [(p.points, p.expire_time.ToDatetime(UTC)) for p in current.expiring_soon] == [
        (80, datetime(2027, 12, 31, 16, 0, tzinfo=UTC))
    ]


# ---- claw-back and adjustments -------------------------------------------------------------


async def claw(
    svc: Service, member_id: str, order_id: str, return_id: str, refunded: int, paid: int
) -> member_pb2.ClawBackPointsResponse:
    return await svc.stub.ClawBackPoints(
        member_pb2.ClawBackPointsRequest(
            member_id=member_id,
            order_id=order_id,
            return_id=return_id,
            refunded_amount=common_pb2.Money(amount=refunded, currency="CNY"),
            paid_amount=common_pb2.Money(amount=paid, currency="CNY"),
        )
    )


async def test_claw_back_is_proportional_from_the_orders_lot_and_never_below_zero(
    svc: Service,
) -> None:
    member_id = await new_member(svc)
    await earn(svc, member_id, 100, "other")
    # the order's points are pending during its return window
    await earn(svc, member_id, 300, "order-cb", available_time=_ts(T0 + timedelta(days=7)))
    first = await claw(svc, member_id, "order-cb", "ret-1", 5_000, 15_000)  # a third
    assert first.entry.delta == -100 and first.entry.shortfall == 0
    head, _ = await ledger_state(svc, member_id)
    by_source = {lot["source"]: lot["remaining"] for lot in head["lots"]}
    assert by_source == {"earn:other": 100, "earn:order-cb": 200}
    replay = await claw(svc, member_id, "order-cb", "ret-1", 5_000, 15_000)
    assert replay.entry == first.entry
    svc.clock.now = T0 + timedelta(days=8)
    await redeem(svc, member_id, 250, "spend-it")  # leaves 50
    rest = await claw(svc, member_id, "order-cb", "ret-2", 10_000, 15_000)
    assert rest.entry.delta == -50 and rest.entry.shortfall == 150
    assert rest.balance == 0
    over = await fails(claw(svc, member_id, "order-cb", "ret-3", 1, 15_000))
    assert over.reason == "RETURN_EXCEEDS_PURCHASE"
    nothing = await claw(svc, member_id, "never-earned", "ret-1", 100, 200)
    assert not nothing.HasField("entry") and nothing.balance == 0
    bad = await fails(claw(svc, member_id, "order-cb", "ret-4", 20_000, 15_000))
    assert bad.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in bad.violations] == ["refunded_amount"]
    await assert_ledger_exact(svc, member_id)


async def test_available_lots_expiring_together_are_kept_as_one(svc: Service) -> None:
    member_id = await new_member(svc)
    for i in range(20):
        await earn(svc, member_id, 10, f"many-{i}")
    await earn(svc, member_id, 5, "many-pending", available_time=_ts(T0 + timedelta(days=3)))
    head, entries = await assert_ledger_exact(svc, member_id)
    assert [(lot["remaining"], lot["source"]) for lot in head["lots"]] == [
        (200, "consolidated"),
        (5, "earn:many-pending"),
    ]
    assert head["lots"][0]["id"] == entries[0]["_id"]
    reply = await redeem(svc, member_id, 30, "many-order")
    await svc.stub.RevertPointsRedemption(
        member_pb2.RevertPointsRedemptionRequest(member_id=member_id, reference="many-order")
    )
    assert reply.balance == 175
    after, _ = await assert_ledger_exact(svc, member_id)
    assert after["lots"] == head["lots"]


async def test_adjust_needs_an_admin_and_a_reason_and_never_goes_below_zero(
    svc: Service,
) -> None:
    member_id = await new_member(svc)
    await earn(svc, member_id, 100, "start-6")
    before = await ledger_state(svc, member_id)

    def adjust(delta: int, reason: str, reference: str, actor: common_pb2.Actor) -> Any:
        return svc.stub.AdjustPoints(
            member_pb2.AdjustPointsRequest(
                member_id=member_id, delta=delta, reason=reason, reference=reference, actor=actor
            )
        )

    associate = common_pb2.Actor(kind=common_pb2.ACTOR_KIND_ASSOCIATE, id="as_1", store_id="st")
    denied = await fails(adjust(50, "gift", "adj-1", associate))
    assert denied.code == grpc.StatusCode.PERMISSION_DENIED
    assert denied.reason == "PERMISSION_DENIED"
    denied = await fails(adjust(50, "gift", "adj-1", common_pb2.Actor()))
    assert denied.code == grpc.StatusCode.PERMISSION_DENIED
    no_reason = await fails(adjust(50, "  ", "adj-1", ADMIN))
    assert [v.field for v in no_reason.violations] == ["reason"]
    zero = await fails(adjust(0, "x", "adj-1", ADMIN))
    assert [v.field for v in zero.violations] == ["delta"]
    assert await ledger_state(svc, member_id) == before

    added = await adjust(50, "service recovery", "adj-1", ADMIN)
    assert added.entry.kind == "adjust" and added.balance == 150
    assert added.entry.note == "service recovery"
    assert added.entry.actor.kind == common_pb2.ACTOR_KIND_ADMIN
    assert (await adjust(50, "service recovery", "adj-1", ADMIN)).entry == added.entry
    reused = await fails(adjust(70, "service recovery", "adj-1", ADMIN))
    assert reused.reason == "IDEMPOTENCY_KEY_REUSED"
    removed = await adjust(-400, "fraud", "adj-2", ADMIN)
    assert removed.entry.delta == -150 and removed.entry.shortfall == 250
    assert removed.balance == 0
    await assert_ledger_exact(svc, member_id)


# ---- merged members, listing, errors --------------------------------------------------------


async def test_points_written_to_a_merged_member_land_on_its_survivor(svc: Service) -> None:
    survivor = await new_member(svc)
    absorbed = await new_member(svc, status="merged", merged_into=survivor)
    reply = await earn(svc, absorbed, 60, "to-merged")
    assert reply.entry.member_id == survivor
    assert (await summary(svc, absorbed)).total == 60
    await redeem(svc, absorbed, 10, "o-merged")
    head, _ = await assert_ledger_exact(svc, survivor)
    assert head["total"] == 50
    absorbed_head, absorbed_entries = await ledger_state(svc, absorbed)
    assert absorbed_entries == [] and absorbed_head["total"] == 0


async def test_merge_transfers_lots_once_and_the_absorbed_is_closed(svc: Service) -> None:
    survivor = await new_member(svc)
    absorbed = await new_member(svc)
    await earn(svc, absorbed, 90, "ab-1", available_time=_ts(T0 + timedelta(days=3)))
    await earn(svc, absorbed, 10, "ab-2")
    await earn(svc, survivor, 5, "sv-1")
    book = PointsBook(svc.database, svc.settings, svc.clock)
    out = await book.transfer_out(absorbed, "merge-1")
    assert out.delta == -100 and out.total_after == 0
    assert await book.transfer_out(absorbed, "merge-1") == out
    into = await book.transfer_in(survivor, "merge-1")
    assert await book.transfer_in(survivor, "merge-1") == into
    assert into.delta == 100 and into.total_after == 105
    survivor_summary = await summary(svc, survivor)
    assert (survivor_summary.available, survivor_summary.pending) == (15, 90)
    # a write reaching the absorbed before the merge names the survivor is refused (retry)
    busy = await fails(earn(svc, absorbed, 1, "ab-late"))
    assert busy.code == grpc.StatusCode.UNAVAILABLE and busy.reason == "IN_PROGRESS"
    await svc.database[MEMBERS].update_one(
        {"_id": absorbed}, {"$set": {"status": "merged", "merged_into": survivor}}
    )
    assert (await earn(svc, absorbed, 1, "ab-late")).entry.member_id == survivor
    await assert_ledger_exact(svc, absorbed)
    head, _ = await assert_ledger_exact(svc, survivor)
    assert head["total"] == 106


async def test_ledger_lists_newest_first_in_pages(svc: Service) -> None:
    member_id = await new_member(svc)
    for i in range(5):
        await earn(svc, member_id, i + 1, f"page-{i}")
    first = await svc.stub.ListPointsLedger(
        member_pb2.ListPointsLedgerRequest(member_id=member_id, page_size=2)
    )
    assert [e.reference for e in first.entries] == ["page-4", "page-3"]
    assert [e.balance_after for e in first.entries] == [15, 10]
    second = await svc.stub.ListPointsLedger(
        member_pb2.ListPointsLedgerRequest(
            member_id=member_id, page_size=2, page_token=first.next_page_token
        )
    )
    assert [e.reference for e in second.entries] == ["page-2", "page-1"]
    third = await svc.stub.ListPointsLedger(
        member_pb2.ListPointsLedgerRequest(
            member_id=member_id, page_size=2, page_token=second.next_page_token
        )
    )
    assert [e.reference for e in third.entries] == ["page-0"] and not third.next_page_token
    other = await new_member(svc)
    bad = await fails(
        svc.stub.ListPointsLedger(
            member_pb2.ListPointsLedgerRequest(member_id=other, page_token=first.next_page_token)
        )
    )
    assert bad.reason == "INVALID_PAGE_TOKEN"


async def test_unknown_members_and_bad_points_are_clear_errors(svc: Service) -> None:
    unknown = await fails(earn(svc, "m_unknown", 10, "x"))
    assert unknown.code == grpc.StatusCode.NOT_FOUND
    assert unknown.metadata == {"entity": "member", "id": "m_unknown"}
    assert await svc.database[LEDGER].count_documents({"reference": "x"}) == 0
    member_id = await new_member(svc)
    for amount in (0, -1):
        bad = await fails(earn(svc, member_id, amount, "bad"))
        assert bad.code == grpc.StatusCode.INVALID_ARGUMENT
        assert [v.field for v in bad.violations] == ["points"]
    missing = await fails(
        svc.stub.GetPointsSummary(member_pb2.GetPointsSummaryRequest(member_id="m_unknown"))
    )
    assert missing.code == grpc.StatusCode.NOT_FOUND
    head, entries = await ledger_state(svc, member_id)
    assert entries == [] and head["total"] == 0


def _ts(moment: datetime) -> Any:
    from google.protobuf.timestamp_pb2 import Timestamp

    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp
