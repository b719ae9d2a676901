"""The demo members and their identities load fully, a second run changes nothing."""

from __future__ import annotations

from pymongo import AsyncMongoClient

from member_svc import app
from member_svc.convert import KIND_TO_PROTO
from member_svc.coupons import COUPON_TEMPLATES, DEMO_TEMPLATES
from member_svc.demo_data import demo_members, opening_points
from member_svc.points import LEDGER
from member_svc.repository import IDENTITIES, MEMBERS
from member_svc.seed import seed
from member_svc.settings import MemberSettings
from member_svc.tags import DEMO_TAGS, TAG_DEFINITIONS
from member_svc.tiers import POLICY
from retail.member.v1 import member_pb2, member_pb2_grpc
from retail_kit.mongo import Document
from retail_kit.testing import channel_to, running_service, unique_name


async def test_seed_twice_changes_nothing(mongo_uri: str) -> None:
    database = unique_name("member_seed")
    members = demo_members()
    identity_count = sum(len(m.identities) for m in members)
    first = await seed(mongo_uri, database)
    assert [(r.collection, r.inserted, r.updated) for r in first] == [
        (MEMBERS, len(members), 0),
        (IDENTITIES, identity_count, 0),
        (TAG_DEFINITIONS, len(DEMO_TAGS), 0),
        (COUPON_TEMPLATES, len(DEMO_TEMPLATES), 0),
        (LEDGER, sum(1 for points in opening_points().values() if points > 0), 0),
        (POLICY, 1, 0),
    ]
    client: AsyncMongoClient[Document] = AsyncMongoClient(mongo_uri)
    try:
        before = {
            name: await client[database][name].find({}).sort("_id", 1).to_list()
            for name in (MEMBERS, IDENTITIES, TAG_DEFINITIONS, COUPON_TEMPLATES, LEDGER, POLICY)
        }
        second = await seed(mongo_uri, database)
        after = {
            name: await client[database][name].find({}).sort("_id", 1).to_list()
            for name in (MEMBERS, IDENTITIES, TAG_DEFINITIONS, COUPON_TEMPLATES, LEDGER, POLICY)
        }
    finally:
        await client.close()
    assert [(r.inserted, r.updated) for r in second] == [(0, 0)] * 6
    assert [r.unchanged for r in second] == [
        len(members),
        identity_count,
        len(DEMO_TAGS),
        len(DEMO_TEMPLATES),
        sum(1 for points in opening_points().values() if points > 0),
        1,
    ]
    assert before == after


async def test_every_seeded_identity_finds_its_member(mongo_uri: str) -> None:
    database = unique_name("member_seed")
    await seed(mongo_uri, database)
    settings = MemberSettings(mongodb_uri=mongo_uri, database=database, worker_interval_seconds=0)
    async with (
        running_service(app.NAME, settings, app.SERVICE_NAMES, app.register, app.on_ready) as host,
        channel_to(host) as channel,
    ):
        stub = member_pb2_grpc.MemberServiceStub(channel)
        for member in demo_members():
            for identity in member.identities:
                reply = await stub.GetMemberByIdentity(
                    member_pb2.GetMemberByIdentityRequest(
                        identity=member_pb2.Identity(
                            kind=KIND_TO_PROTO[identity.kind], value=identity.value
                        )
                    )
                )
                assert reply.member.id == member.id
                assert reply.member.display_name == member.display_name


async def test_every_demo_tag_is_in_the_seeded_catalogue(mongo_uri: str) -> None:
    database = unique_name("member_seed")
    await seed(mongo_uri, database)
    settings = MemberSettings(mongodb_uri=mongo_uri, database=database, worker_interval_seconds=0)
    async with (
        running_service(app.NAME, settings, app.SERVICE_NAMES, app.register, app.on_ready) as host,
        channel_to(host) as channel,
    ):
        stub = member_pb2_grpc.MemberServiceStub(channel)
        reply = await stub.ListTagDefinitions(member_pb2.ListTagDefinitionsRequest())
        catalogue = {tag.id: tag for tag in reply.tags}
        carried = {tag.tag_id for member in demo_members() for tag in member.tags}
        assert carried <= set(catalogue)
        assert set(catalogue) == {tag[0] for tag in DEMO_TAGS}
        for tag in catalogue.values():
            assert tag.name.values["zh-Hans"]
            assert tag.colour.startswith("#")
