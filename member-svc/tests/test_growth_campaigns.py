"""Campaigns over real gRPC and the real database: a coupon template issued to a segment once
per member, whatever crashes, re-runs or concurrent runners happen; progress; cancel."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta

import grpc
import pytest

from member_svc import campaigns
from member_svc.books import Books
from member_svc.coupon_domain import TemplateStatus
from member_svc.coupons import COUPONS
from member_svc.domain import SYSTEM, MemberStatus
from retail.common.v1 import common_pb2
from retail.member.v1 import member_pb2

from .coupons_support import fixed_template, store_template
from .growth_support import (
    ADMIN,
    GrowthService,
    error_of,
    growth_service,
    manager_of,
    member,
    store,
)

DORMANT = member_pb2.LIFECYCLE_STAGE_DORMANT
DORMANT_OF_ST_001 = member_pb2.SegmentRule(home_store_ids=["st_001"], lifecycle_stages=[DORMANT])
TEMPLATE = "ct_comeback"
DORMANT_IDS = [f"m_d{n:03d}" for n in range(1, 31)]


@pytest.fixture
async def service(mongo_uri: str) -> AsyncIterator[GrowthService]:
    async with growth_service(mongo_uri) as running:
        await store(
            running.database,
            # the audience: 30 dormant members of st_001 (last purchase 100-158 days ago)
            *(member(m, purchase_days_ago=100 + 2 * n) for n, m in enumerate(DORMANT_IDS)),
            # not in it: active or churned members of st_001, dormant members of st_002,
            # a member who never bought (churned), new members, a merged member
            *(member(f"m_a{n:03d}", purchase_days_ago=n + 1) for n in range(8)),
            *(member(f"m_c{n:03d}", purchase_days_ago=200 + n) for n in range(5)),
            *(
                member(f"m_o{n:03d}", purchase_days_ago=120, home_store_id="st_002")
                for n in range(6)
            ),
            member("m_never"),
            *(member(f"m_n{n:03d}", join_days_ago=3) for n in range(3)),
            member(
                "m_gone",
                purchase_days_ago=120,
                status=MemberStatus.MERGED,
                merged_into="m_d001",
            ),
        )
        await store_template(running.database, fixed_template(TEMPLATE, valid_days=14))
        yield running


def launch_request(
    key: str = "reactivate-st_001",
    rule: member_pb2.SegmentRule = DORMANT_OF_ST_001,
    actor: common_pb2.Actor = ADMIN,
    template_id: str = TEMPLATE,
    name: str = "回归礼 st_001",
) -> member_pb2.LaunchCampaignRequest:
    return member_pb2.LaunchCampaignRequest(
        name=name, template_id=template_id, rule=rule, idempotency_key=key, actor=actor
    )


async def run_to_end(books: Books, service: GrowthService, limit: int = 500) -> None:
    for _ in range(limit):
        if await campaigns.campaign_job(books, service.clock()) == 0:
            return
    raise AssertionError("the campaign job did not settle")


async def coupons_by_member(service: GrowthService, campaign_id: str) -> Counter[str]:
    counts: Counter[str] = Counter()
    async for doc in service.database[COUPONS].find({"source": f"campaign:{campaign_id}"}):
        counts[doc["member_id"]] += 1
    return counts


async def get(service: GrowthService, campaign_id: str) -> member_pb2.Campaign:
    answer = await service.stub.GetCampaign(member_pb2.GetCampaignRequest(id=campaign_id))
    return answer.campaign


def small_pages(books: Books, size: int = 7, pages_per_pass: int = 100) -> Books:
    books.campaigns.page_size = size
    books.campaigns.pages_per_pass = pages_per_pass
    return books


async def test_dormant_campaign_of_one_store_issues_exactly_once_per_member(
    service: GrowthService,
) -> None:
    launched = await service.stub.LaunchCampaign(launch_request(actor=manager_of("st_001")))
    campaign = launched.campaign
    assert campaign.status == member_pb2.CAMPAIGN_STATUS_RUNNING
    assert campaign.total == len(DORMANT_IDS)
    assert (campaign.processed, campaign.issued) == (0, 0)
    assert campaign.actor.store_id == "st_001"

    await run_to_end(small_pages(service.books()), service)

    done = await get(service, campaign.id)
    assert done.status == member_pb2.CAMPAIGN_STATUS_COMPLETED
    assert (done.processed, done.issued, done.skipped, done.sold_out) == (30, 30, 0, 0)
    assert done.HasField("finish_time")
    assert await coupons_by_member(service, campaign.id) == Counter(dict.fromkeys(DORMANT_IDS, 1))
    # The coupons are the member's, usable, from this template.
    listed = await service.stub.ListMemberCoupons(
        member_pb2.ListMemberCouponsRequest(member_id="m_d007")
    )
    assert [c.template_id for c in listed.coupons] == [TEMPLATE]

    # Re-running the job, and replaying the launch, change nothing.
    await run_to_end(service.books(), service)
    again = await service.stub.LaunchCampaign(launch_request(actor=manager_of("st_001")))
    assert again.campaign.id == campaign.id
    await run_to_end(service.books(), service)
    assert await coupons_by_member(service, campaign.id) == Counter(dict.fromkeys(DORMANT_IDS, 1))
    assert (await get(service, campaign.id)).issued == 30


async def test_progress_is_visible_page_by_page(service: GrowthService) -> None:
    campaign = (await service.stub.LaunchCampaign(launch_request())).campaign
    books = small_pages(service.books(), size=7, pages_per_pass=1)
    seen = []
    while True:
        await campaigns.campaign_job(books, service.clock())
        now = await get(service, campaign.id)
        seen.append((now.processed, now.issued, now.status))
        if now.status != member_pb2.CAMPAIGN_STATUS_RUNNING:
            break
    running = member_pb2.CAMPAIGN_STATUS_RUNNING
    completed = member_pb2.CAMPAIGN_STATUS_COMPLETED
    assert seen == [
        (7, 7, running),
        (14, 14, running),
        (21, 21, running),
        (28, 28, running),
        (30, 30, completed),
    ]


async def test_crash_after_issuing_a_page_then_rerun_gives_no_member_two(
    service: GrowthService,
) -> None:
    """A runner takes the lease and issues a page, then dies before recording it (cursor and
    counters unchanged, lease still held). Once the lease is over, another replica re-runs
    from the cursor: the page's members are visited again and get nothing new."""
    campaign = (await service.stub.LaunchCampaign(launch_request())).campaign
    crashed = small_pages(service.books(), size=10)
    doc = await service.database[campaigns.CAMPAIGNS].find_one({"_id": campaign.id})
    assert doc is not None
    version = await crashed.campaigns._take_lease(doc, service.clock())
    assert version is not None
    state = campaigns.campaign_from_document(doc)
    first_page = await crashed.segments.page_ids(state.rule, state.segment_time, None, 10)
    await crashed.campaigns._issue_page(crashed, state, first_page)  # ... and the process dies
    assert len(await coupons_by_member(service, campaign.id)) == 10
    assert (await get(service, campaign.id)).processed == 0

    other = small_pages(service.books(), size=10)
    assert await campaigns.campaign_job(other, service.clock()) == 0  # the lease still holds
    service.clock.advance(seconds=campaigns.LEASE_SECONDS + 1)
    await run_to_end(other, service)

    done = await get(service, campaign.id)
    assert (done.status, done.processed, done.issued) == (
        member_pb2.CAMPAIGN_STATUS_COMPLETED,
        30,
        30,
    )
    assert await coupons_by_member(service, campaign.id) == Counter(dict.fromkeys(DORMANT_IDS, 1))


async def test_job_cancelled_mid_page_then_rerun_gives_no_member_two(
    service: GrowthService,
) -> None:
    """The job task is cancelled (a replica killed) while a page is being issued."""
    campaign = (await service.stub.LaunchCampaign(launch_request())).campaign
    books = small_pages(service.books(), size=8)
    books.campaigns.issue_concurrency = 2
    task = asyncio.create_task(run_to_end(books, service))
    while len(await coupons_by_member(service, campaign.id)) < 11:  # noqa: ASYNC110
        await asyncio.sleep(0.002)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    interrupted = await get(service, campaign.id)
    assert interrupted.status == member_pb2.CAMPAIGN_STATUS_RUNNING
    assert interrupted.processed < 30

    service.clock.advance(seconds=campaigns.LEASE_SECONDS + 1)
    await run_to_end(small_pages(service.books(), size=8), service)
    done = await get(service, campaign.id)
    assert (done.processed, done.issued) == (30, 30)
    assert await coupons_by_member(service, campaign.id) == Counter(dict.fromkeys(DORMANT_IDS, 1))


async def test_two_runners_at_once_issue_once_per_member(service: GrowthService) -> None:
    """Two replicas run the job concurrently with leases that are over at once, so each steals
    the campaign from the other in the middle of its page: members are visited by both (the
    test checks the double run happened), yet each gets one coupon and each page counts once."""
    campaign = (await service.stub.LaunchCampaign(launch_request())).campaign
    runners = [small_pages(service.books(), size=4, pages_per_pass=3) for _ in range(2)]
    visits: list[Counter[str]] = [Counter(), Counter()]
    for number, books in enumerate(runners):
        books.campaigns.lease = timedelta(0)
        issue_page = books.campaigns._issue_page

        async def recording(
            books: Books, state: campaigns.Campaign, ids: list[str], n: int = number, f=issue_page
        ) -> object:
            visits[n].update(ids)
            await asyncio.sleep(0.001)  # let the other runner in
            return await f(books, state, ids)

        books.campaigns._issue_page = recording  # type: ignore[method-assign,assignment]

    async def loop(books: Books) -> None:
        for _ in range(400):
            if (await get(service, campaign.id)).status != member_pb2.CAMPAIGN_STATUS_RUNNING:
                return
            await campaigns.campaign_job(books, service.clock())
            await asyncio.sleep(0)

    await asyncio.gather(*(loop(books) for books in runners))
    done = await get(service, campaign.id)
    assert (done.status, done.processed, done.issued) == (
        member_pb2.CAMPAIGN_STATUS_COMPLETED,
        30,
        30,
    )
    assert set(visits[0]) & set(visits[1]), "the runners never visited the same member"
    assert await coupons_by_member(service, campaign.id) == Counter(dict.fromkeys(DORMANT_IDS, 1))


async def test_with_a_live_lease_only_one_runner_works(service: GrowthService) -> None:
    await service.stub.LaunchCampaign(launch_request())
    runners = [small_pages(service.books(), size=5, pages_per_pass=2) for _ in range(2)]
    done = await asyncio.gather(
        *(campaigns.campaign_job(books, service.clock()) for books in runners)
    )
    assert sorted(done) == [0, 10]


async def test_cancel_stops_at_the_next_page_and_keeps_issued_coupons(
    service: GrowthService,
) -> None:
    campaign = (await service.stub.LaunchCampaign(launch_request())).campaign
    books = small_pages(service.books(), size=6, pages_per_pass=1)
    await campaigns.campaign_job(books, service.clock())
    cancelled = await service.stub.CancelCampaign(
        member_pb2.CancelCampaignRequest(id=campaign.id, actor=ADMIN)
    )
    assert cancelled.campaign.status == member_pb2.CAMPAIGN_STATUS_CANCELLED
    assert cancelled.campaign.HasField("finish_time")
    await run_to_end(books, service)
    after = await get(service, campaign.id)
    assert (after.status, after.processed, after.issued) == (
        member_pb2.CAMPAIGN_STATUS_CANCELLED,
        6,
        6,
    )
    assert sum((await coupons_by_member(service, campaign.id)).values()) == 6
    # Cancelling again answers the same; a completed campaign cannot be cancelled.
    again = await service.stub.CancelCampaign(
        member_pb2.CancelCampaignRequest(id=campaign.id, actor=ADMIN)
    )
    assert again.campaign == after
    other = (await service.stub.LaunchCampaign(launch_request(key="second"))).campaign
    await run_to_end(service.books(), service)
    error = await error_of(
        service.stub.CancelCampaign(member_pb2.CancelCampaignRequest(id=other.id, actor=ADMIN))
    )
    assert (error.code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "INVALID_STATE")
    assert (await get(service, other.id)).status == member_pb2.CAMPAIGN_STATUS_COMPLETED


async def test_cancel_while_a_page_is_in_flight_keeps_its_counts(service: GrowthService) -> None:
    """Cancel lands between a page's issuing and its record: the page still counts, nothing
    more is issued."""
    campaign = (await service.stub.LaunchCampaign(launch_request())).campaign
    books = small_pages(service.books(), size=5)
    runner = books.campaigns
    issue_page = runner._issue_page

    async def issue_then_cancel(*args: object) -> object:
        result = await issue_page(*args)  # type: ignore[arg-type]
        await service.stub.CancelCampaign(
            member_pb2.CancelCampaignRequest(id=campaign.id, actor=ADMIN)
        )
        return result

    runner._issue_page = issue_then_cancel  # type: ignore[method-assign]
    await run_to_end(books, service)
    after = await get(service, campaign.id)
    assert (after.status, after.processed, after.issued) == (
        member_pb2.CAMPAIGN_STATUS_CANCELLED,
        5,
        5,
    )
    assert sum((await coupons_by_member(service, campaign.id)).values()) == 5


async def test_sold_out_template_completes_the_campaign(service: GrowthService) -> None:
    await store_template(
        service.database, fixed_template("ct_twelve", valid_days=14, total_limit=12)
    )
    campaign = (
        await service.stub.LaunchCampaign(launch_request(key="k12", template_id="ct_twelve"))
    ).campaign
    await run_to_end(small_pages(service.books(), size=5), service)
    done = await get(service, campaign.id)
    assert done.status == member_pb2.CAMPAIGN_STATUS_COMPLETED
    assert (done.processed, done.issued, done.sold_out, done.skipped) == (30, 12, 18, 0)
    assert sum((await coupons_by_member(service, campaign.id)).values()) == 12


async def test_members_at_their_per_member_limit_are_skipped(service: GrowthService) -> None:
    books = service.books()
    for member_id in DORMANT_IDS[:4]:
        await books.coupons.issue(
            TEMPLATE, member_id, issue_ref=f"gift:{member_id}", source="test", actor=SYSTEM
        )
    campaign = (await service.stub.LaunchCampaign(launch_request())).campaign
    await run_to_end(small_pages(service.books()), service)
    done = await get(service, campaign.id)
    assert (done.processed, done.issued, done.skipped) == (30, 26, 4)


async def test_paused_template_holds_the_campaign_until_resumed(service: GrowthService) -> None:
    campaign = (await service.stub.LaunchCampaign(launch_request())).campaign
    books = small_pages(service.books(), size=10, pages_per_pass=1)
    await campaigns.campaign_job(books, service.clock())
    await books.coupons.set_template_status(TEMPLATE, TemplateStatus.PAUSED, service.clock())
    assert await campaigns.campaign_job(books, service.clock()) == 0
    held = await get(service, campaign.id)
    assert (held.status, held.processed) == (member_pb2.CAMPAIGN_STATUS_RUNNING, 10)
    await books.coupons.set_template_status(TEMPLATE, TemplateStatus.ACTIVE, service.clock())
    service.clock.advance(seconds=campaigns.LEASE_SECONDS + 1)
    await run_to_end(small_pages(service.books()), service)
    done = await get(service, campaign.id)
    assert (done.status, done.issued) == (member_pb2.CAMPAIGN_STATUS_COMPLETED, 30)


async def test_concurrent_launches_with_one_key_make_one_campaign(service: GrowthService) -> None:
    answers = await asyncio.gather(
        *(service.stub.LaunchCampaign(launch_request(key="same")) for _ in range(12))
    )
    assert len({a.campaign.id for a in answers}) == 1
    listed = await service.stub.ListCampaigns(member_pb2.ListCampaignsRequest())
    assert [c.id for c in listed.campaigns] == [answers[0].campaign.id]


async def test_empty_segment_completes_at_launch(service: GrowthService) -> None:
    rule = member_pb2.SegmentRule(home_store_ids=["st_404"])
    campaign = (await service.stub.LaunchCampaign(launch_request(key="empty", rule=rule))).campaign
    assert (campaign.status, campaign.total) == (member_pb2.CAMPAIGN_STATUS_COMPLETED, 0)


async def test_list_and_batch_get_campaigns(service: GrowthService) -> None:
    ids = []
    for n in range(5):
        service.clock.advance(minutes=1)
        answer = await service.stub.LaunchCampaign(launch_request(key=f"k{n}"))
        ids.append(answer.campaign.id)
    pages = []
    token = ""
    while True:
        page = await service.stub.ListCampaigns(
            member_pb2.ListCampaignsRequest(page_size=2, page_token=token)
        )
        pages.append([c.id for c in page.campaigns])
        token = page.next_page_token
        if not token:
            break
    assert pages == [ids[::-1][0:2], ids[::-1][2:4], ids[::-1][4:]]
    batch = await service.stub.BatchGetCampaigns(
        member_pb2.BatchGetCampaignsRequest(ids=[ids[3], "cp_missing", ids[0]])
    )
    assert [c.id for c in batch.campaigns] == [ids[3], ids[0]]
    assert list(batch.missing_ids) == ["cp_missing"]
    error = await error_of(service.stub.GetCampaign(member_pb2.GetCampaignRequest(id="cp_nope")))
    assert (error.code, error.reason) == (grpc.StatusCode.NOT_FOUND, "NOT_FOUND")


@pytest.mark.parametrize(
    ("request_", "code", "reason", "field"),
    [
        (
            launch_request(actor=common_pb2.Actor(kind=common_pb2.ACTOR_KIND_ASSOCIATE, id="a1")),
            grpc.StatusCode.PERMISSION_DENIED,
            "PERMISSION_DENIED",
            "actor.kind",
        ),
        (
            launch_request(actor=manager_of("st_002")),
            grpc.StatusCode.PERMISSION_DENIED,
            "PERMISSION_DENIED",
            "rule.home_store_ids",
        ),
        (
            launch_request(template_id="ct_nope"),
            grpc.StatusCode.NOT_FOUND,
            "NOT_FOUND",
            "template_id",
        ),
        (
            launch_request(key=""),
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_ARGUMENT",
            "idempotency_key",
        ),
        (launch_request(name=" "), grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", "name"),
        (
            launch_request(rule=member_pb2.SegmentRule(tiers=["diamond"])),
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_ARGUMENT",
            "rule.tiers[0]",
        ),
        (
            member_pb2.LaunchCampaignRequest(
                name="x", template_id=TEMPLATE, idempotency_key="k", actor=ADMIN
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_ARGUMENT",
            "rule",
        ),
    ],
)
async def test_bad_launch_is_a_clear_error_and_creates_nothing(
    service: GrowthService,
    request_: member_pb2.LaunchCampaignRequest,
    code: grpc.StatusCode,
    reason: str,
    field: str,
) -> None:
    error = await error_of(service.stub.LaunchCampaign(request_))
    assert (error.code, error.reason) == (code, reason)
    assert field in [v.field for v in error.violations], error.violations
    assert await service.database[campaigns.CAMPAIGNS].count_documents({}) == 0
    assert await service.database[COUPONS].count_documents({}) == 0


async def test_paused_template_and_reused_key_are_refused(service: GrowthService) -> None:
    await store_template(
        service.database,
        fixed_template("ct_paused", valid_days=14, status=TemplateStatus.PAUSED),
    )
    error = await error_of(service.stub.LaunchCampaign(launch_request(template_id="ct_paused")))
    assert (error.code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "INVALID_STATE")
    assert await service.database[campaigns.CAMPAIGNS].count_documents({}) == 0

    first = await service.stub.LaunchCampaign(launch_request(key="k"))
    other_rule = member_pb2.SegmentRule(home_store_ids=["st_001"])
    error = await error_of(service.stub.LaunchCampaign(launch_request(key="k", rule=other_rule)))
    assert (error.code, error.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "IDEMPOTENCY_KEY_REUSED",
    )
    assert [v.field for v in error.violations] == ["idempotency_key"]
    assert (await get(service, first.campaign.id)).rule == DORMANT_OF_ST_001


async def test_cancel_needs_a_campaigner(service: GrowthService) -> None:
    campaign = (await service.stub.LaunchCampaign(launch_request())).campaign
    customer = common_pb2.Actor(kind=common_pb2.ACTOR_KIND_CUSTOMER, id="m_d001")
    for actor in (customer, manager_of("st_002")):
        error = await error_of(
            service.stub.CancelCampaign(
                member_pb2.CancelCampaignRequest(id=campaign.id, actor=actor)
            )
        )
        assert error.code is grpc.StatusCode.PERMISSION_DENIED
    assert (await get(service, campaign.id)).status == member_pb2.CAMPAIGN_STATUS_RUNNING
