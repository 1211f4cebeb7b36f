"""Writing the data set: videos (in parallel processes), manifests, cuts, QA and vectors."""

from __future__ import annotations

import csv
import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..extractor.manifest import CSV_COLUMNS, safe_id
from .planning import (
    QA_STREAM,
    SPLIT_STREAM,
    Shot,
    Title,
    assign_splits,
    cut_frames,
    plan_movie,
    plan_title,
    plan_trailer,
    rng_for,
)
from .qa import pick_clips, questions_for, tokenize, word_vectors
from .rendering import render_shots
from .tables import DEFAULT_MOVIES, DEFAULT_TRAILERS, GENRES, KEYWORDS, VECTOR_DIM, SynthConfig
from .video_writer import write_video


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
    splits = assign_splits(movies, rng_for(seed, SPLIT_STREAM, 0)) + assign_splits(
        count - movies, rng_for(seed, SPLIT_STREAM, 1)
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
        qa_rng = rng_for(seed, QA_STREAM, title.index)
        starts = np.cumsum([0] + [s.frames for s in shots])
        clips: list[tuple[str, Shot]] = []
        for lo, hi in pick_clips(shots, config.clips_per_movie, qa_rng):
            # MovieQA's clip names carry the start and end frame in the movie
            name = f"{title.movie_id}.sf-{int(starts[lo]):06d}.ef-{int(starts[hi]):06d}.video.mp4"
            clip_id = safe_id(Path(name).stem)
            jobs.append((f"clips/{name}", clip_id, shots[lo:hi]))
            clip_rows.append(_row(f"clips/{name}", clip_id, title))
            clips.append((name, shots[lo]))
        questions += questions_for(title, clips, qa_rng)
    for title in titles[:trailers]:
        path = f"trailers/{title.trailer_id}.mp4"
        jobs.append((path, title.trailer_id, plan_trailer(title, seed, config)))
        trailer_rows.append(_row(path, title.trailer_id, title))

    cuts: dict[str, object] = {
        "_meaning": "per video id: its file, frame count, and hard cuts (0-based index of the "
        "first frame of each new shot, in decoded order)"
    }
    counts = _write_videos(
        out, [(path, shots) for path, _, shots in jobs], config, workers=workers, progress=progress
    )
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
