"""Manifests: text and CSV forms, stable ids, clear errors."""

from __future__ import annotations

import pytest

from storyline.extractor.manifest import (
    ManifestError,
    entries_for_paths,
    read_manifest,
    safe_id,
    video_id_for,
)


def test_text_manifest_resolves_relative_paths(tmp_path):
    (tmp_path / "m.txt").write_text("a.mp4\n\n# a comment\nsub/b.mkv\n/abs/c.webm\n")
    entries = read_manifest(str(tmp_path / "m.txt"))
    assert [e.video for e in entries] == [
        str(tmp_path / "a.mp4"),
        str(tmp_path / "sub" / "b.mkv"),
        "/abs/c.webm",
    ]
    assert all(e.genres == () and e.split is None for e in entries)


def test_csv_manifest_tags_and_optional_columns(tmp_path):
    (tmp_path / "m.csv").write_text(
        "video,id,genres,keywords,split\na.mp4,titanic,romance|drama,ship| love ,train\nb.mp4,,,,\n"
    )
    first, second = read_manifest(str(tmp_path / "m.csv"))
    assert first.id == "titanic" and first.genres == ("romance", "drama")
    assert first.keywords == ("ship", "love") and first.split == "train"
    assert second.id == video_id_for(str(tmp_path / "b.mp4")) and second.split is None


def test_ids_are_stable_safe_and_distinct():
    a, b = video_id_for("x/My Movie (1997).mp4"), video_id_for("y/My Movie (1997).mp4")
    assert a != b and a == video_id_for("x/My Movie (1997).mp4")
    assert a.startswith("My_Movie_1997-") and safe_id(a) == a
    assert video_id_for("s3://bucket/m.mp4") == video_id_for("s3://bucket/m.mp4")
    assert len(entries_for_paths(["x.mp4", "x.mp4"])) == 1  # listed twice, extracted once


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("video,title\na.mp4,x\n", "unknown columns"),
        ("video,id\na.mp4,bad/id\n", "may only hold"),
        ("video,id\na.mp4,same\nb.mp4,same\n", "names both"),
        ("video,id\n,x\n", "empty 'video'"),
        ("\n# nothing\n", "lists no videos"),
    ],
)
def test_bad_manifests_say_what_to_fix(tmp_path, text, message):
    (tmp_path / "m.csv").write_text(text)
    with pytest.raises(ManifestError, match=message):
        read_manifest(str(tmp_path / "m.csv"))


def test_missing_manifest(tmp_path):
    with pytest.raises(ManifestError, match="manifest not found"):
        read_manifest(str(tmp_path / "nope.csv"))
