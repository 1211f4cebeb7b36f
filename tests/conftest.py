"""Shared fixtures: real encoded test videos with known cuts, a small random encoder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from storyline.extractor.encoder import Encoder, random_encoder

from .media import make_clip

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
