"""order-svc settings: ORDER_* variables (MONGODB_URI and LOG_LEVEL shared)."""

from __future__ import annotations

from dataclasses import dataclass

from retail_kit.settings import ServiceSettings, load_settings

DEFAULT_PORT = 50053


@dataclass(frozen=True, slots=True)
class OrderSettings(ServiceSettings):
    port: int = DEFAULT_PORT
    database: str = "order"


def load() -> OrderSettings:
    return load_settings(OrderSettings, "ORDER")
