"""Prints update-by-_id cost on one collection vs. the same documents over 64 partitions.

uv run python store-svc/bench/partitions.py
Starts its own FerretDB (embedded, temporary directory). Medians of SAMPLES operations on
200-byte documents: update_one / replace_one / find_one by `_id` and insert_one, on a
single collection of 10, 1,000 and 10,000 documents and on 10,000 documents spread over
retail_kit.partitions.DEFAULT_PARTITIONS collections.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection

from retail_kit.ferretdb import EmbeddedFerretDB, free_port
from retail_kit.mongo import Document
from retail_kit.partitions import DEFAULT_PARTITIONS, PartitionedCollection

SAMPLES = 40
PAD = "x" * 150


async def median_ms(operation: Callable[[int], Awaitable[object]]) -> float:
    samples = []
    for n in range(SAMPLES):
        started = time.perf_counter()
        await operation(n)
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def doc(key: str) -> Document:
    return {"_id": key, "n": 0, "pad": PAD}


async def load(pick: Callable[[str], AsyncCollection[Document]], size: int) -> list[str]:
    keys = [f"st_{n // 300:04d}:p_{n % 300:04d}_s1" for n in range(size)]
    groups: dict[str, tuple[AsyncCollection[Document], list[Document]]] = {}
    for key in keys:
        collection = pick(key)
        groups.setdefault(collection.name, (collection, []))[1].append(doc(key))
    for collection, docs in groups.values():
        for start in range(0, len(docs), 1000):
            await collection.insert_many(docs[start : start + 1000])
    return keys


async def measure(label: str, pick: Callable[[str], AsyncCollection[Document]], size: int) -> None:
    keys = await load(pick, size)
    rng = random.Random(1)
    chosen = [rng.choice(keys) for _ in range(SAMPLES)]

    async def update(n: int) -> object:
        key = chosen[n]
        return await pick(key).update_one({"_id": key}, {"$inc": {"n": 1}})

    async def replace(n: int) -> object:
        key = chosen[n]
        return await pick(key).replace_one({"_id": key}, {**doc(key), "n": n})

    async def find(n: int) -> object:
        key = chosen[n]
        return await pick(key).find_one({"_id": key})

    async def insert(n: int) -> object:
        key = f"new:{label}:{n}"
        return await pick(key).insert_one(doc(key))

    figures = [await median_ms(op) for op in (update, replace, find, insert)]
    print(
        f"{label:<32} update_one {figures[0]:6.1f} ms  replace_one {figures[1]:6.1f} ms  "
        f"find_one {figures[2]:5.1f} ms  insert_one {figures[3]:5.1f} ms",
        flush=True,
    )


async def main(uri: str) -> None:
    client: AsyncMongoClient[Document] = AsyncMongoClient(uri)
    try:
        database = client["bench_partitions"]
        for size in (10, 1_000, 10_000):
            collection = database[f"single_{size}"]
            await measure(f"1 collection, {size:,} docs", lambda _key, c=collection: c, size)
        partitioned = PartitionedCollection(database, "spread", DEFAULT_PARTITIONS)
        await measure(f"{DEFAULT_PARTITIONS} partitions, 10,000 docs", partitioned.for_key, 10_000)
    finally:
        await client.close()


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as directory:
        server = EmbeddedFerretDB(Path(directory), free_port()).start()
        try:
            asyncio.run(main(server.uri))
        finally:
            server.stop()
        sys.exit(0)
