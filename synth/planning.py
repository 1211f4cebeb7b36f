"""Planning: a film's tags and cast, and its shots scene by scene (no pixels yet).

Everything is a pure function of the seed, with one random stream per film, so a film does
not change when more films are asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from ..extractor.manifest import safe_id
from .rendering import cut_score, frame
from .tables import (
    CAST_HUES,
    DIALOGUE,
    GENRES,
    KEYWORDS,
    MIN_CUT_SCORE,
    ROLES,
    STORY,
    SynthConfig,
)

# Streams of the seeded generators, so each film's randomness is its own.
TITLE_STREAM, TRAILER_STREAM, SPLIT_STREAM, QA_STREAM, VECTORS_STREAM = range(5)


@dataclass(frozen=True)
class Shot:
    """Everything needed to render one shot; rendering is a pure function of it."""

    frames: int
    genre: str
    role: str
    scene: int  # index of the scene within its film
    keyword: str | None
    actor_hue: float
    hue_jitter: float  # the film's grading plus scene-level palette variation
    floor_hue: float  # the film's locations: its floors' hue (set-ups keep their brightness)
    saturation: float  # the film's grading: saturation factor
    texture_scale: float
    pan: float  # background pan, pixels per frame
    motion: float  # actor motion, pixels per frame
    seed: int  # texture phase, bokeh layout, noise offset
    gain: float = 1.0  # brightness nudge, only where a cut would otherwise be too weak


@dataclass(frozen=True)
class Title:
    """A film: its tags, split, and the ids of its movie and trailer."""

    index: int
    genres: tuple[str, ...]
    keywords: tuple[str, ...]
    cast: tuple[float, ...]
    split: str = "train"

    @property
    def movie_id(self) -> str:
        return safe_id(f"movie_{self.index:04d}")

    @property
    def trailer_id(self) -> str:
        return safe_id(f"trailer_{self.index:04d}")


def rng_for(seed: int, stream: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([seed, stream, *keys])


def plan_title(seed: int, index: int) -> Title:
    """Tags and cast of film ``index``: 1-2 genres, 2-3 keywords, 3 costume colours."""
    rng = rng_for(seed, TITLE_STREAM, index)
    n_genres, n_keywords = 1 + int(rng.random() < 0.4), int(rng.integers(2, 4))
    genres = tuple(sorted(rng.choice(list(GENRES), size=n_genres, replace=False)))
    keywords = tuple(sorted(rng.choice(list(KEYWORDS), size=n_keywords, replace=False)))
    cast = tuple(float(h) for h in rng.choice(CAST_HUES, size=3, replace=False))
    return Title(index, genres, keywords, cast)


def _scene_roles(kind: str, rng: np.random.Generator, previous: str | None) -> list[str]:
    """Set-ups of one scene; the first differs from the last shot before, so the cut shows."""
    if kind == "dialogue":
        pair = DIALOGUE[int(rng.integers(len(DIALOGUE)))]
        first, other = pair if previous is None or ROLES[previous].swap else pair[::-1]
        return [first if i % 2 == 0 else other for i in range(int(rng.integers(4, 9)))]
    if kind == "story":
        return list(STORY[: int(rng.integers(3, 6))])
    roles: list[str] = []
    last = previous
    for _ in range(int(rng.integers(3, 6))):
        role = str(rng.choice([r for r in ROLES if _alternates(last, r)]))
        roles.append(role)
        last = role
    return roles


def _alternates(before: str | None, after: str) -> bool:
    """Whether ``after`` may follow ``before``: every cut swaps the palette and the floor's
    brightness, which keeps cuts strong without altering shots (see ``_ensure_cuts``)."""
    return before is None or ROLES[before].swap != ROLES[after].swap


def _shot_frames(kind: str, rng: np.random.Generator, short_rate: float) -> int:
    if rng.random() < short_rate:
        return int(rng.integers(4, 7))
    # short shots: decoding every frame is the extractor's cost, and what the trainers learn
    # from is the order of shots, not their length
    low, high = {"dialogue": (4, 12), "story": (5, 14), "montage": (4, 8)}[kind]
    return int(rng.integers(low, high + 1))


def plan_movie(title: Title, seed: int, config: SynthConfig = SynthConfig()) -> list[Shot]:
    """The film's shots, scene by scene: dialogues, stories and a few montages.

    Deterministic for (seed, film): a film is the same whatever else is generated.
    """
    rng = rng_for(seed, TITLE_STREAM, title.index, 1)
    target = int(rng.integers(config.movie_shots[0], config.movie_shots[1] + 1))
    # a film's own look (its grading and its locations), so its shots resemble each other
    # and not another film's, as a real film's palette, cast and sets set it apart
    film_hue, film_scale = float(rng.uniform(-8, 8)), float(rng.uniform(0.8, 1.25))
    floor_hue, saturation = float(rng.uniform(15, 165)), float(rng.uniform(0.7, 1.1))
    shots: list[Shot] = []
    scene = 0
    while len(shots) < target:
        previous = shots[-1].role if shots else None
        # a story opens on an unswapped set-up, so it can only follow a swapped one
        opens_story = _alternates(previous, STORY[0])
        odds = [0.40, 0.45, 0.15] if opens_story else [0.75, 0.0, 0.25]
        kind = str(rng.choice(["dialogue", "story", "montage"], p=odds))
        genre = str(rng.choice(title.genres))
        keyword = str(rng.choice(title.keywords)) if rng.random() < config.keyword_rate else None
        pair = rng.choice(len(title.cast), size=2, replace=False)
        hue_jitter = film_hue + float(rng.uniform(-4, 4))
        texture_scale = film_scale * float(rng.uniform(0.9, 1.1))
        pan = float(rng.uniform(0.1, 0.35) * rng.choice([-1, 1]))
        for i, role in enumerate(_scene_roles(kind, rng, previous)):
            actor = title.cast[int(pair[i % 2])] if kind == "dialogue" else title.cast[0]
            shots.append(
                Shot(
                    frames=_shot_frames(kind, rng, config.short_rate),
                    genre=genre,
                    role=role,
                    scene=scene,
                    keyword=keyword,
                    actor_hue=actor,
                    hue_jitter=hue_jitter,
                    floor_hue=floor_hue,
                    saturation=saturation,
                    texture_scale=texture_scale,
                    pan=pan,
                    motion=float(rng.uniform(-0.35, 0.35)),
                    seed=int(rng.integers(2**31)),
                )
            )
        scene += 1
    return _ensure_cuts(shots[:target], config)


def plan_trailer(title: Title, seed: int, config: SynthConfig = SynthConfig()) -> list[Shot]:
    """A trailer: shots of its film in film order, shorter, never two of one set-up in a row."""
    movie = plan_movie(title, seed, config)
    rng = rng_for(seed, TRAILER_STREAM, title.index)
    count = int(rng.integers(config.trailer_shots[0], config.trailer_shots[1] + 1))
    candidates = sorted(rng.choice(len(movie), size=min(len(movie), 2 * count), replace=False))
    picked: list[Shot] = []
    for i in candidates:
        shot = movie[int(i)]
        if len(picked) < count and _alternates(picked[-1].role if picked else None, shot.role):
            frames = int(rng.integers(config.trailer_frames[0], config.trailer_frames[1] + 1))
            picked.append(replace(shot, frames=frames, gain=1.0))
    return _ensure_cuts(picked, config)


def _ensure_cuts(shots: list[Shot], config: SynthConfig) -> list[Shot]:
    """Nudge the brightness of a shot whose cut from the one before would be too weak.

    Rarely needed (about 1 cut in 100: two scenes of one genre meeting on similar set-ups);
    brightness is the least structural thing to change.
    """
    fixed: list[Shot] = []
    for shot in shots:
        if fixed:
            before = frame(fixed[-1], fixed[-1].frames - 1, config)
            scored = []
            for gain in (1.0, 0.55, 1.45, 0.35):
                candidate = replace(shot, gain=gain)
                scored.append((cut_score(before, frame(candidate, 0, config)), candidate))
                if scored[-1][0] >= MIN_CUT_SCORE:
                    break
            shot = max(scored, key=lambda pair: pair[0])[1]
        fixed.append(shot)
    return fixed


def cut_frames(shots: Sequence[Shot]) -> list[int]:
    """0-based first frame of every shot but the first: the hard cuts."""
    starts = np.cumsum([0] + [s.frames for s in shots])
    return [int(x) for x in starts[1:-1]]


def assign_splits(count: int, rng: np.random.Generator) -> list[str]:
    """About 70/10/20 train/val/test, every split non-empty from 3 films on."""
    test = max(1, round(0.2 * count)) if count >= 2 else 0
    val = max(1, round(0.1 * count)) if count >= 3 else 0
    names = ["val"] * val + ["test"] * test
    names = ["train"] * (count - len(names)) + names
    return [names[int(i)] for i in rng.permutation(count)]
