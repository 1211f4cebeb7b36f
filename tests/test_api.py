"""The job API served by a real uvicorn on loopback, submitting to a real local Ray."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .test_ray_support import free_port, local_cluster, make_videos

TOKEN = "test-token-123"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("api-root")
    make_videos(root / "videos", 6, bad=1)
    return root


@pytest.fixture(scope="module")
def api(root: Path) -> Iterator[httpx.Client]:
    cluster = local_cluster()
    port = free_port()
    exe = Path(sys.executable).with_name("storyline")
    server = subprocess.Popen(
        [
            str(exe),
            "serve",
            "--port",
            str(port),
            "--root",
            str(root),
            "--ray-address",
            cluster["dashboard"],
            "--log-level",
            "warning",
        ],
        env={**os.environ, "STORYLINE_TOKEN": TOKEN},
    )
    client = httpx.Client(
        base_url=f"http://127.0.0.1:{port}",
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=30,
    )
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
        yield client
    finally:
        client.close()
        server.terminate()
        server.wait(timeout=30)


def _job(root: Path, **extra: object) -> dict[str, object]:
    return {
        "manifest": str(root / "videos" / "manifest.csv"),
        "store": str(root / "store.zarr"),
        "input_size": 64,
        **extra,
    }


def _wait(api: httpx.Client, job_id: str, states: set[str], timeout: float = 150) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        body = api.get(f"/jobs/{job_id}").json()
        if body["state"] in states:
            return body
        assert time.monotonic() < deadline, f"job stayed {body}"
        time.sleep(0.5)


def test_token_is_required_except_for_healthz(api: httpx.Client) -> None:
    bare = httpx.Client(base_url=api.base_url)
    assert bare.get("/healthz").status_code == 200
    for method, path in (
        ("GET", "/jobs"),
        ("GET", "/jobs/x"),
        ("POST", "/jobs"),
        ("GET", "/metrics"),
        ("POST", "/jobs/x/cancel"),
    ):
        response = bare.request(method, path)
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"] == "Bearer"
    wrong = bare.get("/jobs", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and "STORYLINE_TOKEN" in wrong.json()["detail"]


def test_bad_requests_are_refused_clearly(api: httpx.Client, root: Path, tmp_path: Path) -> None:
    outside = api.post("/jobs", json=_job(root, manifest="/etc/passwd"))
    assert outside.status_code == 403 and "outside the server's roots" in outside.json()["detail"]
    sneaky = api.post("/jobs", json=_job(root, store=str(root / ".." / "elsewhere.zarr")))
    assert sneaky.status_code == 403
    assert api.post("/jobs", json={"store": "x"}).status_code == 422  # no manifest
    assert (
        api.post(
            "/jobs", content=b"{not json", headers={"content-type": "application/json"}
        ).status_code
        == 422
    )
    assert api.post("/jobs", json=_job(root, command="rm -rf /")).status_code == 422
    assert api.post("/jobs", json=_job(root, job_id="../../x")).status_code == 422
    assert api.post("/jobs", json=_job(root, num_gpus=-1)).status_code == 422
    missing = api.post("/jobs", json=_job(root, manifest=str(root / "nope.csv")))
    assert missing.status_code == 422 and "manifest not found" in missing.json()["detail"]
    assert api.get("/jobs/no-such-job").status_code == 404
    assert api.get("/jobs/x/videos", params={"status": "weird"}).status_code == 422


def test_submit_poll_until_done_and_list_failures(api: httpx.Client, root: Path) -> None:
    created = api.post("/jobs", json=_job(root, job_id="api-job"))
    assert created.status_code == 201 and created.json() == {"id": "api-job"}
    assert api.post("/jobs", json=_job(root, job_id="api-job")).status_code == 409
    body = _wait(api, "api-job", {"succeeded", "failed", "cancelled"})
    assert body["state"] == "succeeded"
    assert body["counts"] == {"pending": 0, "running": 0, "complete": 6, "failed": 1}
    assert body["shots"] > 0 and body["eta_s"] == 0.0 and body["ray_status"] is not None
    failed = api.get("/jobs/api-job/videos", params={"status": "failed"}).json()
    assert failed["total"] == 1 and failed["videos"][0]["id"] == "bad0"
    assert "not a readable video" in failed["videos"][0]["error"]
    page = api.get("/jobs/api-job/videos", params={"limit": 4, "offset": 4}).json()
    assert page["total"] == 7 and len(page["videos"]) == 3
    assert "api-job" in {j["id"] for j in api.get("/jobs").json()["jobs"]}
    metrics = api.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    assert 'storyline_job_videos{job="api-job",status="complete"} 6' in metrics.text
    assert api.post("/jobs/api-job/cancel").status_code == 409  # finished: nothing to stop


def test_cancel_stops_a_running_job(api: httpx.Client, root: Path) -> None:
    created = api.post("/jobs", json=_job(root, job_id="to-cancel", store=str(root / "c.zarr")))
    assert created.status_code == 201
    cancelled = api.post("/jobs/to-cancel/cancel")
    assert cancelled.status_code == 202 and cancelled.json()["id"] == "to-cancel"
    body = _wait(api, "to-cancel", {"cancelled", "succeeded", "failed"}, timeout=60)
    assert body["state"] == "cancelled" and body["ray_status"] == "STOPPED"
