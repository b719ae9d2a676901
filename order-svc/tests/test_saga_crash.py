"""kill -9 of order-svc processes in the middle of sagas, at every step, then recovery.

The crashing process is `python -m order_svc` with ORDER_TEST_CRASH_AT="<key>=<point>,...":
each order stops for good right at its point (a call answered but not yet written, a write
made but not yet answered, ...) and says so in the log; once every order is at its point,
the process gets SIGKILL. One order per point, each with its own SKU and member, so every
count below is exact (one process for all points: starting one costs seconds). Then a
process without the variable recovers them: its recovery job resumes the sagas (or a
client's retry with the same key takes a half-placed order over), and a second set,
recovered by an order-svc whose clock is past the saga deadline, is compensated instead.
Nothing is lost or applied twice: stock reserved once or released, the coupon locked once
or free again, the points redeemed once or given back.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from order_svc.repository import ORDERS
from retail.member.v1 import member_pb2
from retail.order.v1 import order_pb2, order_pb2_grpc
from retail.store.v1 import store_pb2
from retail_kit.errors import RpcErrorDetails
from retail_kit.testing import unique_name

from .conftest import (
    PICKUP_STORE,
    Stack,
    coupon,
    issue_coupon,
    level,
    new_member,
    order_service,
    pickup_request,
    points,
    set_stock,
)
from .service_process import ServiceProcess

ROOT = Path(__file__).resolve().parents[2]
SERVING_TIMEOUT = 60.0
SETTLE_TIMEOUT = 30.0
QUANTITY = 2
POINTS = 100
BALANCE = 1000
REFUSED_BALANCE = 100

# Points where the saga succeeds when resumed, and points only a refused saga reaches (its
# points step asks for more than the member has: stock and coupon are then given back).
RESUMED = ("claimed", "quoted", "inserted", "stock", "coupon", "points", "confirmed")
REFUSED = ("failed", "compensation")
# Crashed, then found after the saga deadline: the step is re-run to learn its outcome;
# then the saga is compensated, unless that left only the confirm (everything is held: the
# order is placed, and an unpaid one ends with the payment timeout).
EXPIRED = ("stock", "coupon", "points")
CONFIRMED_LATE = ("points",)


class OrderProcess(ServiceProcess):
    """`python -m order_svc` against the stack's services, leases of 1 s, jobs off."""

    def __init__(self, stack: Stack, database: str, log: Path, **env: str) -> None:
        super().__init__(
            "order_svc",
            "ORDER",
            log,
            MONGODB_URI=stack.mongo_uri,
            ORDER_DATABASE=database,
            ORDER_CATALOG_ADDR=stack.address("catalog"),
            ORDER_STORE_ADDR=stack.address("store"),
            ORDER_MEMBER_ADDR=stack.address("member"),
            ORDER_SAGA_LEASE_SECONDS="1",
            ORDER_WORKER_INTERVAL_SECONDS="0",
            **env,
        )


@dataclass
class Case:
    point: str
    group: str  # resumed | refused | expired
    sku: str
    member_id: str
    coupon_id: str
    request: order_pb2.PlaceOrderRequest
    balance: int

    @property
    def key(self) -> str:
        return self.request.idempotency_key


@pytest.fixture
def processes() -> Iterator[list[OrderProcess]]:
    started: list[OrderProcess] = []
    yield started
    for process in started:
        process.stop()


async def make_case(stack: Stack, point: str, group: str) -> Case:
    (sku,) = stack.take_skus(1)
    await set_stock(stack, PICKUP_STORE, sku, 10)
    # A refused order asks for more points than its member has (but less than an order's
    # cap, which would be INVALID_ARGUMENT): INSUFFICIENT_POINTS at the points step.
    balance = REFUSED_BALANCE if group == "refused" else BALANCE
    member = await new_member(stack, points=balance)
    issued = await issue_coupon(stack, member)
    redeem = 2 * REFUSED_BALANCE if group == "refused" else POINTS
    request = pickup_request(
        member,
        [(sku, QUANTITY)],
        key=f"crash-{group}-{point}",
        coupon_id=issued.id,
        redeem_points=redeem,
    )
    return Case(point, group, sku, member, issued.id, request, balance)


async def place(address: str, request: order_pb2.PlaceOrderRequest) -> order_pb2.Order | str:
    """A client: retries with the same key while the answer is retryable."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = order_pb2_grpc.OrderServiceStub(channel)
        for _ in range(40):
            try:
                return (await stub.PlaceOrder(request, timeout=15)).order
            except grpc.aio.AioRpcError as error:
                if error.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.ABORTED):
                    return f"{error.code().name}:{RpcErrorDetails.from_rpc_error(error).reason}"
                await asyncio.sleep(0.25)
    return "gave up"


async def settled(
    database: object, keys: list[str], maintenance: Any
) -> dict[str, dict[str, object]]:
    """Runs the recovery until none of these keys' sagas is running or compensating; their
    orders."""
    collection = database[ORDERS]  # type: ignore[index]
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while True:
        await maintenance(order_pb2.RunMaintenanceRequest())
        docs = {
            d["idempotency_key"]: d
            async for d in collection.find({"idempotency_key": {"$in": keys}})
        }
        states = {d["saga"]["state"] for d in docs.values()}
        if len(docs) == len(keys) and states <= {"done", "compensated"}:
            return docs
        if time.monotonic() > deadline:
            raise AssertionError(
                f"sagas still running: {[(k, d['saga']) for k, d in docs.items()]}"
            )
        await asyncio.sleep(0.2)


async def assert_held_once(stack: Stack, case: Case, order: order_pb2.Order) -> None:
    assert order.status == order_pb2.ORDER_STATUS_AWAITING_PAYMENT, case.point
    assert (await level(stack, PICKUP_STORE, case.sku)).reserved == QUANTITY, case.point
    reservation = await stack.store.GetReservation(
        store_pb2.GetReservationRequest(order_id=order.id)
    )
    assert reservation.reservation.status == store_pb2.RESERVATION_STATUS_RESERVED
    held = await coupon(stack, case.coupon_id)
    assert (held.status, held.order_id) == (member_pb2.COUPON_STATUS_LOCKED, order.id), case.point
    assert (await points(stack, case.member_id)).available == BALANCE - POINTS, case.point
    assert order.points_redeemed == POINTS and order.coupon_discount.amount == 500


async def assert_given_back(stack: Stack, case: Case) -> None:
    assert (await level(stack, PICKUP_STORE, case.sku)).reserved == 0, case.point
    assert (await coupon(stack, case.coupon_id)).status == member_pb2.COUPON_STATUS_AVAILABLE
    summary = await points(stack, case.member_id)
    assert summary.available == summary.total == case.balance, case.point


def crasher(stack: Stack, cases: list[Case], database: str, log: Path) -> OrderProcess:
    spec = ",".join(f"{c.key}={c.point}" for c in cases)
    return OrderProcess(stack, database, log, ORDER_TEST_CRASH_AT=spec)


async def crash(process: OrderProcess, cases: list[Case]) -> None:
    """Brings every case's order to its crash point in the process, then kill -9s it."""
    log = process.log_path
    calls = [asyncio.ensure_future(place_once(process.address, c.request)) for c in cases]
    deadline = time.monotonic() + SETTLE_TIMEOUT
    waiting = {f"crash point {c.point} reached by {c.key}" for c in cases}
    while waiting:
        assert time.monotonic() < deadline, f"never reached: {sorted(waiting)}"
        await asyncio.sleep(0.1)
        text = await asyncio.to_thread(log.read_text, errors="replace")
        waiting = {line for line in waiting if line not in text}
        assert not any(c.done() for c in calls), "an order was answered before the crash"
    process.process.send_signal(signal.SIGKILL)
    assert await process.exit_code() == -signal.SIGKILL
    answers = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(a, grpc.aio.AioRpcError) for a in answers), answers


async def test_kill_9_at_every_step_then_recovery_loses_and_repeats_nothing(
    stack: Stack, processes: list[OrderProcess], tmp_path: Path
) -> None:
    resumed_db, expired_db = unique_name("order_crash"), unique_name("order_expired")
    cases = [await make_case(stack, p, "resumed") for p in RESUMED]
    cases += [await make_case(stack, p, "refused") for p in REFUSED]
    expired = [await make_case(stack, p, "expired") for p in EXPIRED]
    crashing = crasher(stack, cases, resumed_db, tmp_path / "crashed.log")
    crashing_late = crasher(stack, expired, expired_db, tmp_path / "crashed-late.log")
    # The process that recovers them (its jobs run when asked: RunMaintenance).
    recovery = OrderProcess(stack, resumed_db, tmp_path / "recovery.log")
    processes.extend([crashing, crashing_late, recovery])
    await asyncio.gather(crashing.serving(), crashing_late.serving(), recovery.serving())
    await asyncio.gather(crash(crashing, cases), crash(crashing_late, expired))

    async with (
        order_service(stack, database=resumed_db) as reader,
        grpc.aio.insecure_channel(recovery.address) as channel,
    ):
        maintenance = order_pb2_grpc.OrderServiceStub(channel).RunMaintenance
        inserted = [c for c in cases if c.point not in ("claimed", "quoted")]
        docs = await settled(reader.database, [c.key for c in inserted], maintenance)
        for case in inserted:
            doc = docs[case.key]
            assert doc["status"] == ("awaiting_payment" if case.group == "resumed" else "failed")
            assert all(e["state"] == "done" for e in doc["effects"]), case.point
    # The customers retry with the same keys: the same answers, nothing done twice. The
    # orders that never got inserted (crash at claimed, quoted) are placed by this retry.
    final = await asyncio.gather(*(place(recovery.address, c.request) for c in cases))
    for case, answer in zip(cases, final, strict=True):
        if case.group == "resumed":
            assert isinstance(answer, order_pb2.Order), (case.point, answer)
            await assert_held_once(stack, case, answer)
        else:
            assert answer == "FAILED_PRECONDITION:INSUFFICIENT_POINTS", (case.point, answer)
            await assert_given_back(stack, case)

    # Found after the saga deadline: re-run the step to learn its outcome, then compensate.
    async with order_service(stack, database=expired_db) as late:
        late.clock.advance(seconds=120)
        docs = await settled(late.database, [c.key for c in expired], late.stub.RunMaintenance)
        for case in expired:
            doc = docs[case.key]
            answer = await place(f"127.0.0.1:{late.host.port}", case.request)
            if case.point in CONFIRMED_LATE:
                assert isinstance(answer, order_pb2.Order), (case.point, answer)
                await assert_held_once(stack, case, answer)
                continue
            assert (doc["status"], doc["end_reason"]) == ("failed", "deadline_exceeded")
            assert all(e["state"] == "done" for e in doc["effects"]), case.point
            await assert_given_back(stack, case)
            assert answer == "DEADLINE_EXCEEDED:UNSPECIFIED", (case.point, answer)


async def place_once(address: str, request: order_pb2.PlaceOrderRequest) -> object:
    async with grpc.aio.insecure_channel(address) as channel:
        return await order_pb2_grpc.OrderServiceStub(channel).PlaceOrder(request, timeout=60)
