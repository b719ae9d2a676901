"""Referrals over real gRPC and the real database: one referrer, no self-referral, no cycles
even under concurrent joins, rewards exactly once on the referee's first completed order,
links following merges."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest

from member_svc import referrals
from member_svc.domain import MemberStatus
from member_svc.points import LEDGER
from member_svc.referrals import REFEREE_REWARD_POINTS, REFERRALS, REFERRER_REWARD_POINTS
from member_svc.repository import MEMBERS
from retail.common.v1 import common_pb2
from retail.member.v1 import member_pb2

from .growth_support import DAY, GrowthService, error_of, growth_service, member, store


@pytest.fixture
async def service(mongo_uri: str) -> AsyncIterator[GrowthService]:
    async with growth_service(mongo_uri) as running:
        yield running


def code_of(member_id: str) -> str:
    return f"INV{member_id.upper().replace('_', '')}"


async def join(
    service: GrowthService, member_id: str, referrer_id: str
) -> member_pb2.JoinWithInviteCodeResponse:
    return await service.stub.JoinWithInviteCode(
        member_pb2.JoinWithInviteCodeRequest(member_id=member_id, invite_code=code_of(referrer_id))
    )


async def referred_by(service: GrowthService, member_id: str) -> str:
    answer = await service.stub.GetMember(member_pb2.GetMemberRequest(id=member_id))
    return answer.member.referred_by_member_id


async def snapshot(service: GrowthService) -> tuple[list[object], list[object]]:
    """Every member's link and every referral record: to show a refusal changed nothing."""
    links = [
        (doc["_id"], doc.get("referred_by"))
        async for doc in service.database[MEMBERS].find({}).sort("_id", 1)
    ]
    records = [doc async for doc in service.database[REFERRALS].find({}).sort("_id", 1)]
    return links, records


async def complete_order(
    service: GrowthService, member_id: str, order_id: str, paid: int = 10_000
) -> member_pb2.RecordOrderCompletedResponse:
    now = service.clock()
    request = member_pb2.RecordOrderCompletedRequest(
        member_id=member_id,
        order_id=order_id,
        paid_amount=common_pb2.Money(amount=paid, currency="CNY"),
        channel=common_pb2.CHANNEL_MINI_PROGRAM,
    )
    request.complete_time.FromDatetime(now)
    request.return_window_end_time.FromDatetime(now + 7 * DAY)
    return await service.stub.RecordOrderCompleted(request)


async def reward_entries(service: GrowthService, member_id: str) -> list[tuple[str, int]]:
    cursor = service.database[LEDGER].find({"member_id": member_id, "kind": "referral_reward"})
    return sorted([(doc["reference"], int(doc["delta"])) async for doc in cursor])


async def test_join_links_the_referee_and_the_referrer_sees_it(service: GrowthService) -> None:
    await store(service.database, member("m_old"), member("m_new", join_days_ago=1))
    answer = await join(service, "m_new", "m_old")
    assert answer.referrer_member_id == "m_old"
    assert answer.member.referred_by_member_id == "m_old"
    # A retry with the same code answers the same; a code typed in small letters is the code.
    again = await service.stub.JoinWithInviteCode(
        member_pb2.JoinWithInviteCodeRequest(
            member_id="m_new", invite_code=code_of("m_old").lower()
        )
    )
    assert again.referrer_member_id == "m_old"
    listed = await service.stub.ListReferrals(member_pb2.ListReferralsRequest(member_id="m_old"))
    assert [(r.referee_member_id, r.state) for r in listed.referrals] == [
        ("m_new", member_pb2.REFERRAL_STATE_JOINED)
    ]
    assert listed.referrals[0].referee_display_name == "会员 m_new"
    assert (listed.total_count, listed.total_points) == (1, 0)
    assert await service.database[REFERRALS].count_documents({}) == 1


async def test_refusals_are_clear_and_change_nothing(service: GrowthService) -> None:
    await store(
        service.database,
        member("m_a"),
        member("m_b", referred_by="m_a"),
        member("m_c", referred_by="m_b"),
        member("m_buyer", purchase_days_ago=3),
        member("m_free"),
    )
    before = await snapshot(service)
    invalid, not_found = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND
    refused = grpc.StatusCode.FAILED_PRECONDITION
    cases = [
        # (member, code, status, reason, the field named or the metadata "rule")
        ("m_free", code_of("m_free"), invalid, "INVALID_ARGUMENT", "invite_code"),
        ("m_free", "NOSUCHCODE", not_found, "NOT_FOUND", "invite_code"),
        ("m_c", code_of("m_free"), refused, "LIMIT_REACHED", "one_referrer"),
        ("m_buyer", code_of("m_a"), refused, "INVALID_STATE", "no_completed_order"),
        # m_a is the root of m_c's chain (m_c <- m_b <- m_a): m_c's code would close a cycle.
        ("m_a", code_of("m_c"), refused, "INVALID_STATE", "no_cycle"),
        ("m_ghost", code_of("m_a"), not_found, "NOT_FOUND", ""),
        ("m_free", "  ", invalid, "INVALID_ARGUMENT", "invite_code"),
        ("", code_of("m_a"), invalid, "INVALID_ARGUMENT", "member_id"),
    ]
    for member_id, code, status, reason, detail in cases:
        error = await error_of(
            service.stub.JoinWithInviteCode(
                member_pb2.JoinWithInviteCodeRequest(member_id=member_id, invite_code=code)
            )
        )
        assert (error.code, error.reason) == (status, reason), (member_id, code, error)
        if status is grpc.StatusCode.FAILED_PRECONDITION:
            assert error.metadata["rule"] == detail
        elif detail:
            assert detail in [v.field for v in error.violations], error
    assert await snapshot(service) == before


async def test_two_members_using_each_others_codes_at_once_never_both_join(
    service: GrowthService,
) -> None:
    rounds = 12
    for n in range(rounds):
        await store(service.database, member(f"m_x{n:02d}"), member(f"m_y{n:02d}"))
    outcomes = []
    for n in range(rounds):
        x, y = f"m_x{n:02d}", f"m_y{n:02d}"
        results = await asyncio.gather(
            join(service, x, y), join(service, y, x), return_exceptions=True
        )
        joined = [r for r in results if not isinstance(r, BaseException)]
        refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
        assert len(joined) == 1 and len(refused) == 1, results
        outcomes.append(joined[0].referrer_member_id)
        links = {x: await referred_by(service, x), y: await referred_by(service, y)}
        assert sorted(links.values()) == ["", joined[0].referrer_member_id]
    # and a three-member ring started at once never closes either
    await store(service.database, member("m_r1"), member("m_r2"), member("m_r3"))
    results = await asyncio.gather(
        join(service, "m_r1", "m_r2"),
        join(service, "m_r2", "m_r3"),
        join(service, "m_r3", "m_r1"),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, BaseException) for r in results) == 2, results


async def test_twenty_concurrent_joins_with_different_codes_give_one_referrer(
    service: GrowthService,
) -> None:
    referrers = [f"m_ref{n:02d}" for n in range(20)]
    await store(service.database, member("m_newbie", join_days_ago=1), *map(member, referrers))
    results = await asyncio.gather(
        *(join(service, "m_newbie", r) for r in referrers), return_exceptions=True
    )
    joined = [r for r in results if isinstance(r, member_pb2.JoinWithInviteCodeResponse)]
    assert len(joined) == 1, results
    for error in results:
        if isinstance(error, grpc.aio.AioRpcError):
            assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert await referred_by(service, "m_newbie") == joined[0].referrer_member_id
    assert await service.database[REFERRALS].count_documents({}) == 1


async def test_first_completed_order_rewards_both_sides_once(service: GrowthService) -> None:
    await store(service.database, member("m_old"), member("m_new", join_days_ago=2))
    await join(service, "m_new", "m_old")
    first = await complete_order(service, "m_new", "o_first")
    rewards = [(e.member_id, e.delta, e.reference) for e in first.referral_rewards]
    assert rewards == [
        ("m_old", REFERRER_REWARD_POINTS, "referral:m_new:referrer"),
        ("m_new", REFEREE_REWARD_POINTS, "referral:m_new:referee"),
    ]
    replay = await complete_order(service, "m_new", "o_first")
    assert [e.id for e in replay.referral_rewards] == [e.id for e in first.referral_rewards]
    second = await complete_order(service, "m_new", "o_second")
    assert list(second.referral_rewards) == []
    assert await reward_entries(service, "m_old") == [
        ("referral:m_new:referrer", REFERRER_REWARD_POINTS)
    ]
    assert await reward_entries(service, "m_new") == [
        ("referral:m_new:referee", REFEREE_REWARD_POINTS)
    ]
    listed = await service.stub.ListReferrals(member_pb2.ListReferralsRequest(member_id="m_old"))
    referral = listed.referrals[0]
    assert referral.state == member_pb2.REFERRAL_STATE_REWARDED
    assert (referral.referrer_points, referral.referee_points) == (
        REFERRER_REWARD_POINTS,
        REFEREE_REWARD_POINTS,
    )
    assert referral.HasField("reward_time")
    assert listed.total_points == REFERRER_REWARD_POINTS
    # Now that the member has bought, it cannot take (another) invite code.
    await store(service.database, member("m_late"))
    error = await error_of(join(service, "m_new", "m_late"))
    assert error.code is grpc.StatusCode.FAILED_PRECONDITION


async def test_concurrent_first_orders_and_replays_reward_exactly_once(
    service: GrowthService,
) -> None:
    """reward_first_order called at once for ten different orders and replays of them: one
    order is the first, both sides earn once, its replays answer the same entries."""
    await store(service.database, member("m_old"), member("m_new", join_days_ago=2))
    await join(service, "m_new", "m_old")
    books = service.books()
    orders = [f"o_{n}" for n in range(10)] * 2
    results = await asyncio.gather(
        *(books.referrals.reward_first_order(books, "m_new", o, service.clock()) for o in orders)
    )
    winners = {order for order, entries in zip(orders, results, strict=True) if entries}
    assert len(winners) == 1
    assert all(len(e) == 2 for e in results if e)
    assert await reward_entries(service, "m_old") == [
        ("referral:m_new:referrer", REFERRER_REWARD_POINTS)
    ]
    assert await reward_entries(service, "m_new") == [
        ("referral:m_new:referee", REFEREE_REWARD_POINTS)
    ]


async def test_a_member_without_referral_gets_no_reward(service: GrowthService) -> None:
    await store(service.database, member("m_alone"))
    answer = await complete_order(service, "m_alone", "o_1")
    assert list(answer.referral_rewards) == []


async def test_list_referrals_pages_newest_first(service: GrowthService) -> None:
    await store(service.database, member("m_host"), *(member(f"m_g{n}") for n in range(5)))
    for n in range(5):
        service.clock.advance(minutes=1)
        await join(service, f"m_g{n}", "m_host")
    seen, token = [], ""
    while True:
        page = await service.stub.ListReferrals(
            member_pb2.ListReferralsRequest(member_id="m_host", page_size=2, page_token=token)
        )
        assert page.total_count == 5
        seen += [r.referee_member_id for r in page.referrals]
        token = page.next_page_token
        if not token:
            break
    assert seen == [f"m_g{n}" for n in reversed(range(5))]
    error = await error_of(
        service.stub.ListReferrals(
            member_pb2.ListReferralsRequest(member_id="m_g1", page_token="garbage")
        )
    )
    assert error.reason == "INVALID_PAGE_TOKEN"


async def test_reassign_member_moves_links_to_the_survivor(service: GrowthService) -> None:
    """The absorbed member's referees follow the survivor; the survivor (no referrer, no
    order) takes the absorbed one's referrer; a link that would be a self-referral is
    voided; a second run changes nothing."""
    await store(
        service.database,
        member("m_parent"),
        member("m_absorbed"),
        member("m_survivor"),
        member("m_r1"),
        member("m_r2"),
    )
    await join(service, "m_absorbed", "m_parent")
    await join(service, "m_r1", "m_absorbed")
    await join(service, "m_r2", "m_absorbed")
    await join(service, "m_survivor", "m_absorbed")  # the same person invited itself
    await service.database[MEMBERS].update_one(
        {"_id": "m_absorbed"},
        {"$set": {"status": MemberStatus.MERGED.value, "merged_into": "m_survivor"}},
    )
    books = service.books()
    for _ in range(2):
        await books.referrals.reassign_member("m_absorbed", "m_survivor")
        assert await referred_by(service, "m_r1") == "m_survivor"
        assert await referred_by(service, "m_r2") == "m_survivor"
        assert await referred_by(service, "m_survivor") == "m_parent"
        of_survivor = await service.stub.ListReferrals(
            member_pb2.ListReferralsRequest(member_id="m_survivor")
        )
        assert sorted(r.referee_member_id for r in of_survivor.referrals) == ["m_r1", "m_r2"]
        of_parent = await service.stub.ListReferrals(
            member_pb2.ListReferralsRequest(member_id="m_parent")
        )
        assert [r.referee_member_id for r in of_parent.referrals] == ["m_survivor"]
    # The survivor's first order rewards its (inherited) referrer once.
    answer = await complete_order(service, "m_survivor", "o_s1")
    assert [e.member_id for e in answer.referral_rewards] == ["m_parent", "m_survivor"]
    record = await books.referrals.get("m_survivor")
    assert record is not None and record.state == referrals.REWARDED
