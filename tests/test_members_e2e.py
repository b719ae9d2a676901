"""Issue 7's done-scenario on the whole system as `make run` starts it (demo data, member-svc
with its background jobs, the gateway with WeChat dev sign-in), through GraphQL only except
where noted: an associate enrolls a shopper by phone at the counter and tags them; the shopper
later signs in to the mini-program with WeChat, binds the same phone, is told it belongs to
another member, merges it and sees one member with their points and coupons; a store
manager's dormant-members campaign issues its coupon exactly once per member.

Tests run in file order on the session's stack (tests/conftest.py), before test_stack_e2e.py,
whose last test stops it; they leave the printed demo customer (m_0001) as it was.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from gateway.auth import Role, issue_token
from gateway.settings import load as load_gateway_settings
from member_svc.demo_data import demo_members
from member_svc.domain import IdentityKind
from retail.common.v1 import common_pb2
from retail.member.v1 import member_pb2, member_pb2_grpc
from tests.conftest import RunningStack

pytestmark = pytest.mark.e2e

CAMPAIGN_TIMEOUT_SECONDS = 60.0
"""member-svc's jobs run every 5 s in `make run`; a one-page campaign needs one or two runs."""


async def graphql(
    stack: RunningStack, query: str, variables: dict[str, Any], token: str | None = None
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=10) as client:
        response = await client.post(
            "/graphql", json={"query": query, "variables": variables}, headers=headers
        )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def data(
    stack: RunningStack, query: str, variables: dict[str, Any], token: str | None = None
) -> dict[str, Any]:
    body = await graphql(stack, query, variables, token)
    assert "errors" not in body, body
    result: dict[str, Any] = body["data"]
    return result


ENROLL = """
mutation ($phone: String!) {
  enrollMember(phone: $phone, displayName: "小林", marketingConsent: true) {
    created guideBound member { id phone guide { associateId storeId } }
  }
}
"""
TAG = """
mutation ($id: ID!) { tagMember(memberId: $id, tagId: "coffee_lover") { changed } }
"""
ADJUST = """
mutation ($id: ID!, $ref: String!) {
  adjustPoints(memberId: $id, delta: 520, reason: "welcome gift at the counter", reference: $ref) {
    balance
  }
}
"""
ISSUE = """
mutation ($id: ID!, $ref: String!) {
  issueCoupon(templateId: "ct_demo_300_minus_50", memberId: $id, reference: $ref) { id }
}
"""
SIGN_IN = """
mutation ($code: String!) { signInWithWeChat(code: $code) { token created member { id } } }
"""
REQUEST_CODE = """
mutation ($phone: String!) {
  requestIdentityVerification(kind: PHONE, value: $phone) { debugCode expiresAt }
}
"""
BIND = """
mutation ($phone: String!, $code: String!) {
  bindIdentity(kind: PHONE, value: $phone, code: $code) { id }
}
"""
MERGE = """
mutation ($phone: String!, $code: String!) {
  mergeWithIdentity(kind: PHONE, value: $phone, code: $code) { id mergedMemberIds }
}
"""
ME = """
{ me { member {
  id displayName phone mergedMemberIds homeStoreId guide { associateId storeId }
  tags { tagId addedBy storeId }
  points { available total }
  coupons { nodes { id templateId status code } }
  pointsHistory(first: 10) { nodes { kind delta } }
} } }
"""


async def test_enrolled_at_the_counter_then_wechat_bind_and_merge_make_one_member(
    stack: RunningStack,
) -> None:
    associate, admin = stack.token("associate"), stack.token("admin")
    phone = f"139{secrets.randbelow(10**8):08d}"

    # At the counter: the associate enrolls the shopper by phone and tags them.
    enrolled = (await data(stack, ENROLL, {"phone": phone}, associate))["enrollMember"]
    assert enrolled["created"] is True and enrolled["guideBound"] is True
    counter_id = enrolled["member"]["id"]
    assert enrolled["member"]["phone"] == f"{phone[:3]}****{phone[-4:]}"
    assert enrolled["member"]["guide"] == {"associateId": "as_st_001_01", "storeId": "st_001"}
    tagged = await data(stack, TAG, {"id": counter_id}, associate)
    assert tagged["tagMember"]["changed"] is True
    # The counter member gets points and a coupon before the shopper ever opens the app.
    adjusted = await data(stack, ADJUST, {"id": counter_id, "ref": f"e2e-{phone}"}, admin)
    assert adjusted["adjustPoints"]["balance"] == 520
    coupon = (await data(stack, ISSUE, {"id": counter_id, "ref": f"e2e-{phone}"}, admin))[
        "issueCoupon"
    ]

    # Later, in the mini-program: WeChat sign-in makes a second member.
    session = (await data(stack, SIGN_IN, {"code": f"dev:o6_e2e{secrets.token_hex(8)}"}))[
        "signInWithWeChat"
    ]
    assert session["created"] is True
    app_id, shopper = session["member"]["id"], session["token"]
    assert app_id != counter_id

    # Binding the same phone: proved by its code, answered with a conflict naming the
    # counter member, so the app offers to merge.
    requested = await data(stack, REQUEST_CODE, {"phone": phone}, shopper)
    code = requested["requestIdentityVerification"]["debugCode"]
    assert code and len(code) == 6
    conflict = await graphql(stack, BIND, {"phone": phone, "code": code}, shopper)
    [error] = conflict["errors"]
    assert error["extensions"]["code"] == "CONFLICT"
    assert error["extensions"]["reason"] == "IDENTITY_BOUND_ELSEWHERE"
    assert error["extensions"]["otherMemberId"] == counter_id
    merged = (await data(stack, MERGE, {"phone": phone, "code": code}, shopper))[
        "mergeWithIdentity"
    ]
    assert merged == {"id": app_id, "mergedMemberIds": [counter_id]}

    # One member, with the counter member's points, coupon, tag and guide, phone whole.
    me = (await data(stack, ME, {}, shopper))["me"]["member"]
    assert me["id"] == app_id and me["phone"] == f"+86{phone}"
    assert me["mergedMemberIds"] == [counter_id]
    assert me["points"] == {"available": 520, "total": 520}
    assert [(c["id"], c["templateId"], c["status"]) for c in me["coupons"]["nodes"]] == [
        (coupon["id"], "ct_demo_300_minus_50", "AVAILABLE")
    ]
    assert me["tags"] == [{"tagId": "coffee_lover", "addedBy": "as_st_001_01", "storeId": "st_001"}]
    assert me["guide"] == {"associateId": "as_st_001_01", "storeId": "st_001"}
    assert me["homeStoreId"] == "st_001"
    assert {"kind": "transfer_in", "delta": 520} in me["pointsHistory"]["nodes"]

    # The associate finds the same one member by phone (masked) and by the old id.
    by_phone = await data(
        stack,
        "query ($p: String!) { memberByPhone(phone: $p) { id phone } }",
        {"p": phone},
        associate,
    )
    assert by_phone["memberByPhone"] == {"id": app_id, "phone": f"{phone[:3]}****{phone[-4:]}"}
    by_old_id = await data(
        stack, "query ($id: ID!) { member(id: $id) { id } }", {"id": counter_id}, associate
    )
    assert by_old_id["member"] == {"id": app_id}
    mine = await data(stack, "{ myMembers(first: 100) { nodes { id } } }", {}, associate)
    assert app_id in {n["id"] for n in mine["myMembers"]["nodes"]}
    assert counter_id not in {n["id"] for n in mine["myMembers"]["nodes"]}


PREVIEW = (
    "query ($rule: SegmentRuleInput!) { segmentPreview(rule: $rule) { count members { id } } }"
)
LAUNCH = """
mutation ($rule: SegmentRuleInput!, $key: String!) {
  launchCampaign(name: "沉睡会员回归", templateId: "ct_demo_welcome_back", rule: $rule,
                 idempotencyKey: $key) { id status total }
}
"""
CAMPAIGN = "query ($id: ID!) { campaign(id: $id) { status total processed issued skipped } }"
WELCOME_BACK = """
{ me { member { id coupons(first: 100) { nodes { templateId source } } } } }
"""


def _stamp(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


async def _completed(stack: RunningStack, campaign_id: str, token: str) -> dict[str, Any]:
    deadline = time.monotonic() + CAMPAIGN_TIMEOUT_SECONDS
    while True:
        campaign: dict[str, Any] = (await data(stack, CAMPAIGN, {"id": campaign_id}, token))[
            "campaign"
        ]
        if campaign["status"] != "RUNNING":
            return campaign
        if time.monotonic() > deadline:
            raise AssertionError(f"campaign still running: {campaign}")
        await asyncio.sleep(0.5)


def _manager_of(store_id: str) -> str:
    """A store manager's token, signed as the stack signs its printed ones (the gateway's
    settings from this environment: the development secret unless one is set)."""
    settings = load_gateway_settings()
    return issue_token(
        settings.jwt_secret,
        settings.jwt_issuer,
        Role.STORE_MANAGER,
        subject=f"mgr_{store_id}",
        store_id=store_id,
    )


async def test_a_dormant_members_campaign_issues_its_coupon_once_per_member(
    stack: RunningStack,
) -> None:
    # Demo member m_0002 (home store st_003; the printed demo customer m_0001 is left alone
    # for the other tests) last bought 120 days ago, which makes them dormant: recorded over
    # gRPC as order-svc records a completed order.
    shopper = next(m for m in demo_members() if m.id == "m_0002")
    unionid = next(i.value for i in shopper.identities if i.kind is IdentityKind.WECHAT_UNIONID)
    manager = _manager_of("st_003")
    now = datetime.now(UTC)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{stack.service_ports['member']}") as channel:
        await member_pb2_grpc.MemberServiceStub(channel).RecordOrderCompleted(
            member_pb2.RecordOrderCompletedRequest(
                member_id="m_0002",
                order_id="o_e2e_dormant_0002",
                paid_amount=common_pb2.Money(amount=1_000, currency="CNY"),
                channel=common_pb2.CHANNEL_POS,
                store_id="st_003",
                complete_time=_stamp(now - timedelta(days=120)),
                return_window_end_time=_stamp(now - timedelta(days=113)),
            )
        )
    rule = {"homeStoreIds": ["st_003"], "lifecycleStages": ["DORMANT"]}
    preview = (await data(stack, PREVIEW, {"rule": rule}, manager))["segmentPreview"]
    assert "m_0002" in {m["id"] for m in preview["members"]}
    segment = preview["count"]

    launched = (await data(stack, LAUNCH, {"rule": rule, "key": "e2e-dormant-1"}, manager))[
        "launchCampaign"
    ]
    assert launched["total"] == segment
    replay = await data(stack, LAUNCH, {"rule": rule, "key": "e2e-dormant-1"}, manager)
    assert replay["launchCampaign"]["id"] == launched["id"]
    done = await _completed(stack, launched["id"], manager)
    assert done == {
        "status": "COMPLETED",
        "total": segment,
        "processed": segment,
        "issued": segment,
        "skipped": 0,
    }

    # Run again (a new launch over the same segment): nobody gets a second coupon.
    again = (await data(stack, LAUNCH, {"rule": rule, "key": "e2e-dormant-2"}, manager))[
        "launchCampaign"
    ]
    rerun = await _completed(stack, again["id"], manager)
    assert (rerun["status"], rerun["issued"], rerun["skipped"]) == ("COMPLETED", 0, segment)

    # The shopper opens the mini-program (WeChat sign-in finds the demo member by UnionID).
    session = (await data(stack, SIGN_IN, {"code": f"dev:{unionid}"}))["signInWithWeChat"]
    assert session["created"] is False and session["member"]["id"] == "m_0002"
    me = (await data(stack, WELCOME_BACK, {}, session["token"]))["me"]["member"]
    assert me["id"] == "m_0002"
    welcome = [c for c in me["coupons"]["nodes"] if c["templateId"] == "ct_demo_welcome_back"]
    assert welcome == [
        {"templateId": "ct_demo_welcome_back", "source": f"campaign:{launched['id']}"}
    ]
