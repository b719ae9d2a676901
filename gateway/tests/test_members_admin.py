"""Admins over real HTTP: the tier policy, coupon templates, points adjustments, issuing a
coupon, merging members; plus the masking rule. Only admins change these (managers read the
templates), checked before any call; bad input is named by its GraphQL field."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.members_access import mask_identity, mask_phone
from gateway.testing import GatewayClient
from gateway.tests.conftest import MemberWorld
from retail.member.v1 import member_pb2

from .members_support import (
    ADMIN,
    associate,
    customer,
    e164,
    enrolled,
    manager,
    new_phone,
    ok,
    refused,
    sign_in,
)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("+8613800138000", "138****8000"),
        ("+447700900123", "+4477****0123"),
        ("+1234567", "****"),
    ],
)
def test_phone_numbers_are_masked_for_staff(value: str, shown: str) -> None:
    assert mask_phone(value) == shown
    assert mask_identity(member_pb2.IDENTITY_KIND_PHONE, value) == shown


def test_other_identities_keep_only_their_first_characters() -> None:
    assert (
        mask_identity(member_pb2.IDENTITY_KIND_WECHAT_UNIONID, "o6_bmjrPTlm6_2sgVt") == "o6_b****"
    )
    assert mask_identity(member_pb2.IDENTITY_KIND_APP_ACCOUNT, "short") == "****"


POLICY = """
{ tierPolicy { pointsPerYuan pointsPerYuanRedeemed maxRedeemPercent
  tiers { code name threshold { amount currency } pointsMultiplierPercent birthdayBonusPoints } } }
"""
SET_POLICY = """
mutation ($input: TierPolicyInput!) { setTierPolicy(input: $input) {
  tiers { code birthdayBonusPoints } pointsPerYuan updateTime } }
"""


def _policy_input(policy: dict[str, Any], birthday_bonus: int) -> dict[str, Any]:
    return {
        "tiers": [
            {
                "code": t["code"],
                "threshold": {"amount": t["threshold"]["amount"]},
                "pointsMultiplierPercent": t["pointsMultiplierPercent"],
                "birthdayBonusPoints": birthday_bonus if t["code"] == "gold" else 0,
            }
            for t in policy["tiers"]
        ],
        "pointsPerYuan": policy["pointsPerYuan"],
        "pointsPerYuanRedeemed": policy["pointsPerYuanRedeemed"],
        "maxRedeemPercent": policy["maxRedeemPercent"],
    }


async def test_anyone_signed_in_reads_the_tier_policy_and_only_admins_set_it(
    members: GatewayClient,
) -> None:
    assert (await refused(members, POLICY))["code"] == "UNAUTHENTICATED"
    policy = (await ok(members, POLICY, None, customer("m_0001")))["tierPolicy"]
    assert [t["code"] for t in policy["tiers"]] == ["bronze", "silver", "gold", "platinum"]
    assert policy["tiers"][0]["threshold"]["amount"] == 0 and policy["tiers"][2]["name"]

    members.calls.clear()
    wanted = _policy_input(policy, 555)
    for headers in (manager("st_001"), associate(), customer("m_0001")):
        error = await refused(members, SET_POLICY, {"input": wanted}, headers)
        assert error["code"] == "FORBIDDEN"
    assert members.calls.calls == []
    assert (await ok(members, POLICY, None, ADMIN))["tierPolicy"] == policy

    descending = {**wanted, "tiers": list(reversed(wanted["tiers"]))}
    bad = await refused(members, SET_POLICY, {"input": descending}, ADMIN)
    assert bad["code"] == "BAD_USER_INPUT"
    assert bad["fieldViolations"] and all(
        v["field"].startswith("input.tiers[") for v in bad["fieldViolations"]
    )
    assert (await ok(members, POLICY, None, ADMIN))["tierPolicy"] == policy

    made = (await ok(members, SET_POLICY, {"input": wanted}, ADMIN))["setTierPolicy"]
    assert {t["code"]: t["birthdayBonusPoints"] for t in made["tiers"]}["gold"] == 555
    assert made["updateTime"]
    original = _policy_input(policy, 0) | {
        "tiers": [
            {**t, "birthdayBonusPoints": p["birthdayBonusPoints"]}
            for t, p in zip(_policy_input(policy, 0)["tiers"], policy["tiers"], strict=True)
        ]
    }
    await ok(members, SET_POLICY, {"input": original}, ADMIN)  # as it was, for other tests


CREATE_TEMPLATE = """
mutation ($input: CouponTemplateInput!, $requestId: String!) {
  createCouponTemplate(input: $input, requestId: $requestId) {
    id name kind amountOff { amount currency } validDays perMemberLimit totalLimit
    combinableWithPoints claimCode issueOnly status scope { channels storeIds } issuedCount
  }
}
"""
TEMPLATES = """
query ($first: Int! = 50) { couponTemplates(first: $first) { nodes { id status }
  pageInfo { hasNextPage } } }
"""
SET_STATUS = """
mutation ($id: ID!, $status: CouponTemplateStatus!) {
  setCouponTemplateStatus(id: $id, status: $status) { id status } }
"""
CLAIM = """
mutation ($key: String!, $code: String) { claimCoupon(idempotencyKey: $key, claimCode: $code) {
  id templateId } }
"""


async def test_admins_create_pause_and_resume_coupon_templates_managers_list_them(
    members: GatewayClient,
) -> None:
    template = {
        "name": [
            {"locale": "zh-Hans", "value": "立减10元"},
            {"locale": "en", "value": "¥10 off"},
        ],
        "kind": "FIXED",
        "amountOff": {"amount": 1000},
        "validDays": 7,
        "perMemberLimit": 2,
        "combinableWithPoints": True,
        "claimCode": "GWTEN10",
        "scope": {"channels": ["MINI_PROGRAM", "POS"]},
    }
    variables = {"input": template, "requestId": "gw-admin-ten"}
    members.calls.clear()
    for headers in (manager("st_001"), customer("m_0001")):
        error = await refused(members, CREATE_TEMPLATE, variables, headers)
        assert error["code"] == "FORBIDDEN"
    assert members.calls.calls == []

    made = (await ok(members, CREATE_TEMPLATE, variables, ADMIN))["createCouponTemplate"]
    assert made == {
        **made,
        "name": "立减10元",
        "kind": "FIXED",
        "amountOff": {"amount": 1000, "currency": "CNY"},
        "validDays": 7,
        "perMemberLimit": 2,
        "totalLimit": 0,
        "combinableWithPoints": True,
        "claimCode": "GWTEN10",
        "issueOnly": False,
        "status": "ACTIVE",
        "scope": {"channels": ["MINI_PROGRAM", "POS"], "storeIds": []},
        "issuedCount": 0,
    }
    replay = (await ok(members, CREATE_TEMPLATE, variables, ADMIN))["createCouponTemplate"]
    assert replay["id"] == made["id"]
    reused = await refused(
        members, CREATE_TEMPLATE, {**variables, "input": {**template, "validDays": 8}}, ADMIN
    )
    assert reused["code"] in {"CONFLICT", "FAILED_PRECONDITION"}

    bad = await refused(
        members,
        CREATE_TEMPLATE,
        {"input": {**template, "kind": "PERCENT", "claimCode": None}, "requestId": "gw-bad"},
        ADMIN,
    )
    assert bad["code"] == "BAD_USER_INPUT"
    assert bad["fieldViolations"] and all(
        v["field"].startswith("input.") for v in bad["fieldViolations"]
    )

    listed = (await ok(members, TEMPLATES, None, manager("st_001")))["couponTemplates"]["nodes"]
    assert {"id": made["id"], "status": "ACTIVE"} in listed
    assert {"ct_demo_300_minus_50", "ct_demo_coffee8"} <= {t["id"] for t in listed}
    one = await ok(
        members,
        'query ($id: ID!) { couponTemplate(id: $id) { name(locale: "en") } }',
        {"id": made["id"]},
        manager("st_001"),
    )
    assert one == {"couponTemplate": {"name": "¥10 off"}}
    assert (await refused(members, TEMPLATES, None, associate()))["code"] == "FORBIDDEN"

    _, shopper = await sign_in(members)
    paused = await ok(members, SET_STATUS, {"id": made["id"], "status": "PAUSED"}, ADMIN)
    assert paused["setCouponTemplateStatus"]["status"] == "PAUSED"
    refused_claim = await refused(members, CLAIM, {"key": "c1", "code": "gwten10"}, shopper)
    assert refused_claim["code"] == "FAILED_PRECONDITION"
    assert (
        await refused(
            members, SET_STATUS, {"id": made["id"], "status": "ACTIVE"}, manager("st_001")
        )
    )["code"] == "FORBIDDEN"
    await ok(members, SET_STATUS, {"id": made["id"], "status": "ACTIVE"}, ADMIN)
    claimed = (await ok(members, CLAIM, {"key": "c2", "code": "gwten10"}, shopper))["claimCoupon"]
    assert claimed["templateId"] == made["id"]


ADJUST = """
mutation ($member: ID!, $delta: Int!, $reason: String!, $reference: String!) {
  adjustPoints(memberId: $member, delta: $delta, reason: $reason, reference: $reference) {
    balance entry { id delta kind reference note shortfall balanceAfter } }
}
"""


async def test_admins_adjust_points_once_per_reference_never_below_zero(
    members: GatewayClient, member_world: MemberWorld
) -> None:
    member = await enrolled(member_world, new_phone())
    add = {"member": member.id, "delta": 200, "reason": "goodwill", "reference": "gw-adj-1"}
    members.calls.clear()
    for headers in (manager("st_001"), associate(), customer(member.id)):
        assert (await refused(members, ADJUST, add, headers))["code"] == "FORBIDDEN"
    assert members.calls.calls == []

    added = (await ok(members, ADJUST, add, ADMIN))["adjustPoints"]
    assert added["balance"] == 200
    assert added["entry"] == {
        **added["entry"],
        "delta": 200,
        "kind": "adjust",
        "reference": "gw-adj-1",
        "balanceAfter": 200,
    }
    again = (await ok(members, ADJUST, add, ADMIN))["adjustPoints"]
    assert again["entry"]["id"] == added["entry"]["id"]
    taken = (await ok(members, ADJUST, {**add, "delta": -500, "reference": "gw-adj-2"}, ADMIN))[
        "adjustPoints"
    ]
    assert taken["balance"] == 0 and taken["entry"]["shortfall"] == 300
    missing = await refused(members, ADJUST, {**add, "reason": "", "reference": "gw-3"}, ADMIN)
    assert missing["code"] == "BAD_USER_INPUT"
    assert [v["field"] for v in missing["fieldViolations"]] == ["reason"]
    assert (await member_world.get(member.id)).points.total == 0


ISSUE = """
mutation ($template: ID!, $member: ID!, $reference: String!) {
  issueCoupon(templateId: $template, memberId: $member, reference: $reference) {
    id templateId memberId status source } }
"""


async def test_admins_issue_coupons_once_per_reference(
    members: GatewayClient, member_world: MemberWorld
) -> None:
    member = await enrolled(member_world, new_phone())
    variables = {"template": "ct_demo_welcome_back", "member": member.id, "reference": "gw-i-1"}
    members.calls.clear()
    assert (await refused(members, ISSUE, variables, manager("st_001")))["code"] == "FORBIDDEN"
    assert members.calls.calls == []
    issued = (await ok(members, ISSUE, variables, ADMIN))["issueCoupon"]
    assert issued == {
        **issued,
        "templateId": "ct_demo_welcome_back",
        "memberId": member.id,
        "status": "AVAILABLE",
        "source": "issue",
    }
    assert (await ok(members, ISSUE, variables, ADMIN))["issueCoupon"]["id"] == issued["id"]
    limit = await refused(members, ISSUE, {**variables, "reference": "gw-i-2"}, ADMIN)
    assert limit["code"] == "FAILED_PRECONDITION" and limit["reason"] == "LIMIT_REACHED"


MERGE = """
mutation ($survivor: ID!, $absorbed: ID!, $reason: String!) {
  mergeMembers(survivorId: $survivor, absorbedId: $absorbed, reason: $reason) {
    mergeId member { id phone identities { kind value } mergedMemberIds } }
}
"""


async def test_admins_merge_members_with_a_reason(
    members: GatewayClient, member_world: MemberWorld
) -> None:
    first_phone, second_phone = new_phone(), new_phone()
    survivor = await enrolled(member_world, first_phone)
    absorbed = await enrolled(member_world, second_phone)
    variables = {"survivor": survivor.id, "absorbed": absorbed.id, "reason": "same person"}
    members.calls.clear()
    for headers in (manager("st_001"), associate(), customer(survivor.id)):
        assert (await refused(members, MERGE, variables, headers))["code"] == "FORBIDDEN"
    assert members.calls.calls == []
    no_reason = await refused(members, MERGE, {**variables, "reason": ""}, ADMIN)
    assert [v["field"] for v in no_reason["fieldViolations"]] == ["reason"]
    itself = await refused(members, MERGE, {**variables, "absorbed": survivor.id}, ADMIN)
    assert [v["field"] for v in itself["fieldViolations"]] == ["survivorId"]
    assert (await member_world.get(absorbed.id)).status == member_pb2.MEMBER_STATUS_ACTIVE

    merged = (await ok(members, MERGE, variables, ADMIN))["mergeMembers"]
    assert merged["mergeId"] and merged["member"]["id"] == survivor.id
    assert merged["member"]["mergedMemberIds"] == [absorbed.id]
    assert {i["value"] for i in merged["member"]["identities"]} == {
        e164(first_phone),
        e164(second_phone),
    }
    replay = (await ok(members, MERGE, variables, ADMIN))["mergeMembers"]
    assert replay["mergeId"] == merged["mergeId"]
    other = await enrolled(member_world, new_phone())
    again = await refused(
        members, MERGE, {**variables, "survivor": other.id, "reason": "again"}, ADMIN
    )
    assert again["code"] == "FAILED_PRECONDITION" and again["reason"] == "MEMBER_MERGED"
