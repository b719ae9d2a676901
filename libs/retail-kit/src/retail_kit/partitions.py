"""Hash-partitioned collections: one logical collection stored as N physical ones.

Why: on FerretDB v1.24 / SQLite, `update_one` / `replace_one` / `find_one_and_update` /
`delete_one` filtered by `_id` cost time linear in the collection's size (the UPDATE it
emits matches `json->'$._id'` while the `_id_` index is on `json->"_id"`, so SQLite scans
the table): ~2-8 ms at 10 documents, ~45 ms at 1,000, ~100 ms at 10,000. Inserts and
`find_one` by `_id` stay at ~1-2 ms whatever the size. A collection that takes frequent
updates is therefore kept small by spreading it over `N` collections `<base>_<nn>`; each
document lives in the one chosen by a stable hash of its partition key:

    partition = crc32(utf-8 key) mod N      (never Python's `hash`, which is randomized)

Every single-document operation goes to `for_key(key)`; sweeps and admin work iterate
over all partitions (`for collection in partitioned`). Index declarations are applied to
every partition (`declarations`). On MongoDB partitions are harmless: each operation still
targets one collection and its indexes, so the same code runs unchanged there.

N (`DEFAULT_PARTITIONS`, configurable per service through its settings) fixes where every
document lives: changing it moves documents, so it needs a migration (`repartition`, with
the service stopped). The N in use is recorded in a small layout document (collection
`partition_layouts`, `_id` = base name); `ensure_layout` records it on first use and raises
`PartitionLayoutMismatch` when the stored N differs or when an unpartitioned collection
`<base>` still holds documents, so a service refuses to start rather than silently looking
for documents in the wrong place.
"""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from retail_kit.mongo import Document, IndexDeclaration, ensure_indexes, find_by_ids

DEFAULT_PARTITIONS = 64
"""Partitions per hot collection: 10,000 documents -> ~160 per partition, 100,000 -> ~1,600."""

MAX_PARTITIONS = 1000
LAYOUT_COLLECTION = "partition_layouts"


class PartitionLayoutMismatch(RuntimeError):
    """The database was written with another partition count (or unpartitioned)."""


def partition_of(key: str, partitions: int) -> int:
    """The partition of `key`: stable across processes, machines and Python versions."""
    return zlib.crc32(key.encode("utf-8")) % partitions


@dataclass(frozen=True, slots=True)
class PartitionIndex:
    """An index every partition of a partitioned collection carries."""

    keys: Sequence[tuple[str, int]]
    name: str
    unique: bool = False


class PartitionedCollection:
    """Documents of one logical collection spread over `partitions` physical collections.

    The partition key is a string; for collections whose `_id` is that key (the usual
    case), `find_by_ids` reads many documents by `_id` across partitions.
    """

    def __init__(
        self,
        database: AsyncDatabase[Document],
        base: str,
        partitions: int = DEFAULT_PARTITIONS,
        indexes: Sequence[PartitionIndex] = (),
    ) -> None:
        if not 1 <= partitions <= MAX_PARTITIONS:
            raise ValueError(f"{base}: partitions must be 1..{MAX_PARTITIONS}, got {partitions}")
        self._db = database
        self.base = base
        self.partitions = partitions
        self.indexes = tuple(indexes)
        self._width = max(2, len(str(partitions - 1)))
        self._collections = [database[self.name_of(i)] for i in range(partitions)]

    def name_of(self, index: int) -> str:
        """The physical collection name of partition `index`: `<base>_<nn>`."""
        return f"{self.base}_{index:0{self._width}d}"

    def index_of(self, key: str) -> int:
        return partition_of(key, self.partitions)

    def for_key(self, key: str) -> AsyncCollection[Document]:
        """The collection holding (or to hold) the document(s) of partition key `key`."""
        return self._collections[self.index_of(key)]

    def collection(self, index: int) -> AsyncCollection[Document]:
        return self._collections[index]

    def __iter__(self) -> Iterator[AsyncCollection[Document]]:
        """Every partition, in partition order (sweeps, admin, tests)."""
        return iter(self._collections)

    def __len__(self) -> int:
        return self.partitions

    def declarations(self) -> list[IndexDeclaration]:
        """The declared indexes, once per partition, for `retail_kit.mongo.ensure_indexes`."""
        return [
            IndexDeclaration(collection.name, index.keys, index.name, index.unique)
            for collection in self._collections
            for index in self.indexes
        ]

    async def ensure_indexes(self) -> None:
        if self.indexes:
            await ensure_indexes(self._db, self.declarations())

    async def find_by_ids(self, ids: Sequence[str]) -> dict[str, Document]:
        """Documents by `_id` where `_id` is the partition key: one read per partition touched."""
        groups: dict[int, list[str]] = {}
        for document_id in dict.fromkeys(ids):
            groups.setdefault(self.index_of(document_id), []).append(document_id)
        found = await asyncio.gather(
            *(find_by_ids(self._collections[i], group) for i, group in groups.items())
        )
        return {key: doc for part in found for key, doc in part.items()}

    async def ensure_layout(self) -> None:
        """Records N on first use; raises PartitionLayoutMismatch if the database disagrees."""
        layouts = self._db[LAYOUT_COLLECTION]
        stored = await layouts.find_one({"_id": self.base})
        if stored is None:
            if await self._db[self.base].find_one({}, {"_id": 1}) is not None:
                raise PartitionLayoutMismatch(
                    f"{self.base}: an unpartitioned collection {self.base!r} holds documents; "
                    f"migrate it with retail_kit.partitions.repartition first"
                )
            with contextlib.suppress(DuplicateKeyError):  # another process recorded it
                await layouts.insert_one({"_id": self.base, "partitions": self.partitions})
            stored = await layouts.find_one({"_id": self.base})
            assert stored is not None
        if int(stored["partitions"]) != self.partitions:
            raise PartitionLayoutMismatch(
                f"{self.base}: the database holds {stored['partitions']} partitions, this "
                f"service is configured for {self.partitions}; changing N needs a migration "
                f"(retail_kit.partitions.repartition) with the service stopped"
            )


async def stored_partitions(database: AsyncDatabase[Document], base: str) -> int | None:
    """The partition count recorded for `base`, or None if none is recorded yet."""
    stored = await database[LAYOUT_COLLECTION].find_one({"_id": base})
    return int(stored["partitions"]) if stored else None


async def repartition(
    database: AsyncDatabase[Document],
    base: str,
    partitions: int,
    key_of: Callable[[Document], Any] = lambda doc: doc["_id"],
    *,
    batch: int = 500,
) -> int:
    """Moves every document of `base` to the layout with `partitions` partitions.

    Run with the owning service stopped. Sources are the unpartitioned collection `<base>`
    and the partitions of the recorded layout; each document is written to its new
    partition (replace by `_id`, upsert) before it is deleted from its old place (the
    unpartitioned collection is dropped once copied), so an interrupted run can simply be
    run again. The new N is recorded last. Returns the
    number of documents moved. `key_of` gives a document's partition key (default `_id`).
    """
    target = PartitionedCollection(database, base, partitions)
    old = await stored_partitions(database, base)
    sources = [database[base]]
    if old is not None:
        sources += list(PartitionedCollection(database, base, old))
    moved = 0
    for source in sources:
        pending: list[Document] = []
        async for doc in source.find({}):
            destination = target.for_key(str(key_of(doc)))
            if destination.name == source.name:
                continue
            pending.append(doc)
            if len(pending) >= batch:
                moved += await _move(target, source, pending, key_of, delete=source.name != base)
                pending = []
        moved += await _move(target, source, pending, key_of, delete=source.name != base)
        if source.name == base:
            await source.drop()
    await database[LAYOUT_COLLECTION].replace_one(
        {"_id": base}, {"_id": base, "partitions": partitions}, upsert=True
    )
    return moved


async def _move(
    target: PartitionedCollection,
    source: AsyncCollection[Document],
    docs: Sequence[Document],
    key_of: Callable[[Document], Any],
    *,
    delete: bool,
) -> int:
    for doc in docs:
        await target.for_key(str(key_of(doc))).replace_one({"_id": doc["_id"]}, doc, upsert=True)
        if delete:
            await source.delete_one({"_id": doc["_id"]})
    return len(docs)
