"""A database written before partitioning is refused, then migrated by store_svc.repartition."""

from __future__ import annotations

import pytest
from pymongo import AsyncMongoClient

from retail_kit.mongo import Document
from retail_kit.partitions import PartitionLayoutMismatch
from retail_kit.testing import unique_name
from store_svc.partitioning import hot_collections
from store_svc.repartition import main as repartition_main
from store_svc.reservations import CURSOR_ID


async def test_legacy_collections_are_refused_then_migrated(mongo_uri: str) -> None:
    name = unique_name("store_legacy")
    client: AsyncMongoClient[Document] = AsyncMongoClient(mongo_uri)
    try:
        database = client[name]
        inventory = [{"_id": f"st_1:p_{n:04d}_s1", "on_hand": n} for n in range(30)]
        await database["inventory"].insert_many(inventory)
        await database["geo_grid"].insert_one({"_id": "g1:312:1214", "stores": []})
        orders = [f"o-{n}" for n in range(10)]
        await database["reservation_expiry"].insert_many(
            [
                {"_id": CURSOR_ID, "next_hour": "2026010100"},
                {"_id": "h:2026010203", "orders": orders},
            ]
        )
        with pytest.raises(PartitionLayoutMismatch, match="unpartitioned"):
            await hot_collections(database, 8).ensure_layout()

        await repartition_main(mongo_uri, name, 8)
        await repartition_main(mongo_uri, name, 8)  # again: nothing changes

        hot = hot_collections(database, 8)
        await hot.ensure_layout()
        found = await hot.inventory.find_by_ids([doc["_id"] for doc in inventory])
        assert {k: d["on_hand"] for k, d in found.items()} == {
            d["_id"]: d["on_hand"] for d in inventory
        }
        assert await hot.geo_grid.find_by_ids(["g1:312:1214"])
        listed: list[str] = []
        for order_id in orders:
            bucket = await hot.expiry.for_key(order_id).find_one({"_id": "h:2026010203"})
            assert bucket is not None and order_id in bucket["orders"]
            listed.extend(bucket["orders"])
        assert sorted(set(listed)) == sorted(orders)
        for collection in hot.expiry:
            cursor = await collection.find_one({"_id": CURSOR_ID})
            assert cursor is not None and cursor["next_hour"] == "2026010100"
        remaining = set(await database.list_collection_names())
        assert not {"inventory", "geo_grid", "reservation_expiry"} & remaining
    finally:
        await client.close()
