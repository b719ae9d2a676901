"""grpc.aio service host: health (SERVING once the database answers), reflection, graceful stop."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.monitoring import CommandListener

from retail_kit.errors import ServiceErrorInterceptor
from retail_kit.mongo import Document, connect
from retail_kit.settings import ServiceSettings
from retail_kit.telemetry import configure_logging, setup_telemetry, shutdown_telemetry

log = logging.getLogger(__name__)

READINESS_RETRY_SECONDS = 0.5


@dataclass(slots=True)
class ServiceContext:
    """What a service's wiring gets: its settings, the client and its own database."""

    settings: ServiceSettings
    client: AsyncMongoClient[Document]
    database: AsyncDatabase[Document]


Register = Callable[[grpc.aio.Server, ServiceContext], None]
OnReady = Callable[[ServiceContext], Awaitable[None]]
OnStop = Callable[[ServiceContext], Awaitable[None]]


class ServiceHost:
    """Runs one gRPC service: `start`, then `wait`; `stop` drains calls within the grace period."""

    def __init__(
        self,
        name: str,
        settings: ServiceSettings,
        service_names: Sequence[str],
        register: Register,
        on_ready: OnReady | None = None,
        on_stop: OnStop | None = None,
        *,
        interceptors: Sequence[grpc.aio.ServerInterceptor] = (),  # type: ignore[type-arg]
        listeners: Sequence[CommandListener] = (),
    ) -> None:
        self.name = name
        self.settings = settings
        self.service_names = tuple(service_names)
        self._register = register
        self._on_ready = on_ready
        self._on_stop = on_stop
        # Run inside the error interceptor, in order (e.g. retail_kit.apikeys).
        self._interceptors = tuple(interceptors)
        self._server: grpc.aio.Server | None = None
        self._health = HealthServicer()
        self._readiness: asyncio.Task[None] | None = None
        self.port = 0
        # PyMongo command listeners on the service's client (e.g. a test counting commands).
        client = connect(settings.mongodb_uri, name, listeners=listeners)
        self.context = ServiceContext(settings, client, client[settings.database])
        self.ready = asyncio.Event()

    async def start(self) -> int:
        server = grpc.aio.server(interceptors=[ServiceErrorInterceptor(), *self._interceptors])
        self._register(server, self.context)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        reflection.enable_server_reflection(
            (*self.service_names, health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )
        for service in ("", *self.service_names):
            await self._health.set(service, health_pb2.HealthCheckResponse.NOT_SERVING)
        self.port = server.add_insecure_port(f"{self.settings.host}:{self.settings.port}")
        await server.start()
        self._server = server
        self._readiness = asyncio.create_task(self._become_ready())
        log.info("%s listening on %s:%d", self.name, self.settings.host, self.port)
        return self.port

    async def _become_ready(self) -> None:
        while True:
            try:
                await self.context.client.admin.command("ping")
                break
            except Exception as error:
                log.warning("database not ready for %s: %s", self.name, error)
                await asyncio.sleep(READINESS_RETRY_SECONDS)
        if self._on_ready is not None:
            await self._on_ready(self.context)
        for service in ("", *self.service_names):
            await self._health.set(service, health_pb2.HealthCheckResponse.SERVING)
        self.ready.set()
        log.info("%s SERVING", self.name)

    async def stop(self, grace: float | None = None) -> None:
        if self._readiness is not None:
            self._readiness.cancel()
        await self._health.enter_graceful_shutdown()
        if self._server is not None:
            await self._server.stop(self.settings.grace_seconds if grace is None else grace)
        if self._on_stop is not None:
            # Background work the service started in on_ready ends before the client closes.
            await self._on_stop(self.context)
        await self.context.client.close()

    async def wait(self) -> None:
        if self._server is not None:
            await self._server.wait_for_termination()


def run_service(name: str, host_factory: Callable[[], ServiceHost]) -> None:
    """Entry point of `python -m <service>`: runs until SIGTERM or SIGINT, then drains."""
    # Instrumentation patches grpc.aio.server, so it must come before the host builds one.
    setup_telemetry(name, grpc_server=True)

    async def main() -> None:
        host = host_factory()
        configure_logging(host.name, host.settings.log_level)
        await host.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        log.info("%s shutting down (grace %.1fs)", host.name, host.settings.grace_seconds)
        await host.stop()
        shutdown_telemetry()

    asyncio.run(main())
