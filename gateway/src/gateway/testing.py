"""Test support (needs the dev dependencies): the gateway under a real uvicorn, an HTTP client
for it, and a client interceptor that records every gRPC call the gateway makes.

Nothing here replaces gateway code: tests talk to the real app over a loopback socket.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, cast

import grpc
import httpx
import uvicorn
from starlette.types import ASGIApp

from gateway.app import create_app
from gateway.settings import GatewaySettings
from retail_kit.embedded import free_port

START_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class RecordedCall:
    method: str
    """The RPC name without its service, e.g. "BatchGetProducts"."""
    timeout: float | None
    """The deadline the call left the gateway with, in seconds."""


@dataclass
class CallLog(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[type-arg]
    """Records each unary call as it leaves the channel (after the deadline is applied)."""

    calls: list[RecordedCall] = field(default_factory=list)

    async def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Any],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        method: str | bytes = client_call_details.method
        name = method.decode() if isinstance(method, bytes) else method
        self.calls.append(RecordedCall(name.rsplit("/", 1)[-1], client_call_details.timeout))
        return await continuation(client_call_details, request)

    def named(self, method: str) -> list[RecordedCall]:
        return [call for call in self.calls if call.method == method]

    def clear(self) -> None:
        self.calls.clear()


@dataclass
class GatewayClient:
    http: httpx.AsyncClient
    settings: GatewaySettings
    calls: CallLog

    async def post(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        payload: dict[str, Any] = {"query": query}
        if variables is not None:
            payload["variables"] = variables
        return await self.http.post("/graphql", json=payload, headers=headers or {})

    async def query(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """POSTs the query and returns the JSON body; the answer must be HTTP 200."""
        response = await self.post(query, variables, headers)
        if response.status_code != 200:
            raise AssertionError(f"HTTP {response.status_code}: {response.text}")
        return cast(dict[str, Any], response.json())


@asynccontextmanager
async def serving(app: ASGIApp) -> AsyncIterator[str]:
    """Serves `app` with uvicorn on a free loopback port in this event loop; yields its URL."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="on", log_config=None)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(START_TIMEOUT_SECONDS):
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("uvicorn stopped before it started serving")
                await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@asynccontextmanager
async def running_gateway(settings: GatewaySettings) -> AsyncIterator[GatewayClient]:
    """The real app (lifespan, channels, auth) served over HTTP, its gRPC calls recorded."""
    calls = CallLog()
    app = create_app(settings, interceptors=[cast(grpc.aio.ClientInterceptor, calls)])
    async with (
        serving(app) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=10.0) as http,
    ):
        yield GatewayClient(http, settings, calls)
