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

from .files import SynthSummary, make_synthetic
from .planning import Shot, Title, cut_frames, plan_movie, plan_title, plan_trailer
from .qa import tokenize
from .rendering import cut_score, render_shots
from .tables import (
    DEFAULT_MOVIES,
    DEFAULT_TRAILERS,
    DIALOGUE,
    GENRES,
    KEYWORDS,
    ROLES,
    STORY,
    SynthConfig,
)

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
