"""Benchmark (issue 7): CountSegment at 10k and 100k members next to a PyMongo floor, the
query plans behind it, and campaign issuance per second next to a raw-insert floor.

uv run --frozen python member-svc/bench/segments_and_campaigns.py [--sizes 10000 100000]
    [--rounds 15] [--campaign-rounds 3]

Starts its own embedded database (SecantusDB with the default fsync per commit, fresh files
under var/bench/members; `--reuse` keeps them) and member-svc as its own process (`python -m
member_svc`, as `make run` starts it, but with its background jobs off so nothing else loads
the server while it is measured), then for each size (one database, grown
by `python -m member_svc.bigdata` from one size to the next):

1. CountSegment over gRPC for a few typical rules, `--rounds` sequential calls each,
   alternating with the floor: the same `count_documents(segment_filter(rule, now))` sent
   directly with PyMongo from this process (no gRPC, no validation, no conversion). Medians
   in ms, the ratio, and how each grows from the smallest size.
2. The plan of each rule's filter (`explain` of the count, executionStats): the index the
   server chose, keys and documents examined.

Then, at the largest size, campaign issuance: `--campaign-rounds` campaigns (each a new
coupon template, so every member gets one per round) of "dormant members of st_001"
launched over gRPC, issued by `campaign_job` (the background job's code) run in this process
on its own books; coupons issued per second = issued / the job's wall time. Floor: the same
number of coupon-shaped documents inserted one `insert_one` each into a scratch collection,
8 at a time (the job's issue concurrency), and one at a time, with member-svc idle.

Prints the date, the machine, the load average and every figure; never a test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pymongo.asynchronous.database import AsyncDatabase

from member_svc import campaigns
from member_svc.books import Books, build_books
from member_svc.campaigns import ISSUE_CONCURRENCY
from member_svc.growth_rpcs import rule_from_proto
from member_svc.repository import MEMBERS
from member_svc.segments import segment_filter
from member_svc.settings import MemberSettings
from retail.common.v1 import common_pb2
from retail.member.v1 import member_pb2, member_pb2_grpc
from retail_kit.embedded import EmbeddedDatabase, free_port
from retail_kit.mongo import Document, connect

ROOT = Path(__file__).resolve().parents[2]
DATABASE = "member_bench"
ADMIN = common_pb2.Actor(kind=common_pb2.ACTOR_KIND_ADMIN, id="bench")

RULES: dict[str, member_pb2.SegmentRule] = {
    "dormant of st_001": member_pb2.SegmentRule(
        home_store_ids=["st_001"], lifecycle_stages=[member_pb2.LIFECYCLE_STAGE_DORMANT]
    ),
    "tags any (coffee, tea) x gold+": member_pb2.SegmentRule(
        tags_any=["coffee_lover", "tea_lover"], tiers=["gold", "platinum"]
    ),
    "points 5,000-20,000": member_pb2.SegmentRule(min_points=5_000, max_points=20_000),
    "every active member": member_pb2.SegmentRule(),
}
CAMPAIGN_RULE = "dormant of st_001"
# Diagnostic only (the service names no index): the index each rule's most selective part
# has, to show what a hint costs on the server under test.
HINTS = {
    "dormant of st_001": "home_store",
    "tags any (coffee, tea) x gold+": "tier",
    "points 5,000-20,000": "points_total",
}


def log(message: str) -> None:
    print(f"[members] {message}", file=sys.stderr, flush=True)


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({model}), Python {platform.python_version()}"


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def wait_serving(address: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    with grpc.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"member-svc exited with {process.returncode}")
            try:
                reply = health.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.2)
    raise TimeoutError(f"member-svc did not report SERVING at {address}")


async def timed_ms(call: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = await call()
    return (time.perf_counter() - started) * 1_000, result


async def bench_counts(
    stub: member_pb2_grpc.MemberServiceAsyncStub,
    database: AsyncDatabase[Document],
    rounds: int,
    hinted_rounds: int,
) -> dict[str, dict[str, Any]]:
    """name -> {grpc ms, floor ms, count}; sequential calls, gRPC and floor alternating."""
    results: dict[str, dict[str, Any]] = {}
    for name, rule in RULES.items():
        domain_rule = rule_from_proto(rule)
        request = member_pb2.CountSegmentRequest(rule=rule)

        async def via_grpc(request: member_pb2.CountSegmentRequest = request) -> int:
            return (await stub.CountSegment(request)).count

        hint = HINTS.get(name)

        async def floor(domain_rule: Any = domain_rule) -> int:
            query = segment_filter(domain_rule, datetime.now(UTC))
            return await database[MEMBERS].count_documents(query)

        async def hinted(domain_rule: Any = domain_rule, hint: str | None = hint) -> int:
            query = segment_filter(domain_rule, datetime.now(UTC))
            return await database[MEMBERS].count_documents(query, hint=hint)

        await via_grpc()
        await floor()  # warm both paths
        grpc_ms: list[float] = []
        floor_ms: list[float] = []
        plain_ms: list[float] = []
        counts = set()
        for number in range(rounds):
            took, count = await timed_ms(floor)
            floor_ms.append(took)
            counts.add(count)
            took, count = await timed_ms(via_grpc)
            grpc_ms.append(took)
            counts.add(count)
            if hint and number < hinted_rounds:
                took, count = await timed_ms(hinted)
                plain_ms.append(took)
                counts.add(count)
        if len(counts) != 1:
            raise SystemExit(f"gRPC and floor disagree on {name}: {counts}")
        results[name] = {
            "grpc": statistics.median(grpc_ms),
            "floor": statistics.median(floor_ms),
            "hinted": statistics.median(plain_ms) if plain_ms else float("nan"),
            "count": float(counts.pop()),
            "hint": hint or "",
        }
        log(f"{name}: {results[name]}")
    return results


def plan_summary(explained: Document) -> str:
    """The winning plan's stages (with index names) and the examined counts."""
    planner = explained.get("queryPlanner") or {}
    if not planner and "stages" in explained:  # an aggregate's explain
        first = explained["stages"][0].get("$cursor", {})
        planner = first.get("queryPlanner") or {}
        stats = first.get("executionStats") or {}
    else:
        stats = explained.get("executionStats") or {}
    stages = []
    node = planner.get("winningPlan") or {}
    while node:
        stage = node.get("stage", "?")
        if node.get("indexName"):
            stage += f"({node['indexName']})"
        stages.append(stage)
        node = node.get("inputStage") or (node.get("inputStages") or [{}])[0]
    keys = stats.get("totalKeysExamined", "?")
    docs = stats.get("totalDocsExamined", "?")
    return f"{' <- '.join(stages) or '?'}; keys examined {keys}, docs examined {docs}"


async def explain_plans(database: AsyncDatabase[Document]) -> dict[str, str]:
    plans = {}
    for name, rule in RULES.items():
        domain_rule = rule_from_proto(rule)
        query = segment_filter(domain_rule, datetime.now(UTC))
        command: Document = {"count": MEMBERS, "query": query}
        try:
            explained = await database.command("explain", command, verbosity="executionStats")
            plans[name] = plan_summary(explained)
        except Exception as error:  # the server may not explain counts
            plans[name] = f"explain failed: {error}"
    return plans


async def create_template(stub: member_pb2_grpc.MemberServiceAsyncStub, template_id: str) -> None:
    template = member_pb2.CouponTemplate(
        id=template_id,
        name=common_pb2.LocalizedText(values={"zh-Hans": "回归礼 20元", "en": "20 off"}),
        kind=member_pb2.COUPON_KIND_FIXED,
        amount_off=common_pb2.Money(amount=2_000, currency="CNY"),
        valid_days=14,
    )
    await stub.CreateCouponTemplate(
        member_pb2.CreateCouponTemplateRequest(
            template=template, request_id=template_id, actor=ADMIN
        )
    )


async def bench_campaigns(
    stub: member_pb2_grpc.MemberServiceAsyncStub, books: Books, rounds: int
) -> list[dict[str, float]]:
    """Launched over gRPC; issued by `campaign_job` run here on its own books (the code each
    replica's job loop runs), with no other job beside it; timed from the first pass to
    the completing one."""
    runs = []
    for number in range(1, rounds + 1):
        template_id = f"ct_bench_{number}_{secrets.token_hex(3)}"
        await create_template(stub, template_id)
        launched = await stub.LaunchCampaign(
            member_pb2.LaunchCampaignRequest(
                name=f"bench {number}",
                template_id=template_id,
                rule=RULES[CAMPAIGN_RULE],
                idempotency_key=template_id,
                actor=ADMIN,
            )
        )
        campaign = launched.campaign
        started = time.perf_counter()
        while await campaigns.campaign_job(books, books.clock()):
            pass
        elapsed = time.perf_counter() - started
        reply = await stub.GetCampaign(member_pb2.GetCampaignRequest(id=campaign.id))
        campaign = reply.campaign
        if campaign.status != member_pb2.CAMPAIGN_STATUS_COMPLETED:
            raise SystemExit(f"campaign {campaign.id} did not complete: {campaign}")
        run = {
            "issued": float(campaign.issued),
            "total": float(campaign.total),
            "seconds": elapsed,
            "per_second": campaign.issued / elapsed if elapsed else 0.0,
        }
        log(f"campaign {number}: {run}")
        if campaign.issued != campaign.total:
            raise SystemExit(f"campaign issued {campaign.issued} of {campaign.total}")
        runs.append(run)
    return runs


def coupon_document(number: int, now: datetime) -> Document:
    member_id = f"m_b{number:07d}"
    return {
        "_id": f"ct_floor:{member_id}:1",
        "template_id": "ct_floor",
        "member_id": member_id,
        "status": "available",
        "valid_from": now,
        "valid_until": now + timedelta(days=14),
        "code": secrets.token_hex(6).upper(),
        "issue_ref": f"campaign:cp_floor:{member_id}",
        "source": "campaign:cp_floor",
        "issue_time": now,
        "actor": {"kind": "system", "id": "", "store_id": None},
    }


async def insert_floor(database: AsyncDatabase[Document], count: int, concurrency: int) -> float:
    """Coupon-shaped inserts per second, `concurrency` at a time, into a fresh collection."""
    collection = database[f"bench_coupons_{concurrency}_{secrets.token_hex(3)}"]
    await collection.create_index("issue_ref", unique=True)
    await collection.create_index("code", unique=True)
    now = datetime.now(UTC)
    gate = asyncio.Semaphore(concurrency)

    async def one(number: int) -> None:
        async with gate:
            await collection.insert_one(coupon_document(number, now))

    started = time.perf_counter()
    await asyncio.gather(*(one(n) for n in range(1, count + 1)))
    rate = count / (time.perf_counter() - started)
    await collection.drop()
    return rate


def generate(uri: str, members: int, now: datetime) -> float:
    started = time.monotonic()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "member_svc.bigdata",
            "--members",
            str(members),
            "--database",
            DATABASE,
            "--mongodb-uri",
            uri,
            "--now",
            now.isoformat(),
        ],
        cwd=ROOT,
        check=True,
    )
    return time.monotonic() - started


async def measure_size(
    uri: str, port: int, rounds: int
) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    client = connect(uri, "bench-floor")
    try:
        database = client[DATABASE]
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = member_pb2_grpc.MemberServiceStub(channel)
            counts = await bench_counts(stub, database, rounds, max(3, rounds // 5))
        return counts, await explain_plans(database)
    finally:
        await client.close()


async def measure_campaigns(
    uri: str, port: int, rounds: int
) -> tuple[list[dict[str, float]], dict[int, float]]:
    client = connect(uri, "bench-floor")
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            settings = MemberSettings(mongodb_uri=uri, database=DATABASE)
            books = build_books(client[DATABASE], settings)
            stub = member_pb2_grpc.MemberServiceStub(channel)
            runs = await bench_campaigns(stub, books, rounds)
        count = int(statistics.median(r["issued"] for r in runs))
        floors = {}
        for concurrency in (ISSUE_CONCURRENCY, 1):
            rates = [await insert_floor(client[DATABASE], count, concurrency) for _ in range(3)]
            floors[concurrency] = statistics.median(rates)
            log(f"floor, {concurrency} at a time: {rates}")
        return runs, floors
    finally:
        await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--campaign-rounds", type=int, default=3)
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="keep var/bench/members from the last run (the generator adds what is missing)",
    )
    parser.add_argument("--no-counts", action="store_true", help="campaigns only")
    parser.add_argument("--data-dir", type=Path, default=ROOT / "var" / "bench" / "members")
    args = parser.parse_args()
    started_at = datetime.now(UTC)
    data_dir = args.data_dir.resolve()
    if not args.reuse:
        shutil.rmtree(data_dir, ignore_errors=True)
    server = EmbeddedDatabase(data_dir, free_port()).start()
    now = datetime.now(UTC)
    by_size: dict[int, dict[str, dict[str, Any]]] = {}
    plans: dict[int, dict[str, str]] = {}
    runs: list[dict[str, float]] = []
    floors: dict[int, float] = {}
    process: subprocess.Popen[bytes] | None = None
    try:
        port = free_port()
        env = {
            **os.environ,
            "MONGODB_URI": server.uri,
            "MEMBER_DATABASE": DATABASE,
            "MEMBER_PORT": str(port),
            "MEMBER_WORKER_INTERVAL_SECONDS": "0",
            "LOG_LEVEL": "WARNING",
        }
        for size in sorted(args.sizes):
            log(f"generating up to {size:,} members")
            log(f"generated in {generate(server.uri, size, now):.0f} s")
            if process is None:
                process = subprocess.Popen([sys.executable, "-m", "member_svc"], env=env, cwd=ROOT)
                wait_serving(f"127.0.0.1:{port}", process)
            if not args.no_counts:
                by_size[size], plans[size] = asyncio.run(
                    measure_size(server.uri, port, args.rounds)
                )
        if args.campaign_rounds:
            runs, floors = asyncio.run(measure_campaigns(server.uri, port, args.campaign_rounds))
    finally:
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(30)
        server.stop()

    print()
    print(f"member-svc segments and campaigns — {started_at:%Y-%m-%d}, {machine()}")
    print(f"SecantusDB (fsync per commit), load average at the end: {load_average()}")
    print(f"CountSegment: {args.rounds} sequential calls per rule and size, medians in ms")
    print("(floor: the service's count_documents(filter) sent directly with PyMongo;")
    print(" with hint: the same count naming the index of the rule's narrowest part)")
    header = f"{'rule':32} {'members':>8} {'count':>7} {'floor':>8} {'gRPC':>8} {'gRPC/floor':>10}"
    print(f"{header} {'w/ hint':>8}  hinted index")
    for size, results in sorted(by_size.items()):
        for name, r in results.items():
            print(
                f"{name:32} {size:8,d} {int(r['count']):7,d} {r['floor']:8.1f} {r['grpc']:8.1f} "
                f"{r['grpc'] / r['floor']:9.2f}x {r['hinted']:8.1f}  {r['hint'] or '(none)'}"
            )
    sizes = sorted(by_size)
    if len(sizes) > 1:
        small, large = sizes[0], sizes[-1]
        print(f"growth from {small:,} to {large:,} members ({large / small:.0f}x the members):")
        for name in RULES:
            a, b = by_size[small][name], by_size[large][name]
            print(
                f"  {name:32} floor {b['floor'] / a['floor']:5.1f}x, gRPC "
                f"{b['grpc'] / a['grpc']:5.1f}x, count {b['count'] / max(a['count'], 1):5.1f}x"
            )
    for size, by_rule in sorted(plans.items()):
        print(f"plans at {size:,} members:")
        for name, plan in by_rule.items():
            print(f"  {name:32} {plan}")
    if runs:
        rates = [r["per_second"] for r in runs]
        print(
            f"campaign issuance ({CAMPAIGN_RULE}, {int(runs[0]['total']):,} members, "
            f"{len(runs)} campaigns): median {statistics.median(rates):.0f} coupons/s "
            f"(runs: {', '.join(f'{x:.0f}' for x in rates)})"
        )
        for concurrency, rate in floors.items():
            print(f"  floor: coupon-shaped insert_one, {concurrency} at a time: {rate:.0f}/s")


if __name__ == "__main__":
    main()
