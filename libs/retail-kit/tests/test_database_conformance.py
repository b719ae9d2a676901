"""Database conformance: the MongoDB behaviour the services rely on, checked on a live server.

Runs against whatever the `mongo_uri` fixture points at: the embedded default (SecantusDB,
started once per session) unless MONGODB_URI names another server. To run this module, or
the whole suite, against a real MongoDB replica set instead:

    MONGODB_URI=mongodb://host:27017/?replicaSet=rs0 make test
    MONGODB_URI=mongodb://host:27017/?replicaSet=rs0 \
        uv run --frozen pytest -q libs/retail-kit/tests/test_database_conformance.py

Each test uses a database of its own (`unique_name`) and drops it afterwards.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from pymongo import AsyncMongoClient, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from retail_kit.testing import unique_name

Document = dict[str, Any]

STOCK = 20
CONTENDERS = 60
ROUNDS = 3
CHANGE_TIMEOUT_SECONDS = 10.0


class Rollback(Exception):
    """Raised inside a transaction to abort it."""


@asynccontextmanager
async def fresh_database(uri: str, prefix: str) -> AsyncIterator[AsyncDatabase[Document]]:
    client: AsyncMongoClient[Document] = AsyncMongoClient(uri)
    name = unique_name(prefix)
    try:
        yield client[name]
    finally:
        await client.drop_database(name)
        await client.close()


async def take_one(items: AsyncCollection[Document], item_id: str) -> bool:
    """The conditional decrement the inventory code does: succeeds only while stock >= 1."""
    taken = await items.find_one_and_update(
        {"_id": item_id, "stock": {"$gte": 1}},
        {"$inc": {"stock": -1}},
        return_document=ReturnDocument.AFTER,
    )
    if taken is None:
        return False
    assert taken["stock"] >= 0
    return True


async def test_concurrent_conditional_decrements_never_oversell(mongo_uri: str) -> None:
    async with fresh_database(mongo_uri, "oversell") as database:
        items = database["items"]
        for round_number in range(ROUNDS):
            item_id = f"sku_{round_number}"
            await items.insert_one({"_id": item_id, "stock": STOCK})
            results = await asyncio.gather(*(take_one(items, item_id) for _ in range(CONTENDERS)))
            assert sum(results) == STOCK, f"round {round_number}: {sum(results)} succeeded"
            document = await items.find_one({"_id": item_id})
            assert document == {"_id": item_id, "stock": 0}


async def test_conditional_decrements_from_separate_clients_never_oversell(
    mongo_uri: str,
) -> None:
    clients: list[AsyncMongoClient[Document]] = [AsyncMongoClient(mongo_uri) for _ in range(6)]
    name = unique_name("oversell_clients")
    try:
        collections = [client[name]["items"] for client in clients]
        for round_number in range(ROUNDS):
            item_id = f"sku_{round_number}"
            await collections[0].insert_one({"_id": item_id, "stock": STOCK})
            results = await asyncio.gather(
                *(take_one(collections[n % len(collections)], item_id) for n in range(CONTENDERS))
            )
            assert sum(results) == STOCK, f"round {round_number}: {sum(results)} succeeded"
            # Every client sees the same final state.
            for items in collections:
                assert await items.find_one({"_id": item_id}) == {"_id": item_id, "stock": 0}
    finally:
        await clients[0].drop_database(name)
        for client in clients:
            await client.close()


async def test_concurrent_increments_are_not_lost(mongo_uri: str) -> None:
    async with fresh_database(mongo_uri, "increments") as database:
        counters = database["counters"]
        await counters.insert_one({"_id": "c", "value": 0})
        results = await asyncio.gather(
            *(counters.update_one({"_id": "c"}, {"$inc": {"value": 1}}) for _ in range(200))
        )
        assert all(result.modified_count == 1 for result in results)
        assert await counters.find_one({"_id": "c"}) == {"_id": "c", "value": 200}


async def test_unique_index_rejects_duplicate(mongo_uri: str) -> None:
    async with fresh_database(mongo_uri, "unique") as database:
        members = database["members"]
        await members.create_index("email", unique=True, name="email_unique")
        await members.insert_one({"_id": "m1", "email": "a@example.com"})
        await members.insert_one({"_id": "m2", "email": "b@example.com"})
        with pytest.raises(DuplicateKeyError) as raised:
            await members.insert_one({"_id": "m3", "email": "a@example.com"})
        assert raised.value.code == 11000
        with pytest.raises(DuplicateKeyError) as raised_by_update:
            await members.update_one({"_id": "m2"}, {"$set": {"email": "a@example.com"}})
        assert raised_by_update.value.code == 11000
        documents = await members.find({}).sort("_id").to_list()
        assert documents == [
            {"_id": "m1", "email": "a@example.com"},
            {"_id": "m2", "email": "b@example.com"},
        ]


async def test_aborted_transaction_rolls_back_both_writes(mongo_uri: str) -> None:
    async with fresh_database(mongo_uri, "txn_abort") as database:
        orders, stock = database["orders"], database["stock"]
        await stock.insert_one({"_id": "sku", "stock": 5})
        await orders.insert_one({"_id": "existing"})
        client = database.client
        with pytest.raises(Rollback):
            async with client.start_session() as session, await session.start_transaction():
                await orders.insert_one({"_id": "o1", "sku": "sku"}, session=session)
                await stock.update_one({"_id": "sku"}, {"$inc": {"stock": -1}}, session=session)
                # Inside: the transaction sees its own writes...
                assert await orders.find_one({"_id": "o1"}, session=session) is not None
                inside = await stock.find_one({"_id": "sku"}, session=session)
                assert inside == {"_id": "sku", "stock": 4}
                # ...and a reader outside it does not.
                assert await orders.find_one({"_id": "o1"}) is None
                assert await stock.find_one({"_id": "sku"}) == {"_id": "sku", "stock": 5}
                raise Rollback
        assert await orders.find_one({"_id": "o1"}) is None
        assert await orders.count_documents({}) == 1
        assert await stock.find_one({"_id": "sku"}) == {"_id": "sku", "stock": 5}


async def test_committed_transaction_keeps_both_writes(mongo_uri: str) -> None:
    async with fresh_database(mongo_uri, "txn_commit") as database:
        orders, stock = database["orders"], database["stock"]
        await stock.insert_one({"_id": "sku", "stock": 5})
        await orders.insert_one({"_id": "existing"})
        client = database.client
        async with client.start_session() as session:
            async with await session.start_transaction():
                await orders.insert_one({"_id": "o1", "sku": "sku"}, session=session)
                await stock.update_one({"_id": "sku"}, {"$inc": {"stock": -1}}, session=session)
            assert not session.in_transaction
        assert await orders.find_one({"_id": "o1"}) == {"_id": "o1", "sku": "sku"}
        assert await orders.count_documents({}) == 2
        assert await stock.find_one({"_id": "sku"}) == {"_id": "sku", "stock": 4}


async def next_change(stream: Any) -> Document:
    """The next change event, or a failed test after CHANGE_TIMEOUT_SECONDS (never a hang)."""
    async with asyncio.timeout(CHANGE_TIMEOUT_SECONDS):
        while True:
            change = await stream.try_next()
            if change is not None:
                return dict(change)


async def test_change_stream_sees_insert_and_resumes_after_close(mongo_uri: str) -> None:
    async with fresh_database(mongo_uri, "changes") as database:
        events = database["events"]
        await database.create_collection("events")
        async with await events.watch(max_await_time_ms=200) as stream:
            await events.insert_one({"_id": "e1", "n": 1})
            change = await next_change(stream)
            assert change["operationType"] == "insert"
            assert change["documentKey"] == {"_id": "e1"}
            assert change["fullDocument"] == {"_id": "e1", "n": 1}
            assert change["ns"] == {"db": database.name, "coll": "events"}
            token = stream.resume_token
        assert token is not None

        # Written while no stream is open: a stream resumed from the token sees it (and only
        # what came after the token, so not e1 again).
        await events.insert_one({"_id": "e2", "n": 2})
        await events.update_one({"_id": "e2"}, {"$set": {"n": 3}})
        async with await events.watch(resume_after=token, max_await_time_ms=200) as resumed:
            first = await next_change(resumed)
            assert first["operationType"] == "insert"
            assert first["documentKey"] == {"_id": "e2"}
            assert first["fullDocument"] == {"_id": "e2", "n": 2}
            second = await next_change(resumed)
            assert second["operationType"] == "update"
            assert second["documentKey"] == {"_id": "e2"}
            assert second["updateDescription"]["updatedFields"] == {"n": 3}


async def test_ttl_index_is_accepted_and_listed(mongo_uri: str) -> None:
    async with fresh_database(mongo_uri, "ttl") as database:
        holds = database["holds"]
        name = await holds.create_index("expiresAt", expireAfterSeconds=3600, name="expires")
        assert name == "expires"
        await holds.insert_one({"_id": "h1", "expiresAt": datetime.now(UTC)})
        indexes = {index["name"]: index async for index in await holds.list_indexes()}
        assert set(indexes) == {"_id_", "expires"}
        assert dict(indexes["expires"]["key"]) == {"expiresAt": 1}
        assert indexes["expires"]["expireAfterSeconds"] == 3600
        # An hour from expiry: the document is still there.
        assert await holds.count_documents({}) == 1


async def test_in_on_id_returns_exactly_the_asked_documents(mongo_uri: str) -> None:
    async with fresh_database(mongo_uri, "in_ids") as database:
        products = database["products"]
        await products.insert_many([{"_id": f"p{n:03d}", "n": n} for n in range(100)])
        asked = ["p007", "p093", "p000", "missing", "p050", "p007"]
        found = await products.find({"_id": {"$in": asked}}).to_list()
        assert sorted(document["_id"] for document in found) == ["p000", "p007", "p050", "p093"]
        assert {document["_id"]: document["n"] for document in found} == {
            "p000": 0,
            "p007": 7,
            "p050": 50,
            "p093": 93,
        }
        assert await products.find({"_id": {"$in": []}}).to_list() == []
        assert await products.count_documents({"_id": {"$in": asked}}) == 4
