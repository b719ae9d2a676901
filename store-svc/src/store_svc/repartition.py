"""python -m store_svc.repartition: moves store-svc's data to STORE_PARTITIONS partitions.

Run with store-svc stopped: after upgrading a database written before partitioning (the
service refuses to start while `inventory`, `geo_grid`, ... still hold documents) or to
change the partition count. Collections keyed by `_id` move document by document
(`retail_kit.partitions.repartition`). `reservation_expiry` is keyed by order id, not by
its documents' `_id`: each hour bucket is split by the orders' partitions and every
partition's cursor starts at the oldest cursor found. Running it again is harmless.
"""

from __future__ import annotations

import asyncio

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from retail_kit.mongo import Document, connect
from retail_kit.partitions import PartitionedCollection, repartition, stored_partitions
from store_svc import settings
from store_svc.partitioning import EXPIRY, hot_collections
from store_svc.reservations import CURSOR_ID


async def _expiry_sources(
    database: AsyncDatabase[Document],
) -> list[AsyncCollection[Document]]:
    sources = [database[EXPIRY]]
    old = await stored_partitions(database, EXPIRY)
    if old is not None:
        sources += list(PartitionedCollection(database, EXPIRY, old))
    return sources


async def repartition_expiry(database: AsyncDatabase[Document], partitions: int) -> None:
    target = PartitionedCollection(database, EXPIRY, partitions)
    sources = await _expiry_sources(database)
    buckets: dict[str, set[str]] = {}
    cursors: list[str] = []
    for source in sources:
        async for doc in source.find({}):
            if doc["_id"] == CURSOR_ID:
                cursors.append(doc["next_hour"])
            else:
                buckets.setdefault(doc["_id"], set()).update(doc.get("orders", ()))
    names = {c.name for c in target}
    for source in sources:
        if source.name not in names:
            await source.drop()
        else:
            await source.delete_many({})
    if cursors:
        for collection in target:
            await collection.insert_one({"_id": CURSOR_ID, "next_hour": min(cursors)})
    for bucket_id, orders in buckets.items():
        for order_id in sorted(orders):
            await target.for_key(order_id).update_one(
                {"_id": bucket_id}, {"$addToSet": {"orders": order_id}}, upsert=True
            )
    await database["partition_layouts"].replace_one(
        {"_id": EXPIRY}, {"_id": EXPIRY, "partitions": partitions}, upsert=True
    )


async def main(uri: str, database_name: str, partitions: int) -> None:
    client = connect(uri, "store-repartition")
    try:
        database = client[database_name]
        hot = hot_collections(database, partitions)
        for partitioned in hot.all():
            if partitioned.base == EXPIRY:
                await repartition_expiry(database, partitions)
            else:
                moved = await repartition(database, partitioned.base, partitions)
                print(f"{partitioned.base}: {moved} documents moved to {partitions} partitions")
        await hot.ensure_layout()
    finally:
        await client.close()


if __name__ == "__main__":
    config = settings.load()
    asyncio.run(main(config.mongodb_uri, config.database, config.partitions))
