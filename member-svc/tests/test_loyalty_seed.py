"""Demo seed for loyalty: opening points as ledger entries matching the member documents, the
default tier policy; a re-seed on a live ledger loses nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import grpc

from member_svc import app
from member_svc.demo_data import opening_points
from member_svc.points import LEDGER
from member_svc.repository import MEMBERS
from member_svc.seed import seed
from member_svc.servicer import MemberServicer
from member_svc.settings import MemberSettings
from retail.member.v1 import member_pb2, member_pb2_grpc
from retail_kit.testing import channel_to, running_service, unique_name

NOW = datetime(2026, 5, 1, tzinfo=UTC)


async def test_opening_points_are_ledger_entries_and_survive_a_reseed(mongo_uri: str) -> None:
    database = unique_name("member_seed")
    await seed(mongo_uri, database)
    settings = MemberSettings(mongodb_uri=mongo_uri, database=database, worker_interval_seconds=0)

    def register(server: grpc.aio.Server, context: Any) -> None:
        member_pb2_grpc.add_MemberServiceServicer_to_server(
            MemberServicer(app.books_for(context, lambda: NOW)), server
        )

    async with (
        running_service(app.NAME, settings, app.SERVICE_NAMES, register, app.on_ready) as host,
        channel_to(host) as channel,
    ):
        stub = member_pb2_grpc.MemberServiceStub(channel)
        db = host.context.database
        for member_id, points in opening_points().items():
            summary = await stub.GetPointsSummary(
                member_pb2.GetPointsSummaryRequest(member_id=member_id)
            )
            assert (summary.points.available, summary.points.total) == (points, points)
            listed = await stub.ListPointsLedger(
                member_pb2.ListPointsLedgerRequest(member_id=member_id)
            )
            expected = [("opening", member_id, points)] if points > 0 else []
            assert [(e.kind, e.reference, e.delta) for e in listed.entries] == expected
        policy = (await stub.GetTierPolicy(member_pb2.GetTierPolicyRequest())).policy
        assert [t.code for t in policy.tiers] == ["bronze", "silver", "gold", "platinum"]
        for member in (
            await stub.BatchGetMembers(
                member_pb2.BatchGetMembersRequest(ids=list(opening_points()))
            )
        ).members:
            if member.tier == "bronze":
                assert not member.HasField("tier_review_time")
            else:  # first review a year after the ledger's start (2026-01-01 Shanghai)
                assert member.tier_review_time.ToDatetime(UTC) == datetime(
                    2026, 12, 31, 16, tzinfo=UTC
                )

        opening = opening_points()["m_0001"]
        await stub.EarnPoints(
            member_pb2.EarnPointsRequest(member_id="m_0001", points=100, reference="after-seed")
        )
        await stub.RedeemPoints(
            member_pb2.RedeemPointsRequest(
                member_id="m_0001",
                points=30,
                reference="after-seed-order",
                order_amount={"amount": 10_000, "currency": "CNY"},
            )
        )
        # a re-seed writes the opening head back; the ledger brings it forward again
        await seed(mongo_uri, database)
        summary = await stub.GetPointsSummary(
            member_pb2.GetPointsSummaryRequest(member_id="m_0001")
        )
        assert summary.points.total == opening + 70
        doc = await db[MEMBERS].find_one({"_id": "m_0001"})
        assert doc is not None
        entries = await db[LEDGER].find({"member_id": "m_0001"}).to_list()
        assert doc["points"]["seq"] == 3 == len(entries)
        assert doc["points"]["total"] == sum(e["delta"] for e in entries)
        assert doc["points"]["total"] == sum(lot["remaining"] for lot in doc["points"]["lots"])
