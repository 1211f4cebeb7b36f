"""Synthetic movies, trailers and a MovieQA-style QA set with known cuts and planted structure.

There is no LSMTD or MovieQA data on our machines, so the trainers prove that they learn on
videos whose answers we planted:

- Cuts: hard cuts only, at known frames (``cuts.json``); every shot differs from its
  neighbours in hue, saturation and brightness by far more than scenedetect's threshold,
  while motion inside a shot (pan, moving actor, drifting prop, sensor noise) stays small.
- Tags: a genre sets the palette and background texture of a scene; a plot keyword puts
  its own glyph (shape, colour and inner pattern) in a scene. A trailer shows shots of its
  film, so trailer and movie share tags.
- Temporal order: every shot has a camera set-up ("role") whose layout, set piece (a lamp,
  a window, a table...), palette swap and brightness are the same in every film. Dialogue
  scenes alternate the two set-ups of a pair (A B A B ...); story scenes follow one
  progression shared by all films (establishing, approach, closeup, clash, aftermath);
  montages are random. So the next shot follows from the last ones (the shot two back, the
  successor of the last set-up), not from the mean of the context; a film's scenes differ
  in set-ups and palette, so its own shots are plausible distractors.
- QA: clips are scenes cut from the movies; questions ask for the scene's genre or the
  object in it, so the right answer is what the clip shows.

Everything is a pure function of the seed: per-film random streams, so a film does not
change when more films are asked for.
"""

from __future__ import annotations

import colorsys
import csv
import json
import math
import multiprocessing
import re
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from ..extractor.manifest import CSV_COLUMNS, safe_id
from ..extractor.video_writer import write_video

__all__ = [
    "DEFAULT_MOVIES",
    "DEFAULT_TRAILERS",
    "DIALOGUE",
    "GENRES",
    "KEYWORDS",
    "ROLES",
    "STORY",
    "Shot",
    "SynthConfig",
    "SynthSummary",
    "Title",
    "cut_frames",
    "cut_score",
    "make_synthetic",
    "plan_movie",
    "plan_title",
    "plan_trailer",
    "render_shots",
    "tokenize",
]


@dataclass(frozen=True)
class Genre:
    """How a genre looks: two hues (OpenCV units, 0-180), saturation, brightness, texture."""

    hues: tuple[float, float]
    sat: float
    val: float
    texture: str
    strength: float  # how far the texture mixes the accent colour in, 0..1


@dataclass(frozen=True)
class Glyph:
    """How a plot keyword shows: a shape in its own colour with its own inner pattern."""

    shape: str
    hsv: tuple[float, float, float]
    pattern: str
    answer: str  # the phrase a QA answer uses


@dataclass(frozen=True)
class Role:
    """A camera set-up, the same in every film, so transitions between set-ups are learnable.

    Positions are fractions of the frame's central square, the part a square centre crop
    (what the encoder sees) keeps.
    """

    swap: bool  # the sky takes the genre's second hue, paler
    gain: float  # brightness factor
    ground: tuple[float, float, float]  # HSV of the floor, the same in every film
    horizon: float  # sky/ground split at the centre, fraction of the height
    tilt: float = 0.0  # slope of the horizon (camera roll)
    zoom: float = 1.0  # background texture scale
    actors: tuple[tuple[float, float, float], ...] = ((0.5, 0.6, 0.15),)  # x, y, radius
    glyph: tuple[float, float, float] = (0.5, 0.35, 0.35)  # x, y, size of the keyword's glyph


# Hues keep clear of red (0/180): OpenCV's hue difference is not circular, so noise on a red
# area would flip between 0 and 179 and look like a cut.
GENRES: dict[str, Genre] = {
    "action": Genre((14, 104), 215, 235, "stripes", 0.54),
    "comedy": Genre((26, 80), 190, 245, "dots", 0.60),
    "drama": Genre((108, 22), 130, 185, "bands", 0.42),
    "horror": Genre((136, 66), 190, 180, "streaks", 0.54),
    "romance": Genre((158, 16), 140, 240, "bokeh", 0.60),
    "scifi": Genre((92, 145), 225, 215, "grid", 0.72),
}

# Colours spread over hue, saturation and brightness, so a glyph is told by colour as well as
# by shape (a random encoder sees colour much better than shape).
KEYWORDS: dict[str, Glyph] = {
    "explosion": Glyph("star", (10, 255, 255), "rings", "an explosion"),
    "car": Glyph("car", (118, 240, 210), "hstripes", "a car"),
    "ghost": Glyph("ghost", (90, 30, 255), "plain", "a ghost"),
    "wedding": Glyph("rings", (27, 190, 245), "plain", "a wedding ring"),
    "robot": Glyph("robot", (100, 70, 140), "checker", "a robot"),
    "money": Glyph("bars", (62, 230, 170), "vstripes", "some money"),
    "murder": Glyph("dagger", (168, 230, 150), "plain", "a bloody knife"),
    "spaceship": Glyph("rocket", (85, 255, 235), "dots", "a spaceship"),
    "love": Glyph("heart", (155, 190, 255), "plain", "a heart"),
    "storm": Glyph("bolt", (135, 220, 255), "checker", "a lightning storm"),
}

# Every cut swaps the palette (swap alternates) and goes from a dark floor to a bright one or
# back, so each cut is strong in hue and brightness. Dialogue set-ups come in pairs that a
# scene alternates; the story set-ups come in a fixed order.
ROLES: dict[str, Role] = {
    "talk_a": Role(False, 1.00, (20, 150, 115), 0.62, actors=((0.30, 0.56, 0.17),),
                   glyph=(0.75, 0.36, 0.36)),
    "talk_b": Role(True, 0.62, (100, 110, 225), 0.56, actors=((0.72, 0.56, 0.17),),
                   glyph=(0.25, 0.38, 0.36)),
    "high": Role(False, 0.85, (60, 150, 110), 0.55, 0.25, 0.7, ((0.50, 0.72, 0.11),),
                 (0.78, 0.70, 0.30)),
    "low": Role(True, 1.00, (30, 110, 230), 0.70, -0.25, 1.4, ((0.50, 0.45, 0.22),),
                (0.22, 0.22, 0.30)),
    "two": Role(False, 0.70, (140, 140, 115), 0.60, 0.0, 0.8,
                ((0.24, 0.60, 0.12), (0.76, 0.60, 0.12)), (0.50, 0.28, 0.30)),
    "single": Role(True, 0.85, (75, 110, 220), 0.70, 0.0, 1.8, ((0.42, 0.64, 0.30),),
                   (0.84, 0.28, 0.28)),
    "establishing": Role(False, 1.00, (90, 150, 110), 0.70, 0.0, 0.6, ((0.50, 0.80, 0.05),),
                         (0.78, 0.35, 0.28)),
    "approach": Role(True, 0.82, (125, 110, 225), 0.55, 0.0, 0.9, ((0.32, 0.62, 0.11),),
                     (0.72, 0.36, 0.34)),
    "closeup": Role(False, 0.72, (160, 140, 120), 0.70, 0.0, 1.6, ((0.45, 0.64, 0.32),),
                    (0.84, 0.22, 0.26)),
    "clash": Role(True, 1.00, (12, 120, 225), 0.58, 0.0, 1.2, ((0.22, 0.55, 0.16),),
                  (0.66, 0.50, 0.46)),
    "aftermath": Role(False, 0.45, (115, 150, 100), 0.60, 0.15, 1.0, ((0.72, 0.68, 0.12),),
                      (0.30, 0.45, 0.34)),
}
DIALOGUE = (("talk_a", "talk_b"), ("high", "low"), ("two", "single"))
STORY = ("establishing", "approach", "closeup", "clash", "aftermath")
CAST_HUES = (8.0, 40.0, 75.0, 100.0, 128.0, 150.0)  # costume colours, picked per film

# The set each camera set-up sees, the same in every film: (HSV colour, opacity, shapes in
# the central square's fractions). Layout and brightness alone did not make a set-up
# recognisable across films to a randomly initialised encoder; a fixed set piece does.
_RAIN = tuple(("poly", ((x, 0.0), (x + 0.05, 0.0), (x - 0.15, 1.0), (x - 0.2, 1.0)))
              for x in (0.15, 0.4, 0.65, 0.9, 1.15))
SET_PIECES: dict[str, tuple[tuple[float, float, float], float, tuple[tuple, ...]]] = {
    "talk_a": ((24, 110, 250), 1.0, (("rect", 0.04, 0.3, 0.12, 1.0), ("disc", 0.08, 0.24, 0.12))),
    "talk_b": ((100, 90, 245), 1.0, tuple(("rect", x, y, x + 0.2, y + 0.2)
                                          for x in (0.54, 0.77) for y in (0.04, 0.27))),
    "high": ((18, 160, 200), 1.0, tuple(("rect", i / 8, 0.8 + 0.1 * (i % 2), (i + 1) / 8,
                                         0.9 + 0.1 * (i % 2)) for i in range(8))),
    "low": ((15, 140, 95), 1.0, tuple(("rect", 0.0, y, 1.0, y + 0.1) for y in (0.0, 0.2))),
    "two": ((12, 160, 130), 1.0, (("rect", 0.06, 0.72, 0.94, 0.84), ("rect", 0.12, 0.84, 0.18, 1.0),
                                  ("rect", 0.82, 0.84, 0.88, 1.0))),
    "single": ((120, 120, 200), 1.0, (("rect", 0.0, 0.04, 0.05, 0.96),
                                      ("rect", 0.2, 0.04, 0.25, 0.96),
                                      *(("rect", 0.0, 0.04 + 0.23 * i, 0.25, 0.1 + 0.23 * i)
                                        for i in range(5)))),
    "establishing": ((28, 200, 255), 1.0, (("disc", 0.8, 0.18, 0.15),)),
    "approach": ((110, 60, 110), 1.0, (("poly", ((0.42, 0.55), (0.58, 0.55), (0.95, 1.0),
                                                 (0.05, 1.0))),)),
    "closeup": ((150, 160, 160), 1.0, tuple(("rect", 0.76 + 0.08 * i, 0.0, 0.81 + 0.08 * i, 1.0)
                                            for i in range(3))),
    "clash": ((30, 60, 255), 0.45, (("disc", 0.5, 0.5, 0.44),)),
    "aftermath": ((105, 50, 220), 0.6, _RAIN),
}

GENRE_QUESTIONS = (
    "What genre is this scene?",
    "What kind of film is this clip from?",
    "Which genre does this scene look like?",
)
OBJECT_QUESTIONS = (
    "What object appears in this scene?",
    "Which thing can be seen in the clip?",
    "What is shown in this scene?",
)
GENRE_ANSWERS = {g: ("science fiction" if g == "scifi" else g) for g in GENRES}

DEFAULT_MOVIES, DEFAULT_TRAILERS = 16, 32
MIN_CUT_SCORE = 40.0  # scenedetect's ContentDetector fires at 27; keep a margin for H.264
VECTOR_DIM = 300

# Streams of the seeded generators, so each film's randomness is its own.
_TITLE, _TRAILER, _SPLIT, _QA, _VECTORS, _NOISE = range(6)


@dataclass(frozen=True)
class SynthConfig:
    """Sizes of what is generated; the defaults make the whole set in well under a minute."""

    width: int = 160  # even, for H.264
    height: int = 96
    fps: int = 24
    movie_shots: tuple[int, int] = (28, 40)  # shots per movie, inclusive range
    trailer_shots: tuple[int, int] = (10, 16)
    trailer_frames: tuple[int, int] = (4, 16)  # frames per trailer shot
    short_rate: float = 0.08  # share of very short (4-6 frame) shots in movies
    clips_per_movie: int = 3  # QA clips cut from each movie
    keyword_rate: float = 0.8  # share of scenes that show one of the film's keywords
    glyph_scale: float = 1.8  # keyword glyph size relative to its set-up's default
    noise: float = 1.5  # sensor-noise standard deviation, in 8-bit levels
    crf: int = 20


@dataclass(frozen=True)
class Shot:
    """Everything needed to render one shot; rendering is a pure function of it."""

    frames: int
    genre: str
    role: str
    scene: int  # index of the scene within its film
    keyword: str | None
    actor_hue: float
    hue_jitter: float  # scene-level palette variation
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


@dataclass(frozen=True)
class SynthSummary:
    """What ``make_synthetic`` wrote."""

    out: Path
    movies: int
    trailers: int
    clips: int
    questions: int
    words: int
    frames: int
    shots: int
    files: tuple[str, ...] = field(default=())


def _rng(seed: int, stream: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([seed, stream, *keys])


# ----------------------------------------------------------------------------- planning


def plan_title(seed: int, index: int) -> Title:
    """Tags and cast of film ``index``: 1-2 genres, 2-3 keywords, 3 costume colours."""
    rng = _rng(seed, _TITLE, index)
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
    low, high = {"dialogue": (6, 24), "story": (8, 32), "montage": (4, 10)}[kind]
    return int(rng.integers(low, high + 1))


def plan_movie(title: Title, seed: int, config: SynthConfig = SynthConfig()) -> list[Shot]:
    """The film's shots, scene by scene: dialogues, stories and a few montages.

    Deterministic for (seed, film): a film is the same whatever else is generated.
    """
    rng = _rng(seed, _TITLE, title.index, 1)
    target = int(rng.integers(config.movie_shots[0], config.movie_shots[1] + 1))
    # a film's own look (its grading and sets), so its shots resemble each other
    film_hue, film_scale = float(rng.uniform(-8, 8)), float(rng.uniform(0.8, 1.25))
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
    rng = _rng(seed, _TRAILER, title.index)
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
            before = _frame(fixed[-1], fixed[-1].frames - 1, config)
            scored = []
            for gain in (1.0, 0.55, 1.45, 0.35):
                candidate = replace(shot, gain=gain)
                scored.append((cut_score(before, _frame(candidate, 0, config)), candidate))
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


# ----------------------------------------------------------------------------- rendering


def _rgb(h: float, s: float, v: float) -> np.ndarray:
    """OpenCV-unit HSV (0-180, 0-255, 0-255) to float RGB 0-255."""
    s, v = min(max(s, 0.0), 255.0), min(max(v, 0.0), 255.0)
    r, g, b = colorsys.hsv_to_rgb((h % 180) / 180, s / 255, v / 255)
    return np.array([r, g, b], dtype=np.float32) * 255


def _texture(
    kind: str, x: np.ndarray, y: np.ndarray, scale: float, rng: np.random.Generator
) -> np.ndarray:
    """A genre's background texture in [0, 1], smooth so that panning it is not a cut."""
    phase = rng.uniform(0, 2 * np.pi)
    if kind == "stripes":
        return 0.5 + 0.5 * np.tanh(1.5 * np.sin(2 * np.pi * (x + y) / (12 * scale) + phase))
    if kind == "dots":
        period = 18 * scale
        d = np.hypot((x % period) - period / 2, (y % period) - period / 2)
        return np.clip((period * 0.3 - d) / 2, 0, 1)
    if kind == "bands":
        return 0.5 + 0.5 * np.sin(2 * np.pi * y / (34 * scale) + phase)
    if kind == "streaks":
        t = np.sin(2 * np.pi * x / (9 * scale) + phase) + 0.6 * np.sin(2 * np.pi * x / (23 * scale))
        return np.clip(0.5 + 0.35 * t, 0, 1) * np.clip(1.2 - np.abs(y / y.max() - 0.5), 0, 1)
    if kind == "bokeh":
        out = np.zeros_like(x)
        for _ in range(9):
            cx, cy = rng.uniform(0, x.max()), rng.uniform(0, y.max())
            r = rng.uniform(6, 16) * scale
            out = np.maximum(out, np.clip((r - np.hypot(x - cx, y - cy)) / 3, 0, 1))
        return out
    if kind == "grid":
        period = 16 * scale
        gx = np.abs(np.sin(np.pi * x / period)) ** 24
        gy = np.abs(np.sin(np.pi * y / period)) ** 24
        return np.maximum(gx, gy)
    raise ValueError(f"unknown texture {kind!r}")


def _glyph_mask(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Boolean mask of a keyword's shape on coordinates u, v in [-1, 1] (v down)."""
    r, theta = np.hypot(u, v), np.arctan2(v, u)
    if shape == "star":
        return r < 0.55 + 0.35 * np.cos(10 * theta)
    if shape == "car":
        body = (np.abs(u) < 0.95) & (v > -0.15) & (v < 0.4)
        cabin = (np.abs(u + 0.05) < 0.5) & (v > -0.6) & (v <= -0.15)
        wheels = (np.hypot(u - 0.55, v - 0.45) < 0.24) | (np.hypot(u + 0.55, v - 0.45) < 0.24)
        return body | cabin | wheels
    if shape == "ghost":
        head = np.hypot(u, v + 0.25) < 0.6
        skirt = (np.abs(u) < 0.6) & (v > -0.25) & (v < 0.75 + 0.12 * np.sin(9 * u))
        eyes = (np.hypot(u - 0.22, v + 0.3) < 0.12) | (np.hypot(u + 0.22, v + 0.3) < 0.12)
        return (head | skirt) & ~eyes
    if shape == "rings":
        left, right = np.hypot(u + 0.3, v), np.hypot(u - 0.3, v)
        return (np.abs(left - 0.45) < 0.16) | (np.abs(right - 0.45) < 0.16)
    if shape == "robot":
        head = (np.abs(u) < 0.6) & (np.abs(v - 0.15) < 0.6)
        antenna = (np.abs(u) < 0.06) & (v < -0.45) & (v > -0.9)
        eyes = (np.abs(np.abs(u) - 0.28) < 0.12) & (np.abs(v) < 0.1)
        return (head | antenna) & ~eyes
    if shape == "bars":
        return (np.abs(u) < 0.8) & (np.abs(v) < 0.75) & (np.sin(np.pi * (v + 1) * 2.5) > -0.3)
    if shape == "dagger":
        width = 0.3 * np.clip(1 - (v + 0.95) / 1.4, 0, 1) + 0.06
        blade = (np.abs(u) < width) & (v > -0.95) & (v < 0.35)
        guard = (np.abs(u) < 0.55) & (np.abs(v - 0.42) < 0.08)
        hilt = (np.abs(u) < 0.1) & (v > 0.42) & (v < 0.9)
        return blade | guard | hilt
    if shape == "rocket":
        body = (np.abs(u) < 0.35 * (v + 0.95).clip(0, 1)) & (v > -0.95) & (v < 0.6)
        fins = (np.abs(u) < 0.7) & (v > 0.3) & (v < 0.75) & (np.abs(u) > 0.2)
        return body | fins
    if shape == "heart":
        x, y = u * 1.2, -v * 1.2 + 0.2
        return (x**2 + y**2 - 1) ** 3 - x**2 * y**3 < 0
    if shape == "bolt":
        edge = 0.45 * np.sin(np.pi * (v + 1) * 1.5)  # a zigzag
        return (np.abs(u - edge) < 0.3) & (np.abs(v) < 0.95)
    raise ValueError(f"unknown glyph shape {shape!r}")


def _pattern(kind: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """A keyword's inner pattern as a brightness factor."""
    if kind == "plain":
        return np.ones_like(u)
    if kind == "rings":
        return 0.75 + 0.25 * np.sign(np.sin(9 * np.hypot(u, v)))
    if kind == "hstripes":
        return 0.75 + 0.25 * np.sign(np.sin(12 * v))
    if kind == "vstripes":
        return 0.75 + 0.25 * np.sign(np.sin(12 * u))
    if kind == "checker":
        return 0.7 + 0.3 * np.sign(np.sin(9 * u) * np.sin(9 * v))
    if kind == "dots":
        return 0.7 + 0.3 * (np.hypot((u * 5) % 2 - 1, (v * 5) % 2 - 1) < 0.5)
    raise ValueError(f"unknown glyph pattern {kind!r}")


@lru_cache(maxsize=16)
def _set_piece(role: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(alpha size x size x 1, colour 3) of a set-up's set piece over the central square."""
    hsv, opacity, shapes = SET_PIECES[role]
    n = size * 4  # drawn 4x larger and averaged: soft edges, so panning it is smooth
    mask = np.zeros((n, n), np.uint8)
    for shape in shapes:
        if shape[0] == "rect":
            x0, y0, x1, y1 = (round(c * n) for c in shape[1:])
            cv2.rectangle(mask, (x0, y0), (x1 - 1, y1 - 1), 255, thickness=-1)
        elif shape[0] == "disc":
            centre = (round(shape[1] * n), round(shape[2] * n))
            cv2.circle(mask, centre, round(shape[3] * n), 255, thickness=-1)
        else:
            points = np.array([[round(x * n), round(y * n)] for x, y in shape[1]], np.int32)
            cv2.fillPoly(mask, [points], 255)
    alpha = mask.reshape(size, 4, size, 4).mean(axis=(1, 3)) / 255 * opacity
    return alpha[..., None].astype(np.float32), _rgb(*hsv)


@lru_cache(maxsize=32)
def _glyph_sprite(keyword: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(alpha H x W x 1, colour H x W x 3) of a keyword's glyph, ``size`` pixels square."""
    glyph = KEYWORDS[keyword]
    # supersample 3x for soft edges
    n = size * 3
    grid = (np.arange(n, dtype=np.float32) + 0.5) / n * 2 - 1
    u, v = np.meshgrid(grid, grid)
    mask = _glyph_mask(glyph.shape, u, v).astype(np.float32)
    alpha = mask.reshape(size, 3, size, 3).mean(axis=(1, 3))[..., None]
    shade = _pattern(glyph.pattern, u, v).reshape(size, 3, size, 3).mean(axis=(1, 3))
    colour = _rgb(*glyph.hsv)[None, None, :] * shade[..., None]
    return alpha, colour.astype(np.float32)


@lru_cache(maxsize=4)
def _noise_bank(height: int, width: int, sigma: float) -> np.ndarray:
    """A few frames of sensor noise shared by every shot (a shot only picks offsets into it).

    Grey noise: adding one value to R, G and B leaves the hue alone, so noise never looks
    like a cut to a hue-based detector, even in dark scenes.
    """
    rng = np.random.default_rng([0, _NOISE, height, width])
    return (rng.normal(0, sigma, size=(16, height, width, 1))).astype(np.float32)


@dataclass(frozen=True)
class _Stage:
    """A shot's still parts, computed once: background canvas (wider than the frame, for the
    pan), actor and glyph geometry."""

    canvas: np.ndarray  # H x (W + pad) x 3 float32
    pad: int
    actors: tuple[tuple[float, float, float, float], ...]  # cx, cy, rx, ry in pixels
    actor_rgb: np.ndarray
    glyph: tuple[np.ndarray, np.ndarray, int, int] | None  # alpha, colour, top, left


@lru_cache(maxsize=96)
def _stage(shot: Shot, config: SynthConfig) -> _Stage:
    h, w = config.height, config.width
    genre, role = GENRES[shot.genre], ROLES[shot.role]
    rng = np.random.default_rng(shot.seed)
    pad = int(math.ceil(abs(shot.pan) * shot.frames)) + 2
    y, x = np.mgrid[0:h, 0 : w + pad].astype(np.float32)
    first, second = (genre.hues[1], genre.hues[0]) if role.swap else genre.hues
    val = genre.val * role.gain * shot.gain
    # swapped set-ups are also paler: a cut then changes hue, saturation and brightness
    sat = genre.sat * (0.55 if role.swap else 1.0)
    # Built in HSV, not mixed in RGB: a mix of two opposite hues in RGB passes through grey,
    # whose hue the codec scrambles at every keyframe; mixing hues keeps saturation up.
    horizon = role.horizon * h + role.tilt * (x - (w + pad) / 2)
    below = np.clip((y - horizon) / 1.5 + 0.5, 0, 1)  # ground: paler and darker
    tex = _texture(genre.texture, x, y, shot.texture_scale * role.zoom, rng) * genre.strength
    # the sky in the genre's colours, the floor in the set-up's own; the texture mixes the
    # genre's accent colour into both
    g_hue, g_sat, g_val = role.ground
    base_hue = (first + shot.hue_jitter) * (1 - below) + g_hue * below
    hue = base_hue + (second + shot.hue_jitter - base_hue) * tex
    base_sat = sat * (1 - below) + g_sat * below
    base_val = val * (1 - below) + g_val * shot.gain * below
    sat_map = base_sat * (1 - tex) + genre.sat * tex
    val_map = base_val * (1 - tex) + min(255.0, val * 1.15) * tex
    if genre.texture == "streaks":  # horror: vignette
        r2 = ((x - (w + pad) / 2) / w) ** 2 + ((y - h / 2) / h) ** 2
        val_map = val_map * np.clip(1.1 - 1.2 * r2, 0.6, 1)
    hsv = np.dstack([(hue % 180) * 2, np.clip(sat_map / 255, 0, 1), np.clip(val_map / 255, 0, 1)])
    canvas = cv2.cvtColor(hsv.astype(np.float32), cv2.COLOR_HSV2RGB) * 255
    # the set piece, where the central square is at the first frame; it pans with the set
    alpha, colour = _set_piece(shot.role, h)
    left = (w - h) // 2 + (0 if shot.pan >= 0 else pad - 2)
    region = canvas[:, left : left + h]
    canvas[:, left : left + h] = region * (1 - alpha) + colour * alpha
    left_edge = (w - h) / 2  # of the central square
    actors = tuple((left_edge + ax * h, ay * h, ar * h, ar * h * 1.5) for ax, ay, ar in role.actors)
    actor_rgb = _rgb(shot.actor_hue, 200, min(255.0, 230 * max(role.gain, 0.7) * shot.gain))
    glyph = None
    if shot.keyword is not None:
        gx, gy, gs = role.glyph
        size = min(h, max(8, int(round(gs * h * config.glyph_scale))))
        alpha, colour = _glyph_sprite(shot.keyword, size)
        colour = colour * min(1.0, max(shot.gain, 0.6))
        top = int(np.clip(gy * h - size / 2, 0, h - size))
        left = int(np.clip(left_edge + gx * h - size / 2, 0, w - size))
        glyph = (alpha, colour, top, left)
    return _Stage(canvas.astype(np.float32), pad, actors, actor_rgb, glyph)


def _frame(shot: Shot, t: int, config: SynthConfig) -> np.ndarray:
    """Frame ``t`` of a shot, RGB uint8: panned background, moving actor, drifting glyph, noise."""
    stage = _stage(shot, config)
    h, w = config.height, config.width
    start = shot.pan * t if shot.pan >= 0 else stage.pad - 2 + shot.pan * t
    i = int(math.floor(start))
    frac = start - i
    img = stage.canvas[:, i : i + w] * (1 - frac) + stage.canvas[:, i + 1 : i + 1 + w] * frac
    # actors: a body ellipse and a head each, moving sideways
    blobs = []
    for cx, cy, rx, ry in stage.actors:
        cx += shot.motion * t
        blobs += [(cx, cy, rx, ry), (cx, cy - ry - rx * 0.55, rx * 0.6, rx * 0.6)]
    for ex, ey, erx, ery in blobs:
        y0, y1 = max(0, int(ey - ery - 2)), min(h, int(ey + ery + 3))
        x0, x1 = max(0, int(ex - erx - 2)), min(w, int(ex + erx + 3))
        if y0 >= y1 or x0 >= x1:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        d = np.sqrt(((xx - ex) / erx) ** 2 + ((yy - ey) / ery) ** 2)
        a = np.clip((1 - d) * min(erx, ery), 0, 1)[..., None]
        img[y0:y1, x0:x1] = img[y0:y1, x0:x1] * (1 - a) + stage.actor_rgb * a
    if stage.glyph is not None:
        alpha, colour, top, left = stage.glyph
        gh, gw = alpha.shape[:2]
        left = int(np.clip(left + round(0.15 * t * np.sign(shot.motion or 1)), 0, w - gw))
        region = img[top : top + gh, left : left + gw]
        img[top : top + gh, left : left + gw] = region * (1 - alpha) + colour * alpha
    if config.noise > 0:
        img = img + _noise_bank(h, w, config.noise)[(shot.seed + t) % 16]
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


def render_shots(
    shots: Sequence[Shot], config: SynthConfig = SynthConfig()
) -> Iterator[np.ndarray]:
    """All frames of a sequence of shots, in order (RGB uint8, H x W x 3)."""
    for shot in shots:
        for t in range(shot.frames):
            yield _frame(shot, t, config)


def cut_score(before: np.ndarray, after: np.ndarray) -> float:
    """scenedetect ContentDetector's score between two RGB frames: mean |HSV difference|."""
    a = cv2.cvtColor(before, cv2.COLOR_RGB2HSV).astype(np.int32)
    b = cv2.cvtColor(after, cv2.COLOR_RGB2HSV).astype(np.int32)
    return float(np.abs(a - b).mean())


# ----------------------------------------------------------------------------- QA and words


def tokenize(text: str) -> list[str]:
    """Lower-case word tokens, the rule ``vectors.txt`` is made for."""
    return re.findall(r"[a-z0-9]+", text.lower())


def _questions_for(
    title: Title, clips: list[tuple[str, Shot]], rng: np.random.Generator
) -> list[dict[str, object]]:
    """A genre question and an object question per clip (name, one of its shots); wrong
    answers are never the film's own tags, so exactly one answer is right."""
    out: list[dict[str, object]] = []
    for name, shot in clips:
        other_genres = [g for g in GENRES if g not in title.genres]
        other_keywords = [k for k in KEYWORDS if k not in title.keywords]
        for kind in ("genre", "object"):
            if kind == "genre":
                right, pool, templates = shot.genre, other_genres, GENRE_QUESTIONS
                text = GENRE_ANSWERS
            else:
                assert shot.keyword is not None
                right, pool, templates = shot.keyword, other_keywords, OBJECT_QUESTIONS
                text = {k: g.answer for k, g in KEYWORDS.items()}
            wrong = [str(x) for x in rng.choice(pool, size=4, replace=False)]
            options = [right, *wrong]
            order = rng.permutation(5)
            out.append(
                {
                    "question": str(templates[int(rng.integers(len(templates)))]),
                    "answers": [text[options[int(i)]] for i in order],
                    "correct_index": int(np.flatnonzero(order == 0)[0]),
                    "imdb_key": title.movie_id,
                    "video_clips": [name],
                    "split": title.split,
                }
            )
    return out


def _pick_clips(movie: list[Shot], count: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """Clips worth asking about: 2-3 consecutive shots of one scene that shows a keyword.

    Returns [start, end) shot ranges, at most one per scene, in film order.
    """
    scenes: dict[int, list[int]] = {}
    for i, shot in enumerate(movie):
        if shot.keyword is not None:
            scenes.setdefault(shot.scene, []).append(i)
    good = sorted(s for s, idx in scenes.items() if len(idx) >= 2)
    if len(good) > count:
        good = sorted(int(s) for s in rng.choice(good, size=count, replace=False))
    ranges = []
    for scene in good:
        idx = scenes[scene]
        length = min(len(idx), int(rng.integers(2, 4)))
        first = idx[int(rng.integers(0, len(idx) - length + 1))]
        ranges.append((first, first + length))
    return ranges


def word_vectors(words: Sequence[str], seed: int) -> dict[str, np.ndarray]:
    """Seeded 300-d vectors; genre words share one direction and object words another."""
    rng = _rng(seed, _VECTORS)
    genre_dir, object_dir = rng.normal(size=(2, VECTOR_DIM))
    genre_words = {t for a in GENRE_ANSWERS.values() for t in tokenize(a)}
    object_words = {t for g in KEYWORDS.values() for t in tokenize(g.answer)} - {"a", "an", "some"}
    vectors = {}
    for word in sorted(set(words)):
        vec = rng.normal(size=VECTOR_DIM)
        if word in genre_words:
            vec = vec + 0.7 * genre_dir
        elif word in object_words:
            vec = vec + 0.7 * object_dir
        vectors[word] = (vec / np.linalg.norm(vec)).astype(np.float32)
    return vectors


# ----------------------------------------------------------------------------- writing


def _write_manifest(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(CSV_COLUMNS), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def _row(video: str, vid: str, title: Title) -> dict[str, str]:
    return {
        "video": video,
        "id": vid,
        "genres": "|".join(title.genres),
        "keywords": "|".join(title.keywords),
        "split": title.split,
    }


def _write_one(out: Path, path: str, shots: list[Shot], config: SynthConfig) -> int:
    return write_video(out / path, render_shots(shots, config), fps=config.fps, crf=config.crf)


def _write_videos(
    out: Path,
    jobs: list[tuple[str, list[Shot]]],
    config: SynthConfig,
    *,
    workers: int,
    progress: bool,
) -> list[int]:
    """Render and encode every video (encoding is most of the time); frame counts in order."""
    bar = tqdm(total=len(jobs), desc="synth videos", unit="video", disable=not progress)
    counts = [0] * len(jobs)
    with bar:
        if workers == 1:
            for i, (path, shots) in enumerate(jobs):
                counts[i] = _write_one(out, path, shots, config)
                bar.update()
            return counts
        # spawn, not fork: the parent may hold torch's or OpenCV's threads
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            futures = {
                pool.submit(_write_one, out, path, shots, config): i
                for i, (path, shots) in enumerate(jobs)
            }
            for future in as_completed(futures):
                counts[futures[future]] = future.result()
                bar.update()
    return counts


def make_synthetic(
    out: str | Path,
    *,
    movies: int = DEFAULT_MOVIES,
    trailers: int = DEFAULT_TRAILERS,
    seed: int = 0,
    config: SynthConfig = SynthConfig(),
    workers: int = 1,
    progress: bool = True,
) -> SynthSummary:
    """Write the synthetic data set into ``out``; see the module docstring for what it holds.

    Film ``i`` has movie ``movie_i`` (for ``i < movies``) and trailer ``trailer_i`` (for
    ``i < trailers``), so a trailer with a movie shares its tags and split. ``workers``
    processes render and encode videos in parallel; the output does not depend on it.
    """
    if movies < 0 or trailers < 0 or movies + trailers == 0:
        raise ValueError(f"ask for at least one movie or trailer (got {movies} and {trailers})")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if config.width % 2 or config.height % 2:
        raise ValueError(f"H.264 needs even sizes, got {config.width}x{config.height}")
    out = Path(out)
    for sub in ("movies", "trailers", "clips"):
        (out / sub).mkdir(parents=True, exist_ok=True)

    count = max(movies, trailers)
    # movies get a balanced split among themselves, trailer-only films among themselves
    splits = assign_splits(movies, _rng(seed, _SPLIT, 0)) + assign_splits(
        count - movies, _rng(seed, _SPLIT, 1)
    )
    titles = [replace(plan_title(seed, i), split=splits[i]) for i in range(count)]

    jobs: list[tuple[str, str, list[Shot]]] = []  # (relative path, id, shots)
    movie_rows, trailer_rows, clip_rows = [], [], []
    questions: list[dict[str, object]] = []
    for title in titles[:movies]:
        shots = plan_movie(title, seed, config)
        path = f"movies/{title.movie_id}.mp4"
        jobs.append((path, title.movie_id, shots))
        movie_rows.append(_row(path, title.movie_id, title))
        qa_rng = _rng(seed, _QA, title.index)
        starts = np.cumsum([0] + [s.frames for s in shots])
        clips: list[tuple[str, Shot]] = []
        for lo, hi in _pick_clips(shots, config.clips_per_movie, qa_rng):
            # MovieQA's clip names carry the start and end frame in the movie
            name = f"{title.movie_id}.sf-{int(starts[lo]):06d}.ef-{int(starts[hi]):06d}.video.mp4"
            clip_id = safe_id(Path(name).stem)
            jobs.append((f"clips/{name}", clip_id, shots[lo:hi]))
            clip_rows.append(_row(f"clips/{name}", clip_id, title))
            clips.append((name, shots[lo]))
        questions += _questions_for(title, clips, qa_rng)
    for title in titles[:trailers]:
        path = f"trailers/{title.trailer_id}.mp4"
        jobs.append((path, title.trailer_id, plan_trailer(title, seed, config)))
        trailer_rows.append(_row(path, title.trailer_id, title))

    cuts: dict[str, object] = {
        "_meaning": "per video id: its file, frame count, and hard cuts (0-based index of the "
        "first frame of each new shot, in decoded order)"
    }
    counts = _write_videos(out, [(path, shots) for path, _, shots in jobs], config,
                           workers=workers, progress=progress)
    for (path, vid, shots), n in zip(jobs, counts, strict=True):
        cuts[vid] = {"video": path, "frames": n, "hard_cuts": cut_frames(shots)}

    per_split: dict[str, int] = {}
    for q in questions:
        split = str(q["split"])
        q["qid"] = f"{split}:{per_split.get(split, 0)}"
        per_split[split] = per_split.get(split, 0) + 1
    keyed = [{"qid": q.pop("qid"), **q} for q in questions]

    words = set()
    for q in keyed:
        words.update(tokenize(str(q["question"])))
        for answer in q["answers"]:  # type: ignore[union-attr]
            words.update(tokenize(str(answer)))
    words.update(GENRES)
    words.update(KEYWORDS)
    vectors = word_vectors(sorted(words), seed)

    _write_manifest(out / "movies.csv", movie_rows)
    _write_manifest(out / "trailers.csv", trailer_rows)
    _write_manifest(out / "clips.csv", clip_rows)
    # one video per line, like ../shared/data/cuts.json
    lines = [f" {json.dumps(k)}: {json.dumps(v)}" for k, v in cuts.items()]
    (out / "cuts.json").write_text("{\n" + ",\n".join(lines) + "\n}\n", encoding="utf-8")
    (out / "qa.json").write_text(json.dumps(keyed, indent=1) + "\n", encoding="utf-8")
    with (out / "vectors.txt").open("w", encoding="utf-8") as handle:
        handle.write(f"{len(vectors)} {VECTOR_DIM}\n")
        for word, vec in vectors.items():
            handle.write(word + " " + " ".join(f"{x:.5f}" for x in vec) + "\n")

    return SynthSummary(
        out=out,
        movies=len(movie_rows),
        trailers=len(trailer_rows),
        clips=len(clip_rows),
        questions=len(keyed),
        words=len(vectors),
        frames=sum(counts),
        shots=sum(len(j[2]) for j in jobs),
        files=("movies.csv", "trailers.csv", "clips.csv", "cuts.json", "qa.json", "vectors.txt"),
    )
