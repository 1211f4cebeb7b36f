"""Decode a video once, sequentially, in batches, at the size the encoder needs.

decord is the default decoder. A video decord cannot open but PyAV can (AV1: decord's
bundled FFmpeg has no AV1 decoder) is decoded by PyAV through the same iterator, with the
same frame numbering (decoded-frame order, the numbering of the cut lists we test
against) and the same size; ``VideoMeta.decoder`` records which one read it. Batches are
decoded in a background thread (both release the GIL), so decoding overlaps shot
detection and encoding on the main thread.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import decord
import numpy as np

from .pyav_reader import PyAVError, iter_pyav_batches, probe_pyav

decord.logging.set_level(decord.logging.QUIET)
Decoder = Literal["decord", "pyav"]
DecoderChoice = Literal["auto", "decord", "pyav"]  # auto: decord, PyAV where decord fails
MIN_DECODE_SIDE = 64  # decord's resizer fails on narrower frames ("from_size == to_size")


class VideoError(Exception):
    """A video that cannot be extracted; the message is one line a person can act on."""


@dataclass(frozen=True)
class VideoMeta:
    """What the container says about a video, checked by opening and decoding frame 0."""

    source: str
    fps: float
    frame_count: int
    width: int  # of decoded frames, after any rotation the container asks for
    height: int
    decoder: Decoder = "decord"  # which library decodes it (PyAV: codecs decord lacks)

    @property
    def duration(self) -> float:
        return self.frame_count / self.fps if self.fps > 0 else 0.0

    def to_attrs(self) -> dict[str, object]:
        return {
            "source": self.source,
            "fps": self.fps,
            "frame_count": self.frame_count,
            "width": self.width,
            "height": self.height,
            "duration": round(self.duration, 3),
            "decoder": self.decoder,
        }


def _check_file(path: str) -> None:
    if not os.path.exists(path):
        raise VideoError(f"file not found: {path}")
    if os.path.isdir(path):
        raise VideoError(f"is a directory, not a video: {path}")
    if os.path.getsize(path) == 0:
        raise VideoError(f"file is empty (0 bytes): {path}")


def _has_video_stream(path: str) -> bool | None:
    """True/False when PyAV can tell whether the file has a video stream, None otherwise."""
    try:
        import av

        with av.open(path) as container:
            return len(container.streams.video) > 0
    except Exception:
        return None


_UNREADABLE = (
    "not a readable video (unknown format, truncated or corrupt): {path}; "
    "check it plays, or re-encode it, e.g. ffmpeg -i IN -c:v libx264 OUT.mp4"
)


def _open(path: str, **size: int) -> decord.VideoReader:
    try:
        return decord.VideoReader(path, ctx=decord.cpu(0), **size)
    except (RuntimeError, decord.DECORDError) as exc:
        has_video = _has_video_stream(path)
        if has_video is False:
            raise VideoError(f"no video stream in {path} (audio or data only)") from exc
        raise VideoError(_UNREADABLE.format(path=path)) from exc


def probe(path: str, *, decoder: DecoderChoice = "auto") -> VideoMeta:
    """Open ``path`` and read its frame rate, frame count and decoded size.

    ``auto`` opens it with decord, and with PyAV only where decord cannot (the reason
    decord gave is kept as the cause when PyAV fails too).
    """
    _check_file(path)
    if decoder == "pyav":
        return _probe_pyav(path)
    try:
        return _probe_decord(path)
    except VideoError as decord_error:
        if decoder == "decord" or str(decord_error).startswith("no video stream"):
            raise
        try:
            return _probe_pyav(path)
        except VideoError:
            raise decord_error from None


def _probe_decord(path: str) -> VideoMeta:
    reader = _open(path)
    frame_count = len(reader)
    if frame_count == 0:
        raise VideoError(f"video stream has no frames: {path}")
    try:
        height, width = reader[0].shape[:2]
    except (RuntimeError, decord.DECORDError) as exc:
        raise VideoError(f"cannot decode the first frame of {path}: corrupt video") from exc
    fps = float(reader.get_avg_fps())
    if not np.isfinite(fps) or fps <= 0:
        raise VideoError(f"no usable frame rate in {path}: re-encode it with a fixed rate")
    return VideoMeta(Path(path).as_posix(), fps, frame_count, int(width), int(height))


def _probe_pyav(path: str) -> VideoMeta:
    try:
        info = probe_pyav(path)
    except PyAVError as exc:
        raise VideoError(_UNREADABLE.format(path=path)) from exc
    if not np.isfinite(info.fps) or info.fps <= 0:
        raise VideoError(f"no usable frame rate in {path}: re-encode it with a fixed rate")
    return VideoMeta(
        Path(path).as_posix(), info.fps, info.frame_count, info.width, info.height, "pyav"
    )


def decode_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """(width, height) keeping the aspect ratio, short side = ``short_side``, both even."""
    if short_side < MIN_DECODE_SIDE:
        raise ValueError(
            f"frames cannot be decoded smaller than {MIN_DECODE_SIDE} px: use an encoder "
            f"input size of at least {MIN_DECODE_SIDE}, not {short_side}"
        )
    scale = short_side / min(width, height)
    even = lambda v: max(2, int(round(v * scale / 2)) * 2)  # noqa: E731
    return even(width), even(height)


def iter_frame_batches(
    meta: VideoMeta, *, short_side: int, batch_size: int = 32, prefetch: int = 2
) -> Iterator[np.ndarray]:
    """Yield (B, H, W, 3) RGB uint8 batches covering every frame once, in order.

    Decoded by ``meta.decoder``. With PyAV the frames are whatever the stream holds (the
    container's count is only an estimate there); the caller counts them. A decode error
    part-way (a truncated file) raises :class:`VideoError` naming the frame.
    """
    width, height = decode_size(meta.width, meta.height, short_side)
    if meta.decoder == "pyav":
        source = _pyav_batches(meta, width, height, batch_size)
    else:
        source = _decord_batches(meta, width, height, batch_size)
    batches: queue.Queue[np.ndarray | BaseException | None] = queue.Queue(maxsize=prefetch)
    stop = threading.Event()

    def produce() -> None:
        try:
            for batch in source:
                if stop.is_set():
                    return
                batches.put(batch)
            batches.put(None)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            batches.put(exc)

    thread = threading.Thread(target=produce, name="decode", daemon=True)
    thread.start()
    try:
        while (item := batches.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                batches.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.05)


def _decord_batches(
    meta: VideoMeta, width: int, height: int, batch_size: int
) -> Iterator[np.ndarray]:
    reader = _open(meta.source, width=width, height=height)
    frame_count = meta.frame_count
    for start in range(0, frame_count, batch_size):
        indices = list(range(start, min(start + batch_size, frame_count)))
        try:
            yield reader.get_batch(indices).asnumpy()
        except (RuntimeError, decord.DECORDError) as exc:
            raise VideoError(
                f"decoding stopped at frame {start} of {frame_count}: the file is "
                f"truncated or corrupt: {meta.source}"
            ) from exc


def _pyav_batches(
    meta: VideoMeta, width: int, height: int, batch_size: int
) -> Iterator[np.ndarray]:
    try:
        yield from iter_pyav_batches(meta.source, width=width, height=height, batch_size=batch_size)
    except PyAVError as exc:
        raise VideoError(f"{exc} (PyAV): the file is truncated or corrupt: {meta.source}") from exc
