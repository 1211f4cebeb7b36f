"""Reading shot features for training: checked, split by movie, cached in memory.

Trainers never touch video. A movie's features are one small array (n_shots x 1024
float16, ~3 MB for a feature film), so each is read from the store once, whole, into one
table; a batch is then a single gather from memory and training never waits on Zarr.
"""

from __future__ import annotations

import sys
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from ..store import FeatureStore, StoreError

SPLITS = ("train", "val", "test")
PAPER_SPLIT = (361, 41, 106)  # LSMTD: train / val / test movies, of 508
_SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "dev": "val",
    "test": "test",
    "testing": "test",
}


class TrainerError(ValueError):
    """Input a trainer cannot use; the message says what to do about it."""


def open_store(url: str) -> FeatureStore:
    """Open a store read-only, with a message that names the command that makes one."""
    try:
        return FeatureStore(url, mode="r")
    except StoreError as exc:
        raise TrainerError(str(exc)) from exc


def check_encoder(store: FeatureStore, encoder: str) -> str:
    """The encoder's id, after checking the store has complete videos with its features.

    Checked in the order a user fixes things: an empty store first, then the name.
    """
    if not store.video_ids():
        raise TrainerError(
            f"store {store.url} has no complete videos: run `storyline extract --store "
            f"{store.url} --manifest ...` first, or check its failures with `storyline info`"
        )
    encoders = store.encoders()
    if encoder not in encoders:
        known = ", ".join(sorted(encoders)) or "none"
        raise TrainerError(
            f"encoder {encoder!r} is not in store {store.url} (it has: {known}): pass one of "
            f"those to --encoder, or extract with `--encoder {encoder}`"
        )
    if not store.video_ids(encoder=encoder):
        raise TrainerError(
            f"store {store.url} has no complete videos with features of encoder {encoder!r}: "
            "its extraction has not finished a video yet"
        )
    return encoders[encoder]


def normalize_split(value: object, *, video_id: str = "?") -> str | None:
    """'train' | 'val' | 'test' from a manifest's split column (None when absent)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    split = _SPLIT_ALIASES.get(str(value).strip().lower())
    if split is None:
        raise TrainerError(
            f"video {video_id!r} has split {value!r}; use one of train, val, test in the "
            "manifest's split column (or leave it empty for a seeded split)"
        )
    return split


def paper_counts(n: int) -> tuple[int, int, int]:
    """Train/val/test sizes for n movies in the paper's proportions (361/41/106 of 508).

    With three or more movies every split gets at least one, so val and test never
    come out empty on a small store.
    """
    total = sum(PAPER_SPLIT)
    n_val = round(n * PAPER_SPLIT[1] / total)
    n_test = round(n * PAPER_SPLIT[2] / total)
    if n >= 3:
        n_val, n_test = max(n_val, 1), max(n_test, 1)
    n_val, n_test = min(n_val, n), min(n_test, max(n - n_val, 0))
    return n - n_val - n_test, n_val, n_test


def assign_splits(given: Mapping[str, str | None], *, seed: int) -> dict[str, str]:
    """Split movies (never questions): the manifest's split where it has one, the rest
    drawn for ``seed`` in the paper's proportions."""
    splits = {vid: s for vid, s in given.items() if s is not None}
    missing = sorted(vid for vid, s in given.items() if s is None)
    if missing:
        order = np.random.default_rng([seed, 0x5EED]).permutation(len(missing))
        n_train, n_val, _ = paper_counts(len(missing))
        for rank, i in enumerate(order):
            splits[missing[i]] = (
                "train" if rank < n_train else "val" if rank < n_train + n_val else "test"
            )
    return dict(sorted(splits.items()))


def video_tags(store: FeatureStore, video_ids: Iterable[str]) -> dict[str, dict]:
    """Each video's tags attribute ({"genres", "keywords", "split"}), normalized."""
    tags = {}
    for vid in video_ids:
        raw = store.attrs(vid).get("tags") or {}
        tags[vid] = {
            "genres": list(raw.get("genres") or []),
            "keywords": list(raw.get("keywords") or []),
            "split": normalize_split(raw.get("split"), video_id=vid),
        }
    return tags


def stable_seed(seed: int, text: str) -> list[int]:
    """An RNG seed for one video: the same for every run and every set of other videos."""
    return [seed, zlib.crc32(text.encode())]


@dataclass
class ShotTable:
    """Every shot feature of some videos as one (total_shots, D) float16 tensor.

    Video i's shots are rows ``offsets[i]:offsets[i + 1]``; a batch of questions is one
    ``index_select`` on it.
    """

    video_ids: list[str]
    offsets: np.ndarray  # (n_videos + 1,) int64
    features: torch.Tensor  # (total_shots, D) float16

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> ShotTable:
        ids = list(arrays)
        lengths = [len(arrays[v]) for v in ids]
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        dim = next(iter(arrays.values())).shape[1] if ids else 0
        table = np.empty((int(offsets[-1]), dim), dtype=np.float16)
        for vid, start, stop in zip(ids, offsets[:-1], offsets[1:], strict=True):
            table[start:stop] = arrays[vid]
        return cls(ids, offsets, torch.from_numpy(table))

    @classmethod
    def from_store(
        cls, store: FeatureStore, encoder: str, video_ids: Iterable[str], *, progress: bool = True
    ) -> ShotTable:
        """Read each video's features once, whole (one request per chunk, no per-shot I/O)."""
        ids = list(video_ids)
        arrays = {}
        for vid in tqdm(
            ids,
            desc=f"reading {encoder} features",
            unit="video",
            file=sys.stderr,
            disable=not progress,
            leave=False,
        ):
            arrays[vid] = store.features(vid, encoder)
        return cls.from_arrays(arrays)

    @property
    def dim(self) -> int:
        return int(self.features.shape[1])

    def index(self, video_id: str) -> int:
        return self.video_ids.index(video_id)

    def video(self, i: int) -> torch.Tensor:
        return self.features[int(self.offsets[i]) : int(self.offsets[i + 1])]

    def gather(self, rows: np.ndarray | torch.Tensor) -> torch.Tensor:
        """float32 features of global shot rows, any shape: (...,) -> (..., D)."""
        rows = torch.as_tensor(rows, dtype=torch.long)
        return self.features.index_select(0, rows.reshape(-1)).float().reshape(*rows.shape, -1)

    def stats(self, video_indices: Iterable[int] | None = None) -> tuple[torch.Tensor, ...]:
        """Per-dimension mean and std over the given videos' shots (float32).

        Models standardize inputs with these (stored in their state), since an encoder's
        raw feature scale is arbitrary (a random encoder's especially). Accumulated per
        video, so a feature-film-sized table never gets a float32 copy.
        """
        indices = range(len(self.video_ids)) if video_indices is None else video_indices
        total = torch.zeros(self.dim, dtype=torch.float64)
        squares = torch.zeros(self.dim, dtype=torch.float64)
        count = 0
        for i in indices:
            x = self.video(i).double()
            total += x.sum(0)
            squares += (x * x).sum(0)
            count += len(x)
        if count == 0:
            return torch.zeros(self.dim), torch.ones(self.dim)
        mean = total / count
        var = (squares / count - mean * mean).clamp_min(0) * count / max(count - 1, 1)
        return mean.float(), var.sqrt().float().clamp_min(1e-4)
