"""Which store-svc collections are hash-partitioned, by which key, and their layout check.

FerretDB v1.24 / SQLite makes an update by `_id` cost time linear in the collection's size
(see `retail_kit.partitions`), so every collection updated per request is spread over
`partitions` (setting STORE_PARTITIONS, default 64) physical collections `<base>_<nn>`:

| logical collection   | partition key             | why that key                            |
| -------------------- | ------------------------- | --------------------------------------- |
| `inventory`          | `_id` "<store>:<sku>"     | even spread for any chain shape         |
| `adjustments`        | `_id` = idempotency key   | one record per AdjustInventory          |
| `reservations`       | `_id` = order id          | one document per order, updated 3+ times|
| `reservation_expiry` | order id (bucket per part)| splits the hour bucket every reserve hits|
| `geo_grid`           | `_id` = cell id           | read by every NearbyStores              |
| `store_by_id`        | `_id` = store id          | copies of `stores`, read by `_id`       |

Reads need it too: FerretDB's SELECT for `find_one({_id})` also scans (its plan is `SCAN`,
and the scan stops at the match), so a read by `_id` costs up to the whole collection:
~40-90 ms for a store in the 2,000-store chain (4 KB documents), which made NearbyStores
slow. `stores` itself stays one collection because its unique `code` index and ListStores'
(code, _id) order are global; `store_by_id` holds a copy of each store document, written
with every store write (create, update, seed / reindex), and serves every read by id.

Inventory is keyed by the whole "<store>:<sku>" id, not by the store: with the store as
key, a chain of few stores with large assortments (20 stores x 50,000 SKUs) would fill
only 20 of the partitions with 50,000 documents each, and hashing few keys is lumpy (some
partitions get two or three stores); the whole id spreads any shape evenly, total / N per
partition, which is the smallest a partition can be. Nothing reads inventory by store
except by `_id` (levels of given SKUs), so per-store locality buys nothing.

Insert-only or rarely read collections stay single: `inventory_trail` (audit trail, written
once per adjustment), `stores` (see below), `associates`, `kiosk_devices`.
"""

from __future__ import annotations

from dataclasses import dataclass

from pymongo.asynchronous.database import AsyncDatabase

from retail_kit.mongo import Document
from retail_kit.partitions import DEFAULT_PARTITIONS, PartitionedCollection
from retail_kit.settings import ServiceSettings

INVENTORY = "inventory"
ADJUSTMENTS = "adjustments"
RESERVATIONS = "reservations"
EXPIRY = "reservation_expiry"
GEO_GRID = "geo_grid"
STORE_COPIES = "store_by_id"


@dataclass(frozen=True, slots=True)
class HotCollections:
    inventory: PartitionedCollection
    adjustments: PartitionedCollection
    reservations: PartitionedCollection
    expiry: PartitionedCollection
    geo_grid: PartitionedCollection
    store_copies: PartitionedCollection

    def all(self) -> tuple[PartitionedCollection, ...]:
        return (
            self.inventory,
            self.adjustments,
            self.reservations,
            self.expiry,
            self.geo_grid,
            self.store_copies,
        )

    async def ensure_layout(self) -> None:
        """Raises PartitionLayoutMismatch if the database was written with another N."""
        for partitioned in self.all():
            await partitioned.ensure_layout()
            await partitioned.ensure_indexes()


def hot_collections(
    database: AsyncDatabase[Document], partitions: int = DEFAULT_PARTITIONS
) -> HotCollections:
    return HotCollections(
        inventory=PartitionedCollection(database, INVENTORY, partitions),
        adjustments=PartitionedCollection(database, ADJUSTMENTS, partitions),
        reservations=PartitionedCollection(database, RESERVATIONS, partitions),
        expiry=PartitionedCollection(database, EXPIRY, partitions),
        geo_grid=PartitionedCollection(database, GEO_GRID, partitions),
        store_copies=PartitionedCollection(database, STORE_COPIES, partitions),
    )


def partitions_setting(settings: ServiceSettings) -> int:
    return int(getattr(settings, "partitions", DEFAULT_PARTITIONS))
