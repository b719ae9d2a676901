"""What every area's RPC mixin shares: the books, the clock and the member lookups."""

from __future__ import annotations

from datetime import datetime

import grpc

from member_svc.books import Books
from member_svc.domain import Member, MemberStatus
from retail.common.v1 import common_pb2
from retail.member.v1 import member_pb2_grpc
from retail_kit.errors import ServiceError, not_found
from retail_kit.validation import require_id

MAX_MERGE_HOPS = 8


def member_merged(member: Member) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.FAILED_PRECONDITION,
        common_pb2.ERROR_REASON_MEMBER_MERGED,
        f"member {member.id!r} was merged into {member.merged_into!r}",
        metadata={"member_id": member.id, "merged_into": member.merged_into or ""},
    )


class MemberRpcBase(member_pb2_grpc.MemberServiceServicer):
    def __init__(self, books: Books) -> None:
        self.books = books

    def now(self) -> datetime:
        return self.books.clock()

    async def require_member(self, member_id: str, field: str = "member_id") -> Member:
        """The member by id, as stored (MERGED ones too), or NOT_FOUND naming the id."""
        member = await self.books.members.get_member(require_id(field, member_id))
        if member is None:
            raise not_found("member", member_id)
        return member

    async def resolve_member(self, member_id: str, field: str = "member_id") -> Member:
        """The member that now stands for `member_id`: merged members are followed to their
        survivor, so an order placed under an absorbed id still finds its points."""
        member = await self.require_member(member_id, field)
        for _ in range(MAX_MERGE_HOPS):
            if member.status is not MemberStatus.MERGED or member.merged_into is None:
                return member
            member = await self.require_member(member.merged_into, field)
        raise member_merged(member)  # pragma: no cover - merge chains are short
