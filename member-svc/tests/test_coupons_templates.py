"""Coupon templates over real gRPC: create (validated, idempotent by request id), claim-code
uniqueness, pause/resume, batch get, newest-first paging."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import grpc
import pytest

from member_svc.coupons import COUPON_TEMPLATES
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
    snapshot,
    stamp,
    template_message,
    yuan,
)

MANAGER_001 = common_pb2.Actor(
    kind=common_pb2.ACTOR_KIND_STORE_MANAGER, id="sm_001", store_id="st_001"
)
CUSTOMER = common_pb2.Actor(kind=common_pb2.ACTOR_KIND_CUSTOMER, id="m_0001")


@pytest.fixture(scope="module")
async def service(mongo_uri: str) -> AsyncIterator[CouponService]:
    async with coupon_service(mongo_uri) as running:
        yield running


async def test_create_answers_the_template_and_a_replay_answers_it_again(
    service: CouponService,
) -> None:
    service.clock.now = START
    template = template_message(
        kind=member_pb2.COUPON_KIND_THRESHOLD,
        amount_off=yuan(50),
        threshold=yuan(300),
        scope=member_pb2.CouponScope(
            channels=[common_pb2.CHANNEL_MINI_PROGRAM, common_pb2.CHANNEL_POS],
            category_ids=["cat_coffee"],
        ),
        total_limit=1000,
        per_member_limit=2,
        claim_code="spring50",
    )
    request = member_pb2.CreateCouponTemplateRequest(
        template=template, request_id="req-create-1", actor=ADMIN
    )
    created = (await service.stub.CreateCouponTemplate(request)).template
    assert (
        created.id.startswith("ct_") and created.status == member_pb2.COUPON_TEMPLATE_STATUS_ACTIVE
    )
    assert created.claim_code == "SPRING50"  # typed by people: case does not matter
    assert created.threshold.amount == 30_000 and created.amount_off.amount == 5_000
    assert created.create_time.ToDatetime().replace(tzinfo=START.tzinfo) == START
    assert list(created.scope.category_ids) == ["cat_coffee"]

    service.clock.advance(minutes=5)
    replay = (await service.stub.CreateCouponTemplate(request)).template
    assert replay == created
    assert await service.database[COUPON_TEMPLATES].count_documents({"_id": created.id}) == 1

    changed = member_pb2.CreateCouponTemplateRequest()
    changed.CopyFrom(request)
    changed.template.amount_off.amount = 6_000
    before = await snapshot(service.database, COUPON_TEMPLATES)
    details = await failure(service.stub.CreateCouponTemplate(changed))
    assert details.code == grpc.StatusCode.FAILED_PRECONDITION
    assert details.reason == "IDEMPOTENCY_KEY_REUSED" and fields_of(details) == {"request_id"}
    assert await snapshot(service.database, COUPON_TEMPLATES) == before


MALFORMED: list[tuple[str, dict[str, Any]]] = [
    ("template.kind", {"kind": member_pb2.COUPON_KIND_UNSPECIFIED}),
    ("template.name", {"name": common_pb2.LocalizedText(values={"zh-Hans": "  "})}),
    ("template.amount_off.amount", {"amount_off": yuan(-5)}),
    ("template.amount_off.amount", {"amount_off": yuan(0)}),
    ("template.amount_off.currency", {"amount_off": common_pb2.Money(amount=100, currency="USD")}),
    (
        "template.percent_off",
        {
            "kind": member_pb2.COUPON_KIND_PERCENT,
            "amount_off": None,
            "percent_off": 0,
            "cap": yuan(20),
        },
    ),
    (
        "template.percent_off",
        {
            "kind": member_pb2.COUPON_KIND_PERCENT,
            "amount_off": None,
            "percent_off": 100,
            "cap": yuan(20),
        },
    ),
    (
        "template.cap.amount",
        {"kind": member_pb2.COUPON_KIND_PERCENT, "amount_off": None, "percent_off": 8},
    ),
    ("template.threshold", {"kind": member_pb2.COUPON_KIND_THRESHOLD, "threshold": yuan(10)}),
    ("template.threshold.amount", {"kind": member_pb2.COUPON_KIND_THRESHOLD}),
    ("template.percent_off", {"percent_off": 10}),
    ("template.valid_days", {"valid_days": 0}),
    ("template.valid_days", {"valid_days": 367}),
    (
        "template.valid_days",
        {"valid_from": stamp(START), "valid_until": stamp(START + timedelta(days=3))},
    ),
    ("template.valid_until", {"valid_days": 0, "valid_from": stamp(START)}),
    (
        "template.valid_until",
        {"valid_days": 0, "valid_from": stamp(START), "valid_until": stamp(START)},
    ),
    (
        "template.valid_until",
        {
            "valid_days": 0,
            "valid_from": stamp(START - timedelta(days=9)),
            "valid_until": stamp(START - timedelta(days=1)),
        },
    ),
    ("template.total_limit", {"total_limit": -1}),
    ("template.per_member_limit", {"per_member_limit": -1}),
    ("template.per_member_limit", {"per_member_limit": 101}),
    ("template.scope.channels[0]", {"scope": member_pb2.CouponScope(channels=[0])}),
    ("template.scope.store_ids[0]", {"scope": member_pb2.CouponScope(store_ids=["st 001"])}),
    ("template.scope.category_ids[1]", {"scope": member_pb2.CouponScope(category_ids=["a", ""])}),
    ("template.claim_store_ids[0]", {"claim_store_ids": ["$bad"]}),
    ("template.claim_code", {"claim_code": "AB"}),
    ("template.claim_code", {"claim_code": "COFFEE-8"}),
    ("template.status", {"status": 9}),
    ("template.id", {"id": "ct bad"}),
]


@pytest.mark.parametrize(("field", "changes"), MALFORMED)
async def test_a_malformed_template_is_refused_naming_the_field(
    service: CouponService, field: str, changes: dict[str, Any]
) -> None:
    service.clock.now = START
    template = template_message(**{k: v for k, v in changes.items() if v is not None})
    for key, value in changes.items():
        if value is None:
            template.ClearField(key)  # type: ignore[arg-type]
    before = await snapshot(service.database, COUPON_TEMPLATES)
    details = await failure(
        service.stub.CreateCouponTemplate(
            member_pb2.CreateCouponTemplateRequest(
                template=template, request_id=f"bad-{field}", actor=ADMIN
            )
        )
    )
    assert details.code == grpc.StatusCode.INVALID_ARGUMENT, details
    assert details.reason == "INVALID_ARGUMENT"
    assert field in fields_of(details), details.violations
    assert await snapshot(service.database, COUPON_TEMPLATES) == before


async def test_every_bad_field_is_reported_at_once(service: CouponService) -> None:
    details = await failure(
        service.stub.CreateCouponTemplate(
            member_pb2.CreateCouponTemplateRequest(
                template=template_message(amount_off=yuan(-1), valid_days=0, total_limit=-3),
                actor=ADMIN,
            )
        )
    )
    assert fields_of(details) >= {
        "request_id",
        "template.amount_off.amount",
        "template.valid_days",
        "template.total_limit",
    }


async def test_only_admins_and_store_managers_write_templates(service: CouponService) -> None:
    before = await snapshot(service.database, COUPON_TEMPLATES)
    for actor in (CUSTOMER, common_pb2.Actor()):
        details = await failure(create_template(service, "req-by-customer", actor=actor))
        assert details.code == grpc.StatusCode.PERMISSION_DENIED
        assert details.reason == "PERMISSION_DENIED" and fields_of(details) == {"actor.kind"}
    # A store manager's template applies in their store only.
    details = await failure(create_template(service, "req-by-manager", actor=MANAGER_001))
    assert details.code == grpc.StatusCode.INVALID_ARGUMENT
    assert fields_of(details) == {"template.scope.store_ids"}
    assert await snapshot(service.database, COUPON_TEMPLATES) == before
    own = await create_template(
        service,
        "req-by-manager-own",
        actor=MANAGER_001,
        scope=member_pb2.CouponScope(store_ids=["st_001"]),
        claim_store_ids=["st_001"],
    )
    assert list(own.scope.store_ids) == ["st_001"]


async def test_claim_codes_are_unique(service: CouponService) -> None:
    first = await create_template(service, "req-code-1", claim_code="UNIQUE88")
    before = await snapshot(service.database, COUPON_TEMPLATES)
    details = await failure(create_template(service, "req-code-2", claim_code="unique88"))
    assert details.code == grpc.StatusCode.ALREADY_EXISTS
    assert details.reason == "ALREADY_EXISTS" and fields_of(details) == {"template.claim_code"}
    assert await snapshot(service.database, COUPON_TEMPLATES) == before
    # Templates without a code never collide with each other.
    a = await create_template(service, "req-no-code-a")
    b = await create_template(service, "req-no-code-b")
    assert len({first.id, a.id, b.id}) == 3 and not a.claim_code and not b.claim_code


async def test_a_template_id_may_be_chosen_and_is_unique(service: CouponService) -> None:
    named = await create_template(service, "req-named-1", id="ct_named")
    assert named.id == "ct_named"
    details = await failure(
        create_template(service, "req-named-2", id="ct_named", amount_off=yuan(20))
    )
    assert details.code == grpc.StatusCode.ALREADY_EXISTS and fields_of(details) == {"template.id"}


async def test_pause_and_resume(service: CouponService) -> None:
    template = await create_template(
        service, "req-pause", scope=member_pb2.CouponScope(store_ids=["st_002"])
    )

    async def set_status(
        status: member_pb2.CouponTemplateStatus.ValueType, actor: common_pb2.Actor = ADMIN
    ) -> member_pb2.CouponTemplate:
        reply = await service.stub.SetCouponTemplateStatus(
            member_pb2.SetCouponTemplateStatusRequest(
                template_id=template.id, status=status, actor=actor
            )
        )
        return reply.template

    paused = await set_status(member_pb2.COUPON_TEMPLATE_STATUS_PAUSED)
    assert paused.status == member_pb2.COUPON_TEMPLATE_STATUS_PAUSED
    assert (await set_status(member_pb2.COUPON_TEMPLATE_STATUS_PAUSED)) == paused
    details = await failure(set_status(member_pb2.COUPON_TEMPLATE_STATUS_ACTIVE, MANAGER_001))
    assert details.code == grpc.StatusCode.PERMISSION_DENIED
    details = await failure(set_status(member_pb2.COUPON_TEMPLATE_STATUS_UNSPECIFIED))
    assert details.code == grpc.StatusCode.INVALID_ARGUMENT and fields_of(details) == {"status"}
    resumed = await set_status(member_pb2.COUPON_TEMPLATE_STATUS_ACTIVE)
    assert resumed.status == member_pb2.COUPON_TEMPLATE_STATUS_ACTIVE
    details = await failure(
        service.stub.SetCouponTemplateStatus(
            member_pb2.SetCouponTemplateStatusRequest(
                template_id="ct_missing",
                status=member_pb2.COUPON_TEMPLATE_STATUS_PAUSED,
                actor=ADMIN,
            )
        )
    )
    assert details.code == grpc.StatusCode.NOT_FOUND and fields_of(details) == {"template_id"}


async def test_batch_get_and_list_newest_first(mongo_uri: str) -> None:
    async with coupon_service(mongo_uri) as fresh:
        ids = []
        for n in range(5):
            fresh.clock.advance(minutes=1)
            ids.append((await create_template(fresh, f"req-list-{n}")).id)
        reply = await fresh.stub.BatchGetCouponTemplates(
            member_pb2.BatchGetCouponTemplatesRequest(ids=[ids[3], "ct_nope", ids[0]])
        )
        assert [t.id for t in reply.templates] == [ids[3], ids[0]]
        assert list(reply.missing_ids) == ["ct_nope"]

        seen: list[str] = []
        token = ""
        while True:
            page = await fresh.stub.ListCouponTemplates(
                member_pb2.ListCouponTemplatesRequest(page_size=2, page_token=token)
            )
            seen.extend(t.id for t in page.templates)
            token = page.next_page_token
            if not token:
                break
        assert seen == list(reversed(ids))
        details = await failure(
            fresh.stub.ListCouponTemplates(
                member_pb2.ListCouponTemplatesRequest(page_token="garbage")
            )
        )
        assert details.reason == "INVALID_PAGE_TOKEN"
