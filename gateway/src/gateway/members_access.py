"""Who may see and change which members: the coarse rules of the members slices, and the
one presentation rule (phone numbers masked for staff).

- A **customer** acts only on their own member: the token's `member_id`, followed to its
  survivor if it was merged. Customer operations never take a member id argument.
- An **associate** or **store manager** sees a member bound to their store (the exclusive
  guide's store) or active in it (home store, enrolment store); anything else is FORBIDDEN.
  That decision needs the member, so a look-up (memberByPhone, memberByQr, member(id),
  tagMember, untagMember, enrollMember) first reads the member, then refuses without
  returning any of it and before any change is sent.
- Managers manage the tag catalogue, preview segments and run campaigns for their own store
  (a segment rule's `homeStoreIds` must be exactly their store: the same rule member-svc
  applies to a manager's campaign, checked here before anything is sent).
- An **admin** sees every member whole, sets the tier policy, manages coupon templates,
  adjusts points, issues coupons and merges members.
- Anonymous callers get UNAUTHENTICATED, signed-in callers without the right FORBIDDEN.

Phone numbers: only the member themself and an admin see them whole; everyone else sees
them masked (+8613800138000 -> 138****8000). Other identities (WeChat ids, app accounts)
are masked the same way for staff.
"""

from __future__ import annotations

from collections.abc import Iterable

from graphql import GraphQLError

from gateway.auth import Principal, Role
from gateway.errors import forbidden, unauthenticated
from retail.common.v1 import common_pb2
from retail.member.v1 import member_pb2

STAFF = frozenset({Role.ASSOCIATE, Role.STORE_MANAGER})
_ACTOR_KIND = {
    Role.CUSTOMER: common_pb2.ACTOR_KIND_CUSTOMER,
    Role.ASSOCIATE: common_pb2.ACTOR_KIND_ASSOCIATE,
    Role.STORE_MANAGER: common_pb2.ACTOR_KIND_STORE_MANAGER,
    Role.KIOSK: common_pb2.ACTOR_KIND_KIOSK,
    Role.ADMIN: common_pb2.ACTOR_KIND_ADMIN,
}


def _role_error(principal: Principal, roles: Iterable[Role], action: str) -> GraphQLError | None:
    if not principal.is_authenticated:
        return unauthenticated(f"sign in to {action}")
    if principal.role in roles:
        return None
    return forbidden(f"a {principal.role.value} may not {action}")


def customer_error(principal: Principal, action: str) -> GraphQLError | None:
    return _role_error(principal, (Role.CUSTOMER,), action)


def staff_error(principal: Principal, action: str) -> GraphQLError | None:
    """Associates, store managers (of a store) and admins."""
    return _role_error(principal, (*STAFF, Role.ADMIN), action)


def store_staff_error(principal: Principal, action: str) -> GraphQLError | None:
    """Associates and store managers: acts done at a store (enrolment)."""
    return _role_error(principal, STAFF, action)


def manager_error(principal: Principal, action: str) -> GraphQLError | None:
    return _role_error(principal, (Role.STORE_MANAGER, Role.ADMIN), action)


def admin_error(principal: Principal, action: str) -> GraphQLError | None:
    return _role_error(principal, (Role.ADMIN,), action)


def member_stores(member: member_pb2.Member) -> set[str]:
    """The stores a member is bound to (guide's store) or active in (home, enrolment)."""
    stores = {member.home_store_id, member.join_store_id}
    if member.HasField("associate"):
        stores.add(member.associate.store_id)
    return stores - {""}


def member_error(principal: Principal, member: member_pb2.Member) -> GraphQLError | None:
    """None when `principal` may see `member` (already followed to its survivor)."""
    if principal.role is Role.ADMIN:
        return None
    if principal.role is Role.CUSTOMER:
        own = principal.member_id in (member.id, *member.merged_member_ids)
        return None if own else forbidden("a customer sees only their own member")
    if principal.role in STAFF:
        if principal.store_id in member_stores(member):
            return None
        # Nothing of the member (not even its id) is told to staff who may not see it.
        return forbidden(
            f"the member is neither bound to nor active in store {principal.store_id!r}"
        )
    return forbidden(f"a {principal.role.value} may not see members")


def segment_error(principal: Principal, home_store_ids: Iterable[str]) -> GraphQLError | None:
    """A manager's segment (preview or campaign) is their own store's members."""
    if principal.role is Role.STORE_MANAGER and set(home_store_ids) != {principal.store_id}:
        return forbidden(
            f"a store manager targets the members of store {principal.store_id!r} only: "
            f'set rule.homeStoreIds to ["{principal.store_id}"]'
        )
    return None


def campaign_error(principal: Principal, campaign: member_pb2.Campaign) -> GraphQLError | None:
    """A manager sees the campaigns of their own store's members."""
    if principal.role is Role.STORE_MANAGER and list(campaign.rule.home_store_ids) != [
        principal.store_id
    ]:
        return forbidden(f"campaign {campaign.id!r} is not for store {principal.store_id!r}")
    return None


def actor(principal: Principal, member_id: str | None = None) -> common_pb2.Actor:
    """The actor member-svc records: a customer as their (current) member, staff and admins
    by the token's subject, with the store they act for."""
    if principal.role is Role.CUSTOMER:
        return common_pb2.Actor(
            kind=common_pb2.ACTOR_KIND_CUSTOMER, id=member_id or principal.member_id or ""
        )
    return common_pb2.Actor(
        kind=_ACTOR_KIND.get(principal.role, common_pb2.ACTOR_KIND_UNSPECIFIED),
        id=principal.subject or principal.role.value,
        store_id=principal.store_id or "",
    )


def sees_whole(principal: Principal, member: member_pb2.Member) -> bool:
    """Only the member themself and an admin see identities unmasked."""
    if principal.role is Role.ADMIN:
        return True
    return principal.role is Role.CUSTOMER and principal.member_id in (
        member.id,
        *member.merged_member_ids,
    )


def mask_phone(value: str) -> str:
    """+8613800138000 -> 138****8000 (mainland mobiles without their country code); other
    E.164 numbers keep the country code and last four digits: +447700900123 -> +4477****0123."""
    if value.startswith("+86") and len(value) == 14:
        national = value[3:]
        return f"{national[:3]}****{national[-4:]}"
    if len(value) <= 8:
        return "****"
    return f"{value[:-8]}****{value[-4:]}"


def mask_identity(kind: int, value: str) -> str:
    if kind == member_pb2.IDENTITY_KIND_PHONE:
        return mask_phone(value)
    return f"{value[:4]}****" if len(value) > 8 else "****"
