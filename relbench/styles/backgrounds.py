"""Backgrounds of the `background` style factor: paper (fibres, stains), wood grain, noise,
gradients, vignettes (including a near-white centre falling to mid gray corners) and studio
sweeps with a hotspot, in light, mid and dark variants.

All are low-chroma (or, for wood, a pale or dark brown far from any palette colour's
chroma) so that no person would take a patch of background for an object. Light variants
are never drawn behind a white object, dark ones never behind a black one, and wood never
behind orange or yellow (`allowed_backgrounds`). Textures are drawn at reduced resolution
and resized, with grain cropped from a fixed tile, so a background costs a few milliseconds.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Callable

import cv2
import numpy as np

Maker = Callable[[np.random.Generator], tuple[np.ndarray, float]]
"""A background variant: (low-resolution float32 RGB field, per-pixel grain sigma)."""

FIELD_SIDE = 192
"""Side at which the smooth part of a background is drawn before resizing to the image."""
_GRAIN_TILE = 1280
_GRAIN_SEED = 20261128


@lru_cache(maxsize=1)
def _grain_tile() -> np.ndarray:
    """A fixed tile of unit Gaussian grain; each image takes a random crop and flip of it,
    which costs far less than drawing a million normals per image."""
    rng = np.random.default_rng(_GRAIN_SEED)
    return rng.standard_normal((_GRAIN_TILE, _GRAIN_TILE), dtype=np.float32)


def _grain(side: int, rng: np.random.Generator) -> np.ndarray:
    """(side, side) float32 unit grain: a random crop of the tile, randomly flipped."""
    tile = _grain_tile()
    oy, ox = rng.integers(0, _GRAIN_TILE - side + 1, size=2)
    crop = tile[oy : oy + side, ox : ox + side]
    return crop[::-1] if rng.random() < 0.5 else crop


def _jitter(rgb: tuple[float, float, float], rng: np.random.Generator, amount: float) -> np.ndarray:
    """An RGB base moved by a common brightness shift and a small per-channel tint."""
    base = np.asarray(rgb, dtype=np.float32)
    tint = rng.uniform(-amount / 3, amount / 3, size=3)
    return (base + rng.uniform(-amount, amount) + tint).astype(np.float32)


def _smooth_noise(cells: int, rng: np.random.Generator) -> np.ndarray:
    """(FIELD_SIDE, FIELD_SIDE) float32 noise in about [-1, 1] with `cells` features across."""
    small = rng.standard_normal((cells, cells)).astype(np.float32)
    return cv2.resize(small, (FIELD_SIDE, FIELD_SIDE), interpolation=cv2.INTER_CUBIC) / 1.5


def _grid() -> tuple[np.ndarray, np.ndarray]:
    t = (np.arange(FIELD_SIDE, dtype=np.float32) + 0.5) / FIELD_SIDE
    return t[None, :], t[:, None]  # x (1, W), y (H, 1)


def _flat(base: np.ndarray, shade: np.ndarray) -> np.ndarray:
    """A field of `base` colour times (or plus, for 2-D `shade` offsets) a monochrome map."""
    return base[None, None, :] + shade[..., None]


def _paper(rng: np.random.Generator) -> tuple[np.ndarray, float]:
    base = _jitter((236, 230, 216), rng, 6)
    # Stains: a few soft, slightly darker patches (foxing) over a gently uneven sheet.
    stains = np.clip(_smooth_noise(5, rng) - 0.4, 0, None) * rng.uniform(8, 16)
    return _flat(base, _smooth_noise(6, rng) * 5 - stains), 3.0


def _fibres(side: int, rng: np.random.Generator) -> np.ndarray:
    """(side, side) float32 offsets: short, thin, slightly curved paper fibres a few levels
    darker or lighter than the sheet, drawn at full resolution so they stay sharp."""
    canvas = np.zeros((side, side), np.float32)
    count = int(rng.integers(60, 120))
    start = rng.uniform(0, side, size=(count, 2))
    angle = rng.uniform(0, np.pi, size=count)
    length = rng.uniform(0.02, 0.07, size=count) * side
    bend = rng.uniform(-0.6, 0.6, size=count)
    level = rng.choice([-1.0, 1.0], size=count, p=[0.7, 0.3]) * rng.uniform(8, 18, size=count)
    t = np.linspace(0, 1, 6)[:, None]
    for p, a, ln, bd, lv in zip(start, angle, length, bend, level):
        th = a + bd * t
        pts = p + np.cumsum(np.concatenate([np.cos(th), np.sin(th)], 1) * ln / 6, axis=0)
        cv2.polylines(canvas, [np.round(pts * 16).astype(np.int32)], False, float(lv),
                      max(1, side // 384), cv2.LINE_AA, 4)
    return canvas


def _wood(light: bool) -> Maker:
    def make(rng: np.random.Generator) -> tuple[np.ndarray, float]:
        base = _jitter((212, 180, 138) if light else (104, 70, 46), rng, 6)
        dark = base * np.float32(rng.uniform(0.55, 0.72) if light else rng.uniform(0.5, 0.65))
        x, y = _grid()
        # Grain runs along x (or y): growth rings are lines of constant `across`, bent by
        # smooth noise at two scales; fibres are noise stretched along the grain.
        across = y + _smooth_noise(3, rng) * 0.05 + _smooth_noise(9, rng) * 0.008
        freq = rng.uniform(9, 16)
        rings = (0.5 + 0.5 * np.sin(2 * np.pi * freq * across + rng.uniform(0, 6.3))) ** 4
        fibres = cv2.resize(rng.standard_normal((64, 6)).astype(np.float32),
                            (FIELD_SIDE, FIELD_SIDE), interpolation=cv2.INTER_CUBIC)
        t = np.clip(rings + 0.12 * fibres, 0, 1)  # fibres run along the rings
        if rng.random() < 0.5:
            t = t.T
        t = t[..., None]
        return base[None, None, :] * (1 - t) + dark[None, None, :] * t, 2.5

    return make


_TONE = {"light": 0, "mid": 1, "dark": 2, "deep": 3}


def _noise(tone: str) -> Maker:
    def make(rng: np.random.Generator) -> tuple[np.ndarray, float]:
        level = (185, 128, 70)[_TONE[tone]]
        base = _jitter((level, level, level + 2), rng, 8)
        blotch = _smooth_noise(4, rng) * 5 + _smooth_noise(24, rng) * rng.uniform(2, 6)
        return _flat(base, blotch), float(rng.uniform(4, 12))

    return make


def _gradient(tone: str) -> Maker:
    def make(rng: np.random.Generator) -> tuple[np.ndarray, float]:
        lo, hi = ((175, 240), (95, 170), (20, 85))[_TONE[tone]]
        a = _jitter((hi,) * 3, rng, 8)
        b = a - rng.uniform(35, hi - lo)
        theta = rng.uniform(0, 2 * np.pi)
        x, y = _grid()
        t = (x - 0.5) * np.cos(theta) + (y - 0.5) * np.sin(theta)
        t = np.clip(t / 1.42 + 0.5, 0, 1)[..., None]
        return a[None, None, :] * (1 - t) + b[None, None, :] * t, 1.0

    return make


def _vignette(tone: str) -> Maker:
    def make(rng: np.random.Generator) -> tuple[np.ndarray, float]:
        level = (225, 165, 95, 246)[_TONE[tone]]
        centre = _jitter((level, level, level - 3), rng, 8 if tone != "deep" else 4)
        depth = ((0.25, 0.45), (0.25, 0.4), (0.45, 0.7), (0.42, 0.55))[_TONE[tone]]
        depth = rng.uniform(*depth)
        x, y = _grid()
        cx, cy = 0.5 + rng.uniform(-0.1, 0.1, size=2)
        r2 = ((x - cx) ** 2 + (y - cy) ** 2) / 0.5
        fall = np.clip(1 - depth * r2**1.2, 0, 1)[..., None]
        return centre[None, None, :] * fall, 1.0

    return make


def _studio(light: bool) -> Maker:
    def make(rng: np.random.Generator) -> tuple[np.ndarray, float]:
        x, y = _grid()
        if light:
            top, bottom = _jitter((222, 222, 220), rng, 6), _jitter((192, 192, 190), rng, 8)
        else:
            top, bottom = _jitter((24, 24, 28), rng, 6), _jitter((52, 52, 56), rng, 8)
        horizon = rng.uniform(0.55, 0.75)
        t = (1 / (1 + np.exp(-(y - horizon) * 14)))[..., None]  # soft sweep, wall to floor
        img = top[None, None, :] * (1 - t) + bottom[None, None, :] * t
        cx, cy = rng.uniform(0.3, 0.7), rng.uniform(0.25, 0.5)
        spot = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * rng.uniform(0.04, 0.12)))
        gain = rng.uniform(25, 40) if light else rng.uniform(40, 80)
        return np.minimum(img + (spot * gain)[..., None], 252), 1.5

    return make


BACKGROUNDS: dict[str, Maker] = {
    "paper": _paper,
    "wood-light": _wood(True),
    "wood-dark": _wood(False),
    "noise-light": _noise("light"),
    "noise-mid": _noise("mid"),
    "noise-dark": _noise("dark"),
    "gradient-light": _gradient("light"),
    "gradient-mid": _gradient("mid"),
    "gradient-dark": _gradient("dark"),
    "vignette-light": _vignette("light"),
    "vignette-mid": _vignette("mid"),
    "vignette-dark": _vignette("dark"),
    "vignette-deep-light": _vignette("deep"),
    "studio-light": _studio(True),
    "studio-dark": _studio(False),
}
"""Background variants by name."""

LIGHT_BACKGROUNDS = frozenset(n for n in BACKGROUNDS if n == "paper" or n.endswith("-light"))
"""Light variants (never behind a white object); `vignette-deep-light` is a near-white centre
falling to mid gray corners."""
DARK_BACKGROUNDS = frozenset(n for n in BACKGROUNDS if n.endswith("-dark"))


def allowed_backgrounds(colors: tuple[str, ...]) -> list[str]:
    """Background variants that no person would confuse with an object of these colours."""
    names = []
    for name in BACKGROUNDS:
        if "white" in colors and name in LIGHT_BACKGROUNDS:
            continue
        if "black" in colors and name in DARK_BACKGROUNDS:
            continue
        if name.startswith("wood") and ({"orange", "yellow"} & set(colors)):
            continue
        names.append(name)
    return names


def make_background(name: str, side: int, rng: np.random.Generator) -> np.ndarray:
    """uint8 (side, side, 3) RGB background `name`: its smooth field resized to the image,
    plus monochrome grain."""
    field, sigma = BACKGROUNDS[name](rng)
    img = cv2.resize(field.astype(np.float32), (side, side), interpolation=cv2.INTER_LINEAR)
    grain = _grain(side, rng) * np.float32(sigma)
    if name == "paper":
        grain = grain + _fibres(side, rng)
    img += grain[..., None]
    return cv2.convertScaleAbs(img)


__all__ = [
    "BACKGROUNDS",
    "DARK_BACKGROUNDS",
    "LIGHT_BACKGROUNDS",
    "allowed_backgrounds",
    "make_background",
]
