"""What every area of order-svc works with: the repository, the clients of the other
services, the settings and the clock (injected, so tests move time instead of waiting)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from order_svc.clients import ServiceClients
from order_svc.repository import OrderRepository
from order_svc.settings import OrderSettings

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """Now, to the millisecond (what the database keeps), so a time read back equals it."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


@dataclass(slots=True)
class OrderServices:
    repository: OrderRepository
    clients: ServiceClients
    settings: OrderSettings
    clock: Clock = utc_now

    def now(self) -> datetime:
        return self.clock()
