"""Wires member-svc: the books, the servicer and the background jobs on a ServiceHost."""

from __future__ import annotations

import asyncio
import contextlib

import grpc

from member_svc import access
from member_svc.books import Books, Clock, build_books, ensure_all_indexes, utc_now
from member_svc.jobs import run_jobs_forever
from member_svc.servicer import MemberServicer
from member_svc.settings import MemberSettings
from retail.member.v1 import member_pb2, member_pb2_grpc
from retail_kit.server import ServiceContext, ServiceHost

NAME = "member-svc"
SERVICE_NAMES = (member_pb2.DESCRIPTOR.services_by_name["MemberService"].full_name,)

# Job loops by the id of the context they serve (ServiceContext has slots, no weakref).
_workers: dict[int, asyncio.Task[None]] = {}


def books_for(context: ServiceContext, clock: Clock = utc_now) -> Books:
    settings = context.settings
    assert isinstance(settings, MemberSettings)
    return build_books(context.database, settings, clock)


def register(server: grpc.aio.Server, context: ServiceContext) -> None:
    member_pb2_grpc.add_MemberServiceServicer_to_server(MemberServicer(books_for(context)), server)


async def on_ready(context: ServiceContext) -> None:
    await ensure_all_indexes(context.database)
    interval = getattr(context.settings, "worker_interval_seconds", 0.0)
    if interval > 0:
        _workers[id(context)] = asyncio.create_task(run_jobs_forever(books_for(context), interval))


async def on_stop(context: ServiceContext) -> None:
    task = _workers.pop(id(context), None)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def build_host(settings: MemberSettings) -> ServiceHost:
    return ServiceHost(
        NAME,
        settings,
        SERVICE_NAMES,
        register,
        on_ready,
        on_stop,
        interceptors=access.interceptors(settings),
    )
