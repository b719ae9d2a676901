from __future__ import annotations

from pymongo import AsyncMongoClient

from retail_kit.mongo import (
    Document,
    IndexDeclaration,
    ensure_indexes,
    find_by_ids,
)
from retail_kit.testing import unique_name

DECLARED = (
    IndexDeclaration("things", (("status", 1), ("_id", 1)), "status_id"),
    IndexDeclaration("things", (("code", 1),), "code", unique=True),
)


async def test_ensure_indexes_is_idempotent_and_adds_new_declarations(mongo_uri: str) -> None:
    client: AsyncMongoClient[Document] = AsyncMongoClient(mongo_uri)
    try:
        database = client[unique_name("indexes")]
        await database["things"].insert_one({"_id": "t1", "status": "a", "code": "c1"})
        await ensure_indexes(database, DECLARED[:1])
        await ensure_indexes(database, DECLARED)
        await ensure_indexes(database, DECLARED)
        names = {index["name"] async for index in await database["things"].list_indexes()}
        assert {"_id_", "status_id", "code"} <= names
        assert await database["things"].count_documents({}) == 1
    finally:
        await client.close()


async def test_find_by_ids_returns_only_existing_documents(mongo_uri: str) -> None:
    client: AsyncMongoClient[Document] = AsyncMongoClient(mongo_uri)
    try:
        things = client[unique_name("by_ids")]["things"]
        await things.insert_many([{"_id": f"t{n}", "n": n} for n in range(30)])
        found = await find_by_ids(things, ["t3", "missing", "t29", "t3"])
        assert found == {"t3": {"_id": "t3", "n": 3}, "t29": {"_id": "t29", "n": 29}}
        assert await find_by_ids(things, []) == {}
    finally:
        await client.close()
