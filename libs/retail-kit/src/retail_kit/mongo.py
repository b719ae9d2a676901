"""MongoDB access through PyMongo's async API: the client, batch reads by id, index declarations."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pymongo import AsyncMongoClient, IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError
from pymongo.monitoring import CommandListener
from pymongo.results import UpdateResult

Document = dict[str, Any]


def connect(
    uri: str, app_name: str, *, listeners: Sequence[CommandListener] = ()
) -> AsyncMongoClient[Document]:
    """Creates the client lazily: nothing is contacted until the first command.

    Client options in `uri` are honoured as given: the embedded server's URI turns
    retryable writes off (`retail_kit.embedded`), a production MONGODB_URI keeps PyMongo's
    default (on) unless it says otherwise."""
    return AsyncMongoClient(
        uri,
        appname=app_name,
        serverSelectionTimeoutMS=2_000,
        tz_aware=True,
        event_listeners=list(listeners),
    )


async def find_by_ids(
    collection: AsyncCollection[Document], ids: Sequence[Any]
) -> dict[Any, Document]:
    """Documents by `_id`, in one `$in` answered from the `_id` index; absent ids are left out."""
    if not ids:
        return {}
    wanted = list(dict.fromkeys(ids))
    return {doc["_id"]: doc async for doc in collection.find({"_id": {"$in": wanted}})}


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
    """Creates the declared indexes that do not exist yet (matched by name), so a start-up
    on existing data sends nothing and a changed declaration is noticed by its new name."""
    by_collection: dict[str, list[IndexDeclaration]] = {}
    for declaration in declarations:
        by_collection.setdefault(declaration.collection, []).append(declaration)
    for collection, wanted in by_collection.items():
        existing = {index["name"] async for index in await database[collection].list_indexes()}
        missing = [d.model() for d in wanted if d.name not in existing]
        if missing:
            await database[collection].create_indexes(missing)


UPSERT_ATTEMPTS = 5


async def upsert_one(
    collection: AsyncCollection[Document], query: Mapping[str, Any], update: Mapping[str, Any]
) -> UpdateResult:
    """`update_one(..., upsert=True)` that survives the race of two first writers.

    Two concurrent upserts of a missing document may both try the insert; the loser gets
    a duplicate key error (MongoDB retries some such upserts itself, not every server
    does). Retrying turns it into the update it should have been.
    """
    for _ in range(UPSERT_ATTEMPTS - 1):
        try:
            return await collection.update_one(query, update, upsert=True)
        except DuplicateKeyError:
            continue
    return await collection.update_one(query, update, upsert=True)
