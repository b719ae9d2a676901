"""Partitioned collections against the real database: stable mapping, placement, layout.

Speed is not asserted here (a timing ratio in a test is flaky); the figures come from
store-svc/bench/partitions.py.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from retail_kit.atomic import DocumentWriteGuard
from retail_kit.mongo import Document
from retail_kit.partitions import (
    DEFAULT_PARTITIONS,
    LAYOUT_COLLECTION,
    PartitionedCollection,
    PartitionIndex,
    PartitionLayoutMismatch,
    partition_of,
    repartition,
    stored_partitions,
)
from retail_kit.testing import unique_name


@pytest.fixture
async def database(mongo_uri: str) -> AsyncIterator[AsyncDatabase[Document]]:
    client: AsyncMongoClient[Document] = AsyncMongoClient(mongo_uri)
    try:
        yield client[unique_name("partitions")]
    finally:
        await client.close()


def test_mapping_is_crc32_and_stable() -> None:
    # Fixed values: a change of the hash would move every stored document.
    assert partition_of("st_001:p_0001_s1", 64) == zlib.crc32(b"st_001:p_0001_s1") % 64
    assert [partition_of(k, 64) for k in ("a", "order-1", "店:1")] == [
        zlib.crc32(k.encode()) % 64 for k in ("a", "order-1", "店:1")
    ]
    assert partition_of("a", 64) == 0xE8B7BE43 % 64
    keys = [f"st_{s:03d}:p_{n:04d}_s1" for s in range(20) for n in range(300)]
    counts = [0] * DEFAULT_PARTITIONS
    for key in keys:
        counts[partition_of(key, DEFAULT_PARTITIONS)] += 1
    # Even spread: every partition within 25 % of the mean (6000 / 64 = 93.75).
    assert min(counts) > 70 and max(counts) < 118, counts


def test_names_and_limits(database: AsyncDatabase[Document]) -> None:
    small = PartitionedCollection(database, "things", 8)
    assert [c.name for c in small] == [f"things_{i:02d}" for i in range(8)]
    assert len(small) == 8
    assert small.for_key("k").name == f"things_{partition_of('k', 8):02d}"
    assert PartitionedCollection(database, "things", 200).name_of(7) == "things_007"
    with pytest.raises(ValueError):
        PartitionedCollection(database, "things", 0)


async def test_documents_land_where_the_key_says(database: AsyncDatabase[Document]) -> None:
    things = PartitionedCollection(database, "things", 16)
    keys = [f"k{n}" for n in range(200)]
    for key in keys:
        await things.for_key(key).insert_one({"_id": key, "n": 0})
    for index, collection in enumerate(things):
        stored = {doc["_id"] async for doc in collection.find({})}
        assert stored == {k for k in keys if partition_of(k, 16) == index}
    assert await database["things"].count_documents({}) == 0
    found = await things.find_by_ids([*keys[:50], "missing", keys[0]])
    assert sorted(found) == sorted(keys[:50])
    # Updates by `_id` through the guard: the lock key is the physical collection + _id.
    guard = DocumentWriteGuard()
    for _ in range(3):
        await guard.update_one(things.for_key("k7"), {"_id": "k7"}, {"$inc": {"n": 1}})
    doc = await things.for_key("k7").find_one({"_id": "k7"})
    assert doc is not None and doc["n"] == 3


async def test_indexes_are_declared_on_every_partition(database: AsyncDatabase[Document]) -> None:
    things = PartitionedCollection(
        database, "things", 4, indexes=[PartitionIndex((("code", 1),), "code", unique=True)]
    )
    assert [d.collection for d in things.declarations()] == [c.name for c in things]
    await things.ensure_indexes()
    await things.ensure_indexes()  # idempotent
    for collection in things:
        names = {index["name"] async for index in await collection.list_indexes()}
        assert "code" in names


async def test_layout_is_recorded_and_another_count_refused(
    database: AsyncDatabase[Document],
) -> None:
    await PartitionedCollection(database, "things", 8).ensure_layout()
    assert await stored_partitions(database, "things") == 8
    await PartitionedCollection(database, "things", 8).ensure_layout()
    with pytest.raises(PartitionLayoutMismatch, match="8 partitions"):
        await PartitionedCollection(database, "things", 16).ensure_layout()
    assert await database[LAYOUT_COLLECTION].count_documents({}) == 1


async def test_unpartitioned_data_is_refused_until_repartitioned(
    database: AsyncDatabase[Document],
) -> None:
    await database["things"].insert_many([{"_id": f"k{n}", "n": n} for n in range(40)])
    with pytest.raises(PartitionLayoutMismatch, match="unpartitioned"):
        await PartitionedCollection(database, "things", 8).ensure_layout()
    assert await repartition(database, "things", 8) == 40
    await PartitionedCollection(database, "things", 8).ensure_layout()
    # And again to another count: every document moves to its new partition, none is lost.
    await repartition(database, "things", 5)
    things = PartitionedCollection(database, "things", 5)
    await things.ensure_layout()
    found = await things.find_by_ids([f"k{n}" for n in range(40)])
    assert {key: doc["n"] for key, doc in found.items()} == {f"k{n}": n for n in range(40)}
    total = 0
    for index, collection in enumerate(PartitionedCollection(database, "things", 8)):
        async for doc in collection.find({}):
            total += 1
            assert index < 5 and partition_of(doc["_id"], 5) == index
    assert total == 40
    assert "things" not in await database.list_collection_names()
