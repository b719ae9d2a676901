"""python -m member_svc.bigdata --members 100000: a large deterministic membership for benchmarks.

Members `m_b0000001` ... with what segments and campaigns look at, spread like a chain's
CRM data: home stores st_001 .. st_020 (the demo stores, busier ones weighted up), an
exclusive guide for about 40% (as_st_0NN_01 .. _05 of the home store), 0-4 tags from a
catalogue of 16 (popular ones more often), tiers weighted bronze > silver > gold > platinum
with points bands to match (about 15% at zero), join times over the last three years (3%
in the last 30 days: "new"), a last purchase for 85% spread over the last year (never before
joining), a phone identity each (its `identities` claim document too), a unique invite code.

Points go through the ledger: each member with points gets the points book's own `opening`
entry (`points.opening_entry`, one available lot), and the member document's `points` is
that entry's head, exactly as the demo seed does, so balance = ledger holds on this data as
well. Times are relative to `--now` (default: the current time), so lifecycle stages come out
as described when the benchmark runs.

Documents are inserted in batches of 1,000 (unordered); ids that exist are skipped, so a
rerun with the same count and `--now` adds nothing and a larger count adds only the new
members (use `--database` for a fresh set per size).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError
from tqdm import tqdm

from member_svc import settings
from member_svc.books import ensure_all_indexes
from member_svc.domain import (
    AssociateBinding,
    Channel,
    Consent,
    Identity,
    IdentityKind,
    Member,
    MemberTag,
    Tier,
)
from member_svc.points import LEDGER, opening_entry
from member_svc.repository import IDENTITIES, MEMBERS, identity_to_document, member_to_document
from retail_kit.mongo import Document, connect

SEED = 77
BATCH = 1_000
STORES = tuple(f"st_{n:03d}" for n in range(1, 21))
STORE_WEIGHTS = tuple(3 if n <= 5 else 2 if n <= 12 else 1 for n in range(1, 21))
TAGS = (
    ("coffee_lover", 14),
    ("tea_lover", 10),
    ("snack_fan", 12),
    ("beauty_vip", 6),
    ("fashion", 7),
    ("home_decor", 5),
    ("office_worker", 11),
    ("weekend_shopper", 9),
    ("mother_baby", 5),
    ("pet_owner", 4),
    ("fitness", 4),
    ("student", 6),
    ("senior", 3),
    ("wine_lover", 3),
    ("organic", 3),
    ("new_member", 4),
)
# (tier, weight, points ceiling)
TIERS = (
    (Tier.BRONZE, 60, 2_000),
    (Tier.SILVER, 25, 8_000),
    (Tier.GOLD, 11, 20_000),
    (Tier.PLATINUM, 4, 60_000),
)
SURNAMES = "".join(
    ("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑", "梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程")
)
GIVEN = "".join(
    (
        "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞",
        "平刚华玉萍红玲芬燕彬鹏辉雨桐浩然思琪佳怡子轩晓雯欣梓涵",
    )
)
CHANNELS = (Channel.POS, Channel.MINI_PROGRAM, Channel.APP, Channel.KIOSK)
CHANNEL_WEIGHTS = (5, 4, 2, 1)


def member_id(number: int) -> str:
    return f"m_b{number:07d}"


def big_member(number: int, now: datetime) -> Member:
    """Member `number` (1-based); the same for the same number and `now`."""
    rng = random.Random(SEED * 1_000_003 + number)
    store = rng.choices(STORES, STORE_WEIGHTS)[0]
    if rng.random() < 0.03:
        join_time = now - timedelta(seconds=rng.uniform(0, 30 * 86_400))
    else:
        join_time = now - timedelta(seconds=rng.uniform(30 * 86_400, 3 * 365 * 86_400))
    purchase = None
    if rng.random() < 0.85:
        purchase = now - timedelta(seconds=rng.uniform(0, 365 * 86_400))
        if purchase < join_time:
            purchase = join_time + (now - join_time) * rng.random()
    tier = rng.choices([t[0] for t in TIERS], [t[1] for t in TIERS])[0]
    tags: list[str] = []
    wanted = rng.choices((0, 1, 2, 3, 4), (15, 30, 30, 17, 8))[0]
    names, weights = [t[0] for t in TAGS], [t[1] for t in TAGS]
    while len(tags) < wanted:
        tag = rng.choices(names, weights)[0]
        if tag not in tags:
            tags.append(tag)
    associate = None
    if rng.random() < 0.4:
        associate = AssociateBinding(f"as_{store}_{rng.randint(1, 5):02d}", store, join_time)
    name = rng.choice(SURNAMES) + "".join(rng.choices(GIVEN, k=rng.randint(1, 2)))
    return Member(
        id=member_id(number),
        display_name=name,
        identities=(Identity(IdentityKind.PHONE, f"+86135{number:08d}"),),
        tier=tier,
        home_store_id=store,
        join_time=join_time,
        referral_code=f"B{number:07d}",
        tags=tuple(
            MemberTag(t, associate.associate_id if associate else "seed", store, join_time)
            for t in tags
        ),
        consent=Consent(marketing=rng.random() < 0.7),
        associate=associate,
        join_channel=rng.choices(CHANNELS, CHANNEL_WEIGHTS)[0],
        join_store_id=store,
        last_purchase_time=purchase,
        tier_since=join_time,
    )


def big_points(number: int, tier: Tier) -> int:
    rng = random.Random(SEED * 7_919 + number)
    if rng.random() < 0.15:
        return 0
    ceiling = next(t[2] for t in TIERS if t[0] is tier)
    return int(rng.triangular(0, ceiling, ceiling / 5))


def documents(numbers: Sequence[int], now: datetime) -> tuple[list[Document], ...]:
    """(members, identities, ledger entries) for `numbers`."""
    members: list[Document] = []
    identities: list[Document] = []
    entries: list[Document] = []
    for number in numbers:
        member = big_member(number, now)
        doc = member_to_document(member)
        points = big_points(number, member.tier)
        if points:
            entry = opening_entry(member.id, points)
            doc["points"] = entry["head"]
            entries.append(entry)
        members.append(doc)
        identities.extend(identity_to_document(i, member.id) for i in member.identities)
    return members, identities, entries


async def insert_missing(collection: AsyncCollection[Document], docs: list[Document]) -> int:
    if not docs:
        return 0
    try:
        result = await collection.insert_many(docs, ordered=False)
        return len(result.inserted_ids)
    except BulkWriteError as error:
        codes = {e.get("code") for e in error.details.get("writeErrors", ())}
        if codes - {11000}:
            raise
        return int(error.details.get("nInserted", 0))


async def generate(uri: str, database_name: str, count: int, now: datetime) -> dict[str, int]:
    client = connect(uri, "member-bigdata")
    inserted = {MEMBERS: 0, IDENTITIES: 0, LEDGER: 0}
    try:
        database = client[database_name]
        await ensure_all_indexes(database)
        with tqdm(total=count, desc="members", unit="member", file=sys.stderr) as progress:
            for first in range(1, count + 1, BATCH):
                numbers = range(first, min(first + BATCH, count + 1))
                members, identities, entries = documents(numbers, now)
                # The ledger before the heads that point to it, members before their claims.
                inserted[LEDGER] += await insert_missing(database[LEDGER], entries)
                inserted[MEMBERS] += await insert_missing(database[MEMBERS], members)
                inserted[IDENTITIES] += await insert_missing(database[IDENTITIES], identities)
                progress.update(len(numbers))
    finally:
        await client.close()
    return inserted


def main(argv: list[str] | None = None) -> None:
    config = settings.load()
    parser = argparse.ArgumentParser(prog="python -m member_svc.bigdata", description=__doc__)
    parser.add_argument("--members", type=int, default=10_000, help="how many (default 10000)")
    parser.add_argument("--database", default=config.database, help="default: MEMBER_DATABASE")
    parser.add_argument("--mongodb-uri", default=config.mongodb_uri)
    parser.add_argument(
        "--now",
        type=datetime.fromisoformat,
        default=None,
        help="ISO time the data is relative to (default: now, UTC)",
    )
    args = parser.parse_args(argv)
    if args.members < 1:
        parser.error("--members must be at least 1")
    now = args.now or datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    counts = asyncio.run(generate(args.mongodb_uri, args.database, args.members, now))
    for collection, number in counts.items():
        print(f"member {collection}: {number} inserted")


if __name__ == "__main__":
    main()
