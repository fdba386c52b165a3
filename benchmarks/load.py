"""Load on a real server process: throughput, latency percentiles, ping under load, memory growth.

    python -m benchmarks.load [--clients 8] [--requests 5] [--workers 2] [--memory-requests 200]
                                 [--engine fake|real] [--fake-stage-s 0] [--endpoint tcp://...]

By default it starts ``munet serve`` on a free loopback port with the SYNTHETIC engine
(``MUNET_ENGINE=tests.doubles.fake_engine:FakeEngine``: production-size results, no model), so the numbers measure the service
(sockets, protocol, queueing), not reconstruction. ``--engine real`` serves ``munet.pipeline`` instead;
``--endpoint`` measures a server that is already running (no memory numbers then).

Each client is a thread with its own ``backend.client.Client`` (one DEALER socket) sending
``examples/lunge.jpg`` ``--requests`` times back to back; every reply is checked to carry its own id.
"""

from __future__ import annotations

import argparse
import json
import threading
import time

import numpy as np

from backend.client import Client
from tests.doubles.processes import EXAMPLE_PHOTO, RawClient, ServerProcess


def load(endpoint: str, clients: int, requests: int, timeout_s: float) -> dict:
    photo = EXAMPLE_PHOTO.read_bytes()
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def client_run(k: int) -> None:
        with Client(endpoint, timeout_s=timeout_s, name=f"bench-{k}") as client:
            for _ in range(requests):
                start = time.perf_counter()
                try:
                    client.reconstruct(photo)
                except Exception as e:  # noqa: BLE001 - counted and reported
                    with lock:
                        errors.append(f"{type(e).__name__}: {e}")
                    continue
                with lock:
                    latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    threads = [threading.Thread(target=client_run, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    return {
        "clients": clients, "requests_per_client": requests, "ok": len(latencies), "errors": len(errors),
        "first_errors": errors[:3], "wall_s": wall, "throughput_rps": len(latencies) / wall,
        "p50_ms": 1000 * float(np.percentile(latencies, 50)) if latencies else None,
        "p99_ms": 1000 * float(np.percentile(latencies, 99)) if latencies else None,
        "max_ms": 1000 * max(latencies) if latencies else None,
    }


def ping_under_load(endpoint: str, samples: int = 50) -> dict:
    """Ping RTTs while one reconstruction is running."""
    photo = EXAMPLE_PHOTO.read_bytes()
    with Client(endpoint, timeout_s=600) as busy_client:
        done = threading.Event()

        def keep_busy() -> None:
            while not done.is_set():
                busy_client.reconstruct(photo)

        thread = threading.Thread(target=keep_busy)
        thread.start()
        rtts = []
        with RawClient(endpoint) as raw:
            for i in range(samples):
                start = time.perf_counter()
                raw.ping(f"p{i}")
                rtts.append(time.perf_counter() - start)
        done.set()
        thread.join()
    return {"ping_p50_ms": 1000 * float(np.median(rtts)), "ping_max_ms": 1000 * max(rtts)}


def memory_growth(server: ServerProcess, requests: int, clients: int = 4) -> dict:
    load(server.endpoint, clients, max(1, 20 // clients), 600)  # warm-up
    before = server.rss_bytes()
    load(server.endpoint, clients, requests // clients, 600)
    after = server.rss_bytes()
    return {"memory_requests": requests // clients * clients, "rss_before_mb": before / 2**20,
            "rss_after_mb": after / 2**20, "rss_growth_mb": (after - before) / 2**20}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=5, help="requests per client")
    parser.add_argument("--workers", type=int, default=2, help="server worker threads (when started here)")
    parser.add_argument("--memory-requests", type=int, default=200)
    parser.add_argument("--engine", choices=("fake", "real"), default="fake")
    parser.add_argument("--fake-stage-s", type=float, default=0.0, help="seconds per stage of the fake engine")
    parser.add_argument("--endpoint", help="measure this running server instead of starting one")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--json", metavar="PATH", help="also write the numbers as JSON")
    args = parser.parse_args(argv)

    server = None
    if args.endpoint is None:
        fake = {"stage_s": args.fake_stage_s} if args.engine == "fake" else {}
        server = ServerProcess("--workers", str(args.workers), "--queue", str(max(8, args.clients)),
                               engine=args.engine, **fake).start(ready_timeout_s=600)
    endpoint = args.endpoint or server.endpoint
    try:
        with Client(endpoint) as client:
            info = client.info()
        numbers = {"engine": info.engine, "workers": info.workers, "endpoint": endpoint}
        print(f"ENGINE: {info.engine}, {info.workers} worker(s) at {endpoint}")
        if "fake" in info.engine:
            print("  (synthetic results: these numbers measure the service, not reconstruction)")
        load(endpoint, args.clients, 1, args.timeout)  # warm-up: connections, allocator, first decodes
        numbers.update(load(endpoint, args.clients, args.requests, args.timeout))
        print(f"load {args.clients} clients x {args.requests}: {numbers['ok']} ok, {numbers['errors']} errors, "
              f"{numbers['throughput_rps']:.1f} req/s, p50 {numbers['p50_ms']:.1f} ms, p99 {numbers['p99_ms']:.1f} ms, "
              f"max {numbers['max_ms']:.1f} ms")
        numbers.update(ping_under_load(endpoint))
        print(f"ping while reconstructing: p50 {numbers['ping_p50_ms']:.2f} ms, max {numbers['ping_max_ms']:.2f} ms")
        if server is not None and args.memory_requests:
            numbers.update(memory_growth(server, args.memory_requests))
            print(f"memory over {numbers['memory_requests']} requests: RSS {numbers['rss_before_mb']:.1f} -> "
                  f"{numbers['rss_after_mb']:.1f} MB, growth {numbers['rss_growth_mb']:.1f} MB (target <= 50 MB)")
    finally:
        if server is not None:
            server.cleanup()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(numbers, f, indent=2)
    return numbers


if __name__ == "__main__":
    main()
