"""Training throughput of the next-shot model: reading from the store vs from memory.

The trainers read each movie's feature array from the Zarr store once, whole, into one
in-memory table, and batch by gathering from it. This measures, in one run, questions per
second of training when the data comes from the store (the read included in the time)
against training on arrays already in memory; the target is a ratio of at least 0.8.
For contrast it also times a naive loader that reads every batch's shots from Zarr.

    .venv/bin/python bench/bench_temporal.py [--store S --encoder E] [--steps 200]

Without --store it writes a planted store of 1024-d features to a temporary folder.
Prints a human summary and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from storyline.store import FeatureStore
from storyline.trainers.loop import run
from storyline.trainers.planted import PlantedConfig, write_planted_store
from storyline.trainers.questions import QuestionConfig, get_questions
from storyline.trainers.temporal import (
    NextShotModel,
    TemporalConfig,
    TemporalData,
    TemporalTrainConfig,
    loop_config,
    new_model,
    train_batches,
)


def train_steps(data: TemporalData, steps: int, batch_size: int) -> None:
    """The training loop of `storyline train temporal` (trainers/loop.py, its batches),
    without validation passes."""
    torch.manual_seed(0)
    model = new_model(TemporalConfig(feature_dim=data.table.dim), data)
    config = TemporalTrainConfig(steps=steps, batch_size=batch_size, eval_interval=steps)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr)
    run(model, optimizer, loop_config(config), train_batches(data, config), progress=False)


def timed_training(make_data, steps: int, batch_size: int) -> tuple[float, float]:
    """(questions/s including making the data, seconds spent making it)."""
    t0 = time.perf_counter()
    data = make_data()
    t1 = time.perf_counter()
    train_steps(data, steps, batch_size)
    return steps * batch_size / (time.perf_counter() - t0), t1 - t0


def naive_qps(
    store: FeatureStore, encoder: str, data: TemporalData, steps: int, batch_size: int
) -> float:
    """Questions/s when every batch reads its shots from Zarr (no cache), for contrast."""
    qset = data.qset
    model = NextShotModel(TemporalConfig(feature_dim=data.table.dim))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    arrays = {v: store.root[f"videos/{v}/features/{encoder}"] for v in qset.videos}
    train_idx = qset.indices("train")
    m = qset.config.context
    t0 = time.perf_counter()
    for step in range(steps):
        batch = np.random.default_rng([0, step]).choice(train_idx, batch_size)
        ctx, cand = [], []
        for i in batch:
            movie = arrays[qset.videos[qset.video[i]]]
            t = int(qset.target[i])
            ctx.append(movie[t - m : t])
            cand.append(
                np.stack(
                    [
                        arrays[qset.videos[v]][int(s)]
                        for v, s in zip(qset.cand_video[i], qset.cand_shot[i], strict=True)
                    ]
                )
            )
        x = torch.from_numpy(np.stack(ctx).astype(np.float32))
        c = torch.from_numpy(np.stack(cand).astype(np.float32))
        _, loss = model(x, c, torch.from_numpy(qset.answer[batch].astype(np.int64)))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return steps * batch_size / (time.perf_counter() - t0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", help="an existing store (default: a planted one)")
    parser.add_argument("--encoder", default="planted")
    parser.add_argument("--movies", type=int, default=40, help="planted movies")
    parser.add_argument("--shots", type=int, default=300, help="planted shots per movie")
    parser.add_argument("--setting", default="in-movie", choices=["in-movie", "cross-movie"])
    parser.add_argument("--steps", type=int, default=100, help="training steps per timing")
    parser.add_argument("--rounds", type=int, default=3, help="store/memory timings each")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--naive-steps", type=int, default=3)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (2 on a busy 2-core machine thrashes)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory(prefix="bench_temporal_") as tmp:
        if args.store:
            url = args.store
        else:
            url = str(Path(tmp) / "planted.zarr")
            write_planted_store(
                url,
                PlantedConfig(
                    movies=args.movies, min_shots=args.shots, max_shots=args.shots, dim=1024
                ),
            )
        store = FeatureStore(url, mode="r")
        qset = get_questions(store, QuestionConfig(setting=args.setting), build_missing=True)
        arrays = {v: store.features(v, args.encoder) for v in qset.videos}  # "in memory"
        shots = sum(len(a) for a in arrays.values())
        print(
            f"{len(qset.videos)} movies, {shots} shots, {len(qset.indices('train'))} "
            f"training questions; {args.steps} steps x {args.batch_size}",
            file=sys.stderr,
        )

        results: dict[str, list[float]] = {"store": [], "memory": [], "read_s": []}
        for _ in range(args.rounds):  # alternate, so drift in machine load hits both alike
            qps, read_s = timed_training(
                lambda: TemporalData.from_store(store, args.encoder, qset, progress=False),
                args.steps,
                args.batch_size,
            )
            results["store"].append(qps)
            results["read_s"].append(read_s)
            qps, _ = timed_training(
                lambda: TemporalData.from_arrays(qset, arrays), args.steps, args.batch_size
            )
            results["memory"].append(qps)
        data = TemporalData.from_arrays(qset, arrays)
        naive = naive_qps(store, args.encoder, data, args.naive_steps, args.batch_size)

    store_qps, memory_qps = np.median(results["store"]), np.median(results["memory"])
    summary = {
        "questions_per_s_store": round(float(store_qps), 1),
        "questions_per_s_memory": round(float(memory_qps), 1),
        "ratio": round(store_qps / memory_qps, 3),
        "ratios_per_round": [
            round(a / b, 3) for a, b in zip(results["store"], results["memory"], strict=True)
        ],
        "store_read_s": round(min(results["read_s"]), 3),
        "questions_per_s_naive_zarr_per_batch": round(naive, 1),
        "shots": shots,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "threads": args.threads,
    }
    print(
        f"store {store_qps:.0f} q/s, memory {memory_qps:.0f} q/s: ratio "
        f"{summary['ratio']:.2f} (target >= 0.8); naive per-batch Zarr reads {naive:.0f} q/s",
        file=sys.stderr,
    )
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
