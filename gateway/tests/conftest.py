"""Real servers for the gateway tests: catalog-svc on the embedded database, the gateway."""

from __future__ import annotations

import dataclasses
import sys
import uuid

# pytest's importlib mode names this file "gateway.tests.conftest" (the folder is called
# gateway and has no __init__.py) and, unless the real `gateway` package is imported already,
# first registers /work/main/gateway itself as a namespace package "gateway" that shadows
# it. Drop that stand-in so `import gateway.*` finds the installed package.
if getattr(sys.modules.get("gateway"), "__file__", None) is None:
    sys.modules.pop("gateway", None)

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import grpc
import pytest

from catalog_svc import app as catalog_app
from catalog_svc import seed as catalog_seed
from catalog_svc.domain import (
    LocalizedText,
    Money,
    Product,
    ProductStatus,
    Sku,
    SkuOption,
    gtin_check_digit,
)
from catalog_svc.repository import PRODUCTS, product_to_document
from catalog_svc.settings import CatalogSettings
from gateway.auth import Role, issue_token
from gateway.settings import GatewaySettings
from gateway.testing import GatewayClient, running_gateway
from member_svc import app as member_app
from member_svc import seed as member_seed
from member_svc.domain import Member as MemberRecord
from member_svc.settings import MemberSettings
from retail.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from retail.common.v1 import common_pb2
from retail.member.v1 import member_pb2, member_pb2_grpc
from retail.order.v1 import order_pb2, order_pb2_grpc
from retail.store.v1 import store_pb2, store_pb2_grpc
from retail_kit.apikeys import new_api_key
from retail_kit.mongo import Document
from retail_kit.server import ServiceContext
from retail_kit.testing import running_service, unique_name
from store_svc import app as store_app
from store_svc import seed as store_seed
from store_svc.settings import StoreSettings

if TYPE_CHECKING:
    from pymongo.asynchronous.database import AsyncDatabase

    from retail.catalog.v1.catalog_pb2_grpc import CatalogServiceAsyncStub
    from retail.member.v1.member_pb2_grpc import MemberServiceAsyncStub
    from retail.order.v1.order_pb2_grpc import OrderServiceAsyncStub
    from retail.store.v1.store_pb2_grpc import StoreServiceAsyncStub

SECRET = "test-only-secret-not-the-dev-default"
ISSUER = "retail-test"


def make_product(number: int, status: ProductStatus = ProductStatus.ACTIVE) -> Product:
    product_id = f"p_{number:04d}"
    return Product(
        id=product_id,
        spu_code=f"SPU{number:04d}",
        title=LocalizedText({"zh-Hans": f"拿铁 {number}", "en": f"Latte {number}"}),
        description=LocalizedText({"zh-Hans": "冷萃咖啡", "en": "cold brew"}),
        category_id="cat_coffee_rtd" if number % 2 else "cat_tea",
        brand_id="br_shanye",
        status=status,
        skus=(
            Sku(
                f"{product_id}_s1",
                f"69{number:011d}",
                Money(1590 + number),
                (SkuOption("size", "330ml"),),
            ),
            Sku(f"{product_id}_s2", f"68{number:011d}", Money(2990 + number)),
        ),
        image_urls=(f"https://img.example.com/{product_id}.jpg",),
        create_time=datetime(2026, 1, 1, tzinfo=UTC),
        update_time=datetime(2026, 1, 2, tzinfo=UTC),
    )


# 23 active products (odd numbers in cat_coffee_rtd, even in cat_tea), one archived, one draft.
SEEDED = [make_product(n) for n in range(1, 24)] + [
    make_product(24, ProductStatus.ARCHIVED),
    make_product(25, ProductStatus.DRAFT),
]


PRICEY = dataclasses.replace(
    make_product(98, ProductStatus.ARCHIVED),
    skus=(Sku("p_0098_s1", "6900000000098", Money(3_000_000_000)),),
)
"""A price beyond GraphQL's 32-bit Int (30 million yuan): shows where Money.amount ends."""

CORRUPT_NUMBER = 99
"""p_0099 is stored with a status catalog-svc cannot read: its reads fail with INTERNAL."""


@pytest.fixture(scope="session")
def seeded_products() -> list[Product]:
    return list(SEEDED)


@pytest.fixture(scope="session")
async def catalog_addr(mongo_uri: str) -> AsyncIterator[str]:
    """A real catalog-svc on a free port, its database seeded with SEEDED."""
    settings = CatalogSettings(mongodb_uri=mongo_uri, database=unique_name("gateway_catalog"))
    async with running_service(
        catalog_app.NAME,
        settings,
        catalog_app.SERVICE_NAMES,
        catalog_app.register,
        catalog_app.on_ready,
    ) as host:
        corrupt = product_to_document(make_product(CORRUPT_NUMBER)) | {"status": "bogus"}
        await host.context.database[PRODUCTS].insert_many(
            [product_to_document(p) for p in (*SEEDED, PRICEY)] + [corrupt]
        )
        yield f"127.0.0.1:{host.port}"


@pytest.fixture(scope="session")
def gateway_settings(catalog_addr: str) -> GatewaySettings:
    return GatewaySettings(
        catalog_addr=catalog_addr, jwt_secret=SECRET, jwt_issuer=ISSUER, grpc_timeout_seconds=3.0
    )


@pytest.fixture(scope="session")
async def shared_gateway(gateway_settings: GatewaySettings) -> AsyncIterator[GatewayClient]:
    async with running_gateway(gateway_settings) as client:
        yield client


@pytest.fixture
def gateway(shared_gateway: GatewayClient) -> GatewayClient:
    """The session's gateway with an empty call log, so a test counts only its own calls."""
    shared_gateway.calls.clear()
    return shared_gateway


# --- the whole retail slice: catalog-svc, store-svc and member-svc with their demo data ---

PRICED_PRODUCT_ID = "p_gw_priced"
PRICED_SKU_ID = f"{PRICED_PRODUCT_ID}_s1"
PRICED_BARCODE = "690000012345" + str(gtin_check_digit("690000012345"))
STOCKED_SKU_IDS = tuple(f"p_{n:04d}_s1" for n in range(1, 41))
"""The demo SKUs store-svc is seeded with (fewer than its default 300, to seed quickly)."""


@dataclass
class RetailStack:
    """Addresses of the three services and direct stubs for seeding and reading back."""

    catalog_addr: str
    store_addr: str
    member_addr: str
    catalog: CatalogServiceAsyncStub
    store: StoreServiceAsyncStub


def token(role: Role, **ids: str) -> dict[str, str]:
    """An Authorization header for a gateway started with SECRET and ISSUER."""
    return {"Authorization": f"Bearer {issue_token(SECRET, ISSUER, role, **ids)}"}


def _priced_product() -> catalog_pb2.Product:
    """A published product whose one SKU has channel, tier and channel+tier prices."""

    def rule(amount: int, channel: int = 0, tier: str = "") -> catalog_pb2.PriceRule:
        return catalog_pb2.PriceRule(
            channel=channel,  # type: ignore[arg-type]
            tier=tier,
            price=common_pb2.Money(amount=amount, currency="CNY"),
        )

    return catalog_pb2.Product(
        id=PRICED_PRODUCT_ID,
        spu_code="GWPRICED",
        title=common_pb2.LocalizedText(values={"zh-Hans": "网关测试拿铁", "en": "Gateway Latte"}),
        category_id="cat_coffee_rtd",
        brand_id="b_shanye",
        skus=[
            catalog_pb2.Sku(
                id=PRICED_SKU_ID,
                barcode=PRICED_BARCODE,
                price=common_pb2.Money(amount=2000, currency="CNY"),
                price_rules=[
                    rule(1800, channel=common_pb2.CHANNEL_MINI_PROGRAM),
                    rule(1900, channel=common_pb2.CHANNEL_APP),
                    rule(1700, tier="gold"),
                    rule(1500, channel=common_pb2.CHANNEL_MINI_PROGRAM, tier="gold"),
                ],
            )
        ],
    )


@pytest.fixture(scope="session")
async def retail_stack(mongo_uri: str) -> AsyncIterator[RetailStack]:
    catalog_db = unique_name("gateway_retail_catalog")
    store_db = unique_name("gateway_retail_store")
    member_db = unique_name("gateway_retail_member")
    await catalog_seed.seed(mongo_uri, catalog_db)
    await store_seed.seed(mongo_uri, store_db, STOCKED_SKU_IDS)
    await member_seed.seed(mongo_uri, member_db)
    async with (
        running_service(
            catalog_app.NAME,
            CatalogSettings(mongodb_uri=mongo_uri, database=catalog_db),
            catalog_app.SERVICE_NAMES,
            catalog_app.register,
            catalog_app.on_ready,
        ) as catalog_host,
        running_service(
            store_app.NAME,
            StoreSettings(mongodb_uri=mongo_uri, database=store_db, sweep_interval_seconds=0),
            store_app.SERVICE_NAMES,
            store_app.register,
            store_app.on_ready,
            store_app.on_stop,
        ) as store_host,
        running_service(
            member_app.NAME,
            MemberSettings(mongodb_uri=mongo_uri, database=member_db),
            member_app.SERVICE_NAMES,
            member_app.register,
            member_app.on_ready,
        ) as member_host,
        grpc.aio.insecure_channel(f"127.0.0.1:{catalog_host.port}") as catalog_channel,
        grpc.aio.insecure_channel(f"127.0.0.1:{store_host.port}") as store_channel,
    ):
        catalog = catalog_pb2_grpc.CatalogServiceStub(catalog_channel)
        created = await catalog.CreateProduct(
            catalog_pb2.CreateProductRequest(product=_priced_product(), request_id="gw-priced-1")
        )
        await catalog.PublishProduct(catalog_pb2.PublishProductRequest(id=created.product.id))
        yield RetailStack(
            catalog_addr=f"127.0.0.1:{catalog_host.port}",
            store_addr=f"127.0.0.1:{store_host.port}",
            member_addr=f"127.0.0.1:{member_host.port}",
            catalog=catalog,
            store=store_pb2_grpc.StoreServiceStub(store_channel),
        )


@pytest.fixture(scope="session")
async def shared_retail_gateway(
    retail_stack: RetailStack, gateway_settings: GatewaySettings
) -> AsyncIterator[GatewayClient]:
    settings = dataclasses.replace(
        gateway_settings,
        catalog_addr=retail_stack.catalog_addr,
        store_addr=retail_stack.store_addr,
        member_addr=retail_stack.member_addr,
    )
    async with running_gateway(settings) as client:
        yield client


@pytest.fixture
def retail(shared_retail_gateway: GatewayClient) -> GatewayClient:
    """The gateway in front of the seeded catalog, store and member services; empty call log."""
    shared_retail_gateway.calls.clear()
    return shared_retail_gateway


# --- orders (issue 8): order-svc over the retail stack, and a gateway in front of all four ---

ORDERS_PAYMENT_KEY, _ORDERS_PAYMENT_ENTRY = new_api_key("pk_gw_pay", "gw_pay", ["order.payments"])
"""A payment partner's key (gRPC metadata x-api-key) the orders stack's order-svc accepts."""


@dataclass
class OrderWorld:
    """order-svc (jobs off: tests run RunMaintenance) next to the retail stack, with stubs
    and the helpers order tests share. Every test takes fresh SKUs (demo products the store
    seed did not stock) and fresh members, so its counts are its own."""

    retail: RetailStack
    order_addr: str
    order: OrderServiceAsyncStub
    member: MemberServiceAsyncStub
    coupon_template_id: str = ""
    _skus: Iterator[str] = dataclasses.field(default_factory=lambda: iter(()))

    async def stocked_sku(self, quantity: int, *store_ids: str) -> str:
        """A SKU no other test uses, received `quantity` times in each store (st_001 if none)."""
        sku_id = next(self._skus)
        for store_id in store_ids or ("st_001",):
            await self.retail.store.AdjustInventory(
                store_pb2.AdjustInventoryRequest(
                    store_id=store_id,
                    sku_id=sku_id,
                    delta=quantity,
                    reason=store_pb2.ADJUSTMENT_REASON_RECEIVE,
                    actor_id="gw_order_tests",
                    idempotency_key=f"gw-orders-{uuid.uuid4().hex}",
                )
            )
        return sku_id

    async def level(self, store_id: str, sku_id: str) -> store_pb2.InventoryLevel:
        reply = await self.retail.store.BatchGetInventory(
            store_pb2.BatchGetInventoryRequest(store_id=store_id, sku_ids=[sku_id])
        )
        return reply.levels[0]

    async def new_member(self, points: int = 0) -> member_pb2.Member:
        """A fresh member with a phone identity and `points` available."""
        phone = f"+86137{uuid.uuid4().int % 10**8:08d}"
        reply = await self.member.EnsureMember(
            member_pb2.EnsureMemberRequest(
                identity=member_pb2.Identity(kind=member_pb2.IDENTITY_KIND_PHONE, value=phone),
                channel=common_pb2.CHANNEL_MINI_PROGRAM,
                display_name="订单测试会员",
            )
        )
        if points:
            await self.member.AdjustPoints(
                member_pb2.AdjustPointsRequest(
                    member_id=reply.member.id,
                    delta=points,
                    reason="gateway order tests",
                    reference=f"gw-orders-{uuid.uuid4().hex}",
                    actor=ORDERS_ADMIN,
                )
            )
        return reply.member

    async def issue_coupon(self, member_id: str) -> member_pb2.Coupon:
        """A ¥5-off coupon (any SKU, channel and store; combinable with points)."""
        reply = await self.member.IssueCoupon(
            member_pb2.IssueCouponRequest(
                template_id=self.coupon_template_id,
                member_id=member_id,
                reference=f"gw-orders-{uuid.uuid4().hex}",
                actor=ORDERS_ADMIN,
            )
        )
        return reply.coupon

    async def pay(self, order_id: str, amount: int) -> order_pb2.Order:
        """The payment partner confirms payment over gRPC with its API key."""
        reply = await self.order.ConfirmPayment(
            order_pb2.ConfirmPaymentRequest(
                order_id=order_id,
                payment_reference=f"tx-{uuid.uuid4().hex}",
                amount=common_pb2.Money(amount=amount, currency="CNY"),
            ),
            metadata=(("x-api-key", ORDERS_PAYMENT_KEY),),
        )
        return reply.order

    async def get(self, order_id: str) -> order_pb2.Order:
        return (await self.order.GetOrder(order_pb2.GetOrderRequest(id=order_id))).order


ORDERS_ADMIN = common_pb2.Actor(kind=common_pb2.ACTOR_KIND_ADMIN, id="gw_order_tests")


def _unstocked_demo_skus() -> Iterator[str]:
    from catalog_svc.demo_data import demo_catalog

    stocked = set(STOCKED_SKU_IDS)
    for product in demo_catalog().products:
        if product.status is ProductStatus.ACTIVE and product.skus[0].id not in stocked:
            yield product.skus[0].id


@pytest.fixture(scope="session")
async def order_world(mongo_uri: str, retail_stack: RetailStack) -> AsyncIterator[OrderWorld]:
    from order_svc import access as order_access
    from order_svc import app as order_app
    from order_svc.settings import OrderSettings

    settings = OrderSettings(
        mongodb_uri=mongo_uri,
        database=unique_name("gateway_order"),
        catalog_addr=retail_stack.catalog_addr,
        store_addr=retail_stack.store_addr,
        member_addr=retail_stack.member_addr,
        worker_interval_seconds=0.0,
        partner_api_keys=_ORDERS_PAYMENT_ENTRY,
    )
    register, on_ready, on_stop = order_app.hooks()
    async with (
        running_service(
            order_app.NAME,
            settings,
            order_app.SERVICE_NAMES,
            register,
            on_ready,
            on_stop,
            interceptors=order_access.interceptors(settings),
        ) as host,
        grpc.aio.insecure_channel(f"127.0.0.1:{host.port}") as order_channel,
        grpc.aio.insecure_channel(retail_stack.member_addr) as member_channel,
    ):
        member = member_pb2_grpc.MemberServiceStub(member_channel)
        template = await member.CreateCouponTemplate(
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
                request_id="gw-orders-5-off",
                actor=ORDERS_ADMIN,
            )
        )
        yield OrderWorld(
            retail=retail_stack,
            order_addr=f"127.0.0.1:{host.port}",
            order=order_pb2_grpc.OrderServiceStub(order_channel),
            member=member,
            coupon_template_id=template.template.id,
            _skus=_unstocked_demo_skus(),
        )


@pytest.fixture(scope="session")
async def shared_orders_gateway(
    order_world: OrderWorld, gateway_settings: GatewaySettings
) -> AsyncIterator[GatewayClient]:
    retail = order_world.retail
    settings = dataclasses.replace(
        gateway_settings,
        catalog_addr=retail.catalog_addr,
        store_addr=retail.store_addr,
        member_addr=retail.member_addr,
        order_addr=order_world.order_addr,
    )
    async with running_gateway(settings) as client:
        yield client


@pytest.fixture
def orders(shared_orders_gateway: GatewayClient) -> GatewayClient:
    """The gateway in front of all four services (orders included); empty call log."""
    shared_orders_gateway.calls.clear()
    return shared_orders_gateway


# --- members (issue 7): a member-svc of its own, with the demo members, tags and coupon
# templates, verification codes exposed (as `make run` does) and its jobs run by the tests ---


@dataclass
class MemberWorld:
    member_addr: str
    member: MemberServiceAsyncStub
    database: AsyncDatabase[Document]
    context: ServiceContext

    async def run_jobs(self) -> None:
        """member-svc's background jobs once (campaign issuance among them)."""
        from member_svc import jobs

        await jobs.run_jobs_once(member_app.books_for(self.context))

    async def get(self, member_id: str) -> member_pb2.Member:
        return (await self.member.GetMember(member_pb2.GetMemberRequest(id=member_id))).member

    async def store_members(self, *members: MemberRecord) -> None:
        """Members written as member-svc stores them (e.g. joined and last bought long ago)."""
        from member_svc.repository import (
            IDENTITIES,
            MEMBERS,
            identity_documents,
            member_to_document,
        )

        await self.database[MEMBERS].insert_many([member_to_document(m) for m in members])
        await self.database[IDENTITIES].insert_many(identity_documents(members))


@pytest.fixture(scope="session")
async def member_world(mongo_uri: str) -> AsyncIterator[MemberWorld]:
    database = unique_name("gateway_members")
    await member_seed.seed(mongo_uri, database)
    settings = MemberSettings(
        mongodb_uri=mongo_uri,
        database=database,
        worker_interval_seconds=0,
        expose_verification_codes=True,
    )
    async with (
        running_service(
            member_app.NAME,
            settings,
            member_app.SERVICE_NAMES,
            member_app.register,
            member_app.on_ready,
            member_app.on_stop,
        ) as host,
        grpc.aio.insecure_channel(f"127.0.0.1:{host.port}") as channel,
    ):
        yield MemberWorld(
            member_addr=f"127.0.0.1:{host.port}",
            member=member_pb2_grpc.MemberServiceStub(channel),
            database=host.context.database,
            context=host.context,
        )


@pytest.fixture(scope="session")
async def shared_members_gateway(
    member_world: MemberWorld, retail_stack: RetailStack, gateway_settings: GatewaySettings
) -> AsyncIterator[GatewayClient]:
    settings = dataclasses.replace(
        gateway_settings,
        catalog_addr=retail_stack.catalog_addr,
        store_addr=retail_stack.store_addr,
        member_addr=member_world.member_addr,
        wechat_dev_login=True,
    )
    async with running_gateway(settings) as client:
        yield client


@pytest.fixture
def members(shared_members_gateway: GatewayClient) -> GatewayClient:
    """The gateway (WeChat dev sign-in on) in front of the members' member-svc and the retail
    stack's catalog and stores; empty call log."""
    shared_members_gateway.calls.clear()
    return shared_members_gateway
