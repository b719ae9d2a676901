"""python -m gateway: telemetry first, then the app under uvicorn until SIGTERM/SIGINT."""

from __future__ import annotations

import logging

import uvicorn

from gateway import settings as gateway_settings
from gateway.app import create_app
from gateway.tracing import instrument_app
from retail_kit.telemetry import configure_logging, setup_telemetry, shutdown_telemetry

NAME = "gateway"
log = logging.getLogger(__name__)


def main() -> None:
    settings = gateway_settings.load()
    # Instrumentation patches grpc.aio channel creation, so it must precede create_app's
    # lifespan opening the channels.
    setup_telemetry(NAME, grpc_client=True)
    configure_logging(NAME, settings.log_level)
    app = create_app(settings)
    instrument_app(app)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        lifespan="on",
        log_config=None,  # keep the JSON handler configure_logging installed
        timeout_graceful_shutdown=int(settings.grace_seconds),
    )
    log.info("gateway on http://%s:%d/graphql", settings.host, settings.port)
    try:
        # uvicorn drains in-flight requests on SIGTERM/SIGINT, then runs the lifespan exit.
        uvicorn.Server(config).run()
    finally:
        shutdown_telemetry()


if __name__ == "__main__":
    main()
