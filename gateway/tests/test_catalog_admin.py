"""Admin catalog writes through the gateway, and that nobody else can make them."""

from __future__ import annotations

import uuid

import grpc
import pytest

from gateway.auth import Role
from gateway.testing import GatewayClient
from gateway.tests.conftest import PRICED_BARCODE, RetailStack, token
from retail.catalog.v1 import catalog_pb2

ADMIN = token(Role.ADMIN, subject="ops_admin")

CREATE = """
mutation ($input: ProductInput!, $requestId: String!) {
  createProduct(input: $input, requestId: $requestId) {
    id status etag title spuCode
    skus { id barcode price { amount currency } options { name value } }
  }
}
"""


def _check_digit(body: str) -> str:
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return str((10 - total % 10) % 10)


def new_barcode() -> str:
    body = "69" + str(uuid.uuid4().int)[:10]
    return body + _check_digit(body)


def product_input(product_id: str, barcode: str, amount: int = 1290) -> dict[str, object]:
    return {
        "id": product_id,
        "spuCode": product_id.upper(),
        "title": [
            {"locale": "zh-Hans", "value": "燕麦拿铁"},
            {"locale": "en", "value": "Oat Latte"},
        ],
        "categoryId": "cat_coffee_rtd",
        "brandId": "b_shanye",
        "skus": [
            {
                "barcode": barcode,
                "price": {"amount": amount},
                "options": [{"name": "size", "value": "330ml"}],
                "priceRules": [{"channel": "APP", "price": {"amount": amount - 100}}],
            }
        ],
    }


async def exists(stack: RetailStack, product_id: str) -> bool:
    try:
        await stack.catalog.GetProduct(catalog_pb2.GetProductRequest(id=product_id))
    except grpc.aio.AioRpcError as error:
        assert error.code() == grpc.StatusCode.NOT_FOUND
        return False
    return True


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        (token(Role.CUSTOMER, member_id="m_0001"), "FORBIDDEN"),
        (token(Role.STORE_MANAGER, store_id="st_001"), "FORBIDDEN"),
        (token(Role.KIOSK, store_id="st_001", device_id="k_st_001_01"), "FORBIDDEN"),
        ({}, "UNAUTHENTICATED"),
    ],
)
async def test_only_admin_creates_products_and_nothing_is_created_otherwise(
    retail: GatewayClient, retail_stack: RetailStack, headers: dict[str, str], code: str
) -> None:
    product_id = f"p_gw_{uuid.uuid4().hex[:8]}"
    body = await retail.query(
        CREATE,
        {"input": product_input(product_id, new_barcode()), "requestId": product_id},
        headers=headers,
    )
    assert body["data"] is None
    [error] = body["errors"]
    assert error["extensions"]["code"] == code
    assert retail.calls.calls == []
    assert not await exists(retail_stack, product_id)


async def test_admin_creates_publishes_updates_and_archives(
    retail: GatewayClient, retail_stack: RetailStack
) -> None:
    product_id = f"p_gw_{uuid.uuid4().hex[:8]}"
    barcode = new_barcode()
    variables = {"input": product_input(product_id, barcode), "requestId": f"req-{product_id}"}
    body = await retail.query(CREATE, variables, headers=ADMIN)
    assert "errors" not in body, body
    created = body["data"]["createProduct"]
    assert created["id"] == product_id and created["status"] == "DRAFT"
    assert created["skus"] == [
        {
            "id": f"{product_id}_s1",
            "barcode": barcode,
            "price": {"amount": 1290, "currency": "CNY"},
            "options": [{"name": "size", "value": "330ml"}],
        }
    ]
    # The same request again returns the same product.
    replay = await retail.query(CREATE, variables, headers=ADMIN)
    assert replay["data"]["createProduct"]["id"] == product_id

    published = await retail.query(
        "mutation ($id: ID!) { publishProduct(id: $id) { status etag } }",
        {"id": product_id},
        headers=ADMIN,
    )
    assert published["data"]["publishProduct"]["status"] == "ACTIVE"
    etag = published["data"]["publishProduct"]["etag"]

    update = """mutation ($input: UpdateProductInput!) {
      updateProduct(input: $input) {
        title etag skus { price { amount } quote { unitPrice { amount } rule } } } }"""
    changed = product_input(product_id, barcode, amount=1390)
    changed["title"] = [{"locale": "zh-Hans", "value": "燕麦拿铁 大杯"}]
    changed["skus"][0]["id"] = f"{product_id}_s1"  # type: ignore[index]
    body = await retail.query(
        update, {"input": {**changed, "etag": etag}}, headers={**ADMIN, "X-Retail-Channel": "app"}
    )
    assert "errors" not in body, body
    updated = body["data"]["updateProduct"]
    assert updated["title"] == "燕麦拿铁 大杯"
    assert updated["skus"][0]["quote"] == {"unitPrice": {"amount": 1290}, "rule": "channel:app"}
    # The same content again is a retry (answered as is); other content with the old etag
    # is refused.
    retry = await retail.query(update, {"input": {**changed, "etag": etag}}, headers=ADMIN)
    assert retry["data"]["updateProduct"]["etag"] == updated["etag"]
    changed["spuCode"] = "OTHER"
    stale = await retail.query(update, {"input": {**changed, "etag": etag}}, headers=ADMIN)
    assert stale["data"] is None
    [error] = stale["errors"]
    assert error["extensions"]["code"] == "CONFLICT"  # ABORTED: read again, reapply
    assert "changed since it was read" in error["message"]

    archived = await retail.query(
        "mutation ($id: ID!) { archiveProduct(id: $id) { status } }",
        {"id": product_id},
        headers=ADMIN,
    )
    assert archived["data"]["archiveProduct"]["status"] == "ARCHIVED"


async def test_duplicate_barcode_is_a_conflict_naming_the_input_field(
    retail: GatewayClient, retail_stack: RetailStack
) -> None:
    product_id = f"p_gw_{uuid.uuid4().hex[:8]}"
    body = await retail.query(
        CREATE,
        {"input": product_input(product_id, PRICED_BARCODE), "requestId": product_id},
        headers=ADMIN,
    )
    assert body["data"] is None
    [error] = body["errors"]
    assert error["extensions"]["code"] == "CONFLICT"
    assert [v["field"] for v in error["extensions"]["fieldViolations"]] == ["input.skus[0].barcode"]
    assert not await exists(retail_stack, product_id)


async def test_invalid_product_names_the_input_fields(
    retail: GatewayClient, retail_stack: RetailStack
) -> None:
    product_id = f"p_gw_{uuid.uuid4().hex[:8]}"
    product = product_input(product_id, "123", amount=-5)
    body = await retail.query(CREATE, {"input": product, "requestId": product_id}, headers=ADMIN)
    [error] = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    fields = {v["field"] for v in error["extensions"]["fieldViolations"]}
    assert {"input.skus[0].barcode", "input.skus[0].price"} & fields
    assert all(f.startswith("input.") for f in fields), fields
    assert not await exists(retail_stack, product_id)


async def test_admin_upserts_category_and_brand_others_may_not(retail: GatewayClient) -> None:
    category = """mutation ($input: CategoryInput!) {
      upsertCategory(input: $input) { id name parent { id } } }"""
    variables = {
        "input": {
            "id": "cat_gw_cold_brew",
            "name": [
                {"locale": "zh-Hans", "value": "冷萃"},
                {"locale": "en", "value": "Cold Brew"},
            ],
            "parentId": "cat_coffee",
            "sortOrder": 9,
        }
    }
    refused = await retail.query(
        category, variables, headers=token(Role.ASSOCIATE, store_id="st_001")
    )
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert retail.calls.calls == []
    body = await retail.query(category, variables, headers=ADMIN)
    assert body["data"]["upsertCategory"] == {
        "id": "cat_gw_cold_brew",
        "name": "冷萃",
        "parent": {"id": "cat_coffee"},
    }
    brand = """mutation ($name: [LocalizedStringInput!]!) {
      upsertBrand(input: {id: "b_gw_test", name: $name}) { id name } }"""
    no_chinese = await retail.query(
        brand, {"name": [{"locale": "en", "value": "GW"}]}, headers=ADMIN
    )
    [error] = no_chinese["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["fieldViolations"][0]["field"].startswith("input.name")
    names = [{"locale": "zh-Hans", "value": "网关"}, {"locale": "en", "value": "GW"}]
    body = await retail.query(brand, {"name": names}, headers=ADMIN)
    assert body["data"]["upsertBrand"] == {"id": "b_gw_test", "name": "网关"}
    loop = await retail.query(
        category,
        {"input": {**variables["input"], "id": "cat_coffee", "parentId": "cat_gw_cold_brew"}},
        headers=ADMIN,
    )
    assert loop["errors"][0]["extensions"]["code"] in {"BAD_USER_INPUT", "FAILED_PRECONDITION"}
