"""`make gpu-check` (bench/gpu_check.py): its CPU paths, since CI machines have no GPU."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "gpu_check.py"


def _gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here: run make gpu-check")
def test_without_a_gpu_it_says_so_and_exits_0(capsys):
    assert _gpu_check().main([]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["gpu"] is False and "no GPU found" in report["message"]


@pytest.mark.slow
def test_cpu_rehearsal_runs_every_check(capsys):
    """Every check of the GPU run, on CPU and small: the script itself works."""
    assert _gpu_check().main(["--cpu-rehearsal"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and all(report["checks"].values())
    assert report["ray_job"]["complete"] == report["ray_job"]["videos"] == 4
    assert report["encoder"]["cosine_min"] >= 0.999
