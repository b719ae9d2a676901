"""The discovery benchmark's floor: search and nearby stores done in-process with PyMongo.

Bare Starlette endpoints calling catalog-svc's and store-svc's own code directly on an
AsyncMongoClient, without gRPC, GraphQL or a service process; the JSON has the shape of the
gateway's answer. What the stack costs above the database reads is the difference.

- `/search?q=咖啡&first=20`: catalog-svc's SearchProducts reads for a text query — the
  `t:<token>` postings in one `$in` (`retail_kit.mongo.find_by_ids`, deliberately not
  `CatalogRepository.get_postings`, which serves them from its in-process cache),
  `search.rank` and the first page of its result, then the page's products by `_id`
  (`CatalogRepository.get_products`).
  The postings are decoded on every call: this floor is the uncached database cost, and
  catalog-svc, whose posting cache is on by default, may beat it.
- `/nearby?lat=&lng=&radius=&sku=&first=10`: store-svc's own `Locator.nearby` over
  `StoreRepository` and `InventoryBook` on the store database's plain collections
  (`geo_grid`, `stores`, `inventory`), exactly as the servicer wires it.

Run: MONGODB_URI=... CATALOG_DATABASE=... STORE_DATABASE=... uvicorn discovery_floor:app
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from pymongo import AsyncMongoClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from catalog_svc import search
from catalog_svc import settings as catalog_settings
from catalog_svc.repository import POSTINGS, CatalogRepository
from retail_kit.mongo import find_by_ids
from store_svc import settings as store_settings
from store_svc.inventory import InventoryBook
from store_svc.locator import Locator, NearbyQuery
from store_svc.repository import StoreRepository

client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
    os.environ.get("MONGODB_URI", "mongodb://127.0.0.1:27117/")
)
catalog_db = client[catalog_settings.load().database]
catalog = CatalogRepository(catalog_db)
store_db = client[store_settings.load().database]
locator = Locator(StoreRepository(store_db), InventoryBook(store_db))


async def search_products(request: Request) -> JSONResponse:
    query = request.query_params.get("q", "")
    first = int(request.query_params.get("first", "20"))
    tokens = search.query_tokens(query)
    keys = [search.token_key(t) for t in tokens] or [search.ALL_KEY]
    found = await find_by_ids(catalog_db[POSTINGS], keys)
    postings = {key: dict(doc.get("e") or {}) for key, doc in found.items()}
    result = search.rank(tokens, postings, keys, search.SearchFilter())
    page = result.page(None, first)
    products = await catalog.get_products([h.product_id for h in page])
    edges = [
        {
            "node": {
                "id": p.id,
                "title": p.title.values.get("zh-Hans", ""),
                "skus": [{"id": s.id, "price": {"amount": s.price.amount}} for s in p.skus],
            }
        }
        for p in (products[h.product_id] for h in page if h.product_id in products)
    ]
    facets = [{"count": n} for _, n in result.category_facets]
    body = {"totalCount": len(result), "edges": edges, "categoryFacets": facets}
    return JSONResponse({"data": {"search": body}})


async def nearby_stores(request: Request) -> JSONResponse:
    params = request.query_params
    sku = params.get("sku")
    results = await locator.nearby(
        NearbyQuery(
            latitude=float(params["lat"]),
            longitude=float(params["lng"]),
            radius_km=float(params.get("radius", "10")),
            limit=int(params.get("first", "10")),
            sku_ids=(sku,) if sku else (),
        ),
        datetime.now(UTC),
    )
    body = [
        {
            "store": {"id": r.store.id},
            "distanceKm": round(r.distance_km, 3),
            "openNow": r.open_now,
            "readyBy": r.ready_by.isoformat() if r.ready_by else None,
            "availability": [{"available": a} for _, a in r.availability],
        }
        for r in results
    ]
    return JSONResponse({"data": {"nearbyStores": body}})


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    yield
    await client.close()


app = Starlette(
    routes=[Route("/search", search_products), Route("/nearby", nearby_stores)],
    lifespan=lifespan,
)
