"""The cluster path of the README, on a real two-node Ray on this machine.

``ray start --head`` plus a second ``ray start --address`` node (one declares a GPU, one
does not), each its own process group, stopped by killing those groups: never ``ray stop``,
which would stop every Ray on the machine. The head uses its own ``--temp-dir``, so a bare
``ray.init()`` elsewhere never finds it. Jobs go in the way the README says:
``ray job submit --working-dir . --runtime-env deploy/runtime_env.yaml``, then through
``storyline serve --ray-address``.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from storyline.store.jobs import read_job

from .test_ray_support import free_port, make_videos

pytestmark = pytest.mark.slow  # two Ray nodes, three jobs, an API: ~1-2 minutes on 2 cores

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
VIDEOS = 6
TOKEN = "two-node-api-token-0123456789"  # the API wants >= 16 characters


def _ports(*names: str) -> list[str]:
    """``--NAME PORT`` for each of Ray's per-node ports: two nodes on one host must not
    share the defaults (e.g. the dashboard agent's 52365)."""
    args: list[str] = []
    for name in names:
        args += [f"--{name}", str(free_port())]
    return args


NODE_PORTS = (
    "node-manager-port",
    "object-manager-port",
    "metrics-export-port",
    "dashboard-agent-listen-port",
    "dashboard-agent-grpc-port",
    "runtime-env-agent-port",
)


# Ray 2.60 turns token auth on by default, with the token in ~/.ray/auth_token, shared by
# every Ray on this machine; this cluster gets its own, given to nodes and clients alike.
RAY_TOKEN = secrets.token_hex(32)


def _env() -> dict[str, str]:
    """Nodes' and clients' environment: this venv's ``python`` first on PATH (what an
    image's PATH gives a real node), the cluster's token, no RAY_ADDRESS from elsewhere."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=RAY_TOKEN)
    return env


def _ray(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "ray"), *args], env=_env(), capture_output=True, text=True, **kwargs
    )


def _wait_nodes(dashboard: str, count: int, procs: list[subprocess.Popen]) -> list[dict]:
    """The cluster's alive nodes once ``count`` have joined (Ray's state API over HTTP)."""
    headers = {"Authorization": f"Bearer {RAY_TOKEN}"}
    deadline = time.monotonic() + 120
    while True:
        assert all(p.poll() is None for p in procs), "a ray start --block process exited"
        try:
            reply = httpx.get(f"{dashboard}/api/v0/nodes", headers=headers, timeout=10)
            reply.raise_for_status()
            nodes = [n for n in reply.json()["data"]["result"]["result"] if n["state"] == "ALIVE"]
            if len(nodes) >= count:
                return [
                    {
                        "id": n["node_id"],
                        "head": n["is_head_node"],
                        "resources": n["resources_total"],
                    }
                    for n in nodes
                ]
        except (httpx.HTTPError, KeyError, ValueError):  # the dashboard is still starting
            pass
        assert time.monotonic() < deadline, f"{count} Ray nodes did not come up"
        time.sleep(1)


def _stop(procs: list[subprocess.Popen], temp_dir: Path) -> None:
    """Kill the nodes' process groups (worker node first), then anything left that runs
    from this cluster's temp dir: only processes this test started. (SIGTERM makes
    `ray start --block` drain the node through a GCS its group signal already stopped,
    ~30 s per node; the cluster's state dies with it anyway.)"""
    for proc in reversed(procs):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    time.sleep(1)
    for pid in _pids_using(temp_dir):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _pids_using(temp_dir: Path) -> list[int]:
    """Processes whose command line names this cluster's temp dir (Ray's own daemons)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(temp_dir) in cmdline:
            pids.append(int(entry.name))
    return pids


@pytest.fixture(scope="module")
def cluster() -> Iterator[dict[str, Any]]:
    """A head (1 CPU, no GPU) and a worker node (1 CPU, 1 declared GPU) on loopback."""
    # Short and unique: Ray's unix sockets live under it (path length limit ~107 bytes).
    base = Path(tempfile.mkdtemp(prefix="sl2n-", dir="/tmp"))
    temp_dir = base / "ray"
    gcs, dash = free_port(), free_port()
    procs: list[subprocess.Popen] = []
    logs = base / "logs"
    logs.mkdir()

    def start(name: str, args: list[str]) -> None:
        out = open(logs / f"{name}.log", "w")  # noqa: SIM115 (closed with the process)
        procs.append(
            subprocess.Popen(
                [str(BIN / "ray"), "start", "--block", *args],
                env=_env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, killed in teardown
            )
        )

    try:
        start(
            "head",
            [
                "--head",
                f"--temp-dir={temp_dir}",
                f"--port={gcs}",
                "--num-cpus=1",
                "--num-gpus=0",
                "--include-dashboard=true",
                "--dashboard-host=127.0.0.1",
                f"--dashboard-port={dash}",
                *_ports("ray-client-server-port", *NODE_PORTS),
            ],
        )
        dashboard = f"http://127.0.0.1:{dash}"
        _wait_nodes(dashboard, 1, procs)
        # the head's address went to its own temp dir, not the machine-wide file that a bare
        # ray.init() or `ray start --address=auto` elsewhere would read
        assert str(gcs) in (temp_dir / "ray_current_cluster").read_text()
        machine_wide = Path("/tmp/ray/ray_current_cluster")
        assert not machine_wide.exists() or str(gcs) not in machine_wide.read_text()
        start(
            "worker",
            [f"--address=127.0.0.1:{gcs}", "--num-cpus=1", "--num-gpus=1", *_ports(*NODE_PORTS)],
        )
        nodes = _wait_nodes(dashboard, 2, procs)
        assert sorted(n["resources"].get("GPU", 0) for n in nodes) == [0, 1], nodes
        data = base / "data"
        manifest = make_videos(data / "videos", VIDEOS)
        yield {
            "dashboard": dashboard,
            "gcs": f"127.0.0.1:{gcs}",
            "nodes": nodes,
            "manifest": manifest,
            "data": data,
            "base": base,
        }
    finally:
        _stop(procs, temp_dir)
        if not _pids_using(temp_dir):
            shutil.rmtree(base, ignore_errors=True)


def _check_record(record: dict[str, Any], nodes: list[dict]) -> dict[str, int]:
    """Every video complete, one actor on each node; actors per node."""
    assert record["state"] == "succeeded", record
    assert record["counts"]["complete"] == VIDEOS, record["counts"]
    assert record["counts"]["failed"] == 0, record["counts"]
    per_node: dict[str, int] = {}
    for actor in record["ray"]["actors"]:
        per_node[actor["node"]] = per_node.get(actor["node"], 0) + 1
    assert set(per_node) == {n["id"] for n in nodes}, (per_node, nodes)
    return per_node


def test_ray_job_submit_runs_on_both_nodes(cluster: dict[str, Any]) -> None:
    """The README's `ray job submit`, from the repo root: every video, actors on both nodes."""
    store = cluster["data"] / "features.zarr"
    started = time.monotonic()
    done = _ray(
        "job",
        "submit",
        f"--address={cluster['dashboard']}",
        "--working-dir",
        ".",
        "--runtime-env",
        "deploy/runtime_env.yaml",
        "--",
        "python",
        "-m",
        "storyline.deploy.cli",
        "extract",
        "--quiet",
        "--manifest",
        str(cluster["manifest"]),
        "--store",
        str(store),
        "--job-id",
        "two-node",
        "--input-size",
        "64",
        "--num-gpus",
        "0",
        "--workers",
        "2",
        cwd=REPO,
        timeout=300,
    )
    seconds = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"job two-node succeeded: {VIDEOS} complete" in done.stdout, done.stdout
    per_node = _check_record(read_job(str(store), "two-node"), cluster["nodes"])
    summary = next(x for x in done.stdout.splitlines() if x.startswith("job two-node succeeded"))
    print(f"two-node job: actors per node {per_node}; `ray job submit` {seconds:.1f} s; {summary}")


# Run as a job: the file `storyline.deploy` is imported from on each node, and a marker.
PROBE = """
import json, ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy as On
import storyline.deploy as d
ray.init()
@ray.remote(num_cpus=0)
def where():
    import ray, storyline.deploy as d
    return ray.get_runtime_context().get_node_id(), d.__file__, getattr(d, "SUBMITTED", None)
nodes = [n["NodeID"] for n in ray.nodes() if n["Alive"]]
found = ray.get([where.options(scheduling_strategy=On(n, soft=False)).remote() for n in nodes])
print("PROBE", json.dumps({"driver": [d.__file__, getattr(d, "SUBMITTED", None)], "nodes": found}))
"""


def _probe(cluster: dict[str, Any], source: Path) -> dict[str, Any]:
    done = _ray(
        "job",
        "submit",
        f"--address={cluster['dashboard']}",
        "--working-dir",
        ".",
        "--runtime-env",
        "deploy/runtime_env.yaml",
        "--",
        "python",
        "-c",
        PROBE,
        cwd=source,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    line = next(x for x in done.stdout.splitlines() if x.startswith("PROBE "))
    return json.loads(line[len("PROBE ") :])


def test_changed_code_reaches_every_node(cluster: dict[str, Any]) -> None:
    """The code that runs is the working dir submitted, on the driver and on both nodes,
    and a changed checkout is not served from a cached environment."""
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    source = cluster["base"] / "src"
    for name in [*tracked, "storyline.py", "deploy/runtime_env.yaml"]:
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    init = source / "deploy" / "__init__.py"
    original = init.read_text()
    for _ in range(2):  # the same path, edited between two submissions
        marker = uuid.uuid4().hex
        init.write_text(original + f"\nSUBMITTED = {marker!r}\n")
        found = _probe(cluster, source)
        assert found["driver"][1] == marker, found
        assert {n for n, _, _ in found["nodes"]} == {n["id"] for n in cluster["nodes"]}
        for _, path, seen in found["nodes"]:
            assert seen == marker, found
            assert "runtime_resources" in path and "working_dir_files" in path, path


def test_storyline_serve_against_the_head(cluster: dict[str, Any]) -> None:
    """`storyline serve --ray-address` at the head: a job through the API, on both nodes."""
    runtime_env = yaml.safe_load((REPO / "deploy" / "runtime_env.yaml").read_text())
    runtime_env["working_dir"] = str(REPO)  # "." is relative to the API's cwd
    port = free_port()
    server = subprocess.Popen(
        [
            str(BIN / "storyline"),
            "serve",
            "--port",
            str(port),
            "--root",
            str(cluster["data"]),
            "--ray-address",
            cluster["dashboard"],
            "--log-level",
            "warning",
        ],
        env={
            **_env(),
            "STORYLINE_TOKEN": TOKEN,
            "STORYLINE_RUNTIME_ENV": json.dumps(runtime_env),
        },
        cwd=cluster["base"],
    )
    client = httpx.Client(
        base_url=f"http://127.0.0.1:{port}",
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=60,
    )
    store = cluster["data"] / "features-api.zarr"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if client.get("/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "serve did not start"
            time.sleep(0.3)
        created = client.post(
            "/jobs",
            json={
                "manifest": str(cluster["manifest"]),
                "store": str(store),
                "job_id": "two-node-api",
                "input_size": 64,
                "num_gpus": 0,
                "workers": 2,
            },
        )
        assert created.status_code == 201, created.text
        deadline = time.monotonic() + 300
        while True:
            job = client.get("/jobs/two-node-api").json()
            if job["state"] in ("succeeded", "failed", "cancelled"):
                break
            assert time.monotonic() < deadline, job
            time.sleep(1)
        assert job["state"] == "succeeded", job
        assert job["counts"]["complete"] == VIDEOS, job
    finally:
        client.close()
        server.terminate()
        server.wait(timeout=30)
    per_node = _check_record(read_job(str(store), "two-node-api"), cluster["nodes"])
    print(f"two-node job via the API: {VIDEOS} videos, actors per node {per_node}")
