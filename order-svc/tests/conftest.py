"""What order-svc service tests share: catalog-svc, store-svc and member-svc running
in-process on loopback ports against the real database (seeded once per session with the
demo data), an order-svc started per test module with an adjustable clock, and helpers to
set stock, make members with points, issue coupons and read errors.

Tests never share a SKU: `Stack.take_skus` hands out SKUs no other test has used, so each
test sets the stock it needs and its counts are its own.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import grpc
import pytest
from pymongo.asynchronous.database import AsyncDatabase

import catalog_svc.app
import catalog_svc.seed
import member_svc.app
import member_svc.seed
import store_svc.app
import store_svc.seed
from catalog_svc.demo_data import demo_catalog
from catalog_svc.domain import ProductStatus
from catalog_svc.settings import CatalogSettings
from member_svc.settings import MemberSettings
from order_svc import access, app
from order_svc.services import OrderServices, utc_now
from order_svc.settings import OrderSettings
from retail.catalog.v1 import catalog_pb2_grpc
from retail.common.v1 import common_pb2
from retail.member.v1 import member_pb2, member_pb2_grpc
from retail.order.v1 import order_pb2, order_pb2_grpc
from retail.store.v1 import store_pb2, store_pb2_grpc
from retail_kit.apikeys import new_api_key
from retail_kit.errors import RpcErrorDetails
from retail_kit.mongo import Document
from retail_kit.server import ServiceHost
from retail_kit.testing import channel_to, running_service, unique_name
from store_svc.demo_data import demo_stores
from store_svc.settings import StoreSettings

# SKUs stocked by the store seed in every pickup store (first SKU of active products;
# the demo catalog has 276). Every test takes its own: the whole suite needs ~165.
STOCKED_SKU_COUNT = 240
ADMIN = common_pb2.Actor(kind=common_pb2.ACTOR_KIND_ADMIN, id="admin_test")
PICKUP_STORE = "st_001"  # pickup, returns, ship-from-store; open
CLOSED_STORE = "st_019"  # temporarily closed
NO_PICKUP_STORE = "st_020"  # warehouse: ship-from-store only
SHIP_STORES = tuple(
    s.id for s in demo_stores() if any(v.value == "ship_from_store" for v in s.services)
)
STORE_LOCATIONS = {s.id: (s.location.latitude, s.location.longitude) for s in demo_stores()}
# A payment partner's API key (x-api-key) every test order-svc accepts for ConfirmPayment.
PAYMENT_KEY, PAYMENT_KEY_ENTRY = new_api_key("pk_test_pay", "test_pay", [access.SCOPE_PAYMENTS])


class FakeClock:
    """order-svc's clock: real time plus an offset tests move forward."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return utc_now() + self.offset

    def advance(self, **delta: float) -> None:
        self.offset += timedelta(**delta)


@dataclass
class Stack:
    """catalog-svc, store-svc and member-svc, running and seeded."""

    mongo_uri: str
    hosts: dict[str, ServiceHost]
    catalog: catalog_pb2_grpc.CatalogServiceStub
    store: store_pb2_grpc.StoreServiceStub
    member: member_pb2_grpc.MemberServiceStub
    store_db: AsyncDatabase[Document]
    member_db: AsyncDatabase[Document]
    skus: list[str]
    inactive_sku: str
    coupon_template: str = ""
    _next_sku: Iterator[int] = field(default_factory=itertools.count)

    def address(self, name: str) -> str:
        return f"127.0.0.1:{self.hosts[name].port}"

    def take_skus(self, count: int = 1) -> list[str]:
        taken = [self.skus[next(self._next_sku)] for _ in range(count)]
        return taken

    def order_settings(self, **overrides: Any) -> OrderSettings:
        values: dict[str, Any] = {
            "mongodb_uri": self.mongo_uri,
            "database": unique_name("order"),
            "catalog_addr": self.address("catalog"),
            "store_addr": self.address("store"),
            "member_addr": self.address("member"),
            "worker_interval_seconds": 0.0,
            "partner_api_keys": PAYMENT_KEY_ENTRY,
        }
        values.update(overrides)
        return OrderSettings(**values)


def _stocked_skus() -> tuple[list[str], str]:
    catalog = demo_catalog()
    active = [p for p in catalog.products if p.status is ProductStatus.ACTIVE]
    inactive = next(p for p in catalog.products if p.status is not ProductStatus.ACTIVE)
    return [p.skus[0].id for p in active[:STOCKED_SKU_COUNT]], inactive.skus[0].id


@pytest.fixture(scope="session")
async def stack(mongo_uri: str) -> AsyncIterator[Stack]:
    skus, inactive = _stocked_skus()
    names = {
        "catalog": unique_name("catalog"),
        "store": unique_name("store"),
        "member": unique_name("member"),
    }
    await catalog_svc.seed.seed(mongo_uri, names["catalog"])
    await store_svc.seed.seed(mongo_uri, names["store"], skus)
    await member_svc.seed.seed(mongo_uri, names["member"])
    async with (
        running_service(
            catalog_svc.app.NAME,
            CatalogSettings(mongodb_uri=mongo_uri, database=names["catalog"]),
            catalog_svc.app.SERVICE_NAMES,
            catalog_svc.app.register,
            catalog_svc.app.on_ready,
        ) as catalog_host,
        running_service(
            store_svc.app.NAME,
            StoreSettings(mongodb_uri=mongo_uri, database=names["store"], sweep_interval_seconds=0),
            store_svc.app.SERVICE_NAMES,
            store_svc.app.register,
            store_svc.app.on_ready,
            store_svc.app.on_stop,
        ) as store_host,
        running_service(
            member_svc.app.NAME,
            MemberSettings(
                mongodb_uri=mongo_uri, database=names["member"], worker_interval_seconds=0
            ),
            member_svc.app.SERVICE_NAMES,
            member_svc.app.register,
            member_svc.app.on_ready,
            member_svc.app.on_stop,
        ) as member_host,
        channel_to(catalog_host) as catalog_channel,
        channel_to(store_host) as store_channel,
        channel_to(member_host) as member_channel,
    ):
        built = Stack(
            mongo_uri=mongo_uri,
            hosts={"catalog": catalog_host, "store": store_host, "member": member_host},
            catalog=catalog_pb2_grpc.CatalogServiceStub(catalog_channel),
            store=store_pb2_grpc.StoreServiceStub(store_channel),
            member=member_pb2_grpc.MemberServiceStub(member_channel),
            store_db=store_host.context.database,
            member_db=member_host.context.database,
            skus=skus,
            inactive_sku=inactive,
        )
        built.coupon_template = await _coupon_template(built)
        yield built


async def _coupon_template(stack: Stack) -> str:
    """¥5 off anything, any channel and store, combinable with points, 100 per member."""
    reply = await stack.member.CreateCouponTemplate(
        member_pb2.CreateCouponTemplateRequest(
            template=member_pb2.CouponTemplate(
                name=common_pb2.LocalizedText(values={"zh-Hans": "立减5元", "en": "5 off"}),
                kind=member_pb2.COUPON_KIND_FIXED,
                amount_off=common_pb2.Money(amount=500, currency="CNY"),
                valid_days=30,
                per_member_limit=100,
                combinable_with_points=True,
                status=member_pb2.COUPON_TEMPLATE_STATUS_ACTIVE,
            ),
            request_id="order-tests-5-off",
            actor=ADMIN,
        )
    )
    return reply.template.id


@dataclass
class OrderService:
    stub: order_pb2_grpc.OrderServiceStub
    services: OrderServices
    database: AsyncDatabase[Document]
    clock: FakeClock
    host: ServiceHost


@asynccontextmanager
async def order_service(stack: Stack, **overrides: Any) -> AsyncIterator[OrderService]:
    """order-svc in-process against the stack, jobs off (tests run them), own database."""
    clock = FakeClock()
    register, on_ready, on_stop = app.hooks(clock)
    settings = stack.order_settings(**overrides)
    async with (
        running_service(
            app.NAME,
            settings,
            app.SERVICE_NAMES,
            register,
            on_ready,
            on_stop,
            interceptors=access.interceptors(settings),
        ) as host,
        channel_to(host) as channel,
    ):
        yield OrderService(
            order_pb2_grpc.OrderServiceStub(channel),
            app.services_of(host.context),
            host.context.database,
            clock,
            host,
        )


@pytest.fixture(scope="module")
async def orders(stack: Stack) -> AsyncIterator[OrderService]:
    async with order_service(stack) as service:
        yield service


# -- helpers -------------------------------------------------------------------------------


async def error_of(call: Awaitable[Any]) -> RpcErrorDetails:
    """The rich error a call failed with (fails the test if it succeeded)."""
    try:
        await call
    except grpc.aio.AioRpcError as error:
        return RpcErrorDetails.from_rpc_error(error)
    raise AssertionError("the call succeeded; an error was expected")


async def level(stack: Stack, store_id: str, sku_id: str) -> store_pb2.InventoryLevel:
    reply = await stack.store.BatchGetInventory(
        store_pb2.BatchGetInventoryRequest(store_id=store_id, sku_ids=[sku_id])
    )
    return reply.levels[0]


async def set_stock(stack: Stack, store_id: str, sku_id: str, on_hand: int) -> None:
    """on_hand exactly `on_hand`, no safety stock (the SKU must hold no reservation)."""
    current = await level(stack, store_id, sku_id)
    if current.safety_stock:
        await stack.store.SetSafetyStock(
            store_pb2.SetSafetyStockRequest(
                store_id=store_id, sku_id=sku_id, safety_stock=0, actor_id="as_test"
            )
        )
    delta = on_hand - current.on_hand
    if delta:
        await stack.store.AdjustInventory(
            store_pb2.AdjustInventoryRequest(
                store_id=store_id,
                sku_id=sku_id,
                delta=delta,
                reason=store_pb2.ADJUSTMENT_REASON_COUNT_CORRECTION,
                actor_id="as_test",
                idempotency_key=f"test-{uuid.uuid4().hex}",
            )
        )


async def new_member(stack: Stack, points: int = 0) -> str:
    """A fresh member (phone identity), with `points` available."""
    phone = f"+86139{uuid.uuid4().int % 10**8:08d}"
    reply = await stack.member.EnsureMember(
        member_pb2.EnsureMemberRequest(
            identity=member_pb2.Identity(kind=member_pb2.IDENTITY_KIND_PHONE, value=phone),
            channel=common_pb2.CHANNEL_MINI_PROGRAM,
            display_name="测试会员",
        )
    )
    member_id = reply.member.id
    if points:
        await stack.member.AdjustPoints(
            member_pb2.AdjustPointsRequest(
                member_id=member_id,
                delta=points,
                reason="order tests",
                reference=f"test-{uuid.uuid4().hex}",
                actor=ADMIN,
            )
        )
    return member_id


async def issue_coupon(stack: Stack, member_id: str) -> member_pb2.Coupon:
    reply = await stack.member.IssueCoupon(
        member_pb2.IssueCouponRequest(
            template_id=stack.coupon_template,
            member_id=member_id,
            reference=f"test-{uuid.uuid4().hex}",
            actor=ADMIN,
        )
    )
    return reply.coupon


async def coupon(stack: Stack, coupon_id: str) -> member_pb2.Coupon:
    reply = await stack.member.BatchGetCoupons(member_pb2.BatchGetCouponsRequest(ids=[coupon_id]))
    return reply.coupons[0]


async def points(stack: Stack, member_id: str) -> member_pb2.PointsSummary:
    reply = await stack.member.GetPointsSummary(
        member_pb2.GetPointsSummaryRequest(member_id=member_id)
    )
    return reply.points


def pickup_request(
    member_id: str,
    lines: list[tuple[str, int]],
    *,
    key: str | None = None,
    store_id: str = PICKUP_STORE,
    **fields: Any,
) -> order_pb2.PlaceOrderRequest:
    return order_pb2.PlaceOrderRequest(
        idempotency_key=key or f"k-{uuid.uuid4().hex}",
        member_id=member_id,
        store_id=store_id,
        fulfillment=order_pb2.FULFILLMENT_TYPE_PICKUP_IN_STORE,
        lines=[order_pb2.PlaceOrderLine(sku_id=s, quantity=q) for s, q in lines],
        channel=common_pb2.CHANNEL_MINI_PROGRAM,
        **fields,
    )


def assert_reconciles(order: order_pb2.Order) -> None:
    """subtotal - coupon - points = total = the sum of what each line paid, per line too."""
    lines = list(order.lines)
    assert order.subtotal.amount == sum(line.line_total.amount for line in lines)
    assert order.coupon_discount.amount == sum(line.coupon_discount.amount for line in lines)
    assert order.points_discount.amount == sum(line.points_discount.amount for line in lines)
    assert (
        order.subtotal.amount - order.coupon_discount.amount - order.points_discount.amount
        == order.total.amount
        == sum(line.paid_amount.amount for line in lines)
    )
    assert order.discount.amount == order.coupon_discount.amount + order.points_discount.amount
    for line in lines:
        assert line.line_total.amount == line.unit_price.amount * line.quantity
        assert (
            line.line_total.amount - line.coupon_discount.amount - line.points_discount.amount
            == line.paid_amount.amount
            >= 0
        )
