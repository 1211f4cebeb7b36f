"""The job API served by a real uvicorn on loopback, submitting to a real local Ray."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest
import torch

from storyline.extractor.models.bninception import bn_inception
from storyline.extractor.weights import EncoderWeights, Preprocessing, save_weights, trunk
from storyline.store import FeatureStore

from .test_ray_support import make_videos


def _job(api_root: Path, **extra: object) -> dict[str, object]:
    return {
        "manifest": str(api_root / "videos" / "manifest.csv"),
        "store": str(api_root / "store.zarr"),
        "input_size": 64,
        **extra,
    }


def _wait(api: httpx.Client, job_id: str, states: set[str], timeout: float = 300) -> dict:
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


def test_bad_requests_are_refused_clearly(
    api: httpx.Client, api_root: Path, tmp_path: Path
) -> None:
    outside = api.post("/jobs", json=_job(api_root, manifest="/etc/passwd"))
    assert outside.status_code == 403 and "outside the server's roots" in outside.json()["detail"]
    sneaky = api.post("/jobs", json=_job(api_root, store=str(api_root / ".." / "elsewhere.zarr")))
    assert sneaky.status_code == 403
    assert api.post("/jobs", json={"store": "x"}).status_code == 422  # no manifest
    assert (
        api.post(
            "/jobs", content=b"{not json", headers={"content-type": "application/json"}
        ).status_code
        == 422
    )
    assert api.post("/jobs", json=_job(api_root, command="rm -rf /")).status_code == 422
    assert api.post("/jobs", json=_job(api_root, job_id="../../x")).status_code == 422
    assert api.post("/jobs", json=_job(api_root, num_gpus=-1)).status_code == 422
    missing = api.post("/jobs", json=_job(api_root, manifest=str(api_root / "nope.csv")))
    assert missing.status_code == 422 and "manifest not found" in missing.json()["detail"]
    assert api.get("/jobs/no-such-job").status_code == 404
    assert api.get("/jobs/x/videos", params={"status": "weird"}).status_code == 422


def test_submit_poll_until_done_and_list_failures(api: httpx.Client, api_root: Path) -> None:
    created = api.post("/jobs", json=_job(api_root, job_id="api-job"))
    assert created.status_code == 201 and created.json() == {"id": "api-job"}, created.text
    assert api.post("/jobs", json=_job(api_root, job_id="api-job")).status_code == 409
    body = _wait(api, "api-job", {"succeeded", "failed", "cancelled"})
    assert body["state"] == "succeeded", body
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


def test_cancel_stops_a_running_job(api: httpx.Client, api_root: Path) -> None:
    created = api.post(
        "/jobs", json=_job(api_root, job_id="to-cancel", store=str(api_root / "c.zarr"))
    )
    assert created.status_code == 201
    cancelled = api.post("/jobs/to-cancel/cancel")
    assert cancelled.status_code == 202 and cancelled.json()["id"] == "to-cancel"
    body = _wait(api, "to-cancel", {"cancelled", "succeeded", "failed"}, timeout=60)
    assert body["state"] == "cancelled" and body["ray_status"] == "STOPPED"


def _manifest(folder: Path, videos: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "manifest.csv"
    path.write_text("video\n" + "\n".join(videos) + "\n")
    return path


def test_manifest_videos_outside_the_roots_are_refused_alike(
    api: httpx.Client, api_root: Path, tmp_path: Path
) -> None:
    """A manifest inside a root may not list videos outside it, directly, by ``..`` or by a
    symlink; the answer is the same whether the outside path exists or not."""
    outside = make_videos(tmp_path / "outside", 1).parent / "clip000.mp4"
    (api_root / "escape").mkdir(exist_ok=True)
    link = api_root / "escape" / "link.mp4"
    link.unlink(missing_ok=True)
    link.symlink_to(outside)
    inside = str(api_root / "videos" / "clip000.mp4")
    cases = {
        "exists": [inside, str(outside)],
        "missing": [inside, str(outside.with_name("nothing-here.mp4"))],
        "dotdot": [os.path.relpath(outside, api_root / "escape" / "dotdot")],
        "symlink": [str(link)],
        "url": ["s3://bucket/movie.mp4"],
    }
    details = {}
    for name, videos in cases.items():
        manifest = _manifest(api_root / "escape" / name, videos)
        response = api.post("/jobs", json=_job(api_root, manifest=str(manifest)))
        assert response.status_code == 422, (name, response.text)
        details[name] = response.json()["detail"]
        assert "outside the allowed roots" in details[name]
        assert inside not in details[name]  # only offenders are named
    assert str(outside) in details["exists"]
    # existence is not revealed: the two answers differ only by the name given
    assert details["exists"].replace(str(outside), "X") == details["missing"].replace(
        str(outside.with_name("nothing-here.mp4")), "X"
    )


def test_hostile_strings_get_4xx_never_5xx(api: httpx.Client, api_root: Path) -> None:
    for value in ("\u0000", "videos/\u0000manifest.csv", "a\nb", "x" * 5000, "/" * 300):
        for field in ("manifest", "store", "checkpoint"):
            response = api.post("/jobs", json=_job(api_root, **{field: value}))
            assert 400 <= response.status_code < 500, (field, value[:20], response.text)
    assert api.get("/jobs/..%2F..%2Fetc").status_code in (404, 422)
    assert api.get("/jobs/" + "a" * 200).status_code == 422
    folder = api.post("/jobs", json=_job(api_root, manifest=str(api_root / "videos")))
    assert folder.status_code == 422 and "cannot read manifest" in folder.json()["detail"]


def test_checks_at_submit_say_why(api: httpx.Client, api_root: Path) -> None:
    too_many = api.post("/jobs", json=_job(api_root, workers=310))
    assert too_many.status_code == 422 and "CPUs" in too_many.json()["detail"]
    store = api_root / "clash.zarr"
    FeatureStore(str(store)).register_encoder("random", "0123456789abcdef")
    clash = api.post("/jobs", json=_job(api_root, store=str(store)))
    assert clash.status_code == 409, clash.text
    assert "holds the features of encoder 0123456789abcdef" in clash.json()["detail"]
    assert api.post("/jobs", json=_job(api_root, encoder="mine")).status_code == 422


def test_a_job_refuses_a_manifest_changed_to_escape_and_says_why(
    api: httpx.Client, api_root: Path
) -> None:
    """The manifest is checked again where the job reads it; the driver's error is shown."""
    manifest = _manifest(api_root / "changes", [str(api_root / "videos" / "clip001.mp4")])
    created = api.post(
        "/jobs",
        json=_job(api_root, manifest=str(manifest), store=str(api_root / "e.zarr"), job_id="esc"),
    )
    assert created.status_code == 201
    manifest.write_text("video\n/etc/hostname\n")  # before the driver starts (seconds)
    body = _wait(api, "esc", {"failed", "succeeded", "cancelled"})
    assert body["state"] == "failed" and body["counts"]["complete"] == 0
    assert "outside the allowed roots" in body["error"] and "/etc/hostname" in body["error"]


@pytest.mark.slow
def test_cancel_while_running_then_resume(api: httpx.Client, api_root: Path) -> None:
    """Cancelled mid-run: the record holds no video 'running', the store no half-written
    video marked complete; the same id resumes and finishes the rest."""
    manifest = make_videos(api_root / "many", 10)
    job = _job(api_root, manifest=str(manifest), store=str(api_root / "cw.zarr"), workers=1)
    assert api.post("/jobs", json={**job, "job_id": "cw"}).status_code == 201
    deadline = time.monotonic() + 300  # Ray start-up on a loaded machine
    while (body := api.get("/jobs/cw").json())["counts"]["complete"] < 1:
        assert body["state"] in ("pending", "running") and time.monotonic() < deadline, body
        time.sleep(0.3)
    assert api.post("/jobs/cw/cancel").status_code == 202
    body = _wait(api, "cw", {"cancelled", "succeeded", "failed"})
    assert body["state"] == "cancelled" and body["ray_status"] == "STOPPED"
    assert body["counts"]["running"] == 0 and body["counts"]["complete"] < 10
    store = FeatureStore(str(api_root / "cw.zarr"), mode="r")
    for info in store.iter_videos():
        if info.status == "complete":
            assert store.features(info.id, "random").shape[0] == info.n_shots
    assert api.post("/jobs", json={**job, "job_id": "cw"}).status_code == 201
    body = _wait(api, "cw", {"succeeded", "failed", "cancelled"})
    assert body["state"] == "succeeded" and body["counts"]["complete"] == 10


@pytest.mark.slow
def test_two_jobs_two_encoders_one_store_at_once(api: httpx.Client, api_root: Path) -> None:
    """Both encoders registered, every video complete with both features: none lost to the
    other job's registration or its half-written video."""
    torch.manual_seed(7)
    weights = EncoderWeights(trunk(bn_inception().state_dict()), Preprocessing(input_size=64))
    ckpt = api_root / "other.pt"
    other_id = save_weights(ckpt, weights, kind="encoder")
    store = str(api_root / "two.zarr")
    manifest = make_videos(api_root / "two", 5)
    first = _job(api_root, manifest=str(manifest), store=store, workers=1, job_id="two-a")
    second = {
        **_job(api_root, manifest=str(manifest), store=store, workers=1, job_id="two-b"),
        "encoder": "other",
        "checkpoint": str(ckpt),
    }
    second.pop("input_size")
    assert api.post("/jobs", json=first).status_code == 201
    assert api.post("/jobs", json=second).status_code == 201
    for job_id in ("two-a", "two-b"):
        body = _wait(api, job_id, {"succeeded", "failed", "cancelled"}, timeout=300)
        assert body["state"] == "succeeded" and body["counts"]["complete"] == 5, body
    reader = FeatureStore(store, mode="r")
    assert reader.encoders()["other"] == other_id and "random" in reader.encoders()
    for info in reader.iter_videos():
        assert info.status == "complete", info
        assert set(info.attrs["features"]) == {"random", "other"}
        for name in ("random", "other"):
            assert reader.features(info.id, name).shape[0] == info.n_shots
