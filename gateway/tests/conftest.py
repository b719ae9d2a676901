"""Real servers for the gateway tests: catalog-svc on FerretDB, the gateway under uvicorn."""

from __future__ import annotations

import dataclasses
import sys

# pytest's importlib mode names this file "gateway.tests.conftest" (the folder is called
# gateway and has no __init__.py) and, unless the real `gateway` package is imported already,
# first registers /work/main/gateway itself as a namespace package "gateway" that shadows
# it. Drop that stand-in so `import gateway.*` finds the installed package.
if getattr(sys.modules.get("gateway"), "__file__", None) is None:
    sys.modules.pop("gateway", None)

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from catalog_svc import app as catalog_app
from catalog_svc.domain import (
    LocalizedText,
    Money,
    Product,
    ProductStatus,
    Sku,
    SkuOption,
)
from catalog_svc.repository import PRODUCTS, product_to_document
from catalog_svc.settings import CatalogSettings
from gateway.settings import GatewaySettings
from gateway.testing import GatewayClient, running_gateway
from retail_kit.testing import running_service, unique_name

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
