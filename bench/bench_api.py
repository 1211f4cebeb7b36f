"""API load: GET /jobs/{id} on a 10,000-video job record that changes every 2 s.

    .venv/bin/python bench/bench_api.py [--clients 50] [--requests 10000] [--workers 2]

Writes a 10,000-video record (a third complete, some failed) into a store under a temporary
root and keeps rewriting it every 2 s, as a running job's driver does; starts `storyline
serve --workers N` (with its local Ray head) on loopback; then, from one aiohttp process:

- 1 client, back to back: the floor;
- ``clients`` clients, back to back: throughput (target >= 1,000 requests/s) and p99;
- ``clients`` clients each polling once a second, as dashboards do (target p99 < 50 ms).

The client shares the machine's cores with the server: on 2 cores it takes part of one.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import aiohttp
import httpx
import numpy as np

from storyline.store import FeatureStore
from storyline.store.jobs import COMPLETE, FAILED, JobRecord, JobSpec

TOKEN = "bench-token-0123456789"
HEADERS = {"Authorization": f"Bearer {TOKEN}"}


def make_record(root: Path, n: int) -> JobRecord:
    store = FeatureStore(str(root / "features.zarr"))
    ids = [f"movie-{i:05d}" for i in range(n)]
    spec = JobSpec("big-job", "/data/movies.csv", {"name": "random", "id": "0" * 16}, {}, {})
    record = JobRecord.open(store, spec, ids, [f"/data/{v}.mp4" for v in ids], interval=0)
    for i, vid in enumerate(ids[: n // 3]):
        record.mark(vid, FAILED if i % 50 == 0 else COMPLETE, error="decode error")
    record.add_work(shots=n * 400, frames=n * 50_000)
    started = time.perf_counter()
    record.flush(force=True)
    update_ms = 1e3 * (time.perf_counter() - started)
    print(f"record of {n} videos written; one update takes {update_ms:.1f} ms")
    return record


def keep_updating(record: JobRecord, stop: threading.Event, every: float = 2.0) -> None:
    """A driver's heartbeat: one more video complete and the record rewritten every 2 s."""
    pending = iter(record.ids_with(0))
    while not stop.wait(every):
        vid = next(pending, None)
        if vid is not None:
            record.mark(vid, COMPLETE)
            record.add_work(shots=400, frames=50_000)
        record.flush(force=True)


async def load(
    base: str, job_id: str, clients: int, per_client: int, *, pause: float = 0.0
) -> tuple[np.ndarray, float]:
    """(latencies in s, wall time) of ``clients`` clients each sending ``per_client`` GETs."""
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(base, connector=connector, headers=HEADERS) as session:

        async def one(delay: float) -> None:
            await asyncio.sleep(delay)  # pollers start spread over one period
            for _ in range(per_client):
                t = time.perf_counter()
                async with session.get(f"/jobs/{job_id}") as response:
                    await response.read()
                    response.raise_for_status()
                latencies.append(time.perf_counter() - t)
                if pause:
                    await asyncio.sleep(pause)

        started = time.perf_counter()
        spread = pause / clients
        await asyncio.gather(*(one(i * spread) for i in range(clients)))
        wall = time.perf_counter() - started
    return np.asarray(latencies), wall


def report(label: str, lat: np.ndarray, wall: float) -> None:
    p50, p99 = 1e3 * np.percentile(lat, 50), 1e3 * np.percentile(lat, 99)
    print(
        f"{label}: {len(lat)} GETs, p50 {p50:.1f} ms, p99 {p99:.1f} ms, {len(lat) / wall:.0f} req/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=10_000, help="back-to-back GETs")
    parser.add_argument("--videos", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2, help="`storyline serve --workers`")
    parser.add_argument("--poll-seconds", type=int, default=20)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-api-"))
    record = make_record(root, args.videos)
    stop = threading.Event()
    threading.Thread(target=keep_updating, args=(record, stop), daemon=True).start()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    exe = Path(sys.executable).with_name("storyline")
    server = subprocess.Popen(
        [
            *(str(exe), "serve", "--port", str(port), "--root", str(root)),
            *(("--workers", str(args.workers)) if args.workers > 1 else ()),
            *("--log-level", "warning"),
        ],
        env={**os.environ, "STORYLINE_TOKEN": TOKEN},
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("storyline serve did not start")
            time.sleep(0.5)
        body = httpx.get(f"{base}/jobs/big-job", headers=HEADERS).json()
        print(f"serve --workers {args.workers}; GET /jobs/{{id}} ->", body["counts"])
        asyncio.run(load(base, "big-job", 1, 200))  # warm up: every worker's cache
        asyncio.run(load(base, "big-job", args.clients, 20))
        report("  1 client back to back", *asyncio.run(load(base, "big-job", 1, 1000)))
        per = max(args.requests // args.clients, 1)
        label = f"{args.clients:3d} clients back to back"
        report(label, *asyncio.run(load(base, "big-job", args.clients, per)))
        # what dashboards do: each of the clients polls once a second
        lat, wall = asyncio.run(load(base, "big-job", args.clients, args.poll_seconds, pause=1.0))
        report(f"{args.clients:3d} clients polling every 1 s", lat, wall)
    finally:
        stop.set()
        server.terminate()
        server.wait(timeout=60)


if __name__ == "__main__":
    main()
