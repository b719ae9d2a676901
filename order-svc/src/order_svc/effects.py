"""The outbox worker: delivers pending effects of orders (effects_due <= now) with retries.

Owned by the EVENTS area (order-svc/DESIGN.md, "Effects (the outbox) and events"). The
saga already delivers its compensations itself (participants.py); this job is the hook
jobs.py runs on every replica. Stub until that area lands.
"""

from __future__ import annotations

from datetime import datetime

from order_svc.services import OrderServices


async def effects_job(services: OrderServices, now: datetime) -> int:
    """Delivers due effects; returns how many were delivered."""
    return 0
