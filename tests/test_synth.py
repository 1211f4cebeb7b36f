"""`storyline synth`: the synthetic set the trainers prove themselves on must be what it says.

Known cuts that a detector finds, manifests the extractor reads, QA in MovieQA's format
with a vector for every word, and the same bytes for the same seed.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import cv2
import decord
import numpy as np
import pytest
from scenedetect.common import FrameTimecode
from scenedetect.detectors import ContentDetector

from storyline.deploy.cli import main
from storyline.extractor.manifest import read_manifest, safe_id
from storyline.synth import (
    DIALOGUE,
    GENRES,
    KEYWORDS,
    ROLES,
    STORY,
    SynthConfig,
    make_synthetic,
    plan_movie,
    plan_title,
    plan_trailer,
    render_shots,
    tokenize,
)

TEXT_FILES = ("movies.csv", "trailers.csv", "clips.csv", "cuts.json", "qa.json", "vectors.txt")
# a small film for the byte-for-byte checks
TINY = SynthConfig(movie_shots=(6, 8), trailer_shots=(4, 5), clips_per_movie=1)


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    # 4 trailers for 3 movies: the fourth film has a trailer only
    summary = make_synthetic(out, movies=3, trailers=4, seed=0, progress=False)
    assert (summary.movies, summary.trailers) == (3, 4)
    assert summary.clips > 0 and summary.questions == 2 * summary.clips
    return out


def _frames(path: Path) -> np.ndarray:
    reader = decord.VideoReader(str(path))
    return reader.get_batch(list(range(len(reader)))).asnumpy()


def test_manifests_parse_with_unique_ids_and_shared_tags(synth: Path) -> None:
    movies = read_manifest(str(synth / "movies.csv"))
    trailers = read_manifest(str(synth / "trailers.csv"))
    clips = read_manifest(str(synth / "clips.csv"))
    ids = [e.id for e in movies + trailers + clips]
    assert len(ids) == len(set(ids)) == 3 + 4 + len(clips)
    for entry in movies + trailers + clips:
        assert Path(entry.video).is_file()
        assert entry.split in {"train", "val", "test"}
        assert 1 <= len(entry.genres) <= 2 and set(entry.genres) <= set(GENRES)
        assert 2 <= len(entry.keywords) <= 3 and set(entry.keywords) <= set(KEYWORDS)
    assert sorted(e.split for e in movies) == ["test", "train", "val"]
    for movie, trailer in zip(movies, trailers, strict=False):  # a trailer is its film's
        assert (movie.genres, movie.keywords, movie.split) == (
            trailer.genres,
            trailer.keywords,
            trailer.split,
        )
    for clip in clips:  # the QA trainer's rule: id = safe_id(stem of the clip's name)
        assert clip.id == safe_id(Path(clip.video).stem)


def test_every_video_decodes_to_the_frame_count_in_cuts(synth: Path) -> None:
    cuts = json.loads((synth / "cuts.json").read_text())
    videos = {k: v for k, v in cuts.items() if not k.startswith("_")}
    assert len(videos) == 3 + 4 + len(read_manifest(str(synth / "clips.csv")))
    shot_lengths = []
    for info in videos.values():
        reader = decord.VideoReader(str(synth / info["video"]))
        assert len(reader) == info["frames"]
        bounds = [0, *info["hard_cuts"], info["frames"]]
        shot_lengths += list(np.diff(bounds))
    assert min(shot_lengths) >= 4 and max(shot_lengths) <= 40
    assert any(n <= 6 for n in shot_lengths)  # very short shots are there


def test_content_detector_finds_the_cuts_of_a_movie(synth: Path) -> None:
    info = json.loads((synth / "cuts.json").read_text())["movie_0000"]
    frames = _frames(synth / info["video"])
    detector = ContentDetector(min_scene_len=3)
    found: list[int] = []
    for i, frame in enumerate(frames):
        bgr = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
        found += [c.frame_num for c in detector.process_frame(FrameTimecode(i, 24.0), bgr)]
    truth = info["hard_cuts"]
    assert len(truth) >= 27
    assert len(found) == len(truth)
    assert all(abs(a - b) <= 1 for a, b in zip(found, truth, strict=True))


def test_qa_is_movieqa_shaped_and_every_token_has_a_vector(synth: Path) -> None:
    qa = json.loads((synth / "qa.json").read_text())
    clip_ids = {e.id for e in read_manifest(str(synth / "clips.csv"))}
    splits = {e.id: e.split for e in read_manifest(str(synth / "movies.csv"))}
    assert qa and len({q["qid"] for q in qa}) == len(qa)
    lines = (synth / "vectors.txt").read_text().splitlines()
    count, dim = map(int, lines[0].split())
    vectors = {line.split(" ")[0]: line.split(" ")[1:] for line in lines[1:]}
    assert (count, dim) == (len(lines) - 1, 300) and len(vectors) == count
    assert all(len(v) == 300 for v in vectors.values())
    for q in qa:
        assert set(q) == {
            "qid",
            "question",
            "answers",
            "correct_index",
            "imdb_key",
            "video_clips",
            "split",
        }
        assert len(q["answers"]) == 5 and len(set(q["answers"])) == 5
        assert 0 <= q["correct_index"] < 5
        assert q["split"] == splits[q["imdb_key"]] and q["qid"].startswith(q["split"] + ":")
        assert all(safe_id(Path(c).stem) in clip_ids for c in q["video_clips"])
        for text in [q["question"], *q["answers"]]:
            assert tokenize(text) and all(t in vectors for t in tokenize(text))
    # the right answer is not always in one place
    assert len(Counter(q["correct_index"] for q in qa)) > 1


def test_same_seed_same_bytes_and_frames_other_seed_differs(tmp_path: Path) -> None:
    runs = {}
    # "b" in two processes: the output does not depend on how many write it
    for name, seed, workers in (("a", 7, 1), ("b", 7, 2), ("c", 8, 1)):
        make_synthetic(
            tmp_path / name,
            movies=1,
            trailers=1,
            seed=seed,
            config=TINY,
            workers=workers,
            progress=False,
        )
        runs[name] = {f: (tmp_path / name / f).read_bytes() for f in TEXT_FILES}
    assert runs["a"] == runs["b"]
    assert runs["a"]["cuts.json"] != runs["c"]["cuts.json"]
    assert runs["a"]["qa.json"] != runs["c"]["qa.json"]
    # the frames handed to the encoder are identical ...
    title = plan_title(7, 0)
    first = np.stack(list(render_shots(plan_movie(title, 7, TINY), TINY)))
    again = np.stack(list(render_shots(plan_movie(title, 7, TINY), TINY)))
    assert np.array_equal(first, again)
    # ... and so are the decoded ones, up to x264: one encode of the same frames to the
    # next (another process, CPU load) can move a shot's pixels by a level or two
    for video in ("movies/movie_0000.mp4", "trailers/trailer_0000.mp4"):
        a, b = _frames(tmp_path / "a" / video), _frames(tmp_path / "b" / video)
        assert a.shape == b.shape
        assert np.abs(a.astype(np.int16) - b).mean() < 2.0


def test_planted_order_is_shared_by_all_films() -> None:
    """Dialogue scenes alternate two set-ups and story scenes follow one order, in any film."""
    transitions: Counter[tuple[str, str]] = Counter()
    for index in range(6):
        title = plan_title(3, index)
        shots = plan_movie(title, 3)
        assert {s.genre for s in shots} <= set(title.genres)
        assert {s.keyword for s in shots} - {None} <= set(title.keywords)
        for before, after in zip(shots, shots[1:], strict=False):
            assert ROLES[before.role].swap != ROLES[after.role].swap  # every cut is strong
            if before.scene == after.scene:
                transitions[before.role, after.role] += 1
        trailer = plan_trailer(title, 3)
        assert {(s.genre, s.keyword, s.role) for s in trailer} <= {
            (s.genre, s.keyword, s.role) for s in shots
        }
    assert any(transitions[pair] > 0 and transitions[pair[::-1]] > 0 for pair in DIALOGUE)
    for step in zip(STORY, STORY[1:], strict=False):
        assert transitions[step] > 0


def test_cli_writes_the_set_and_rejects_nothing_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(["synth", "--out", str(tmp_path / "s"), "--movies", "0", "--trailers", "1", "--quiet"])
        == 0
    )
    assert "wrote 0 movies, 1 trailers" in capsys.readouterr().out
    assert all((tmp_path / "s" / f).is_file() for f in TEXT_FILES)
    assert json.loads((tmp_path / "s" / "qa.json").read_text()) == []  # no movie, no clips
    assert main(["synth", "--out", str(tmp_path / "t"), "--movies", "0", "--trailers", "0"]) == 2
    assert "at least one" in capsys.readouterr().err
