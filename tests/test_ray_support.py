"""Helpers shared by the Ray and API tests: small real videos, a manifest, one local Ray.

Not a test module (it holds no tests); named so it belongs with the tests that use it.
"""

from __future__ import annotations

import atexit
import socket
from pathlib import Path
from typing import Any

from .media import make_clip

SIZE = (64, 48)  # frame size of the test videos: decoding stays cheap
INPUT_SIZE = ["--input-size", "64"]  # the smallest size decord decodes at


def make_videos(folder: Path, count: int, *, bad: int = 0) -> Path:
    """``count`` clips of ~40 frames with cuts, plus ``bad`` broken files; the manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["video,id"]
    for i in range(count):
        path = folder / f"clip{i:03d}.mp4"
        if not path.exists():
            make_clip(path, [12 + i % 5, 14, 14 - i % 3], size=SIZE, seed=i)
        lines.append(f"{path.name},clip{i:03d}")
    for i in range(bad):
        path = folder / f"bad{i}.mp4"
        path.write_bytes(b"not a video at all" * (i + 1))
        lines.append(f"{path.name},bad{i}")
    manifest = folder / "manifest.csv"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


_CLUSTER: dict[str, Any] = {}


def local_cluster() -> dict[str, str]:
    """One local Ray (2 CPUs, with its job server) per test process, stopped at exit.

    Started with ``address="local"`` so the tests never join another cluster on this
    machine; subprocess drivers join it through ``gcs`` and the API through ``dashboard``.
    """
    if not _CLUSTER:
        import ray

        from storyline.deploy.app import put_interpreter_on_path

        put_interpreter_on_path()  # the API's jobs run `python` from the node's PATH
        context = ray.init(
            address="local",
            num_cpus=2,
            include_dashboard=True,
            dashboard_host="127.0.0.1",
            dashboard_port=free_port(),
            log_to_driver=False,
        )
        _CLUSTER["gcs"] = context.address_info["gcs_address"]
        _CLUSTER["dashboard"] = f"http://{context.dashboard_url}"
        atexit.register(ray.shutdown)
    return dict(_CLUSTER)
