"""ADJUSTMENT_REASON_RETURN over real gRPC: goods a customer returned are put back on sale
(order-svc's ReturnItems restocks the receiving store with it, key "<return>:<sku>").

A return adds stock like a receipt, is written to the audit trail with its reason and
actor, applies once per idempotency key, and can never remove stock."""

from __future__ import annotations

import asyncio
import itertools

import grpc
import pytest

from retail.store.v1 import store_pb2
from retail_kit.errors import RpcErrorDetails

from .conftest import Service, store_message

_numbers = itertools.count(1)


async def new_store(service: Service) -> str:
    number = next(_numbers)
    store_id = f"st_ret_{number:03d}"
    await service.stub.CreateStore(
        store_pb2.CreateStoreRequest(store=store_message(store_id, f"RET{number:03d}"))
    )
    return store_id


async def level(service: Service, store_id: str, sku_id: str) -> store_pb2.InventoryLevel:
    reply = await service.stub.BatchGetInventory(
        store_pb2.BatchGetInventoryRequest(store_id=store_id, sku_ids=[sku_id])
    )
    return reply.levels[0]


async def failure(call: object) -> RpcErrorDetails:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    return RpcErrorDetails.from_rpc_error(caught.value)


def return_request(
    store_id: str, sku_id: str, delta: int, key: str
) -> store_pb2.AdjustInventoryRequest:
    return store_pb2.AdjustInventoryRequest(
        store_id=store_id,
        sku_id=sku_id,
        delta=delta,
        reason=store_pb2.ADJUSTMENT_REASON_RETURN,
        actor_id="as_ret_1",
        note="return r1 of order o_1",
        idempotency_key=key,
    )


async def test_a_return_adds_stock_and_is_audited_with_its_reason(service: Service) -> None:
    store_id = await new_store(service)
    sku = "p_0001_s1"
    await service.stub.AdjustInventory(
        store_pb2.AdjustInventoryRequest(
            store_id=store_id,
            sku_id=sku,
            delta=5,
            reason=store_pb2.ADJUSTMENT_REASON_RECEIVE,
            actor_id="as_ret_1",
            idempotency_key=f"recv-{store_id}",
        )
    )
    reply = await service.stub.AdjustInventory(
        return_request(store_id, sku, 2, f"r-{store_id}:{sku}")
    )
    assert (reply.level.on_hand, reply.level.available) == (7, 7)
    assert reply.adjustment.reason == store_pb2.ADJUSTMENT_REASON_RETURN
    assert reply.adjustment.delta == 2 and reply.adjustment.on_hand_after == 7

    trail = await service.stub.ListInventoryAdjustments(
        store_pb2.ListInventoryAdjustmentsRequest(store_id=store_id, sku_id=sku, page_size=10)
    )
    newest = trail.adjustments[0]
    assert newest.reason == store_pb2.ADJUSTMENT_REASON_RETURN
    assert (newest.delta, newest.on_hand_after, newest.actor_id) == (2, 7, "as_ret_1")
    assert newest.note == "return r1 of order o_1"


async def test_a_return_to_a_store_that_never_stocked_the_sku_creates_its_stock(
    service: Service,
) -> None:
    store_id = await new_store(service)
    sku = "p_0002_s1"
    before = await service.stub.BatchGetInventory(
        store_pb2.BatchGetInventoryRequest(store_id=store_id, sku_ids=[sku])
    )
    assert not before.levels
    reply = await service.stub.AdjustInventory(return_request(store_id, sku, 1, f"r-{store_id}"))
    assert reply.level.on_hand == 1
    assert (await level(service, store_id, sku)).available == 1


async def test_replays_of_a_return_restock_once(service: Service) -> None:
    store_id = await new_store(service)
    sku = "p_0003_s1"
    request = return_request(store_id, sku, 3, f"r-{store_id}-dup")
    replies = await asyncio.gather(*(service.stub.AdjustInventory(request) for _ in range(10)))
    assert {r.level.on_hand for r in replies} == {3}
    assert (await service.stub.AdjustInventory(request)).level.on_hand == 3
    assert (await level(service, store_id, sku)).on_hand == 3
    trail = await service.stub.ListInventoryAdjustments(
        store_pb2.ListInventoryAdjustmentsRequest(store_id=store_id, sku_id=sku, page_size=10)
    )
    assert [a.delta for a in trail.adjustments] == [3]


async def test_a_return_never_removes_stock(service: Service) -> None:
    store_id = await new_store(service)
    sku = "p_0004_s1"
    await service.stub.AdjustInventory(return_request(store_id, sku, 4, f"r-{store_id}-a"))
    details = await failure(
        service.stub.AdjustInventory(return_request(store_id, sku, -1, f"r-{store_id}-b"))
    )
    assert details.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in details.violations] == ["delta"]
    assert "positive" in details.violations[0].description
    assert (await level(service, store_id, sku)).on_hand == 4
