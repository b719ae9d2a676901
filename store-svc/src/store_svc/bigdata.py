"""python -m store_svc.bigdata --stores 2000: a large deterministic chain for benchmarks.

Stores are spread over the Yangtze River delta around its cities (Shanghai, Suzhou,
Hangzhou, Nanjing, Ningbo, Wuxi, ...), written one by one through the same repository path
as CreateStore, so the geo grid is maintained exactly as in production. Each store also
gets inventory for `--skus` SKUs ("p_0001_s1" ...). Re-running adds only what is missing.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
from datetime import time

from tqdm import tqdm

from retail_kit.mongo import connect
from store_svc import settings
from store_svc.demo_data import demo_inventory_for
from store_svc.domain import (
    Address,
    GeoPoint,
    OpeningInterval,
    Store,
    StoreService,
    StoreStatus,
    StoreType,
)
from store_svc.inventory import INVENTORY
from store_svc.repository import DuplicateStore, StoreRepository
from store_svc.seed import insert_missing

SEED = 3
# (city, latitude, longitude, weight, spread in degrees)
CITIES = (
    ("上海市", 31.2304, 121.4737, 30, 0.25),
    ("苏州市", 31.2990, 120.5853, 12, 0.15),
    ("杭州市", 30.2741, 120.1551, 14, 0.18),
    ("南京市", 32.0603, 118.7969, 12, 0.18),
    ("宁波市", 29.8683, 121.5440, 8, 0.15),
    ("无锡市", 31.4912, 120.3119, 7, 0.12),
    ("常州市", 31.8107, 119.9740, 5, 0.12),
    ("嘉兴市", 30.7469, 120.7555, 4, 0.10),
    ("南通市", 31.9802, 120.8943, 4, 0.12),
    ("绍兴市", 30.0303, 120.5802, 4, 0.10),
)


def big_stores(count: int) -> list[Store]:
    rng = random.Random(SEED)
    weights = [c[3] for c in CITIES]
    hours = tuple(OpeningInterval(d, time(10), time(22)) for d in range(1, 8))
    stores = []
    for number in range(1, count + 1):
        city, lat, lng, _w, spread = rng.choices(CITIES, weights)[0]
        stores.append(
            Store(
                id=f"st_b{number:05d}",
                code=f"B{number:05d}",
                name={"zh-Hans": f"{city}第{number}号店", "en": f"Store B{number:05d}"},
                type=StoreType.STANDARD,
                address=Address(f"测试路{number}号", "", city, "", ""),
                location=GeoPoint(
                    round(lat + rng.gauss(0, spread), 6), round(lng + rng.gauss(0, spread), 6)
                ),
                timezone="Asia/Shanghai",
                weekly_hours=hours,
                services=(StoreService.PICKUP, StoreService.RETURNS),
                pickup_preparation_minutes=rng.choice((15, 20, 30, 45)),
                pickup_hold_days=5,
                status=StoreStatus.OPEN,
            )
        )
    return stores


async def generate(uri: str, database_name: str, count: int, skus: int) -> None:
    client = connect(uri, "store-bigdata")
    try:
        database = client[database_name]
        repository = StoreRepository(database)
        await repository.ensure_indexes()
        stores = big_stores(count)
        for store in tqdm(stores, desc="stores", unit="store", file=sys.stderr):
            try:
                await repository.create_store(store)
            except DuplicateStore:
                await repository.reindex_store(store)
        sku_ids = [f"p_{n:04d}_s1" for n in range(1, skus + 1)]
        report = await insert_missing(database, INVENTORY, demo_inventory_for(stores, sku_ids))
        print(f"{count} stores; {report}")
    finally:
        await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", type=int, default=2000)
    parser.add_argument("--skus", type=int, default=20, help="inventory SKUs per store")
    parser.add_argument("--database", default=None, help="default: STORE_DATABASE")
    args = parser.parse_args()
    config = settings.load()
    asyncio.run(
        generate(
            config.mongodb_uri,
            args.database or config.database,
            args.stores,
            args.skus,
        )
    )


if __name__ == "__main__":
    main()
