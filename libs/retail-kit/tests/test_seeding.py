"""Seeding: a second run over changed documents updates them, in batches of BATCH_SIZE."""

from __future__ import annotations

import asyncio

from pymongo import AsyncMongoClient

from retail_kit.mongo import Document
from retail_kit.seeding import BATCH_SIZE, upsert_documents
from retail_kit.testing import unique_name

COUNT = 2_500  # more than two batches


async def test_reseeding_changed_documents_completes_and_reports(mongo_uri: str) -> None:
    client: AsyncMongoClient[Document] = AsyncMongoClient(mongo_uri)
    try:
        things = client[unique_name("seeding")]["things"]
        first = await upsert_documents(things, [{"_id": f"t{n:03d}", "v": 1} for n in range(COUNT)])
        assert (first.inserted, first.updated, first.unchanged) == (COUNT, 0, 0)
        changed = [{"_id": f"t{n:03d}", "v": 2} for n in range(COUNT)]
        second = await asyncio.wait_for(upsert_documents(things, changed), timeout=60)
        assert (second.inserted, second.updated, second.unchanged) == (0, COUNT, 0)
        assert await things.count_documents({"v": 2}) == COUNT
        assert COUNT > 2 * BATCH_SIZE
    finally:
        await client.close()
