"""Exclusive file locks beside a local store, for the few read-modify-writes two jobs can race
on: the root's encoder registry and one video written by two encoders at once.

Lock files live in ``<store>.locks/`` (inside the store they would show up as stray Zarr
nodes). ``flock`` covers every process of one machine, and of a shared POSIX filesystem
that honours it; stores behind URLs get no lock (object stores have no such primitive).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager


class StoreLock:
    """An exclusive ``flock`` on ``<store>.locks/<name>.lock``, held until :meth:`release`."""

    def __init__(self, store_url: str, name: str) -> None:
        self._fd: int | None = None
        if "://" in store_url:
            return  # remote store: nothing to lock
        folder = os.path.abspath(store_url).rstrip("/") + ".locks"
        os.makedirs(folder, exist_ok=True)
        self._fd = os.open(os.path.join(folder, f"{name}.lock"), os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None


@contextmanager
def store_lock(store_url: str, name: str) -> Iterator[None]:
    lock = StoreLock(store_url, name)
    try:
        yield
    finally:
        lock.release()
