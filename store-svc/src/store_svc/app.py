"""Wires store-svc: repository and servicer on a ServiceHost, and the reservation sweeper."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import grpc

from retail.store.v1 import store_pb2, store_pb2_grpc
from retail_kit.mongo import ensure_indexes
from retail_kit.server import ServiceContext, ServiceHost
from store_svc import access, inventory, reservations
from store_svc.inventory import InventoryBook
from store_svc.repository import StoreRepository
from store_svc.reservations import ReservationBook
from store_svc.servicer import StoreServicer, utc_now
from store_svc.settings import StoreSettings

NAME = "store-svc"
SERVICE_NAMES = (store_pb2.DESCRIPTOR.services_by_name["StoreService"].full_name,)

log = logging.getLogger(__name__)

# Sweeper tasks by the id of the context they serve (ServiceContext has slots, no weakref).
_sweepers: dict[int, asyncio.Task[None]] = {}


def reservation_book(context: ServiceContext) -> ReservationBook:
    return ReservationBook(context.database, InventoryBook(context.database))


def register(server: grpc.aio.Server, context: ServiceContext) -> None:
    servicer = StoreServicer(StoreRepository(context.database))
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


async def ensure_all_indexes(context: ServiceContext) -> None:
    await StoreRepository(context.database).ensure_indexes()
    await ensure_indexes(context.database, (*inventory.INDEXES, *reservations.INDEXES))


async def on_ready(context: ServiceContext) -> None:
    await ensure_all_indexes(context)
    interval = getattr(context.settings, "sweep_interval_seconds", 30.0)
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


def build_host(settings: StoreSettings) -> ServiceHost:
    return ServiceHost(
        NAME,
        settings,
        SERVICE_NAMES,
        register,
        on_ready,
        on_stop,
        interceptors=access.interceptors(settings),
    )
