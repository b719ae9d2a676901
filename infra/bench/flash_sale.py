"""Benchmark (issue 8): a flash sale through the gateway, and placeOrder next to its gRPC hops.

Starts its own embedded database (SecantusDB, fresh files under var/bench/flash_sale, fsync
per commit as `make run`), loads the demo data, runs the four services and the gateway as
`make run` does (`python -m <service>`, background jobs on), then in one run:

1. **placeOrder next to its hops** (`--hop-rounds` sequential rounds, one order at a time,
   nothing else running). Each round, for one fresh member with points and coupons, on a
   well-stocked SKU in st_001 (pickup, a ¥5 coupon and 100 points):
   - `placeOrder` through the gateway (HTTP, GraphQL, a customer token);
   - the same order straight to order-svc's `PlaceOrder` over gRPC (no gateway);
   - the gRPC calls such an order makes, timed one by one straight to the services:
     GetMember, BatchGetInventory, QuotePrices (catalog), ReserveStock (store), LockCoupon and
     RedeemPoints (member). (GetStore and NearbyStores for the pickup promise are cached by
     order-svc for 5 s, so a steady stream of orders does not pay them.)
   Medians: gateway placeOrder, order-svc PlaceOrder, the sum of the hops per round, each
   hop; the differences are order-svc's own work (idempotency key, order document, saga
   progress writes) and the gateway's (HTTP, auth, GraphQL, one more gRPC hop).
2. **The flash sale** (`--rounds` rounds): one SKU in one store (st_001) with exactly
   `--units` units available; `--orders` customers (distinct members, each with their own
   token) send placeOrder for one unit at once (all requests released together over
   pre-opened connections). Per round: placeOrder answers per second (all answers / wall
   time from the first request sent to the last answer), accepted orders per second, p50 /
   p99 latency of every answer and of the accepted ones, how many were accepted, refused
   OUT_OF_STOCK or failed otherwise, and **oversold**, checked against store-svc: the SKU's
   level (on hand, reserved, available) and every accepted order's reservation
   (GetReservation: RESERVED, one unit); oversold = accepted units beyond the units offered,
   plus reserved units beyond on hand. CPU ms per placeOrder of each process from
   /proc/<pid>/stat. A fresh SKU each round. The gateway runs with
   `--gateway-timeout` as its gRPC deadline (60 s by default here, so every customer gets
   order-svc's answer; with the product default of 5 s, orders still queued in order-svc
   are answered SERVICE_UNAVAILABLE while their saga may still complete: the customer's
   retry with the same idempotency key then gets the order).

Prints the date, the machine (lscpu), the load average, and the medians of the rounds.
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
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

import grpc  # noqa: E402
import httpx  # noqa: E402
from devstack import wait_http, wait_serving  # noqa: E402
from products import ROOT, cpu_ms, load_average  # noqa: E402

from gateway.auth import Role, issue_token  # noqa: E402
from retail.catalog.v1 import catalog_pb2, catalog_pb2_grpc  # noqa: E402
from retail.common.v1 import common_pb2  # noqa: E402
from retail.member.v1 import member_pb2, member_pb2_grpc  # noqa: E402
from retail.order.v1 import order_pb2, order_pb2_grpc  # noqa: E402
from retail.store.v1 import store_pb2, store_pb2_grpc  # noqa: E402
from retail_kit.embedded import EmbeddedDatabase, free_port  # noqa: E402

SECRET = "bench-only-jwt-secret-at-least-32-bytes"
ISSUER = "retail-bench"
STORE = "st_001"
HOP_SKU = "p_0001_s1"
CHANNEL = common_pb2.CHANNEL_MINI_PROGRAM
ADMIN = common_pb2.Actor(kind=common_pb2.ACTOR_KIND_ADMIN, id="bench")
SERVICES = ("catalog", "store", "member", "order")
PLACE = """
mutation ($input: PlaceOrderInput!, $key: String!) {
  placeOrder(input: $input, idempotencyKey: $key) { id status total { amount } }
}
"""

_T = TypeVar("_T")


def log(message: str) -> None:
    print(f"[flash_sale] {message}", file=sys.stderr, flush=True)


def machine() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return f"{os.cpu_count()} CPUs"
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    model = fields.get("Model name", "?").strip()
    return f"{model}, {fields.get('CPU(s)', '?').strip()} CPUs"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
    return ordered[index]


# -- the stack --------------------------------------------------------------------------------


@dataclass
class Stack:
    env: dict[str, str]
    ports: dict[str, int]
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def spawn(self, name: str, module: str) -> None:
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", module], env=self.env, cwd=ROOT
        )

    def address(self, name: str) -> str:
        return f"127.0.0.1:{self.ports[name]}"

    def stop(self) -> None:
        for process in reversed(list(self.processes.values())):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def running_stack(
    data_dir: Path, gateway_timeout: float
) -> Iterator[tuple[Stack, EmbeddedDatabase]]:
    shutil.rmtree(data_dir, ignore_errors=True)
    database = EmbeddedDatabase(data_dir, free_port())
    database.start()
    ports = {name: free_port() for name in (*SERVICES, "gateway")}
    env = {
        **os.environ,
        "MONGODB_URI": database.uri,
        "LOG_LEVEL": "WARNING",
        "GATEWAY_JWT_SECRET": SECRET,
        "GATEWAY_JWT_ISSUER": ISSUER,
        "GATEWAY_PORT": str(ports["gateway"]),
        "GATEWAY_GRPC_TIMEOUT_SECONDS": str(gateway_timeout),
    }
    for name in SERVICES:
        env[f"{name.upper()}_PORT"] = str(ports[name])
        env[f"GATEWAY_{name.upper()}_ADDR"] = f"127.0.0.1:{ports[name]}"
        if name != "order":
            env[f"ORDER_{name.upper()}_ADDR"] = f"127.0.0.1:{ports[name]}"
    stack = Stack(env, ports)
    try:
        for module in ("catalog_svc.seed", "store_svc.seed", "member_svc.seed"):
            subprocess.run([sys.executable, "-m", module], env=env, cwd=ROOT, check=True)
        for name in SERVICES:
            stack.spawn(name, f"{name}_svc")
        stack.spawn("gateway", "gateway")
        for name in SERVICES:
            wait_serving(f"{name}-svc", stack.address(name), stack.processes[name])
        wait_http(f"http://{stack.address('gateway')}/healthz", stack.processes["gateway"])
        yield stack, database
    finally:
        stack.stop()
        database.stop()


@dataclass
class Stubs:
    catalog: catalog_pb2_grpc.CatalogServiceStub
    store: store_pb2_grpc.StoreServiceStub
    member: member_pb2_grpc.MemberServiceStub
    order: order_pb2_grpc.OrderServiceStub


# -- set-up helpers ---------------------------------------------------------------------------


async def bounded(jobs: list[Callable[[], Awaitable[_T]]], limit: int) -> list[_T]:
    gate = asyncio.Semaphore(limit)

    async def run(job: Callable[[], Awaitable[_T]]) -> _T:
        async with gate:
            return await job()

    return await asyncio.gather(*(run(job) for job in jobs))


async def new_member(stubs: Stubs, points: int = 0) -> str:
    phone = f"+86139{uuid.uuid4().int % 10**8:08d}"
    reply = await stubs.member.EnsureMember(
        member_pb2.EnsureMemberRequest(
            identity=member_pb2.Identity(kind=member_pb2.IDENTITY_KIND_PHONE, value=phone),
            channel=CHANNEL,
            display_name="闪购顾客",
        )
    )
    if points:
        await stubs.member.AdjustPoints(
            member_pb2.AdjustPointsRequest(
                member_id=reply.member.id,
                delta=points,
                reason="bench",
                reference=f"bench-{uuid.uuid4().hex}",
                actor=ADMIN,
            )
        )
    return reply.member.id


async def set_available(stubs: Stubs, sku_id: str, units: int) -> None:
    """Exactly `units` on hand and available (no safety stock, nothing reserved)."""
    await stubs.store.SetSafetyStock(
        store_pb2.SetSafetyStockRequest(
            store_id=STORE, sku_id=sku_id, safety_stock=0, actor_id="bench"
        )
    )
    level = await inventory(stubs, sku_id)
    if level.reserved:
        raise SystemExit(f"{sku_id} holds reservations; pick a fresh SKU")
    if level.on_hand != units:
        await stubs.store.AdjustInventory(
            store_pb2.AdjustInventoryRequest(
                store_id=STORE,
                sku_id=sku_id,
                delta=units - level.on_hand,
                reason=store_pb2.ADJUSTMENT_REASON_COUNT_CORRECTION,
                actor_id="bench",
                idempotency_key=f"bench-{uuid.uuid4().hex}",
            )
        )


async def inventory(stubs: Stubs, sku_id: str) -> store_pb2.InventoryLevel:
    reply = await stubs.store.BatchGetInventory(
        store_pb2.BatchGetInventoryRequest(store_id=STORE, sku_ids=[sku_id])
    )
    return reply.levels[0]


def customer_headers(member_id: str) -> dict[str, str]:
    jwt = issue_token(SECRET, ISSUER, Role.CUSTOMER, member_id=member_id, ttl=timedelta(hours=2))
    return {"Authorization": f"Bearer {jwt}", "X-Retail-Channel": "mini_program"}


def flash_sale_skus(count: int) -> list[str]:
    """First SKUs of active demo products (stocked in st_001 by the seed), HOP_SKU left out."""
    from catalog_svc.demo_data import demo_catalog
    from catalog_svc.domain import ProductStatus

    skus = [
        p.skus[0].id
        for p in demo_catalog().products
        if p.status is ProductStatus.ACTIVE and p.skus[0].id != HOP_SKU
    ]
    return skus[1 : count + 1]


# -- phase 1: placeOrder next to its hops -------------------------------------------------------


async def timed(results: dict[str, list[float]], name: str, call: Awaitable[_T]) -> _T:
    started = time.perf_counter()
    value = await call
    results.setdefault(name, []).append((time.perf_counter() - started) * 1000)
    return value


async def hop_rounds(
    stubs: Stubs, http: httpx.AsyncClient, rounds: int, template_id: str
) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {}
    await stubs.store.AdjustInventory(
        store_pb2.AdjustInventoryRequest(
            store_id=STORE,
            sku_id=HOP_SKU,
            delta=10 * rounds + 100,
            reason=store_pb2.ADJUSTMENT_REASON_RECEIVE,
            actor_id="bench",
            idempotency_key=f"bench-{uuid.uuid4().hex}",
        )
    )
    for number in range(-2, rounds):  # two warm-up rounds, not recorded
        sink: dict[str, list[float]] = {} if number < 0 else results
        member_id = await new_member(stubs, points=1000)
        coupons = []
        for _ in range(3):
            issued = await stubs.member.IssueCoupon(
                member_pb2.IssueCouponRequest(
                    template_id=template_id,
                    member_id=member_id,
                    reference=f"bench-{uuid.uuid4().hex}",
                    actor=ADMIN,
                )
            )
            coupons.append(issued.coupon.id)

        # The order through the gateway.
        variables = {
            "input": {
                "storeId": STORE,
                "lines": [{"skuId": HOP_SKU, "quantity": 1}],
                "couponId": coupons[0],
                "redeemPoints": 100,
            },
            "key": f"hop-gw-{uuid.uuid4().hex}",
        }
        response = await timed(
            sink,
            "gateway placeOrder",
            http.post(
                "/graphql",
                json={"query": PLACE, "variables": variables},
                headers=customer_headers(member_id),
            ),
        )
        body = response.json()
        if body.get("errors"):
            raise SystemExit(f"placeOrder failed: {body['errors']}")

        # The same order straight to order-svc.
        await timed(
            sink,
            "order-svc PlaceOrder (gRPC)",
            stubs.order.PlaceOrder(
                order_pb2.PlaceOrderRequest(
                    idempotency_key=f"hop-grpc-{uuid.uuid4().hex}",
                    member_id=member_id,
                    store_id=STORE,
                    fulfillment=order_pb2.FULFILLMENT_TYPE_PICKUP_IN_STORE,
                    lines=[order_pb2.PlaceOrderLine(sku_id=HOP_SKU, quantity=1)],
                    channel=CHANNEL,
                    coupon_id=coupons[1],
                    redeem_points=100,
                    actor=common_pb2.Actor(kind=common_pb2.ACTOR_KIND_CUSTOMER, id=member_id),
                )
            ),
        )

        # Its hops, one by one.
        reference = f"hop-{uuid.uuid4().hex}"
        hops: dict[str, list[float]] = {}
        member = await timed(
            hops, "GetMember", stubs.member.GetMember(member_pb2.GetMemberRequest(id=member_id))
        )
        await timed(
            hops,
            "BatchGetInventory",
            stubs.store.BatchGetInventory(
                store_pb2.BatchGetInventoryRequest(store_id=STORE, sku_ids=[HOP_SKU])
            ),
        )
        quoted = await timed(
            hops,
            "QuotePrices",
            stubs.catalog.QuotePrices(
                catalog_pb2.QuotePricesRequest(
                    sku_ids=[HOP_SKU], channel=CHANNEL, tier=member.member.tier, store_id=STORE
                )
            ),
        )
        quote = quoted.quotes[0]
        hold = store_pb2.ReserveStockRequest(
            order_id=reference,
            store_id=STORE,
            lines=[store_pb2.ReservationLine(sku_id=HOP_SKU, quantity=1)],
        )
        hold.hold_until.FromDatetime(datetime.now(UTC) + timedelta(days=8))
        await timed(hops, "ReserveStock", stubs.store.ReserveStock(hold))
        lock = member_pb2.LockCouponRequest(
            coupon_id=coupons[2],
            member_id=member_id,
            order_id=reference,
            lines=[
                member_pb2.EvaluationLine(
                    sku_id=HOP_SKU,
                    category_ids=list(quote.category_ids),
                    quantity=1,
                    line_total=quote.unit_price,
                )
            ],
            channel=CHANNEL,
            store_id=STORE,
            with_points=True,
        )
        lock.lock_until.FromDatetime(datetime.now(UTC) + timedelta(days=8))
        locked = await timed(hops, "LockCoupon", stubs.member.LockCoupon(lock))
        after_coupon = quote.unit_price.amount - locked.discount.amount
        await timed(
            hops,
            "RedeemPoints",
            stubs.member.RedeemPoints(
                member_pb2.RedeemPointsRequest(
                    member_id=member_id,
                    points=100,
                    reference=reference,
                    order_amount=common_pb2.Money(amount=after_coupon, currency="CNY"),
                )
            ),
        )
        for name, values in hops.items():
            sink.setdefault(name, []).extend(values)
        sink.setdefault("sum of the hops", []).append(sum(v[0] for v in hops.values()))
    return results


# -- phase 2: the flash sale --------------------------------------------------------------------


class Connection:
    """One kept-alive HTTP/1.1 connection to the gateway speaking just enough HTTP to POST
    prepared bytes and read a Content-Length answer: the flash sale's 500 clients cost
    this process a fraction of what an HTTP client library does, so the 2 cores go to the
    system under test."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        return cls(*await asyncio.open_connection(host, port))

    @staticmethod
    def request(host: str, body: dict[str, object], headers: dict[str, str]) -> bytes:
        payload = json.dumps(body).encode()
        lines = [
            "POST /graphql HTTP/1.1",
            f"Host: {host}",
            "Content-Type: application/json",
            f"Content-Length: {len(payload)}",
            *(f"{name}: {value}" for name, value in headers.items()),
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload

    async def send(self, request: bytes) -> dict[str, object]:
        self.writer.write(request)
        await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        answer: dict[str, object] = json.loads(await self.reader.readexactly(length))
        return answer

    def close(self) -> None:
        self.writer.close()


@dataclass
class Answer:
    seconds: float
    outcome: str  # "accepted", or the error reason / code
    order_id: str = ""


@dataclass
class SaleRound:
    sku: str
    answers: list[Answer]
    wall: float
    level: store_pb2.InventoryLevel
    held: int
    oversold: int
    cpu_per_order: dict[str, float]

    @property
    def accepted(self) -> list[Answer]:
        return [a for a in self.answers if a.outcome == "accepted"]


async def flash_sale_round(
    stubs: Stubs,
    host: str,
    sku_id: str,
    members: list[str],
    units: int,
    pids: dict[str, int],
) -> SaleRound:
    await set_available(stubs, sku_id, units)
    requests = [
        Connection.request(
            host,
            {
                "query": PLACE,
                "variables": {
                    "input": {"storeId": STORE, "lines": [{"skuId": sku_id, "quantity": 1}]},
                    "key": f"sale-{uuid.uuid4().hex}",
                },
            },
            customer_headers(member_id),
        )
        for member_id in members
    ]
    # Open every connection first (the round times placeOrder, not TCP set-up), just before
    # the round: uvicorn closes a kept-alive connection after 5 idle seconds.
    gateway_host, gateway_port = host.split(":")
    connections = [
        await Connection.open(gateway_host, int(gateway_port)) for _ in range(len(members))
    ]
    warm = Connection.request(host, {"query": "{ me { role } }"}, {})
    await asyncio.gather(*(c.send(warm) for c in connections))
    go = asyncio.Event()

    async def one(index: int) -> Answer:
        await go.wait()
        started = time.perf_counter()
        body: dict[str, Any] = await connections[index].send(requests[index])
        elapsed = time.perf_counter() - started
        if body.get("errors"):
            extensions = body["errors"][0].get("extensions", {})
            return Answer(elapsed, extensions.get("reason") or extensions.get("code", "?"))
        return Answer(elapsed, "accepted", body["data"]["placeOrder"]["id"])

    tasks = [asyncio.create_task(one(i)) for i in range(len(members))]
    await asyncio.sleep(0.2)  # every task is waiting at the gate
    before = cpu_ms(pids)
    started = time.perf_counter()
    go.set()
    answers = await asyncio.gather(*tasks)
    wall = time.perf_counter() - started
    after = cpu_ms(pids)
    cpu = {name: (after[name] - before[name]) / len(members) for name in pids}
    for connection in connections:
        connection.close()

    # Calls the gateway gave up on (its deadline) may still be finishing in order-svc: wait
    # until the SKU's reservations stop changing before judging.
    level = await inventory(stubs, sku_id)
    while True:
        await asyncio.sleep(2)
        settled = await inventory(stubs, sku_id)
        if settled.reserved == level.reserved:
            break
        level = settled
    accepted = [a for a in answers if a.outcome == "accepted"]
    held = 0
    for answer in accepted:
        reservation = (
            await stubs.store.GetReservation(
                store_pb2.GetReservationRequest(order_id=answer.order_id)
            )
        ).reservation
        if reservation.status == store_pb2.RESERVATION_STATUS_RESERVED:
            held += sum(line.quantity for line in reservation.lines)
    oversold = max(0, len(accepted) - units) + max(0, level.reserved - level.on_hand)
    oversold += max(0, held - units)
    return SaleRound(sku_id, list(answers), wall, level, held, oversold, cpu)


def print_sale_round(number: int, sale: SaleRound, units: int) -> None:
    latencies = [a.seconds * 1000 for a in sale.answers]
    accepted = [a.seconds * 1000 for a in sale.accepted]
    outcomes = Counter(a.outcome for a in sale.answers)
    level = sale.level
    print(
        f"round {number} ({sale.sku}): {len(sale.answers)} placeOrder in {sale.wall:.2f} s = "
        f"{len(sale.answers) / sale.wall:.0f} answers/s, {len(accepted) / sale.wall:.0f} "
        f"accepted/s; p50 {percentile(latencies, 0.5):.0f} ms, p99 "
        f"{percentile(latencies, 0.99):.0f} ms (accepted: p50 {percentile(accepted, 0.5):.0f}"
        f" ms, p99 {percentile(accepted, 0.99):.0f} ms); outcomes {dict(outcomes)}",
        flush=True,
    )
    print(
        f"  store-svc: on hand {level.on_hand}, reserved {level.reserved}, available "
        f"{level.available}; accepted orders' reservations held {sale.held} units of {units}; "
        f"placed but answered after the gateway's deadline "
        f"{max(0, level.reserved - len(accepted))}; oversold {sale.oversold}",
        flush=True,
    )
    cells = ", ".join(f"{name} {ms:.2f}" for name, ms in sale.cpu_per_order.items())
    total = sum(sale.cpu_per_order.values())
    print(f"  CPU ms per placeOrder: {cells} (total {total:.2f})", flush=True)


# -- main ---------------------------------------------------------------------------------------


async def run(stack: Stack, database: EmbeddedDatabase, args: argparse.Namespace) -> int:
    channels = {name: grpc.aio.insecure_channel(stack.address(name)) for name in SERVICES}
    stubs = Stubs(
        catalog_pb2_grpc.CatalogServiceStub(channels["catalog"]),
        store_pb2_grpc.StoreServiceStub(channels["store"]),
        member_pb2_grpc.MemberServiceStub(channels["member"]),
        order_pb2_grpc.OrderServiceStub(channels["order"]),
    )
    http = httpx.AsyncClient(base_url=f"http://{stack.address('gateway')}", timeout=120)
    try:
        template = await stubs.member.CreateCouponTemplate(
            member_pb2.CreateCouponTemplateRequest(
                template=member_pb2.CouponTemplate(
                    name=common_pb2.LocalizedText(values={"zh-Hans": "立减5元", "en": "5 off"}),
                    kind=member_pb2.COUPON_KIND_FIXED,
                    amount_off=common_pb2.Money(amount=500, currency="CNY"),
                    valid_days=30,
                    per_member_limit=100,
                    combinable_with_points=True,
                    status=member_pb2.COUPON_TEMPLATE_STATUS_ACTIVE,
                ),
                request_id="bench-5-off",
                actor=ADMIN,
            )
        )
        log(f"phase 1: {args.hop_rounds} sequential rounds of placeOrder and its hops")
        hops = await hop_rounds(stubs, http, args.hop_rounds, template.template.id)
        print()
        print(
            f"placeOrder (pickup, a coupon, 100 points) next to its gRPC hops, "
            f"{args.hop_rounds} sequential rounds, ms"
        )
        print(f"{'':34} {'p50':>8} {'p90':>8} {'mean':>8}")
        for name, values in hops.items():
            print(
                f"{name:34} {statistics.median(values):8.1f} {percentile(values, 0.9):8.1f} "
                f"{statistics.fmean(values):8.1f}"
            )
        gateway_p50 = statistics.median(hops["gateway placeOrder"])
        order_p50 = statistics.median(hops["order-svc PlaceOrder (gRPC)"])
        hops_p50 = statistics.median(hops["sum of the hops"])
        print(
            f"order-svc's own work (PlaceOrder - hops, p50): {order_p50 - hops_p50:.1f} ms; "
            f"the gateway's (placeOrder - PlaceOrder, p50): {gateway_p50 - order_p50:.1f} ms",
            flush=True,
        )
        print(load_average(), flush=True)

        log(f"creating {args.orders} customers")
        members = await bounded([lambda: new_member(stubs) for _ in range(args.orders)], 16)
        host = stack.address("gateway")
        assert database.process is not None
        pids = {name: process.pid for name, process in stack.processes.items()}
        pids = {"database": database.process.pid, **pids, "client": os.getpid()}
        print()
        print(
            f"flash sale: {args.orders} concurrent placeOrder (distinct customers) for "
            f"{args.units} units of one SKU in {STORE}, {args.rounds} rounds"
        )
        rounds = []
        for number, sku in enumerate(flash_sale_skus(args.rounds), start=1):
            sale = await flash_sale_round(stubs, host, sku, members, args.units, pids)
            print_sale_round(number, sale, args.units)
            rounds.append(sale)
        print()
        print(f"flash sale medians of {len(rounds)} rounds")
        rows = {
            "placeOrder answers/s": [len(r.answers) / r.wall for r in rounds],
            "accepted orders/s": [len(r.accepted) / r.wall for r in rounds],
            "p50 ms (all answers)": [
                percentile([a.seconds * 1000 for a in r.answers], 0.5) for r in rounds
            ],
            "p99 ms (all answers)": [
                percentile([a.seconds * 1000 for a in r.answers], 0.99) for r in rounds
            ],
            "p50 ms (accepted)": [
                percentile([a.seconds * 1000 for a in r.accepted], 0.5) for r in rounds
            ],
            "p99 ms (accepted)": [
                percentile([a.seconds * 1000 for a in r.accepted], 0.99) for r in rounds
            ],
            "wall s": [r.wall for r in rounds],
        }
        for name, values in rows.items():
            shown = ", ".join(f"{v:.1f}" for v in values)
            print(f"{name:24} {statistics.median(values):9.1f}   ({shown})")
        oversold = sum(r.oversold for r in rounds)
        accepted = [len(r.accepted) for r in rounds]
        others = Counter(
            a.outcome for r in rounds for a in r.answers if a.outcome not in ("accepted",)
        )
        print(f"accepted per round {accepted}; refusals {dict(others)}; oversold {oversold}")
        print(load_average(), flush=True)
        return 1 if oversold else 0
    finally:
        await http.aclose()
        for channel in channels.values():
            await channel.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=500, help="concurrent placeOrder")
    parser.add_argument("--units", type=int, default=100, help="units on sale")
    parser.add_argument("--rounds", type=int, default=3, help="flash sale rounds")
    parser.add_argument("--hop-rounds", type=int, default=30, help="sequential hop rounds")
    parser.add_argument(
        "--gateway-timeout",
        type=float,
        default=60.0,
        help="GATEWAY_GRPC_TIMEOUT_SECONDS (the product default is 5: with it, orders still "
        "queued in order-svc after 5 s are answered SERVICE_UNAVAILABLE, retry with the key)",
    )
    args = parser.parse_args()
    print(f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(f"machine: {machine()}")
    print(load_average(), flush=True)
    print(f"gateway gRPC deadline: {args.gateway_timeout:g} s")
    with running_stack(ROOT / "var" / "bench" / "flash_sale", args.gateway_timeout) as (
        stack,
        database,
    ):
        code = asyncio.run(run(stack, database, args))
    sys.exit(code)


if __name__ == "__main__":
    main()
