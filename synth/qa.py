"""The MovieQA-style set: questions about clips, and word vectors for every word."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from .planning import VECTORS_STREAM, Shot, Title, rng_for
from .tables import GENRE_ANSWERS, GENRE_QUESTIONS, GENRES, KEYWORDS, OBJECT_QUESTIONS, VECTOR_DIM


def tokenize(text: str) -> list[str]:
    """Lower-case word tokens, the rule ``vectors.txt`` is made for."""
    return re.findall(r"[a-z0-9]+", text.lower())


def questions_for(
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


def pick_clips(movie: list[Shot], count: int, rng: np.random.Generator) -> list[tuple[int, int]]:
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
    rng = rng_for(seed, VECTORS_STREAM)
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
