"""Coupons in orders over real gRPC: evaluate, lock, redeem (核销) by order or at the till by
code, release, lock expiry; every mutation replayed, races kept to one outcome, bad input
refused with the field named and nothing changed."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import grpc
import pytest

from member_svc import coupons
from member_svc.coupons import COUPON_TEMPLATES, COUPONS
from retail.common.v1 import common_pb2
from retail.member.v1 import member_pb2

from .coupons_support import (
    START,
    CouponService,
    coupon_service,
    create_template,
    failure,
    fields_of,
    line,
    snapshot,
    stamp,
    store_members,
    yuan,
)

MINI = common_pb2.CHANNEL_MINI_PROGRAM
POS = common_pb2.CHANNEL_POS
AVAILABLE = member_pb2.COUPON_STATUS_AVAILABLE
LOCKED = member_pb2.COUPON_STATUS_LOCKED
REDEEMED = member_pb2.COUPON_STATUS_REDEEMED
EXPIRED = member_pb2.COUPON_STATUS_EXPIRED
COFFEE = ("cat_coffee_beans", "cat_coffee")
TEA = ("cat_tea_green", "cat_tea")
LINES = [
    line("p_0001_s1", 256, *COFFEE, quantity=2),
    line("p_0100_s1", 59, *TEA),
]
_numbers = itertools.count(1)


@pytest.fixture(scope="module")
async def service(mongo_uri: str) -> AsyncIterator[CouponService]:
    async with coupon_service(mongo_uri) as running:
        await store_members(running.database, "m_o1", "m_o2")
        yield running


@pytest.fixture(autouse=True)
def reset_clock(service: CouponService) -> None:
    service.clock.now = START


async def new_coupon(
    service: CouponService, member_id: str = "m_o1", **fields: Any
) -> member_pb2.Coupon:
    number = next(_numbers)
    fields.setdefault("scope", member_pb2.CouponScope())
    template = await create_template(service, f"req-order-{number}", **fields)
    reply = await service.stub.IssueCoupon(
        member_pb2.IssueCouponRequest(
            template_id=template.id,
            member_id=member_id,
            reference=f"order-test-{number}",
            actor=common_pb2.Actor(kind=common_pb2.ACTOR_KIND_SYSTEM),
        )
    )
    return reply.coupon


def lock(
    coupon_id: str,
    order_id: str,
    member_id: str = "m_o1",
    lines: list[member_pb2.EvaluationLine] | None = None,
    channel: common_pb2.Channel.ValueType = MINI,
    store_id: str = "st_001",
    **fields: Any,
) -> member_pb2.LockCouponRequest:
    return member_pb2.LockCouponRequest(
        coupon_id=coupon_id,
        member_id=member_id,
        order_id=order_id,
        lines=LINES if lines is None else lines,
        channel=channel,
        store_id=store_id,
        **fields,
    )


def release(coupon_id: str, order_id: str) -> member_pb2.ReleaseCouponRequest:
    return member_pb2.ReleaseCouponRequest(coupon_id=coupon_id, order_id=order_id)


def redeem(coupon_id: str, order_id: str) -> member_pb2.RedeemCouponRequest:
    return member_pb2.RedeemCouponRequest(coupon_id=coupon_id, order_id=order_id)


async def stored(service: CouponService, coupon_id: str) -> dict[str, Any]:
    doc = await service.database[COUPONS].find_one({"_id": coupon_id})
    assert doc is not None
    return doc


async def test_evaluate_lists_usable_coupons_by_discount_with_reasons_for_the_rest(
    mongo_uri: str,
) -> None:
    async with coupon_service(mongo_uri) as fresh:
        fresh.clock.now = START
        await store_members(fresh.database, "m_eval")
        ten = await new_coupon(fresh, "m_eval", amount_off=yuan(10))
        coffee8 = await new_coupon(
            fresh,
            "m_eval",
            kind=member_pb2.COUPON_KIND_PERCENT,
            amount_off=None,
            percent_off=8,
            cap=yuan(20),
            scope=member_pb2.CouponScope(category_ids=["cat_coffee"]),
        )
        big = await new_coupon(
            fresh,
            "m_eval",
            kind=member_pb2.COUPON_KIND_THRESHOLD,
            amount_off=yuan(50),
            threshold=yuan(300),
        )
        pos_only = await new_coupon(fresh, "m_eval", scope=member_pb2.CouponScope(channels=[POS]))
        other_store = await new_coupon(
            fresh, "m_eval", scope=member_pb2.CouponScope(store_ids=["st_009"])
        )
        beauty = await new_coupon(
            fresh, "m_eval", scope=member_pb2.CouponScope(category_ids=["cat_beauty"])
        )
        later = await new_coupon(
            fresh,
            "m_eval",
            valid_days=0,
            valid_from=stamp(START + timedelta(days=3)),
            valid_until=stamp(START + timedelta(days=9)),
        )
        short = await new_coupon(fresh, "m_eval", valid_days=1)
        held = await new_coupon(fresh, "m_eval")
        await fresh.stub.LockCoupon(lock(held.id, "o_eval", "m_eval"))
        fresh.clock.advance(days=2)  # `short` has ended

        def ask(include_unusable: bool) -> member_pb2.EvaluateCouponsRequest:
            return member_pb2.EvaluateCouponsRequest(
                member_id="m_eval",
                lines=LINES,
                channel=MINI,
                store_id="st_001",
                include_unusable=include_unusable,
            )

        reply = await fresh.stub.EvaluateCoupons(ask(True))
        # 315.00 in total: 满300减50 usable; 8% of the coffee line (256.00) = 20.48 -> cap 20.
        usable = [(e.coupon.id, e.discount.amount) for e in reply.evaluations if e.usable]
        assert usable == [(big.id, 5_000), (coffee8.id, 2_000), (ten.id, 1_000)]
        for evaluation in reply.evaluations:
            assert sum(d.discount.amount for d in evaluation.line_discounts) == (
                evaluation.discount.amount
            )
        percent = next(e for e in reply.evaluations if e.coupon.id == coffee8.id)
        assert [(d.line_index, d.sku_id) for d in percent.line_discounts] == [(0, "p_0001_s1")]
        assert percent.template.percent_off == 8
        reasons = {e.coupon.id: e.reason for e in reply.evaluations if not e.usable}
        assert reasons == {
            pos_only.id: "channel",
            other_store.id: "store",
            beauty.id: "scope",
            later.id: "not_yet_valid",
            short.id: "expired",
            held.id: "locked",
        }
        only_usable = await fresh.stub.EvaluateCoupons(ask(False))
        assert [e.coupon.id for e in only_usable.evaluations] == [big.id, coffee8.id, ten.id]

        # Below the threshold, 满减 is unusable for that reason.
        small = await fresh.stub.EvaluateCoupons(
            member_pb2.EvaluateCouponsRequest(
                member_id="m_eval",
                lines=[line("p_0001_s1", 99, *COFFEE)],
                channel=MINI,
                include_unusable=True,
            )
        )
        assert {e.coupon.id: e.reason for e in small.evaluations}[big.id] == "threshold"

        details = await failure(
            fresh.stub.EvaluateCoupons(
                member_pb2.EvaluateCouponsRequest(
                    member_id="m_eval",
                    lines=[
                        member_pb2.EvaluationLine(sku_id="p_1", quantity=0, line_total=yuan(1)),
                        member_pb2.EvaluationLine(
                            sku_id="",
                            quantity=1,
                            line_total=common_pb2.Money(amount=-5, currency="CNY"),
                        ),
                    ],
                    channel=9,  # type: ignore[arg-type]
                )
            )
        )
        assert details.code == grpc.StatusCode.INVALID_ARGUMENT
        assert fields_of(details) == {
            "lines[0].quantity",
            "lines[1].sku_id",
            "lines[1].line_total.amount",
            "channel",
        }


async def test_lock_recomputes_the_discount_and_replays_answer_the_same_lock(
    service: CouponService,
) -> None:
    coupon = await new_coupon(service, amount_off=yuan(30))
    reply = await service.stub.LockCoupon(
        lock(coupon.id, "o_lock_1", lock_until=stamp(START + timedelta(minutes=15)))
    )
    assert reply.coupon.status == LOCKED and reply.coupon.order_id == "o_lock_1"
    assert reply.discount.amount == 3_000
    # 30.00 over 512.00 and 59.00 by largest remainder.
    assert [(d.line_index, d.discount.amount) for d in reply.line_discounts] == [
        (0, 2_438),
        (1, 562),
    ]
    service.clock.advance(minutes=1)
    replays = await asyncio.gather(
        *(service.stub.LockCoupon(lock(coupon.id, "o_lock_1")) for _ in range(5))
    )
    assert all(r == reply for r in replays)
    before = await snapshot(service.database, COUPONS)
    details = await failure(service.stub.LockCoupon(lock(coupon.id, "o_lock_2")))
    assert details.code == grpc.StatusCode.FAILED_PRECONDITION
    assert details.reason == "INVALID_STATE" and details.metadata["reason"] == "locked"
    # Another order's release leaves the lock alone; the holder's release frees it.
    other = await service.stub.ReleaseCoupon(release(coupon.id, "o_lock_2"))
    assert other.coupon.status == LOCKED and other.coupon.order_id == "o_lock_1"
    assert await snapshot(service.database, COUPONS) == before
    freed = await service.stub.ReleaseCoupon(release(coupon.id, "o_lock_1"))
    assert freed.coupon.status == AVAILABLE and freed.coupon.order_id == ""
    assert (await service.stub.ReleaseCoupon(release(coupon.id, "o_lock_1"))) == freed
    relocked = await service.stub.LockCoupon(lock(coupon.id, "o_lock_2"))
    assert relocked.coupon.order_id == "o_lock_2"


async def test_lock_refuses_what_does_not_apply_and_changes_nothing(
    service: CouponService,
) -> None:
    plain = await new_coupon(service)
    coffee = await new_coupon(service, scope=member_pb2.CouponScope(category_ids=["cat_coffee"]))
    pos = await new_coupon(service, scope=member_pb2.CouponScope(channels=[POS]))
    store = await new_coupon(service, scope=member_pb2.CouponScope(store_ids=["st_002"]))
    threshold = await new_coupon(
        service, kind=member_pb2.COUPON_KIND_THRESHOLD, amount_off=yuan(50), threshold=yuan(999)
    )
    no_points = await new_coupon(service, combinable_with_points=False)
    short = await new_coupon(service, valid_days=1)
    theirs = await new_coupon(service, "m_o2")
    service.clock.advance(days=1, seconds=1)
    tea_only = [line("p_0100_s1", 59, *TEA)]
    cases: list[tuple[member_pb2.LockCouponRequest, str, str, set[str]]] = [
        (lock(coffee.id, "o_x", lines=tea_only), "COUPON_NOT_APPLICABLE", "scope", {"lines"}),
        (lock(pos.id, "o_x"), "COUPON_NOT_APPLICABLE", "channel", {"channel"}),
        (lock(store.id, "o_x"), "COUPON_NOT_APPLICABLE", "store", {"store_id"}),
        (lock(threshold.id, "o_x"), "COUPON_NOT_APPLICABLE", "threshold", {"lines"}),
        (
            lock(no_points.id, "o_x", with_points=True),
            "COUPON_NOT_APPLICABLE",
            "points",
            {"with_points"},
        ),
        (lock(theirs.id, "o_x"), "COUPON_NOT_APPLICABLE", "member", {"member_id"}),
        (lock(short.id, "o_x"), "EXPIRED", "", set()),
    ]
    before = await snapshot(service.database, COUPONS, COUPON_TEMPLATES)
    for request, reason, why, fields in cases:
        details = await failure(service.stub.LockCoupon(request))
        assert details.code == grpc.StatusCode.FAILED_PRECONDITION, request
        assert details.reason == reason, (request, details)
        assert details.metadata.get("reason", "") == why, details
        assert fields_of(details) == fields, details
        assert details.metadata["coupon_id"] == request.coupon_id
    bad_input: list[tuple[member_pb2.LockCouponRequest, set[str]]] = [
        (lock(plain.id, ""), {"order_id"}),
        (lock("", "o_x"), {"coupon_id"}),
        (lock(plain.id, "o_x", lines=[]), {"lines"}),
        (lock(plain.id, "o_x", lines=[line("p_1", -1)]), {"lines[0].line_total.amount"}),
        (lock(plain.id, "o_x", lock_until=stamp(service.clock.now)), {"lock_until"}),
        (lock(plain.id, "o_x", channel=7), {"channel"}),  # type: ignore[arg-type]
    ]
    for request, fields in bad_input:
        details = await failure(service.stub.LockCoupon(request))
        assert details.code == grpc.StatusCode.INVALID_ARGUMENT, request
        assert fields_of(details) == fields, details
    for request in (lock("ct_none:m_o1:1", "o_x"), lock(plain.id, "o_x", member_id="m_ghost")):
        details = await failure(service.stub.LockCoupon(request))
        assert details.code == grpc.StatusCode.NOT_FOUND
    assert await snapshot(service.database, COUPONS, COUPON_TEMPLATES) == before
    # With points, a combinable coupon locks.
    ok = await service.stub.LockCoupon(lock(plain.id, "o_ok", with_points=True))
    assert ok.coupon.status == LOCKED


async def test_redeem_from_the_lock_is_final(service: CouponService) -> None:
    coupon = await new_coupon(service, amount_off=yuan(20))
    locked = await service.stub.LockCoupon(lock(coupon.id, "o_red_1"))
    service.clock.advance(minutes=3)
    reply = await service.stub.RedeemCoupon(redeem(coupon.id, "o_red_1"))
    assert reply.coupon.status == REDEEMED and reply.discount == locked.discount
    assert list(reply.line_discounts) == list(locked.line_discounts)
    assert reply.coupon.redeem_time.ToSeconds() == int(service.clock.now.timestamp())
    assert (await service.stub.RedeemCoupon(redeem(coupon.id, "o_red_1"))) == reply
    assert (await service.stub.LockCoupon(lock(coupon.id, "o_red_1"))).coupon == reply.coupon
    before = await snapshot(service.database, COUPONS)
    for call, reason in (
        (service.stub.RedeemCoupon(redeem(coupon.id, "o_red_2")), "INVALID_STATE"),
        (service.stub.ReleaseCoupon(release(coupon.id, "o_red_1")), "INVALID_STATE"),
        (service.stub.LockCoupon(lock(coupon.id, "o_red_2")), "INVALID_STATE"),
    ):
        details = await failure(call)
        assert details.code == grpc.StatusCode.FAILED_PRECONDITION
        assert details.reason == reason
    # Another order's compensation finds nothing of its own to release.
    untouched = await service.stub.ReleaseCoupon(release(coupon.id, "o_red_2"))
    assert untouched.coupon.status == REDEEMED
    assert await snapshot(service.database, COUPONS) == before
    # An available coupon cannot be redeemed by id: it is locked first (or redeemed by code).
    fresh = await new_coupon(service)
    details = await failure(service.stub.RedeemCoupon(redeem(fresh.id, "o_red_3")))
    assert details.reason == "INVALID_STATE"


async def test_redeem_at_the_till_by_code(service: CouponService) -> None:
    coupon = await new_coupon(
        service,
        kind=member_pb2.COUPON_KIND_THRESHOLD,
        amount_off=yuan(50),
        threshold=yuan(300),
        scope=member_pb2.CouponScope(channels=[POS]),
    )

    def till(
        order_id: str,
        code: str = coupon.code,
        member_id: str = "m_o1",
        lines: list[member_pb2.EvaluationLine] = LINES,
    ) -> member_pb2.RedeemCouponRequest:
        return member_pb2.RedeemCouponRequest(
            coupon_code=code,
            order_id=order_id,
            member_id=member_id,
            lines=lines,
            channel=POS,
            store_id="st_003",
        )

    before = await snapshot(service.database, COUPONS)
    small = [line("p_0100_s1", 59, *TEA)]
    for request, code, reason, fields in (
        (
            till("o_till_1", lines=small),
            grpc.StatusCode.FAILED_PRECONDITION,
            "COUPON_NOT_APPLICABLE",
            {"lines"},
        ),
        (
            till("o_till_1", member_id="m_o2"),
            grpc.StatusCode.FAILED_PRECONDITION,
            "COUPON_NOT_APPLICABLE",
            {"member_id"},
        ),
        (
            till("o_till_1", code="ZZZZZZZZZZ"),
            grpc.StatusCode.NOT_FOUND,
            "NOT_FOUND",
            {"coupon_code"},
        ),
        (
            till("o_till_1", lines=[]),
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_ARGUMENT",
            {"lines"},
        ),
        (
            till(
                "",
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_ARGUMENT",
            {"order_id"},
        ),
    ):
        details = await failure(service.stub.RedeemCoupon(request))
        assert (details.code, details.reason) == (code, reason), request
        assert fields_of(details) == fields, details
    assert await snapshot(service.database, COUPONS) == before

    reply = await service.stub.RedeemCoupon(till("o_till_1", code=coupon.code.lower()))
    assert reply.coupon.status == REDEEMED and reply.coupon.order_id == "o_till_1"
    assert reply.discount.amount == 5_000
    assert sum(d.discount.amount for d in reply.line_discounts) == 5_000
    assert (await service.stub.RedeemCoupon(till("o_till_1"))) == reply
    details = await failure(service.stub.RedeemCoupon(till("o_till_2")))
    assert details.reason == "INVALID_STATE" and details.metadata["reason"] == "redeemed"


async def test_locks_lapse_are_taken_over_and_released_by_the_job(service: CouponService) -> None:
    coupon = await new_coupon(service)
    short = await new_coupon(service, valid_days=1)
    for c, order_id in ((coupon, "o_lapse_1"), (short, "o_lapse_s")):
        await service.stub.LockCoupon(
            lock(c.id, order_id, lock_until=stamp(START + timedelta(minutes=10)))
        )
    details = await failure(service.stub.LockCoupon(lock(coupon.id, "o_lapse_2")))
    assert details.reason == "INVALID_STATE"
    service.clock.advance(minutes=11)
    # A lapsed lock may be taken by another order at once.
    taken = await service.stub.LockCoupon(
        lock(coupon.id, "o_lapse_2", lock_until=stamp(service.clock.now + timedelta(minutes=10)))
    )
    assert taken.coupon.order_id == "o_lapse_2"
    details = await failure(service.stub.RedeemCoupon(redeem(coupon.id, "o_lapse_1")))
    assert details.reason == "INVALID_STATE"
    # The sweeper frees lapsed locks; a coupon whose window ended meanwhile is EXPIRED.
    service.clock.advance(days=1)
    first = await service.stub.ReleaseExpiredCouponLocks(
        member_pb2.ReleaseExpiredCouponLocksRequest(limit=1)
    )
    assert (first.released, first.more) == (1, True)
    assert await coupons.lock_release_job(service.books, service.clock.now) >= 1
    again = await service.stub.ReleaseExpiredCouponLocks(
        member_pb2.ReleaseExpiredCouponLocksRequest()
    )
    assert (again.released, again.more) == (0, False)
    statuses = await service.stub.BatchGetCoupons(
        member_pb2.BatchGetCouponsRequest(ids=[coupon.id, short.id])
    )
    assert [(c.status, c.order_id) for c in statuses.coupons] == [(AVAILABLE, ""), (EXPIRED, "")]
    assert (await stored(service, short.id))["status"] == "expired"
    # The order whose lock lapsed finds nothing to release.
    assert (
        await service.stub.ReleaseCoupon(release(coupon.id, "o_lapse_1"))
    ).coupon.status == AVAILABLE
    details = await failure(
        service.stub.ReleaseExpiredCouponLocks(
            member_pb2.ReleaseExpiredCouponLocksRequest(limit=5000)
        )
    )
    assert fields_of(details) == {"limit"}


async def test_20_concurrent_locks_of_one_coupon_by_20_orders_make_one_lock(
    service: CouponService,
) -> None:
    for round_number in range(3):
        coupon = await new_coupon(service)
        orders = [f"o_race_{round_number}_{n}" for n in range(20)]
        results = await asyncio.gather(
            *(service.stub.LockCoupon(lock(coupon.id, o)) for o in orders), return_exceptions=True
        )
        won = [r for r in results if isinstance(r, member_pb2.LockCouponResponse)]
        assert len(won) == 1
        for error in results:
            if isinstance(error, grpc.aio.AioRpcError):
                assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
        doc = await stored(service, coupon.id)
        assert doc["status"] == "locked" and doc["order_id"] == won[0].coupon.order_id
        # Concurrent replays of the winner answer the same lock.
        replays = await asyncio.gather(
            *(service.stub.LockCoupon(lock(coupon.id, won[0].coupon.order_id)) for _ in range(10))
        )
        assert all(r == won[0] for r in replays)


async def test_lock_release_redeem_races_keep_one_outcome(service: CouponService) -> None:
    outcomes: set[str] = set()
    for round_number in range(6):
        coupon = await new_coupon(service)
        holder = f"o_mix_{round_number}"
        await service.stub.LockCoupon(lock(coupon.id, holder))
        others = [f"o_mix_{round_number}_{n}" for n in range(6)]
        calls = [
            service.stub.RedeemCoupon(redeem(coupon.id, holder)),
            service.stub.ReleaseCoupon(release(coupon.id, holder)),
            *(service.stub.LockCoupon(lock(coupon.id, o)) for o in others),
            service.stub.RedeemCoupon(redeem(coupon.id, holder)),
            service.stub.ReleaseCoupon(release(coupon.id, holder)),
        ]
        if round_number % 2:
            calls.reverse()
        results = await asyncio.gather(*calls, return_exceptions=True)
        redeemed = [r for r in results if isinstance(r, member_pb2.RedeemCouponResponse)]
        locks = [r for r in results if isinstance(r, member_pb2.LockCouponResponse)]
        for error in results:
            if isinstance(error, grpc.aio.AioRpcError):
                assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, error
        doc = await stored(service, coupon.id)
        if redeemed:
            outcomes.add("redeemed")
            assert doc["status"] == "redeemed" and doc["order_id"] == holder
            assert locks == []
        else:
            assert len(locks) <= 1
            if locks:
                outcomes.add("relocked")
                assert doc["status"] == "locked" and doc["order_id"] == locks[0].coupon.order_id
            else:
                outcomes.add("released")
                assert doc["status"] == "available" and doc["order_id"] is None
    assert outcomes  # whichever won, the coupon ended in exactly one consistent state
