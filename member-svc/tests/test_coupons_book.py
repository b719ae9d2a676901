"""CouponBook.issue and reassign_member (the methods other areas call) on the real database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import grpc
import pytest
from pymongo import AsyncMongoClient

from member_svc import coupons
from member_svc.books import Books, build_books, ensure_all_indexes
from member_svc.coupon_domain import CouponStatus, TemplateStatus
from member_svc.coupons import COUPON_TEMPLATES, COUPONS
from member_svc.domain import SYSTEM
from member_svc.settings import MemberSettings
from retail_kit.errors import ServiceError
from retail_kit.mongo import Document
from retail_kit.testing import unique_name

from .coupons_support import Clock, fixed_template, store_members, store_template


@pytest.fixture
async def books(mongo_uri: str) -> AsyncIterator[Books]:
    client: AsyncMongoClient[Document] = AsyncMongoClient(mongo_uri, tz_aware=True)
    database = client[unique_name("member_coupons")]
    await ensure_all_indexes(database)
    settings = MemberSettings(mongodb_uri=mongo_uri, database=database.name)
    try:
        yield build_books(database, settings, Clock())
    finally:
        await client.close()


async def test_issue_is_idempotent_by_reference_and_counts_once(books: Books) -> None:
    await store_members(books.database, "m_a", "m_b")
    await store_template(books.database, fixed_template("ct_book", per_member_limit=2))
    first = await books.coupons.issue(
        "ct_book", "m_a", issue_ref="campaign:c1:m_a", source="campaign:c1", actor=SYSTEM
    )
    assert first.status is CouponStatus.AVAILABLE and first.id == "ct_book:m_a:1"
    replays = await asyncio.gather(
        *(
            books.coupons.issue(
                "ct_book", "m_a", issue_ref="campaign:c1:m_a", source="campaign:c1", actor=SYSTEM
            )
            for _ in range(5)
        )
    )
    assert {r.id for r in replays} == {first.id} and {r.code for r in replays} == {first.code}
    second = await books.coupons.issue(
        "ct_book", "m_a", issue_ref="issue:x", source="issue", actor=SYSTEM
    )
    assert second.id == "ct_book:m_a:2"
    with pytest.raises(ServiceError) as caught:
        await books.coupons.issue(
            "ct_book", "m_a", issue_ref="issue:y", source="issue", actor=SYSTEM
        )
    assert caught.value.reason == "LIMIT_REACHED"
    assert caught.value.metadata["limit"] == "per_member"
    template = await books.database[COUPON_TEMPLATES].find_one({"_id": "ct_book"})
    assert template is not None and template["issued_count"] == 2


async def test_issue_refuses_unknown_paused_expired_and_sold_out(books: Books) -> None:
    clock = books.clock
    assert isinstance(clock, Clock)
    await store_members(books.database, "m_a", "m_b")
    await store_template(books.database, fixed_template("ct_one", total_limit=1))
    await store_template(books.database, fixed_template("ct_paused", status=TemplateStatus.PAUSED))
    await store_template(
        books.database,
        fixed_template(
            "ct_over",
            valid_days=0,
            valid_from=clock.now.replace(year=2025),
            valid_until=clock.now.replace(month=2),
        ),
    )
    cases = [
        ("ct_none", "m_a", grpc.StatusCode.NOT_FOUND, "NOT_FOUND"),
        ("ct_one", "m_zz", grpc.StatusCode.NOT_FOUND, "NOT_FOUND"),
        ("ct_paused", "m_a", grpc.StatusCode.FAILED_PRECONDITION, "INVALID_STATE"),
        ("ct_over", "m_a", grpc.StatusCode.FAILED_PRECONDITION, "EXPIRED"),
    ]
    for template_id, member_id, code, reason in cases:
        with pytest.raises(ServiceError) as caught:
            await books.coupons.issue(
                template_id, member_id, issue_ref=f"r:{template_id}", source="issue", actor=SYSTEM
            )
        assert (caught.value.code, caught.value.reason) == (code, reason), template_id
    await books.coupons.issue("ct_one", "m_a", issue_ref="r:1", source="issue", actor=SYSTEM)
    with pytest.raises(ServiceError) as caught:
        await books.coupons.issue("ct_one", "m_b", issue_ref="r:2", source="issue", actor=SYSTEM)
    assert caught.value.metadata["limit"] == "total"
    assert await books.database[COUPONS].count_documents({}) == 1


async def test_reassign_member_moves_coupons_once(books: Books) -> None:
    await store_members(books.database, "m_old", "m_new")
    await store_template(books.database, fixed_template("ct_merge"))
    coupon = await books.coupons.issue(
        "ct_merge", "m_old", issue_ref="r:merge", source="issue", actor=SYSTEM
    )
    assert await books.coupons.reassign_member("m_old", "m_new") == 1
    assert await books.coupons.reassign_member("m_old", "m_new") == 0
    moved = await books.coupons.get_coupon(coupon.id)
    assert moved is not None and moved.member_id == "m_new" and moved.code == coupon.code


async def insert_issuing(books: Books, coupon_id: str, issue_ref: str, code: str) -> None:
    """What a crash right after step 1 of an issue leaves: an ISSUING coupon."""
    clock = books.clock
    await books.database[COUPONS].insert_one(
        {
            "_id": coupon_id,
            "template_id": coupon_id.split(":")[0],
            "member_id": coupon_id.split(":")[1],
            "status": "issuing",
            "valid_from": clock(),
            "valid_until": clock() + timedelta(days=30),
            "code": code,
            "issue_ref": issue_ref,
            "source": "campaign:c9",
            "issue_time": clock(),
        }
    )


async def test_an_issue_cut_short_is_finished_once_by_its_replay(books: Books) -> None:
    await store_members(books.database, "m_a", "m_b")
    await store_template(books.database, fixed_template("ct_crash", total_limit=2))
    # Cut after step 1 (inserted, not counted): invisible until finished.
    await insert_issuing(books, "ct_crash:m_a:1", "campaign:c9:m_a", "CRASH00001")
    assert await books.coupons.get_coupon("ct_crash:m_a:1") is None
    finished = await books.coupons.issue(
        "ct_crash", "m_a", issue_ref="campaign:c9:m_a", source="campaign:c9", actor=SYSTEM
    )
    assert finished.status is CouponStatus.AVAILABLE and finished.code == "CRASH00001"
    # Cut after step 2 (counted, not yet available): the replay does not count it again.
    await insert_issuing(books, "ct_crash:m_b:1", "campaign:c9:m_b", "CRASH00002")
    await books.database[COUPON_TEMPLATES].update_one(
        {"_id": "ct_crash"}, {"$inc": {"issued_count": 1}, "$push": {"ops": "CRASH00002"}}
    )
    again = await asyncio.gather(
        *(
            books.coupons.issue(
                "ct_crash", "m_b", issue_ref="campaign:c9:m_b", source="campaign:c9", actor=SYSTEM
            )
            for _ in range(5)
        )
    )
    assert {c.id for c in again} == {"ct_crash:m_b:1"}
    template = await books.database[COUPON_TEMPLATES].find_one({"_id": "ct_crash"})
    assert template is not None and template["issued_count"] == 2


async def test_the_job_finishes_stale_issuing_coupons_or_deletes_sold_out_ones(
    books: Books,
) -> None:
    clock = books.clock
    assert isinstance(clock, Clock)
    await store_members(books.database, "m_a", "m_b")
    await store_template(books.database, fixed_template("ct_stale", total_limit=1))
    await insert_issuing(books, "ct_stale:m_a:1", "campaign:c9:m_a", "STALE00001")
    await insert_issuing(books, "ct_stale:m_b:1", "campaign:c9:m_b", "STALE00002")
    assert await coupons.lock_release_job(books, clock()) == 0  # not stale yet
    clock.advance(minutes=2)
    assert await coupons.lock_release_job(books, clock()) == 2
    left = await books.database[COUPONS].find({"template_id": "ct_stale"}).to_list()
    assert [(d["_id"], d["status"]) for d in left] == [("ct_stale:m_a:1", "available")]
    template = await books.database[COUPON_TEMPLATES].find_one({"_id": "ct_stale"})
    assert template is not None and template["issued_count"] == 1
    assert await coupons.lock_release_job(books, clock()) == 0
