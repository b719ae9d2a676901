"""The embedded default, as `make run` starts it.

SecantusDB (WiredTiger files under var/db, loopback only) -> demo data -> the four services ->
the gateway. Waits until every service reports SERVING on the standard gRPC health check and
the gateway answers, prints the GraphiQL address and demo tokens, and on Ctrl-C / SIGTERM
stops every process it started (services first, the database last), leaving no orphan.

MONGODB_URI points everything at an external MongoDB instead of starting the embedded one.
Ports come from the services' own settings (CATALOG_PORT, GATEWAY_PORT, ...); DEVSTACK_DATA_DIR
and DEVSTACK_DB_PORT move the database, DEVSTACK_SYNC_ON_COMMIT=0 stops
fsyncing every commit (unsafe on a crash); DEVSTACK_SKIP_SEED=1 skips the demo data.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import FrameType

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from catalog_svc import settings as catalog_settings
from gateway.auth import Role, issue_token
from gateway.settings import load as load_gateway_settings
from member_svc import settings as member_settings
from order_svc import settings as order_settings
from retail_kit.apikeys import new_api_key
from retail_kit.embedded import EmbeddedDatabase
from retail_kit.settings import ServiceSettings, SettingsError, load_settings
from store_svc import settings as store_settings

ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT_SECONDS = 90.0
STOP_TIMEOUT_SECONDS = 15.0
TOKEN_TTL = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class DevStackSettings:
    data_dir: str = str(ROOT / "var" / "db")
    db_port: int = 27117
    sync_on_commit: bool = True
    skip_seed: bool = False


@dataclass
class Stack:
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    database: EmbeddedDatabase | None = None

    def stop(self) -> None:
        # A second Ctrl-C (or SIGTERM) must not cut the shutdown short and orphan the database.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        for name, process in self.processes.items():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(f"[devstack] {name} did not stop in time; killing it", file=sys.stderr)
                process.kill()
                process.wait()
        if self.database is not None:
            self.database.stop()


def _die_with_parent() -> None:
    """Children get SIGTERM if devstack itself dies, so nothing is left behind even then."""
    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def spawn(module: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", module], env=env, cwd=ROOT, preexec_fn=_die_with_parent
    )


def wait_serving(name: str, address: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    with grpc.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}")
            try:
                reply = health.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.2)
    raise TimeoutError(f"{name} did not report SERVING at {address}")


def wait_http(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gateway exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1.0) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"gateway did not answer at {url}")


DEMO_PARTNERS = (
    # (label, key id, partner id, scopes, rate); the label must hold no colon.
    ("payment partner", "pk_demo_pay", "demo_pay", ("order.payments", "order.read"), ""),
    (
        "ERP partner",
        "pk_demo_erp",
        "demo_erp",
        ("catalog.read", "store.read", "store.inventory.read", "member.read", "order.read"),
        "5/10",
    ),
)
KEYED_SERVICES = ("CATALOG", "STORE", "ORDER", "MEMBER")


def configure_api_keys(env: dict[str, str]) -> list[tuple[str, str]]:
    """The gateway's and order-svc's own keys (scope internal) on every service, unless
    GATEWAY_/ORDER_SERVICE_API_KEY are set; demo partners on every service whose
    <SERVICE>_PARTNER_API_KEYS is not set. Calls without a key stay trusted (make run is a
    development stack) unless <SERVICE>_REQUIRE_API_KEY=true, as production sets it.
    Returns the demo partners' (banner label, key)."""
    internal: list[str] = []
    for prefix, key_id in (("GATEWAY", "pk_gateway"), ("ORDER", "pk_order_svc")):
        if not env.get(f"{prefix}_SERVICE_API_KEY"):
            key, entry = new_api_key(key_id, key_id.removeprefix("pk_"), ["internal"])
            env[f"{prefix}_SERVICE_API_KEY"] = key
            internal.append(entry)
    unset = [p for p in KEYED_SERVICES if not env.get(f"{p}_PARTNER_API_KEYS")]
    demo: list[tuple[str, str]] = []
    demo_entries: list[str] = []
    if unset:
        for label, key_id, partner, scopes, rate in DEMO_PARTNERS:
            key, entry = new_api_key(key_id, partner, scopes, rate)
            limit = f"; {rate.replace('/', '/s, burst ')}" if rate else ""
            demo.append((f"{label} ({partner}, scopes {','.join(scopes)}{limit})", key))
            demo_entries.append(entry)
    for prefix in KEYED_SERVICES:
        given = [env[f"{prefix}_PARTNER_API_KEYS"]] if prefix not in unset else demo_entries
        env[f"{prefix}_PARTNER_API_KEYS"] = ";".join([*given, *internal])
    return demo


def main() -> int:
    try:
        config = load_settings(DevStackSettings, "DEVSTACK")
        services: dict[str, ServiceSettings] = {
            "catalog_svc": catalog_settings.load(),
            "store_svc": store_settings.load(),
            "order_svc": order_settings.load(),
            "member_svc": member_settings.load(),
        }
        gateway = load_gateway_settings()
    except SettingsError as error:
        print(f"[devstack] bad setting: {error}", file=sys.stderr)
        return 2

    stack = Stack()
    stopping = False

    def request_stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, request_stop)
    env = dict(os.environ)
    # API keys (docs/PARTNERS.md): fresh each run, services keep only their sha256.
    partner_keys = configure_api_keys(env)
    # Development stand-ins for the SMS and WeChat partners (members, issue 7): member-svc
    # answers the verification code it would have texted, the gateway signs in WeChat codes
    # "dev:<unionid>". Production sets neither.
    env.setdefault("MEMBER_EXPOSE_VERIFICATION_CODES", "true")
    env.setdefault("GATEWAY_WECHAT_DEV_LOGIN", "true")
    try:
        if "MONGODB_URI" not in env:
            stack.database = EmbeddedDatabase(
                Path(config.data_dir), config.db_port, sync_on_commit=config.sync_on_commit
            )
            stack.database.start()
            env["MONGODB_URI"] = stack.database.uri
            print(f"[devstack] SecantusDB on {stack.database.uri} (data in {config.data_dir})")
        if not config.skip_seed:
            for module in ("catalog_svc.seed", "store_svc.seed", "member_svc.seed"):
                subprocess.run([sys.executable, "-m", module], env=env, cwd=ROOT, check=True)
        for name, service in services.items():
            env[f"GATEWAY_{name.removesuffix('_svc').upper()}_ADDR"] = (
                f"{service.host}:{service.port}"
            )
            # order-svc calls catalog, store and member (its saga and ListOrders).
            if name != "order_svc":
                env.setdefault(
                    f"ORDER_{name.removesuffix('_svc').upper()}_ADDR",
                    f"{service.host}:{service.port}",
                )
        for name in services:
            stack.processes[name] = spawn(name, env)
        stack.processes["gateway"] = spawn("gateway", env)
        for name, service in services.items():
            wait_serving(name, f"{service.host}:{service.port}", stack.processes[name])
        base = f"http://{gateway.host}:{gateway.port}"
        wait_http(f"{base}/healthz", stack.processes["gateway"])
        print_banner(base, gateway.jwt_secret, gateway.jwt_issuer, partner_keys)
        with (Path(config.data_dir) / "stack.pids").open("w") as pids:
            pids.writelines(f"{p.pid}\n" for p in stack.processes.values())
        while all(p.poll() is None for p in stack.processes.values()):
            time.sleep(0.5)
        failed = [n for n, p in stack.processes.items() if p.poll() is not None]
        print(f"[devstack] {', '.join(failed)} exited; stopping the rest", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\n[devstack] stopping", file=sys.stderr)
        return 0
    except (RuntimeError, TimeoutError, subprocess.CalledProcessError) as error:
        print(f"[devstack] failed: {error}", file=sys.stderr)
        return 1
    finally:
        stack.stop()
        print("[devstack] stopped", file=sys.stderr)


def print_banner(
    base: str, secret: str, issuer: str, partner_keys: Sequence[tuple[str, str]] = ()
) -> None:
    tokens = {
        "customer (m_0001)": issue_token(
            secret, issuer, Role.CUSTOMER, subject="m_0001", member_id="m_0001", ttl=TOKEN_TTL
        ),
        "associate (st_001)": issue_token(
            secret, issuer, Role.ASSOCIATE, subject="as_st_001_01", store_id="st_001", ttl=TOKEN_TTL
        ),
        "store manager (st_001)": issue_token(
            secret,
            issuer,
            Role.STORE_MANAGER,
            subject="mgr_st_001",
            store_id="st_001",
            ttl=TOKEN_TTL,
        ),
        "admin": issue_token(secret, issuer, Role.ADMIN, subject="ops_admin", ttl=TOKEN_TTL),
        "kiosk (st_001)": issue_token(
            secret,
            issuer,
            Role.KIOSK,
            subject="k_st_001_01",
            store_id="st_001",
            device_id="k_st_001_01",
            ttl=TOKEN_TTL,
        ),
    }
    print()
    print(f"GraphiQL: {base}/graphql")
    print("Demo tokens (send as the header  Authorization: Bearer <token>):")
    for label, token in tokens.items():
        print(f"  {label}: {token}")
    if partner_keys:
        print("Demo partner keys (gRPC metadata  x-api-key: <key>; docs/PARTNERS.md):")
        for label, key in partner_keys:
            print(f"  {label}: {key}")
    print("Ctrl-C stops everything.")
    print(f"[devstack] ready: {base}/graphql", flush=True)


if __name__ == "__main__":
    sys.exit(main())
