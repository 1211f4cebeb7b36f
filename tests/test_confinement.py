"""The roots rule (extractor/roots.py), where the job reads its manifest, and serve's token."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from storyline.deploy.settings import ServiceSettings
from storyline.extractor.roots import Roots


def test_paths_are_resolved_and_urls_matched_by_prefix(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "link").symlink_to(outside)
    roots = Roots.of([str(root), "s3://bucket/data"])
    assert roots.resolve(str(root / "a.mp4")) == str(root / "a.mp4")
    assert roots.resolve(str(root / ".." / "outside" / "a.mp4")) is None
    assert roots.resolve(str(root / "link" / "a.mp4")) is None  # symlinks followed
    assert roots.resolve("s3://bucket/data/a.mp4") == "s3://bucket/data/a.mp4"
    assert roots.resolve("s3://bucket/database/a.mp4") is None  # a prefix ends at a '/'
    assert roots.resolve("s3://bucket/data/../other/a.mp4") is None
    assert roots.resolve(str(root / "a\x00.mp4")) is None
    assert roots.resolve("x" * 5000) is None


def _extract(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("storyline")
    return subprocess.run(
        [str(exe), "extract", "--no-ray", "--quiet", "--input-size", "64", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,  # imports alone took 18 s on the loaded shared machine
    )


def test_extract_with_root_refuses_videos_outside_before_reading_any(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    manifest = root / "manifest.csv"
    manifest.write_text(f"video\n{root / 'a.mp4'}\n/etc/hostname\n../b.mp4\n")
    done = _extract(
        ["--manifest", str(manifest), "--store", str(root / "s.zarr"), "--root", str(root)],
        tmp_path,
    )
    assert done.returncode == 2, done.stderr
    assert "2 videos outside the allowed roots" in done.stderr
    assert "/etc/hostname" in done.stderr and str(root / "a.mp4") not in done.stderr
    assert not (root / "s.zarr").exists()  # refused before the store was touched


def test_serve_refuses_a_short_token_without_printing_it(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("storyline")
    env = {**os.environ, "STORYLINE_TOKEN": "hunter2"}
    done = subprocess.run(
        [str(exe), "serve", "--root", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,  # imports alone took 18 s on the loaded shared machine
    )
    assert done.returncode == 2
    assert "at least 16 characters" in done.stderr and "hunter2" not in done.stderr


def test_token_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STORYLINE_TOKEN", raising=False)
    secret = tmp_path / "token"
    secret.write_text("s3cr3t-from-a-kubernetes-secret\n")
    monkeypatch.setenv("STORYLINE_TOKEN_FILE", str(secret))
    settings = ServiceSettings(roots=(str(tmp_path),))
    assert settings.token.get_secret_value() == "s3cr3t-from-a-kubernetes-secret"
    secret.write_text("short\n")
    with pytest.raises(ValueError, match="at least 16"):
        ServiceSettings(roots=(str(tmp_path),))
