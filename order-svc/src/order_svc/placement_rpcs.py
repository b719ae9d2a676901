"""OrderService RPCs for placing and reading orders: PlaceOrder, PreviewOrder, GetOrder,
BatchGetOrders, ListOrders."""

from __future__ import annotations

import grpc

from order_svc import pricing, saga
from order_svc.convert import (
    fulfilment_to_proto,
    line_to_proto,
    money,
    order_cursor,
    order_cursor_key,
    order_to_proto,
    timestamp,
)
from order_svc.domain import Fulfilment, OrderStatus
from order_svc.errors import relay
from order_svc.pricing import Transient
from order_svc.rpc_base import OrderRpcBase
from retail.member.v1 import member_pb2
from retail.order.v1 import order_pb2
from retail_kit.errors import Context, FieldViolation, invalid_argument
from retail_kit.paging import decode_page_token, encode_page_token, page_size, query_fingerprint
from retail_kit.validation import batch_ids, require_id

# A customer's list leaves out attempts that never became an order (GetOrder shows them).
HIDDEN_FROM_LISTS = (OrderStatus.FAILED,)


def _owner(request: order_pb2.ListOrdersRequest) -> tuple[str, str]:
    """("member_id" | "store_id", value): exactly one of the two must be given."""
    candidates = (("member_id", request.member_id), ("store_id", request.store_id))
    given = [(field, value) for field, value in candidates if value]
    if len(given) != 1:
        problem = "is required" if not given else "cannot be combined"
        raise invalid_argument(
            FieldViolation("member_id", f"exactly one of member_id and store_id {problem}"),
            FieldViolation("store_id", f"exactly one of member_id and store_id {problem}"),
        )
    field, value = given[0]
    return field, require_id(field, value)


class PlacementRpcs(OrderRpcBase):
    async def PlaceOrder(
        self, request: order_pb2.PlaceOrderRequest, context: Context
    ) -> order_pb2.PlaceOrderResponse:
        order = await saga.place_order(self.services, request)
        return order_pb2.PlaceOrderResponse(order=order_to_proto(order))

    async def PreviewOrder(
        self, request: order_pb2.PreviewOrderRequest, context: Context
    ) -> order_pb2.PreviewOrderResponse:
        placed = pricing.validate(request.order, preview=True)
        try:
            result = await pricing.preview(self.services, placed, self.now())
        except Transient as failure:
            raise relay(failure.error, service=failure.service) from None
        currency = result.currency
        reply = order_pb2.PreviewOrderResponse(
            lines=[line_to_proto(line, currency) for line in result.lines],
            subtotal=money(result.subtotal, currency),
            coupon_discount=money(result.coupon_discount, currency),
            points_redeemed=result.points_redeemed,
            points_discount=money(result.points_discount, currency),
            total=money(result.total, currency),
            fulfilments=[
                fulfilment_to_proto(Fulfilment(f"f{n}", planned.store_id, ""))
                for n, planned in enumerate(result.fulfilments, start=1)
            ],
            points_to_earn=result.points_to_earn,
        )
        if result.ready_by is not None:
            reply.ready_by_time.CopyFrom(timestamp(result.ready_by))
        return reply

    async def GetOrder(
        self, request: order_pb2.GetOrderRequest, context: Context
    ) -> order_pb2.GetOrderResponse:
        order = await self.require_order(request.id, "id")
        return order_pb2.GetOrderResponse(order=order_to_proto(order))

    async def BatchGetOrders(
        self, request: order_pb2.BatchGetOrdersRequest, context: Context
    ) -> order_pb2.BatchGetOrdersResponse:
        ids = batch_ids("ids", request.ids)
        found = await self.services.repository.get_orders(ids) if ids else {}
        return order_pb2.BatchGetOrdersResponse(
            orders=[order_to_proto(found[i]) for i in ids if i in found],
            missing_ids=[i for i in ids if i not in found],
        )

    async def ListOrders(
        self, request: order_pb2.ListOrdersRequest, context: Context
    ) -> order_pb2.ListOrdersResponse:
        """A member's orders include those placed under the ids of members merged into it
        (member-svc's merged_member_ids, read per call). FAILED attempts are left out."""
        field, owner_id = _owner(request)
        size = page_size(request.page_size)
        fingerprint = query_fingerprint("ListOrders", field, owner_id)
        before = order_cursor(decode_page_token(request.page_token, fingerprint))
        member_ids: list[str] | None = None
        if field == "member_id":
            member_ids = [owner_id, *await self._merged_ids(owner_id)]
        # One extra row tells whether another page exists without a count query.
        orders = await self.services.repository.list_orders(
            member_ids=member_ids,
            store_id=owner_id if field == "store_id" else None,
            limit=size + 1,
            before=before,
            exclude_statuses=HIDDEN_FROM_LISTS,
        )
        page, more = orders[:size], len(orders) > size
        return order_pb2.ListOrdersResponse(
            orders=[order_to_proto(o) for o in page],
            next_page_token=(
                encode_page_token(fingerprint, order_cursor_key(page[-1])) if more else ""
            ),
        )

    async def _merged_ids(self, member_id: str) -> list[str]:
        """The ids merged into the member; none for an id member-svc does not know (orders
        may name members it never had, e.g. data loaded by hand)."""
        request = member_pb2.GetMemberRequest(id=member_id)
        try:
            reply = await pricing.rpc(
                "member", lambda: self.services.clients.member.GetMember(request)
            )
        except grpc.aio.AioRpcError as error:
            if error.code() is grpc.StatusCode.NOT_FOUND:
                return []
            raise relay(error, service="member") from None
        except Transient as failure:
            raise relay(failure.error, service=failure.service) from None
        return [i for i in reply.member.merged_member_ids if i != member_id]
