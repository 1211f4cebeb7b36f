"""Confinement: the folders (or URL prefixes) a job may read, and the check every path passes.

One home for the rule, used by the API at submit and by `storyline extract --root` where the
manifest is read (a manifest can change between the two): local paths are resolved
(``..`` and symlinks) before the check, URLs must start with a root's prefix and hold no
``.``/``..`` segment. The check never reports whether a path outside the roots exists.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

SHOWN_OFFENDERS = 5  # how many offending entries an error names


def is_url(value: str) -> bool:
    return "://" in value


def _unsafe_text(value: str) -> bool:
    """NUL and other control characters: no real path holds them, and the OS rejects NUL."""
    return any(ord(c) < 32 or c == "\x7f" for c in value)


@dataclass(frozen=True)
class Roots:
    """Resolved local roots and ``/``-terminated URL prefixes."""

    paths: tuple[Path, ...]
    urls: tuple[str, ...]

    @classmethod
    def of(cls, roots: Iterable[str]) -> Roots:
        roots = [r for r in roots if r]
        if not roots:
            raise ValueError("give at least one root folder (or URL prefix)")
        bad = [r for r in roots if _unsafe_text(r)]
        if bad:
            raise ValueError(f"root {bad[0]!r} holds control characters")
        return cls(
            paths=tuple(Path(r).resolve() for r in roots if not is_url(r)),
            urls=tuple(r.rstrip("/") + "/" for r in roots if is_url(r)),
        )

    def describe(self) -> str:
        return ", ".join([*map(str, self.paths), *self.urls])

    def resolve(self, value: str) -> str | None:
        """``value`` made absolute (symlinks followed) if it lies under a root, else None."""
        if not value or _unsafe_text(value) or len(value) > 4096:
            return None
        if is_url(value):
            segments = value.split("://", 1)[1].split("/")
            if any(s in (".", "..") for s in segments):
                return None
            return value if any(value.startswith(u) for u in self.urls) else None
        try:
            path = Path(value).resolve()  # ``..`` and symlinks, before the check
        except (OSError, RuntimeError, ValueError):  # too long, a symlink loop
            return None
        if any(path == root or path.is_relative_to(root) for root in self.paths):
            return str(path)
        return None

    def outside(self, values: Sequence[str]) -> list[str]:
        """The values (as given) that do not lie under any root, in order."""
        return [v for v in values if self.resolve(v) is None]


def outside_message(what: str, offenders: Sequence[str], roots: Roots) -> str:
    """One line naming the first offenders, for an API detail or a command's error."""
    shown = ", ".join(repr(v) for v in offenders[:SHOWN_OFFENDERS])
    more = (
        f" and {len(offenders) - SHOWN_OFFENDERS} more" if len(offenders) > SHOWN_OFFENDERS else ""
    )
    return (
        f"{len(offenders)} {what} outside the allowed roots ({roots.describe()}): {shown}{more}; "
        "move them under a root or ask the operator to add one"
    )
