from __future__ import annotations

from pymongo import AsyncMongoClient

from retail_kit.mongo import Document, IndexDeclaration, ServerFlavor, detect_flavor, ensure_indexes
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


async def test_flavor_detection_names_the_server(mongo_uri: str) -> None:
    client: AsyncMongoClient[Document] = AsyncMongoClient(mongo_uri)
    try:
        flavor = await detect_flavor(client)
        build_info = await client.admin.command("buildInfo")
        assert (flavor is ServerFlavor.FERRETDB) == ("ferretdbVersion" in build_info)
    finally:
        await client.close()
