"""The embedded default database: a SecantusDB server process (WiredTiger files, loopback only).

SecantusDB speaks the MongoDB wire protocol with MongoDB's semantics (atomic single-document
updates, unique and secondary indexes, transactions, change streams, TTL) and presents
itself as the primary of a one-node replica set, so the services run exactly the code they
run on a production MongoDB replica set. It is GPL-2.0-only: it is started here as a
separate program (`secantusd-py`, installed into the workspace environment by the
`embedded-db` dependency group) and spoken to over a socket; no project code imports it.

Durability: the server is started with its journal fsynced on every commit
(`--sync-on-commit`). Without it SecantusDB 0.7 acknowledges writes whose journal records
are still in its own memory: a kill -9 lost 11-47 of the last acknowledged updates in every
trial (libs/retail-kit/tests/test_embedded_durability.py). The fsync costs about 3x on
sequential single writes (docs/BENCHMARKS.md); `sync_on_commit=False`
(DEVSTACK_SYNC_ON_COMMIT=0) trades that safety for speed, e.g. for throwaway benchmark data.

Retryable writes: the URI this module hands out (`EmbeddedDatabase.uri`, and
`retail_kit.settings.EMBEDDED_MONGODB_URI`, the services' default) carries
`retryWrites=false`. SecantusDB 0.7.0b3 keeps a reply record per retryable write (30
minutes, at most 10,000) and scans all of them, and sorts them once at the cap, on every
retryable write; after ~10,000 writes each write cost 10-15 ms more (docs/BENCHMARKS.md,
issue 6). The services do not need the driver's retry for exactness: every hot write carries
its own operation id or is a compare-and-set (docs/ARCHITECTURE.md). A MONGODB_URI set by
the user is used exactly as given, so a production MongoDB keeps PyMongo's default (on).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

SERVER_PROGRAM = "secantusd-py"
EMBEDDED_URI_OPTIONS = "retryWrites=false"


def embedded_uri(host: str, port: int) -> str:
    """The URI of an embedded server, with the client options it needs (module docstring)."""
    return f"mongodb://{host}:{port}/?{EMBEDDED_URI_OPTIONS}"


def server_program() -> Path:
    """`secantusd-py` beside the running interpreter (the workspace's venv), else on PATH."""
    configured = os.environ.get("SECANTUSD_BIN")
    if configured:
        return Path(configured)
    beside = Path(sys.executable).parent / SERVER_PROGRAM
    if beside.exists():
        return beside
    found = shutil.which(SERVER_PROGRAM)
    if found is None:
        raise FileNotFoundError(
            f"{SERVER_PROGRAM} not found: run `make install` (uv sync installs SecantusDB)"
        )
    return Path(found)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the database server exited with {process.returncode}")
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"the database server did not listen on {host}:{port} within {timeout}s")


class EmbeddedDatabase:
    """Starts SecantusDB with its files under `data_dir`; `stop` shuts it down cleanly."""

    def __init__(
        self,
        data_dir: Path,
        port: int,
        host: str = "127.0.0.1",
        *,
        sync_on_commit: bool = True,
        cache_size: str = "1G",
    ) -> None:
        self.data_dir = data_dir
        self.host = host
        self.port = port
        self.sync_on_commit = sync_on_commit
        self.cache_size = cache_size
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return embedded_uri(self.host, self.port)

    def command(self) -> list[str]:
        command = [
            str(server_program()),
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--storage-path",
            str(self.data_dir / "data"),
            "--cache-size",
            self.cache_size,
            "--log-level",
            "WARNING",
        ]
        if self.sync_on_commit:
            command.append("--sync-on-commit")
        return command

    def start(self, timeout: float = 60.0) -> EmbeddedDatabase:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = (self.data_dir / "server.log").open("ab")
        self.process = subprocess.Popen(
            self.command(),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # No config file is picked up from the working directory or home.
            cwd=self.data_dir,
            start_new_session=True,
        )
        log.close()
        wait_for_port(self.host, self.port, timeout, self.process)
        return self

    def kill(self) -> None:
        """kill -9: what a crash looks like to the journal."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self, timeout: float = 20.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
