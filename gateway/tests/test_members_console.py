"""The associate console and store managers over real HTTP: enrolment at the counter, look-ups
by phone, member code and id (phones masked for staff), tags, an associate's and a store's
members, the tag catalogue, segment previews and campaigns. Staff see only members bound to
or active in their store; every refusal is decided before any change and changes nothing."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.auth import Role
from gateway.members_auth import CustomerAuth, DevWeChatAuth
from gateway.testing import GatewayClient
from gateway.tests.conftest import ISSUER, SECRET, MemberWorld, token
from member_svc.domain import Identity as IdentityRecord
from member_svc.domain import IdentityKind as IdentityKindRecord
from member_svc.domain import Member as MemberRecord
from member_svc.domain import Tier
from retail.common.v1 import common_pb2
from retail.member.v1 import member_pb2

from .members_support import (
    ADMIN,
    ADMIN_ACTOR,
    associate,
    customer,
    e164,
    enrolled,
    manager,
    new_phone,
    ok,
    refused,
)

MEMBER_FIELDS = """
  id displayName phone identities { kind value } joinChannel joinStoreId homeStoreId
  guide { associateId storeId } consent { marketing } tags { tagId addedBy storeId tag { name } }
"""

ENROLL = f"""
mutation ($phone: String!, $name: String! = "", $consent: Boolean! = false) {{
  enrollMember(phone: $phone, displayName: $name, marketingConsent: $consent) {{
    created guideBound member {{ {MEMBER_FIELDS} }}
  }}
}}
"""

BY_PHONE = f"query ($phone: String!) {{ memberByPhone(phone: $phone) {{ {MEMBER_FIELDS} }} }}"
BY_QR = "query ($payload: String!) { memberByQr(payload: $payload) { id phone } }"
BY_ID = "query ($id: ID!) { member(id: $id) { id phone mergedMemberIds } }"
TAG = """
mutation ($member: ID!, $tag: ID!) { tagMember(memberId: $member, tagId: $tag) {
  changed member { id tags { tagId addedBy storeId tag { name group } } } } }
"""
UNTAG = """
mutation ($member: ID!, $tag: ID!) { untagMember(memberId: $member, tagId: $tag) {
  changed member { id tags { tagId } } } }
"""
MY_MEMBERS = """
query ($filter: MemberListFilter, $first: Int! = 20, $after: String) {
  myMembers(filter: $filter, first: $first, after: $after) {
    nodes { id phone homeStore { id name } tags { tag { name } } }
    pageInfo { hasNextPage endCursor }
  }
}
"""


def masked(phone: str) -> str:
    return f"{phone[:3]}****{phone[-4:]}"


async def guided_member(world: MemberWorld, store_id: str, associate_id: str) -> str:
    """A member enrolled at `store_id` by `associate_id` (their exclusive guide); its phone."""
    phone = new_phone()
    await world.member.EnsureMember(
        member_pb2.EnsureMemberRequest(
            identity=member_pb2.Identity(kind=member_pb2.IDENTITY_KIND_PHONE, value=phone),
            channel=common_pb2.CHANNEL_POS,
            store_id=store_id,
            associate_id=associate_id,
        )
    )
    return phone


async def test_an_associate_enrolls_a_shopper_by_phone_in_one_call(
    members: GatewayClient, member_world: MemberWorld
) -> None:
    phone = new_phone()
    staff = associate("st_001", 3)
    first = (await ok(members, ENROLL, {"phone": phone, "name": "小林", "consent": True}, staff))[
        "enrollMember"
    ]
    assert [c.method for c in members.calls.calls] == ["GetMemberByIdentity", "EnsureMember"]
    assert first["created"] is True and first["guideBound"] is True
    member = first["member"]
    assert member["displayName"] == "小林"
    assert member["phone"] == masked(phone)  # staff never see it whole
    assert member["identities"] == [{"kind": "PHONE", "value": masked(phone)}]
    assert member["guide"] == {"associateId": "as_st_001_03", "storeId": "st_001"}
    assert (member["joinChannel"], member["joinStoreId"], member["homeStoreId"]) == (
        "POS",
        "st_001",
        "st_001",
    )
    assert member["consent"] == {"marketing": True}

    again = (await ok(members, ENROLL, {"phone": f"+86 {phone}"}, associate("st_001", 4)))[
        "enrollMember"
    ]
    assert again["created"] is False and again["guideBound"] is False
    assert again["member"]["id"] == member["id"]
    assert again["member"]["guide"]["associateId"] == "as_st_001_03"  # the first guide stays
    stored = await member_world.get(member["id"])
    assert [i.value for i in stored.identities] == [e164(phone)]


async def test_enrolling_a_phone_of_another_stores_member_is_forbidden_and_changes_nothing(
    members: GatewayClient, member_world: MemberWorld
) -> None:
    phone = await guided_member(member_world, "st_002", "as_st_002_01")
    elsewhere = (
        await member_world.member.GetMemberByIdentity(
            member_pb2.GetMemberByIdentityRequest(
                identity=member_pb2.Identity(kind=member_pb2.IDENTITY_KIND_PHONE, value=phone)
            )
        )
    ).member
    body = await members.query(ENROLL, {"phone": phone, "consent": True}, associate("st_001"))
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert phone[-4:] not in str(body) and elsewhere.id not in str(body)
    assert [c.method for c in members.calls.calls] == ["GetMemberByIdentity"]
    assert await member_world.get(elsewhere.id) == elsewhere  # no consent, no guide change

    members.calls.clear()
    assert (await refused(members, ENROLL, {"phone": phone}, ADMIN))["code"] == "FORBIDDEN"
    assert (await refused(members, ENROLL, {"phone": phone}, customer("m_0001")))[
        "code"
    ] == "FORBIDDEN"
    assert (await refused(members, ENROLL, {"phone": phone}))["code"] == "UNAUTHENTICATED"
    assert members.calls.calls == []
    bad = await refused(members, ENROLL, {"phone": "12345"}, associate("st_001"))
    assert bad["code"] == "BAD_USER_INPUT"
    assert [v["field"] for v in bad["fieldViolations"]] == ["phone"]


async def test_member_by_phone_is_masked_for_staff_whole_for_admins_and_refused_elsewhere(
    members: GatewayClient, member_world: MemberWorld
) -> None:
    phone = new_phone()
    member = await enrolled(member_world, phone, "st_001")
    seen = await ok(members, BY_PHONE, {"phone": phone}, associate("st_001", 7))
    assert seen["memberByPhone"]["id"] == member.id
    assert seen["memberByPhone"]["phone"] == masked(phone)
    manager_view = await ok(members, BY_PHONE, {"phone": phone}, manager("st_001"))
    assert manager_view["memberByPhone"]["phone"] == masked(phone)
    admin_view = await ok(members, BY_PHONE, {"phone": phone}, ADMIN)
    assert admin_view["memberByPhone"]["phone"] == e164(phone)
    assert admin_view["memberByPhone"]["identities"] == [{"kind": "PHONE", "value": e164(phone)}]

    body = await members.query(BY_PHONE, {"phone": phone}, associate("st_002"))
    assert body["data"] == {"memberByPhone": None}
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert member.id not in str(body) and phone[-4:] not in str(body)

    unknown = await ok(members, BY_PHONE, {"phone": new_phone()}, associate("st_001"))
    assert unknown == {"memberByPhone": None}
    for headers in (customer(member.id), token(Role.KIOSK, store_id="st_001", device_id="k_1")):
        members.calls.clear()
        assert (await refused(members, BY_PHONE, {"phone": phone}, headers))["code"] == "FORBIDDEN"
        assert members.calls.calls == []


async def test_member_code_from_the_app_finds_the_member_at_the_counter(
    members: GatewayClient, member_world: MemberWorld
) -> None:
    phone = new_phone()
    member = await enrolled(member_world, phone, "st_001")
    code = await ok(
        members, "{ me { member { memberCode { payload expiresAt } } } }", None, customer(member.id)
    )
    payload = code["me"]["member"]["memberCode"]["payload"]
    expires = datetime.fromisoformat(code["me"]["member"]["memberCode"]["expiresAt"])
    assert timedelta(minutes=4) < expires - datetime.now(UTC) <= timedelta(minutes=5)

    found = await ok(members, BY_QR, {"payload": payload}, associate("st_001"))
    assert found["memberByQr"] == {"id": member.id, "phone": masked(phone)}

    members.calls.clear()
    forged = payload.replace(member.id, "m_0001")
    error = await refused(members, BY_QR, {"payload": forged}, associate("st_001"))
    assert error["code"] == "BAD_USER_INPUT" and error["reason"] == "VERIFICATION_FAILED"
    error = await refused(members, BY_QR, {"payload": "m_0001"}, associate("st_001"))
    assert error["code"] == "BAD_USER_INPUT"
    auth = CustomerAuth(DevWeChatAuth(), SECRET, ISSUER)
    stale, _ = auth.member_code(member.id, now=datetime.now(UTC) - timedelta(minutes=10))
    error = await refused(members, BY_QR, {"payload": stale}, associate("st_001"))
    assert error["code"] == "FAILED_PRECONDITION" and error["reason"] == "EXPIRED"
    assert members.calls.calls == []
    other_store = await refused(members, BY_QR, {"payload": payload}, associate("st_003"))
    assert other_store["code"] == "FORBIDDEN"


async def test_member_by_id_answers_the_survivor_of_a_merge(
    members: GatewayClient, member_world: MemberWorld
) -> None:
    absorbed = await enrolled(member_world, new_phone(), "st_001")
    kept = await enrolled(member_world, new_phone(), "st_004")
    await member_world.member.MergeMembers(
        member_pb2.MergeMembersRequest(
            source_member_id=absorbed.id,
            target_member_id=kept.id,
            reason="one shopper, two phones",
            actor=ADMIN_ACTOR,
        )
    )
    # The survivor now has two phones; its home store stays st_004 (absorbed joined at st_001).
    seen = await ok(members, BY_ID, {"id": absorbed.id}, associate("st_004"))
    assert seen["member"]["id"] == kept.id and seen["member"]["mergedMemberIds"] == [absorbed.id]
    body = await members.query(BY_ID, {"id": absorbed.id}, associate("st_009"))
    assert body["data"] == {"member": None}
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    members.calls.clear()
    bad = await refused(members, BY_ID, {"id": "not an id"}, associate("st_004"))
    assert bad["code"] == "BAD_USER_INPUT" and members.calls.calls == []
    missing = await refused(members, BY_ID, {"id": "m_nobody"}, ADMIN)
    assert missing["code"] == "NOT_FOUND"


async def test_associates_tag_and_untag_their_stores_members_and_others_change_nothing(
    members: GatewayClient, member_world: MemberWorld
) -> None:
    member = await enrolled(member_world, new_phone(), "st_001")
    staff = associate("st_001", 2)
    variables = {"member": member.id, "tag": "tea_lover"}
    tagged = (await ok(members, TAG, variables, staff))["tagMember"]
    assert tagged["changed"] is True
    [tag] = tagged["member"]["tags"]
    assert tag["tagId"] == "tea_lover" and tag["addedBy"] == "as_st_001_02"
    assert tag["storeId"] == "st_001" and tag["tag"]["name"] and tag["tag"]["group"]
    assert (await ok(members, TAG, variables, staff))["tagMember"]["changed"] is False

    members.calls.clear()
    other = await refused(members, UNTAG, variables, associate("st_002"))
    assert other["code"] == "FORBIDDEN"
    assert [c.method for c in members.calls.calls] == ["BatchGetMembers"]  # the look-up only
    assert list((await member_world.get(member.id)).tags) == ["tea_lover"]
    members.calls.clear()
    for headers in (customer(member.id), {}):
        error = await refused(members, TAG, {"member": member.id, "tag": "fashion"}, headers)
        assert error["code"] in {"FORBIDDEN", "UNAUTHENTICATED"}
    assert members.calls.calls == []

    unknown = await refused(members, TAG, {"member": member.id, "tag": "no_such_tag"}, staff)
    assert unknown["code"] == "NOT_FOUND"
    untagged = (await ok(members, UNTAG, variables, manager("st_001")))["untagMember"]
    assert untagged == {"changed": True, "member": {"id": member.id, "tags": []}}
    assert (await ok(members, UNTAG, variables, staff))["untagMember"]["changed"] is False


async def test_associates_list_their_own_members_and_managers_the_stores(
    members: GatewayClient, member_world: MemberWorld
) -> None:
    mine = [await guided_member(member_world, "st_005", "as_st_005_01") for _ in range(3)]
    theirs = await guided_member(member_world, "st_005", "as_st_005_02")
    me = associate("st_005", 1)

    listed = (await ok(members, MY_MEMBERS, {}, me))["myMembers"]
    assert sorted(n["phone"] for n in listed["nodes"]) == sorted(masked(p) for p in mine)
    assert {n["homeStore"]["id"] for n in listed["nodes"]} == {"st_005"}
    one = (await ok(members, MY_MEMBERS, {"filter": {"query": mine[1][-6:]}}, me))["myMembers"]
    assert [n["phone"] for n in one["nodes"]] == [masked(mine[1])]

    first = (await ok(members, MY_MEMBERS, {"first": 2}, me))["myMembers"]
    assert len(first["nodes"]) == 2 and first["pageInfo"]["hasNextPage"] is True
    rest = (
        await ok(members, MY_MEMBERS, {"first": 2, "after": first["pageInfo"]["endCursor"]}, me)
    )["myMembers"]
    assert len(rest["nodes"]) == 1 and rest["pageInfo"] == {"hasNextPage": False, "endCursor": None}

    store = (await ok(members, MY_MEMBERS, {}, manager("st_005")))["myMembers"]
    assert {masked(p) for p in [*mine, theirs]} <= {n["phone"] for n in store["nodes"]}
    theirs_only = await ok(
        members, MY_MEMBERS, {"filter": {"associateId": "as_st_005_02"}}, manager("st_005")
    )
    assert [n["phone"] for n in theirs_only["myMembers"]["nodes"]] == [masked(theirs)]

    members.calls.clear()
    for variables in ({"filter": {"associateId": "as_st_005_02"}}, {"filter": {"storeId": "st_1"}}):
        assert (await refused(members, MY_MEMBERS, variables, me))["code"] == "FORBIDDEN"
    assert (await refused(members, MY_MEMBERS, {}, customer("m_0001")))["code"] == "FORBIDDEN"
    assert (await refused(members, MY_MEMBERS, {"first": 0}, me))["code"] == "BAD_USER_INPUT"
    assert members.calls.calls == []
    admin = await refused(members, MY_MEMBERS, {}, ADMIN)
    assert admin["code"] == "BAD_USER_INPUT"
    assert [v["field"] for v in admin["fieldViolations"]] == ["filter.associateId"]
    by_store = await ok(members, MY_MEMBERS, {"filter": {"storeId": "st_005"}}, ADMIN)
    assert e164(theirs) in {n["phone"] for n in by_store["myMembers"]["nodes"]}


async def test_my_members_make_the_same_calls_for_2_and_20_members(
    members: GatewayClient, member_world: MemberWorld
) -> None:
    me = associate("st_006", 1)
    for _ in range(20):
        phone = await guided_member(member_world, "st_006", "as_st_006_01")
        reply = await member_world.member.GetMemberByIdentity(
            member_pb2.GetMemberByIdentityRequest(
                identity=member_pb2.Identity(kind=member_pb2.IDENTITY_KIND_PHONE, value=phone)
            )
        )
        await member_world.member.TagMember(
            member_pb2.TagMemberRequest(member_id=reply.member.id, tag_id="coffee_lover")
        )

    async def calls(first: int) -> Counter[str]:
        members.calls.clear()
        data = await ok(members, MY_MEMBERS, {"first": first}, me)
        assert len(data["myMembers"]["nodes"]) == first
        assert all(n["tags"][0]["tag"]["name"] for n in data["myMembers"]["nodes"])
        return Counter(c.method for c in members.calls.calls)

    assert (
        await calls(2)
        == await calls(20)
        == {
            "ListMembers": 1,
            "BatchGetStores": 1,
            "ListTagDefinitions": 1,
        }
    )


UPSERT_TAG = """
mutation ($input: TagInput!) { upsertTag(input: $input) { id name group colour createdBy } }
"""


async def test_managers_keep_the_tag_catalogue_that_staff_read(members: GatewayClient) -> None:
    catalogue = await ok(members, "{ tagCatalogue { id name group colour } }", None, associate())
    ids = {t["id"] for t in catalogue["tagCatalogue"]}
    assert {"coffee_lover", "tea_lover", "new_member"} <= ids

    tag = {
        "id": "gw_vip_night",
        "name": [{"locale": "zh-Hans", "value": "夜场贵宾"}],
        "group": "event",
        "colour": "#aa3300",
    }
    members.calls.clear()
    assert (await refused(members, UPSERT_TAG, {"input": tag}, associate()))["code"] == "FORBIDDEN"
    assert members.calls.calls == []
    made = (await ok(members, UPSERT_TAG, {"input": tag}, manager("st_001")))["upsertTag"]
    assert made == {
        "id": "gw_vip_night",
        "name": "夜场贵宾",
        "group": "event",
        "colour": "#AA3300",
        "createdBy": "mgr_st_001",
    }
    bad = await refused(members, UPSERT_TAG, {"input": {**tag, "colour": "red"}}, ADMIN)
    assert bad["code"] == "BAD_USER_INPUT"
    assert [v["field"] for v in bad["fieldViolations"]] == ["input.colour"]
    after = await ok(members, "{ tagCatalogue { id } }", None, manager("st_001"))
    assert "gw_vip_night" in {t["id"] for t in after["tagCatalogue"]}


# ---- segments and campaigns --------------------------------------------------------------


def lapsed(store_id: str, number: int, *, purchase_days_ago: float) -> MemberRecord:
    """A member who joined 400 days ago and last bought `purchase_days_ago` days ago."""
    now = datetime.now(UTC)
    joined = now - timedelta(days=400)
    return MemberRecord(
        id=f"m_gw_{store_id}_{number}",
        display_name=f"沉睡会员{number}",
        identities=(IdentityRecord(IdentityKindRecord.PHONE, e164(new_phone())),),
        tier=Tier.BRONZE,
        home_store_id=store_id,
        join_time=joined,
        referral_code=f"GW{store_id.upper().replace('_', '')}{number}",
        last_purchase_time=now - timedelta(days=purchase_days_ago),
    )


PREVIEW = """
query ($rule: SegmentRuleInput!) { segmentPreview(rule: $rule) { count members { id phone } } }
"""
COUNT = "query ($rule: SegmentRuleInput!) { segmentPreview(rule: $rule) { count } }"
LAUNCH = """
mutation ($name: String!, $template: ID!, $rule: SegmentRuleInput!, $key: String!) {
  launchCampaign(name: $name, templateId: $template, rule: $rule, idempotencyKey: $key) {
    id status total processed issued skipped soldOut launchedBy
    rule { homeStoreIds lifecycleStages } template { id name }
  }
}
"""
CAMPAIGN = """
query ($id: ID!) { campaign(id: $id) { id status total processed issued skipped soldOut } }
"""


async def _wait_completed(
    client: GatewayClient, world: MemberWorld, campaign_id: str, headers: dict[str, str]
) -> dict[str, Any]:
    """Runs member-svc's jobs until the campaign is over (each run issues a page)."""
    for _ in range(20):
        await world.run_jobs()
        campaign: dict[str, Any] = (await ok(client, CAMPAIGN, {"id": campaign_id}, headers))[
            "campaign"
        ]
        if campaign["status"] != "RUNNING":
            return campaign
    raise AssertionError(f"campaign {campaign_id} still running")


async def test_segment_preview_counts_and_shows_the_first_members_masked(
    members: GatewayClient, member_world: MemberWorld
) -> None:
    await member_world.store_members(
        lapsed("st_011", 1, purchase_days_ago=120),
        lapsed("st_011", 2, purchase_days_ago=150),
        lapsed("st_011", 3, purchase_days_ago=10),
    )
    rule = {"homeStoreIds": ["st_011"], "lifecycleStages": ["DORMANT"]}
    preview = (await ok(members, PREVIEW, {"rule": rule}, manager("st_011")))["segmentPreview"]
    assert preview["count"] == 2
    assert {m["id"] for m in preview["members"]} == {"m_gw_st_011_1", "m_gw_st_011_2"}
    assert all("****" in m["phone"] for m in preview["members"])
    members.calls.clear()
    counted = await ok(members, COUNT, {"rule": rule}, manager("st_011"))
    assert counted == {"segmentPreview": {"count": 2}}
    assert [c.method for c in members.calls.calls] == ["CountSegment"]
    whole = await ok(members, PREVIEW, {"rule": {"homeStoreIds": ["st_011"]}}, ADMIN)
    assert whole["segmentPreview"]["count"] == 3
    assert all("****" not in m["phone"] for m in whole["segmentPreview"]["members"])

    members.calls.clear()
    for headers, wanted in (
        (manager("st_001"), rule),
        (manager("st_011"), {"lifecycleStages": ["DORMANT"]}),
        (associate("st_011"), rule),
    ):
        assert (await refused(members, COUNT, {"rule": wanted}, headers))["code"] == "FORBIDDEN"
    assert members.calls.calls == []
    bad = await refused(members, COUNT, {"rule": {**rule, "tiers": ["diamond"]}}, ADMIN)
    assert bad["code"] == "BAD_USER_INPUT"
    assert [v["field"] for v in bad["fieldViolations"]] == ["rule.tiers[0]"]


async def test_a_managers_dormant_members_campaign_issues_once_per_member(
    members: GatewayClient, member_world: MemberWorld
) -> None:
    await member_world.store_members(
        lapsed("st_012", 1, purchase_days_ago=100),
        lapsed("st_012", 2, purchase_days_ago=170),
        lapsed("st_012", 3, purchase_days_ago=300),
    )
    boss = manager("st_012")
    variables = {
        "name": "欢迎回来",
        "template": "ct_demo_welcome_back",
        "rule": {"homeStoreIds": ["st_012"], "lifecycleStages": ["DORMANT"]},
        "key": "st_012-reactivation-1",
    }
    launched = (await ok(members, LAUNCH, variables, boss))["launchCampaign"]
    assert launched["status"] == "RUNNING" and launched["total"] == 2
    assert launched["launchedBy"] == "mgr_st_012"
    assert launched["rule"] == {"homeStoreIds": ["st_012"], "lifecycleStages": ["DORMANT"]}
    assert launched["template"]["id"] == "ct_demo_welcome_back" and launched["template"]["name"]
    replay = (await ok(members, LAUNCH, variables, boss))["launchCampaign"]
    assert replay["id"] == launched["id"]

    done = await _wait_completed(members, member_world, launched["id"], boss)
    assert done == {**done, "status": "COMPLETED", "total": 2, "processed": 2, "issued": 2}
    second = (await ok(members, LAUNCH, {**variables, "key": "st_012-reactivation-2"}, boss))[
        "launchCampaign"
    ]
    assert second["id"] != launched["id"]
    again = await _wait_completed(members, member_world, second["id"], boss)
    assert (again["status"], again["issued"], again["skipped"]) == ("COMPLETED", 0, 2)
    for member_id in ("m_gw_st_012_1", "m_gw_st_012_2", "m_gw_st_012_3"):
        coupons = await member_world.member.ListMemberCoupons(
            member_pb2.ListMemberCouponsRequest(member_id=member_id)
        )
        expected = 0 if member_id.endswith("_3") else 1  # churned, not dormant
        assert [c.template_id for c in coupons.coupons] == ["ct_demo_welcome_back"] * expected

    members.calls.clear()
    elsewhere = manager("st_001")
    assert (await refused(members, CAMPAIGN, {"id": launched["id"]}, elsewhere))[
        "code"
    ] == "FORBIDDEN"
    assert [c.method for c in members.calls.calls] == ["BatchGetCampaigns"]
    members.calls.clear()
    assert (await refused(members, LAUNCH, variables, associate("st_012")))["code"] == "FORBIDDEN"
    assert (await refused(members, LAUNCH, variables, elsewhere))["code"] == "FORBIDDEN"
    assert members.calls.calls == []
    admin_view = await ok(members, CAMPAIGN, {"id": launched["id"]}, ADMIN)
    assert admin_view["campaign"]["issued"] == 2


CANCEL = "mutation ($id: ID!) { cancelCampaign(id: $id) { id status } }"


async def test_a_campaign_can_be_cancelled_by_its_stores_manager_only(
    members: GatewayClient, member_world: MemberWorld
) -> None:
    await member_world.store_members(lapsed("st_013", 1, purchase_days_ago=120))
    variables = {
        "name": "取消测试",
        "template": "ct_demo_welcome_back",
        "rule": {"homeStoreIds": ["st_013"]},
        "key": "st_013-cancel",
    }
    launched = (await ok(members, LAUNCH, variables, manager("st_013")))["launchCampaign"]
    refused_cancel = await refused(members, CANCEL, {"id": launched["id"]}, manager("st_001"))
    assert refused_cancel["code"] == "FORBIDDEN"
    cancelled = await ok(members, CANCEL, {"id": launched["id"]}, manager("st_013"))
    assert cancelled["cancelCampaign"] == {"id": launched["id"], "status": "CANCELLED"}
    await member_world.run_jobs()
    final = (await ok(members, CAMPAIGN, {"id": launched["id"]}, ADMIN))["campaign"]
    assert final["status"] == "CANCELLED" and final["issued"] == 0
    bad = await refused(members, LAUNCH, {**variables, "key": ""}, manager("st_013"))
    assert [v["field"] for v in bad["fieldViolations"]] == ["idempotencyKey"]


async def test_aliased_campaigns_are_one_batch_and_customers_look_nobody_up(
    members: GatewayClient, member_world: MemberWorld
) -> None:
    await member_world.store_members(lapsed("st_014", 1, purchase_days_ago=120))
    ids = []
    for key in ("st_014-a", "st_014-b"):
        variables = {
            "name": key,
            "template": "ct_demo_welcome_back",
            "rule": {"homeStoreIds": ["st_014"]},
            "key": key,
        }
        ids.append(
            (await ok(members, LAUNCH, variables, manager("st_014")))["launchCampaign"]["id"]
        )
    members.calls.clear()
    both = await ok(
        members,
        "query ($a: ID!, $b: ID!) { a: campaign(id: $a) { id template { id } } "
        "b: campaign(id: $b) { id template { id } } }",
        {"a": ids[0], "b": ids[1]},
        manager("st_014"),
    )
    assert [both["a"]["id"], both["b"]["id"]] == ids
    assert Counter(c.method for c in members.calls.calls) == {
        "BatchGetCampaigns": 1,
        "BatchGetCouponTemplates": 1,
    }

    members.calls.clear()
    own = customer("m_gw_st_014_1")
    assert (await refused(members, BY_ID, {"id": "m_gw_st_014_1"}, own))["code"] == "FORBIDDEN"
    assert (await refused(members, CAMPAIGN, {"id": ids[0]}, own))["code"] == "FORBIDDEN"
    assert members.calls.calls == []
