"""Rendering: a planned shot's frames, RGB uint8, as a pure function of the shot.

Backgrounds are built in HSV (a genre's sky, a set-up's floor, the genre's texture), then
the set-up's set piece, the actors, the keyword's glyph and grey sensor noise on top.
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import cv2
import numpy as np

from .tables import GENRES, KEYWORDS, ROLES, SET_PIECES, SynthConfig

if TYPE_CHECKING:
    from .planning import Shot

NOISE_STREAM = 5  # the seeded stream of the shared noise bank (planning uses 0-4)


def _rgb(h: float, s: float, v: float) -> np.ndarray:
    """OpenCV-unit HSV (0-180, 0-255, 0-255) to float RGB 0-255."""
    s, v = min(max(s, 0.0), 255.0), min(max(v, 0.0), 255.0)
    r, g, b = colorsys.hsv_to_rgb((h % 180) / 180, s / 255, v / 255)
    return np.array([r, g, b], dtype=np.float32) * 255


def _texture(
    kind: str, x: np.ndarray, y: np.ndarray, scale: float, rng: np.random.Generator
) -> np.ndarray:
    """A genre's background texture in [0, 1], smooth so that panning it is not a cut."""
    phase = rng.uniform(0, 2 * np.pi)
    if kind == "stripes":
        return 0.5 + 0.5 * np.tanh(1.5 * np.sin(2 * np.pi * (x + y) / (12 * scale) + phase))
    if kind == "dots":
        period = 18 * scale
        d = np.hypot((x % period) - period / 2, (y % period) - period / 2)
        return np.clip((period * 0.3 - d) / 2, 0, 1)
    if kind == "bands":
        return 0.5 + 0.5 * np.sin(2 * np.pi * y / (34 * scale) + phase)
    if kind == "streaks":
        t = np.sin(2 * np.pi * x / (9 * scale) + phase) + 0.6 * np.sin(2 * np.pi * x / (23 * scale))
        return np.clip(0.5 + 0.35 * t, 0, 1) * np.clip(1.2 - np.abs(y / y.max() - 0.5), 0, 1)
    if kind == "bokeh":
        out = np.zeros_like(x)
        for _ in range(9):
            cx, cy = rng.uniform(0, x.max()), rng.uniform(0, y.max())
            r = rng.uniform(6, 16) * scale
            out = np.maximum(out, np.clip((r - np.hypot(x - cx, y - cy)) / 3, 0, 1))
        return out
    if kind == "grid":
        period = 16 * scale
        gx = np.abs(np.sin(np.pi * x / period)) ** 24
        gy = np.abs(np.sin(np.pi * y / period)) ** 24
        return np.maximum(gx, gy)
    raise ValueError(f"unknown texture {kind!r}")


def _glyph_mask(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Boolean mask of a keyword's shape on coordinates u, v in [-1, 1] (v down)."""
    r, theta = np.hypot(u, v), np.arctan2(v, u)
    if shape == "star":
        return r < 0.55 + 0.35 * np.cos(10 * theta)
    if shape == "car":
        body = (np.abs(u) < 0.95) & (v > -0.15) & (v < 0.4)
        cabin = (np.abs(u + 0.05) < 0.5) & (v > -0.6) & (v <= -0.15)
        wheels = (np.hypot(u - 0.55, v - 0.45) < 0.24) | (np.hypot(u + 0.55, v - 0.45) < 0.24)
        return body | cabin | wheels
    if shape == "ghost":
        head = np.hypot(u, v + 0.25) < 0.6
        skirt = (np.abs(u) < 0.6) & (v > -0.25) & (v < 0.75 + 0.12 * np.sin(9 * u))
        eyes = (np.hypot(u - 0.22, v + 0.3) < 0.12) | (np.hypot(u + 0.22, v + 0.3) < 0.12)
        return (head | skirt) & ~eyes
    if shape == "rings":
        left, right = np.hypot(u + 0.3, v), np.hypot(u - 0.3, v)
        return (np.abs(left - 0.45) < 0.16) | (np.abs(right - 0.45) < 0.16)
    if shape == "robot":
        head = (np.abs(u) < 0.6) & (np.abs(v - 0.15) < 0.6)
        antenna = (np.abs(u) < 0.06) & (v < -0.45) & (v > -0.9)
        eyes = (np.abs(np.abs(u) - 0.28) < 0.12) & (np.abs(v) < 0.1)
        return (head | antenna) & ~eyes
    if shape == "bars":
        return (np.abs(u) < 0.8) & (np.abs(v) < 0.75) & (np.sin(np.pi * (v + 1) * 2.5) > -0.3)
    if shape == "dagger":
        width = 0.3 * np.clip(1 - (v + 0.95) / 1.4, 0, 1) + 0.06
        blade = (np.abs(u) < width) & (v > -0.95) & (v < 0.35)
        guard = (np.abs(u) < 0.55) & (np.abs(v - 0.42) < 0.08)
        hilt = (np.abs(u) < 0.1) & (v > 0.42) & (v < 0.9)
        return blade | guard | hilt
    if shape == "rocket":
        body = (np.abs(u) < 0.35 * (v + 0.95).clip(0, 1)) & (v > -0.95) & (v < 0.6)
        fins = (np.abs(u) < 0.7) & (v > 0.3) & (v < 0.75) & (np.abs(u) > 0.2)
        return body | fins
    if shape == "heart":
        x, y = u * 1.2, -v * 1.2 + 0.2
        return (x**2 + y**2 - 1) ** 3 - x**2 * y**3 < 0
    if shape == "bolt":
        edge = 0.45 * np.sin(np.pi * (v + 1) * 1.5)  # a zigzag
        return (np.abs(u - edge) < 0.3) & (np.abs(v) < 0.95)
    raise ValueError(f"unknown glyph shape {shape!r}")


def _pattern(kind: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """A keyword's inner pattern as a brightness factor."""
    if kind == "plain":
        return np.ones_like(u)
    if kind == "rings":
        return 0.75 + 0.25 * np.sign(np.sin(9 * np.hypot(u, v)))
    if kind == "hstripes":
        return 0.75 + 0.25 * np.sign(np.sin(12 * v))
    if kind == "vstripes":
        return 0.75 + 0.25 * np.sign(np.sin(12 * u))
    if kind == "checker":
        return 0.7 + 0.3 * np.sign(np.sin(9 * u) * np.sin(9 * v))
    if kind == "dots":
        return 0.7 + 0.3 * (np.hypot((u * 5) % 2 - 1, (v * 5) % 2 - 1) < 0.5)
    raise ValueError(f"unknown glyph pattern {kind!r}")


@lru_cache(maxsize=16)
def _set_piece(role: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(alpha size x size x 1, colour 3) of a set-up's set piece over the central square."""
    hsv, opacity, shapes = SET_PIECES[role]
    n = size * 4  # drawn 4x larger and averaged: soft edges, so panning it is smooth
    mask = np.zeros((n, n), np.uint8)
    for shape in shapes:
        if shape[0] == "rect":
            x0, y0, x1, y1 = (round(c * n) for c in shape[1:])
            cv2.rectangle(mask, (x0, y0), (x1 - 1, y1 - 1), 255, thickness=-1)
        elif shape[0] == "disc":
            centre = (round(shape[1] * n), round(shape[2] * n))
            cv2.circle(mask, centre, round(shape[3] * n), 255, thickness=-1)
        else:
            points = np.array([[round(x * n), round(y * n)] for x, y in shape[1]], np.int32)
            cv2.fillPoly(mask, [points], 255)
    alpha = mask.reshape(size, 4, size, 4).mean(axis=(1, 3)) / 255 * opacity
    return alpha[..., None].astype(np.float32), _rgb(*hsv)


@lru_cache(maxsize=32)
def _glyph_sprite(keyword: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(alpha H x W x 1, colour H x W x 3) of a keyword's glyph, ``size`` pixels square."""
    glyph = KEYWORDS[keyword]
    # supersample 3x for soft edges
    n = size * 3
    grid = (np.arange(n, dtype=np.float32) + 0.5) / n * 2 - 1
    u, v = np.meshgrid(grid, grid)
    mask = _glyph_mask(glyph.shape, u, v).astype(np.float32)
    alpha = mask.reshape(size, 3, size, 3).mean(axis=(1, 3))[..., None]
    shade = _pattern(glyph.pattern, u, v).reshape(size, 3, size, 3).mean(axis=(1, 3))
    colour = _rgb(*glyph.hsv)[None, None, :] * shade[..., None]
    return alpha, colour.astype(np.float32)


@lru_cache(maxsize=4)
def _noise_bank(height: int, width: int, sigma: float) -> np.ndarray:
    """A few frames of sensor noise shared by every shot (a shot only picks offsets into it).

    Grey noise: adding one value to R, G and B leaves the hue alone, so noise never looks
    like a cut to a hue-based detector, even in dark scenes.
    """
    rng = np.random.default_rng([0, NOISE_STREAM, height, width])
    return (rng.normal(0, sigma, size=(16, height, width, 1))).astype(np.float32)


@dataclass(frozen=True)
class _Stage:
    """A shot's still parts, computed once: background canvas (wider than the frame, for the
    pan), actor and glyph geometry."""

    canvas: np.ndarray  # H x (W + pad) x 3 float32
    pad: int
    actors: tuple[tuple[float, float, float, float], ...]  # cx, cy, rx, ry in pixels
    actor_rgb: np.ndarray
    glyph: tuple[np.ndarray, np.ndarray, int, int] | None  # alpha, colour, top, left


@lru_cache(maxsize=96)
def _stage(shot: Shot, config: SynthConfig) -> _Stage:
    h, w = config.height, config.width
    genre, role = GENRES[shot.genre], ROLES[shot.role]
    rng = np.random.default_rng(shot.seed)
    pad = int(math.ceil(abs(shot.pan) * shot.frames)) + 2
    y, x = np.mgrid[0:h, 0 : w + pad].astype(np.float32)
    first, second = (genre.hues[1], genre.hues[0]) if role.swap else genre.hues
    val = genre.val * role.gain * shot.gain
    # swapped set-ups are also paler: a cut then changes hue, saturation and brightness
    sat = genre.sat * (0.55 if role.swap else 1.0) * shot.saturation
    # Built in HSV, not mixed in RGB: a mix of two opposite hues in RGB passes through grey,
    # whose hue the codec scrambles at every keyframe; mixing hues keeps saturation up.
    horizon = role.horizon * h + role.tilt * (x - (w + pad) / 2)
    below = np.clip((y - horizon) / 1.5 + 0.5, 0, 1)  # ground: paler and darker
    tex = _texture(genre.texture, x, y, shot.texture_scale * role.zoom, rng) * genre.strength
    # the sky in the genre's colours, the floor in the set-up's own; the texture mixes the
    # genre's accent colour into both
    _, g_sat, g_val = role.ground
    g_hue = shot.floor_hue
    base_hue = (first + shot.hue_jitter) * (1 - below) + g_hue * below
    hue = base_hue + (second + shot.hue_jitter - base_hue) * tex
    base_sat = sat * (1 - below) + g_sat * below
    base_val = val * (1 - below) + g_val * shot.gain * below
    sat_map = base_sat * (1 - tex) + genre.sat * shot.saturation * tex
    val_map = base_val * (1 - tex) + min(255.0, val * 1.15) * tex
    if genre.texture == "streaks":  # horror: vignette
        r2 = ((x - (w + pad) / 2) / w) ** 2 + ((y - h / 2) / h) ** 2
        val_map = val_map * np.clip(1.1 - 1.2 * r2, 0.6, 1)
    hsv = np.dstack([(hue % 180) * 2, np.clip(sat_map / 255, 0, 1), np.clip(val_map / 255, 0, 1)])
    canvas = cv2.cvtColor(hsv.astype(np.float32), cv2.COLOR_HSV2RGB) * 255
    # the set piece, where the central square is at the first frame; it pans with the set
    alpha, colour = _set_piece(shot.role, h)
    left = (w - h) // 2 + (0 if shot.pan >= 0 else pad - 2)
    region = canvas[:, left : left + h]
    canvas[:, left : left + h] = region * (1 - alpha) + colour * alpha
    left_edge = (w - h) / 2  # of the central square
    actors = tuple((left_edge + ax * h, ay * h, ar * h, ar * h * 1.5) for ax, ay, ar in role.actors)
    actor_rgb = _rgb(shot.actor_hue, 200, min(255.0, 230 * max(role.gain, 0.7) * shot.gain))
    glyph = None
    if shot.keyword is not None:
        gx, gy, gs = role.glyph
        size = min(h, max(8, int(round(gs * h * config.glyph_scale))))
        alpha, colour = _glyph_sprite(shot.keyword, size)
        colour = colour * min(1.0, max(shot.gain, 0.6))
        top = int(np.clip(gy * h - size / 2, 0, h - size))
        left = int(np.clip(left_edge + gx * h - size / 2, 0, w - size))
        glyph = (alpha, colour, top, left)
    return _Stage(canvas.astype(np.float32), pad, actors, actor_rgb, glyph)


def frame(shot: Shot, t: int, config: SynthConfig) -> np.ndarray:
    """Frame ``t`` of a shot, RGB uint8: panned background, moving actor, drifting glyph, noise."""
    stage = _stage(shot, config)
    h, w = config.height, config.width
    start = shot.pan * t if shot.pan >= 0 else stage.pad - 2 + shot.pan * t
    i = int(math.floor(start))
    frac = start - i
    img = stage.canvas[:, i : i + w] * (1 - frac) + stage.canvas[:, i + 1 : i + 1 + w] * frac
    # actors: a body ellipse and a head each, moving sideways
    blobs = []
    for cx, cy, rx, ry in stage.actors:
        cx += shot.motion * t
        blobs += [(cx, cy, rx, ry), (cx, cy - ry - rx * 0.55, rx * 0.6, rx * 0.6)]
    for ex, ey, erx, ery in blobs:
        y0, y1 = max(0, int(ey - ery - 2)), min(h, int(ey + ery + 3))
        x0, x1 = max(0, int(ex - erx - 2)), min(w, int(ex + erx + 3))
        if y0 >= y1 or x0 >= x1:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        d = np.sqrt(((xx - ex) / erx) ** 2 + ((yy - ey) / ery) ** 2)
        a = np.clip((1 - d) * min(erx, ery), 0, 1)[..., None]
        img[y0:y1, x0:x1] = img[y0:y1, x0:x1] * (1 - a) + stage.actor_rgb * a
    if stage.glyph is not None:
        alpha, colour, top, left = stage.glyph
        gh, gw = alpha.shape[:2]
        left = int(np.clip(left + round(0.15 * t * np.sign(shot.motion or 1)), 0, w - gw))
        region = img[top : top + gh, left : left + gw]
        img[top : top + gh, left : left + gw] = region * (1 - alpha) + colour * alpha
    if config.noise > 0:
        img = img + _noise_bank(h, w, config.noise)[(shot.seed + t) % 16]
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


def render_shots(
    shots: Sequence[Shot], config: SynthConfig = SynthConfig()
) -> Iterator[np.ndarray]:
    """All frames of a sequence of shots, in order (RGB uint8, H x W x 3)."""
    for shot in shots:
        for t in range(shot.frames):
            yield frame(shot, t, config)


def cut_score(before: np.ndarray, after: np.ndarray) -> float:
    """scenedetect ContentDetector's score between two RGB frames: mean |HSV difference|."""
    a = cv2.cvtColor(before, cv2.COLOR_RGB2HSV).astype(np.int32)
    b = cv2.cvtColor(after, cv2.COLOR_RGB2HSV).astype(np.int32)
    return float(np.abs(a - b).mean())
