"""Stores of planted shot features, written without video, for tests and benchmarks.

Each movie is a run of scenes; a scene alternates between two camera set-ups (A B A B
...), each shot being its set-up's prototype plus noise. The mean of the context is as
close to A as to B, so the cosine baseline cannot tell which comes next; a model with
memory can. Genres and keywords add their own directions to every shot of a movie, so
tag classifiers have something to find. The real chain (synth -> extract) is tested
separately; this isolates the trainers from the extractor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..store import FeatureStore

GENRES = ("action", "comedy", "drama", "horror", "romance", "scifi")
KEYWORDS = tuple(f"kw{i:02d}" for i in range(16))


@dataclass(frozen=True)
class PlantedConfig:
    """What a planted store holds."""

    movies: int = 12  # number of movies
    min_shots: int = 60  # shots per movie, drawn uniformly in [min_shots, max_shots]
    max_shots: int = 120
    dim: int = 1024  # feature size
    scene_len: tuple[int, int] = (6, 14)  # shots per scene, drawn uniformly in this range
    palette: int = 24  # camera set-ups shared by all movies (0 = fresh ones per scene)
    noise: float = 0.6  # per-dimension noise around a set-up's prototype
    tag_strength: float = 0.5  # scale of genre/keyword directions added to every shot
    with_split: bool = True  # write a split tag (else trainers draw the seeded split)
    seed: int = 0


def _movie(
    rng: np.random.Generator,
    n: int,
    config: PlantedConfig,
    tag_dirs: np.ndarray,
    palette: np.ndarray,
) -> np.ndarray:
    feats = np.empty((n, config.dim), dtype=np.float32)
    i = 0
    while i < n:
        length = int(rng.integers(config.scene_len[0], config.scene_len[1] + 1))
        if len(palette):
            setups = palette[rng.choice(len(palette), size=2, replace=False)]
        else:
            setups = rng.standard_normal((2, config.dim))
        for j in range(min(length, n - i)):
            feats[i] = setups[j % 2] + config.noise * rng.standard_normal(config.dim)
            i += 1
    return feats + config.tag_strength * tag_dirs.sum(0)


def write_planted_store(
    url: str,
    config: PlantedConfig = PlantedConfig(),
    *,
    encoder: str = "planted",
    encoder_id: str = "planted-0",
    store: FeatureStore | None = None,
) -> FeatureStore:
    """Write ``config.movies`` complete movies with features of ``encoder``.

    Calling it again with another encoder name on the same store adds a second encoder's
    features (a different random draw) over the same shots.
    """
    rng = np.random.default_rng(config.seed)
    store = store or FeatureStore(url, mode="a")
    store.register_encoder(encoder, encoder_id)
    dirs = {t: rng.standard_normal(config.dim) for t in GENRES + KEYWORDS}
    palette = rng.standard_normal((config.palette, config.dim))
    splits = ["train"] * config.movies
    n_val = max(1, config.movies // 6)
    n_test = max(1, config.movies // 4)
    for k in range(n_val):
        splits[-1 - k] = "val"
    for k in range(n_test):
        splits[-1 - n_val - k] = "test"
    encoder_rng = np.random.default_rng([config.seed, sum(map(ord, encoder))])
    for m in range(config.movies):
        n = int(rng.integers(config.min_shots, config.max_shots + 1))
        genres = sorted(rng.choice(GENRES, size=int(rng.integers(1, 3)), replace=False))
        keywords = sorted(rng.choice(KEYWORDS, size=int(rng.integers(2, 5)), replace=False))
        tags = {
            "genres": [str(g) for g in genres],
            "keywords": [str(k) for k in keywords],
            "split": splits[m] if config.with_split else None,
        }
        feats = _movie(
            encoder_rng, n, config, np.stack([dirs[t] for t in genres + keywords]), palette
        )
        shots = np.stack([np.arange(n) * 10, np.arange(n) * 10 + 10], axis=1)
        attrs = {
            "source": f"planted/movie{m:03d}.mp4",
            "fps": 25.0,
            "frame_count": int(n * 10),
            "tags": tags,
        }
        writer = store.begin_video(f"movie{m:03d}", attrs=attrs)
        writer.finish(
            shots=shots, features=feats, encoder_name=encoder, encoder_id=encoder_id, attrs=attrs
        )
    return store
