"""NearbyStores: the stores around a point, nearest first, with open-now, stock and ready-by.

Candidates come from the geo grid (cells covering the radius, read by `_id`); exact
great-circle distances order them; stores and inventory are then read by `_id`
concurrently, a batch at a time, only until `limit` stores pass the filters. The cost
follows the number of stores within the radius, never the size of the chain.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from store_svc.domain import InventoryLevel, Store, StoreService, StoreStatus
from store_svc.geo import covering_cells, haversine_km
from store_svc.inventory import InventoryBook, inventory_id
from store_svc.opening import is_open, ready_by
from store_svc.repository import StoreRepository

MIN_BATCH = 16


@dataclass(frozen=True, slots=True)
class NearbyQuery:
    latitude: float
    longitude: float
    radius_km: float
    limit: int
    open_now: bool = False
    sku_ids: tuple[str, ...] = ()
    min_available: int = 1
    services: tuple[StoreService, ...] = ()


@dataclass(frozen=True, slots=True)
class NearbyResult:
    store: Store
    distance_km: float
    open_now: bool
    availability: tuple[tuple[str, int], ...]
    ready_by: datetime | None


class Locator:
    def __init__(self, stores: StoreRepository, inventory: InventoryBook) -> None:
        self._stores = stores
        self._inventory = inventory

    async def nearby(self, query: NearbyQuery, now: datetime) -> list[NearbyResult]:
        cells = covering_cells(query.latitude, query.longitude, query.radius_km)
        entries = await self._stores.grid_entries(cells)
        candidates = sorted(
            {
                (haversine_km(query.latitude, query.longitude, lat, lng), store_id)
                for store_id, lat, lng in entries
            }
        )
        candidates = [c for c in candidates if c[0] <= query.radius_km]
        results: list[NearbyResult] = []
        batch = max(query.limit, MIN_BATCH)
        for start in range(0, len(candidates), batch):
            chunk = candidates[start : start + batch]
            results.extend(await self._judge(query, chunk, now))
            if len(results) >= query.limit:
                break
        return results[: query.limit]

    async def _judge(
        self, query: NearbyQuery, chunk: Sequence[tuple[float, str]], now: datetime
    ) -> list[NearbyResult]:
        stores = await self._stores.get_stores([store_id for _, store_id in chunk])
        kept: list[tuple[float, Store, bool]] = []
        for distance, store_id in chunk:
            store = stores.get(store_id)
            if store is None or store.status is StoreStatus.CLOSED:
                continue
            if any(service not in store.services for service in query.services):
                continue
            open_now = is_open(store, now)
            if query.open_now and not open_now:
                continue
            kept.append((distance, store, open_now))
        levels: dict[str, InventoryLevel] = {}
        if query.sku_ids and kept:
            ids = [inventory_id(s.id, sku) for _, s, _ in kept for sku in query.sku_ids]
            levels = await self._inventory.levels_by_id(ids)
        results = []
        for distance, store, open_now in kept:
            availability = tuple(
                (
                    sku,
                    level.available if (level := levels.get(inventory_id(store.id, sku))) else 0,
                )
                for sku in query.sku_ids
            )
            if any(available < query.min_available for _, available in availability):
                continue
            results.append(
                NearbyResult(
                    store=store,
                    distance_km=distance,
                    open_now=open_now,
                    availability=availability,
                    ready_by=ready_by(store, now),
                )
            )
        return results
