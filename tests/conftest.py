"""Fixtures for whole-system tests: the stack started exactly as `make run` starts it."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2

from retail_kit.embedded import free_port

ROOT = Path(__file__).resolve().parents[1]
STACK_START_TIMEOUT = 240.0
SERVICES = ("catalog", "store", "order", "member")


class TraceCollector(trace_service_pb2_grpc.TraceServiceServicer):
    """A real OTLP/gRPC endpoint on loopback that keeps every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, trace_pb2.Span]] = []

    async def Export(
        self,
        request: trace_service_pb2.ExportTraceServiceRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        for resource_spans in request.resource_spans:
            service = next(
                (
                    a.value.string_value
                    for a in resource_spans.resource.attributes
                    if a.key == "service.name"
                ),
                "",
            )
            for scope_spans in resource_spans.scope_spans:
                self.spans.extend((service, span) for span in scope_spans.spans)
        return trace_service_pb2.ExportTraceServiceResponse()

    def trace(self, trace_id: bytes) -> list[tuple[str, trace_pb2.Span]]:
        return [(service, span) for service, span in self.spans if span.trace_id == trace_id]


@pytest.fixture(scope="session")
async def trace_collector() -> AsyncIterator[tuple[TraceCollector, int]]:
    collector = TraceCollector()
    server = grpc.aio.server()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collector, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield collector, port
    finally:
        await server.stop(0)


@dataclass
class RunningStack:
    process: subprocess.Popen[str]
    gateway_url: str
    service_ports: dict[str, int]
    data_dir: Path
    db_port: int
    output: list[str] = field(default_factory=list)

    def token(self, label: str) -> str:
        for line in self.output:
            if match := re.match(rf"\s+{re.escape(label)}[^:]*: (\S+)$", line):
                return match.group(1)
        raise KeyError(label)


def _pump(process: subprocess.Popen[str], lines: list[str], ready: threading.Event) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line.rstrip("\n"))
        if "[devstack] ready:" in line:
            ready.set()
    ready.set()


@pytest.fixture(scope="session")
def stack(
    tmp_path_factory: pytest.TempPathFactory, trace_collector: tuple[TraceCollector, int]
) -> Iterator[RunningStack]:
    """`make run`'s orchestrator on free loopback ports, exporting spans to the test collector."""
    _, collector_port = trace_collector
    data_dir = tmp_path_factory.mktemp("stack")
    ports = {name: free_port() for name in (*SERVICES, "gateway", "db")}
    env = {
        **os.environ,
        **{f"{name.upper()}_PORT": str(ports[name]) for name in (*SERVICES, "gateway")},
        "DEVSTACK_DB_PORT": str(ports["db"]),
        "DEVSTACK_DATA_DIR": str(data_dir),
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{collector_port}",
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        "PYTHONUNBUFFERED": "1",
    }
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "infra" / "devstack.py")],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    ready = threading.Event()
    threading.Thread(target=_pump, args=(process, lines, ready), daemon=True).start()
    ready.wait(STACK_START_TIMEOUT)
    running = RunningStack(
        process,
        f"http://127.0.0.1:{ports['gateway']}",
        {name: ports[name] for name in SERVICES},
        data_dir,
        ports["db"],
        lines,
    )
    try:
        if not any("[devstack] ready:" in line for line in lines):
            raise RuntimeError("the stack did not start:\n" + "\n".join(lines[-40:]))
        yield running
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()


async def eventually(check: object, within_seconds: float = 15.0) -> None:
    """Polls an async predicate until it holds; for spans that are exported in batches."""
    deadline = time.monotonic() + within_seconds
    while True:
        if await check():  # type: ignore[operator]
            return
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.2)


STACK_STOPPER = "test_ctrl_c_stops_every_process"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The test that stops the shared stack with Ctrl-C runs last, whatever the file order
    (test_subscriptions_e2e.py sorts after test_stack_e2e.py)."""
    items.sort(key=lambda item: getattr(item, "originalname", item.name) == STACK_STOPPER)
