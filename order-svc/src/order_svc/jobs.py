"""Background jobs of order-svc, run on every replica (each is safe to run concurrently:
every step is a compare-and-set or an idempotent call): saga recovery, payment timeout,
pickup expiry, effects (outbox). A pass that did something runs again at once; an idle one
sleeps `worker_interval_seconds`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from order_svc import effects, lifecycle, saga
from order_svc.services import OrderServices

log = logging.getLogger(__name__)

Job = Callable[[OrderServices, datetime], Awaitable[int]]

RECOVERY = "saga recovery"
PAYMENT_TIMEOUT = "payment timeout"
PICKUP_EXPIRY = "pickup expiry"
EFFECTS = "effects"

JOBS: tuple[tuple[str, Job], ...] = (
    (RECOVERY, saga.recovery_job),
    (PAYMENT_TIMEOUT, lifecycle.payment_timeout_job),
    (PICKUP_EXPIRY, lifecycle.pickup_expiry_job),
    (EFFECTS, effects.effects_job),
)


async def run_jobs_once(services: OrderServices) -> dict[str, int]:
    """Every job once: the work each did (a failed job counts 0 and is logged)."""
    done: dict[str, int] = {}
    for name, job in JOBS:
        try:
            done[name] = await job(services, services.now())
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("order job %r failed; retrying next interval", name)
            done[name] = 0
    return done


async def run_jobs_forever(services: OrderServices, interval: float) -> None:
    while True:
        if sum((await run_jobs_once(services)).values()) == 0:
            await asyncio.sleep(interval)
        else:
            await asyncio.sleep(0)
