"""Wires store-svc: repository and servicer on a ServiceHost, and the reservation sweeper."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

import grpc

from retail.store.v1 import store_pb2, store_pb2_grpc
from retail_kit.partitions import PartitionLayoutMismatch
from retail_kit.server import ServiceContext, ServiceHost
from store_svc.inventory import InventoryBook
from store_svc.partitioning import HotCollections, hot_collections, partitions_setting
from store_svc.repository import StoreRepository
from store_svc.reservations import ReservationBook
from store_svc.servicer import StoreServicer, utc_now
from store_svc.settings import StoreSettings

NAME = "store-svc"
SERVICE_NAMES = (store_pb2.DESCRIPTOR.services_by_name["StoreService"].full_name,)

log = logging.getLogger(__name__)

# Sweeper tasks by the id of the context they serve (ServiceContext has slots, no weakref).
_sweepers: dict[int, asyncio.Task[None]] = {}


def collections(context: ServiceContext) -> HotCollections:
    """The partitioned collections, with the partition count from the settings."""
    return hot_collections(context.database, partitions_setting(context.settings))


def reservation_book(context: ServiceContext) -> ReservationBook:
    """The reservations over the context's database, sharing its write guard."""
    inventory = InventoryBook(context.database, context.guard, collections(context))
    return ReservationBook(context.database, context.guard, inventory)


def register(server: grpc.aio.Server, context: ServiceContext) -> None:
    hot = collections(context)
    repository = StoreRepository(context.database, context.guard, hot)
    inventory = InventoryBook(context.database, context.guard, hot)
    servicer = StoreServicer(repository, inventory)
    store_pb2_grpc.add_StoreServiceServicer_to_server(servicer, server)


async def _sweep_forever(book: ReservationBook, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            released = await book.sweep(utc_now())
            if released:
                log.info("released %d expired reservations", len(released))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("reservation sweep failed; retrying next interval")


async def on_ready(context: ServiceContext) -> None:
    """Indexes, then the partition layout: a database written with another partition count
    raises PartitionLayoutMismatch, so the service never turns SERVING (and `python -m
    store_svc` exits, see `build_host`)."""
    await StoreRepository(context.database, context.guard).ensure_indexes()
    await collections(context).ensure_layout()
    settings = context.settings
    interval = getattr(settings, "sweep_interval_seconds", 30.0)
    if interval > 0:
        _sweepers[id(context)] = asyncio.create_task(
            _sweep_forever(reservation_book(context), interval)
        )


async def on_stop(context: ServiceContext) -> None:
    task = _sweepers.pop(id(context), None)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


refused: list[str] = []
"""Why the process refused to start (set by `build_host`'s readiness hook)."""


def build_host(settings: StoreSettings) -> ServiceHost:
    """The host of `python -m store_svc`: a partition layout mismatch ends the process."""

    async def ready_or_refuse(context: ServiceContext) -> None:
        try:
            await on_ready(context)
        except PartitionLayoutMismatch as mismatch:
            log.critical("refusing to start: %s", mismatch)
            refused.append(str(mismatch))
            # run_service drains and returns on SIGTERM; __main__ then exits non-zero.
            signal.raise_signal(signal.SIGTERM)
            raise

    return ServiceHost(NAME, settings, SERVICE_NAMES, register, ready_or_refuse, on_stop)
