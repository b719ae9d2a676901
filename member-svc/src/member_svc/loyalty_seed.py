"""Demo seed for loyalty: the default tier policy and each demo member's opening points."""

from __future__ import annotations

from collections.abc import Sequence

from pymongo.asynchronous.database import AsyncDatabase

from member_svc.demo_data import opening_points
from member_svc.points import seed_opening_points
from member_svc.tiers import seed_default_policy
from retail_kit.mongo import Document
from retail_kit.seeding import SeedReport


async def seed_loyalty(
    database: AsyncDatabase[Document], member_documents: Sequence[Document]
) -> list[SeedReport]:
    """Call before the member documents are written: it sets their `points` to the opening
    entry's head (see `points.seed_opening_points`). A second run changes nothing."""
    return [
        await seed_opening_points(database, member_documents, opening_points()),
        await seed_default_policy(database),
    ]
