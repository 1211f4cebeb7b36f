"""Videos, manifest and store in object storage: a real S3-protocol server on loopback
(moto's ThreadedMotoServer), reached through s3fs with the usual AWS_* environment.

A Ray job reads the manifest and the videos from one bucket and writes the store to
another; `storyline info` and a trainer's loader read the store from the bucket.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .test_ray_support import make_videos

pytest.importorskip("s3fs")
moto_server = pytest.importorskip("moto.server")

N_VIDEOS = 3


@pytest.fixture(scope="module")
def s3_env() -> Iterator[dict[str, str]]:
    """A moto S3 server on a free loopback port; the AWS_* variables that point at it."""
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
        "AWS_ACCESS_KEY_ID": "storyline-test",
        "AWS_SECRET_ACCESS_KEY": "storyline-test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield env
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        server.stop()


def _buckets(tmp_path: Path, movies: str, features: str) -> None:
    """Videos and a manifest (naming one video the bucket lacks) in ``movies``."""
    import s3fs

    fs = s3fs.S3FileSystem()
    fs.mkdir(movies)
    fs.mkdir(features)
    manifest = make_videos(tmp_path / "videos", N_VIDEOS)
    for i in range(N_VIDEOS):
        fs.put_file(str(manifest.parent / f"clip{i:03d}.mp4"), f"{movies}/clip{i:03d}.mp4")
    lines = manifest.read_text().splitlines() + ["missing.mp4,missing"]
    fs.pipe(f"{movies}/manifest.csv", ("\n".join(lines) + "\n").encode())


def test_extract_from_and_into_a_bucket_in_process(
    s3_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """The single-process path (no Ray): fast enough for the default run."""
    from storyline.deploy.cli import main
    from storyline.store import FeatureStore
    from storyline.trainers.data import ShotTable

    _buckets(tmp_path, "movies-local", "features-local")
    spool = tmp_path / "spool"
    spool.mkdir()
    monkeypatch.setenv("STORYLINE_SPOOL_DIR", str(spool))
    store = "s3://features-local/s.zarr"
    argv = ["extract", "--manifest", "s3://movies-local/manifest.csv", "--store", store]
    assert main([*argv, "--input-size", "64", "--quiet", "--no-ray"]) == 1
    out = capsys.readouterr().out
    assert f"{N_VIDEOS} complete" in out
    assert "failed missing: file not found: s3://movies-local/missing.mp4" in out
    assert list(spool.iterdir()) == []  # every spool file was removed after its video
    assert main(["info", "--store", store]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["index"] is True and summary["counts"] == {"complete": N_VIDEOS, "failed": 1}
    reader = FeatureStore(store, mode="r")
    ids = reader.video_ids(encoder="random")
    table = ShotTable.from_store(reader, "random", ids, progress=False)
    assert table.video_ids == ids == [f"clip{i:03d}" for i in range(N_VIDEOS)]
    assert len(table.features) == summary["shots"]


@pytest.mark.slow  # an embedded Ray in a subprocess: minutes on the shared 2-core machine
def test_a_ray_job_over_a_bucket(s3_env: dict[str, str], tmp_path: Path) -> None:
    from storyline.store import FeatureStore
    from storyline.trainers.data import ShotTable

    _buckets(tmp_path, "movies", "features")

    spool = tmp_path / "spool"
    spool.mkdir()
    env = {**os.environ, **s3_env, "STORYLINE_SPOOL_DIR": str(spool)}
    env.pop("RAY_ADDRESS", None)
    exe = Path(sys.executable).with_name("storyline")
    store = "s3://features/s.zarr"
    argv = [str(exe), "extract", "--manifest", "s3://movies/manifest.csv", "--store", store]
    done = subprocess.run(
        [*argv, "--input-size", "64", "--quiet", "--workers", "2", "--job-id", "s3-job"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1, done.stderr[-3000:]  # one video missing: failed, with reason
    assert f"{N_VIDEOS} complete" in done.stdout, done.stdout
    assert "failed missing: file not found: s3://movies/missing.mp4" in done.stdout
    assert list(spool.iterdir()) == []  # every spool file was removed after its video

    shown = subprocess.run(
        [str(exe), "info", "--store", store], env=env, capture_output=True, text=True
    )
    summary = json.loads(shown.stdout)
    assert summary["index"] is True
    assert summary["counts"] == {"complete": N_VIDEOS, "failed": 1}
    sources = {v["source"] for v in summary["videos"] if v["status"] == "complete"}
    assert sources == {f"s3://movies/clip{i:03d}.mp4" for i in range(N_VIDEOS)}

    job = json.loads(
        subprocess.run(
            [str(exe), "info", "--store", store, "--job", "s3-job"],
            env=env,
            capture_output=True,
            text=True,
        ).stdout
    )
    assert job["counts"]["complete"] == N_VIDEOS and job["ray"]["workers"] == 2

    reader = FeatureStore(store, mode="r")
    ids = reader.video_ids(encoder="random")
    table = ShotTable.from_store(reader, "random", ids, progress=False)
    assert table.video_ids == ids == [f"clip{i:03d}" for i in range(N_VIDEOS)]
    assert table.features.shape[1] == 1024 and len(table.features) == summary["shots"]
