"""Issuing and claiming coupons over real gRPC: limits under concurrency, replays, claim codes,
trade areas, merged members, a member's coupon list."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta

import grpc
import pytest

from member_svc.coupon_domain import CODE_ALPHABET, CODE_LENGTH
from member_svc.coupons import COUPON_TEMPLATES, COUPONS
from member_svc.domain import MemberStatus
from member_svc.repository import MEMBERS, member_to_document
from retail.common.v1 import common_pb2
from retail.member.v1 import member_pb2

from .coupons_support import (
    ADMIN,
    START,
    CouponService,
    coupon_service,
    create_template,
    failure,
    fields_of,
    member,
    snapshot,
    stamp,
    store_members,
)

CUSTOMER = common_pb2.Actor(kind=common_pb2.ACTOR_KIND_CUSTOMER, id="m_c1")
CODE = re.compile(f"^[{CODE_ALPHABET}]{{{CODE_LENGTH}}}$")


@pytest.fixture(scope="module")
async def service(mongo_uri: str) -> AsyncIterator[CouponService]:
    async with coupon_service(mongo_uri) as running:
        await store_members(running.database, *(f"m_c{n}" for n in range(1, 11)))
        yield running


def claim(
    member_id: str, request_id: str, template_id: str = "", claim_code: str = "", store_id: str = ""
) -> member_pb2.ClaimCouponRequest:
    return member_pb2.ClaimCouponRequest(
        member_id=member_id,
        template_id=template_id,
        claim_code=claim_code,
        store_id=store_id,
        request_id=request_id,
    )


async def issued_count(service: CouponService, template_id: str) -> int:
    doc = await service.database[COUPON_TEMPLATES].find_one({"_id": template_id})
    assert doc is not None
    return int(doc["issued_count"])


async def test_200_concurrent_claims_of_a_template_limited_to_50_issue_exactly_50(
    service: CouponService,
) -> None:
    service.clock.now = START
    members = [f"m_rush_{n:03d}" for n in range(200)]
    await store_members(service.database, *members)
    template = await create_template(service, "req-rush", total_limit=50)
    results = await asyncio.gather(
        *(service.stub.ClaimCoupon(claim(m, f"rush-{m}", template.id)) for m in members),
        return_exceptions=True,
    )
    won = [r.coupon for r in results if isinstance(r, member_pb2.ClaimCouponResponse)]
    lost = [r for r in results if not isinstance(r, member_pb2.ClaimCouponResponse)]
    assert len(won) == 50 and len(lost) == 150
    for error in lost:
        assert isinstance(error, grpc.aio.AioRpcError)
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert await issued_count(service, template.id) == 50
    stored = await service.database[COUPONS].find({"template_id": template.id}).to_list()
    assert len(stored) == 50 and {d["status"] for d in stored} == {"available"}
    assert len({d["code"] for d in stored}) == 50
    assert {d["member_id"] for d in stored} == {c.member_id for c in won}
    # The losers' replays are refused the same way; the winners' answer their coupon.
    replay = await service.stub.ClaimCoupon(
        claim(won[0].member_id, f"rush-{won[0].member_id}", template.id)
    )
    assert replay.coupon == won[0]
    loser = next(m for m in members if m not in {c.member_id for c in won})
    details = await failure(service.stub.ClaimCoupon(claim(loser, f"rush-{loser}", template.id)))
    assert details.reason == "LIMIT_REACHED" and details.metadata["limit"] == "total"
    assert await issued_count(service, template.id) == 50


async def test_20_concurrent_claims_by_one_member_of_a_limit_1_template_issue_one(
    service: CouponService,
) -> None:
    template = await create_template(service, "req-one-each", per_member_limit=1)
    results = await asyncio.gather(
        *(service.stub.ClaimCoupon(claim("m_c1", f"one-{n}", template.id)) for n in range(20)),
        return_exceptions=True,
    )
    won = [r for r in results if isinstance(r, member_pb2.ClaimCouponResponse)]
    assert len(won) == 1
    for error in results:
        if isinstance(error, grpc.aio.AioRpcError):
            details = error.trailing_metadata()
            assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, details
    assert await service.database[COUPONS].count_documents({"template_id": template.id}) == 1
    assert await issued_count(service, template.id) == 1
    details = await failure(service.stub.ClaimCoupon(claim("m_c1", "one-late", template.id)))
    assert details.reason == "LIMIT_REACHED" and details.metadata["limit"] == "per_member"


async def test_concurrent_replays_of_one_claim_answer_one_coupon(service: CouponService) -> None:
    template = await create_template(service, "req-replay", per_member_limit=5)
    replies = await asyncio.gather(
        *(service.stub.ClaimCoupon(claim("m_c2", "same-request", template.id)) for _ in range(20))
    )
    assert len({r.coupon.id for r in replies}) == 1
    assert len({r.coupon.code for r in replies}) == 1
    assert await issued_count(service, template.id) == 1
    # The same request id for another template is a different request.
    other = await create_template(service, "req-replay-other")
    details = await failure(service.stub.ClaimCoupon(claim("m_c2", "same-request", other.id)))
    assert details.reason == "IDEMPOTENCY_KEY_REUSED" and fields_of(details) == {"request_id"}


async def test_per_member_limit_counts_slots(service: CouponService) -> None:
    template = await create_template(service, "req-three", per_member_limit=3)
    coupons = [
        (await service.stub.ClaimCoupon(claim("m_c3", f"three-{n}", template.id))).coupon
        for n in range(3)
    ]
    assert [c.id for c in coupons] == [f"{template.id}:m_c3:{n}" for n in (1, 2, 3)]
    details = await failure(service.stub.ClaimCoupon(claim("m_c3", "three-4", template.id)))
    assert details.metadata == {"template_id": template.id, "limit": "per_member", "value": "3"}
    # Another member has slots of their own.
    other = await service.stub.ClaimCoupon(claim("m_c4", "three-other", template.id))
    assert other.coupon.id == f"{template.id}:m_c4:1"


async def test_a_coupon_carries_a_till_code_and_its_window(service: CouponService) -> None:
    service.clock.now = START
    template = await create_template(service, "req-window", valid_days=14)
    coupon = (await service.stub.ClaimCoupon(claim("m_c5", "window", template.id))).coupon
    assert CODE.match(coupon.code), coupon.code
    assert coupon.status == member_pb2.COUPON_STATUS_AVAILABLE and coupon.source == "claim"
    assert coupon.valid_from.ToSeconds() == int(START.timestamp())
    assert coupon.valid_until.ToSeconds() == int((START + timedelta(days=14)).timestamp())
    fixed = await create_template(
        service,
        "req-fixed-window",
        valid_days=0,
        valid_from=stamp(START + timedelta(days=2)),
        valid_until=stamp(START + timedelta(days=9)),
    )
    early = (await service.stub.ClaimCoupon(claim("m_c5", "fixed", fixed.id))).coupon
    assert early.valid_from == fixed.valid_from and early.valid_until == fixed.valid_until


async def test_claim_codes_and_trade_areas(service: CouponService) -> None:
    coded = await create_template(service, "req-coded", claim_code="COFFEE8X")
    by_code = await service.stub.ClaimCoupon(claim("m_c6", "coded-1", claim_code=" coffee8x "))
    assert by_code.coupon.template_id == coded.id
    details = await failure(service.stub.ClaimCoupon(claim("m_c7", "coded-2", coded.id)))
    assert details.reason == "COUPON_NOT_APPLICABLE" and fields_of(details) == {"claim_code"}
    details = await failure(service.stub.ClaimCoupon(claim("m_c7", "coded-3", claim_code="NOPE99")))
    assert details.code == grpc.StatusCode.NOT_FOUND and fields_of(details) == {"claim_code"}

    area = await create_template(service, "req-area", claim_store_ids=["st_001", "st_002"])
    before = await snapshot(service.database, COUPONS, COUPON_TEMPLATES)
    for store_id in ("", "st_003"):
        details = await failure(
            service.stub.ClaimCoupon(claim("m_c7", f"area-{store_id}", area.id, store_id=store_id))
        )
        assert details.code == grpc.StatusCode.FAILED_PRECONDITION
        assert details.reason == "COUPON_NOT_APPLICABLE" and fields_of(details) == {"store_id"}
        assert details.metadata["reason"] == "store"
    assert await snapshot(service.database, COUPONS, COUPON_TEMPLATES) == before
    ok = await service.stub.ClaimCoupon(claim("m_c7", "area-ok", area.id, store_id="st_002"))
    assert ok.coupon.template_id == area.id


async def test_an_issue_only_template_is_issued_but_never_claimed(
    service: CouponService,
) -> None:
    only = await create_template(service, "req-issue-only", issue_only=True)
    assert only.issue_only
    before = await snapshot(service.database, COUPONS, COUPON_TEMPLATES)
    details = await failure(service.stub.ClaimCoupon(claim("m_c9", "only-1", only.id)))
    assert details.code == grpc.StatusCode.FAILED_PRECONDITION
    assert details.reason == "COUPON_NOT_APPLICABLE" and fields_of(details) == {"template_id"}
    assert details.metadata["reason"] == "issue_only"
    assert await snapshot(service.database, COUPONS, COUPON_TEMPLATES) == before
    issued = await service.stub.IssueCoupon(
        member_pb2.IssueCouponRequest(
            template_id=only.id, member_id="m_c9", reference="only-issue", actor=ADMIN
        )
    )
    assert issued.coupon.template_id == only.id


async def test_bad_claims_change_nothing(service: CouponService) -> None:
    template = await create_template(service, "req-bad-claims")
    paused = await create_template(
        service, "req-bad-paused", status=member_pb2.COUPON_TEMPLATE_STATUS_PAUSED
    )
    ending = await create_template(
        service,
        "req-bad-ending",
        valid_days=0,
        valid_from=stamp(START),
        valid_until=stamp(START + timedelta(days=1)),
    )
    service.clock.now = START + timedelta(days=2)
    before = await snapshot(service.database, COUPONS, COUPON_TEMPLATES)
    cases = [
        (claim("m_c8", "", template.id), grpc.StatusCode.INVALID_ARGUMENT, {"request_id"}),
        (
            claim("m_c8", "b1", template.id, "CODE1"),
            grpc.StatusCode.INVALID_ARGUMENT,
            {"template_id"},
        ),
        (claim("m_c8", "b2"), grpc.StatusCode.INVALID_ARGUMENT, {"template_id"}),
        (claim("", "b3", template.id), grpc.StatusCode.INVALID_ARGUMENT, {"member_id"}),
        (claim("m_nobody", "b4", template.id), grpc.StatusCode.NOT_FOUND, set()),
        (claim("m_c8", "b5", "ct_missing"), grpc.StatusCode.NOT_FOUND, {"template_id"}),
    ]
    for request, code, fields in cases:
        details = await failure(service.stub.ClaimCoupon(request))
        assert details.code == code, request
        assert fields_of(details) == fields, request
    details = await failure(service.stub.ClaimCoupon(claim("m_c8", "b6", paused.id)))
    assert details.reason == "INVALID_STATE"
    details = await failure(service.stub.ClaimCoupon(claim("m_c8", "b7", ending.id)))
    assert details.reason == "EXPIRED"
    assert await snapshot(service.database, COUPONS, COUPON_TEMPLATES) == before
    service.clock.now = START


async def test_issue_coupon_is_idempotent_by_reference(service: CouponService) -> None:
    service.clock.now = START
    template = await create_template(service, "req-issue", per_member_limit=3)

    def issue(
        reference: str,
        member_id: str = "m_c9",
        template_id: str = template.id,
        actor: common_pb2.Actor = ADMIN,
    ) -> member_pb2.IssueCouponRequest:
        return member_pb2.IssueCouponRequest(
            template_id=template_id, member_id=member_id, reference=reference, actor=actor
        )

    first = (await service.stub.IssueCoupon(issue("gift-1"))).coupon
    assert first.source == "issue" and first.member_id == "m_c9"
    replays = await asyncio.gather(*(service.stub.IssueCoupon(issue("gift-1")) for _ in range(10)))
    assert {r.coupon.id for r in replays} == {first.id}
    assert await issued_count(service, template.id) == 1
    before = await snapshot(service.database, COUPONS, COUPON_TEMPLATES)
    details = await failure(service.stub.IssueCoupon(issue("gift-1", member_id="m_c10")))
    assert details.reason == "IDEMPOTENCY_KEY_REUSED"
    details = await failure(service.stub.IssueCoupon(issue("gift-2", actor=CUSTOMER)))
    assert details.code == grpc.StatusCode.PERMISSION_DENIED
    details = await failure(service.stub.IssueCoupon(issue("")))
    assert details.code == grpc.StatusCode.INVALID_ARGUMENT and fields_of(details) == {"reference"}
    details = await failure(service.stub.IssueCoupon(issue("gift-3", member_id="m_ghost")))
    assert details.code == grpc.StatusCode.NOT_FOUND and details.metadata["entity"] == "member"
    assert await snapshot(service.database, COUPONS, COUPON_TEMPLATES) == before


async def test_a_merged_member_claims_for_the_survivor(service: CouponService) -> None:
    absorbed = replace(
        member("m_absorbed", 9001), status=MemberStatus.MERGED, merged_into="m_survivor"
    )
    await service.database[MEMBERS].insert_many(
        [member_to_document(absorbed), member_to_document(member("m_survivor", 9002))]
    )
    template = await create_template(service, "req-merged")
    coupon = (await service.stub.ClaimCoupon(claim("m_absorbed", "merged-1", template.id))).coupon
    assert coupon.member_id == "m_survivor"
    again = (await service.stub.ClaimCoupon(claim("m_absorbed", "merged-1", template.id))).coupon
    assert again == coupon
    listed = await service.stub.ListMemberCoupons(
        member_pb2.ListMemberCouponsRequest(member_id="m_absorbed")
    )
    assert [c.id for c in listed.coupons] == [coupon.id]


async def test_list_member_coupons_by_status_newest_first(mongo_uri: str) -> None:
    async with coupon_service(mongo_uri) as fresh:
        await store_members(fresh.database, "m_list")
        short = await create_template(fresh, "req-short", valid_days=1)
        long = await create_template(fresh, "req-long", valid_days=30, per_member_limit=5)
        ids = []
        for n in range(5):
            fresh.clock.advance(minutes=1)
            reply = await fresh.stub.ClaimCoupon(claim("m_list", f"l-{n}", long.id))
            ids.append(reply.coupon.id)
        fresh.clock.advance(minutes=1)
        expiring = (await fresh.stub.ClaimCoupon(claim("m_list", "s-1", short.id))).coupon
        fresh.clock.advance(days=2)  # the 1-day coupon has ended: it reads EXPIRED

        async def listed(status: int, page_size: int = 2) -> list[member_pb2.Coupon]:
            out: list[member_pb2.Coupon] = []
            token = ""
            while True:
                page = await fresh.stub.ListMemberCoupons(
                    member_pb2.ListMemberCouponsRequest(
                        member_id="m_list",
                        status=status,
                        page_size=page_size,
                        page_token=token,  # type: ignore[arg-type]
                    )
                )
                out.extend(page.coupons)
                token = page.next_page_token
                if not token:
                    return out

        every = await listed(member_pb2.COUPON_STATUS_UNSPECIFIED)
        assert [c.id for c in every] == [expiring.id, *reversed(ids)]
        available = await listed(member_pb2.COUPON_STATUS_AVAILABLE)
        assert [c.id for c in available] == list(reversed(ids))
        expired = await listed(member_pb2.COUPON_STATUS_EXPIRED)
        assert [(c.id, c.status) for c in expired] == [
            (expiring.id, member_pb2.COUPON_STATUS_EXPIRED)
        ]
        assert await listed(member_pb2.COUPON_STATUS_REDEEMED) == []
        batch = await fresh.stub.BatchGetCoupons(
            member_pb2.BatchGetCouponsRequest(ids=[expiring.id, "nope:x:1", ids[0]])
        )
        assert [c.id for c in batch.coupons] == [expiring.id, ids[0]]
        assert batch.coupons[0].status == member_pb2.COUPON_STATUS_EXPIRED
        assert list(batch.missing_ids) == ["nope:x:1"]
        details = await failure(
            fresh.stub.ListMemberCoupons(member_pb2.ListMemberCouponsRequest(member_id="m_unknown"))
        )
        assert details.code == grpc.StatusCode.NOT_FOUND
