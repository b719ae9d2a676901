"""Demo seed for loyalty: the default tier policy, each demo member's opening points, and a
first tier review for the demo members above the lowest tier."""

from __future__ import annotations

from collections.abc import Sequence

from pymongo.asynchronous.database import AsyncDatabase

from member_svc import loyalty_rules as rules
from member_svc.demo_data import opening_points
from member_svc.points import OPENING_TIME, seed_opening_points
from member_svc.tiers import seed_default_policy
from retail_kit.mongo import Document
from retail_kit.seeding import SeedReport


async def seed_loyalty(
    database: AsyncDatabase[Document], member_documents: Sequence[Document]
) -> list[SeedReport]:
    """Call before the member documents are written: it sets their `points` to the opening
    entry's head (see `points.seed_opening_points`), and gives members above the lowest tier
    the tier they were loaded with since the ledger's start (2026-01-01 Shanghai) with a
    review a year later, as a migration from a previous system would; without it their tier
    would never be reviewed. Deterministic: a second run changes nothing."""
    lowest = rules.DEFAULT_POLICY.tiers[0].code.value
    for member in member_documents:
        if member["tier"] != lowest and member.get("tier_review_time") is None:
            member["tier_since"] = OPENING_TIME
            member["tier_review_time"] = rules.one_year_later(OPENING_TIME)
    return [
        await seed_opening_points(database, member_documents, opening_points()),
        await seed_default_policy(database),
    ]
