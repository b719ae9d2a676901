"""Inventory slice for store staff: levels, the adjustment trail, adjustments, safety stock.

Who may do what is decided in authz (before any call); what a level is (available = on hand
- reserved - safety stock), whether a delta fits its reason, and idempotency are store-svc's.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime

import grpc
import strawberry

from gateway import authz
from gateway.context import GatewayInfo
from gateway.errors import bad_user_input, from_rpc_error
from gateway.fields import resolver
from retail.store.v1 import store_pb2
from retail_kit.errors import FieldViolation
from retail_kit.paging import MAX_PAGE_SIZE
from retail_kit.validation import id_violation

_INVENTORY_FIELDS = {"page_size": "first", "page_token": "after"}
"""Store request fields whose GraphQL names are not just the camelCase of the proto's."""


@strawberry.enum(description="Why stock on hand changed.")
class AdjustmentReason(enum.Enum):
    RECEIVE = "receive"
    COUNT_CORRECTION = "count_correction"
    DAMAGE = "damage"
    TILL_SALE = "till_sale"


_REASON_TO_PROTO = {
    AdjustmentReason.RECEIVE: store_pb2.ADJUSTMENT_REASON_RECEIVE,
    AdjustmentReason.COUNT_CORRECTION: store_pb2.ADJUSTMENT_REASON_COUNT_CORRECTION,
    AdjustmentReason.DAMAGE: store_pb2.ADJUSTMENT_REASON_DAMAGE,
    AdjustmentReason.TILL_SALE: store_pb2.ADJUSTMENT_REASON_TILL_SALE,
}
_REASON_FROM_PROTO = {number: reason for reason, number in _REASON_TO_PROTO.items()}


@strawberry.type(description="Stock of one SKU in one store.")
class InventoryLevel:
    store_id: strawberry.ID
    sku_id: strawberry.ID
    on_hand: int
    reserved: int = strawberry.field(description="Held for orders awaiting pickup.")
    safety_stock: int = strawberry.field(description="Kept back from sale.")
    available: int = strawberry.field(description="onHand - reserved - safetyStock, at least 0.")

    @classmethod
    def from_proto(cls, level: store_pb2.InventoryLevel) -> InventoryLevel:
        return cls(
            store_id=strawberry.ID(level.store_id),
            sku_id=strawberry.ID(level.sku_id),
            on_hand=level.on_hand,
            reserved=level.reserved,
            safety_stock=level.safety_stock,
            available=level.available,
        )


@strawberry.type(description="One entry of a (store, SKU) audit trail.")
class InventoryAdjustment:
    id: strawberry.ID = strawberry.field(description="The idempotency key that made it.")
    store_id: strawberry.ID
    sku_id: strawberry.ID
    delta: int
    reason: AdjustmentReason | None
    actor_id: str
    note: str
    on_hand_after: int
    sequence: int = strawberry.field(description="Position in the trail, from 1.")
    create_time: datetime

    @classmethod
    def from_proto(cls, entry: store_pb2.InventoryAdjustment) -> InventoryAdjustment:
        return cls(
            id=strawberry.ID(entry.id),
            store_id=strawberry.ID(entry.store_id),
            sku_id=strawberry.ID(entry.sku_id),
            delta=entry.delta,
            reason=_REASON_FROM_PROTO.get(entry.reason),
            actor_id=entry.actor_id,
            note=entry.note,
            on_hand_after=entry.on_hand_after,
            sequence=entry.sequence,
            create_time=entry.create_time.ToDatetime(tzinfo=UTC),
        )


@strawberry.type
class InventoryAdjustmentEdge:
    cursor: str | None = strawberry.field(
        description="Set on the last edge of a page that has a next one (pass it as `after`)."
    )
    node: InventoryAdjustment


@strawberry.type
class InventoryPageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class InventoryAdjustmentConnection:
    edges: list[InventoryAdjustmentEdge]
    page_info: InventoryPageInfo


def _check_ids(**ids: str) -> None:
    problems = [v for field, value in ids.items() if (v := id_violation(field, value))]
    if problems:
        raise bad_user_input(*problems)


def _actor(info: GatewayInfo) -> str:
    principal = info.context.principal
    return principal.subject or principal.role.value


@strawberry.type
class InventoryQuery:
    @resolver(
        description="Stock levels of SKUs in a store (SKUs it never stocked are left out). "
        "Staff of that store, or admin."
    )
    async def store_inventory(
        self, info: GatewayInfo, store_id: strawberry.ID, sku_ids: list[strawberry.ID]
    ) -> list[InventoryLevel]:
        authz.require(authz.inventory_error(info.context.principal, store_id, "read inventory"))
        _check_ids(storeId=store_id)
        request = store_pb2.BatchGetInventoryRequest(store_id=store_id, sku_ids=sku_ids)
        try:
            reply = await info.context.clients.store.BatchGetInventory(request)
        except grpc.aio.AioRpcError as error:
            raise from_rpc_error(error, service="store") from None
        return [InventoryLevel.from_proto(level) for level in reply.levels]

    @resolver(description="The audit trail of one SKU in a store, newest first. Staff or admin.")
    async def inventory_adjustments(
        self,
        info: GatewayInfo,
        store_id: strawberry.ID,
        sku_id: strawberry.ID,
        first: int = 20,
        after: str | None = None,
    ) -> InventoryAdjustmentConnection:
        authz.require(
            authz.inventory_error(info.context.principal, store_id, "read inventory adjustments")
        )
        if not 1 <= first <= MAX_PAGE_SIZE:
            raise bad_user_input(
                FieldViolation("first", f"must be between 1 and {MAX_PAGE_SIZE}, got {first}")
            )
        request = store_pb2.ListInventoryAdjustmentsRequest(
            store_id=store_id, sku_id=sku_id, page_size=first, page_token=after or ""
        )
        try:
            reply = await info.context.clients.store.ListInventoryAdjustments(request)
        except grpc.aio.AioRpcError as error:
            raise from_rpc_error(error, service="store", field_names=_INVENTORY_FIELDS) from None
        end_cursor = reply.next_page_token or None
        last = len(reply.adjustments) - 1
        return InventoryAdjustmentConnection(
            edges=[
                InventoryAdjustmentEdge(
                    cursor=end_cursor if i == last else None,
                    node=InventoryAdjustment.from_proto(entry),
                )
                for i, entry in enumerate(reply.adjustments)
            ],
            page_info=InventoryPageInfo(
                has_next_page=end_cursor is not None, end_cursor=end_cursor
            ),
        )


@strawberry.type
class InventoryMutation:
    @resolver(
        description="Changes stock on hand: RECEIVE adds, DAMAGE and TILL_SALE remove, "
        "COUNT_CORRECTION either way. A retry with the same idempotencyKey changes nothing "
        "and answers the same level. Staff of that store, or admin; the actor is the caller."
    )
    async def adjust_inventory(
        self,
        info: GatewayInfo,
        store_id: strawberry.ID,
        sku_id: strawberry.ID,
        delta: int,
        reason: AdjustmentReason,
        idempotency_key: str,
        note: str = "",
    ) -> InventoryLevel:
        authz.require(authz.inventory_error(info.context.principal, store_id, "adjust inventory"))
        request = store_pb2.AdjustInventoryRequest(
            store_id=store_id,
            sku_id=sku_id,
            delta=delta,
            reason=_REASON_TO_PROTO[reason],
            actor_id=_actor(info),
            idempotency_key=idempotency_key,
            note=note,
        )
        try:
            reply = await info.context.clients.store.AdjustInventory(request)
        except grpc.aio.AioRpcError as error:
            raise from_rpc_error(error, service="store", field_names=_INVENTORY_FIELDS) from None
        return InventoryLevel.from_proto(reply.level)

    @resolver(description="Sets the stock kept back from sale. The store's manager, or admin.")
    async def set_safety_stock(
        self,
        info: GatewayInfo,
        store_id: strawberry.ID,
        sku_id: strawberry.ID,
        safety_stock: int,
    ) -> InventoryLevel:
        authz.require(authz.safety_stock_error(info.context.principal, store_id))
        request = store_pb2.SetSafetyStockRequest(
            store_id=store_id, sku_id=sku_id, safety_stock=safety_stock, actor_id=_actor(info)
        )
        try:
            reply = await info.context.clients.store.SetSafetyStock(request)
        except grpc.aio.AioRpcError as error:
            raise from_rpc_error(error, service="store", field_names=_INVENTORY_FIELDS) from None
        return InventoryLevel.from_proto(reply.level)
