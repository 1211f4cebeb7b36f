"""Manifests: which videos a job extracts, with their ids and tags.

Two forms: a text file with one path or URL per line, or a CSV with the header
``video,id,genres,keywords,split`` (genres and keywords separated by ``|``; every column
but ``video`` optional).
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import fsspec

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
CSV_COLUMNS = ("video", "id", "genres", "keywords", "split")


class ManifestError(ValueError):
    """A manifest that cannot be read; the message names the line to fix."""


@dataclass(frozen=True)
class ManifestEntry:
    """One video of a job: where it is, its store id and its tags."""

    video: str
    id: str
    genres: tuple[str, ...] = field(default=())
    keywords: tuple[str, ...] = field(default=())
    split: str | None = None

    def tags(self) -> dict[str, object]:
        return {"genres": list(self.genres), "keywords": list(self.keywords), "split": self.split}


def safe_id(text: str) -> str:
    """A Zarr-node-safe form of ``text``: letters, digits, ``.``, ``_`` and ``-`` only."""
    cleaned = _UNSAFE.sub("_", text).strip("._")
    return cleaned[:80] or "video"


def _is_url(path: str) -> bool:
    return "://" in path


def video_id_for(path: str) -> str:
    """Stable id for a video named only by its path: readable stem + hash of the full path.

    The hash keeps ``a/clip.mp4`` and ``b/clip.mp4`` apart; the same path gives the same id
    on every run and every node.
    """
    full = path if _is_url(path) else os.path.abspath(path)
    digest = hashlib.sha1(full.encode()).hexdigest()[:8]
    stem = Path(path.rstrip("/")).stem
    return f"{safe_id(stem)}-{digest}"


def _split_tags(value: str | None) -> tuple[str, ...]:
    return tuple(t.strip() for t in (value or "").split("|") if t.strip())


def _resolve(video: str, base: str) -> str:
    """Relative paths in a manifest are relative to the manifest's own folder."""
    if _is_url(video) or os.path.isabs(video):
        return video
    if _is_url(base):
        return f"{base.rstrip('/')}/{video}"
    return os.path.normpath(os.path.join(base, video))


def entries_for_paths(paths: list[str]) -> list[ManifestEntry]:
    """Entries for videos given on the command line."""
    return _unique([ManifestEntry(video=p, id=video_id_for(p)) for p in paths], "arguments")


def read_manifest(path: str) -> list[ManifestEntry]:
    """Read a text or CSV manifest from a local path or fsspec URL."""
    try:
        with fsspec.open(path, "r", encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError as exc:
        raise ManifestError(f"manifest not found: {path}") from exc
    base = path.rsplit("/", 1)[0] if _is_url(path) else os.path.dirname(os.path.abspath(path))
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    if not lines:
        raise ManifestError(f"manifest {path} lists no videos")
    header = [h.strip() for h in next(csv.reader([lines[0]]))]
    if "video" not in header:
        if len(header) > 1:
            raise ManifestError(
                f"{path}: a CSV manifest needs the header {','.join(CSV_COLUMNS)}; "
                f"got {','.join(header)}"
            )
        videos = [_resolve(line.strip(), base) for line in lines]
        return _unique([ManifestEntry(video=v, id=video_id_for(v)) for v in videos], path)
    unknown = set(header) - set(CSV_COLUMNS)
    if unknown:
        raise ManifestError(f"{path}: unknown columns {sorted(unknown)}; known: {CSV_COLUMNS}")
    entries = []
    for lineno, row in enumerate(csv.DictReader(io.StringIO("\n".join(lines))), start=2):
        video = (row.get("video") or "").strip()
        if not video:
            raise ManifestError(f"{path}:{lineno}: empty 'video' column")
        video = _resolve(video, base)
        given_id = (row.get("id") or "").strip()
        if given_id and safe_id(given_id) != given_id:
            raise ManifestError(
                f"{path}:{lineno}: id {given_id!r} may only hold letters, digits, '.', '_', '-'"
            )
        entries.append(
            ManifestEntry(
                video=video,
                id=given_id or video_id_for(video),
                genres=_split_tags(row.get("genres")),
                keywords=_split_tags(row.get("keywords")),
                split=(row.get("split") or "").strip() or None,
            )
        )
    return _unique(entries, path)


def _unique(entries: list[ManifestEntry], where: str) -> list[ManifestEntry]:
    seen: dict[str, str] = {}
    for entry in entries:
        if entry.id in seen and seen[entry.id] != entry.video:
            raise ManifestError(
                f"{where}: id {entry.id!r} names both {seen[entry.id]} and {entry.video}"
            )
        seen[entry.id] = entry.video
    # the same video listed twice is extracted once
    return list({e.id: e for e in entries}.values())
