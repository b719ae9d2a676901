"""Payment, ready for pickup, hand-over, cancel, payment timeout, pickup expiry, shipping.

Owned by the LIFECYCLE area (order-svc/DESIGN.md, "Payment, pickup, cancel, expiry"); the
jobs below are the hooks jobs.py runs on every replica. Stubs until that area lands.
"""

from __future__ import annotations

from datetime import datetime

from order_svc.services import OrderServices


async def payment_timeout_job(services: OrderServices, now: datetime) -> int:
    """Cancels AWAITING_PAYMENT orders past their payment deadline; returns how many."""
    return 0


async def pickup_expiry_job(services: OrderServices, now: datetime) -> int:
    """Expires pickups not collected by their hold end; returns how many."""
    return 0
