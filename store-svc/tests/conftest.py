"""Shared helpers for store-svc service tests: a store proto and a running service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from retail.common.v1 import common_pb2
from retail.store.v1 import store_pb2, store_pb2_grpc
from retail_kit.mongo import Document
from retail_kit.testing import channel_to, running_service, unique_name
from store_svc import app
from store_svc.settings import StoreSettings


def store_message(
    store_id: str,
    code: str,
    *,
    latitude: float = 31.2286,
    longitude: float = 121.4476,
    timezone: str = "Asia/Shanghai",
    hours: tuple[tuple[int, str, str], ...] | None = None,
    preparation: int = 30,
    status: int = store_pb2.STORE_STATUS_OPEN,
) -> store_pb2.Store:
    weekly = hours if hours is not None else tuple((d, "10:00", "22:00") for d in range(1, 8))
    return store_pb2.Store(
        id=store_id,
        code=code,
        name=common_pb2.LocalizedText(values={"zh-Hans": f"测试店 {code}", "en": code}),
        type=store_pb2.STORE_TYPE_STANDARD,
        address=store_pb2.Address(line1="南京西路1号", city="上海市"),
        location=common_pb2.GeoPoint(latitude=latitude, longitude=longitude),
        timezone=timezone,
        weekly_hours=[
            store_pb2.OpeningInterval(weekday=d, opens=o, closes=c) for d, o, c in weekly
        ],
        services=[store_pb2.STORE_SERVICE_KIND_PICKUP],
        pickup_preparation_minutes=preparation,
        pickup_hold_days=3,
        status=status,
    )


@dataclass
class Service:
    stub: store_pb2_grpc.StoreServiceStub
    database: AsyncDatabase[Document]
    host: object


@pytest.fixture(scope="module")
async def service(mongo_uri: str) -> AsyncIterator[Service]:
    settings = StoreSettings(
        mongodb_uri=mongo_uri, database=unique_name("store"), sweep_interval_seconds=0
    )
    async with (
        running_service(
            app.NAME, settings, app.SERVICE_NAMES, app.register, app.on_ready, app.on_stop
        ) as host,
        channel_to(host) as channel,
    ):
        yield Service(store_pb2_grpc.StoreServiceStub(channel), host.context.database, host)
