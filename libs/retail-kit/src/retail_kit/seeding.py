"""Idempotent demo-data loading: upserts by _id, so a second run changes nothing."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass

from pymongo import ReplaceOne
from pymongo.asynchronous.collection import AsyncCollection
from tqdm import tqdm

from retail_kit.mongo import Document

BATCH_SIZE = 1_000
"""Documents per bulk command: few round trips, each command far below the 16 MB limit."""


@dataclass(frozen=True, slots=True)
class SeedReport:
    collection: str
    inserted: int
    updated: int
    unchanged: int

    def __str__(self) -> str:
        return (
            f"{self.collection}: {self.inserted} inserted, {self.updated} updated, "
            f"{self.unchanged} unchanged"
        )


async def upsert_documents(
    collection: AsyncCollection[Document], documents: Sequence[Document]
) -> SeedReport:
    inserted = updated = 0
    with tqdm(
        total=len(documents), desc=collection.name, unit="doc", file=sys.stderr, leave=False
    ) as progress:
        for start in range(0, len(documents), BATCH_SIZE):
            batch = documents[start : start + BATCH_SIZE]
            result = await collection.bulk_write(
                [ReplaceOne({"_id": doc["_id"]}, doc, upsert=True) for doc in batch],
                ordered=False,
            )
            inserted += result.upserted_count
            updated += result.modified_count
            progress.update(len(batch))
    return SeedReport(collection.name, inserted, updated, len(documents) - inserted - updated)
