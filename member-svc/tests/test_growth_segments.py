"""Segments over real gRPC and the real database: the rule's MongoDB filter selects exactly the
members the Python predicate (and domain.lifecycle_stage) selects, paging, clear errors."""

from __future__ import annotations

import itertools
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from member_svc import app
from member_svc.domain import (
    AssociateBinding,
    Identity,
    IdentityKind,
    LifecycleStage,
    Member,
    MemberStatus,
    MemberTag,
    PointsAccount,
    Tier,
)
from member_svc.growth_rpcs import rule_to_proto
from member_svc.repository import MEMBERS, member_to_document
from member_svc.segments import SegmentRule, rule_matches, segment_filter
from member_svc.servicer import MemberServicer
from member_svc.settings import MemberSettings
from retail.member.v1 import member_pb2, member_pb2_grpc
from retail_kit.errors import RpcErrorDetails
from retail_kit.mongo import Document
from retail_kit.server import ServiceContext
from retail_kit.testing import channel_to, running_service, unique_name

# A `now` with microseconds: bounds must round to the database's milliseconds correctly.
NOW = datetime(2026, 12, 2, 10, 30, 15, 123_456, tzinfo=UTC)
NOW_DOWN = NOW.replace(microsecond=123_000)
NOW_UP = NOW.replace(microsecond=124_000)
TAGS = ("coffee_lover", "tea_lover", "beauty_vip", "snack_fan", "new_member", "fashion")
STORES = tuple(f"st_{n:03d}" for n in range(1, 6))
ASSOCIATES = tuple(f"as_{s}_01" for s in STORES)
MS = timedelta(milliseconds=1)
DAY = timedelta(days=1)
STAGE_TO_PROTO = {
    LifecycleStage.NEW: member_pb2.LIFECYCLE_STAGE_NEW,
    LifecycleStage.ACTIVE: member_pb2.LIFECYCLE_STAGE_ACTIVE,
    LifecycleStage.DORMANT: member_pb2.LIFECYCLE_STAGE_DORMANT,
    LifecycleStage.CHURNED: member_pb2.LIFECYCLE_STAGE_CHURNED,
}


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def whole_ms(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def boundary_times() -> list[datetime]:
    """Times at and next to every lifecycle boundary (in whole milliseconds)."""
    times = []
    for base in (NOW_DOWN, NOW_UP):
        for days in (30, 90, 180):
            for delta in (-MS, timedelta(0), MS):
                times.append(base - days * DAY + delta)
    return times


def generate_members(count: int, seed: int) -> list[Member]:
    rng = random.Random(seed)
    edges = boundary_times()

    def some_time(back_days: int) -> datetime:
        if rng.random() < 0.25:
            return rng.choice(edges)
        return whole_ms(NOW - timedelta(seconds=rng.uniform(0, back_days * 86_400)))

    members = []
    for number in range(1, count + 1):
        join_time = some_time(900)
        purchase: datetime | None = None
        if rng.random() < 0.75:
            purchase = some_time(400)
            if purchase < join_time and rng.random() < 0.8:
                purchase = None if rng.random() < 0.3 else join_time + (join_time - purchase) / 4
                purchase = whole_ms(purchase) if purchase else None
        store = rng.choice((*STORES, None))
        associate = None
        if store is not None and rng.random() < 0.5:
            associate = AssociateBinding(f"as_{store}_01", store, join_time)
        tags = rng.sample(TAGS, rng.randint(0, 3))
        members.append(
            Member(
                id=f"m_{number:05d}",
                display_name=f"会员{number}",
                identities=(Identity(IdentityKind.PHONE, f"+86139{number:08d}"),),
                tier=rng.choice(list(Tier)),
                home_store_id=store,
                join_time=join_time,
                referral_code=f"SEG{number:05d}",
                status=MemberStatus.MERGED if rng.random() < 0.05 else MemberStatus.ACTIVE,
                tags=tuple(MemberTag(t, "seed", store, join_time) for t in tags),
                associate=associate,
                points=PointsAccount(total=rng.choice((0, 0, 50, 100, 500, 1000, 5000, 20000))),
                last_purchase_time=purchase,
            )
        )
    return members


def random_rule(rng: random.Random) -> SegmentRule:
    def maybe(probability: float = 0.3) -> bool:
        return rng.random() < probability

    tags_all = tuple(rng.sample(TAGS, rng.randint(1, 2))) if maybe(0.2) else ()
    tags_any = tuple(rng.sample(TAGS, rng.randint(1, 3))) if maybe() else ()
    others = [t for t in TAGS if t not in tags_all]
    tags_none = tuple(rng.sample(others, rng.randint(1, 2))) if maybe(0.2) else ()
    low = rng.choice((None, 0, 50, 100, 1000)) if maybe() else None
    high = rng.choice((None, 100, 1000, 5000)) if maybe() else None
    if low is not None and high is not None and low > high:
        low, high = high, low
    since = not_since = None
    if maybe():
        since = NOW - timedelta(days=rng.uniform(0, 400))
    if maybe():
        not_since = NOW - timedelta(days=rng.uniform(0, 400))
        if since is not None and not_since <= since:
            since, not_since = not_since - DAY, since
    stages = tuple(s for s in LifecycleStage if rng.random() < 0.5) if maybe(0.5) else ()
    return SegmentRule(
        tags_all=tags_all,
        tags_any=tags_any,
        tags_none=tags_none,
        tiers=tuple(rng.sample(list(Tier), rng.randint(1, 3))) if maybe() else (),
        min_points=low,
        max_points=high,
        purchased_since=since,
        not_purchased_since=not_since,
        home_store_ids=tuple(rng.sample(STORES, rng.randint(1, 3))) if maybe() else (),
        lifecycle_stages=stages,
        associate_ids=tuple(rng.sample(ASSOCIATES, rng.randint(1, 2))) if maybe(0.2) else (),
    )


@dataclass
class Env:
    stub: member_pb2_grpc.MemberServiceStub
    members: list[Member]
    database: AsyncDatabase[Document]


@pytest.fixture(scope="module")
async def env(mongo_uri: str) -> AsyncIterator[Env]:
    clock = Clock(NOW)

    def register(server: grpc.aio.Server, context: ServiceContext) -> None:
        member_pb2_grpc.add_MemberServiceServicer_to_server(
            MemberServicer(app.books_for(context, clock)), server
        )

    settings = MemberSettings(
        mongodb_uri=mongo_uri, database=unique_name("member"), worker_interval_seconds=0
    )
    async with running_service(
        app.NAME, settings, app.SERVICE_NAMES, register, app.on_ready, app.on_stop
    ) as host:
        members = generate_members(500, seed=7)
        await host.context.database[MEMBERS].insert_many([member_to_document(m) for m in members])
        async with channel_to(host) as channel:
            yield Env(member_pb2_grpc.MemberServiceStub(channel), members, host.context.database)


async def all_pages(env: Env, rule: member_pb2.SegmentRule, size: int) -> tuple[list[str], int]:
    ids: list[str] = []
    token = ""
    totals = set()
    while True:
        page = await env.stub.ListSegmentMembers(
            member_pb2.ListSegmentMembersRequest(rule=rule, page_size=size, page_token=token)
        )
        ids += [m.id for m in page.members]
        totals.add(page.total_count)
        assert len(page.members) <= size
        token = page.next_page_token
        if not token:
            break
    assert len(totals) == 1
    return ids, totals.pop()


def expected_ids(env: Env, predicate: Callable[[Member], bool]) -> list[str]:
    return sorted(m.id for m in env.members if predicate(m))


async def test_every_lifecycle_stage_set_selects_what_domain_lifecycle_stage_says(env: Env) -> None:
    """All 16 sets of stages, on members placed at and next to every boundary (now has
    microseconds): the database filter agrees with domain.lifecycle_stage member by member."""
    assert {m.lifecycle_stage(NOW) for m in env.members} == set(LifecycleStage)
    for size in range(len(LifecycleStage) + 1):
        for stages in itertools.combinations(list(LifecycleStage), size):
            rule = member_pb2.SegmentRule(lifecycle_stages=[STAGE_TO_PROTO[s] for s in stages])
            want = expected_ids(
                env,
                lambda m, s=stages: (
                    m.status is MemberStatus.ACTIVE and (not s or m.lifecycle_stage(NOW) in s)
                ),
            )
            count = await env.stub.CountSegment(member_pb2.CountSegmentRequest(rule=rule))
            assert count.count == len(want), stages
            query = segment_filter(SegmentRule(lifecycle_stages=stages), NOW)
            found = sorted([doc["_id"] async for doc in env.database[MEMBERS].find(query)])
            assert found == want, stages


async def test_random_rules_match_the_python_predicate_through_count_and_paging(env: Env) -> None:
    rng = random.Random(11)
    non_empty = 0
    for _ in range(60):
        rule = random_rule(rng)
        want = expected_ids(env, lambda m, r=rule: rule_matches(r, m, NOW))
        non_empty += bool(want)
        message = rule_to_proto(rule)
        count = await env.stub.CountSegment(member_pb2.CountSegmentRequest(rule=message))
        assert count.count == len(want), rule
        ids, total = await all_pages(env, message, size=rng.choice((7, 20, 100)))
        assert ids == want, rule
        assert total == len(want)
    assert non_empty >= 30  # the rules are not all trivially empty


async def test_dormant_members_of_one_store(env: Env) -> None:
    rule = member_pb2.SegmentRule(
        home_store_ids=["st_002"], lifecycle_stages=[member_pb2.LIFECYCLE_STAGE_DORMANT]
    )
    want = expected_ids(
        env,
        lambda m: (
            m.status is MemberStatus.ACTIVE
            and m.home_store_id == "st_002"
            and m.lifecycle_stage(NOW) is LifecycleStage.DORMANT
        ),
    )
    assert want
    preview = await env.stub.ListSegmentMembers(member_pb2.ListSegmentMembersRequest(rule=rule))
    assert [m.id for m in preview.members] == want[:20]
    assert preview.total_count == len(want)
    assert all(m.lifecycle_stage == member_pb2.LIFECYCLE_STAGE_DORMANT for m in preview.members)
    assert bool(preview.next_page_token) == (len(want) > 20)


async def test_empty_rule_is_every_active_member(env: Env) -> None:
    count = await env.stub.CountSegment(member_pb2.CountSegmentRequest())
    assert count.count == sum(m.status is MemberStatus.ACTIVE for m in env.members)


async def error_of(call: object) -> RpcErrorDetails:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    return RpcErrorDetails.from_rpc_error(caught.value)


@pytest.mark.parametrize(
    ("rule", "field"),
    [
        (member_pb2.SegmentRule(tiers=["diamond"]), "rule.tiers[0]"),
        (member_pb2.SegmentRule(tiers=["gold", "GOLD"]), "rule.tiers[1]"),
        (member_pb2.SegmentRule(min_points=500, max_points=100), "rule.min_points"),
        (member_pb2.SegmentRule(min_points=-1), "rule.min_points"),
        (member_pb2.SegmentRule(lifecycle_stages=[0]), "rule.lifecycle_stages[0]"),
        (member_pb2.SegmentRule(lifecycle_stages=[2, 99]), "rule.lifecycle_stages[1]"),
        (member_pb2.SegmentRule(tags_any=[f"t{n}" for n in range(51)]), "rule.tags_any"),
        (member_pb2.SegmentRule(tags_all=["a b"]), "rule.tags_all[0]"),
        (member_pb2.SegmentRule(tags_all=["vip"], tags_none=["x", "vip"]), "rule.tags_none[1]"),
        (member_pb2.SegmentRule(home_store_ids=["st_001", ""]), "rule.home_store_ids[1]"),
        (
            member_pb2.SegmentRule(associate_ids=[f"a{n}" for n in range(101)]),
            "rule.associate_ids",
        ),
        (
            member_pb2.SegmentRule(
                purchased_since=rule_to_proto(SegmentRule(purchased_since=NOW)).purchased_since,
                not_purchased_since=rule_to_proto(
                    SegmentRule(purchased_since=NOW - DAY)
                ).purchased_since,
            ),
            "rule.not_purchased_since",
        ),
    ],
)
async def test_malformed_rule_is_invalid_argument_naming_the_field(
    env: Env, rule: member_pb2.SegmentRule, field: str
) -> None:
    for call in (
        env.stub.CountSegment(member_pb2.CountSegmentRequest(rule=rule)),
        env.stub.ListSegmentMembers(member_pb2.ListSegmentMembersRequest(rule=rule)),
    ):
        error = await error_of(call)
        assert error.code is grpc.StatusCode.INVALID_ARGUMENT
        assert error.reason == "INVALID_ARGUMENT"
        assert field in [v.field for v in error.violations], error.violations


async def test_every_violation_is_reported_at_once(env: Env) -> None:
    rule = member_pb2.SegmentRule(tiers=["diamond"], min_points=9, max_points=1)
    error = await error_of(env.stub.CountSegment(member_pb2.CountSegmentRequest(rule=rule)))
    assert {v.field for v in error.violations} == {"rule.tiers[0]", "rule.min_points"}


@pytest.mark.parametrize(
    "request_",
    [
        member_pb2.ListSegmentMembersRequest(tags=["vip"]),
        member_pb2.ListSegmentMembersRequest(tiers=["gold"]),
        member_pb2.ListSegmentMembersRequest(min_points=1),
        member_pb2.ListSegmentMembersRequest(max_points=1),
        member_pb2.ListSegmentMembersRequest(home_store_id="st_001"),
    ],
)
async def test_deprecated_request_fields_are_refused(
    env: Env, request_: member_pb2.ListSegmentMembersRequest
) -> None:
    error = await error_of(env.stub.ListSegmentMembers(request_))
    assert error.code is grpc.StatusCode.INVALID_ARGUMENT
    assert len(error.violations) == 1
    assert error.violations[0].field in (
        "tags",
        "tiers",
        "min_points",
        "max_points",
        "home_store_id",
    )
    assert "rule" in error.violations[0].description


async def test_page_token_is_bound_to_its_rule_and_page_size_is_checked(env: Env) -> None:
    rule = member_pb2.SegmentRule(tiers=["gold"])
    first = await env.stub.ListSegmentMembers(
        member_pb2.ListSegmentMembersRequest(rule=rule, page_size=5)
    )
    assert first.next_page_token
    other = member_pb2.SegmentRule(tiers=["silver"])
    for token in (first.next_page_token, "not-a-token"):
        error = await error_of(
            env.stub.ListSegmentMembers(
                member_pb2.ListSegmentMembersRequest(rule=other, page_token=token)
            )
        )
        assert error.reason == "INVALID_PAGE_TOKEN"
    error = await error_of(
        env.stub.ListSegmentMembers(member_pb2.ListSegmentMembersRequest(rule=rule, page_size=101))
    )
    assert [v.field for v in error.violations] == ["page_size"]
