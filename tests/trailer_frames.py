"""Synthetic trailers written straight into a store's frame cache, with known tags.

Each genre is a shape (disc, square, ring, cross, bars, triangle...) drawn in a random
colour at a random place over a random cluttered background; a shot shows one of its
trailer's genres. Colour says nothing about the genre, so a classifier has to see shapes.
Keywords tint a corner. No video is encoded: the encoder trainer reads only the cache, and
this keeps its tests fast (the synth -> extract chain is tested with the extractor).
"""

from __future__ import annotations

import numpy as np

from storyline.store import FeatureStore

GENRES = ("disc", "square", "ring", "cross", "bars", "triangle", "diamond", "hbar")
KEYWORDS = ("red", "green", "blue", "yellow")
_TINTS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255), "yellow": (255, 255, 0)}


def _shape_mask(kind: str, size: int, rng: np.random.Generator) -> np.ndarray:
    r = rng.uniform(0.22, 0.32) * size
    cy, cx = rng.uniform(r, size - r, size=2)
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    dy, dx = yy - cy, xx - cx
    d = np.hypot(dy, dx)
    w = max(1.5, r / 3)
    masks = {
        "disc": d < r,
        "square": (abs(dy) < r * 0.85) & (abs(dx) < r * 0.85),
        "ring": (d < r) & (d > r - w),
        "cross": ((abs(dy) < w / 1.5) | (abs(dx) < w / 1.5)) & (abs(dy) < r) & (abs(dx) < r),
        "bars": (abs(dy) < r) & (abs(dx) < r) & ((xx // max(2, w)) % 2 == 0),
        "triangle": (dy < r * 0.8) & (dy > -r) & (abs(dx) < (dy + r) / 2),
        "diamond": abs(dy) + abs(dx) < r,
        "hbar": (abs(dy) < w / 1.2) & (abs(dx) < r),
    }
    return masks[kind]


def draw_frame(
    genre: str | None, keywords: list[str], size: int, rng: np.random.Generator
) -> np.ndarray:
    """One S x S x 3 uint8 frame: clutter, maybe a genre's shape, keyword tints."""
    low = rng.integers(0, 256, size=(4, 4, 3)).astype(np.float32)
    reps = -(-size // 4)
    background = np.kron(low, np.ones((reps, reps, 1)))[:size, :size]
    frame = 0.6 * background + rng.normal(0, 25, (size, size, 3)) + 40
    if genre is not None:
        colour = rng.integers(0, 256, size=3)
        frame[_shape_mask(genre, size, rng)] = colour
    corner = max(2, size // 8)
    for i, k in enumerate(keywords):
        y, x = (0, 0) if i == 0 else (0, size - corner) if i == 1 else (size - corner, 0)
        frame[y : y + corner, x : x + corner] = _TINTS[k]
    return np.clip(frame, 0, 255).astype(np.uint8)


def write_trailer_store(
    url: str,
    *,
    videos: int = 40,
    shots: tuple[int, int] = (6, 10),
    size: int = 32,
    frames_per_shot: int = 3,
    untagged: int = 0,
    seed: int = 0,
    with_frames: bool = True,
    val_fraction: float = 0.3,
    genres_per_video: tuple[int, int] = (1, 2),
) -> FeatureStore:
    """A store of ``videos`` tagged trailers (+ ``untagged`` ones without tags), frames
    cached at ``size``; splits train/val by ``val_fraction``; features of a stand-in
    encoder named ``random`` so the store looks like an extractor's output."""
    rng = np.random.default_rng(seed)
    store = FeatureStore(url, mode="a")
    store.register_encoder("random", "stand-in")
    n_val = int(round(videos * val_fraction))
    for v in range(videos + untagged):
        tagged = v < videos
        genres = list(
            rng.choice(
                GENRES,
                size=int(rng.integers(genres_per_video[0], genres_per_video[1] + 1)),
                replace=False,
            )
        )
        keywords = list(rng.choice(KEYWORDS, size=int(rng.integers(1, 3)), replace=False))
        n = int(rng.integers(shots[0], shots[1] + 1))
        cache = np.empty((n, frames_per_shot, size, size, 3), np.uint8)
        for s in range(n):
            genre = genres[s % len(genres)] if rng.random() < 0.9 else None
            for f in range(frames_per_shot):
                cache[s, f] = draw_frame(genre, keywords, size, rng)
        split = "val" if v >= videos - n_val and tagged else "train"
        tags = (
            {
                "genres": [str(g) for g in genres],
                "keywords": [str(k) for k in keywords],
                "split": split,
            }
            if tagged
            else {"genres": [], "keywords": [], "split": None}
        )
        attrs = {
            "source": f"synthetic/trailer{v:03d}.mp4",
            "fps": 24.0,
            "frame_count": n * 24,
            "width": size,
            "height": size,
            "tags": tags,
        }
        writer = store.begin_video(f"trailer{v:03d}", attrs=attrs)
        if with_frames:
            writer.append_frames(cache)
        bounds = np.stack([np.arange(n) * 24, np.arange(n) * 24 + 24], axis=1)
        feats = rng.standard_normal((n, 1024)).astype(np.float32)
        writer.finish(
            shots=bounds, features=feats, encoder_name="random", encoder_id="stand-in", attrs=attrs
        )
    return store
