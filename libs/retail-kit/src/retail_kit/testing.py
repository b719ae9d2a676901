"""pytest plugin (loaded with `-p retail_kit.testing`): a real database and real gRPC servers.

Tests run against the embedded database (SecantusDB) started once per session on a free
loopback port, or against the server named by MONGODB_URI (a MongoDB replica set), and
start services in-process on free loopback ports.
"""

from __future__ import annotations

import dataclasses
import os
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager

import grpc
import pytest
from pymongo.monitoring import CommandListener

from retail_kit.embedded import EmbeddedDatabase, free_port
from retail_kit.server import OnReady, OnStop, Register, ServiceHost
from retail_kit.settings import ServiceSettings

READY_TIMEOUT_SECONDS = 30.0


@pytest.fixture(scope="session")
def mongo_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get("MONGODB_URI")
    if external:
        yield external
        return
    database = EmbeddedDatabase(tmp_path_factory.mktemp("database"), free_port()).start()
    try:
        yield database.uri
    finally:
        database.stop()


def unique_name(prefix: str) -> str:
    """A database name no other test uses, so tests never see each other's documents."""
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


@asynccontextmanager
async def running_service(
    name: str,
    settings: ServiceSettings,
    service_names: tuple[str, ...],
    register: Register,
    on_ready: OnReady | None = None,
    on_stop: OnStop | None = None,
    *,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),  # type: ignore[type-arg]
    listeners: Sequence[CommandListener] = (),
) -> AsyncIterator[ServiceHost]:
    """Starts a service on a free loopback port and waits until it reports SERVING."""
    import asyncio

    settings = dataclasses.replace(settings, host="127.0.0.1", port=0, grace_seconds=1.0)
    host = ServiceHost(
        name,
        settings,
        service_names,
        register,
        on_ready,
        on_stop,
        interceptors=interceptors,
        listeners=listeners,
    )
    await host.start()
    try:
        await asyncio.wait_for(host.ready.wait(), READY_TIMEOUT_SECONDS)
        yield host
    finally:
        await host.stop()


@asynccontextmanager
async def channel_to(host: ServiceHost) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{host.port}") as channel:
        yield channel
