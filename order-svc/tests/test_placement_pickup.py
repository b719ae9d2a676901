"""PlaceOrder for pickup in store over real gRPC: priced lines, stock held, totals."""

from __future__ import annotations

from retail.order.v1 import order_pb2

from .conftest import (
    PICKUP_STORE,
    OrderService,
    Stack,
    assert_reconciles,
    level,
    new_member,
    pickup_request,
    set_stock,
)


async def test_pickup_order_holds_stock_and_awaits_payment(
    stack: Stack, orders: OrderService
) -> None:
    sku_a, sku_b = stack.take_skus(2)
    await set_stock(stack, PICKUP_STORE, sku_a, 10)
    await set_stock(stack, PICKUP_STORE, sku_b, 10)
    member = await new_member(stack)
    reply = await orders.stub.PlaceOrder(pickup_request(member, [(sku_a, 2), (sku_b, 1)]))
    order = reply.order
    assert order.status == order_pb2.ORDER_STATUS_AWAITING_PAYMENT
    assert [line.sku_id for line in order.lines] == [sku_a, sku_b]
    assert_reconciles(order)
    assert (await level(stack, PICKUP_STORE, sku_a)).reserved == 2
    assert (await level(stack, PICKUP_STORE, sku_b)).reserved == 1
