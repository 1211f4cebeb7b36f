"""The whole chain on synthetic data: synth -> extract -> questions -> train -> eval.

Nothing here is planted in feature space: the structure is in the pixels (shot /
reverse-shot alternation, story order, genre palettes, keyword glyphs), the features come
from the extractor's random encoder, and the trainers must find it from the store.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from storyline.deploy.cli import main

SIZE = "64"  # the random encoder's input size: enough for palettes and layouts


def run(capsys: pytest.CaptureFixture, *argv: str) -> dict:
    """Run a storyline command; its result is the JSON object on stdout's last line."""
    capsys.readouterr()
    code = main(list(argv))
    out = capsys.readouterr().out.strip()
    assert code == 0, out
    return json.loads(out.splitlines()[-1])


def extract(store: Path, manifest: Path) -> None:
    assert (
        main(
            [
                "extract",
                "--store",
                str(store),
                "--manifest",
                str(manifest),
                "--encoder",
                "random",
                "--input-size",
                SIZE,
                "--no-ray",
                "--quiet",
            ]
        )
        == 0
    )


def test_chain_runs_end_to_end_on_a_few_movies(tmp_path: Path, capsys) -> None:
    """Every command of the chain, connected, on a tiny set (accuracy is the slow test's)."""
    data, store = tmp_path / "synth", tmp_path / "s.zarr"
    assert (
        main(
            [
                "synth",
                "--out",
                str(data),
                "--movies",
                "4",
                "--trailers",
                "0",
                "--clips-per-movie",
                "1",
                "--quiet",
            ]
        )
        == 0
    )
    extract(store, data / "movies.csv")
    extract(store, data / "clips.csv")
    common = ["--store", str(store), "--encoder", "random", "--quiet", "--threads", "1"]
    sets = run(
        capsys,
        "questions",
        "--store",
        str(store),
        "--manifest",
        str(data / "movies.csv"),
        "--context",
        "4",
        "--quiet",
    )["sets"]
    assert sum(sets["in-movie-m4-n32-s0"]["movies"].values()) == 4
    ckpt = str(tmp_path / "lstm.pt")
    run(capsys, "train", "temporal", *common, "--context", "4", "--steps", "5", "--out", ckpt)
    result = run(
        capsys, "eval", "temporal", *common, "--checkpoint", ckpt, "--setting", "cross-movie"
    )
    assert result["questions"] > 0 and result["chance"] == 1 / 32
    tags = run(
        capsys,
        "train",
        "tags",
        *common,
        "--manifest",
        str(data / "movies.csv"),
        "--steps",
        "5",
        "--out",
        str(tmp_path / "tags.pt"),
    )
    assert tags["genres"]["recall@3"] is not None
    qa = run(
        capsys,
        "train",
        "qa",
        *common,
        "--qa",
        str(data / "qa.json"),
        "--word-vectors",
        str(data / "vectors.txt"),
        "--steps",
        "5",
        "--out",
        str(tmp_path / "qa.pt"),
    )
    assert qa["clips_missing"] == 0 and qa["questions"] > 0


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("seed", [7, 8])
def test_demo_shows_the_papers_findings(tmp_path: Path, seed: int) -> None:
    """The default demo (about 10 minutes on 2 cores): every target of the findings issue,
    with the report's own numbers, at two of the seeds measured with the final recipe (7, 8
    and 9 met them all; the recipe was chosen on 1-6). Nothing here picks a seed, a test
    question or a checkpoint: the demo trains on train and scores the test split once."""
    assert main(["demo", "--out", str(tmp_path), "--seed", str(seed), "--quiet"]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    print(json.dumps({k: report[k] for k in ("temporal", "qa")}))
    for encoder in ("random", "trailers"):
        within, across = (report["temporal"][encoder][s] for s in ("in-movie", "cross-movie"))
        assert min(within["questions"], across["questions"]) >= 500
        assert within["lstm"] >= 2 * within["baseline"], (encoder, within)
        assert across["lstm"] > across["baseline"], (encoder, across)
        assert across["lstm"] > within["lstm"] and across["baseline"] > within["baseline"]
    random_tags = report["tags"]["random"]["average"]
    trained_tags = report["tags"]["trailers"]["average"]
    assert min(random_tags["videos"], trained_tags["videos"]) >= 24
    for metric in ("recall@3", "map"):
        gain = trained_tags["genres"][metric] - random_tags["genres"][metric]
        assert gain >= 0.05, (metric, gain)
    assert trained_tags["keywords"]["map"] > report["chance"]["keywords_map"]
    assert report["qa"]["trailers"]["accuracy"] >= report["qa"]["random"]["accuracy"]
