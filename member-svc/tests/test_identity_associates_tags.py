"""Guides (专属导购), associates' member lists and tags over real gRPC."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import grpc
import pytest

from member_svc.repository import MEMBERS
from retail.common.v1 import common_pb2
from retail.member.v1 import member_pb2

from .identity_support import (
    ADMIN,
    IdentityService,
    associate,
    audit_actions,
    enrol,
    failure,
    fields_of,
    identity_service,
    manager,
    phone,
    snapshot,
)

_numbers = itertools.count(1)


def new_phone() -> str:
    return f"136{next(_numbers):08d}"


@pytest.fixture(scope="module")
async def service(mongo_uri: str) -> AsyncIterator[IdentityService]:
    async with identity_service(mongo_uri) as running:
        yield running


async def new_member(service: IdentityService, **fields: object) -> member_pb2.Member:
    return (await enrol(service, phone(new_phone()), **fields)).member


def assign(
    member_id: str, associate_id: str, store_id: str, reason: str = ""
) -> member_pb2.AssignAssociateRequest:
    return member_pb2.AssignAssociateRequest(
        member_id=member_id,
        associate_id=associate_id,
        store_id=store_id,
        reason=reason,
        actor=manager("mgr_1", store_id),
    )


# ---- AssignAssociate ---------------------------------------------------------------------------


async def test_assigning_a_guide_is_audited_with_the_previous_one_and_the_reason(
    service: IdentityService,
) -> None:
    member = await new_member(service, store_id="st_010", associate_id="as_010")
    service.clock.advance(minutes=1)
    reply = await service.stub.AssignAssociate(
        assign(member.id, "as_011", "st_010", "as_010 left the store")
    )
    guide = reply.member.associate
    assert (guide.associate_id, guide.store_id) == ("as_011", "st_010")
    assert guide.bind_time.ToDatetime(tzinfo=service.clock().tzinfo) == service.clock()
    audit = await service.stub.ListMemberAudit(
        member_pb2.ListMemberAuditRequest(member_id=member.id)
    )
    newest = audit.entries[0]
    assert newest.action == "associate_assigned"
    assert dict(newest.details) == {
        "associate_id": "as_011",
        "store_id": "st_010",
        "previous_associate_id": "as_010",
        "previous_store_id": "st_010",
        "reason": "as_010 left the store",
    }
    assert newest.actor.kind == common_pb2.ACTOR_KIND_STORE_MANAGER
    # The same guide again: nothing changes, nothing is audited.
    before = await snapshot(service.database)
    service.clock.advance(minutes=1)
    again = await service.stub.AssignAssociate(assign(member.id, "as_011", "st_010", "again"))
    assert again.member == reply.member
    assert await snapshot(service.database) == before


async def test_a_bad_assignment_names_its_fields_and_changes_nothing(
    service: IdentityService,
) -> None:
    member = await new_member(service)
    before = await snapshot(service.database)
    details = await failure(service.stub.AssignAssociate(assign(member.id, "", "st 1", "x" * 201)))
    assert details.code == grpc.StatusCode.INVALID_ARGUMENT
    assert fields_of(details) == ["associate_id", "store_id", "reason"]
    missing = await failure(service.stub.AssignAssociate(assign("m_nobody", "as_1", "st_1")))
    assert missing.code == grpc.StatusCode.NOT_FOUND
    assert await snapshot(service.database) == before


# ---- ListMembers ---------------------------------------------------------------------------------


async def list_all(
    service: IdentityService, page_size: int = 2, **filters: str
) -> list[member_pb2.Member]:
    found: list[member_pb2.Member] = []
    token = ""
    while True:
        page = await service.stub.ListMembers(
            member_pb2.ListMembersRequest(page_size=page_size, page_token=token, **filters)
        )
        assert len(page.members) <= page_size
        found += page.members
        token = page.next_page_token
        if not token:
            return found


async def test_an_associate_lists_their_members_and_a_manager_the_stores(
    service: IdentityService,
) -> None:
    store = f"st_l{next(_numbers):03d}"
    mine = [await new_member(service, store_id=store, associate_id="as_mine") for _ in range(3)]
    theirs = await new_member(service, store_id=store, associate_id="as_theirs")
    walk_in = await new_member(service, store_id=store)  # enrolled there, no guide
    guided_elsewhere = await new_member(service, store_id="st_elsewhere")
    await service.stub.AssignAssociate(assign(guided_elsewhere.id, "as_theirs", store))
    await new_member(service, store_id="st_elsewhere")  # not this store's
    listed = await list_all(service, associate_id="as_mine")
    assert [m.id for m in listed] == sorted(m.id for m in mine)
    whole_store = await list_all(service, store_id=store)
    expected = [*mine, theirs, walk_in, guided_elsewhere]
    assert [m.id for m in whole_store] == sorted(m.id for m in expected)
    both = await list_all(service, associate_id="as_theirs", store_id=store)
    assert [m.id for m in both] == sorted([theirs.id, guided_elsewhere.id])


async def test_members_are_found_by_a_name_fragment_or_the_last_digits_of_a_phone(
    service: IdentityService,
) -> None:
    store = f"st_q{next(_numbers):03d}"
    number = new_phone()
    wang = (await enrol(service, phone(number), store_id=store, display_name="王雨桐")).member
    li = await new_member(service, store_id=store, display_name="Li Haoran")
    assert [m.id for m in await list_all(service, store_id=store, query="雨")] == [wang.id]
    assert [m.id for m in await list_all(service, store_id=store, query="haoran")] == [li.id]
    assert [m.id for m in await list_all(service, store_id=store, query=number[-4:])] == [wang.id]
    assert [m.id for m in await list_all(service, store_id=store, query=number[-6:])] == [wang.id]
    assert await list_all(service, store_id=store, query=number[:4]) == []  # not a suffix
    assert await list_all(service, store_id=store, query="a.*") == []  # no regex injection


async def test_bad_listing_requests_name_their_fields(service: IdentityService) -> None:
    details = await failure(service.stub.ListMembers(member_pb2.ListMembersRequest()))
    assert fields_of(details) == ["associate_id"]
    details = await failure(
        service.stub.ListMembers(
            member_pb2.ListMembersRequest(store_id="st 1", query="x" * 40, page_size=500)
        )
    )
    assert fields_of(details) == ["store_id", "query"]
    page = await service.stub.ListMembers(
        member_pb2.ListMembersRequest(associate_id="as_mine", page_size=1)
    )
    details = await failure(
        service.stub.ListMembers(
            member_pb2.ListMembersRequest(
                associate_id="as_theirs", page_token=page.next_page_token or "x"
            )
        )
    )
    assert details.reason == "INVALID_PAGE_TOKEN"


# ---- tag catalogue ----------------------------------------------------------------------------


def tag_definition(
    tag_id: str, zh: str = "咖啡爱好者", en: str = "", group: str = "interest", colour: str = ""
) -> member_pb2.TagDefinition:
    values = {"zh-Hans": zh} if zh else {}
    if en:
        values["en"] = en
    return member_pb2.TagDefinition(
        id=tag_id, name=common_pb2.LocalizedText(values=values), group=group, colour=colour
    )


async def upsert(
    service: IdentityService, tag: member_pb2.TagDefinition
) -> member_pb2.TagDefinition:
    reply = await service.stub.UpsertTagDefinition(
        member_pb2.UpsertTagDefinitionRequest(tag=tag, actor=manager("mgr_1", "st_001"))
    )
    return reply.tag


async def test_tag_definitions_are_created_updated_and_listed(service: IdentityService) -> None:
    created = await upsert(service, tag_definition("cat_coffee", en="Coffee", colour="#6f4e37"))
    assert (created.id, created.group, created.colour, created.created_by) == (
        "cat_coffee",
        "interest",
        "#6F4E37",
        "mgr_1",
    )
    service.clock.advance(minutes=1)
    reply = await service.stub.UpsertTagDefinition(
        member_pb2.UpsertTagDefinitionRequest(
            tag=tag_definition("cat_coffee", zh="咖啡控", group="taste", colour="#000000"),
            actor=ADMIN,
        )
    )
    updated = reply.tag
    assert dict(updated.name.values) == {"zh-Hans": "咖啡控"}
    assert (updated.group, updated.created_by) == ("taste", "mgr_1")
    assert updated.update_time.ToDatetime(tzinfo=service.clock().tzinfo) == service.clock()
    await upsert(service, tag_definition("cat_plain", group=""))
    listing = await service.stub.ListTagDefinitions(member_pb2.ListTagDefinitionsRequest())
    by_id = {tag.id: tag for tag in listing.tags}
    assert by_id["cat_coffee"] == updated
    assert (by_id["cat_plain"].group, by_id["cat_plain"].colour) == ("general", "#8C8C8C")


@pytest.mark.parametrize(
    ("tag", "fields"),
    [
        (tag_definition("Coffee"), ["tag.id"]),
        (tag_definition("c"), ["tag.id"]),
        (tag_definition("coffee-lover"), ["tag.id"]),
        (tag_definition("coffee", zh=""), ["tag.name.values[zh-Hans]"]),
        (tag_definition("coffee", colour="red"), ["tag.colour"]),
        (tag_definition("coffee", group="Interest!"), ["tag.group"]),
        (
            member_pb2.TagDefinition(
                id="coffee", name=common_pb2.LocalizedText(values={"zh-Hans": "咖", "fr": "café"})
            ),
            ["tag.name.values[fr]"],
        ),
        (
            tag_definition("", zh="", colour="#12345"),
            ["tag.id", "tag.name.values[zh-Hans]", "tag.colour"],
        ),
    ],
    ids=["uppercase", "too-short", "dash", "no-zh", "colour", "group", "locale", "everything"],
)
async def test_a_bad_tag_definition_names_its_fields_and_writes_nothing(
    service: IdentityService, tag: member_pb2.TagDefinition, fields: list[str]
) -> None:
    before = await snapshot(service.database)
    details = await failure(
        service.stub.UpsertTagDefinition(member_pb2.UpsertTagDefinitionRequest(tag=tag))
    )
    assert details.code == grpc.StatusCode.INVALID_ARGUMENT
    assert fields_of(details) == fields
    assert await snapshot(service.database) == before


# ---- member tags -------------------------------------------------------------------------------


def tag_request(
    member_id: str, tag_id: str, actor: common_pb2.Actor | None = None
) -> member_pb2.TagMemberRequest:
    return member_pb2.TagMemberRequest(
        member_id=member_id, tag_id=tag_id, actor=actor or associate("as_020", "st_020")
    )


async def test_tagging_records_who_where_and_when_and_a_replay_adds_nothing(
    service: IdentityService,
) -> None:
    await upsert(service, tag_definition("weekend"))
    member = await new_member(service)
    service.clock.advance(minutes=2)
    reply = await service.stub.TagMember(tag_request(member.id, "weekend"))
    assert reply.added
    assert list(reply.member.tags) == ["weekend"]
    record = reply.member.tag_records[0]
    assert (record.tag_id, record.added_by, record.store_id) == ("weekend", "as_020", "st_020")
    assert record.add_time.ToDatetime(tzinfo=service.clock().tzinfo) == service.clock()
    before = await snapshot(service.database)
    service.clock.advance(minutes=2)
    again = await service.stub.TagMember(tag_request(member.id, "weekend", ADMIN))
    assert not again.added
    assert again.member.tag_records == reply.member.tag_records
    assert await snapshot(service.database) == before


async def test_twenty_concurrent_taggings_add_one_record(service: IdentityService) -> None:
    await upsert(service, tag_definition("busy"))
    member = await new_member(service)
    replies = await asyncio.gather(
        *(
            service.stub.TagMember(tag_request(member.id, "busy", associate(f"as_{i}", "st_1")))
            for i in range(20)
        )
    )
    assert sum(reply.added for reply in replies) == 1
    stored = await service.database[MEMBERS].find_one({"_id": member.id})
    assert stored is not None
    assert stored["tags"] == ["busy"]
    assert len(stored["tag_records"]) == 1
    assert (await audit_actions(service, member.id)).count("tagged") == 1


async def test_an_unknown_tag_or_member_is_not_found_and_changes_nothing(
    service: IdentityService,
) -> None:
    member = await new_member(service)
    before = await snapshot(service.database)
    details = await failure(service.stub.TagMember(tag_request(member.id, "no_such_tag")))
    assert details.code == grpc.StatusCode.NOT_FOUND
    assert details.metadata == {"entity": "tag", "id": "no_such_tag"}
    await upsert(service, tag_definition("known"))
    before = await snapshot(service.database)
    details = await failure(service.stub.TagMember(tag_request("m_nobody", "known")))
    assert details.code == grpc.StatusCode.NOT_FOUND
    assert details.metadata == {"entity": "member", "id": "m_nobody"}
    details = await failure(service.stub.TagMember(tag_request(member.id, "Bad Tag")))
    assert fields_of(details) == ["tag_id"]
    assert await snapshot(service.database) == before


async def test_untagging_removes_id_and_record_together_and_is_audited(
    service: IdentityService,
) -> None:
    await upsert(service, tag_definition("snacks"))
    await upsert(service, tag_definition("teas"))
    member = await new_member(service)
    await service.stub.TagMember(tag_request(member.id, "snacks"))
    await service.stub.TagMember(tag_request(member.id, "teas"))
    service.clock.advance(hours=1)
    reply = await service.stub.UntagMember(
        member_pb2.UntagMemberRequest(
            member_id=member.id, tag_id="snacks", actor=associate("as_030", "st_030")
        )
    )
    assert reply.removed
    assert list(reply.member.tags) == ["teas"]
    assert [r.tag_id for r in reply.member.tag_records] == ["teas"]
    audit = await service.stub.ListMemberAudit(
        member_pb2.ListMemberAuditRequest(member_id=member.id, page_size=1)
    )
    entry = audit.entries[0]
    assert entry.action == "untagged"
    assert (entry.actor.id, entry.actor.store_id) == ("as_030", "st_030")
    assert entry.details["tag_id"] == "snacks"
    assert (entry.details["added_by"], entry.details["added_store_id"]) == ("as_020", "st_020")
    before = await snapshot(service.database)
    again = await service.stub.UntagMember(
        member_pb2.UntagMemberRequest(member_id=member.id, tag_id="snacks", actor=ADMIN)
    )
    assert not again.removed
    assert await snapshot(service.database) == before
