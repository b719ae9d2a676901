"""What every area of order-svc works with: the repository, the clients of the other
services, the settings and the clock (injected, so tests move time instead of waiting)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

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
    # New placements this process runs at once (admission control, saga.py).
    placement_slots: asyncio.Semaphore = field(init=False)
    # store id -> (monotonic time it was read, the store, its ready-by promise then).
    store_cache: dict[str, tuple[float, Any, datetime | None]] = field(
        init=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        self.placement_slots = asyncio.Semaphore(max(self.settings.max_concurrent_placements, 1))

    def now(self) -> datetime:
        return self.clock()
