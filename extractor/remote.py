"""Videos in object storage (s3://, gs://, http(s)://...): a local spool file per video.

decord opens local paths; given a file-like object it reads the whole stream into memory
first (``bytearray(uri.read())`` in decord/video_reader.py), which for a 2-hour movie is
gigabytes per actor. So a worker copies a remote video through fsspec, in blocks, to one
spool file, extracts it, and removes the file: the spool holds at most one video per
worker. Credentials and endpoints come from fsspec's usual sources (for s3: the
``AWS_*`` variables, ``AWS_ENDPOINT_URL`` included, or ~/.aws).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import PurePosixPath

from .decode import VideoError

SPOOL_ENV = "STORYLINE_SPOOL_DIR"  # where spool files go (default: the system's temp dir)


def is_remote(source: str) -> bool:
    """True for fsspec URLs other than local files."""
    return "://" in source and not source.startswith("file://")


@contextmanager
def local_video(source: str, *, spool_dir: str | None = None) -> Iterator[str]:
    """A local path for ``source``: itself if local, else a spool copy removed on exit."""
    if not is_remote(source):
        yield source.removeprefix("file://")
        return
    import fsspec

    try:
        fs, path = fsspec.core.url_to_fs(source)
        size = fs.size(path)
    except FileNotFoundError as exc:
        raise VideoError(f"file not found: {source}") from exc
    except ImportError as exc:  # e.g. s3fs missing for s3://
        raise VideoError(f"cannot open {source}: {exc}") from exc
    folder = spool_dir or os.environ.get(SPOOL_ENV) or tempfile.gettempdir()
    free = shutil.disk_usage(folder).free
    if size is not None and size > free:
        raise VideoError(
            f"{source} is {size / 1e9:.1f} GB but the spool folder {folder} has "
            f"{free / 1e9:.1f} GB free: set {SPOOL_ENV} to a larger disk"
        )
    with tempfile.TemporaryDirectory(prefix="storyline-spool-", dir=folder) as spool:
        local = os.path.join(spool, "video" + PurePosixPath(path).suffix)
        try:
            fs.get_file(path, local)
        except FileNotFoundError as exc:
            raise VideoError(f"file not found: {source}") from exc
        yield local
