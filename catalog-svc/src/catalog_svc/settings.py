"""catalog-svc settings: CATALOG_* variables (MONGODB_URI and LOG_LEVEL shared)."""

from __future__ import annotations

from dataclasses import dataclass

from retail_kit.settings import ServiceSettings, load_settings

DEFAULT_PORT = 50051


@dataclass(frozen=True, slots=True)
class CatalogSettings(ServiceSettings):
    port: int = DEFAULT_PORT
    database: str = "catalog"


def load() -> CatalogSettings:
    return load_settings(CatalogSettings, "CATALOG")
