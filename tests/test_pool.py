"""The cluster's shape sizes the actor pool: one actor per --num-cpus CPUs, GPUs shared.

The sizing rules on declared node shapes, then a real local Ray started with declared
resources (16 CPUs, 2 GPUs; this machine has no CUDA) running a job: Ray hands the actors
GPU ids, and the actors fall back to CPU and say so once.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from storyline.extractor.pool import Node, PoolError, plan_pool

from .test_ray_support import make_videos


def test_every_cpu_decodes_and_the_gpus_are_shared() -> None:
    plan = plan_pool([Node(16, 2)])
    assert (plan.workers, plan.num_cpus, plan.num_gpus, plan.threads) == (16, 1.0, 0.125, 1)
    plan = plan_pool([Node(96, 8)] * 2)  # the node: 8 GPUs, 96 cores
    assert plan.workers == 192 and plan.num_gpus == pytest.approx(0.0833)
    assert plan.num_gpus * 96 <= 8  # the share is floored, so every actor of a node fits
    plan = plan_pool([Node(16, 2)], num_cpus=4)
    assert (plan.workers, plan.num_gpus, plan.threads) == (4, 0.5, 4)
    assert plan_pool([Node(4, 8)]).num_gpus == 1.0  # never more than one GPU per actor
    assert plan_pool([Node(16, 0)]).num_gpus == 0.0  # no GPU: CPU actors


def test_num_gpus_and_workers_override() -> None:
    assert plan_pool([Node(16, 2)], num_gpus=1).workers == 2
    assert plan_pool([Node(16, 2)], num_gpus=0).workers == 16
    assert plan_pool([Node(16, 2)], workers=3).workers == 3
    # a CPU-only head beside a GPU node: GPU actors go to the GPU node only
    assert plan_pool([Node(8, 0), Node(16, 2)]).workers == 16
    # unequal GPU nodes: the smallest share, so the fuller node still fits its actors
    plan = plan_pool([Node(16, 2), Node(8, 2)])
    assert plan.num_gpus == 0.125 and plan.workers == 24


@pytest.mark.parametrize(
    ("kwargs", "nodes", "words"),
    [
        ({"num_gpus": 3}, [Node(16, 2)], ["--num-gpus 3", "2 GPUs"]),
        ({"num_gpus": 0.5}, [Node(16, 0)], ["no GPU", "--num-gpus 0"]),
        ({"num_cpus": 32}, [Node(16, 2)], ["--num-cpus 32", "16 CPUs"]),
        ({"workers": 17}, [Node(16, 2)], ["--workers 17", "holds 16 actors"]),
        ({"num_cpus": 0}, [Node(16, 2)], ["--num-cpus must be > 0"]),
    ],
)
def test_impossible_requests_are_refused_with_the_numbers(kwargs, nodes, words) -> None:
    with pytest.raises(PoolError) as caught:
        plan_pool(nodes, **kwargs)
    assert all(w in str(caught.value) for w in words), str(caught.value)


JOB = textwrap.dedent(
    """
    import json, sys
    import ray
    from storyline.extractor.manifest import read_manifest
    from storyline.extractor.pipeline import ExtractionSettings
    from storyline.extractor.pool import PoolError
    from storyline.extractor.ray_runner import EncoderSpec, RayOptions, plan_workers, run_job
    from storyline.store import FeatureStore
    from storyline.store.jobs import read_job

    manifest, store = sys.argv[1], sys.argv[2]
    ray.init(address="local", num_cpus=16, num_gpus=2, include_dashboard=False,
             log_to_driver=False,  # no idle workers for 16 declared CPUs on a 2-core machine:
             _system_config={"enable_worker_prestart": False,
                             "prestart_worker_first_driver": False})
    default = plan_workers(RayOptions())
    try:
        plan_workers(RayOptions(num_gpus=3))
        refused = None
    except PoolError as exc:
        refused = str(exc)
    result = run_job(read_manifest(manifest), FeatureStore(store), encoder=EncoderSpec(
        input_size=64), settings=ExtractionSettings(), options=RayOptions(num_cpus=8,
        update_interval=0.2), job_id="shaped", manifest=manifest, progress=False)
    print(json.dumps({"default": [default.workers, default.num_gpus], "refused": refused,
                      "counts": result.counts, "ray": read_job(store, "shaped")["ray"]}))
    """
)


def test_a_local_ray_with_declared_gpus(tmp_path: Path) -> None:
    manifest = make_videos(tmp_path / "videos", 2)
    done = subprocess.run(
        [sys.executable, "-c", JOB, str(manifest), str(tmp_path / "s.zarr")],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["default"] == [16, 0.125]
    assert "--num-gpus 3" in out["refused"] and "2 GPUs" in out["refused"]
    assert out["counts"]["complete"] == 2
    pool = out["ray"]  # 8 CPUs per actor: 2 actors, each the node's 2 GPUs / 2 actors
    assert (pool["workers"], pool["num_cpus"], pool["num_gpus"], pool["threads"]) == (2, 8, 1.0, 8)
    gpu_ids = sorted(i for a in pool["actors"] for i in a["gpu_ids"])
    assert gpu_ids == ["0", "1"]  # Ray gave each actor its own GPU
    if all(a["device"] == "cpu" for a in pool["actors"]):  # no CUDA: the CPU fallback, told once
        assert done.stderr.count("torch sees no CUDA device") == 1
