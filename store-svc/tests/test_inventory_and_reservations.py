"""Inventory, adjustments and reservations over real gRPC against the embedded database.

Concurrency tests run many calls at once through the service and then check the
invariants on the documents themselves: on_hand >= reserved >= 0, reserved equals the sum
of the quantities of live (RESERVED) reservations, available = max(0, on_hand - reserved -
safety_stock).
"""

from __future__ import annotations

import asyncio
import itertools
import random
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf import timestamp_pb2
from pymongo.monitoring import (
    CommandFailedEvent,
    CommandListener,
    CommandStartedEvent,
    CommandSucceededEvent,
)

from retail.store.v1 import store_pb2, store_pb2_grpc
from retail_kit.errors import RpcErrorDetails
from retail_kit.testing import channel_to, running_service, unique_name
from store_svc import app
from store_svc.inventory import INVENTORY
from store_svc.reservations import RESERVATIONS
from store_svc.settings import StoreSettings

from .conftest import Service, store_message

_numbers = itertools.count(1)
ROUNDS = 3


async def new_store(service: Service) -> str:
    number = next(_numbers)
    store_id = f"st_inv_{number:03d}"
    await service.stub.CreateStore(
        store_pb2.CreateStoreRequest(store=store_message(store_id, f"INV{number:03d}"))
    )
    return store_id


async def receive(service: Service, store_id: str, sku_id: str, quantity: int) -> None:
    await service.stub.AdjustInventory(
        store_pb2.AdjustInventoryRequest(
            store_id=store_id,
            sku_id=sku_id,
            delta=quantity,
            reason=store_pb2.ADJUSTMENT_REASON_RECEIVE,
            actor_id="as_test",
            idempotency_key=f"recv-{store_id}-{sku_id}-{next(_numbers)}",
        )
    )


def line(sku_id: str, quantity: int) -> store_pb2.ReservationLine:
    return store_pb2.ReservationLine(sku_id=sku_id, quantity=quantity)


def reserve_request(
    order_id: str, store_id: str, *lines: store_pb2.ReservationLine
) -> store_pb2.ReserveStockRequest:
    return store_pb2.ReserveStockRequest(order_id=order_id, store_id=store_id, lines=lines)


async def level(service: Service, store_id: str, sku_id: str) -> store_pb2.InventoryLevel:
    reply = await service.stub.BatchGetInventory(
        store_pb2.BatchGetInventoryRequest(store_id=store_id, sku_ids=[sku_id])
    )
    return reply.levels[0]


async def failure(call: object) -> RpcErrorDetails:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    return RpcErrorDetails.from_rpc_error(caught.value)


async def reservation_doc(service: Service, order_id: str) -> dict[str, object] | None:
    return await service.database[RESERVATIONS].find_one({"_id": order_id})


async def assert_invariants(service: Service, store_id: str, sku_ids: list[str]) -> None:
    live: dict[str, int] = dict.fromkeys(sku_ids, 0)
    holds: dict[str, set[str]] = {sku_id: set() for sku_id in sku_ids}
    async for doc in service.database[RESERVATIONS].find({"store_id": store_id}):
        assert doc["status"] in ("reserved", "committed", "released", "failed"), doc
        if doc["status"] == "reserved":
            for index, item in enumerate(doc["lines"]):
                live[item["sku_id"]] = live.get(item["sku_id"], 0) + item["quantity"]
                holds.setdefault(item["sku_id"], set()).add(f"r:{doc['_id']}:{index}")
    for sku_id in sku_ids:
        key = f"{store_id}:{sku_id}"
        doc = await service.database[INVENTORY].find_one({"_id": key})
        assert doc is not None
        assert doc["on_hand"] >= doc["reserved"] >= 0, doc
        assert doc["reserved"] == live[sku_id], (doc, live)
        # Exactly the live reservations' lines hold stock, each once.
        held = doc.get("held", [])
        assert len(held) == len(set(held)) and set(held) == holds[sku_id], (held, holds[sku_id])
        expected = max(0, doc["on_hand"] - doc["reserved"] - doc["safety_stock"])
        assert doc["available"] == expected, doc


# -- adjustments -----------------------------------------------------------------------------


async def test_receive_replay_and_key_reuse(service: Service) -> None:
    store_id = await new_store(service)
    request = store_pb2.AdjustInventoryRequest(
        store_id=store_id,
        sku_id="p_0001_s1",
        delta=12,
        reason=store_pb2.ADJUSTMENT_REASON_RECEIVE,
        actor_id="as_st_001_01",
        idempotency_key=f"grn-{store_id}-1",
        note="GRN 4711",
    )
    first = await service.stub.AdjustInventory(request)
    assert (first.level.on_hand, first.level.available, first.level.reserved) == (12, 12, 0)
    assert first.adjustment.sequence == 1 and first.adjustment.on_hand_after == 12
    replay = await service.stub.AdjustInventory(request)
    assert replay == first
    assert (await level(service, store_id, "p_0001_s1")).on_hand == 12

    changed = store_pb2.AdjustInventoryRequest()
    changed.CopyFrom(request)
    changed.delta = 13
    details = await failure(service.stub.AdjustInventory(changed))
    assert details.code == grpc.StatusCode.FAILED_PRECONDITION
    assert details.reason == "IDEMPOTENCY_KEY_REUSED"
    assert (await level(service, store_id, "p_0001_s1")).on_hand == 12


async def test_concurrent_replays_of_one_adjustment_apply_once(service: Service) -> None:
    store_id = await new_store(service)
    request = store_pb2.AdjustInventoryRequest(
        store_id=store_id,
        sku_id="p_0002_s1",
        delta=5,
        reason=store_pb2.ADJUSTMENT_REASON_RECEIVE,
        actor_id="as_1",
        idempotency_key=f"dup-{store_id}",
    )
    replies = await asyncio.gather(*(service.stub.AdjustInventory(request) for _ in range(20)))
    assert {r.level.on_hand for r in replies} == {5}
    assert (await level(service, store_id, "p_0002_s1")).on_hand == 5


async def test_trail_lists_newest_first_with_paging(service: Service) -> None:
    store_id = await new_store(service)
    sku = "p_0003_s1"
    await receive(service, store_id, sku, 10)
    for n in range(4):
        await service.stub.AdjustInventory(
            store_pb2.AdjustInventoryRequest(
                store_id=store_id,
                sku_id=sku,
                delta=-1,
                reason=store_pb2.ADJUSTMENT_REASON_TILL_SALE,
                actor_id="as_1",
                idempotency_key=f"sale-{store_id}-{n}",
            )
        )
    seen: list[int] = []
    token = ""
    while True:
        page = await service.stub.ListInventoryAdjustments(
            store_pb2.ListInventoryAdjustmentsRequest(
                store_id=store_id, sku_id=sku, page_size=2, page_token=token
            )
        )
        seen.extend(a.sequence for a in page.adjustments)
        token = page.next_page_token
        if not token:
            break
    assert seen == [5, 4, 3, 2, 1]
    newest = (
        await service.stub.ListInventoryAdjustments(
            store_pb2.ListInventoryAdjustmentsRequest(store_id=store_id, sku_id=sku, page_size=1)
        )
    ).adjustments[0]
    assert newest.on_hand_after == 6 and newest.reason == store_pb2.ADJUSTMENT_REASON_TILL_SALE


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"delta": 0}, "delta"),
        ({"delta": -3}, "delta"),  # a receipt must add
        ({"reason": store_pb2.ADJUSTMENT_REASON_UNSPECIFIED}, "reason"),
        ({"idempotency_key": ""}, "idempotency_key"),
        ({"actor_id": ""}, "actor_id"),
        ({"sku_id": "bad sku"}, "sku_id"),
        ({"store_id": ""}, "store_id"),
    ],
)
async def test_bad_adjustments_name_the_field_and_change_nothing(
    service: Service, fields: dict[str, object], field: str
) -> None:
    store_id = await new_store(service)
    await receive(service, store_id, "p_0004_s1", 3)
    request = store_pb2.AdjustInventoryRequest(
        store_id=store_id,
        sku_id="p_0004_s1",
        delta=2,
        reason=store_pb2.ADJUSTMENT_REASON_RECEIVE,
        actor_id="as_1",
        idempotency_key=f"bad-{store_id}",
    )
    for key, value in fields.items():
        setattr(request, key, value)
    details = await failure(service.stub.AdjustInventory(request))
    assert details.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in details.violations] == [field]
    assert (await level(service, store_id, "p_0004_s1")).on_hand == 3


async def test_unknown_store_and_stock_below_reserved(service: Service) -> None:
    details = await failure(
        service.stub.AdjustInventory(
            store_pb2.AdjustInventoryRequest(
                store_id="st_nowhere",
                sku_id="p_0001_s1",
                delta=1,
                reason=store_pb2.ADJUSTMENT_REASON_RECEIVE,
                actor_id="as_1",
                idempotency_key="k-nowhere",
            )
        )
    )
    assert details.code == grpc.StatusCode.NOT_FOUND
    assert details.metadata["entity"] == "store"

    store_id = await new_store(service)
    sku = "p_0005_s1"
    await receive(service, store_id, sku, 4)
    await service.stub.ReserveStock(reserve_request(f"o-{store_id}", store_id, line(sku, 3)))
    damage = store_pb2.AdjustInventoryRequest(
        store_id=store_id,
        sku_id=sku,
        delta=-2,
        reason=store_pb2.ADJUSTMENT_REASON_DAMAGE,
        actor_id="as_1",
        idempotency_key=f"damage-{store_id}",
    )
    details = await failure(service.stub.AdjustInventory(damage))
    assert details.code == grpc.StatusCode.FAILED_PRECONDITION
    assert details.metadata["reserved"] == "3"
    after = await level(service, store_id, sku)
    assert (after.on_hand, after.reserved, after.available) == (4, 3, 1)
    # The refused key is not burnt: a smaller damage under a new key works.
    damage.delta, damage.idempotency_key = -1, f"damage-{store_id}-b"
    ok = await service.stub.AdjustInventory(damage)
    assert (ok.level.on_hand, ok.level.available) == (3, 0)
    # Nothing in stock at all: a negative count on a SKU never stocked is refused.
    details = await failure(
        service.stub.AdjustInventory(
            store_pb2.AdjustInventoryRequest(
                store_id=store_id,
                sku_id="p_0999_s1",
                delta=-1,
                reason=store_pb2.ADJUSTMENT_REASON_COUNT_CORRECTION,
                actor_id="as_1",
                idempotency_key=f"neg-{store_id}",
            )
        )
    )
    assert details.code == grpc.StatusCode.FAILED_PRECONDITION
    missing = await service.stub.BatchGetInventory(
        store_pb2.BatchGetInventoryRequest(store_id=store_id, sku_ids=["p_0999_s1", sku])
    )
    assert list(missing.missing_sku_ids) == ["p_0999_s1"]


async def test_safety_stock_holds_back_availability(service: Service) -> None:
    store_id = await new_store(service)
    sku = "p_0006_s1"
    await receive(service, store_id, sku, 5)
    reply = await service.stub.SetSafetyStock(
        store_pb2.SetSafetyStockRequest(store_id=store_id, sku_id=sku, safety_stock=2, actor_id="m")
    )
    assert (reply.level.available, reply.level.safety_stock) == (3, 2)
    details = await failure(
        service.stub.ReserveStock(reserve_request(f"o-{store_id}", store_id, line(sku, 4)))
    )
    assert details.reason == "OUT_OF_STOCK"
    assert details.metadata["available"] == "3"
    bad = await failure(
        service.stub.SetSafetyStock(
            store_pb2.SetSafetyStockRequest(store_id=store_id, sku_id=sku, safety_stock=-1)
        )
    )
    assert [v.field for v in bad.violations] == ["actor_id", "safety_stock"]
    await assert_invariants(service, store_id, [sku])


# -- reservations ----------------------------------------------------------------------------


async def test_reserve_commit_release_lifecycle(service: Service) -> None:
    store_id = await new_store(service)
    sku = "p_0010_s1"
    await receive(service, store_id, sku, 10)
    request = reserve_request(f"o-{store_id}-1", store_id, line(sku, 3))
    first = await service.stub.ReserveStock(request)
    assert first.reservation.status == store_pb2.RESERVATION_STATUS_RESERVED
    assert first.reservation.hold_until.ToDatetime(tzinfo=UTC) > datetime.now(UTC)
    assert await service.stub.ReserveStock(request) == first  # replay: same answer
    after = await level(service, store_id, sku)
    assert (after.on_hand, after.reserved, after.available) == (10, 3, 7)

    commit = store_pb2.CommitReservationRequest(order_id=f"o-{store_id}-1")
    committed = await service.stub.CommitReservation(commit)
    assert committed.reservation.status == store_pb2.RESERVATION_STATUS_COMMITTED
    again = await service.stub.CommitReservation(commit)
    assert again.reservation.status == store_pb2.RESERVATION_STATUS_COMMITTED
    after = await level(service, store_id, sku)
    assert (after.on_hand, after.reserved, after.available) == (7, 0, 7)
    details = await failure(
        service.stub.ReleaseReservation(
            store_pb2.ReleaseReservationRequest(order_id=f"o-{store_id}-1")
        )
    )
    assert details.code == grpc.StatusCode.FAILED_PRECONDITION
    assert details.reason == "INVALID_STATE"

    await service.stub.ReserveStock(reserve_request(f"o-{store_id}-2", store_id, line(sku, 2)))
    release = store_pb2.ReleaseReservationRequest(order_id=f"o-{store_id}-2")
    released = await service.stub.ReleaseReservation(release)
    assert released.reservation.status == store_pb2.RESERVATION_STATUS_RELEASED
    assert (await service.stub.ReleaseReservation(release)).reservation.status == (
        store_pb2.RESERVATION_STATUS_RELEASED
    )
    details = await failure(
        service.stub.CommitReservation(
            store_pb2.CommitReservationRequest(order_id=f"o-{store_id}-2")
        )
    )
    assert details.code == grpc.StatusCode.FAILED_PRECONDITION
    after = await level(service, store_id, sku)
    assert (after.on_hand, after.reserved, after.available) == (7, 0, 7)
    got = await service.stub.GetReservation(
        store_pb2.GetReservationRequest(order_id=f"o-{store_id}-2")
    )
    assert got.reservation.status == store_pb2.RESERVATION_STATUS_RELEASED
    missing = await failure(
        service.stub.CommitReservation(store_pb2.CommitReservationRequest(order_id="o-none"))
    )
    assert missing.code == grpc.StatusCode.NOT_FOUND
    await assert_invariants(service, store_id, [sku])


async def test_multi_line_is_all_or_nothing(service: Service) -> None:
    store_id = await new_store(service)
    await receive(service, store_id, "p_0020_s1", 5)
    await receive(service, store_id, "p_0021_s1", 1)
    request = reserve_request(f"o-{store_id}", store_id, line("p_0020_s1", 2), line("p_0021_s1", 2))
    details = await failure(service.stub.ReserveStock(request))
    assert details.code == grpc.StatusCode.FAILED_PRECONDITION
    assert details.reason == "OUT_OF_STOCK"
    assert details.metadata["sku_id"] == "p_0021_s1"
    assert details.metadata["available"] == "1"
    assert details.metadata["requested"] == "2"
    first = await level(service, store_id, "p_0020_s1")
    assert (first.reserved, first.available) == (0, 5)
    # Stock arrives, but a replay of the same order id answers what was decided.
    await receive(service, store_id, "p_0021_s1", 5)
    replay = await failure(service.stub.ReserveStock(request))
    assert (replay.reason, replay.metadata["available"]) == ("OUT_OF_STOCK", "1")
    got = await service.stub.GetReservation(
        store_pb2.GetReservationRequest(order_id=f"o-{store_id}")
    )
    assert got.reservation.status == store_pb2.RESERVATION_STATUS_FAILED
    assert got.reservation.failure.sku_id == "p_0021_s1"
    await assert_invariants(service, store_id, ["p_0020_s1", "p_0021_s1"])


@pytest.mark.parametrize(
    ("lines", "field"),
    [
        ([], "lines"),
        ([("p_0030_s1", 0)], "lines[0].quantity"),
        ([("p_0030_s1", -2)], "lines[0].quantity"),
        ([("p_0030_s1", 1), ("p_0030_s1", 1)], "lines[1].sku_id"),
        ([("bad sku", 1)], "lines[0].sku_id"),
    ],
)
async def test_bad_reservations_name_the_field(
    service: Service, lines: list[tuple[str, int]], field: str
) -> None:
    store_id = await new_store(service)
    await receive(service, store_id, "p_0030_s1", 5)
    details = await failure(
        service.stub.ReserveStock(
            reserve_request(f"o-{store_id}", store_id, *(line(s, q) for s, q in lines))
        )
    )
    assert details.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in details.violations] == [field]
    assert (await level(service, store_id, "p_0030_s1")).available == 5
    assert await reservation_doc(service, f"o-{store_id}") is None


async def test_unknown_store_sku_past_hold_and_changed_lines(service: Service) -> None:
    store_id = await new_store(service)
    await receive(service, store_id, "p_0031_s1", 5)
    details = await failure(
        service.stub.ReserveStock(reserve_request("o-x1", "st_nowhere", line("p_0031_s1", 1)))
    )
    assert details.code == grpc.StatusCode.NOT_FOUND
    details = await failure(
        service.stub.ReserveStock(
            reserve_request("o-x2", store_id, line("p_0031_s1", 1), line("p_0404_s1", 1))
        )
    )
    assert details.code == grpc.StatusCode.NOT_FOUND
    assert [v.field for v in details.violations] == ["lines[1].sku_id"]
    past = timestamp_pb2.Timestamp()
    past.FromDatetime(datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=1))
    request = reserve_request("o-x3", store_id, line("p_0031_s1", 1))
    request.hold_until.CopyFrom(past)
    details = await failure(service.stub.ReserveStock(request))
    assert [v.field for v in details.violations] == ["hold_until"]
    assert (await level(service, store_id, "p_0031_s1")).available == 5
    for order_id in ("o-x1", "o-x2", "o-x3"):
        assert await reservation_doc(service, order_id) is None

    await service.stub.ReserveStock(reserve_request("o-x4", store_id, line("p_0031_s1", 1)))
    details = await failure(
        service.stub.ReserveStock(reserve_request("o-x4", store_id, line("p_0031_s1", 2)))
    )
    assert details.code == grpc.StatusCode.FAILED_PRECONDITION
    assert details.reason == "IDEMPOTENCY_KEY_REUSED"
    # An existing order id is judged as a replay first, even with a SKU the store never had.
    details = await failure(
        service.stub.ReserveStock(reserve_request("o-x4", store_id, line("p_0404_s1", 1)))
    )
    assert (details.code, details.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "IDEMPOTENCY_KEY_REUSED",
    )
    assert (await level(service, store_id, "p_0031_s1")).reserved == 1


class Commands(CommandListener):
    """The (command, collection) of every command a client sends to one database, in the
    order sent."""

    def __init__(self, database: str) -> None:
        self.database = database
        self.sent: list[tuple[str, str]] = []

    def started(self, event: CommandStartedEvent) -> None:
        if event.database_name == self.database:
            self.sent.append((event.command_name, str(event.command.get(event.command_name))))

    def succeeded(self, event: CommandSucceededEvent) -> None:
        pass

    def failed(self, event: CommandFailedEvent) -> None:
        pass


async def test_a_new_order_costs_two_reads_and_three_writes(mongo_uri: str) -> None:
    """A new single-line order: the store and the stocked SKUs (read together), the
    reservation inserted, the inventory's conditional update, the reservation marked
    RESERVED with its line. A replay reads the reservation after its insert collides.
    (Counted on store-svc's own client: SecantusDB 0.7's opcounters and profiler both miss
    commands that finish at the same moment.)"""
    settings = StoreSettings(
        mongodb_uri=mongo_uri, database=unique_name("store_commands"), sweep_interval_seconds=0
    )
    commands = Commands(settings.database)
    async with (
        running_service(
            app.NAME, settings, app.SERVICE_NAMES, app.register, app.on_ready, listeners=[commands]
        ) as host,
        channel_to(host) as channel,
    ):
        service = Service(store_pb2_grpc.StoreServiceStub(channel), host.context.database, host)
        store_id = await new_store(service)
        sku = "p_0032_s1"
        await receive(service, store_id, sku, 5)
        request = reserve_request(f"o-{store_id}", store_id, line(sku, 2))
        commands.sent.clear()
        await service.stub.ReserveStock(request)
        first = list(commands.sent)
        commands.sent.clear()
        await service.stub.ReserveStock(request)
        replay = list(commands.sent)
        doc = await reservation_doc(service, f"o-{store_id}")
        assert doc is not None
        assert (doc["status"], doc["lines"][0]["state"]) == ("reserved", "reserved")
        assert (await level(service, store_id, sku)).reserved == 2
    assert sorted(first[:2]) == [("find", INVENTORY), ("find", "stores")], first
    assert first[2:] == [
        ("insert", RESERVATIONS),
        ("update", INVENTORY),
        ("update", RESERVATIONS),
    ], first
    assert sorted(replay[:2]) == [("find", INVENTORY), ("find", "stores")], replay
    assert replay[2:] == [("insert", RESERVATIONS), ("find", RESERVATIONS)], replay


async def test_sweeper_releases_expired_holds(service: Service) -> None:
    store_id = await new_store(service)
    sku = "p_0040_s1"
    await receive(service, store_id, sku, 5)
    soon = timestamp_pb2.Timestamp()
    soon.FromDatetime(datetime.now(UTC).replace(tzinfo=None) + timedelta(minutes=5))
    short = reserve_request(f"o-{store_id}-short", store_id, line(sku, 2))
    short.hold_until.CopyFrom(soon)
    await service.stub.ReserveStock(short)
    await service.stub.ReserveStock(reserve_request(f"o-{store_id}-long", store_id, line(sku, 1)))
    book = app.reservation_book(service.host.context)  # type: ignore[attr-defined]
    assert await book.sweep(datetime.now(UTC)) == []
    released = await book.sweep(datetime.now(UTC) + timedelta(hours=2))
    assert f"o-{store_id}-short" in released
    assert f"o-{store_id}-long" not in released
    got = await service.stub.GetReservation(
        store_pb2.GetReservationRequest(order_id=f"o-{store_id}-short")
    )
    assert got.reservation.status == store_pb2.RESERVATION_STATUS_RELEASED
    assert got.reservation.expired
    after = await level(service, store_id, sku)
    assert (after.reserved, after.available) == (1, 4)
    await assert_invariants(service, store_id, [sku])


# -- concurrency -----------------------------------------------------------------------------


@pytest.mark.parametrize("round_number", range(ROUNDS))
async def test_concurrent_reservations_never_oversell(service: Service, round_number: int) -> None:
    store_id = await new_store(service)
    sku = "p_0100_s1"
    await receive(service, store_id, sku, 20)

    async def reserve(n: int) -> str:
        try:
            await service.stub.ReserveStock(
                reserve_request(f"o-{store_id}-{n}", store_id, line(sku, 1))
            )
            return "ok"
        except grpc.aio.AioRpcError as error:
            details = RpcErrorDetails.from_rpc_error(error)
            assert details.code == grpc.StatusCode.FAILED_PRECONDITION
            return details.reason

    outcomes = await asyncio.gather(*(reserve(n) for n in range(50)))
    assert outcomes.count("ok") == 20
    assert outcomes.count("OUT_OF_STOCK") == 30
    after = await level(service, store_id, sku)
    assert (after.on_hand, after.reserved, after.available) == (20, 20, 0)
    await assert_invariants(service, store_id, [sku])


@pytest.mark.parametrize("round_number", range(ROUNDS))
async def test_concurrent_replays_of_one_order_reserve_once(
    service: Service, round_number: int
) -> None:
    store_id = await new_store(service)
    await receive(service, store_id, "p_0101_s1", 10)
    await receive(service, store_id, "p_0102_s1", 10)
    request = reserve_request(f"o-{store_id}", store_id, line("p_0101_s1", 3), line("p_0102_s1", 4))
    replies = await asyncio.gather(*(service.stub.ReserveStock(request) for _ in range(25)))
    assert len({r.SerializeToString() for r in replies}) == 1
    assert (await level(service, store_id, "p_0101_s1")).reserved == 3
    assert (await level(service, store_id, "p_0102_s1")).reserved == 4
    commits = await asyncio.gather(
        *(
            service.stub.CommitReservation(
                store_pb2.CommitReservationRequest(order_id=f"o-{store_id}")
            )
            for _ in range(10)
        )
    )
    assert {c.reservation.status for c in commits} == {store_pb2.RESERVATION_STATUS_COMMITTED}
    assert (await level(service, store_id, "p_0101_s1")).on_hand == 7
    assert (await level(service, store_id, "p_0102_s1")).on_hand == 6
    await assert_invariants(service, store_id, ["p_0101_s1", "p_0102_s1"])


@pytest.mark.parametrize("round_number", range(ROUNDS))
async def test_mixed_concurrent_traffic_keeps_the_invariants(
    service: Service, round_number: int
) -> None:
    store_id = await new_store(service)
    skus = ["p_0200_s1", "p_0201_s1"]
    for sku in skus:
        await receive(service, store_id, sku, 15)
    # Some reservations exist before the storm, so commits and releases have work to do.
    for n in range(10):
        await service.stub.ReserveStock(
            reserve_request(f"o-{store_id}-pre-{n}", store_id, line(skus[n % 2], 1))
        )
    rng = random.Random(round_number)
    outcomes: list[str] = []

    async def call(n: int) -> None:
        kind = rng.choice(["reserve", "reserve", "reserve", "commit", "release", "adjust"])
        try:
            if kind == "reserve":
                lines = [line(skus[0], rng.randint(1, 3))]
                if rng.random() < 0.5:
                    lines.append(line(skus[1], rng.randint(1, 3)))
                await service.stub.ReserveStock(
                    reserve_request(f"o-{store_id}-{n}", store_id, *lines)
                )
            elif kind == "commit":
                await service.stub.CommitReservation(
                    store_pb2.CommitReservationRequest(order_id=f"o-{store_id}-pre-{n % 10}")
                )
            elif kind == "release":
                await service.stub.ReleaseReservation(
                    store_pb2.ReleaseReservationRequest(order_id=f"o-{store_id}-pre-{n % 10}")
                )
            else:
                delta = rng.choice([-2, -1, 1, 3])
                await service.stub.AdjustInventory(
                    store_pb2.AdjustInventoryRequest(
                        store_id=store_id,
                        sku_id=rng.choice(skus),
                        delta=delta,
                        reason=store_pb2.ADJUSTMENT_REASON_COUNT_CORRECTION,
                        actor_id="as_1",
                        idempotency_key=f"mix-{store_id}-{n}",
                    )
                )
            outcomes.append(f"{kind}:ok")
        except grpc.aio.AioRpcError as error:
            details = RpcErrorDetails.from_rpc_error(error)
            assert details.code == grpc.StatusCode.FAILED_PRECONDITION, details
            outcomes.append(f"{kind}:{details.reason}")

    await asyncio.gather(*(call(n) for n in range(80)))
    assert any(o == "reserve:ok" for o in outcomes)
    assert any(o == "reserve:OUT_OF_STOCK" for o in outcomes), outcomes
    await assert_invariants(service, store_id, skus)
