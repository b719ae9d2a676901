"""Benchmark: subscription fan-out through the gateway, idle memory, and what one upstream
stream per subscriber would cost order-svc instead of one shared stream.

1. Fan-out. The gateway runs as its own process (`python -m gateway`, as `make run` starts
   it) against a synthetic order-svc in this process whose WatchOrderEvents sends events of
   store st_001 when told to, as fast as gRPC flow control lets it: the figure is the
   gateway's (hub, GraphQL execution per subscriber, WebSocket sends), not order-svc's or
   the database's. N graphql-ws clients (the reference npm client, one node process, one
   connection each) subscribe to storePickupQueue(st_001); a round publishes E events and
   ends when every client has all of them. Printed per N: events/s reaching each
   subscriber, deliveries/s in all, gateway CPU per delivery; medians of the rounds.
2. Memory. Gateway RSS after start-up (the hub's upstream stream open), then with 1,000
   idle subscribers, and after a round of events to them (their queues drained).
3. Upstream cost. An embedded database and a real order-svc; K WatchOrderEvents streams
   held open and idle for a while (K = 1, 100, 1,000): order-svc and database CPU and
   order-svc RSS. This is what one upstream stream per subscription would cost at rest.

Machine (lscpu), load average and date are printed. The node clients, the gateway and the
synthetic source share the machine's CPUs: the events/s are what this machine delivers end
to end, a lower bound of the gateway alone; CPU per delivery is the gateway's own.

    uv run --frozen python infra/bench/subscriptions.py [--rounds 5] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import timestamp_pb2

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "infra"))

from devstack import wait_http, wait_serving  # noqa: E402

from gateway.auth import Role, issue_token  # noqa: E402
from gateway.settings import DEV_JWT_SECRET  # noqa: E402
from retail.order.v1 import order_pb2, order_pb2_grpc  # noqa: E402
from retail_kit.embedded import EmbeddedDatabase, free_port  # noqa: E402

NODE_PATH = ROOT / "var" / "graphql-ws" / "node_modules"
FANOUT = ROOT / "tests" / "js" / "graphql-ws" / "fanout.cjs"
ISSUER = "retail-dev"
TICKS = os.sysconf("SC_CLK_TCK")
OPEN_TIMEOUT = 120.0
"""How long the upstream part waits for K streams to open before measuring anyway."""


class SyntheticOrders(order_pb2_grpc.OrderServiceServicer):
    """WatchOrderEvents only: every open stream gets what `publish` sends."""

    def __init__(self) -> None:
        self.streams: list[asyncio.Queue[list[order_pb2.OrderEvent] | None]] = []
        self.sequence = 0

    async def WatchOrderEvents(
        self, request: order_pb2.WatchOrderEventsRequest, context: Any
    ) -> AsyncIterator[order_pb2.WatchOrderEventsResponse]:
        queue: asyncio.Queue[list[order_pb2.OrderEvent] | None] = asyncio.Queue()
        self.streams.append(queue)
        await context.send_initial_metadata((("x-watch-open", "1"),))
        try:
            while (batch := await queue.get()) is not None:
                for event in batch:
                    yield order_pb2.WatchOrderEventsResponse(event=event)
        finally:
            self.streams.remove(queue)

    def publish(self, count: int) -> None:
        now = timestamp_pb2.Timestamp()
        now.GetCurrentTime()
        batch = []
        for _ in range(count):
            self.sequence += 1
            batch.append(
                order_pb2.OrderEvent(
                    sequence=self.sequence,
                    order_id=f"o_bench_{self.sequence % 97:03d}",
                    status=order_pb2.ORDER_STATUS_READY_FOR_PICKUP,
                    kind="ready_for_pickup",
                    occur_time=now,
                    store_id="st_001",
                    member_id="m_0001",
                    resume_token=f"t{self.sequence:012d}",
                )
            )
        for queue in self.streams:
            queue.put_nowait(batch)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def machine() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "lscpu unavailable"
    keep = ("Model name", "CPU(s)", "Thread(s) per core", "CPU max MHz")
    return "; ".join(
        " ".join(line.split()) for line in out.splitlines() if line.split(":")[0] in keep
    )


def subscriptions(base: str) -> int:
    """The gateway's subscription count (-1 while it is too busy to answer in 30 s)."""
    try:
        with urllib.request.urlopen(f"{base}/healthz", timeout=30) as response:
            count: int = json.load(response)["subscriptions"]
            return count
    except TimeoutError:
        return -1


async def until(condition: Any, within: float = 120.0) -> None:
    deadline = time.monotonic() + within
    while not await asyncio.to_thread(condition):
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.1)


class Clients:
    """The node process holding N graphql-ws clients."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls, ws_url: str, token: str, count: int, per_round: int) -> Clients:
        process = await asyncio.create_subprocess_exec(
            "node",
            str(FANOUT),
            ws_url,
            token,
            str(count),
            str(per_round),
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "NODE_PATH": str(NODE_PATH)},
        )
        return cls(process)

    async def line(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        raw = await asyncio.wait_for(self.process.stdout.readline(), 300.0)
        if not raw:
            raise RuntimeError("the node clients exited")
        line: dict[str, Any] = json.loads(raw)
        if "error" in line:
            raise RuntimeError(f"a client failed: {line}")
        return line

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        await self.process.wait()


async def fan_out(
    source: SyntheticOrders, base: str, gateway_pid: int, count: int, events: int, rounds: int
) -> dict[str, float]:
    token = issue_token(DEV_JWT_SECRET, ISSUER, Role.ASSOCIATE, subject="bench", store_id="st_001")
    before = subscriptions(base)
    clients = await Clients.start(base.replace("http", "ws") + "/graphql", token, count, events)
    try:
        await clients.line()  # every client acknowledged
        await until(lambda: subscriptions(base) >= before + count)
        rates, cpu = [], []
        for round_number in range(1, rounds + 1):
            cpu_before = cpu_seconds(gateway_pid)
            started = time.time()
            source.publish(events)
            done = await clients.line()
            assert done["round"] == round_number and done["min"] == done["max"], done
            elapsed = done["done"] / 1000 - started
            rates.append(events / elapsed)
            cpu.append((cpu_seconds(gateway_pid) - cpu_before) / (events * count) * 1e6)
    finally:
        await clients.stop()
    await until(lambda: 0 <= subscriptions(base) <= before)
    per_subscriber = statistics.median(rates)
    return {
        "events_per_s": per_subscriber,
        "deliveries_per_s": per_subscriber * count,
        "cpu_us_per_delivery": statistics.median(cpu),
    }


async def idle_memory(source: SyntheticOrders, base: str, gateway_pid: int) -> dict[str, float]:
    token = issue_token(DEV_JWT_SECRET, ISSUER, Role.ASSOCIATE, subject="bench", store_id="st_001")
    idle = rss_mib(gateway_pid)
    clients = await Clients.start(base.replace("http", "ws") + "/graphql", token, 1000, 50)
    try:
        await clients.line()
        await until(lambda: subscriptions(base) >= 1000)
        await asyncio.sleep(2)  # settle: every subscription registered and idle
        with_idle = rss_mib(gateway_pid)
        source.publish(50)
        await clients.line()
        await asyncio.sleep(2)
        after_events = rss_mib(gateway_pid)
    finally:
        await clients.stop()
    return {"start": idle, "idle_1000": with_idle, "after_50_events": after_events}


def start_gateway(order_addr: str, port: int) -> subprocess.Popen[bytes]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "OTEL_"))},
        "GATEWAY_PORT": str(port),
        "GATEWAY_ORDER_ADDR": order_addr,
        "LOG_LEVEL": "WARNING",
    }
    return subprocess.Popen([sys.executable, "-m", "gateway"], env=env, cwd=ROOT)


async def gateway_part(args: argparse.Namespace) -> None:
    source = SyntheticOrders()  # type: ignore[abstract]  # WatchOrderEvents only
    server = grpc.aio.server()
    order_pb2_grpc.add_OrderServiceServicer_to_server(source, server)
    order_port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    port = free_port()
    gateway = start_gateway(f"127.0.0.1:{order_port}", port)
    base = f"http://127.0.0.1:{port}"
    try:
        await asyncio.to_thread(wait_http, f"{base}/healthz", gateway)
        plan = [(10, 2000), (100, 500), (1000, 100)]
        if args.quick:
            plan = [(10, 500), (100, 100), (1000, 20)]
        print("\n## Fan-out (storePickupQueue, synthetic order events, median of rounds)")
        print(
            "| subscribers | events per round | events/s to each | deliveries/s "
            "| gateway CPU per delivery |"
        )
        print("| ---: | ---: | ---: | ---: | ---: |")
        for count, events in plan:
            result = await fan_out(source, base, gateway.pid, count, events, args.rounds)
            print(
                f"| {count:,} | {events:,} | {result['events_per_s']:,.0f} | "
                f"{result['deliveries_per_s']:,.0f} | {result['cpu_us_per_delivery']:,.0f} µs |",
                flush=True,
            )
        memory = await idle_memory(source, base, gateway.pid)
        print("\n## Gateway memory (RSS)")
        print(f"- after start and earlier rounds: {memory['start']:.1f} MiB")
        print(
            f"- with 1,000 idle subscribers: {memory['idle_1000']:.1f} MiB "
            f"(+{memory['idle_1000'] - memory['start']:.1f} MiB, "
            f"{(memory['idle_1000'] - memory['start']) * 1024 / 1000:.1f} KiB each)"
        )
        print(f"- after 50 events to each of them: {memory['after_50_events']:.1f} MiB")
    finally:
        gateway.send_signal(signal.SIGTERM)
        await asyncio.to_thread(gateway.wait, 30)
        await server.stop(0)


async def upstream_part(args: argparse.Namespace) -> None:
    data = ROOT / "var" / "bench" / "subscriptions"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    database = EmbeddedDatabase(data, free_port(), sync_on_commit=False)
    database.start()
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("ORDER_", "OTEL_"))},
        "MONGODB_URI": database.uri,
        "ORDER_PORT": str(port),
        "ORDER_DATABASE": "bench_order",
        "ORDER_WORKER_INTERVAL_SECONDS": "0",
        "LOG_LEVEL": "WARNING",
    }
    order_svc = subprocess.Popen([sys.executable, "-m", "order_svc"], env=env, cwd=ROOT)  # noqa: ASYNC220
    hold = 5.0 if args.quick else 10.0
    try:
        await asyncio.to_thread(wait_serving, "order-svc", f"127.0.0.1:{port}", order_svc)
        assert database.process is not None
        db_pid = database.process.pid
        print(f"\n## Upstream streams held idle for {hold:.0f} s (real order-svc, embedded db)")
        print(
            "| WatchOrderEvents streams | open (of them, time) | order-svc CPU | database CPU "
            "| order-svc RSS |"
        )
        print("| ---: | ---: | ---: | ---: | ---: |")
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = order_pb2_grpc.OrderServiceStub(channel)
            for count in (1, 100, 1000):
                calls = [
                    stub.WatchOrderEvents(order_pb2.WatchOrderEventsRequest(store_id="st_001"))
                    for _ in range(count)
                ]
                opening = time.monotonic()
                opened = await asyncio.wait(
                    [asyncio.ensure_future(call.initial_metadata()) for call in calls],
                    timeout=OPEN_TIMEOUT,
                )
                open_seconds = time.monotonic() - opening
                order_cpu, db_cpu = cpu_seconds(order_svc.pid), cpu_seconds(db_pid)
                await asyncio.sleep(hold)
                order_cpu = (cpu_seconds(order_svc.pid) - order_cpu) / hold * 100
                db_cpu = (cpu_seconds(db_pid) - db_cpu) / hold * 100
                print(
                    f"| {count:,} | {len(opened[0]):,} in {open_seconds:.1f} s | "
                    f"{order_cpu:.0f} % | {db_cpu:.0f} % | {rss_mib(order_svc.pid):.0f} MiB |",
                    flush=True,
                )
                for call in calls:
                    call.cancel()
                await asyncio.sleep(2)
    finally:
        order_svc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(order_svc.wait, 30)
        database.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="smaller rounds, shorter holds")
    parser.add_argument("--skip-upstream", action="store_true")
    parser.add_argument("--skip-gateway", action="store_true")
    args = parser.parse_args()
    if not NODE_PATH.is_dir():
        sys.exit("the graphql-ws client is missing: run `make install` (infra/install.sh)")
    print(f"# Subscriptions benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(f"machine: {machine()}")
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if not args.skip_gateway:
        await gateway_part(args)
    if not args.skip_upstream:
        await upstream_part(args)
    print(f"\nload average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def _stop(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # the finally blocks stop what this run started


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _stop)
    asyncio.run(main())
