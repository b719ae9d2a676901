"""The embedded default database: a FerretDB v1 process on SQLite files, loopback only."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[4]
DEFAULT_BINARY = REPO_ROOT / "var" / "bin" / "ferretdb"


def ferretdb_binary() -> Path:
    binary = Path(os.environ.get("FERRETDB_BIN", DEFAULT_BINARY))
    if not binary.exists():
        raise FileNotFoundError(f"FerretDB not found at {binary}: run `make install` first")
    return binary


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"FerretDB exited with {process.returncode}")
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"FerretDB did not listen on {host}:{port} within {timeout}s")


class EmbeddedFerretDB:
    """Starts FerretDB with its SQLite files under `data_dir`; `stop` terminates it."""

    def __init__(self, data_dir: Path, port: int, host: str = "127.0.0.1") -> None:
        self.data_dir = data_dir
        self.host = host
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"mongodb://{self.host}:{self.port}/"

    def start(self, timeout: float = 30.0) -> EmbeddedFerretDB:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = (self.data_dir / "ferretdb.log").open("ab")
        self.process = subprocess.Popen(
            [
                str(ferretdb_binary()),
                "--handler=sqlite",
                f"--sqlite-url=file:{self.data_dir}/",
                f"--state-dir={self.data_dir}",
                f"--listen-addr={self.host}:{self.port}",
                "--debug-addr=-",
                "--telemetry=disable",
                "--log-level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        wait_for_port(self.host, self.port, timeout, self.process)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
