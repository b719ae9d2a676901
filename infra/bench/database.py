"""Benchmark: the embedded database (SecantusDB) on its own, through PyMongo's async client.

Starts its own SecantusDB servers (fresh files under var/bench/database, stopped at the end):

1. Per data size (`--sizes`, default 1,000 / 10,000 / 50,000 documents of ~1.5 KB, loaded
   with insert_many in batches): find_one by _id, find with `_id: {$in: 20 ids}` and
   update_one `$inc` by _id (median milliseconds of `--samples` sequential calls on random
   ids), find_one_and_update `$inc` by _id (median of `--returning-samples` calls), 16
   concurrent find_one calls (operations per second, median of `--reps` bursts), and 60
   concurrent conditional decrements (`{_id, stock: {$gte: 1}}`, `{$inc: {stock: -1}}`) on
   a stock of 20, done with update_one (`--reps` rounds, as InventoryBook.take does) and with
   find_one_and_update (`--returning-rounds` rounds): successes and the final stock (every
   distinct value seen; a correct server gives 20 and 0) and the wall time of the 60.
2. The cost of the journal fsync: sequential insert_one/s and update_one/s on the default
   server next to a second server started with `sync_on_commit=True` (fsync on every commit),
   alternating between the two for `--reps` repetitions; medians and default/sync ratios.

Run with `uv run --frozen python infra/bench/database.py`; the figures are printed as a
table and again as markdown at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import shutil
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bson
from pymongo import AsyncMongoClient, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from tqdm import tqdm

from retail_kit.embedded import EmbeddedDatabase, free_port

ROOT = Path(__file__).resolve().parents[2]
BENCH_DIR = ROOT / "var" / "bench" / "database"
DATABASE = "bench"
BATCH = 1_000
IN_IDS = 20
READERS = 16
READS_PER_READER = 100
CONTENDERS = 60
STOCK = 20
WORDS = (
    "espresso",
    "oat",
    "latte",
    "arabica",
    "roast",
    "grinder",
    "filter",
    "kettle",
    "mug",
    "ceramic",
    "matte",
    "glaze",
    "bean",
    "single",
    "origin",
    "washed",
    "natural",
    "honey",
    "process",
    "citrus",
    "cocoa",
    "caramel",
    "berry",
)

Document = dict[str, Any]
Collection = AsyncCollection[Document]


def log(message: str) -> None:
    print(f"[database] {message}", file=sys.stderr, flush=True)


def product(n: int, rng: random.Random) -> Document:
    """A catalog-shaped document of ~1.5 KB of BSON."""
    description = " ".join(rng.choice(WORDS) for _ in range(150))[:1_150]
    return {
        "_id": f"p{n:07d}",
        "title": f"Product {n} " + " ".join(rng.choice(WORDS) for _ in range(6)),
        "description": description,
        "price": {"amount": rng.randint(100, 99_999), "currency": "CNY"},
        "tags": rng.sample(WORDS, 5),
        "category": f"c{n % 40:02d}",
        "status": "active",
        "stock": rng.randint(0, 500),
        "views": 0,
        "skus": [{"id": f"p{n:07d}_s{k}", "barcode": f"69{n:09d}{k}"} for k in range(3)],
    }


@contextmanager
def server(name: str, *, sync_on_commit: bool = False) -> Iterator[EmbeddedDatabase]:
    data_dir = BENCH_DIR / name
    shutil.rmtree(data_dir, ignore_errors=True)
    database = EmbeddedDatabase(data_dir, free_port(), sync_on_commit=sync_on_commit).start()
    log(f"{name}: SecantusDB on {database.uri} (sync_on_commit={sync_on_commit})")
    try:
        yield database
    finally:
        database.stop()


async def load(collection: Collection, size: int) -> float:
    """insert_many in batches of BATCH; returns documents per second."""
    rng = random.Random(size)
    started = time.perf_counter()
    with tqdm(total=size, desc=f"load {size:,}", unit="doc", file=sys.stderr) as progress:
        for first in range(0, size, BATCH):
            batch = [product(n, rng) for n in range(first, min(first + BATCH, size))]
            await collection.insert_many(batch, ordered=False)
            progress.update(len(batch))
    return size / (time.perf_counter() - started)


async def median_ms(samples: int, call: Callable[[int], Awaitable[Any]]) -> float:
    timings = []
    for i in range(samples):
        started = time.perf_counter()
        await call(i)
        timings.append((time.perf_counter() - started) * 1_000)
    return statistics.median(timings)


async def concurrent_reads(collection: Collection, ids: list[str], rng: random.Random) -> float:
    """READERS concurrent find_one loops; operations per second over the burst."""

    async def reader(picks: list[str]) -> None:
        for picked in picks:
            assert await collection.find_one({"_id": picked}) is not None

    picks = [[rng.choice(ids) for _ in range(READS_PER_READER)] for _ in range(READERS)]
    started = time.perf_counter()
    await asyncio.gather(*(reader(p) for p in picks))
    return READERS * READS_PER_READER / (time.perf_counter() - started)


Race = tuple[int, int, float]


async def decrement_race(collection: Collection, round_id: str, *, returning: bool) -> Race:
    """CONTENDERS concurrent conditional decrements on STOCK: successes, final stock, wall ms.

    `returning=False` is update_one (what InventoryBook.take does); `returning=True` is
    find_one_and_update, which also hands back the document.
    """
    probe = f"stock_probe_{round_id}_{int(returning)}"
    await collection.insert_one({"_id": probe, "stock": STOCK})
    condition = {"_id": probe, "stock": {"$gte": 1}}
    decrement = {"$inc": {"stock": -1}}

    async def take() -> bool:
        if returning:
            taken = await collection.find_one_and_update(
                condition, decrement, return_document=ReturnDocument.AFTER
            )
            return taken is not None
        result = await collection.update_one(condition, decrement)
        return result.modified_count == 1

    started = time.perf_counter()
    results = await asyncio.gather(*(take() for _ in range(CONTENDERS)))
    elapsed = (time.perf_counter() - started) * 1_000
    final = await collection.find_one({"_id": probe})
    await collection.delete_one({"_id": probe})
    assert final is not None
    return sum(results), int(final["stock"]), elapsed


@dataclass
class SizeResult:
    size: int
    load_docs_per_s: float
    find_one_ms: float
    in20_ms: float
    update_ms: float
    concurrent_reads_per_s: float
    find_one_and_update_ms: float
    race: list[Race] = field(default_factory=list)
    race_returning: list[Race] = field(default_factory=list)


async def measure_size(
    uri: str, size: int, samples: int, reps: int, returning_samples: int, returning_rounds: int
) -> SizeResult:
    client: AsyncMongoClient[Document] = AsyncMongoClient(uri)
    try:
        collection = client[DATABASE][f"products_{size}"]
        await collection.drop()
        load_rate = await load(collection, size)
        count = await collection.count_documents({})
        assert count == size, f"{count} documents loaded, not {size}"
        sample_doc = await collection.find_one({"_id": "p0000000"})
        assert sample_doc is not None
        log(f"{size:,}: loaded at {load_rate:,.0f} docs/s, {len(bson.encode(sample_doc))} B/doc")

        rng = random.Random(7)
        ids = [f"p{n:07d}" for n in range(size)]
        picks = [rng.choice(ids) for _ in range(samples)]
        in_picks = [rng.sample(ids, IN_IDS) for _ in range(samples)]

        async def find_one(i: int) -> None:
            assert await collection.find_one({"_id": picks[i]}) is not None

        async def find_in(i: int) -> None:
            found = await collection.find({"_id": {"$in": in_picks[i]}}).to_list()
            assert len(found) == IN_IDS

        async def update(i: int) -> None:
            result = await collection.update_one({"_id": picks[i]}, {"$inc": {"views": 1}})
            assert result.modified_count == 1

        async def find_and_update(i: int) -> None:
            found = await collection.find_one_and_update(
                {"_id": picks[i]}, {"$inc": {"views": 1}}, return_document=ReturnDocument.AFTER
            )
            assert found is not None

        await median_ms(min(samples, 50), find_one)  # warm the cache and the pool
        result = SizeResult(
            size=size,
            load_docs_per_s=load_rate,
            find_one_ms=await median_ms(samples, find_one),
            in20_ms=await median_ms(samples, find_in),
            update_ms=await median_ms(samples, update),
            concurrent_reads_per_s=statistics.median(
                [await concurrent_reads(collection, ids, rng) for _ in range(reps)]
            ),
            find_one_and_update_ms=await median_ms(returning_samples, find_and_update),
        )
        for rep in range(reps):
            result.race.append(await decrement_race(collection, str(rep), returning=False))
        for rep in range(returning_rounds):
            result.race_returning.append(await decrement_race(collection, str(rep), returning=True))
        log(
            f"{size:,}: find_one {result.find_one_ms:.2f} ms, $in {result.in20_ms:.2f} ms, "
            f"update {result.update_ms:.2f} ms, {result.concurrent_reads_per_s:,.0f} reads/s, "
            f"races {result.race}, find_one_and_update races {result.race_returning}"
        )
        return result
    finally:
        await client.close()


@dataclass
class WriteRates:
    inserts_per_s: list[float] = field(default_factory=list)
    updates_per_s: list[float] = field(default_factory=list)


async def write_rates(collection: Collection, rep: int, writes: int, rates: WriteRates) -> None:
    """Sequential insert_one then update_one `$inc` (default write concern), per second."""
    rng = random.Random(rep)
    documents = [product(n, rng) | {"_id": f"w{rep}_{n:05d}"} for n in range(writes)]
    started = time.perf_counter()
    for document in documents:
        await collection.insert_one(document)
    rates.inserts_per_s.append(writes / (time.perf_counter() - started))
    ids = [document["_id"] for document in documents]
    started = time.perf_counter()
    for _ in range(writes):
        await collection.update_one({"_id": rng.choice(ids)}, {"$inc": {"views": 1}})
    rates.updates_per_s.append(writes / (time.perf_counter() - started))


async def measure_fsync(
    default_uri: str, sync_uri: str, writes: int, reps: int
) -> dict[str, WriteRates]:
    clients: dict[str, AsyncMongoClient[Document]] = {
        "default": AsyncMongoClient(default_uri),
        "sync_on_commit": AsyncMongoClient(sync_uri),
    }
    rates = {name: WriteRates() for name in clients}
    try:
        for client in clients.values():  # warm-up, not counted
            await write_rates(client[DATABASE]["writes"], -1, 50, WriteRates())
        for rep in range(reps):
            for name, client in clients.items():  # alternate, so drift hits both alike
                await write_rates(client[DATABASE]["writes"], rep, writes, rates[name])
            log(
                f"fsync rep {rep + 1}/{reps}: "
                + ", ".join(
                    f"{n} {r.inserts_per_s[-1]:,.0f} ins/s {r.updates_per_s[-1]:,.0f} upd/s"
                    for n, r in rates.items()
                )
            )
    finally:
        for client in clients.values():
            await client.close()
    return rates


def race_summary(race: list[Race]) -> tuple[str, str, str]:
    """Successes and final stocks (each distinct value seen, over the rounds); median wall ms."""
    if not race:
        return "-", "-", "-"
    successes = sorted({r[0] for r in race})
    finals = sorted({r[1] for r in race})
    return (
        "/".join(str(s) for s in successes),
        "/".join(str(f) for f in finals),
        f"{statistics.median(r[2] for r in race):,.0f}",
    )


def size_rows(results: list[SizeResult]) -> tuple[list[str], list[list[str]]]:
    header = ["metric"] + [f"{r.size:,} docs" for r in results]
    rows = [
        ["load, insert_many (docs/s)"] + [f"{r.load_docs_per_s:,.0f}" for r in results],
        ["find_one by _id (median ms)"] + [f"{r.find_one_ms:.2f}" for r in results],
        [f"_id $in {IN_IDS} ids (median ms)"] + [f"{r.in20_ms:.2f}" for r in results],
        ["update_one $inc by _id (median ms)"] + [f"{r.update_ms:.2f}" for r in results],
        [f"{READERS} concurrent find_one (ops/s)"]
        + [f"{r.concurrent_reads_per_s:,.0f}" for r in results],
        ["find_one_and_update $inc by _id (median ms)"]
        + [f"{r.find_one_and_update_ms:.1f}" for r in results],
    ]
    for label, races in (
        ("update_one", [r.race for r in results]),
        ("find_one_and_update", [r.race_returning for r in results]),
    ):
        summaries = [race_summary(race) for race in races]
        race = f"{CONTENDERS} concurrent {label} decrements, stock {STOCK}"
        rows += [
            [f"{race}: successes"] + [summary[0] for summary in summaries],
            [f"{race}: final stock"] + [summary[1] for summary in summaries],
            [f"{race}: wall ms (median)"] + [summary[2] for summary in summaries],
        ]
    return header, rows


def fsync_rows(rates: dict[str, WriteRates]) -> tuple[list[str], list[list[str]]]:
    default, synced = rates["default"], rates["sync_on_commit"]
    header = ["write (sequential, 1.5 KB docs)", "default", "sync_on_commit", "default/sync"]
    rows = []
    for label, a, b in (
        ("insert_one/s (median)", default.inserts_per_s, synced.inserts_per_s),
        ("update_one $inc/s (median)", default.updates_per_s, synced.updates_per_s),
    ):
        ma, mb = statistics.median(a), statistics.median(b)
        rows.append([label, f"{ma:,.0f}", f"{mb:,.0f}", f"{ma / mb:.1f}x"])
    return header, rows


def plain(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(line[i]) for line in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest])

    return "\n".join([line(header), "  ".join("-" * w for w in widths), *map(line, rows)])


def markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|",
    ]
    lines += ["| " + " | ".join(cell.strip() for cell in row) + " |" for row in rows]
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> None:
    sizes = [int(size) for size in args.sizes.split(",")]
    started = time.perf_counter()
    with server("default") as default_server:
        results = [
            await measure_size(
                default_server.uri,
                size,
                args.samples,
                args.reps,
                args.returning_samples,
                args.returning_rounds,
            )
            for size in sizes
        ]
        with server("sync_on_commit", sync_on_commit=True) as sync_server:
            rates = await measure_fsync(default_server.uri, sync_server.uri, args.writes, args.reps)
    elapsed = time.perf_counter() - started

    size_table, fsync_table = size_rows(results), fsync_rows(rates)
    print(
        f"SecantusDB (embedded) via PyMongo async, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"{platform.machine()} x{os.cpu_count()}, Python {platform.python_version()}; "
        f"{args.samples} samples per median, {args.reps} reps, {args.writes} writes per rep; "
        f"{elapsed:.0f} s"
    )
    print()
    print(plain(*size_table))
    print()
    print(plain(*fsync_table))
    print()
    print(markdown(*size_table))
    print()
    print(markdown(*fsync_table))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="1000,10000,50000", help="documents per data size")
    parser.add_argument("--samples", type=int, default=300, help="calls per latency median")
    parser.add_argument("--reps", type=int, default=5, help="bursts, races and fsync reps")
    parser.add_argument(
        "--returning-samples", type=int, default=10, help="find_one_and_update calls (median)"
    )
    parser.add_argument(
        "--returning-rounds", type=int, default=1, help="find_one_and_update races per size"
    )
    parser.add_argument("--writes", type=int, default=300, help="writes per fsync repetition")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
