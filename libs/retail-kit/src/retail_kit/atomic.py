"""Single-document conditional updates that stay atomic on FerretDB v1 as well as on MongoDB.

MongoDB applies the filter and the update of `find_one_and_update` / `update_one` to one
document atomically. FerretDB v1 does not: it reads the matching document, applies the
update in its own process and writes the result back in a separate backend transaction
(FerretDB issue 3040), so two concurrent `{qty: {$gte: 1}}, {$inc: {qty: -1}}` updates can
both see qty = 1 and one decrement is lost.

The owning service is the only writer of its database, so it can close that window itself:
on FerretDB every conditional update of a document runs while the service holds that
document's lock; on MongoDB the lock is skipped. The price is that a service on FerretDB
must run as a single replica (documented in docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.results import UpdateResult

from retail_kit.mongo import Document, ServerFlavor

_LockKey = tuple[str, Any]


class DocumentWriteGuard:
    """Serializes writes per document (collection, _id) when the server needs it."""

    def __init__(self, flavor: ServerFlavor | None = None) -> None:
        # Until the server is known, serialize: it is always safe, merely slower.
        self._serialize = flavor is not ServerFlavor.MONGODB
        self._locks: dict[_LockKey, tuple[asyncio.Lock, int]] = {}

    @property
    def serializes(self) -> bool:
        return self._serialize

    def use_flavor(self, flavor: ServerFlavor) -> None:
        self._serialize = flavor is not ServerFlavor.MONGODB

    @asynccontextmanager
    async def hold(self, collection: str, document_id: Any) -> AsyncIterator[None]:
        """Holds the document's lock (on FerretDB) for a read-modify-write of several steps."""
        if not self._serialize:
            yield
            return
        key = (collection, document_id)
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    async def find_one_and_update(
        self,
        collection: AsyncCollection[Document],
        query: Mapping[str, Any],
        update: Mapping[str, Any] | list[Mapping[str, Any]],
        *,
        upsert: bool = False,
        return_document: bool = ReturnDocument.AFTER,
    ) -> Document | None:
        async with self.hold(collection.name, _document_id(query)):
            return await collection.find_one_and_update(
                query, update, upsert=upsert, return_document=return_document
            )

    async def update_one(
        self,
        collection: AsyncCollection[Document],
        query: Mapping[str, Any],
        update: Mapping[str, Any] | list[Mapping[str, Any]],
        *,
        upsert: bool = False,
    ) -> UpdateResult:
        async with self.hold(collection.name, _document_id(query)):
            return await collection.update_one(query, update, upsert=upsert)


def _document_id(query: Mapping[str, Any]) -> Any:
    """Only `_id`-keyed updates can be serialized per document: anything else is refused."""
    document_id = query.get("_id")
    if document_id is None or isinstance(document_id, Mapping):
        raise ValueError("a guarded update must select exactly one document by its _id value")
    return document_id
