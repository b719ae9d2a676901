"""Tiers and order effects over real gRPC against the embedded database, with a moved clock:
policy, upgrade at once, review one step down at the anniversary, returns, birthday bonus,
merge history."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from pymongo.asynchronous.database import AsyncDatabase

from member_svc import app, tiers
from member_svc.books import Books, build_books
from member_svc.domain import Member, Tier
from member_svc.points import LEDGER
from member_svc.repository import MEMBERS, member_to_document
from member_svc.servicer import MemberServicer
from member_svc.settings import MemberSettings
from member_svc.tiers import CHANGES, SPEND
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
    books: Books


@contextlib.asynccontextmanager
async def start(mongo_uri: str) -> AsyncIterator[Service]:
    clock = Clock(T0)
    settings = MemberSettings(
        mongodb_uri=mongo_uri, database=unique_name("member"), worker_interval_seconds=0
    )

    def register(server: grpc.aio.Server, context: Any) -> None:
        member_pb2_grpc.add_MemberServiceServicer_to_server(
            MemberServicer(app.books_for(context, clock)), server
        )

    async with (
        running_service(
            app.NAME, settings, app.SERVICE_NAMES, register, app.on_ready, app.on_stop
        ) as host,
        channel_to(host) as channel,
    ):
        database = host.context.database
        yield Service(
            member_pb2_grpc.MemberServiceStub(channel),
            database,
            clock,
            build_books(database, settings, clock),
        )


@pytest.fixture(scope="module")
async def service(mongo_uri: str) -> AsyncIterator[Service]:
    async with start(mongo_uri) as running:
        yield running


@pytest.fixture
def svc(service: Service) -> Service:
    service.clock.now = T0
    return service


async def new_member(svc: Service, *, tier: Tier = Tier.BRONZE, **fields: Any) -> str:
    number = next(_numbers)
    member = Member(
        id=f"mt_{number:04d}_{unique_name('x')[-6:]}",
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


def ts(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def cny(fen: int) -> common_pb2.Money:
    return common_pb2.Money(amount=fen, currency="CNY")


async def complete(
    svc: Service,
    member_id: str,
    order_id: str,
    paid_fen: int,
    *,
    window_days: int = 7,
    when: datetime | None = None,
) -> member_pb2.RecordOrderCompletedResponse:
    moment = when or svc.clock.now
    return await svc.stub.RecordOrderCompleted(
        member_pb2.RecordOrderCompletedRequest(
            member_id=member_id,
            order_id=order_id,
            paid_amount=cny(paid_fen),
            channel=common_pb2.CHANNEL_MINI_PROGRAM,
            store_id="st_001",
            complete_time=ts(moment),
            return_window_end_time=ts(moment + timedelta(days=window_days)),
        )
    )


async def returned(
    svc: Service, member_id: str, order_id: str, return_id: str, refunded: int, paid: int
) -> member_pb2.RecordOrderReturnedResponse:
    return await svc.stub.RecordOrderReturned(
        member_pb2.RecordOrderReturnedRequest(
            member_id=member_id,
            order_id=order_id,
            return_id=return_id,
            refunded_amount=cny(refunded),
            paid_amount=cny(paid),
            return_time=ts(svc.clock.now),
        )
    )


async def member(svc: Service, member_id: str) -> member_pb2.Member:
    return (await svc.stub.GetMember(member_pb2.GetMemberRequest(id=member_id))).member


async def changes(svc: Service, member_id: str) -> list[tuple[str, str, str]]:
    reply = await svc.stub.ListTierChanges(member_pb2.ListTierChangesRequest(member_id=member_id))
    return [(c.from_tier, c.to_tier, c.reason) for c in reply.changes]


async def fails(call: Any) -> RpcErrorDetails:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return RpcErrorDetails.from_rpc_error(caught.value)


async def snapshot(svc: Service, member_id: str) -> tuple[Any, ...]:
    doc = await svc.database[MEMBERS].find_one({"_id": member_id})
    ledger = await svc.database[LEDGER].find({"member_id": member_id}).sort("seq", 1).to_list()
    spend = await svc.database[SPEND].find({"member_id": member_id}).sort("_id", 1).to_list()
    return doc, ledger, spend


# ---- policy ---------------------------------------------------------------------------------


async def test_default_policy_is_served_until_an_admin_sets_one(mongo_uri: str) -> None:
    async with start(mongo_uri) as svc:
        policy = (await svc.stub.GetTierPolicy(member_pb2.GetTierPolicyRequest())).policy
        assert [t.code for t in policy.tiers] == ["bronze", "silver", "gold", "platinum"]
        assert [t.threshold.amount for t in policy.tiers] == [0, 200_000, 800_000, 2_000_000]
        assert [t.points_multiplier_percent for t in policy.tiers] == [100, 120, 150, 200]
        assert [t.birthday_bonus_points for t in policy.tiers] == [0, 100, 300, 800]
        assert policy.tiers[2].name.values["zh-Hans"] == "金卡"
        assert (policy.points_per_yuan, policy.points_per_yuan_redeemed) == (1, 100)
        assert policy.max_redeem_percent == 50

        wanted = member_pb2.TierPolicy(
            tiers=[
                member_pb2.TierDefinition(
                    code="bronze", threshold=cny(0), points_multiplier_percent=100
                ),
                member_pb2.TierDefinition(
                    code="gold",
                    threshold=cny(100_000),
                    points_multiplier_percent=300,
                    birthday_bonus_points=50,
                ),
            ],
            points_per_yuan=2,
            points_per_yuan_redeemed=300,
            max_redeem_percent=20,
        )
        associate = common_pb2.Actor(kind=common_pb2.ACTOR_KIND_ASSOCIATE, id="as_1")
        denied = await fails(
            svc.stub.SetTierPolicy(member_pb2.SetTierPolicyRequest(policy=wanted, actor=associate))
        )
        assert denied.code == grpc.StatusCode.PERMISSION_DENIED
        bad = member_pb2.TierPolicy()
        bad.CopyFrom(wanted)
        bad.tiers[0].threshold.amount = 5
        bad.tiers[1].code = "diamond"
        bad.max_redeem_percent = 120
        invalid = await fails(
            svc.stub.SetTierPolicy(member_pb2.SetTierPolicyRequest(policy=bad, actor=ADMIN))
        )
        assert invalid.code == grpc.StatusCode.INVALID_ARGUMENT
        assert {v.field for v in invalid.violations} == {
            "policy.tiers[0].threshold",
            "policy.tiers[1].code",
            "policy.max_redeem_percent",
        }
        descending = member_pb2.TierPolicy()
        descending.CopyFrom(wanted)
        descending.tiers[1].threshold.amount = 0
        invalid = await fails(
            svc.stub.SetTierPolicy(member_pb2.SetTierPolicyRequest(policy=descending, actor=ADMIN))
        )
        assert [v.field for v in invalid.violations] == ["policy.tiers[1].threshold"]
        unchanged = (await svc.stub.GetTierPolicy(member_pb2.GetTierPolicyRequest())).policy
        assert unchanged == policy

        stored = await svc.stub.SetTierPolicy(
            member_pb2.SetTierPolicyRequest(policy=wanted, actor=ADMIN)
        )
        assert stored.policy.update_time.ToDatetime(UTC) == T0
        got = (await svc.stub.GetTierPolicy(member_pb2.GetTierPolicyRequest())).policy
        assert got == stored.policy
        assert got.tiers[1].name.values["en"] == "Gold"  # default names fill in

        # the new policy rules earning, tiers and redemption at once
        member_id = await new_member(svc)
        done = await complete(svc, member_id, "o-policy", 100_000)  # ¥1,000 x 2 points
        assert done.earned.delta == 2_000 and done.tier == "gold" and done.upgraded
        svc.clock.now = T0 + timedelta(days=8)
        capped = await fails(
            svc.stub.RedeemPoints(
                member_pb2.RedeemPointsRequest(
                    member_id=member_id, points=603, reference="o-r", order_amount=cny(1_000)
                )
            )
        )  # 20 % of ¥10 = 200 fen = 600 points
        assert capped.metadata["max_points"] == "600"
        odd = await fails(
            svc.stub.RedeemPoints(
                member_pb2.RedeemPointsRequest(
                    member_id=member_id, points=301, reference="o-r", order_amount=cny(100_000)
                )
            )
        )
        assert [v.field for v in odd.violations] == ["points"]
        redeemed = await svc.stub.RedeemPoints(
            member_pb2.RedeemPointsRequest(
                member_id=member_id, points=600, reference="o-r", order_amount=cny(1_000)
            )
        )
        assert redeemed.value.amount == 200


# ---- order completed -------------------------------------------------------------------------


async def test_a_completed_order_earns_pending_points_and_upgrades_at_once(svc: Service) -> None:
    member_id = await new_member(svc)
    done = await complete(svc, member_id, "o-up-1", 250_050)  # ¥2,500.50
    assert done.earned.kind == "earn" and done.earned.delta == 2_500
    assert done.earned.available_time.ToDatetime(UTC) == T0 + timedelta(days=7)
    assert (done.tier, done.upgraded) == ("silver", True)
    assert list(done.referral_rewards) == []
    current = await member(svc, member_id)
    assert current.tier == "silver"
    assert current.qualifying_spend.amount == 250_050
    assert current.tier_review_time.ToDatetime(UTC) == T0.replace(year=2027)
    assert current.last_purchase_time.ToDatetime(UTC) == T0
    assert (current.points.pending, current.points.available) == (2_500, 0)
    assert await changes(svc, member_id) == [("bronze", "silver", "upgrade")]

    before = await snapshot(svc, member_id)
    again = await complete(svc, member_id, "o-up-1", 250_050)
    assert again.earned == done.earned and (again.tier, again.upgraded) == ("silver", True)
    mismatch = await fails(complete(svc, member_id, "o-up-1", 100))
    assert mismatch.code == grpc.StatusCode.FAILED_PRECONDITION
    assert mismatch.reason == "AMOUNT_MISMATCH"
    assert await snapshot(svc, member_id) == before

    # the next order earns at the silver multiplier (1.2x), and does not upgrade
    svc.clock.now = T0 + timedelta(days=1)
    second = await complete(svc, member_id, "o-up-2", 10_000)
    assert second.earned.delta == 120 and (second.tier, second.upgraded) == ("silver", False)
    svc.clock.now = T0 + timedelta(days=7, hours=1)
    current = await member(svc, member_id)
    assert (current.points.available, current.points.pending) == (2_500, 120)


async def test_an_order_that_earns_nothing_still_counts_as_spend(svc: Service) -> None:
    member_id = await new_member(svc)
    done = await complete(svc, member_id, "o-tiny", 99)  # ¥0.99 -> 0 points
    assert not done.HasField("earned") and done.tier == "bronze" and not done.upgraded
    assert (await member(svc, member_id)).qualifying_spend.amount == 99


async def test_bad_order_effects_are_refused_and_change_nothing(svc: Service) -> None:
    member_id = await new_member(svc)
    before = await snapshot(svc, member_id)
    unknown = await fails(complete(svc, "m_nobody", "o-x", 100))
    assert unknown.code == grpc.StatusCode.NOT_FOUND and unknown.metadata["entity"] == "member"
    negative = await fails(complete(svc, member_id, "o-neg", -1))
    assert [v.field for v in negative.violations] == ["paid_amount.amount"]
    no_order = await fails(complete(svc, member_id, "", 100))
    assert [v.field for v in no_order.violations] == ["order_id"]
    not_completed = await fails(returned(svc, member_id, "o-never", "r1", 100, 100))
    assert not_completed.code == grpc.StatusCode.FAILED_PRECONDITION
    assert not_completed.reason == "INVALID_STATE"
    assert await snapshot(svc, member_id) == before


async def test_concurrent_orders_of_one_member_sum_exactly_and_replays_apply_once(
    svc: Service,
) -> None:
    member_id = await new_member(svc)
    calls = [complete(svc, member_id, f"o-many-{i}", 100_000) for i in range(10)]
    calls += [complete(svc, member_id, "o-many-0", 100_000) for _ in range(20)]
    await asyncio.gather(*calls)
    current = await member(svc, member_id)
    assert current.qualifying_spend.amount == 1_000_000
    assert current.tier == "gold"
    assert await svc.database[SPEND].count_documents({"member_id": member_id}) == 10
    ledger = await svc.database[LEDGER].find({"member_id": member_id}).to_list()
    assert len(ledger) == 10 and {e["reference"] for e in ledger} == {
        f"o-many-{i}" for i in range(10)
    }
    assert current.points.pending == sum(e["delta"] for e in ledger)
    history = await changes(svc, member_id)  # newest first, a chain bronze -> ... -> gold
    assert history[0][1] == "gold" and history[-1][0] == "bronze"
    assert all(reason == "upgrade" for *_, reason in history)
    assert all(newer[0] == older[1] for newer, older in itertools.pairwise(history))


async def test_points_of_an_order_by_a_merged_member_go_to_its_survivor(svc: Service) -> None:
    survivor = await new_member(svc)
    absorbed = await new_member(svc, status="merged", merged_into=survivor)
    done = await complete(svc, absorbed, "o-merged", 50_000)
    assert done.earned.member_id == survivor
    assert (await member(svc, survivor)).qualifying_spend.amount == 50_000
    assert await svc.database[SPEND].count_documents({"member_id": survivor}) == 1


async def test_qualifying_spend_rolls_over_365_days(svc: Service) -> None:
    member_id = await new_member(svc)
    await complete(svc, member_id, "o-roll-1", 250_000)
    svc.clock.now = T0 + timedelta(days=200)
    await complete(svc, member_id, "o-roll-2", 10_000)
    assert (await member(svc, member_id)).qualifying_spend.amount == 260_000
    svc.clock.now = T0 + timedelta(days=366)
    await complete(svc, member_id, "o-roll-3", 100)
    current = await member(svc, member_id)
    assert current.qualifying_spend.amount == 10_100
    assert current.tier == "silver"  # no downgrade before the review


# ---- returns -------------------------------------------------------------------------------


async def test_a_return_claws_back_proportionally_and_lowers_spend(svc: Service) -> None:
    member_id = await new_member(svc)
    await complete(svc, member_id, "o-ret", 30_000)  # 300 points
    first = await returned(svc, member_id, "o-ret", "r1", 10_000, 30_000)
    assert first.clawed_back.kind == "claw_back" and first.clawed_back.delta == -100
    assert first.clawed_back.reference == "o-ret:r1"
    assert (await member(svc, member_id)).qualifying_spend.amount == 20_000
    assert (await returned(svc, member_id, "o-ret", "r1", 10_000, 30_000)) == first
    before = await snapshot(svc, member_id)
    too_much = await fails(returned(svc, member_id, "o-ret", "r2", 25_000, 30_000))
    assert too_much.code == grpc.StatusCode.FAILED_PRECONDITION
    assert too_much.reason == "RETURN_EXCEEDS_PURCHASE"
    over_paid = await fails(returned(svc, member_id, "o-ret", "r2", 40_000, 30_000))
    assert [v.field for v in over_paid.violations] == ["refunded_amount"]
    assert await snapshot(svc, member_id) == before
    rest = await returned(svc, member_id, "o-ret", "r2", 20_000, 30_000)
    assert rest.clawed_back.delta == -200
    current = await member(svc, member_id)
    assert (current.points.total, current.qualifying_spend.amount) == (0, 0)


# ---- reviews -------------------------------------------------------------------------------


async def review(svc: Service) -> member_pb2.ReviewTiersResponse:
    return await svc.stub.ReviewTiers(member_pb2.ReviewTiersRequest())


async def test_review_downgrades_one_step_at_the_anniversary_and_only_once(
    svc: Service,
) -> None:
    member_id = await new_member(svc)
    await complete(svc, member_id, "o-rev-1", 900_000)  # gold at T0
    svc.clock.now = T0 + timedelta(days=300)
    await review(svc)
    assert (await member(svc, member_id)).tier == "gold"  # protected until the anniversary
    svc.clock.now = T0 + timedelta(days=366)
    first = await review(svc)
    assert first.reviewed >= 1 and first.downgraded >= 1
    current = await member(svc, member_id)
    assert current.tier == "silver"  # spend 0 now, but one step only
    assert current.tier_review_time.ToDatetime(UTC) == T0.replace(year=2028)
    await review(svc)
    assert (await member(svc, member_id)).tier == "silver"
    assert await changes(svc, member_id) == [
        ("gold", "silver", "downgrade"),
        ("bronze", "gold", "upgrade"),
    ]
    svc.clock.now = T0.replace(year=2028) + timedelta(days=1)
    await review(svc)
    current = await member(svc, member_id)
    assert current.tier == "bronze" and not current.HasField("tier_review_time")
    pages: list[tuple[str, str, str]] = []
    token = ""
    for _ in range(5):
        page = await svc.stub.ListTierChanges(
            member_pb2.ListTierChangesRequest(member_id=member_id, page_size=1, page_token=token)
        )
        pages += [(c.from_tier, c.to_tier, c.reason) for c in page.changes]
        token = page.next_page_token
        if not token:
            break
    assert pages == [
        ("silver", "bronze", "downgrade"),
        ("gold", "silver", "downgrade"),
        ("bronze", "gold", "upgrade"),
    ]


async def test_review_keeps_a_tier_the_spend_still_qualifies_for(svc: Service) -> None:
    due = T0 + timedelta(days=5)
    member_id = await new_member(
        svc, tier=Tier.PLATINUM, tier_review_time=due, tier_since=T0 - timedelta(days=360)
    )
    await complete(svc, member_id, "o-keep", 2_100_000)
    svc.clock.now = due + timedelta(hours=1)
    await review(svc)
    current = await member(svc, member_id)
    assert current.tier == "platinum"
    assert current.tier_review_time.ToDatetime(UTC) == due.replace(year=2027)
    assert (await changes(svc, member_id))[0] == ("platinum", "platinum", "retained")


async def test_concurrent_reviews_apply_once(svc: Service) -> None:
    due = T0 - timedelta(days=1)
    ids = [await new_member(svc, tier=Tier.PLATINUM, tier_review_time=due) for _ in range(3)]
    await asyncio.gather(*(review(svc) for _ in range(6)))
    for member_id in ids:
        assert (await member(svc, member_id)).tier == "gold"
        assert await changes(svc, member_id) == [("platinum", "gold", "downgrade")]


# ---- birthday bonus ------------------------------------------------------------------------


async def test_birthday_bonus_once_a_year_in_the_birthday_month_by_tier(svc: Service) -> None:
    gold = await new_member(svc, tier=Tier.GOLD, birthday="05-20")
    bronze = await new_member(svc, tier=Tier.BRONZE, birthday="05-02")
    june = await new_member(svc, tier=Tier.GOLD, birthday="06-01")
    await tiers.review_job(svc.books, svc.clock.now)
    await asyncio.gather(*(tiers.review_job(svc.books, svc.clock.now) for _ in range(3)))
    bonus = await svc.database[LEDGER].find({"kind": "birthday_bonus"}).to_list()
    by_member = {e["member_id"]: e for e in bonus}
    assert by_member[gold]["delta"] == 300 and by_member[gold]["reference"] == f"{gold}:2026"
    assert bronze not in by_member and june not in by_member
    assert (await member(svc, gold)).points.available == 300
    svc.clock.now = datetime(2027, 5, 3, tzinfo=UTC)
    await tiers.review_job(svc.books, svc.clock.now)
    again = await svc.database[LEDGER].count_documents(
        {"kind": "birthday_bonus", "member_id": gold}
    )
    assert again == 2


# ---- merges ----------------------------------------------------------------------------------


async def test_merge_history_moves_spend_keeps_the_best_tier_and_is_idempotent(
    svc: Service,
) -> None:
    survivor = await new_member(svc, join_time=T0 - timedelta(days=10))
    absorbed = await new_member(svc, join_time=T0 - timedelta(days=900))
    await complete(svc, survivor, "o-sv", 150_000)
    svc.clock.now = T0 + timedelta(days=2)
    await complete(svc, absorbed, "o-ab", 700_000)  # absorbed reaches gold
    await svc.books.tiers.merge_history(absorbed, survivor, "merge-h")
    await svc.books.tiers.merge_history(absorbed, survivor, "merge-h")
    current = await member(svc, survivor)
    assert current.qualifying_spend.amount == 850_000
    assert current.tier == "gold"
    assert current.last_purchase_time.ToDatetime(UTC) == T0 + timedelta(days=2)
    assert current.join_time.ToDatetime(UTC) == T0 - timedelta(days=900)
    assert await changes(svc, survivor) == [("bronze", "gold", "merge")]
    assert await svc.database[SPEND].count_documents({"member_id": survivor}) == 2
    assert await svc.database[CHANGES].count_documents({"member_id": survivor}) == 1
