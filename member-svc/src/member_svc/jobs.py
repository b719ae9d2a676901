"""Background jobs of member-svc, run on every replica (each is safe to run concurrently:
every step is an idempotent conditional update): points expiry, tier review, expired coupon
locks, campaign issuance. A job that did something runs again at once; an idle one sleeps."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from member_svc import campaigns, coupons, merge, points, tiers
from member_svc.books import Books

log = logging.getLogger(__name__)

Job = Callable[[Books, datetime], Awaitable[int]]

JOBS: tuple[tuple[str, Job], ...] = (
    ("points expiry", points.expiry_job),
    ("tier review", tiers.review_job),
    ("coupon lock release", coupons.lock_release_job),
    ("campaign issuance", campaigns.campaign_job),
    ("merge resume", merge.resume_job),
)


async def run_jobs_once(books: Books) -> int:
    """Every job once; the total work done. Used by the loop and by tests."""
    done = 0
    for name, job in JOBS:
        try:
            done += await job(books, books.clock())
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("member job %r failed; retrying next interval", name)
    return done


async def run_jobs_forever(books: Books, interval: float) -> None:
    while True:
        if await run_jobs_once(books) == 0:
            await asyncio.sleep(interval)
        else:
            await asyncio.sleep(0)
