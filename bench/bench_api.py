"""API load: GET /jobs/{id} latency at 50 concurrent clients on a 10,000-video job record.

    .venv/bin/python bench/bench_api.py [--clients 50] [--requests 4000]

Writes a 10,000-video record (a third complete, some failed) into a store under a temporary
root, starts `storyline serve` (with its local Ray head) on loopback, and has ``clients``
asyncio clients each issue GET /jobs/{id} back to back. Prints p50/p99 and requests/s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from storyline.store import FeatureStore
from storyline.store.jobs import COMPLETE, FAILED, JobRecord, JobSpec

TOKEN = "bench-token-0123456789"


def make_record(root: Path, n: int) -> str:
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
    return "big-job"


async def load(
    base: str, job_id: str, clients: int, requests: int, *, pause: float = 0.0
) -> list[float]:
    latencies: list[float] = []
    per_client = requests // clients
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(
        base_url=base, limits=limits, headers={"Authorization": f"Bearer {TOKEN}"}
    ) as client:

        async def one() -> None:
            for _ in range(per_client):
                t = time.perf_counter()
                response = await client.get(f"/jobs/{job_id}")
                latencies.append(time.perf_counter() - t)
                response.raise_for_status()
                if pause:
                    await asyncio.sleep(pause)

        await asyncio.gather(*(one() for _ in range(clients)))
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--videos", type=int, default=10_000)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-api-"))
    job_id = make_record(root, args.videos)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    exe = Path(sys.executable).with_name("storyline")
    server = subprocess.Popen(
        [str(exe), "serve", "--port", str(port), "--root", str(root), "--log-level", "warning"],
        env={**os.environ, "STORYLINE_TOKEN": TOKEN},
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
        body = httpx.get(f"{base}/jobs/{job_id}", headers={"Authorization": f"Bearer {TOKEN}"})
        print("GET /jobs/{id} ->", body.json()["counts"])
        asyncio.run(load(base, job_id, 1, 200))  # warm up
        for clients in (1, args.clients):
            started = time.perf_counter()
            lat = np.asarray(asyncio.run(load(base, job_id, clients, args.requests)))
            wall = time.perf_counter() - started
            p50, p99 = 1e3 * np.percentile(lat, 50), 1e3 * np.percentile(lat, 99)
            print(
                f"{clients:3d} clients: {len(lat)} GETs, p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
                f"{len(lat) / wall:.0f} req/s"
            )
        # what dashboards do: each of the clients polls once a second
        lat = np.asarray(asyncio.run(load(base, job_id, args.clients, args.clients * 20, pause=1)))
        p50, p99 = 1e3 * np.percentile(lat, 50), 1e3 * np.percentile(lat, 99)
        print(f"{args.clients:3d} clients polling every 1 s: p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    finally:
        server.terminate()
        server.wait(timeout=60)


if __name__ == "__main__":
    main()
