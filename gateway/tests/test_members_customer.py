"""Customers and their member over real HTTP: WeChat sign-in (dev codes), me.member with
points, coupons, history, referrals and the member code, claiming coupons, invite codes,
binding an identity and merging the member that holds it. Refusals change nothing."""

from __future__ import annotations

import dataclasses
from collections import Counter

from gateway.auth import Role
from gateway.testing import GatewayClient, running_gateway
from gateway.tests.conftest import MemberWorld, token
from retail.member.v1 import member_pb2

from .members_support import (
    ADMIN,
    REQUEST_CODE,
    SIGN_IN,
    associate,
    customer,
    e164,
    enrolled,
    give_coupon,
    give_points,
    new_phone,
    new_unionid,
    ok,
    refused,
    sign_in,
    verification_code,
)

ME = """
{ me { role memberId member {
    id displayName tier phone inviteCode lifecycleStage joinChannel mergedMemberIds
    identities { kind value }
    tags { tagId addedBy storeId tag { name group } }
    guide { associateId storeId }
    points { available pending total expiringSoon { points expiresAt } }
    coupons { nodes { id status code source template { id name kind } } pageInfo { hasNextPage } }
    pointsHistory(first: 5) { nodes { delta kind balanceAfter } pageInfo { hasNextPage } }
    referrals { totalCount totalPoints nodes { refereeMemberId state } }
    memberCode { payload expiresAt }
} } }
"""

BIND = """
mutation ($kind: IdentityKind!, $value: String!, $code: String!) {
  bindIdentity(kind: $kind, value: $value, code: $code) { id phone identities { kind value } }
}
"""

MERGE = """
mutation ($kind: IdentityKind!, $value: String!, $code: String!) {
  mergeWithIdentity(kind: $kind, value: $value, code: $code) {
    id phone mergedMemberIds tags { tagId } guide { associateId storeId } homeStoreId
    points { available total }
    coupons { nodes { id templateId status } }
  }
}
"""

CLAIM = """
mutation ($key: String!, $templateId: ID, $claimCode: String, $storeId: ID) {
  claimCoupon(idempotencyKey: $key, templateId: $templateId, claimCode: $claimCode,
              storeId: $storeId) { id templateId memberId status code source validUntil }
}
"""


async def test_wechat_dev_sign_in_creates_the_member_once_and_its_token_works(
    members: GatewayClient, member_world: MemberWorld
) -> None:
    unionid = new_unionid()
    first = (await ok(members, SIGN_IN, {"code": f"dev:{unionid}"}))["signInWithWeChat"]
    again = (await ok(members, SIGN_IN, {"code": f"  dev:{unionid} "}))["signInWithWeChat"]
    assert first["created"] is True and again["created"] is False
    member_id = first["member"]["id"]
    assert again["member"]["id"] == member_id and member_id.startswith("m_")
    assert [c.method for c in members.calls.calls] == ["EnsureMember", "EnsureMember"]

    headers = {"Authorization": f"Bearer {first['token']}"}
    me = await ok(members, "{ me { role memberId member { id joinChannel } } }", None, headers)
    assert me["me"] == {
        "role": "CUSTOMER",
        "memberId": member_id,
        "member": {"id": member_id, "joinChannel": "MINI_PROGRAM"},
    }
    stored = await member_world.get(member_id)
    assert [(i.kind, i.value) for i in stored.identities] == [
        (member_pb2.IDENTITY_KIND_WECHAT_UNIONID, unionid)
    ]


async def test_sign_in_refuses_codes_that_are_not_dev_codes_before_any_call(
    members: GatewayClient,
) -> None:
    for code in ("031xYz0w3Nabc", "dev:", ""):
        error = await refused(members, SIGN_IN, {"code": code})
        assert error["code"] == "BAD_USER_INPUT"
        assert [v["field"] for v in error["fieldViolations"]] == ["code"]
    assert members.calls.calls == []
    # member-svc's own check of the UnionID, under the argument's name.
    error = await refused(members, SIGN_IN, {"code": "dev:has space"})
    assert error["code"] == "BAD_USER_INPUT"
    assert {v["field"] for v in error["fieldViolations"]} == {"code"}


async def test_sign_in_is_refused_when_wechat_is_not_configured(
    shared_members_gateway: GatewayClient,
) -> None:
    settings = dataclasses.replace(shared_members_gateway.settings, wechat_dev_login=False)
    async with running_gateway(settings) as production:
        error = await refused(production, SIGN_IN, {"code": f"dev:{new_unionid()}"})
        assert error == {
            "code": "FAILED_PRECONDITION",
            "reason": "NOT_IMPLEMENTED",
        }
        assert production.calls.calls == []


async def test_me_member_shows_points_coupons_history_and_whole_phone(
    members: GatewayClient, member_world: MemberWorld
) -> None:
    member_id, headers = await sign_in(members)
    phone = new_phone()
    code = await verification_code(members, headers, phone)
    bound = await ok(members, BIND, {"kind": "PHONE", "value": phone, "code": code}, headers)
    assert bound["bindIdentity"]["phone"] == e164(phone)  # the member sees it whole
    await give_points(member_world, member_id, 300)
    await give_coupon(member_world, member_id, "ct_demo_300_minus_50")
    claimed = await ok(members, CLAIM, {"key": "k1", "claimCode": "coffee8"}, headers)
    assert claimed["claimCoupon"]["templateId"] == "ct_demo_coffee8"

    members.calls.clear()
    me = (await ok(members, ME, None, headers))["me"]["member"]
    assert me["id"] == member_id and me["phone"] == e164(phone)
    assert {"kind": "PHONE", "value": e164(phone)} in me["identities"]
    assert me["inviteCode"] and me["lifecycleStage"] == "NEW"
    assert me["points"]["available"] == 300 and me["points"]["total"] == 300
    coupons = me["coupons"]["nodes"]
    assert {c["template"]["id"] for c in coupons} == {"ct_demo_300_minus_50", "ct_demo_coffee8"}
    assert all(c["status"] == "AVAILABLE" and c["code"] for c in coupons)
    assert {c["template"]["kind"] for c in coupons} == {"THRESHOLD", "PERCENT"}
    assert me["pointsHistory"]["nodes"] == [{"delta": 300, "kind": "adjust", "balanceAfter": 300}]
    assert me["referrals"] == {"totalCount": 0, "totalPoints": 0, "nodes": []}
    assert me["memberCode"]["payload"].endswith(f":{member_id}")
    # One call per kind: the member, its lists, and both coupons' templates in one batch.
    assert Counter(c.method for c in members.calls.calls) == {
        "BatchGetMembers": 1,
        "ListMemberCoupons": 1,
        "ListPointsLedger": 1,
        "ListReferrals": 1,
        "BatchGetCouponTemplates": 1,
    }


async def test_claims_are_idempotent_by_key_and_limits_are_failed_preconditions(
    members: GatewayClient, member_world: MemberWorld
) -> None:
    member_id, headers = await sign_in(members)
    variables = {"key": "claim-1", "templateId": "ct_demo_300_minus_50"}
    first = (await ok(members, CLAIM, variables, headers))["claimCoupon"]
    replay = (await ok(members, CLAIM, variables, headers))["claimCoupon"]
    # (member-svc answers a fresh coupon's validUntil in microseconds, a stored one in ms)
    assert {k: v for k, v in first.items() if k != "validUntil"} == {
        k: v for k, v in replay.items() if k != "validUntil"
    }
    assert first["memberId"] == member_id and first["source"] == "claim"

    limit = await refused(members, CLAIM, {**variables, "key": "claim-2"}, headers)
    assert limit["code"] == "FAILED_PRECONDITION" and limit["reason"] == "LIMIT_REACHED"
    both = await refused(
        members, CLAIM, {"key": "claim-3", "templateId": "ct_x", "claimCode": "COFFEE8"}, headers
    )
    assert both["code"] == "BAD_USER_INPUT"
    assert [v["field"] for v in both["fieldViolations"]] == ["templateId"]
    issue_only = await refused(
        members, CLAIM, {"key": "claim-5", "templateId": "ct_demo_welcome_back"}, headers
    )
    assert issue_only["code"] == "FAILED_PRECONDITION"
    assert issue_only["reason"] == "COUPON_NOT_APPLICABLE"
    assert [v["field"] for v in issue_only["fieldViolations"]] == ["templateId"]
    unknown = await refused(members, CLAIM, {"key": "claim-4", "templateId": "ct_nope"}, headers)
    assert unknown["code"] == "NOT_FOUND"
    no_key = await refused(members, CLAIM, {"key": " ", "claimCode": "COFFEE8"}, headers)
    assert [v["field"] for v in no_key["fieldViolations"]] == ["idempotencyKey"]
    coupons = await member_world.member.ListMemberCoupons(
        member_pb2.ListMemberCouponsRequest(member_id=member_id)
    )
    assert [c.id for c in coupons.coupons] == [first["id"]]  # nothing else was issued
    by_status = """{ me { member { available: coupons(status: AVAILABLE) { nodes { id } }
                                   redeemed: coupons(status: REDEEMED) { nodes { id } } } } }"""
    mine = (await ok(members, by_status, None, headers))["me"]["member"]
    assert mine == {"available": {"nodes": [{"id": first["id"]}]}, "redeemed": {"nodes": []}}


JOIN = """
mutation ($code: String!) { joinWithInviteCode(code: $code) {
  referrerMemberId member { id referredByMemberId } } }
"""


async def test_join_with_invite_code_and_the_referrer_sees_the_referral(
    members: GatewayClient,
) -> None:
    referrer_id, referrer = await sign_in(members)
    referee_id, referee = await sign_in(members)
    me = "{ me { member { inviteCode referrals { totalCount nodes { refereeMemberId state } } } } }"
    invite = (await ok(members, me, None, referrer))["me"]["member"]["inviteCode"]

    own = await refused(members, JOIN, {"code": invite}, referrer)
    assert own["code"] == "BAD_USER_INPUT"
    assert [v["field"] for v in own["fieldViolations"]] == ["code"]
    joined = (await ok(members, JOIN, {"code": invite.lower()}, referee))["joinWithInviteCode"]
    assert joined == {
        "referrerMemberId": referrer_id,
        "member": {"id": referee_id, "referredByMemberId": referrer_id},
    }
    referrals = (await ok(members, me, None, referrer))["me"]["member"]["referrals"]
    assert referrals == {
        "totalCount": 1,
        "nodes": [{"refereeMemberId": referee_id, "state": "JOINED"}],
    }
    unknown = await refused(members, JOIN, {"code": "NOSUCH99"}, referee)
    assert unknown["code"] == "NOT_FOUND"
    _, third = await sign_in(members)
    other = (await ok(members, me, None, third))["me"]["member"]["inviteCode"]
    second = await refused(members, JOIN, {"code": other}, referee)
    assert second["code"] == "FAILED_PRECONDITION" and second["reason"] == "LIMIT_REACHED"
    assert (await ok(members, me, None, referrer))["me"]["member"]["referrals"] == referrals


async def test_binding_a_phone_of_another_member_is_a_conflict_then_the_merge_brings_all(
    members: GatewayClient, member_world: MemberWorld
) -> None:
    phone = new_phone()
    till = await enrolled(member_world, phone, "st_001")
    await give_points(member_world, till.id, 450)
    coupon = await give_coupon(member_world, till.id, "ct_demo_300_minus_50")
    await member_world.member.TagMember(
        member_pb2.TagMemberRequest(member_id=till.id, tag_id="coffee_lover")
    )
    member_id, headers = await sign_in(members)
    code = await verification_code(members, headers, phone)

    conflict = await refused(
        members, BIND, {"kind": "PHONE", "value": phone, "code": code}, headers
    )
    assert conflict["code"] == "CONFLICT"
    assert conflict["reason"] == "IDENTITY_BOUND_ELSEWHERE"
    assert conflict["otherMemberId"] == till.id
    assert len((await member_world.get(member_id)).identities) == 1  # nothing bound

    wrong = await refused(
        members, MERGE, {"kind": "PHONE", "value": phone, "code": "000000"}, headers
    )
    assert wrong["code"] == "BAD_USER_INPUT" and wrong["reason"] == "VERIFICATION_FAILED"
    assert [v["field"] for v in wrong["fieldViolations"]] == ["code"]
    assert (await member_world.get(till.id)).status == member_pb2.MEMBER_STATUS_ACTIVE

    merged = (await ok(members, MERGE, {"kind": "PHONE", "value": phone, "code": code}, headers))[
        "mergeWithIdentity"
    ]
    assert merged["id"] == member_id  # the signed-in member survives
    assert merged["phone"] == e164(phone) and merged["mergedMemberIds"] == [till.id]
    assert merged["points"] == {"available": 450, "total": 450}
    assert merged["coupons"]["nodes"] == [
        {"id": coupon.id, "templateId": "ct_demo_300_minus_50", "status": "AVAILABLE"}
    ]
    assert merged["tags"] == [{"tagId": "coffee_lover"}] and merged["homeStoreId"] == "st_001"
    absorbed = await member_world.get(till.id)
    assert absorbed.status == member_pb2.MEMBER_STATUS_MERGED
    assert absorbed.merged_into_member_id == member_id

    # A token of the absorbed member now stands for the survivor.
    old = await ok(members, "{ me { member { id points { total } } } }", None, customer(till.id))
    assert old["me"]["member"] == {"id": member_id, "points": {"total": 450}}
    # Replayed (the phone is the survivor's own now): the same member, nothing more moves.
    replay = await ok(members, MERGE, {"kind": "PHONE", "value": phone, "code": code}, headers)
    assert replay["mergeWithIdentity"]["points"] == {"available": 450, "total": 450}


async def test_merge_with_an_identity_nobody_holds_binds_it_with_its_code(
    members: GatewayClient,
) -> None:
    member_id, headers = await sign_in(members)
    phone = new_phone()
    code = await verification_code(members, headers, phone)
    wrong = await refused(
        members, MERGE, {"kind": "PHONE", "value": phone, "code": "999999"}, headers
    )
    assert wrong["code"] == "BAD_USER_INPUT" and wrong["reason"] == "VERIFICATION_FAILED"
    merged = await ok(members, MERGE, {"kind": "PHONE", "value": phone, "code": code}, headers)
    assert merged["mergeWithIdentity"]["id"] == member_id
    assert merged["mergeWithIdentity"]["phone"] == e164(phone)


async def test_a_second_code_within_a_minute_is_rate_limited(members: GatewayClient) -> None:
    _, headers = await sign_in(members)
    phone = new_phone()
    await verification_code(members, headers, phone)
    error = await refused(members, REQUEST_CODE, {"kind": "PHONE", "value": phone}, headers)
    assert error["code"] == "RATE_LIMITED" and error["reason"] == "RATE_LIMITED"
    assert int(error["metadata"]["retry_after_seconds"]) > 0
    bad = await refused(members, REQUEST_CODE, {"kind": "PHONE", "value": "12"}, headers)
    assert bad["code"] == "BAD_USER_INPUT"
    assert [v["field"] for v in bad["fieldViolations"]] == ["value"]


async def test_customer_operations_refuse_anyone_but_a_customer_before_any_call(
    members: GatewayClient,
) -> None:
    variables = {"key": "k", "claimCode": "COFFEE8"}
    anonymous = await refused(members, CLAIM, variables)
    assert anonymous["code"] == "UNAUTHENTICATED"
    for headers in (associate(), ADMIN, token(Role.KIOSK, store_id="st_001", device_id="k_1")):
        assert (await refused(members, CLAIM, variables, headers))["code"] == "FORBIDDEN"
        error = await refused(members, BIND, {"kind": "PHONE", "value": "1", "code": "1"}, headers)
        assert error["code"] == "FORBIDDEN"
    assert members.calls.calls == []
    staff_me = await ok(members, "{ me { role member { id } } }", None, associate())
    assert staff_me["me"] == {"role": "ASSOCIATE", "member": None}
    assert members.calls.calls == []
