"""python -m member_svc.seed: loads the deterministic demo members; reruns change nothing.

Members are written before their identity documents, so no identity ever points to a
member that is not stored.
"""

from __future__ import annotations

import asyncio

from member_svc import settings
from member_svc.coupons import seed_coupon_templates
from member_svc.demo_data import demo_members
from member_svc.loyalty_seed import seed_loyalty
from member_svc.repository import (
    IDENTITIES,
    MEMBERS,
    MemberRepository,
    identity_documents,
    member_to_document,
)
from member_svc.tags import seed_tags
from retail_kit.mongo import connect
from retail_kit.seeding import SeedReport, upsert_documents


async def seed(mongodb_uri: str, database_name: str) -> list[SeedReport]:
    members = demo_members()
    identities = identity_documents(members)  # refuses an identity claimed twice, up front
    client = connect(mongodb_uri, "member-seed")
    try:
        database = client[database_name]
        await MemberRepository(database).ensure_indexes()
        member_documents = [member_to_document(m) for m in members]
        loyalty = await seed_loyalty(database, member_documents)  # sets their opening points
        return [
            await upsert_documents(database[MEMBERS], member_documents),
            await upsert_documents(database[IDENTITIES], identities),
            await seed_tags(database),
            await seed_coupon_templates(database),
            *loyalty,
        ]
    finally:
        await client.close()


def main() -> None:
    config = settings.load()
    for report in asyncio.run(seed(config.mongodb_uri, config.database)):
        print(f"member {report}")


if __name__ == "__main__":
    main()
