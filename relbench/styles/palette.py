"""Colour words as people use them: the shades each palette colour covers, as data.

Pretrained text-to-image models answer "a blue circle" with navy, royal or sky blue and
"a red square" with crimson or orange-red. Each colour word of `relbench.scene.COLOR_RGB`
is therefore given a list of named shades (sRGB anchors a person still calls by that
word); the `colour` style factor picks one and jitters it a little in CIELAB LCh
(lightness L 0..100, chroma C, hue angle h in degrees, OpenCV's Lab), so the images cover
the whole range, not a few points. The ranges are kept conservative: a shade that a
person might call by a neighbouring word (teal, brown, pink, olive) is left out.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

SHADES: dict[str, dict[str, tuple[int, int, int]]] = {
    "red": {
        "pure red": (255, 0, 0),
        "crimson": (215, 20, 55),
        "dark red": (150, 10, 20),
        "fire brick": (178, 34, 34),
        "scarlet": (240, 30, 10),
        "orange-red": (235, 48, 18),
        "cherry": (205, 15, 35),
        "deep red": (125, 8, 18),
    },
    "blue": {
        "pure blue": (0, 0, 255),
        "navy": (0, 28, 128),
        "royal blue": (65, 105, 225),
        "cobalt": (0, 71, 171),
        "dodger blue": (30, 144, 255),
        "sky blue": (95, 175, 235),
        "medium blue": (20, 30, 205),
        "ultramarine": (40, 50, 210),
        "dark navy": (8, 22, 95),
        "light sky blue": (125, 190, 240),
    },
    "green": {
        "pure green": (0, 170, 0),
        "forest green": (34, 139, 34),
        "dark green": (0, 100, 0),
        "lime green": (50, 205, 50),
        "emerald": (0, 155, 80),
        "kelly green": (76, 187, 23),
    },
    "yellow": {
        "pure yellow": (255, 220, 0),
        "lemon": (255, 240, 30),
        "golden yellow": (255, 200, 0),
        "canary": (255, 235, 80),
        "mustard": (230, 185, 25),
    },
    "purple": {
        "pure purple": (150, 0, 200),
        "violet": (140, 30, 180),
        "royal purple": (120, 35, 160),
        "dark purple": (90, 20, 120),
        "amethyst": (160, 90, 190),
        "grape": (115, 30, 150),
        "plum purple": (128, 0, 128),
    },
    "orange": {
        "pure orange": (255, 140, 0),
        "tangerine": (245, 130, 0),
        "pumpkin": (255, 117, 24),
        "burnt orange": (228, 102, 0),
        "carrot": (237, 145, 33),
    },
    "black": {
        "pure black": (0, 0, 0),
        "jet": (20, 20, 22),
        "charcoal": (38, 38, 42),
        "soft black": (45, 40, 40),
    },
    "white": {
        "pure white": (255, 255, 255),
        "off-white": (245, 245, 238),
        "ivory": (255, 253, 235),
        "snow": (250, 247, 247),
    },
}
"""Named shades (sRGB) of each colour word; `colour` samples one and jitters it (LCH_JITTER)."""

SHADE_WEIGHTS: dict[str, float] = {
    "dark red": 2.0, "deep red": 2.0, "navy": 2.0, "dark navy": 2.0, "sky blue": 2.0,
    "light sky blue": 2.0,
}
"""Relative draw weight of a shade (default 1): very dark reds and navies and light sky
blues are where scorers fail on generated images (read as black, or missed), so they come
up about twice as often as other shades."""

LCH_JITTER: tuple[float, float, float] = (4.0, 0.06, 2.0)
"""Jitter around a shade: ± lightness (L units), ± relative chroma, ± hue (degrees). CIELAB
hue crowds blue and purple together (pure blue 306°, the bluest purple shade 316°), so the
hue jitter stays small and the two lists keep a gap of about 10° between them."""

SHADE_FLOOR: dict[str, float] = {"yellow": 0.78, "orange": 0.72, "white": 0.72}
"""Darkest shading factor per colour word (default DEFAULT_SHADE_FLOOR): yellow darkened past
this reads as olive, orange as brown, white as gray. Other words keep their name on a lit
sphere's dark side down to DEFAULT_SHADE_FLOOR because the lit side shows the colour."""

DEFAULT_SHADE_FLOOR = 0.25


def rgb_to_lch(rgb: tuple[int, int, int]) -> tuple[float, float, float]:
    """CIELAB LCh (L 0..100, chroma, hue degrees) of an sRGB triple, via OpenCV."""
    px = np.asarray(rgb, dtype=np.float32).reshape(1, 1, 3) / 255.0
    lab = cv2.cvtColor(px, cv2.COLOR_RGB2Lab)[0, 0]
    return float(lab[0]), math.hypot(lab[1], lab[2]), math.degrees(math.atan2(lab[2], lab[1])) % 360


def _lab_to_rgb(l: float, c: float, h: float) -> tuple[np.ndarray, bool]:
    """(sRGB in 0..1, whether the colour is inside the sRGB gamut); OpenCV clips silently,
    so the gamut test converts back and compares."""
    a, b = c * math.cos(math.radians(h)), c * math.sin(math.radians(h))
    lab = np.array([[[l, a, b]]], dtype=np.float32)
    rgb = cv2.cvtColor(lab, cv2.COLOR_Lab2RGB)
    back = cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab)
    return rgb[0, 0], float(np.abs(back - lab).max()) < 0.5


def lch_to_rgb(l: float, c: float, h: float) -> tuple[int, int, int]:
    """sRGB triple of an LCh colour, via OpenCV. Outside the gamut the chroma is reduced
    (hue and lightness kept) rather than channels clipped, which would shift the hue."""
    rgb, inside = _lab_to_rgb(l, c, h)
    if not inside:
        lo, hi = 0.0, c
        rgb = _lab_to_rgb(l, 0.0, h)[0]
        for _ in range(12):
            mid = (lo + hi) / 2
            cand, ok = _lab_to_rgb(l, mid, h)
            if ok:
                lo, rgb = mid, cand
            else:
                hi = mid
    r, g, b = (int(round(float(v) * 255)) for v in np.clip(rgb, 0.0, 1.0))
    return r, g, b


def sample_shade(word: str, rng: np.random.Generator) -> tuple[str, tuple[int, int, int]]:
    """A random shade of colour `word`: (shade name, jittered sRGB)."""
    names = list(SHADES[word])
    weights = np.array([SHADE_WEIGHTS.get(n, 1.0) for n in names])
    name = names[int(rng.choice(len(names), p=weights / weights.sum()))]
    l0, c, h = rgb_to_lch(SHADES[word][name])
    dl, dc, dh = LCH_JITTER
    l = float(np.clip(l0 + rng.uniform(-dl, dl), 0.0, 100.0))
    c = c * (1.0 + rng.uniform(-dc, dc))
    h = h + rng.uniform(-dh, dh)
    if not _lab_to_rgb(l, c, h)[1]:
        # Out of gamut (a vivid light shade made lighter): keep the shade's own lightness, so
        # the chroma `lch_to_rgb` must give up stays within the jitter and the hue survives
        # the rounding to 8-bit sRGB.
        l = l0
    return name, lch_to_rgb(l, c, h)


def shade_floor(word: str) -> float:
    """The darkest multiplicative shading an object of colour `word` may receive."""
    return SHADE_FLOOR.get(word, DEFAULT_SHADE_FLOOR)


__all__ = [
    "DEFAULT_SHADE_FLOOR",
    "LCH_JITTER",
    "SHADES",
    "SHADE_FLOOR",
    "SHADE_WEIGHTS",
    "lch_to_rgb",
    "rgb_to_lch",
    "sample_shade",
    "shade_floor",
]
