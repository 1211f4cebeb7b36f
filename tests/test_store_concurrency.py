"""Two jobs on one store at the same instant: encoder registrations and one video written by
two encoders. Real processes (spawned), a real Zarr store on disk."""

from __future__ import annotations

import multiprocessing as mp
import time
from pathlib import Path

import numpy as np

from storyline.store import FeatureStore

WRITERS = 6


def _register(store: str, name: str, barrier: mp.synchronize.Barrier) -> None:
    opened = FeatureStore(store)  # opened before the others write: its attributes go stale
    barrier.wait()
    opened.register_encoder(name, f"id-{name}")


def test_simultaneous_registrations_are_all_kept(tmp_path: Path) -> None:
    store = str(tmp_path / "s.zarr")
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(WRITERS)
    procs = [
        ctx.Process(target=_register, args=(store, f"enc{i}", barrier)) for i in range(WRITERS)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    assert FeatureStore(store, mode="r").encoders() == {
        f"enc{i}": f"id-enc{i}" for i in range(WRITERS)
    }


def _write_video(store: str, encoder: str, barrier: mp.synchronize.Barrier) -> None:
    opened = FeatureStore(store)
    barrier.wait()
    writer = opened.begin_video("v", attrs={"source": "v.mp4"})
    time.sleep(0.5)  # the other writer arrives while this one is half-way
    shots = np.array([[0, 10], [10, 25]])
    writer.finish(
        shots=shots,
        features=np.full((2, 8), 1.0 if encoder == "a" else 2.0, np.float32),
        encoder_name=encoder,
        encoder_id=f"id-{encoder}",
        attrs={"source": "v.mp4"},
    )


def test_one_video_written_by_two_encoders_at_once_keeps_both(tmp_path: Path) -> None:
    store = str(tmp_path / "s.zarr")
    FeatureStore(store)
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_write_video, args=(store, e, barrier)) for e in "ab"]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    reader = FeatureStore(store, mode="r")
    assert reader.status("v").status == "complete"
    assert reader.attrs("v")["features"] == {"a": "id-a", "b": "id-b"}
    assert (reader.features("v", "a") == 1).all() and (reader.features("v", "b") == 2).all()
