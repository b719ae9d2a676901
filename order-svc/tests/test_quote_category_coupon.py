"""A coupon scoped to a category applies in orders: catalog's QuotePrices names each SKU's
category and its ancestors, order-svc records them on the line and sends them to member-svc,
and a scope on a top-level category covers its whole subtree. The discount goes to the
eligible lines only; an order with no eligible line is refused and changes nothing."""

from __future__ import annotations

import uuid

import grpc

from catalog_svc.demo_data import demo_catalog
from order_svc.repository import ORDERS
from retail.common.v1 import common_pb2
from retail.member.v1 import member_pb2
from retail.order.v1 import order_pb2

from .conftest import (
    ADMIN,
    PICKUP_STORE,
    OrderService,
    Stack,
    coupon,
    error_of,
    level,
    new_member,
    pickup_request,
    set_stock,
)

AMOUNT_OFF = 300
MAX_TAKEN = 20


def category_paths() -> dict[str, list[str]]:
    """SKU id -> its product's category and ancestors, nearest first (from the demo data)."""
    catalog = demo_catalog()
    parents = {c.id: c.parent_id for c in catalog.categories}
    paths: dict[str, list[str]] = {}
    for product in catalog.products:
        path = [product.category_id]
        while parents.get(path[-1]):
            path.append(parents[path[-1]] or "")
        for sku in product.skus:
            paths[sku.id] = path
    return paths


async def scoped_template(stack: Stack, category_id: str) -> str:
    reply = await stack.member.CreateCouponTemplate(
        member_pb2.CreateCouponTemplateRequest(
            template=member_pb2.CouponTemplate(
                name=common_pb2.LocalizedText(values={"zh-Hans": "品类立减3元", "en": "3 off"}),
                kind=member_pb2.COUPON_KIND_FIXED,
                amount_off=common_pb2.Money(amount=AMOUNT_OFF, currency="CNY"),
                valid_days=30,
                per_member_limit=10,
                combinable_with_points=True,
                status=member_pb2.COUPON_TEMPLATE_STATUS_ACTIVE,
                scope=member_pb2.CouponScope(category_ids=[category_id]),
            ),
            request_id=f"order-tests-category-{uuid.uuid4().hex}",
            actor=ADMIN,
        )
    )
    return reply.template.id


async def issue(stack: Stack, template_id: str, member_id: str) -> str:
    reply = await stack.member.IssueCoupon(
        member_pb2.IssueCouponRequest(
            template_id=template_id,
            member_id=member_id,
            reference=f"test-{uuid.uuid4().hex}",
            actor=ADMIN,
        )
    )
    return reply.coupon.id


async def test_a_coupon_scoped_to_a_category_applies_to_its_subtree(
    stack: Stack, orders: OrderService
) -> None:
    paths = category_paths()
    # A SKU whose category sits below a top-level category (every demo product's does),
    # and one from another tree (SKUs are taken one by one: they are a shared budget).
    (inside,) = stack.take_skus(1)
    assert len(paths[inside]) >= 2
    root = paths[inside][-1]
    for _ in range(MAX_TAKEN):
        (outside,) = stack.take_skus(1)
        if paths[outside][-1] != root:
            break
    else:
        raise AssertionError("no SKU of another top-level category")
    for sku in (inside, outside):
        await set_stock(stack, PICKUP_STORE, sku, 5)
    template = await scoped_template(stack, root)
    member = await new_member(stack)
    first = await issue(stack, template, member)

    order = (
        await orders.stub.PlaceOrder(
            pickup_request(member, [(inside, 2), (outside, 1)], coupon_id=first)
        )
    ).order
    assert order.status == order_pb2.ORDER_STATUS_AWAITING_PAYMENT
    assert order.coupon_id == first and order.coupon_discount.amount == AMOUNT_OFF
    by_sku = {line.sku_id: line for line in order.lines}
    assert by_sku[inside].coupon_discount.amount == AMOUNT_OFF
    assert by_sku[outside].coupon_discount.amount == 0
    stored = await orders.database[ORDERS].find_one({"_id": order.id})
    assert stored is not None
    assert {line["sku_id"]: line["category_ids"] for line in stored["lines"]} == {
        inside: paths[inside],
        outside: paths[outside],
    }
    assert (await coupon(stack, first)).status == member_pb2.COUPON_STATUS_LOCKED

    # No line in the category: refused before anything is held.
    second = await issue(stack, template, member)
    before = await level(stack, PICKUP_STORE, outside)
    error = await error_of(
        orders.stub.PlaceOrder(pickup_request(member, [(outside, 1)], coupon_id=second))
    )
    assert (error.code, error.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "COUPON_NOT_APPLICABLE",
    )
    assert await level(stack, PICKUP_STORE, outside) == before
    assert (await coupon(stack, second)).status == member_pb2.COUPON_STATUS_AVAILABLE
