"""The benchmark floor: a bare Starlette endpoint doing the products read directly with PyMongo.

Same documents, same reads, same page size and JSON shape as the gateway's queries, but no
GraphQL, no gRPC hop and no service: what the stack costs above the database is the
difference.
Run: MONGODB_URI=... CATALOG_DATABASE=catalog uvicorn floor_app:app
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from pymongo import AsyncMongoClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
    os.environ.get("MONGODB_URI", "mongodb://127.0.0.1:27117/")
)
database = client[os.environ.get("CATALOG_DATABASE", "catalog")]
products = database["products"]


def node(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": doc["_id"],
        "title": doc["title"].get("zh-Hans", ""),
        "skus": [
            {"id": s["id"], "barcode": s["barcode"], "price": s["price"]} for s in doc["skus"]
        ],
    }


async def list_products(request: Request) -> JSONResponse:
    """catalog-svc's reads for a first page: the index marker, the `all` posting, then the
    page's products by _id concurrently (FerretDB pushes down only _id equality)."""
    first = int(request.query_params.get("first", "20"))
    await database["catalog_meta"].find_one({"_id": "search_index", "complete": True})
    posting = await database["search_postings"].find_one({"_id": "all"}) or {"e": {}}
    ids = sorted(posting["e"])[: first + 1]
    docs = await asyncio.gather(*(products.find_one({"_id": i}) for i in ids))
    edges = [{"node": node(doc)} for doc in docs[:first] if doc is not None]
    return JSONResponse({"data": {"products": {"edges": edges}}})


async def get_product(request: Request) -> JSONResponse:
    doc = await products.find_one({"_id": request.query_params["id"]})
    return JSONResponse({"data": {"product": node(doc) if doc else None}})


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    yield
    await client.close()


app = Starlette(
    routes=[Route("/products", list_products), Route("/product", get_product)], lifespan=lifespan
)
