"""Benchmark: persisted queries next to plain POSTs, in one run.

`products(first: 20)` and `product(id)` through the gateway three ways, alternating for
several rounds against the same processes:

- POST with the query text (what a client without persisted queries sends);
- POST with only the APQ hash (`extensions.persistedQuery`), the document from the store;
- GET with the hash and variables in the URL (what a CDN would cache; here there is no CDN,
  so every GET reaches the gateway: the figure is the origin's cost, not a cache hit's).

Starts its own embedded database (fresh files under var/bench/persisted), seeds the demo
catalog, runs catalog-svc and the gateway as `make run` does (rate limits off, as in
development). wrk, a separate process, loads each target at the same concurrency; medians,
the ratios to the plain POST, CPU ms per request of each process, the request sizes, the
machine (lscpu) and the load average are printed. A GraphQL answer carrying `errors` counts
as an error.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "infra"))
sys.path.insert(0, str(HERE))

from devstack import wait_http, wait_serving  # noqa: E402
from products import Sample, load_average, print_cpu, wrk  # noqa: E402

from gateway.persisted import sha256_hex  # noqa: E402
from retail_kit.embedded import EmbeddedDatabase, free_port  # noqa: E402

FIELDS = "id title skus { id barcode price { amount currency } }"
PAGE = "query Page($first: Int!) { products(first: $first) { edges { node { " + FIELDS + " } } } }"
ONE = "query One($id: ID!) { product(id: $id) { " + FIELDS + " } }"
PRODUCT_ID = "p_0150"


def post(url: str, payload: dict[str, object]) -> dict[str, object]:
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request) as response:
        answer: dict[str, object] = json.load(response)
    return answer


def machine() -> str:
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return f"{os.cpu_count()} CPUs"
    wanted = ("Model name", "CPU(s)", "Thread(s) per core", "CPU max MHz", "L3 cache")
    fields = {}
    for line in lscpu.splitlines():
        name, _, value = line.partition(":")
        if name.strip() in wanted and name.strip() not in fields:
            fields[name.strip()] = value.strip()
    return ", ".join(f"{k}: {v}" for k, v in fields.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--first", type=int, default=20)
    parser.add_argument("--data-dir", type=Path, default=ROOT / "var" / "bench" / "persisted")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: `apt-get install wrk` (make bench does it)")

    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {machine()}", flush=True)
    print(load_average(), flush=True)
    shutil.rmtree(args.data_dir, ignore_errors=True)
    database = EmbeddedDatabase(args.data_dir, free_port()).start()
    ports = {name: free_port() for name in ("catalog", "gateway")}
    env = {
        **os.environ,
        "MONGODB_URI": database.uri,
        "CATALOG_PORT": str(ports["catalog"]),
        "GATEWAY_PORT": str(ports["gateway"]),
        "GATEWAY_CATALOG_ADDR": f"127.0.0.1:{ports['catalog']}",
        "GATEWAY_RATE_LIMITS": "off",
        "LOG_LEVEL": "WARNING",
    }
    processes: list[subprocess.Popen[bytes]] = []
    try:
        subprocess.run([sys.executable, "-m", "catalog_svc.seed"], env=env, check=True)
        catalog = subprocess.Popen([sys.executable, "-m", "catalog_svc"], env=env)
        gateway = subprocess.Popen([sys.executable, "-m", "gateway"], env=env)
        processes += [catalog, gateway]
        wait_serving("catalog-svc", f"127.0.0.1:{ports['catalog']}", catalog)
        url = f"http://127.0.0.1:{ports['gateway']}/graphql"
        wait_http(f"http://127.0.0.1:{ports['gateway']}/healthz", gateway)
        assert database.process is not None
        pids = {
            "database": database.process.pid,
            "catalog-svc": catalog.pid,
            "gateway": gateway.pid,
        }
        report_lua = str(HERE / "report.lua")

        cases = {
            f"products(first: {args.first})": (PAGE, {"first": args.first}),
            "product(id)": (ONE, {"id": PRODUCT_ID}),
        }
        for scenario, (query, variables) in cases.items():
            digest = sha256_hex(query)
            persisted = {"persistedQuery": {"version": 1, "sha256Hash": digest}}
            # Register the document (APQ: hash + text once), and check all three agree.
            plain = post(url, {"query": query, "variables": variables})
            registered = post(
                url, {"query": query, "variables": variables, "extensions": persisted}
            )
            by_hash = post(url, {"variables": variables, "extensions": persisted})
            params = urllib.parse.urlencode(
                {"variables": json.dumps(variables), "extensions": json.dumps(persisted)}
            )
            with urllib.request.urlopen(f"{url}?{params}") as response:
                by_get = json.load(response)
                cache_control = response.headers["Cache-Control"]
            if not (plain == registered == by_hash == by_get) or "errors" in plain:
                raise SystemExit(f"{scenario}: the answers differ or fail: {plain} / {by_get}")
            bodies = {
                "POST query text": json.dumps({"query": query, "variables": variables}),
                "POST hash (APQ)": json.dumps({"variables": variables, "extensions": persisted}),
            }
            targets = {
                "POST query text": (url, "graphql.lua", bodies["POST query text"]),
                "POST hash (APQ)": (url, "graphql.lua", bodies["POST hash (APQ)"]),
                "GET hash (CDN-cacheable)": (f"{url}?{params}", "get.lua", ""),
            }
            sizes = {name: len(body.encode()) for name, body in bodies.items()}
            sizes["GET hash (CDN-cacheable)"] = len(f"/graphql?{params}")
            print(f"\n{scenario}: GET answers Cache-Control: {cache_control}", flush=True)

            def load(target: tuple[str, str, str], seconds: int) -> Sample:
                target_url, script, body = target
                wrk_env = {**os.environ, "BENCH_REPORT_LUA": report_lua, "BENCH_BODY": body}
                return wrk(target_url, str(HERE / script), args.connections, seconds, wrk_env, pids)

            for target in targets.values():  # warm-up
                load(target, 2)
            samples: dict[str, list[Sample]] = {name: [] for name in targets}
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
            report(scenario, samples, sizes, args)
            print_cpu(samples)
            print(load_average(), flush=True)
    finally:
        for process in reversed(processes):
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        database.stop()


def report(
    scenario: str,
    samples: dict[str, list[Sample]],
    sizes: dict[str, int],
    args: argparse.Namespace,
) -> None:
    medians = {
        name: (
            statistics.median(s.rps for s in runs),
            statistics.median(s.p50_ms for s in runs),
            statistics.median(s.p99_ms for s in runs),
            sum(s.errors for s in runs),
        )
        for name, runs in samples.items()
    }
    base = next(iter(medians.values()))
    print()
    print(f"{scenario} — wrk -t1 -c{args.connections}, {args.rounds} rounds of {args.seconds}s")
    header = f"{'target':26} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}"
    print(header + f" {'bytes sent':>11} {'req/s vs POST':>14}")
    for name, (rps, p50, p99, errors) in medians.items():
        print(
            f"{name:26} {rps:8.0f} {p50:8.1f} {p99:8.1f} {errors:7d} {sizes[name]:11d} "
            f"{rps / base[0]:13.2f}x"
        )


if __name__ == "__main__":
    main()
