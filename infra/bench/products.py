"""Benchmark: the gateway's `products` query next to its floor, in one run.

Starts its own embedded database (SecantusDB, fresh files under var/bench/products), seeds
the demo catalog, runs catalog-svc and the gateway as `make run` does, plus the floor
(floor_app.py: the same database reads straight from PyMongo behind a bare Starlette
endpoint). wrk, a separate process, loads each at the same concurrency,
alternating for several rounds; medians and the gateway/floor ratios are printed, with
the CPU time per request of each process (database, catalog-svc, gateway, floor, wrk) from
/proc/<pid>/stat around every run, and the load average. A GraphQL answer carrying
`errors` counts as an error, like a non-2xx status.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "infra"))

from devstack import wait_http, wait_serving  # noqa: E402

from retail_kit.embedded import EmbeddedDatabase, free_port  # noqa: E402

HERE = Path(__file__).resolve().parent
FIELDS = "id title skus { id barcode price { amount currency } }"
QUERY = "{ products(first: %d) { edges { node { " + FIELDS + " } } } }"
PRODUCT_QUERY = '{ product(id: "%s") { ' + FIELDS + " } }"
PRODUCT_ID = "p_0150"


@dataclass(frozen=True)
class Sample:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int  # connect/read/write/timeout errors, non-2xx answers, GraphQL `errors` answers
    requests: int = 0
    cpu_ms: dict[str, float] = field(default_factory=dict)
    """CPU ms per request of each process named in `wrk(processes=...)`, and of wrk itself."""


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_ms(processes: dict[str, int]) -> dict[str, float]:
    """User + system CPU time so far of each process (/proc/<pid>/stat, all threads), in ms."""
    spent = {}
    for name, pid in processes.items():
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        spent[name] = (int(fields[11]) + int(fields[12])) * 1000 / CLOCK_TICKS
    return spent


def children_cpu_ms() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (usage.ru_utime + usage.ru_stime) * 1000


def wrk(
    url: str,
    script: str,
    connections: int,
    seconds: int,
    env: dict[str, str],
    processes: dict[str, int] | None = None,
) -> Sample:
    """One wrk run; `env` carries the GraphQL body for POST scripts. With `processes`
    (name -> pid), the sample carries each one's CPU ms per request during the run, and
    wrk's own (the only child reaped meanwhile)."""
    before, wrk_before = cpu_ms(processes or {}), children_cpu_ms()
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "30s", "-s", script, url],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    after, wrk_after = cpu_ms(processes or {}), children_cpu_ms()
    line = next(x for x in out.splitlines() if x.startswith("BENCH_JSON "))
    data = json.loads(line.removeprefix("BENCH_JSON "))
    requests = max(int(data["requests"]), 1)
    spent = {name: (after[name] - before[name]) / requests for name in after}
    if processes:
        spent["wrk"] = (wrk_after - wrk_before) / requests
    return Sample(
        data["rps"], data["p50_ms"], data["p99_ms"], data["errors"], int(data["requests"]), spent
    )


def print_cpu(samples: dict[str, list[Sample]]) -> None:
    """Median CPU ms per request of each process, per target, with the total."""
    names = list(dict.fromkeys(n for runs in samples.values() for s in runs for n in s.cpu_ms))
    if not names:
        return
    print("CPU ms per request (median of the rounds; /proc/<pid>/stat around each wrk run)")
    print(f"{'target':12}" + "".join(f"{n:>13}" for n in names) + f"{'total':>9}")
    for target, runs in samples.items():
        medians = [statistics.median(s.cpu_ms.get(n, 0.0) for s in runs) for n in names]
        cells = "".join(f"{m:13.2f}" for m in medians)
        print(f"{target:12}{cells}{sum(medians):9.2f}", flush=True)


def load_average() -> str:
    return "load average: " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def check_same_answer(gateway: str, floor: str, first: int) -> None:
    request = urllib.request.Request(
        f"{gateway}/graphql",
        data=json.dumps({"query": QUERY % first}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request) as response:
        via_gateway = json.load(response)
    with urllib.request.urlopen(f"{floor}/products?first={first}") as response:
        direct = json.load(response)
    ids = [[e["node"]["id"] for e in d["data"]["products"]["edges"]] for d in (via_gateway, direct)]
    if ids[0] != ids[1] or len(ids[0]) != first:
        raise SystemExit(f"gateway and floor disagree: {ids}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--first", type=int, default=20)
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=ROOT / "var" / "bench" / "products",
        help="the database server's files, emptied first (default var/bench/products; give "
        "another one when a second run may start meanwhile)",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: `apt-get install wrk` (make bench does it)")

    print(load_average(), flush=True)
    data_dir = args.data_dir
    shutil.rmtree(data_dir, ignore_errors=True)
    database = EmbeddedDatabase(data_dir, free_port()).start()
    ports = {name: free_port() for name in ("catalog", "gateway", "floor")}
    env = {
        **os.environ,
        "MONGODB_URI": database.uri,
        "CATALOG_PORT": str(ports["catalog"]),
        "GATEWAY_PORT": str(ports["gateway"]),
        "GATEWAY_CATALOG_ADDR": f"127.0.0.1:{ports['catalog']}",
        "LOG_LEVEL": "WARNING",
    }
    processes: list[subprocess.Popen[bytes]] = []
    try:
        subprocess.run([sys.executable, "-m", "catalog_svc.seed"], env=env, check=True)
        catalog = subprocess.Popen([sys.executable, "-m", "catalog_svc"], env=env)
        gateway = subprocess.Popen([sys.executable, "-m", "gateway"], env=env)
        floor = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "floor_app:app",
                "--port",
                str(ports["floor"]),
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            env=env,
            cwd=HERE,
        )
        processes += [catalog, gateway, floor]
        wait_serving("catalog-svc", f"127.0.0.1:{ports['catalog']}", catalog)
        gateway_url = f"http://127.0.0.1:{ports['gateway']}"
        floor_url = f"http://127.0.0.1:{ports['floor']}"
        wait_http(f"{gateway_url}/healthz", gateway)
        wait_http(f"{floor_url}/products?first=1", floor)
        check_same_answer(gateway_url, floor_url, args.first)
        assert database.process is not None
        pids = {
            "database": database.process.pid,
            "catalog-svc": catalog.pid,
            "gateway": gateway.pid,
            "floor": floor.pid,
        }

        report_lua = str(HERE / "report.lua")
        scenarios = {
            f"products(first: {args.first})": {
                "floor": (f"{floor_url}/products?first={args.first}", "get.lua", ""),
                "gateway": (f"{gateway_url}/graphql", "graphql.lua", QUERY % args.first),
            },
            "product(id)": {
                "floor": (f"{floor_url}/product?id={PRODUCT_ID}", "get.lua", ""),
                "gateway": (f"{gateway_url}/graphql", "graphql.lua", PRODUCT_QUERY % PRODUCT_ID),
            },
        }

        def load(target: tuple[str, str, str], seconds: int) -> Sample:
            url, script, query = target
            env = {**os.environ, "BENCH_REPORT_LUA": report_lua}
            env["BENCH_BODY"] = json.dumps({"query": query})
            return wrk(url, str(HERE / script), args.connections, seconds, env, pids)

        for scenario, targets in scenarios.items():
            samples: dict[str, list[Sample]] = {name: [] for name in targets}
            for target in targets.values():  # warm-up: connections, caches
                load(target, 2)
            for round_number in range(1, args.rounds + 1):
                for name, target in targets.items():
                    sample = load(target, args.seconds)
                    samples[name].append(sample)
                    print(
                        f"{scenario} round {round_number} {name}: {sample.rps:.0f} req/s, "
                        f"p50 {sample.p50_ms:.1f} ms, p99 {sample.p99_ms:.1f} ms, "
                        f"errors {sample.errors}",
                        flush=True,
                    )
            report(scenario, samples, args)
            print_cpu(samples)
            print(load_average(), flush=True)
        check_same_answer(gateway_url, floor_url, args.first)  # still right after the load
    finally:
        # Floor and gateway before catalog-svc (the gateway may still drain requests wrk left
        # queued), each waited for before the next.
        for process in reversed(processes):
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        database.stop()


def report(scenario: str, samples: dict[str, list[Sample]], args: argparse.Namespace) -> None:
    medians = {
        name: (
            statistics.median(s.rps for s in runs),
            statistics.median(s.p50_ms for s in runs),
            statistics.median(s.p99_ms for s in runs),
            sum(s.errors for s in runs),
        )
        for name, runs in samples.items()
    }
    floor, gateway = medians.values()
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    print()
    print(f"{scenario} — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, {cpu}")
    print(f"wrk -t1 -c{args.connections}, {args.rounds} rounds of {args.seconds}s, medians")
    print(f"{'target':32} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for name, (rps, p50, p99, errors) in medians.items():  # floor first, then gateway
        print(f"{name:32} {rps:8.0f} {p50:8.1f} {p99:8.1f} {errors:7d}")
    print(
        f"gateway/floor: throughput {gateway[0] / floor[0]:.2f}x, "
        f"p50 latency {gateway[1] / floor[1]:.2f}x, p99 latency {gateway[2] / floor[2]:.2f}x"
    )


if __name__ == "__main__":
    main()
