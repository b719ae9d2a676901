"""Benchmark: points earn + redeem on ONE member under 16-way contention, through the real
member-svc over gRPC, next to a floor measured in the same run.

Starts its own embedded database (SecantusDB, fresh files under var/bench/points-contention,
journal fsynced on every commit as `make run` does, retryable writes off as the services'
URI has them) and member-svc as its own process (`python -m member_svc`, background jobs
off). One member is inserted and given an opening balance, then per round:

- floor: `--clients` concurrent workers, each doing `--ops` sequential raw `update_one`
  `{$inc: {n: 1}}` on one document with PyMongo on the same database: the cheapest
  possible single-document write under the same contention;
- member-svc: `--clients` concurrent workers on one gRPC channel each, each doing `--ops`
  calls alternating EarnPoints (+10, its own reference) and RedeemPoints (10 points, its own
  order reference) on the one member. Each call is a whole ledger change: head read,
  (kind, reference) look-up, entry insert, head compare-and-set.

Rounds alternate floor / member-svc (`--rounds`); printed: ops/s and p50 / p99 latency per
round and their medians, the service/floor ratio, CPU ms per operation of the database, the
service and this client process, the load average, and at the end that the member's ledger
is exact (total = sum of entry deltas = sum of lots).

The member's balance stays near its opening (each worker earns what it redeems), so its
lots stay few, as a real member's do (see member-svc/DESIGN.md on lots per head).

Run: `uv run --frozen python member-svc/bench/points_contention.py`
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from member_svc.domain import Member, Tier
from member_svc.points import LEDGER
from member_svc.repository import MEMBERS, member_to_document
from retail.common.v1 import common_pb2
from retail.member.v1 import member_pb2, member_pb2_grpc
from retail_kit.embedded import EmbeddedDatabase, free_port
from retail_kit.mongo import connect

ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = ROOT / "var" / "bench" / "points-contention"
DATABASE = "member_bench"
MEMBER_ID = "m_bench_hot"
POINTS = 10
ORDER_FEN = 1_000_000
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Round:
    ops_per_second: float
    p50_ms: float
    p99_ms: float
    cpu_ms: dict[str, float]


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))
    return ordered[index]


def cpu_ms(pids: dict[str, int]) -> dict[str, float]:
    """User + system CPU time so far of each process (/proc/<pid>/stat), in ms."""
    spent = {}
    for name, pid in pids.items():
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        spent[name] = (int(fields[11]) + int(fields[12])) * 1000 / CLOCK_TICKS
    return spent


def wait_serving(address: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
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


async def timed_workers(clients: int, ops: int, one: Any) -> tuple[float, list[float]]:
    """`clients` workers each awaiting `one(worker, i)` `ops` times in a row: (ops/s,
    latencies in ms)."""
    latencies: list[float] = []

    async def worker(number: int) -> None:
        for i in range(ops):
            started = time.perf_counter()
            await one(number, i)
            latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(clients)))
    return clients * ops / (time.perf_counter() - started), latencies


async def floor_round(uri: str, clients: int, ops: int, label: str) -> tuple[float, list[float]]:
    client = connect(uri, "bench-points-floor")
    try:
        collection = client[DATABASE]["bench_floor"]
        await collection.update_one({"_id": label}, {"$set": {"n": 0}}, upsert=True)
        # open the pool's connections first: the timed part is the updates
        await asyncio.gather(*(collection.find_one({"_id": label}) for _ in range(clients)))

        async def one(worker: int, i: int) -> None:
            await collection.update_one({"_id": label}, {"$inc": {"n": 1}})

        return await timed_workers(clients, ops, one)
    finally:
        await client.close()


async def service_round(
    address: str, clients: int, ops: int, label: str
) -> tuple[float, list[float]]:
    channels = [grpc.aio.insecure_channel(address) for _ in range(clients)]
    try:
        stubs = [member_pb2_grpc.MemberServiceStub(channel) for channel in channels]
        await asyncio.gather(
            *(
                stub.GetPointsSummary(member_pb2.GetPointsSummaryRequest(member_id=MEMBER_ID))
                for stub in stubs
            )
        )

        async def one(worker: int, i: int) -> None:
            stub = stubs[worker]
            reference = f"{label}-{worker}-{i}"
            if i % 2 == 0:
                await stub.EarnPoints(
                    member_pb2.EarnPointsRequest(
                        member_id=MEMBER_ID, points=POINTS, reference=reference
                    )
                )
            else:
                await stub.RedeemPoints(
                    member_pb2.RedeemPointsRequest(
                        member_id=MEMBER_ID,
                        points=POINTS,
                        reference=reference,
                        order_amount=common_pb2.Money(amount=ORDER_FEN, currency="CNY"),
                    )
                )

        return await timed_workers(clients, ops, one)
    finally:
        for channel in channels:
            await channel.close()


async def prepare(uri: str, address: str, opening: int) -> None:
    client = connect(uri, "bench-points-setup")
    try:
        member = Member(
            id=MEMBER_ID,
            display_name="压测会员",
            identities=(),
            tier=Tier.BRONZE,
            home_store_id=None,
            join_time=datetime.now(UTC),
            referral_code="BENCHHOT",
        )
        await client[DATABASE][MEMBERS].insert_one(member_to_document(member))
    finally:
        await client.close()
    async with grpc.aio.insecure_channel(address) as channel:
        stub = member_pb2_grpc.MemberServiceStub(channel)
        await stub.EarnPoints(
            member_pb2.EarnPointsRequest(member_id=MEMBER_ID, points=opening, reference="opening")
        )


async def check_ledger(uri: str) -> str:
    client = connect(uri, "bench-points-check")
    try:
        db = client[DATABASE]
        doc = await db[MEMBERS].find_one({"_id": MEMBER_ID})
        assert doc is not None
        head = doc["points"]
        deltas = 0
        entries = 0
        async for entry in db[LEDGER].find({"member_id": MEMBER_ID}, {"delta": 1}):
            deltas += entry["delta"]
            entries += 1
        lots = sum(lot["remaining"] for lot in head["lots"])
        exact = head["total"] == deltas == lots and entries == head["seq"]
        return (
            f"ledger: {entries} entries, head seq {head['seq']}, total {head['total']}, "
            f"sum of deltas {deltas}, sum of lots {lots} ({len(head['lots'])} lots): "
            f"{'exact' if exact else 'NOT EXACT'}"
        )
    finally:
        await client.close()


def summarize(name: str, rounds: list[Round], ops: int) -> dict[str, float]:
    rates = [r.ops_per_second for r in rounds]
    p50 = statistics.median(r.p50_ms for r in rounds)
    p99 = statistics.median(r.p99_ms for r in rounds)
    shown = ", ".join(f"{rate:.0f}" for rate in rates)
    cpu_names = rounds[0].cpu_ms.keys()
    cpu = {n: statistics.median(r.cpu_ms[n] for r in rounds) / ops for n in cpu_names}
    cpu_text = ", ".join(f"{n} {ms:.2f}" for n, ms in cpu.items())
    print(
        f"{name:44} {statistics.median(rates):8.1f}  {p50:7.2f}  {p99:7.2f}  rounds: {shown}"
        f"  | CPU ms/op: {cpu_text}"
    )
    return {"rate": statistics.median(rates), "p50": p50, "p99": p99}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--ops", type=int, default=100, help="operations per worker per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--opening", type=int, default=1_000)
    args = parser.parse_args()

    shutil.rmtree(DATA_DIR, ignore_errors=True)
    database = EmbeddedDatabase(DATA_DIR, free_port()).start()
    port = free_port()
    address = f"127.0.0.1:{port}"
    env = {
        **os.environ,
        "MONGODB_URI": database.uri,
        "MEMBER_DATABASE": DATABASE,
        "MEMBER_PORT": str(port),
        "MEMBER_HOST": "127.0.0.1",
        "MEMBER_WORKER_INTERVAL_SECONDS": "0",
        "LOG_LEVEL": "WARNING",
    }
    service = subprocess.Popen([sys.executable, "-m", "member_svc"], env=env, cwd=ROOT)
    try:
        wait_serving(address, service)
        asyncio.run(prepare(database.uri, address, args.opening))
        assert database.process is not None
        pids = {"database": database.process.pid, "member-svc": service.pid, "client": os.getpid()}
        total_ops = args.clients * args.ops
        # warm-up (not measured): both paths once, small
        asyncio.run(floor_round(database.uri, args.clients, 5, "warm"))
        asyncio.run(service_round(address, args.clients, 4, "warm"))
        floors: list[Round] = []
        services: list[Round] = []
        for number in range(1, args.rounds + 1):
            for name, into in (("floor", floors), ("member-svc", services)):
                label = f"{name}-{number}"
                before = cpu_ms(pids)
                if name == "floor":
                    runner = floor_round(database.uri, args.clients, args.ops, label)
                else:
                    runner = service_round(address, args.clients, args.ops, label)
                rate, latencies = asyncio.run(runner)
                after = cpu_ms(pids)
                p50, p99 = statistics.median(latencies), percentile(latencies, 0.99)
                into.append(Round(rate, p50, p99, {n: after[n] - before[n] for n in pids}))
                print(
                    f"round {number} {name}: {rate:.0f} ops/s, p50 {p50:.2f} ms, p99 {p99:.2f} ms",
                    flush=True,
                )
        print()
        print(
            f"points earn+redeem on one member, {args.clients} concurrent, {total_ops} ops per "
            f"round, {args.rounds} rounds, medians ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
            f"{os.cpu_count()} CPUs, {cpu_model()}, "
            f"Python {platform.python_version()})"
        )
        print(f"{'target':44} {'ops/s':>8}  {'p50 ms':>7}  {'p99 ms':>7}")
        floor = summarize("floor: update_one $inc on one document", floors, total_ops)
        served = summarize("member-svc EarnPoints/RedeemPoints (gRPC)", services, total_ops)
        print(f"{'member-svc / floor':44} {served['rate'] / floor['rate']:7.2f}x")
        print(asyncio.run(check_ledger(database.uri)))
        print("load average: " + " ".join(f"{x:.2f}" for x in os.getloadavg()), flush=True)
    finally:
        if service.poll() is None:
            service.send_signal(signal.SIGTERM)
        try:
            service.wait(15)
        except subprocess.TimeoutExpired:
            service.kill()
            service.wait()
        database.stop()


if __name__ == "__main__":
    main()
