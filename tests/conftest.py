"""Shared fixtures: real encoded test videos with known cuts, a small random encoder."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import torch

from storyline.extractor.encoder import Encoder, random_encoder

from .media import make_clip
from .test_ray_support import free_port, local_cluster, make_videos

# ../shared/data beside the checkout (or beside the folder of worktrees holding it)
SHARED_DATA = next(
    (
        p / "shared" / "data"
        for p in Path(__file__).resolve().parents[2:4]
        if (p / "shared" / "data").is_dir()
    ),
    Path(__file__).resolve().parents[2] / "shared" / "data",
)
TEST_INPUT_SIZE = 64  # the encoder's real size is 224; tests only need it to run

torch.set_num_threads(int(os.environ.get("STORYLINE_TEST_THREADS", "1")))


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("clips")


@pytest.fixture(scope="session")
def clip(clip_dir: Path) -> tuple[Path, list[int], int]:
    """One clip with a very short shot among longer ones: (path, cuts, frame count)."""
    lengths = [30, 4, 25, 40, 12]
    path = clip_dir / "clip.mp4"
    return path, make_clip(path, lengths, seed=1), sum(lengths)


@pytest.fixture(scope="session")
def other_clip(clip_dir: Path) -> tuple[Path, list[int], int]:
    lengths = [20, 33, 15]
    path = clip_dir / "other.mp4"
    return path, make_clip(path, lengths, seed=2), sum(lengths)


@pytest.fixture(scope="session")
def encoder() -> Encoder:
    return random_encoder(input_size=TEST_INPUT_SIZE)


API_TOKEN = "test-token-0123456789"  # >= 16 characters, as serve demands


@pytest.fixture(scope="session")
def api_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The served root: 6 clips and a broken file under videos/, with their manifest."""
    root = tmp_path_factory.mktemp("api-root")
    make_videos(root / "videos", 6, bad=1)
    return root


@pytest.fixture(scope="session")
def api(api_root: Path) -> Iterator[httpx.Client]:
    """`storyline serve` (real uvicorn, loopback) on the test Ray; a client with the token."""
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
            str(api_root),
            "--ray-address",
            cluster["dashboard"],
            "--log-level",
            "warning",
        ],
        env={**os.environ, "STORYLINE_TOKEN": API_TOKEN},
    )
    client = httpx.Client(
        base_url=f"http://127.0.0.1:{port}",
        headers={"Authorization": f"Bearer {API_TOKEN}"},
        timeout=60,
    )
    try:
        deadline = time.monotonic() + 180  # a loaded 2-core machine starts slowly
        while True:
            try:
                if client.get("/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "serve did not start"
            time.sleep(0.3)
        _wait_for_job_agent(cluster["dashboard"])
        yield client
    finally:
        client.close()
        server.terminate()
        server.wait(timeout=60)


def _wait_for_job_agent(dashboard: str, timeout: float = 240) -> None:
    """Until the head's job agent takes a job: a just-started head refuses submits ("No
    available agent") for seconds, minutes on a loaded machine; tests then time out."""
    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(dashboard)
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.submit_job(entrypoint="true")
            return
        except RuntimeError:
            assert time.monotonic() < deadline, "Ray's job agent did not start"
            time.sleep(1.0)
