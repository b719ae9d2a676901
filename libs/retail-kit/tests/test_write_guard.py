"""FerretDB v1 loses conditional updates under concurrency; the kit's write guard does not."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection

from retail_kit.atomic import DocumentWriteGuard
from retail_kit.mongo import Document, ServerFlavor, detect_flavor
from retail_kit.testing import unique_name

STOCK = 20
BUYERS = 60
ROUNDS = 5
TAKE_ONE = {"$inc": {"available": -1}}
IF_AVAILABLE = {"_id": "sku-1", "available": {"$gte": 1}}


@pytest.fixture
async def stock(mongo_uri: str) -> AsyncIterator[AsyncCollection[Document]]:
    client: AsyncMongoClient[Document] = AsyncMongoClient(mongo_uri, maxPoolSize=BUYERS)
    try:
        yield client[unique_name("guard")]["stock"]
    finally:
        await client.close()


async def reset(collection: AsyncCollection[Document]) -> None:
    await collection.delete_many({})
    await collection.insert_one({"_id": "sku-1", "available": STOCK})


async def remaining(collection: AsyncCollection[Document]) -> int:
    doc = await collection.find_one({"_id": "sku-1"})
    assert doc is not None
    return int(doc["available"])


async def test_raw_conditional_updates_lose_writes_on_ferretdb(
    stock: AsyncCollection[Document],
) -> None:
    if await detect_flavor(stock.database.client) is not ServerFlavor.FERRETDB:
        pytest.skip("MongoDB applies filter and update atomically; the race is FerretDB's")
    anomalies = []
    for _ in range(ROUNDS):
        await reset(stock)
        results = await asyncio.gather(
            *(stock.update_one(IF_AVAILABLE, TAKE_ONE) for _ in range(BUYERS))
        )
        succeeded = sum(r.modified_count for r in results)
        left = await remaining(stock)
        # Correct behaviour would be succeeded == STOCK and left == 0.
        if succeeded > STOCK or left != STOCK - succeeded:
            anomalies.append((succeeded, left))
    assert anomalies, "expected FerretDB v1 to oversell or lose decrements (FerretDB issue 3040)"


@pytest.mark.parametrize("operation", ["find_one_and_update", "update_one"])
async def test_guarded_conditional_updates_never_oversell(
    stock: AsyncCollection[Document], operation: str
) -> None:
    guard = DocumentWriteGuard()
    guard.use_flavor(await detect_flavor(stock.database.client))

    async def take() -> bool:
        if operation == "find_one_and_update":
            return await guard.find_one_and_update(stock, IF_AVAILABLE, TAKE_ONE) is not None
        return (await guard.update_one(stock, IF_AVAILABLE, TAKE_ONE)).modified_count == 1

    for _ in range(ROUNDS):
        await reset(stock)
        results = await asyncio.gather(*(take() for _ in range(BUYERS)))
        assert sum(results) == STOCK
        assert await remaining(stock) == 0
    assert guard._locks == {}, "per-document locks are dropped once nobody waits"


def test_guard_serializes_until_it_knows_the_server_is_mongodb() -> None:
    guard = DocumentWriteGuard()
    assert guard.serializes
    guard.use_flavor(ServerFlavor.MONGODB)
    assert not guard.serializes
    guard.use_flavor(ServerFlavor.FERRETDB)
    assert guard.serializes


@pytest.mark.parametrize("query", [{"available": 1}, {"_id": {"$in": ["a", "b"]}}])
async def test_guard_refuses_updates_not_keyed_by_id(
    stock: AsyncCollection[Document], query: dict[str, object]
) -> None:
    await reset(stock)
    with pytest.raises(ValueError, match="_id"):
        await DocumentWriteGuard().update_one(stock, query, TAKE_ONE)
    assert await remaining(stock) == STOCK
