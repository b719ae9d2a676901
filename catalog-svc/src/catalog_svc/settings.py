"""catalog-svc settings: CATALOG_* variables (MONGODB_URI and LOG_LEVEL shared)."""

from __future__ import annotations

from dataclasses import dataclass

from retail_kit.settings import ServiceSettings, load_settings

DEFAULT_PORT = 50051


@dataclass(frozen=True, slots=True)
class CatalogSettings(ServiceSettings):
    port: int = DEFAULT_PORT
    database: str = "catalog"
    # In-process search posting cache (posting_cache.py), bounded by the product entries it
    # holds summed over its postings (~200 bytes each); 0 turns it off.
    # CATALOG_SEARCH_CACHE_ENTRIES.
    search_cache_entries: int = 500_000
    # Ranked search results (hits in order + facet counts) kept beside the postings, under
    # the same revision, bounded by the hits held summed over them (~30 bytes each while the
    # posting they come from is cached too); 0 turns it off. Off as well when the posting
    # cache is. CATALOG_SEARCH_RESULT_CACHE_ENTRIES.
    search_result_cache_entries: int = 500_000


def load() -> CatalogSettings:
    return load_settings(CatalogSettings, "CATALOG")
