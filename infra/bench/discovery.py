"""Benchmark (issue 3): search, nearbyStores and reservations next to their floors, in one run.

Starts its own embedded database (SecantusDB, fresh files under var/bench/discovery), then
per data size:

1. `search("咖啡", first: 20)` through the gateway at 1,000, 10,000 and 50,000 generated
   products (`--products`; each size its own fresh database filled by
   `python -m catalog_svc.bigdata`) next to the floor `discovery_floor.py /search`:
   catalog-svc's own search functions on a PyMongo client in-process, plain posting reads
   (no posting cache), no gRPC, no GraphQL.
2. `nearbyStores(10 km, one stocked SKU)` through the gateway at 20, 200 and 2,000 stores
   (`--stores`; `python -m store_svc.bigdata` into a fresh database per size) next to the
   floor `discovery_floor.py /nearby`: store-svc's own `Locator.nearby` in-process.
3. ReserveStock/s on one SKU through store-svc's gRPC API on the demo seed, `--clients`
   concurrent calls per burst (store-svc/bench/locator_and_reservations.py's
   `reservations_per_second`), next to a floor of the same number of concurrent plain
   atomic conditional updates (`InventoryBook.take`'s `update_one`) on an inventory-shaped
   document in store-svc's `inventory` collection, done from this process. On a database
   server of its own (var/bench/discovery-reservations): first fresh, then again after
   `--fill-writes` retryable writes from another client (SecantusDB 0.7.0b3's per-write cost
   grew with the retryable writes of the last 30 minutes while the services sent theirs as
   retryable writes; see `fill_retryable_writes`). Each phase also prints the CPU time per
   reservation of the database server, store-svc and this process (the client), from
   /proc/<pid>/stat before and after the bursts, and the load average.

Services run as `make run` starts them (`python -m catalog_svc` / `store_svc` / `gateway`);
wrk, a separate process, loads gateway and floor at the same concurrency, alternating for
`--rounds` rounds; medians, gateway/floor ratios and the growth across sizes are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from devstack import wait_http, wait_serving  # noqa: E402
from products import ROOT, Sample, load_average, print_cpu, wrk  # noqa: E402

from retail_kit.embedded import EmbeddedDatabase, free_port  # noqa: E402

SEARCH_TEXT = "咖啡"
SEARCH_QUERY = (
    '{ search(query: "%s", first: %d) { totalCount edges { node { id title '
    "skus { id price { amount } } } } categoryFacets { count } } }"
)
LAT, LNG, RADIUS_KM = 31.2304, 121.4737, 10
STOCKED_SKU = "p_0001_s1"  # store_svc.bigdata stocks p_0001_s1 .. p_<skus>_s1 everywhere
NEARBY_QUERY = (
    '{ nearbyStores(lat: %s, lng: %s, radiusKm: %s, skuIds: ["%s"]) '
    "{ store { id } distanceKm openNow readyBy availability { available } } }"
)
RESERVE_STORE = "st_%03d"  # demo seed stores st_001 .. st_020: a fresh one per burst


def log(message: str) -> None:
    print(f"[discovery] {message}", file=sys.stderr, flush=True)


def load_store_bench() -> ModuleType:
    """store-svc/bench/locator_and_reservations.py (not a package): its reservation burst."""
    path = ROOT / "store-svc" / "bench" / "locator_and_reservations.py"
    spec = importlib.util.spec_from_file_location("store_bench_locator", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Stack:
    """Processes started for one data size; stopped with SIGTERM (then waited for)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.processes: list[subprocess.Popen[bytes]] = []

    def spawn(self, *argv: str, cwd: Path = ROOT) -> subprocess.Popen[bytes]:
        process = subprocess.Popen([sys.executable, *argv], env=self.env, cwd=cwd)
        self.processes.append(process)
        return process

    def floor(self, port: int) -> subprocess.Popen[bytes]:
        return self.spawn(
            "-m",
            "uvicorn",
            "discovery_floor:app",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
            cwd=HERE,
        )

    def stop(self) -> None:
        """Floor and gateway first (they may still drain requests wrk left queued), then the
        service, each waited for before the next."""
        for process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def stack(env: dict[str, str]) -> Iterator[Stack]:
    started = Stack(env)
    try:
        yield started
    finally:
        started.stop()


def post_graphql(url: str, query: str) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{url}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        answer: dict[str, Any] = json.load(response)
    if answer.get("errors"):
        raise SystemExit(f"gateway answered errors: {answer['errors']}")
    data: dict[str, Any] = answer["data"]
    return data


def get_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=60) as response:
        data: dict[str, Any] = json.load(response)["data"]
    return data


Targets = dict[str, tuple[str, str, str]]  # name -> (url, wrk script, GraphQL query or "")


def measure(
    name: str, targets: Targets, args: argparse.Namespace, processes: dict[str, int]
) -> dict[str, list[Sample]]:
    """Warm-up, then `rounds` alternating wrk runs of each target (floor first); each sample
    carries the CPU ms per request of `processes` (name -> pid) and of wrk."""
    report_lua = str(HERE / "report.lua")

    def load(target: tuple[str, str, str], seconds: int) -> Sample:
        url, script, query = target
        env = {**os.environ, "BENCH_REPORT_LUA": report_lua}
        env["BENCH_BODY"] = json.dumps({"query": query})
        return wrk(url, str(HERE / script), args.connections, seconds, env, processes)

    for target in targets.values():
        load(target, 2)
    samples: dict[str, list[Sample]] = {target: [] for target in targets}
    for round_number in range(1, args.rounds + 1):
        for target_name, target in targets.items():
            sample = load(target, args.seconds)
            samples[target_name].append(sample)
            print(
                f"{name} round {round_number} {target_name}: {sample.rps:.1f} req/s, "
                f"p50 {sample.p50_ms:.1f} ms, p99 {sample.p99_ms:.1f} ms, "
                f"errors {sample.errors}",
                flush=True,
            )
    return samples


Medians = dict[str, tuple[float, float, float, int]]  # target -> rps, p50, p99, errors


def medians_of(samples: dict[str, list[Sample]]) -> Medians:
    return {
        name: (
            statistics.median(s.rps for s in runs),
            statistics.median(s.p50_ms for s in runs),
            statistics.median(s.p99_ms for s in runs),
            sum(s.errors for s in runs),
        )
        for name, runs in samples.items()
    }


def print_table(title: str, medians: Medians, args: argparse.Namespace) -> None:
    print()
    runs = f"wrk -t1 -c{args.connections}, {args.rounds} rounds of {args.seconds}s"
    print(f"{title} — {runs}, medians")
    print(f"{'target':40} {'req/s':>8} {'p50 ms':>9} {'p99 ms':>9} {'errors':>7}")
    for name, (rps, p50, p99, errors) in medians.items():
        print(f"{name:40} {rps:8.1f} {p50:9.1f} {p99:9.1f} {errors:7d}")
    floor, gateway = medians["floor"], medians["gateway"]
    print(
        f"{'gateway / floor':40} {gateway[0] / floor[0]:7.2f}x {gateway[1] / floor[1]:8.2f}x "
        f"{gateway[2] / floor[2]:8.2f}x",
        flush=True,
    )


def print_growth(title: str, unit: str, by_size: dict[int, Medians]) -> None:
    """p50 and req/s per size, and each size's p50 relative to the smallest size."""
    if not by_size:
        return
    smallest = min(by_size)
    print()
    print(f"{title}: growth across sizes (p50 relative to {smallest:,} {unit})")
    print(
        f"{unit:>8} {'floor p50':>10} {'gw p50':>9} {'floor r/s':>10} {'gw r/s':>8} "
        f"{'floor x':>8} {'gw x':>7} {'gw/floor':>9}"
    )
    base = by_size[smallest]
    for size, medians in sorted(by_size.items()):
        floor, gateway = medians["floor"], medians["gateway"]
        print(
            f"{size:8,d} {floor[1]:10.1f} {gateway[1]:9.1f} {floor[0]:10.1f} {gateway[0]:8.1f} "
            f"{floor[1] / base['floor'][1]:7.2f}x {gateway[1] / base['gateway'][1]:6.2f}x "
            f"{gateway[1] / floor[1]:8.2f}x",
            flush=True,
        )


def bench_search(
    base_env: dict[str, str], args: argparse.Namespace, database_pid: int
) -> dict[int, Medians]:
    results: dict[int, Medians] = {}
    for count in args.products:
        database = f"catalog_{count}"
        log(f"loading {count:,} products into {database}")
        started = time.monotonic()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "catalog_svc.bigdata",
                "--products",
                str(count),
                "--database",
                database,
            ],
            env=base_env,
            cwd=ROOT,
            check=True,
        )
        log(f"loaded in {time.monotonic() - started:.0f} s")
        ports = {name: free_port() for name in ("catalog", "gateway", "floor")}
        env = {
            **base_env,
            "CATALOG_DATABASE": database,
            "CATALOG_PORT": str(ports["catalog"]),
            "GATEWAY_PORT": str(ports["gateway"]),
            "GATEWAY_CATALOG_ADDR": f"127.0.0.1:{ports['catalog']}",
        }
        with stack(env) as running:
            catalog = running.spawn("-m", "catalog_svc")
            gateway = running.spawn("-m", "gateway")
            floor = running.floor(ports["floor"])
            wait_serving("catalog-svc", f"127.0.0.1:{ports['catalog']}", catalog)
            gateway_url = f"http://127.0.0.1:{ports['gateway']}"
            floor_url = f"http://127.0.0.1:{ports['floor']}"
            wait_http(f"{gateway_url}/healthz", gateway)
            text = urllib.parse.quote(SEARCH_TEXT)
            floor_path = f"{floor_url}/search?q={text}&first={args.first}"
            wait_http(floor_path, floor)
            query = SEARCH_QUERY % (SEARCH_TEXT, args.first)
            via_gateway = post_graphql(gateway_url, query)["search"]
            direct = get_json(floor_path)["search"]
            if via_gateway != direct:
                raise SystemExit(f"gateway and floor disagree on search at {count}")
            log(
                f"{count:,} products: {direct['totalCount']} hits for {SEARCH_TEXT}, "
                f"{len(direct['edges'])} on the page, {len(direct['categoryFacets'])} facets"
            )
            name = f'search("{SEARCH_TEXT}", first: {args.first}) @ {count:,} products'
            samples = measure(
                name,
                {
                    "floor": (floor_path, "get.lua", ""),
                    "gateway": (f"{gateway_url}/graphql", "graphql.lua", query),
                },
                args,
                {
                    "database": database_pid,
                    "catalog-svc": catalog.pid,
                    "gateway": gateway.pid,
                    "floor": floor.pid,
                },
            )
            if post_graphql(gateway_url, query)["search"] != direct:
                raise SystemExit(f"gateway answer changed under load at {count}")
        results[count] = medians_of(samples)
        print_table(f"{name} ({direct['totalCount']} hits)", results[count], args)
        print_cpu(samples)
        print(load_average(), flush=True)
    return results


def bench_nearby(
    base_env: dict[str, str], args: argparse.Namespace, database_pid: int
) -> dict[int, Medians]:
    results: dict[int, Medians] = {}
    for count in args.stores:
        database = f"store_{count}"
        log(f"generating {count:,} stores into {database}")
        started = time.monotonic()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "store_svc.bigdata",
                "--stores",
                str(count),
                "--database",
                database,
            ],
            env=base_env,
            cwd=ROOT,
            check=True,
        )
        log(f"generated in {time.monotonic() - started:.0f} s")
        ports = {name: free_port() for name in ("store", "gateway", "floor")}
        env = {
            **base_env,
            "STORE_DATABASE": database,
            "STORE_PORT": str(ports["store"]),
            "STORE_SWEEP_INTERVAL_SECONDS": "0",
            "GATEWAY_PORT": str(ports["gateway"]),
            "GATEWAY_STORE_ADDR": f"127.0.0.1:{ports['store']}",
        }
        with stack(env) as running:
            store = running.spawn("-m", "store_svc")
            gateway = running.spawn("-m", "gateway")
            floor = running.floor(ports["floor"])
            wait_serving("store-svc", f"127.0.0.1:{ports['store']}", store)
            gateway_url = f"http://127.0.0.1:{ports['gateway']}"
            floor_url = f"http://127.0.0.1:{ports['floor']}"
            wait_http(f"{gateway_url}/healthz", gateway)
            floor_path = (
                f"{floor_url}/nearby?lat={LAT}&lng={LNG}&radius={RADIUS_KM}&sku={STOCKED_SKU}"
            )
            wait_http(floor_path, floor)
            query = NEARBY_QUERY % (LAT, LNG, RADIUS_KM, STOCKED_SKU)
            via_gateway = post_graphql(gateway_url, query)["nearbyStores"]
            direct = get_json(floor_path)["nearbyStores"]
            ids = [[s["store"]["id"] for s in d] for d in (via_gateway, direct)]
            if ids[0] != ids[1]:
                raise SystemExit(f"gateway and floor disagree on nearby stores at {count}: {ids}")
            log(f"{count:,} stores: {len(direct)} stores within {RADIUS_KM} km stock the SKU")
            name = f"nearbyStores({RADIUS_KM} km, 1 SKU) @ {count:,} stores"
            samples = measure(
                name,
                {
                    "floor": (floor_path, "get.lua", ""),
                    "gateway": (f"{gateway_url}/graphql", "graphql.lua", query),
                },
                args,
                {
                    "database": database_pid,
                    "store-svc": store.pid,
                    "gateway": gateway.pid,
                    "floor": floor.pid,
                },
            )
        results[count] = medians_of(samples)
        print_table(f"{name} ({len(direct)} results)", results[count], args)
        print_cpu(samples)
        print(load_average(), flush=True)
    return results


async def floor_burst(uri: str, database: str, clients: int, key: str) -> float:
    """`clients` concurrent reserve-one updates of one inventory-shaped document in
    store-svc's `inventory` collection: the database work of ReserveStock's inventory step,
    the same atomic conditional `update_one` as `InventoryBook.take`."""
    from retail_kit.mongo import connect
    from store_svc.inventory import INVENTORY

    client = connect(uri, "bench-floor")
    try:
        collection = client[database][INVENTORY]
        store_id, sku_id = key.split(":")
        await collection.insert_one(
            {
                "_id": key,
                "store_id": store_id,
                "sku_id": sku_id,
                "on_hand": clients,
                "reserved": 0,
                "safety_stock": 0,
                "available": clients,
                "version": 0,
                "trail_seq": 0,
                "ops": [],
                "held": [],
            }
        )
        # Open the pool's connections first (store-svc's pool is warm by then too): the timed
        # burst is the updates, not connection set-up.
        await asyncio.gather(*(collection.find_one({"_id": key}) for _ in range(clients)))

        async def reserve(number: int) -> bool:
            op = f"r:floor-{number}:0"
            result = await collection.update_one(
                {"_id": key, "available": {"$gte": 1}, "held": {"$ne": op}, "ops": {"$ne": op}},
                {
                    "$inc": {"reserved": 1, "available": -1, "version": 1},
                    "$push": {"held": op},
                    "$set": {"update_time": datetime.now(UTC)},
                },
            )
            return result.matched_count == 1

        started = time.perf_counter()
        done = await asyncio.gather(*(reserve(n) for n in range(clients)))
        elapsed = time.perf_counter() - started
        if not all(done):
            raise RuntimeError("floor reservations failed")
        return clients / elapsed
    finally:
        await client.close()


async def fill_retryable_writes(uri: str, database: str, writes: int, clients: int) -> float:
    """`writes` retryable single-document updates on a scratch document, `clients` at a
    time; returns the seconds taken. SecantusDB 0.7.0b3 keeps a reply record per retryable
    write for 30 minutes, at most 10,000, and prunes them on every retryable write (a scan,
    and a sort of all records once the cap is reached), so while the services sent their
    writes as retryable writes (PyMongo's default on a replica set), a server that had taken
    10,000 writes in the last half hour paid 10-15 ms more per write than a fresh one. The
    embedded URI now turns retryable writes off (`retail_kit.embedded`); this client asks for
    them explicitly, so the server's record table is full (the worst case: any tool that
    connects with a plain URI) and the second phase shows whether the services' writes still
    pay for it."""
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        uri, appname="bench-fill", retryWrites=True
    )
    try:
        collection = client[database]["bench_scratch"]
        await collection.insert_one({"_id": "fill", "n": 0})
        per_client = -(-writes // clients)
        started = time.perf_counter()

        async def writer() -> None:
            for _ in range(per_client):
                await collection.update_one({"_id": "fill"}, {"$inc": {"n": 1}})

        await asyncio.gather(*(writer() for _ in range(clients)))
        return time.perf_counter() - started
    finally:
        await client.close()


def bench_reservations(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """On a database server of its own (fresh, demo seed only), so what ran before does not
    decide the figures: `--reserve-rounds` alternating floor / ReserveStock bursts, then
    `--fill-writes` retryable writes, then as many rounds again (see fill_retryable_writes)."""
    import grpc

    from retail.store.v1 import store_pb2_grpc

    store_bench = load_store_bench()
    server = EmbeddedDatabase(ROOT / "var" / "bench" / "discovery-reservations", free_port())
    shutil.rmtree(server.data_dir, ignore_errors=True)
    server.start()
    uri = server.uri
    database = "store_demo"
    port = free_port()
    env = {
        **os.environ,
        "MONGODB_URI": uri,
        "LOG_LEVEL": "WARNING",
        "STORE_DATABASE": database,
        "STORE_PORT": str(port),
        "STORE_SWEEP_INTERVAL_SECONDS": "0",
    }

    async def grpc_burst(store_id: str) -> float:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = store_pb2_grpc.StoreServiceStub(channel)
            text = await store_bench.reservations_per_second(stub, store_id, args.clients, 1)
        return float(text.split("/s", 1)[0])  # "21/s (rounds: 21)": whole units

    processes: dict[str, int] = {}
    cpu: dict[str, dict[str, dict[str, float]]] = {}

    def rounds(phase: str, first_store: int) -> dict[str, list[float]]:
        rates: dict[str, list[float]] = {"floor": [], "grpc": []}
        spent = cpu.setdefault(phase, {"floor": {}, "grpc": {}})
        for round_number in range(1, args.reserve_rounds + 1):
            store_id = RESERVE_STORE % (first_store + round_number - 1)  # a fresh store each
            key = f"{store_id}:floor_hot_sku"
            before = cpu_ms(processes)
            floor_rate = asyncio.run(floor_burst(uri, database, args.clients, key))
            between = cpu_ms(processes)
            grpc_rate = asyncio.run(grpc_burst(store_id))
            after = cpu_ms(processes)
            for name in processes:
                spent["floor"][name] = spent["floor"].get(name, 0.0) + between[name] - before[name]
                spent["grpc"][name] = spent["grpc"].get(name, 0.0) + after[name] - between[name]
            rates["floor"].append(floor_rate)
            rates["grpc"].append(grpc_rate)
            print(
                f"reservations ({phase}) round {round_number}: floor {floor_rate:.0f}/s, "
                f"ReserveStock over gRPC {grpc_rate:.0f}/s",
                flush=True,
            )
        return rates

    results: dict[str, dict[str, list[float]]] = {}
    try:
        subprocess.run([sys.executable, "-m", "store_svc.seed"], env=env, cwd=ROOT, check=True)
        with stack(env) as running:
            store = running.spawn("-m", "store_svc")
            wait_serving("store-svc", f"127.0.0.1:{port}", store)
            assert server.process is not None
            processes.update(
                {"database": server.process.pid, "store-svc": store.pid, "client": os.getpid()}
            )
            # warm-up burst on a store the measured rounds do not use
            asyncio.run(grpc_burst(RESERVE_STORE % 20))
            asyncio.run(floor_burst(uri, database, 4, "st_020:warm"))
            results["fresh server"] = rounds("fresh server", 1)
            if args.fill_writes:
                took = asyncio.run(fill_retryable_writes(uri, database, args.fill_writes, 16))
                log(f"{args.fill_writes:,} retryable writes in {took:.1f} s")
                phase = f"after {args.fill_writes:,} retryable writes"
                results[phase] = rounds(phase, 1 + args.reserve_rounds)
    finally:
        server.stop()
    labels = {
        "floor": "floor (conditional update_one, PyMongo)",
        "grpc": "store-svc ReserveStock over gRPC",
    }
    medians: dict[str, dict[str, float]] = {}
    for phase, rates in results.items():
        medians[phase] = {name: statistics.median(values) for name, values in rates.items()}
        print()
        print(
            f"reservations on one SKU, {args.clients} concurrent per burst, demo seed, "
            f"{phase}, {args.reserve_rounds} rounds, medians"
        )
        print(f"{'target':48} {'per s':>8}  rounds")
        for name, label in labels.items():
            shown = ", ".join(f"{r:.0f}" for r in rates[name])
            print(f"{label:48} {medians[phase][name]:8.1f}  {shown}")
        ratio = medians[phase]["grpc"] / medians[phase]["floor"]
        print(f"{'ReserveStock / floor':48} {ratio:7.2f}x", flush=True)
        calls = args.clients * args.reserve_rounds
        for name in labels:
            shares = ", ".join(f"{p} {ms / calls:.2f}" for p, ms in cpu[phase][name].items())
            total = sum(cpu[phase][name].values()) / calls
            print(f"  CPU ms per reservation, {name}: {shares} (total {total:.2f})")
    print("load average: " + " ".join(f"{x:.2f}" for x in os.getloadavg()), flush=True)
    return medians


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_ms(processes: dict[str, int]) -> dict[str, float]:
    """User + system CPU time so far of each process (/proc/<pid>/stat), in ms."""
    spent = {}
    for name, pid in processes.items():
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        spent[name] = (int(fields[11]) + int(fields[12])) * 1000 / CLOCK_TICKS
    return spent


def sizes(text: str) -> list[int]:
    return [int(part.replace("_", "")) for part in text.split(",") if part]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--products", type=sizes, default=[1_000, 10_000, 50_000], help="1000,10000,50000"
    )
    parser.add_argument("--stores", type=sizes, default=[20, 200, 2_000], help="20,200,2000")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections")
    parser.add_argument("--seconds", type=int, default=8, help="per wrk run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--first", type=int, default=20, help="search page size")
    parser.add_argument("--clients", type=int, default=16, help="concurrent reservations")
    parser.add_argument("--reserve-rounds", type=int, default=5, help="per phase, at most 9")
    parser.add_argument(
        "--fill-writes",
        type=int,
        default=10_000,
        help="retryable writes between the two reservation phases (0: one phase only)",
    )
    parser.add_argument(
        "--only", choices=("search", "nearby", "reservations"), action="append", default=None
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=ROOT / "var" / "bench" / "discovery",
        help="the search/nearby database server's files, emptied first (default "
        "var/bench/discovery; give another one when a second run may start meanwhile)",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: `apt-get install wrk` (make bench-discovery does it)")
    if args.rounds < 3:
        parser.error("--rounds must be at least 3")
    if not 1 <= args.reserve_rounds <= 9:
        parser.error("--reserve-rounds must be 1..9 (two phases of fresh demo stores)")
    scenarios = args.only or ["search", "nearby", "reservations"]

    data_dir = args.data_dir
    shutil.rmtree(data_dir, ignore_errors=True)
    database = EmbeddedDatabase(data_dir, free_port()).start()
    base_env = {**os.environ, "MONGODB_URI": database.uri, "LOG_LEVEL": "WARNING"}
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "?",
    )
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, {cpu}", flush=True)
    print("load average: " + " ".join(f"{x:.2f}" for x in os.getloadavg()), flush=True)
    try:
        assert database.process is not None
        pid = database.process.pid
        search_results = bench_search(base_env, args, pid) if "search" in scenarios else {}
        nearby_results = bench_nearby(base_env, args, pid) if "nearby" in scenarios else {}
        if "reservations" in scenarios:
            bench_reservations(args)
        print_growth(f'search("{SEARCH_TEXT}")', "products", search_results)
        print_growth("nearbyStores", "stores", nearby_results)
    finally:
        database.stop()


if __name__ == "__main__":
    main()
