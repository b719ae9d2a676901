"""member-svc calls for the members slices: per-request DataLoaders (coupon templates,
campaigns, the tag catalogue), one call helper that maps member-svc's errors, and the
survivor of a merged member id.

Error mapping (on top of errors.from_rpc_error, by the ErrorInfo reason, so a client can
switch on `extensions.code` and read `extensions.reason`):

- IDENTITY_BOUND_ELSEWHERE -> CONFLICT with `otherMemberId` (the member holding the
  identity; member-svc names it only to a caller who proved the identity with its code), so
  the client can offer a merge;
- INSUFFICIENT_POINTS, LIMIT_REACHED, COUPON_NOT_APPLICABLE, EXPIRED -> FAILED_PRECONDITION;
- VERIFICATION_FAILED -> BAD_USER_INPUT;
- (errors.py) RESOURCE_EXHAUSTED, e.g. RATE_LIMITED verification codes -> RATE_LIMITED with
  `metadata.retry_after_seconds`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import grpc
from graphql import GraphQLError
from strawberry.dataloader import DataLoader

from gateway.clients import ServiceClients
from gateway.errors import ErrorCode, from_rpc_error, graphql_error, not_found
from retail.member.v1 import member_pb2
from retail_kit.validation import MAX_BATCH_SIZE

_Req = TypeVar("_Req")
_Resp = TypeVar("_Resp")
_T = TypeVar("_T")

MEMBER_FIELDS = {"page_size": "first", "page_token": "after"}
"""Request fields every member call names as the GraphQL arguments do."""

_CODE_BY_REASON = {
    "IDENTITY_BOUND_ELSEWHERE": ErrorCode.CONFLICT,
    "INSUFFICIENT_POINTS": ErrorCode.FAILED_PRECONDITION,
    "LIMIT_REACHED": ErrorCode.FAILED_PRECONDITION,
    "COUPON_NOT_APPLICABLE": ErrorCode.FAILED_PRECONDITION,
    "EXPIRED": ErrorCode.FAILED_PRECONDITION,
    "VERIFICATION_FAILED": ErrorCode.BAD_USER_INPUT,
}
MAX_MERGE_HOPS = 8
ALL_TAGS = "*"


def member_error(
    error: grpc.aio.AioRpcError, field_names: Mapping[str, str] | None = None
) -> GraphQLError:
    names = {**MEMBER_FIELDS, **(field_names or {})}
    mapped = from_rpc_error(error, service="member", field_names=names)
    extensions = dict(mapped.extensions or {})
    code = _CODE_BY_REASON.get(str(extensions.get("reason", "")))
    if code is None:
        return mapped
    extensions["code"] = code.value
    if extensions["reason"] == "IDENTITY_BOUND_ELSEWHERE":
        extensions["otherMemberId"] = extensions.get("metadata", {}).get("member_id")
    return GraphQLError(mapped.message, extensions=extensions)


async def call(
    rpc: Callable[[_Req], Awaitable[_Resp]],
    request: _Req,
    field_names: Mapping[str, str] | None = None,
) -> _Resp:
    """One member-svc call; a failure becomes the GraphQL error the client sees."""
    try:
        return await rpc(request)
    except grpc.aio.AioRpcError as error:
        raise member_error(error, field_names) from None


@dataclass(frozen=True, slots=True)
class MembershipLoaders:
    """Fresh per request (loaders.build_loaders), like every other loader."""

    coupon_template: DataLoader[str, member_pb2.CouponTemplate]
    campaign: DataLoader[str, member_pb2.Campaign]
    tag_catalogue: DataLoader[str, Sequence[member_pb2.TagDefinition]]
    """One key, ALL_TAGS: the whole catalogue is one ListTagDefinitions call."""

    async def tag(self, tag_id: str) -> member_pb2.TagDefinition | None:
        tags = await self.tag_catalogue.load(ALL_TAGS)
        return next((t for t in tags if t.id == tag_id), None)


async def _batch(
    ids: Sequence[str],
    fetch: Callable[[list[str]], Awaitable[Sequence[_T]]],
    key: Callable[[_T], str],
    entity: str,
) -> list[_T | BaseException]:
    items = await fetch(list(ids))
    found = {key(item): item for item in items}
    return [found.get(i) or not_found(entity, i) for i in ids]


def build_membership_loaders(clients: ServiceClients) -> MembershipLoaders:
    member = clients.member

    async def load_templates(ids: list[str]) -> list[member_pb2.CouponTemplate | BaseException]:
        async def fetch(batch: list[str]) -> Sequence[member_pb2.CouponTemplate]:
            request = member_pb2.BatchGetCouponTemplatesRequest(ids=batch)
            return (await call(member.BatchGetCouponTemplates, request)).templates

        return await _batch(ids, fetch, lambda t: t.id, "coupon template")

    async def load_campaigns(ids: list[str]) -> list[member_pb2.Campaign | BaseException]:
        async def fetch(batch: list[str]) -> Sequence[member_pb2.Campaign]:
            request = member_pb2.BatchGetCampaignsRequest(ids=batch)
            return (await call(member.BatchGetCampaigns, request)).campaigns

        return await _batch(ids, fetch, lambda c: c.id, "campaign")

    async def load_tags(keys: list[str]) -> list[Sequence[member_pb2.TagDefinition]]:
        reply = await call(member.ListTagDefinitions, member_pb2.ListTagDefinitionsRequest())
        return [list(reply.tags) for _ in keys]

    return MembershipLoaders(
        coupon_template=DataLoader(load_fn=load_templates, max_batch_size=MAX_BATCH_SIZE),
        campaign=DataLoader(load_fn=load_campaigns, max_batch_size=MAX_BATCH_SIZE),
        tag_catalogue=DataLoader(load_fn=load_tags),
    )


async def survivor(
    load: Callable[[str], Awaitable[member_pb2.Member]], member_id: str
) -> member_pb2.Member:
    """The member that stands for `member_id` now: a merged member's `merged_into` is
    followed (through the member DataLoader, so it is batched with the request's others)."""
    member = await load(member_id)
    for _ in range(MAX_MERGE_HOPS):
        if member.status != member_pb2.MEMBER_STATUS_MERGED or not member.merged_into_member_id:
            return member
        member = await load(member.merged_into_member_id)
    raise graphql_error(ErrorCode.INTERNAL, "internal error")  # merge chains are short
