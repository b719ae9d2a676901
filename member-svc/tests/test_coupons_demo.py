"""The demo coupon templates: valid by the rules CreateCouponTemplate applies, seeded once,
and usable end to end (COFFEE8 claimed by its code and applied to coffee lines)."""

from __future__ import annotations

from dataclasses import replace

from member_svc import app
from member_svc.coupon_input import template_from_request, template_to_proto
from member_svc.coupons import COUPON_TEMPLATES, DEMO_TEMPLATES, seed_coupon_templates
from member_svc.demo_data import demo_members
from member_svc.domain import Actor, ActorKind
from member_svc.seed import seed
from member_svc.settings import MemberSettings
from retail.common.v1 import common_pb2
from retail.member.v1 import member_pb2, member_pb2_grpc
from retail_kit.testing import channel_to, running_service, unique_name

from .coupons_support import START, line

ADMIN = Actor(ActorKind.ADMIN, "admin_1")


def test_every_demo_template_passes_the_create_rules() -> None:
    for template in DEMO_TEMPLATES:
        request = member_pb2.CreateCouponTemplateRequest(
            template=template_to_proto(template), request_id=f"demo-{template.id}"
        )
        checked = template_from_request(request, ADMIN, START)
        assert checked == replace(template, create_time=START), template.id


async def test_demo_templates_seed_once_and_coffee8_works(mongo_uri: str) -> None:
    database = unique_name("member_coupon_demo")
    await seed(mongo_uri, database)
    settings = MemberSettings(mongodb_uri=mongo_uri, database=database, worker_interval_seconds=0)
    async with (
        running_service(app.NAME, settings, app.SERVICE_NAMES, app.register, app.on_ready) as host,
        channel_to(host) as channel,
    ):
        stub = member_pb2_grpc.MemberServiceStub(channel)
        member_id = demo_members()[0].id
        claimed = await stub.ClaimCoupon(
            member_pb2.ClaimCouponRequest(
                member_id=member_id, claim_code="coffee8", request_id="demo-claim-1"
            )
        )
        assert claimed.coupon.template_id == "ct_demo_coffee8"
        evaluated = await stub.EvaluateCoupons(
            member_pb2.EvaluateCouponsRequest(
                member_id=member_id,
                lines=[line("p_0001_s1", 300, "cat_coffee_beans", "cat_coffee")],
                channel=common_pb2.CHANNEL_MINI_PROGRAM,
            )
        )
        assert [(e.coupon.id, e.discount.amount) for e in evaluated.evaluations] == [
            (claimed.coupon.id, 2_000)  # 8% of ¥300 = ¥24, capped at ¥20
        ]
        # Seeding again leaves the template and its count alone.
        report = await seed_coupon_templates(host.context.database)
        assert (report.inserted, report.unchanged) == (0, len(DEMO_TEMPLATES))
        doc = await host.context.database[COUPON_TEMPLATES].find_one({"_id": "ct_demo_coffee8"})
        assert doc is not None and doc["issued_count"] == 1
