"""A service run as its own process (`python -m <module>`), for kill -9 tests: started on
a port of its choosing (or a given one, to restart in place), awaited until SERVING on the
standard health check, killed or stopped."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from retail_kit.embedded import free_port

ROOT = Path(__file__).resolve().parents[2]
SERVING_TIMEOUT = 60.0


class ServiceProcess:
    def __init__(
        self, module: str, prefix: str, log: Path, port: int | None = None, **env: str
    ) -> None:
        self.module = module
        self.port = port or free_port()
        variables = {k: v for k, v in os.environ.items() if not k.startswith(f"{prefix}_")}
        variables.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
        variables.update(
            {
                f"{prefix}_HOST": "127.0.0.1",
                f"{prefix}_PORT": str(self.port),
                f"{prefix}_GRACE_SECONDS": "1",
                "LOG_LEVEL": "WARNING",
                **env,
            }
        )
        self.log_path = log
        self.log = log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", module],
            env=variables,
            cwd=ROOT,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.address = f"127.0.0.1:{self.port}"

    async def serving(self) -> None:
        deadline = time.monotonic() + SERVING_TIMEOUT
        async with grpc.aio.insecure_channel(self.address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                code = self.process.poll()
                assert code is None, f"{self.module} exited with {code} (log {self.log_path})"
                try:
                    reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.aio.AioRpcError:
                    pass
                await asyncio.sleep(0.1)
        raise TimeoutError(f"{self.module} at {self.address} did not serve")

    async def exit_code(self) -> int | None:
        """The exit code once the process has ended (None if still running after 30 s)."""
        return await asyncio.to_thread(self._wait)

    def _wait(self) -> int | None:
        try:
            return self.process.wait(30)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
