"""The benchmark floor: a bare Starlette endpoint doing the products read directly with PyMongo.

Same documents, same page size, same JSON shape as the gateway's `products` query, but no
GraphQL, no gRPC hop and no service: what the gateway costs is the difference.
Run: MONGODB_URI=... CATALOG_DATABASE=catalog uvicorn floor_app:app
"""

from __future__ import annotations

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
products = client[os.environ.get("CATALOG_DATABASE", "catalog")]["products"]


def node(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": doc["_id"],
        "title": doc["title"].get("zh-Hans", ""),
        "skus": [
            {"id": s["id"], "barcode": s["barcode"], "price": s["price"]} for s in doc["skus"]
        ],
    }


async def list_products(request: Request) -> JSONResponse:
    first = int(request.query_params.get("first", "20"))
    cursor = products.find({"status": "active"}).sort("_id", 1).limit(first + 1)
    docs = await cursor.to_list()
    edges = [{"node": node(doc)} for doc in docs[:first]]
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
