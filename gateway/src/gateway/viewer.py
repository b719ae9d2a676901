"""Viewer slice: who the caller is, as the gateway authenticated them."""

from __future__ import annotations

import strawberry

from gateway.auth import Role
from gateway.context import GatewayInfo
from gateway.fields import resolver
from gateway.members import viewer_member
from gateway.members_types import MyMember

# Registers auth's Role as the GraphQL enum in place (values print as CUSTOMER, KIOSK, ...).
strawberry.enum(Role, name="Role", description="What the caller may do.")


@strawberry.type(description="The authenticated caller (role ANONYMOUS without a token).")
class Viewer:
    role: Role
    subject: str | None
    member_id: strawberry.ID | None
    store_id: strawberry.ID | None
    device_id: strawberry.ID | None

    @resolver(
        description="The signed-in customer's own member (a merged one answers its survivor); "
        "null for any other caller."
    )
    async def member(self, info: GatewayInfo) -> MyMember | None:
        return await viewer_member(info)


@strawberry.type
class ViewerQuery:
    @resolver(description="The caller: role and the member, store or device it acts for.")
    def me(self, info: GatewayInfo) -> Viewer:
        principal = info.context.principal

        def as_id(value: str | None) -> strawberry.ID | None:
            return strawberry.ID(value) if value else None

        return Viewer(
            role=principal.role,
            subject=principal.subject or None,
            member_id=as_id(principal.member_id),
            store_id=as_id(principal.store_id),
            device_id=as_id(principal.device_id),
        )
