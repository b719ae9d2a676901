"""The points ledger: entries idempotent by (kind, reference), lots, the account head.

Owned by the points and tiers work of issue 7 (member-svc/DESIGN.md); a stub until it lands.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from pymongo.asynchronous.database import AsyncDatabase

from member_svc.settings import MemberSettings
from retail_kit.mongo import Document, IndexDeclaration

if TYPE_CHECKING:
    from member_svc.books import Books

INDEXES: tuple[IndexDeclaration, ...] = ()


class PointsBook:
    def __init__(
        self,
        database: AsyncDatabase[Document],
        settings: MemberSettings,
        clock: Callable[[], datetime],
    ) -> None:
        self._db = database
        self._settings = settings
        self._clock = clock


async def expiry_job(books: Books, now: datetime) -> int:
    """One pass of the background job; returns how much it did (0 = nothing due)."""
    return 0
