"""MongoDB access through PyMongo's async API, and which server answers (FerretDB or MongoDB)."""

from __future__ import annotations

import asyncio
import enum
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pymongo import AsyncMongoClient, IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

Document = dict[str, Any]


class ServerFlavor(enum.StrEnum):
    FERRETDB = "ferretdb"
    MONGODB = "mongodb"


def connect(uri: str, app_name: str) -> AsyncMongoClient[Document]:
    """Creates the client lazily: nothing is contacted until the first command."""
    return AsyncMongoClient(
        uri,
        appname=app_name,
        serverSelectionTimeoutMS=2_000,
        tz_aware=True,
    )


async def detect_flavor(client: AsyncMongoClient[Document]) -> ServerFlavor:
    build_info = await client.admin.command("buildInfo")
    return ServerFlavor.FERRETDB if "ferretdbVersion" in build_info else ServerFlavor.MONGODB


_flavors: weakref.WeakKeyDictionary[AsyncMongoClient[Document], ServerFlavor] = (
    weakref.WeakKeyDictionary()
)


async def flavor_of(client: AsyncMongoClient[Document]) -> ServerFlavor:
    """The server flavour, asked once per client."""
    if client not in _flavors:
        _flavors[client] = await detect_flavor(client)
    return _flavors[client]


async def find_by_ids(
    collection: AsyncCollection[Document], ids: Sequence[Any]
) -> dict[Any, Document]:
    """Documents by `_id`, the fast way for the server at hand.

    MongoDB answers one `$in` from the `_id` index. FerretDB v1 on SQLite pushes down only
    `_id` equality, so `$in` scans and decodes the whole collection (~90 ms for 300
    products); concurrent single-`_id` reads (~25 ms for 20) cost what is asked, not what
    is stored.
    """
    if not ids:
        return {}
    if await flavor_of(collection.database.client) is ServerFlavor.MONGODB:
        return {doc["_id"]: doc async for doc in collection.find({"_id": {"$in": list(ids)}})}
    found = await asyncio.gather(*(collection.find_one({"_id": i}) for i in dict.fromkeys(ids)))
    return {doc["_id"]: doc for doc in found if doc is not None}


@dataclass(frozen=True, slots=True)
class IndexDeclaration:
    """An index a repository needs; declared next to the queries that use it."""

    collection: str
    keys: Sequence[tuple[str, int]]
    name: str
    unique: bool = False

    def model(self) -> IndexModel:
        options: Mapping[str, Any] = {"name": self.name, "unique": self.unique}
        return IndexModel(list(self.keys), **options)


async def ensure_indexes(
    database: AsyncDatabase[Document], declarations: Sequence[IndexDeclaration]
) -> None:
    """Creates the declared indexes that do not exist yet (matched by name).

    Only missing ones are sent: FerretDB v1.24 drops the connection when createIndexes
    names an index that already exists on the SQLite backend.
    """
    by_collection: dict[str, list[IndexDeclaration]] = {}
    for declaration in declarations:
        by_collection.setdefault(declaration.collection, []).append(declaration)
    for collection, wanted in by_collection.items():
        existing = {index["name"] async for index in await database[collection].list_indexes()}
        missing = [d.model() for d in wanted if d.name not in existing]
        if missing:
            await database[collection].create_indexes(missing)
