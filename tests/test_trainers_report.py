"""`storyline report`: Tables 2 and 5 as Markdown (a block of rows per encoder) and every
number, with its interval, in report.json."""

from __future__ import annotations

import json
from pathlib import Path

from storyline.deploy.cli import main
from storyline.store import FeatureStore
from storyline.trainers.planted import PlantedConfig, write_planted_store


def test_report_has_both_tables_for_every_encoder(tmp_path: Path, capsys) -> None:
    path = str(tmp_path / "s.zarr")
    config = PlantedConfig(movies=8, min_shots=30, max_shots=40, dim=16)
    store = write_planted_store(path, config)
    write_planted_store(path, config, encoder="other", encoder_id="other-0", store=store)
    assert (
        main(["questions", "--store", path, "--setting", "in-movie", "--context", "4", "--quiet"])
        == 0
    )
    capsys.readouterr()
    out = tmp_path / "report.md"
    assert (
        main(
            [
                "report",
                "--store",
                path,
                "--context",
                "4",
                "--steps",
                "3",
                "--tag-steps",
                "3",
                "--quiet",
                "--threads",
                "1",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert text == out.read_text()
    assert "## Tag classification (paper Table 2)" in text
    assert "## Next-shot prediction (paper Table 5)" in text
    for encoder in ("planted", "other"):
        assert f"| {encoder} | Score Average |" in text
        assert f"| {encoder} | Feature + LSTM |" in text
        assert f"| {encoder} | LSTM + similarity |" in text
        assert f"| {encoder} | LSTM (paper) |" in text
        assert f"| {encoder} | cosine to mean (baseline) |" in text
    assert "| — | chance | 0.031 | 0.031 |" in text
    # the in-movie set was saved, the cross-movie one is built for the report and says so
    assert "cross-movie-m4-n32-s0: built for this report" in text
    assert "in-movie-m4-n32-s0: built" not in text
    assert FeatureStore(path, mode="r").encoders() == {"planted": "planted-0", "other": "other-0"}

    report = json.loads(out.with_suffix(".json").read_text())
    for encoder in ("planted", "other"):
        for setting in ("in-movie", "cross-movie"):
            row = report["temporal"][encoder][setting]
            assert row["questions"] > 0
            for key in ("lstm", "lstm_paper", "baseline"):
                lo, hi = row[f"{key}_ci"]
                assert 0 <= lo <= row[key] <= hi <= 1
        for method in ("average", "lstm"):
            tag_row = report["tags"][encoder][method]
            assert tag_row["videos"] > 0
            for group in ("genres", "keywords"):
                lo, hi = tag_row[group]["map_ci"]
                assert lo <= tag_row[group]["map"] <= hi
    assert report["chance"]["next_shot"] == 1 / 32
    assert 0 < report["chance"]["genres_map"] < 1


def test_report_on_an_empty_store_says_what_to_do(tmp_path: Path, capsys) -> None:
    path = str(tmp_path / "empty.zarr")
    FeatureStore(path, mode="a")
    assert main(["report", "--store", path]) == 2
    assert "no complete videos" in capsys.readouterr().err
    assert main(["report", "--store", str(tmp_path / "none.zarr")]) == 2
    assert "no storyline store" in capsys.readouterr().err
