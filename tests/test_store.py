"""FeatureStore behaviour that extraction jobs rely on, on a real Zarr store on disk."""

from __future__ import annotations

import threading

import numpy as np
import zarr

from storyline.store import FeatureStore


def test_workers_starting_together_on_a_new_store_all_write(tmp_path):
    """Zarr refuses the second of two simultaneous creations of `videos/`; no video of a
    job may fail for that (it did, in the demo's first Ray job)."""
    for trial in range(10):
        url = str(tmp_path / f"s{trial}.zarr")
        zarr.open_group(url, mode="a", zarr_format=3).attrs.update(
            {"storyline": 1, "encoders": {}}  # opened before: no videos/ group yet
        )
        errors: list[str] = []
        start = threading.Barrier(6)

        def worker(i: int, url: str, start: threading.Barrier, errors: list[str]) -> None:
            store = FeatureStore(url)
            start.wait()
            try:
                writer = store.begin_video(f"v{i}", attrs={"source": f"v{i}.mp4"})
                writer.finish(
                    shots=np.array([[0, 10]]),
                    features=np.ones((1, 1024)),
                    encoder_name="random",
                    encoder_id="abc",
                    attrs={"source": f"v{i}.mp4"},
                )
            except Exception as exc:
                errors.append(repr(exc))

        threads = [threading.Thread(target=worker, args=(i, url, start, errors)) for i in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert FeatureStore(url, mode="r").video_ids() == [f"v{i}" for i in range(6)]


def test_failed_mark_never_overwrites_a_complete_video(tmp_path):
    store = FeatureStore(str(tmp_path / "s.zarr"))
    writer = store.begin_video("v", attrs={"source": "v.mp4"})
    writer.finish(
        shots=np.array([[0, 5], [5, 9]]),
        features=np.zeros((2, 1024)),
        encoder_name="random",
        encoder_id="abc",
        attrs={"source": "v.mp4"},
    )
    store.mark_failed("v", source="v.mp4", error="file not found: v.mp4")
    assert store.video_ids() == ["v"] and store.attrs("v")["status"] == "complete"
