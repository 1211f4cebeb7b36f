"""What the synthetic films look like: genres, keywords, camera set-ups, sizes.

Pure tables (no NumPy): the planner and the renderer read them; the command line reads the
defaults without paying for the renderer's imports.
"""

from __future__ import annotations

from dataclasses import dataclass


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
    "talk_a": Role(
        False, 1.00, (20, 150, 115), 0.62, actors=((0.30, 0.56, 0.17),), glyph=(0.75, 0.36, 0.36)
    ),
    "talk_b": Role(
        True, 0.62, (100, 110, 225), 0.56, actors=((0.72, 0.56, 0.17),), glyph=(0.25, 0.38, 0.36)
    ),
    "high": Role(
        False, 0.85, (60, 150, 110), 0.55, 0.25, 0.7, ((0.50, 0.72, 0.11),), (0.78, 0.70, 0.30)
    ),
    "low": Role(
        True, 1.00, (30, 110, 230), 0.70, -0.25, 1.4, ((0.50, 0.45, 0.22),), (0.22, 0.22, 0.30)
    ),
    "two": Role(
        False,
        0.70,
        (140, 140, 115),
        0.60,
        0.0,
        0.8,
        ((0.24, 0.60, 0.12), (0.76, 0.60, 0.12)),
        (0.50, 0.28, 0.30),
    ),
    "single": Role(
        True, 0.85, (75, 110, 220), 0.70, 0.0, 1.8, ((0.42, 0.64, 0.30),), (0.84, 0.28, 0.28)
    ),
    "establishing": Role(
        False, 1.00, (90, 150, 110), 0.70, 0.0, 0.6, ((0.50, 0.80, 0.05),), (0.78, 0.35, 0.28)
    ),
    "approach": Role(
        True, 0.82, (125, 110, 225), 0.55, 0.0, 0.9, ((0.32, 0.62, 0.11),), (0.72, 0.36, 0.34)
    ),
    "closeup": Role(
        False, 0.72, (160, 140, 120), 0.70, 0.0, 1.6, ((0.45, 0.64, 0.32),), (0.84, 0.22, 0.26)
    ),
    "clash": Role(
        True, 1.00, (12, 120, 225), 0.58, 0.0, 1.2, ((0.22, 0.55, 0.16),), (0.66, 0.50, 0.46)
    ),
    "aftermath": Role(
        False, 0.45, (115, 150, 100), 0.60, 0.15, 1.0, ((0.72, 0.68, 0.12),), (0.30, 0.45, 0.34)
    ),
}
DIALOGUE = (("talk_a", "talk_b"), ("high", "low"), ("two", "single"))
STORY = ("establishing", "approach", "closeup", "clash", "aftermath")
CAST_HUES = (8.0, 40.0, 75.0, 100.0, 128.0, 150.0)  # costume colours, picked per film

# The set each camera set-up sees, the same in every film: (HSV colour, opacity, shapes in
# the central square's fractions). Layout and brightness alone did not make a set-up
# recognisable across films to a randomly initialised encoder; a fixed set piece does.
_RAIN = tuple(
    ("poly", ((x, 0.0), (x + 0.05, 0.0), (x - 0.15, 1.0), (x - 0.2, 1.0)))
    for x in (0.15, 0.4, 0.65, 0.9, 1.15)
)
SET_PIECES: dict[str, tuple[tuple[float, float, float], float, tuple[tuple, ...]]] = {
    "talk_a": ((24, 110, 250), 1.0, (("rect", 0.04, 0.3, 0.12, 1.0), ("disc", 0.08, 0.24, 0.12))),
    "talk_b": (
        (100, 90, 245),
        1.0,
        tuple(("rect", x, y, x + 0.2, y + 0.2) for x in (0.54, 0.77) for y in (0.04, 0.27)),
    ),
    "high": (
        (18, 160, 200),
        1.0,
        tuple(
            ("rect", i / 8, 0.8 + 0.1 * (i % 2), (i + 1) / 8, 0.9 + 0.1 * (i % 2)) for i in range(8)
        ),
    ),
    "low": ((15, 140, 95), 1.0, tuple(("rect", 0.0, y, 1.0, y + 0.1) for y in (0.0, 0.2))),
    "two": (
        (12, 160, 130),
        1.0,
        (
            ("rect", 0.06, 0.72, 0.94, 0.84),
            ("rect", 0.12, 0.84, 0.18, 1.0),
            ("rect", 0.82, 0.84, 0.88, 1.0),
        ),
    ),
    "single": (
        (120, 120, 200),
        1.0,
        (
            ("rect", 0.0, 0.04, 0.05, 0.96),
            ("rect", 0.2, 0.04, 0.25, 0.96),
            *(("rect", 0.0, 0.04 + 0.23 * i, 0.25, 0.1 + 0.23 * i) for i in range(5)),
        ),
    ),
    "establishing": ((28, 200, 255), 1.0, (("disc", 0.8, 0.18, 0.15),)),
    "approach": (
        (110, 60, 110),
        1.0,
        (("poly", ((0.42, 0.55), (0.58, 0.55), (0.95, 1.0), (0.05, 1.0))),),
    ),
    "closeup": (
        (150, 160, 160),
        1.0,
        tuple(("rect", 0.76 + 0.08 * i, 0.0, 0.81 + 0.08 * i, 1.0) for i in range(3)),
    ),
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

# enough held-out material for tables that mean something: >= 500 test questions per
# next-shot setting (5 test movies), about 32 held-out trailers for the tag table (26 at
# 128 trailers moved recall@3 in steps of 0.04) and about 140 test QA questions
DEFAULT_MOVIES, DEFAULT_TRAILERS = 24, 160
MIN_CUT_SCORE = 40.0  # scenedetect's ContentDetector fires at 27; keep a margin for H.264
VECTOR_DIM = 300


@dataclass(frozen=True)
class SynthConfig:
    """Sizes of what is generated; the defaults make the whole set in well under a minute."""

    width: int = 160  # even, for H.264
    height: int = 96
    fps: int = 24
    # shots per movie, inclusive range: long films, since next-shot training contexts are
    # windows of shots (the paper's movies have ~1,300 shots each)
    movie_shots: tuple[int, int] = (110, 140)
    trailer_shots: tuple[int, int] = (10, 16)
    trailer_frames: tuple[int, int] = (4, 10)  # frames per trailer shot
    short_rate: float = 0.08  # share of very short (4-6 frame) shots in movies
    clips_per_movie: int = 14  # QA clips cut from each movie (at most one per scene)
    keyword_rate: float = 0.8  # share of scenes that show one of the film's keywords
    glyph_scale: float = 1.8  # keyword glyph size relative to its set-up's default
    noise: float = 1.5  # sensor-noise standard deviation, in 8-bit levels
    crf: int = 20
