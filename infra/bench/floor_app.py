"""The benchmark floor: a bare Starlette endpoint doing the products read directly with PyMongo.

Same documents, same database reads as catalog-svc (posting cache on, its default), same
page size and JSON shape as the gateway's queries, but no GraphQL, no gRPC hop and no
service: what the stack costs above the database is the difference.
Run: MONGODB_URI=... CATALOG_DATABASE=catalog uvicorn floor_app:app
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
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


@dataclass(slots=True)
class _Listing:
    """What catalog-svc's posting cache keeps between calls: the `all` posting's ids, sorted,
    under the index revision read before them (see catalog_svc/posting_cache.py)."""

    revision: str | None = None
    ids: list[str] = field(default_factory=list)


_listing = _Listing()


async def list_products(request: Request) -> JSONResponse:
    """catalog-svc's reads for a first page (CatalogRepository.list_products, cache on): the
    index revision by _id on every call; the index marker and the `all` posting only when
    the revision changed; then the page's products in one `$in` on the _id index."""
    first = int(request.query_params.get("first", "20"))
    revision_doc = await database["catalog_meta"].find_one({"_id": "search_revision"})
    revision = str(revision_doc.get("value", "")) if revision_doc else ""
    if revision != _listing.revision:
        await database["catalog_meta"].find_one({"_id": "search_index", "complete": True})
        posting = await database["search_postings"].find_one({"_id": "all"}) or {"e": {}}
        _listing.revision, _listing.ids = revision, sorted(posting["e"])
    ids = _listing.ids[: first + 1]
    found = {doc["_id"]: doc async for doc in products.find({"_id": {"$in": ids}})}
    edges = [{"node": node(found[i])} for i in ids[:first] if i in found]
    return JSONResponse({"data": {"products": {"edges": edges}}})


async def get_product(request: Request) -> JSONResponse:
    """BatchGetProducts' read for one id (the gateway's DataLoader batches to one call):
    a `$in` of that id."""
    ids = [request.query_params["id"]]
    docs = [doc async for doc in products.find({"_id": {"$in": ids}})]
    return JSONResponse({"data": {"product": node(docs[0]) if docs else None}})


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    yield
    await client.close()


app = Starlette(
    routes=[Route("/products", list_products), Route("/product", get_product)], lifespan=lifespan
)
