"""MergeMembers over real gRPC: what moves, crash-safety at every step, replays, concurrent
duplicates and opposite merges, customer proof, refusals, and a merged id answering forever.

The same starting state (fixed member ids, built through the books and RPCs of every area)
is built in a fresh database per scenario, so the end states of an uninterrupted merge and
of one interrupted after any step and retried can be compared document for document.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest

from member_svc import jobs
from member_svc.audit import MEMBER_AUDIT
from member_svc.coupon_domain import CouponKind, CouponTemplate
from member_svc.coupons import COUPON_TEMPLATES, COUPONS, template_to_document
from member_svc.domain import (
    Actor,
    ActorKind,
    AssociateBinding,
    Identity,
    IdentityKind,
    Member,
    MemberTag,
    Tier,
)
from member_svc.merge import STEPS, MergeInterrupted
from member_svc.repository import (
    IDENTITIES,
    MEMBERS,
    identity_documents,
    member_to_document,
)
from member_svc.verification import VERIFICATION_CODES
from retail.common.v1 import common_pb2
from retail.member.v1 import member_pb2
from retail_kit.mongo import Document

from .identity_support import (
    ADMIN,
    IdentityService,
    associate,
    code_for,
    customer,
    failure,
    fields_of,
    identity_service,
    phone,
    snapshot,
    unionid,
)

ABSORBED = "m_absorbed"
SURVIVOR = "m_survivor"
REFEREE = "m_referee"
OTHER = "m_other"
ABSORBED_PHONE = "+8613511110001"
SURVIVOR_UNIONID = "o6_survivor_unionid"
ADMIN_ACTOR = Actor(ActorKind.ADMIN, "admin_1")
REASON = "same person: counter enrolment and mini-program"


def _member(member_id: str, identity: Identity, join_time: datetime, **fields: Any) -> Member:
    return Member(
        id=member_id,
        display_name=f"会员 {member_id}",
        identities=(identity,),
        tier=fields.pop("tier", Tier.BRONZE),
        home_store_id=fields.pop("home_store_id", None),
        join_time=join_time,
        referral_code=member_id.upper().replace("_", "")[:8],
        **fields,
    )


def _template(template_id: str) -> CouponTemplate:
    return CouponTemplate(
        id=template_id,
        name={"zh-Hans": "立减10元"},
        kind=CouponKind.FIXED,
        amount_off=1_000,
        valid_days=30,
        per_member_limit=2,
        create_time=datetime(2026, 1, 1, tzinfo=UTC),
    )


async def build_scenario(service: IdentityService) -> None:
    """Two records of one person, each with identities, points, coupons, tags; the
    counter member has a guide, a referee and a birthday; plus an unrelated member."""
    books, clock = service.books, service.clock
    counter_join = datetime(2025, 1, 10, 3, 0, tzinfo=UTC)
    online_join = datetime(2026, 2, 20, 3, 0, tzinfo=UTC)
    absorbed = _member(
        ABSORBED,
        Identity(IdentityKind.PHONE, ABSORBED_PHONE),
        counter_join,
        tier=Tier.SILVER,
        home_store_id="st_001",
        birthday="05-01",
        associate=AssociateBinding("as_001", "st_001", counter_join),
        tags=(
            MemberTag("coffee_lover", "as_001", "st_001", counter_join),
            MemberTag("snack_fan", "as_001", "st_001", counter_join),
        ),
    )
    survivor = _member(
        SURVIVOR,
        Identity(IdentityKind.WECHAT_UNIONID, SURVIVOR_UNIONID),
        online_join,
        tags=(MemberTag("coffee_lover", "as_009", "st_009", online_join),),
    )
    referee = _member(REFEREE, Identity(IdentityKind.PHONE, "+8613511110003"), online_join)
    other = _member(OTHER, Identity(IdentityKind.PHONE, "+8613511110004"), online_join)
    members = [absorbed, survivor, referee, other]
    await service.database[MEMBERS].insert_many([member_to_document(m) for m in members])
    await service.database[IDENTITIES].insert_many(identity_documents(members))
    await service.database[COUPON_TEMPLATES].insert_many(
        [template_to_document(_template(t)) for t in ("tpl_a", "tpl_b")]
    )
    await books.points.earn(ABSORBED, 500, kind="earn", reference="order_a1")
    await books.points.earn(
        ABSORBED,
        300,
        kind="earn",
        reference="order_a2",
        available_time=clock() + timedelta(days=7),
    )
    await books.points.earn(SURVIVOR, 200, kind="earn", reference="order_b1")
    for member_id, template_id in ((ABSORBED, "tpl_a"), (SURVIVOR, "tpl_b"), (ABSORBED, "tpl_b")):
        await books.coupons.issue(
            template_id,
            member_id,
            issue_ref=f"issue:{template_id}:{member_id}",
            source="issue",
            actor=ADMIN_ACTOR,
        )
    await books.referrals.join(REFEREE, absorbed.referral_code, clock())
    clock.advance(minutes=5)


def merge_request(**fields: Any) -> member_pb2.MergeMembersRequest:
    values: dict[str, Any] = {
        "source_member_id": ABSORBED,
        "target_member_id": SURVIVOR,
        "reason": REASON,
        "actor": ADMIN,
        "idempotency_key": "merge-1",
    }
    values.update(fields)
    return member_pb2.MergeMembersRequest(**values)


async def dump(service: IdentityService) -> dict[str, list[Document]]:
    """Every collection, in a comparable form: audit entries without their random ids,
    coupons without their random till codes (and templates without the codes' op list)."""
    database = service.database
    state: dict[str, list[Document]] = {}
    for name in sorted(await database.list_collection_names()):
        if name == VERIFICATION_CODES:
            continue
        docs = await database[name].find({}).sort("_id", 1).to_list()
        if name == MEMBER_AUDIT:
            docs = sorted(
                ({k: v for k, v in d.items() if k != "_id"} for d in docs),
                key=lambda d: (d["member_id"], d["action"], d["occur_time"], str(d["details"])),
            )
        if name == COUPONS:
            docs = [{k: v for k, v in d.items() if k != "code"} for d in docs]
        if name == COUPON_TEMPLATES:  # `ops` names issues by the random codes
            docs = [{k: v for k, v in d.items() if k != "ops"} for d in docs]
        state[name] = docs
    return state


def differences(left: Any, right: Any, path: str = "") -> list[str]:
    """Where two dumps differ, as readable paths (empty when equal)."""
    if isinstance(left, dict) and isinstance(right, dict):
        found: list[str] = []
        for key in sorted(set(left) | set(right), key=str):
            found += differences(left.get(key), right.get(key), f"{path}.{key}")
        return found
    if isinstance(left, list) and isinstance(right, list) and len(left) == len(right):
        return [
            d
            for i, (a, b) in enumerate(zip(left, right, strict=True))
            for d in differences(a, b, f"{path}[{i}]")
        ]
    return [] if left == right else [f"{path}: {left!r} != {right!r}"]


@pytest.fixture(scope="module")
async def reference(mongo_uri: str) -> dict[str, list[Document]]:
    """The end state of an uninterrupted merge through the RPC."""
    async with identity_service(mongo_uri) as service:
        await build_scenario(service)
        reply = await service.stub.MergeMembers(merge_request())
        assert reply.member.id == SURVIVOR
        return await dump(service)


@pytest.fixture
async def scenario(mongo_uri: str) -> AsyncIterator[IdentityService]:
    async with identity_service(mongo_uri) as service:
        await build_scenario(service)
        yield service


def identities_of(member: member_pb2.Member) -> set[tuple[int, str]]:
    return {(i.kind, i.value) for i in member.identities}


async def test_a_merge_moves_everything_to_the_survivor(scenario: IdentityService) -> None:
    stub = scenario.stub
    reply = await stub.MergeMembers(merge_request())
    assert reply.merge_id == f"merge:{ABSORBED}"
    survivor = reply.member
    assert survivor.id == SURVIVOR
    assert survivor.status == member_pb2.MEMBER_STATUS_ACTIVE
    assert identities_of(survivor) == {
        (member_pb2.IDENTITY_KIND_WECHAT_UNIONID, SURVIVOR_UNIONID),
        (member_pb2.IDENTITY_KIND_PHONE, ABSORBED_PHONE),
    }
    assert list(survivor.merged_member_ids) == [ABSORBED]
    # Points: 200 own + 500 available + 300 pending, no double count.
    assert (survivor.points.total, survivor.points.available, survivor.points.pending) == (
        1_000,
        700,
        300,
    )
    # Tags: union; the survivor's own record of a shared tag stays.
    records = {r.tag_id: (r.added_by, r.store_id) for r in survivor.tag_records}
    assert records == {
        "coffee_lover": ("as_009", "st_009"),
        "snack_fan": ("as_001", "st_001"),
    }
    assert sorted(survivor.tags) == ["coffee_lover", "snack_fan"]
    assert (survivor.associate.associate_id, survivor.associate.store_id) == ("as_001", "st_001")
    assert survivor.home_store_id == "st_001"
    assert survivor.birthday == "05-01"
    assert survivor.tier == "silver"  # a merge never lowers a tier
    assert survivor.join_time.ToDatetime(tzinfo=UTC) == datetime(2025, 1, 10, 3, 0, tzinfo=UTC)
    # Coupons.
    coupons = await stub.ListMemberCoupons(member_pb2.ListMemberCouponsRequest(member_id=SURVIVOR))
    assert sorted(c.template_id for c in coupons.coupons) == ["tpl_a", "tpl_b", "tpl_b"]
    # The referee now points to the survivor.
    referee = await stub.GetMember(member_pb2.GetMemberRequest(id=REFEREE))
    assert referee.member.referred_by_member_id == SURVIVOR
    # The absorbed answers MERGED with merged_into, holds nothing.
    absorbed = (await stub.GetMember(member_pb2.GetMemberRequest(id=ABSORBED))).member
    assert absorbed.status == member_pb2.MEMBER_STATUS_MERGED
    assert absorbed.merged_into_member_id == SURVIVOR
    assert list(absorbed.identities) == []
    assert absorbed.points.total == 0
    # The phone finds the survivor.
    found = await stub.GetMemberByIdentity(
        member_pb2.GetMemberByIdentityRequest(identity=phone(ABSORBED_PHONE))
    )
    assert found.member.id == SURVIVOR
    # Ledger: a transfer pair, keyed by the merge.
    ledger = await stub.ListPointsLedger(member_pb2.ListPointsLedgerRequest(member_id=SURVIVOR))
    assert (ledger.entries[0].kind, ledger.entries[0].delta) == ("transfer_in", 800)
    out = await stub.ListPointsLedger(member_pb2.ListPointsLedgerRequest(member_id=ABSORBED))
    assert (out.entries[0].kind, out.entries[0].delta) == ("transfer_out", -800)
    # Audit on both.
    for member_id, action in ((SURVIVOR, "merged_in"), (ABSORBED, "merged_away")):
        audit = await stub.ListMemberAudit(member_pb2.ListMemberAuditRequest(member_id=member_id))
        entry = next(e for e in audit.entries if e.action == action)
        assert entry.details["merge_id"] == reply.merge_id
        assert entry.details["reason"] == REASON
        assert entry.actor.kind == common_pb2.ACTOR_KIND_ADMIN
    # An associate's list shows the survivor only.
    listed = await stub.ListMembers(member_pb2.ListMembersRequest(associate_id="as_001"))
    assert [m.id for m in listed.members] == [SURVIVOR]


@pytest.mark.parametrize("step", STEPS)
async def test_a_merge_interrupted_after_any_step_and_retried_ends_like_an_uninterrupted_one(
    scenario: IdentityService, reference: dict[str, list[Document]], step: str
) -> None:
    books = scenario.books
    record = await books.merges.begin(
        ABSORBED,
        SURVIVOR,
        reason=REASON,
        actor=ADMIN_ACTOR,
        idempotency_key="merge-1",
        now=scenario.clock(),
    )
    with pytest.raises(MergeInterrupted):
        await books.merges.run(books, record, fail_after=step)
    # The retry, through the RPC, with another idempotency key: it continues the first.
    reply = await scenario.stub.MergeMembers(merge_request(idempotency_key="retry"))
    assert reply.member.id == SURVIVOR
    assert differences(await dump(scenario), reference) == []


async def test_a_completed_merge_replayed_answers_the_same_and_changes_nothing(
    scenario: IdentityService, reference: dict[str, list[Document]]
) -> None:
    first = await scenario.stub.MergeMembers(merge_request())
    scenario.clock.advance(hours=1)
    again = await scenario.stub.MergeMembers(merge_request(idempotency_key="other", reason="x"))
    assert again.merge_id == first.merge_id
    assert again.member.id == SURVIVOR
    scenario.clock.advance(hours=-1)  # the dump compares times written by the clock
    assert differences(await dump(scenario), reference) == []


async def test_concurrent_duplicate_merges_make_one_merge(
    scenario: IdentityService, reference: dict[str, list[Document]]
) -> None:
    replies = await asyncio.gather(*(scenario.stub.MergeMembers(merge_request()) for _ in range(8)))
    assert {r.merge_id for r in replies} == {f"merge:{ABSORBED}"}
    assert {r.member.id for r in replies} == {SURVIVOR}
    assert differences(await dump(scenario), reference) == []


async def test_opposite_merges_at_once_never_make_a_cycle(scenario: IdentityService) -> None:
    results = await asyncio.gather(
        scenario.stub.MergeMembers(merge_request()),
        scenario.stub.MergeMembers(
            merge_request(source_member_id=SURVIVOR, target_member_id=ABSORBED)
        ),
        return_exceptions=True,
    )
    won = [r for r in results if isinstance(r, member_pb2.MergeMembersResponse)]
    lost = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(won) == 1 and len(lost) == 1
    assert lost[0].code() == grpc.StatusCode.FAILED_PRECONDITION
    survivor_id = won[0].member.id
    absorbed_id = ABSORBED if survivor_id == SURVIVOR else SURVIVOR
    docs = {d["_id"]: d async for d in scenario.database[MEMBERS].find({})}
    assert docs[survivor_id]["status"] == "active"
    assert docs[absorbed_id]["status"] == "merged"
    assert docs[absorbed_id]["merged_into"] == survivor_id
    assert docs[survivor_id].get("absorbing") == []
    assert await scenario.database["merges"].count_documents({}) == 1


async def test_a_merged_id_answers_forever_and_writes_naming_it_reach_the_survivor(
    scenario: IdentityService,
) -> None:
    stub = scenario.stub
    await stub.MergeMembers(merge_request())
    await stub.UpsertTagDefinition(
        member_pb2.UpsertTagDefinitionRequest(
            tag=member_pb2.TagDefinition(
                id="weekend", name=common_pb2.LocalizedText(values={"zh-Hans": "周末"})
            )
        )
    )
    tagged = await stub.TagMember(
        member_pb2.TagMemberRequest(
            member_id=ABSORBED, tag_id="weekend", actor=associate("as_001", "st_001")
        )
    )
    assert tagged.member.id == SURVIVOR and "weekend" in tagged.member.tags
    profile = await stub.UpdateMemberProfile(
        member_pb2.UpdateMemberProfileRequest(member_id=ABSORBED, display_name="王雨桐")
    )
    assert (profile.member.id, profile.member.display_name) == (SURVIVOR, "王雨桐")
    ensured = await stub.EnsureMember(
        member_pb2.EnsureMemberRequest(identity=phone(ABSORBED_PHONE), store_id="st_002")
    )
    assert (ensured.member.id, ensured.created) == (SURVIVOR, False)
    scenario.clock.advance(days=400)
    absorbed = (await stub.GetMember(member_pb2.GetMemberRequest(id=ABSORBED))).member
    assert absorbed.status == member_pb2.MEMBER_STATUS_MERGED
    assert absorbed.merged_into_member_id == SURVIVOR
    assert list(absorbed.tags) == ["coffee_lover", "snack_fan"]  # as it was when absorbed


async def test_a_chain_of_merges_is_followed(scenario: IdentityService) -> None:
    stub = scenario.stub
    await stub.MergeMembers(merge_request())
    second = await stub.MergeMembers(
        merge_request(source_member_id=SURVIVOR, target_member_id=OTHER)
    )
    assert second.member.id == OTHER
    assert list(second.member.merged_member_ids) == [SURVIVOR, ABSORBED]
    assert second.member.points.total == 1_000
    ensured = await stub.EnsureMember(
        member_pb2.EnsureMemberRequest(identity=phone(ABSORBED_PHONE))
    )
    assert ensured.member.id == OTHER
    first = (await stub.GetMember(member_pb2.GetMemberRequest(id=ABSORBED))).member
    assert first.merged_into_member_id == SURVIVOR  # history kept; readers follow the chain


async def test_a_merge_left_by_its_caller_is_finished_by_the_job(
    scenario: IdentityService,
) -> None:
    books = scenario.books
    record = await books.merges.begin(
        ABSORBED,
        SURVIVOR,
        reason=REASON,
        actor=ADMIN_ACTOR,
        idempotency_key="",
        now=scenario.clock(),
    )
    with pytest.raises(MergeInterrupted):
        await books.merges.run(books, record, fail_after="coupons")
    assert await jobs.run_jobs_once(books) >= 0
    assert (await books.merges.get(ABSORBED)).status == "running"  # type: ignore[union-attr]
    scenario.clock.advance(seconds=31)
    await jobs.run_jobs_once(books)
    finished = await books.merges.get(ABSORBED)
    assert finished is not None and finished.status == "completed"
    survivor = (await scenario.stub.GetMember(member_pb2.GetMemberRequest(id=SURVIVOR))).member
    assert list(survivor.merged_member_ids) == [ABSORBED]
    assert survivor.points.total == 1_000


# ---- a customer proving the other identity ---------------------------------------------


async def test_a_customer_merges_by_proving_the_other_members_phone(
    scenario: IdentityService,
) -> None:
    """The story: enrolled by phone at the counter, later in the mini-program by WeChat; the
    WeChat member binds the phone, learns it belongs to another member, and merges with the
    same code."""
    stub = scenario.stub
    code = await code_for(scenario, phone(ABSORBED_PHONE))
    bound = await failure(
        stub.BindIdentity(
            member_pb2.BindIdentityRequest(
                member_id=SURVIVOR,
                identity=phone(ABSORBED_PHONE),
                verification_code=code,
                actor=customer(SURVIVOR),
            )
        )
    )
    assert bound.reason == "IDENTITY_BOUND_ELSEWHERE"
    assert bound.metadata["member_id"] == ABSORBED
    request = merge_request(
        actor=customer(SURVIVOR),
        reason="",
        proof_identity=phone(ABSORBED_PHONE),
        verification_code=code,
    )
    reply = await stub.MergeMembers(request)
    assert reply.member.id == SURVIVOR
    assert (member_pb2.IDENTITY_KIND_PHONE, ABSORBED_PHONE) in identities_of(reply.member)
    # The code is used up; a replay continues the recorded merge without it.
    again = await stub.MergeMembers(request)
    assert again.merge_id == reply.merge_id
    record = await scenario.database["merges"].find_one({"_id": ABSORBED})
    assert record is not None and record["actor"]["kind"] == "customer"


async def test_a_customer_merge_with_a_wrong_code_changes_nothing(
    scenario: IdentityService,
) -> None:
    code = await code_for(scenario, phone(ABSORBED_PHONE))
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    before = await snapshot(scenario.database)
    details = await failure(
        scenario.stub.MergeMembers(
            merge_request(
                actor=customer(SURVIVOR),
                proof_identity=phone(ABSORBED_PHONE),
                verification_code=wrong,
            )
        )
    )
    assert details.code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.reason == "VERIFICATION_FAILED"
    assert fields_of(details) == ["verification_code"]
    assert await snapshot(scenario.database) == before


async def test_a_customer_must_prove_an_identity_of_the_other_member(
    scenario: IdentityService,
) -> None:
    stub = scenario.stub
    before = await snapshot(scenario.database)
    # Their own WeChat id proves nothing about the other member.
    code = await code_for(scenario, unionid(SURVIVOR_UNIONID))
    details = await failure(
        stub.MergeMembers(
            merge_request(
                actor=customer(SURVIVOR),
                proof_identity=unionid(SURVIVOR_UNIONID),
                verification_code=code,
            )
        )
    )
    assert details.reason == "VERIFICATION_FAILED"
    assert fields_of(details) == ["proof_identity"]
    missing = await failure(stub.MergeMembers(merge_request(actor=customer(SURVIVOR))))
    assert missing.code == grpc.StatusCode.INVALID_ARGUMENT
    assert fields_of(missing) == [
        "proof_identity.kind",
        "proof_identity.value",
        "verification_code",
    ]
    stranger = await failure(stub.MergeMembers(merge_request(actor=customer(OTHER))))
    assert stranger.code == grpc.StatusCode.PERMISSION_DENIED
    staff = await failure(stub.MergeMembers(merge_request(actor=associate("as_001", "st_001"))))
    assert staff.code == grpc.StatusCode.PERMISSION_DENIED
    # Codes requested are not counted: they are not in the snapshot.
    assert await snapshot(scenario.database) == before


# ---- refusals ----------------------------------------------------------------------------


async def test_refused_merges_are_clear_and_change_nothing(scenario: IdentityService) -> None:
    stub = scenario.stub
    before = await snapshot(scenario.database)
    itself = await failure(stub.MergeMembers(merge_request(target_member_id=ABSORBED)))
    assert itself.code == grpc.StatusCode.INVALID_ARGUMENT
    assert fields_of(itself) == ["target_member_id"]
    unknown = await failure(stub.MergeMembers(merge_request(target_member_id="m_nobody")))
    assert unknown.code == grpc.StatusCode.NOT_FOUND
    assert unknown.metadata == {"entity": "member", "id": "m_nobody"}
    unknown_source = await failure(stub.MergeMembers(merge_request(source_member_id="m_nobody")))
    assert unknown_source.code == grpc.StatusCode.NOT_FOUND
    no_reason = await failure(stub.MergeMembers(merge_request(reason="")))
    assert fields_of(no_reason) == ["reason"]
    assert await snapshot(scenario.database) == before
    # Into a merged member, or a member merged elsewhere.
    await stub.MergeMembers(merge_request())
    before = await snapshot(scenario.database)
    into_merged = await failure(
        stub.MergeMembers(merge_request(source_member_id=OTHER, target_member_id=ABSORBED))
    )
    assert into_merged.code == grpc.StatusCode.FAILED_PRECONDITION
    assert into_merged.reason == "MEMBER_MERGED"
    assert into_merged.metadata == {"member_id": ABSORBED, "merged_into": SURVIVOR}
    elsewhere = await failure(stub.MergeMembers(merge_request(target_member_id=OTHER)))
    assert elsewhere.reason == "MEMBER_MERGED"
    assert elsewhere.metadata == {"member_id": ABSORBED, "merged_into": SURVIVOR}
    assert await snapshot(scenario.database) == before
