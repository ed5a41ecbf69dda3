"""Painting one object onto an image: anti-aliased coverage, shading, drop shadow, outline.

An outline is a band inside the edge (`ring`) and, for strokes drawn centred on or outside
the edge, the shape grown by the stroke (`expand_polygon`) painted in the outline colour
under the fill; the object's mask is then the grown shape.

Each object is painted inside its own window (its bounding box plus room for the shadow
blur), so the cost depends on the object's size, not the image's. Coverage comes from
OpenCV's anti-aliased polygon fill at 1/16 px precision; the object's mask is coverage
≥ 0.5, so a scorer's centre of the mask is the centre of the drawn shape.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

SUBPIXEL_BITS = 4
"""cv2 fixed-point precision of polygon vertices (1/16 px)."""


@dataclass(frozen=True)
class Window:
    """A rectangle of the image: rows r0..r1-1, columns c0..c1-1."""

    r0: int
    r1: int
    c0: int
    c1: int

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.r0, self.r1), slice(self.c0, self.c1)

    @property
    def shape(self) -> tuple[int, int]:
        return self.r1 - self.r0, self.c1 - self.c0


def window_around(points_px: np.ndarray, pad: float, side: int) -> Window:
    """The window holding pixel-coordinate points with `pad` px around, clipped to the image."""
    lo = np.floor(points_px.min(axis=0) - pad).astype(int)
    hi = np.ceil(points_px.max(axis=0) + pad).astype(int) + 1
    return Window(max(lo[1], 0), min(hi[1], side), max(lo[0], 0), min(hi[0], side))


def coverage(
    points_px: np.ndarray, win: Window, offset: tuple[float, float] = (0.0, 0.0)
) -> np.ndarray:
    """float32 anti-aliased coverage (0..1) of the polygon over `win`.

    `points_px` are continuous image coordinates (pixel i spans [i, i+1)); cv2 puts pixel
    centres on integers, hence the -0.5.
    """
    canvas = np.zeros(win.shape, dtype=np.uint8)
    shifted = points_px + np.asarray(offset) - np.array([win.c0 + 0.5, win.r0 + 0.5])
    pts = np.round(shifted * (1 << SUBPIXEL_BITS)).astype(np.int32)
    cv2.fillPoly(canvas, [pts], 255, cv2.LINE_AA, SUBPIXEL_BITS)
    return canvas.astype(np.float32) * np.float32(1 / 255)


def ring(points_px: np.ndarray, win: Window, width_px: float) -> np.ndarray:
    """float32 coverage of a band `width_px` wide just inside the polygon's edge."""
    canvas = np.zeros(win.shape, dtype=np.uint8)
    shifted = points_px - np.array([win.c0 + 0.5, win.r0 + 0.5])
    pts = np.round(shifted * (1 << SUBPIXEL_BITS)).astype(np.int32)
    thickness = max(1, int(round(2 * width_px)))
    cv2.polylines(canvas, [pts], True, 255, thickness, cv2.LINE_AA, SUBPIXEL_BITS)
    return canvas.astype(np.float32) * np.float32(1 / 255)


def expand_polygon(points: np.ndarray, width: float, steps: int = 32) -> np.ndarray:
    """The convex polygon `points` grown by `width` all round (its Minkowski sum with a disc,
    as a polygon): the outer edge of a stroke drawn outside the shape's edge.

    Growing by a disc moves neither the bounding-box centre nor the enclosing-circle centre,
    and leaves the centroid of a centrally symmetric shape (circle, square, ellipse) or an
    equilateral triangle where it was.
    """
    if width <= 0:
        return points
    t = np.linspace(0.0, 2 * math.pi, steps, endpoint=False)
    disc = np.stack([np.cos(t), np.sin(t)], axis=1) * width  # (K, 2)
    cloud = (points[:, None, :] + disc[None, :, :]).reshape(-1, 2)  # (N*K, 2)
    idx = cv2.convexHull(cloud.astype(np.float32), returnPoints=False).reshape(-1)
    return cloud[idx]  # (M, 2), in hull order


def _local_grid(win: Window, centre_px: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre offsets from `centre_px` over the window: x (1, w), y (h, 1)."""
    x = np.arange(win.c0, win.c1, dtype=np.float32)[None, :] + np.float32(0.5 - centre_px[0])
    y = np.arange(win.r0, win.r1, dtype=np.float32)[:, None] + np.float32(0.5 - centre_px[1])
    return x, y


def shade_field(
    kind: str,
    win: Window,
    centre_px: np.ndarray,
    radius_px: float,
    darkest: float,
    light: float,
    rng: np.random.Generator,
    axes: tuple[float, float, float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(factor, highlight) float32 fields over the window for shading `kind`.

    The colour becomes base·factor where factor ≤ 1, is lightened toward white by
    factor − 1 above 1, then mixed toward white by `highlight` (0..1). `darkest` is the
    smallest factor anywhere (the caller keeps it above the colour word's limit); `light`
    the direction (radians, image axes, y down) the light comes from. `axes` (semi-major,
    semi-minor, angle in degrees) shapes a lit sphere to an ellipse.

    - sphere: Lambert shading falling to `darkest` on the far side, a darker rim (limb
      darkening) and a small near-white specular highlight, as DiTs draw a lit ball;
    - linear / radial: a gradient from up to 1.15 (lightened) toward the light down to
      `darkest`; specular: a flat fill with a soft highlight blob.
    """
    x, y = _local_grid(win, centre_px)
    lx, ly = math.cos(light), math.sin(light)
    if kind == "sphere":
        a, b, ang = axes if axes is not None else (radius_px, radius_px, 0.0)
        ca, sa = math.cos(math.radians(ang)), math.sin(math.radians(ang))
        u = (x * ca + y * sa) / a
        v = (-x * sa + y * ca) / b
        z = np.sqrt(np.clip(1 - u * u - v * v, 0, 1))
        l3 = np.array([lx * 0.7, ly * 0.7, 0.7])
        l3 /= np.linalg.norm(l3)
        # Light direction in the ellipse's own frame (rotation only; good enough for ≤1.25).
        lu, lv = l3[0] * ca + l3[1] * sa, -l3[0] * sa + l3[1] * ca
        diffuse = np.clip(u * lu + v * lv + z * l3[2], 0, 1)
        factor = darkest + (rng.uniform(1.0, 1.1) - darkest) * diffuse
        rim = np.float32(rng.uniform(0.15, 0.4))
        factor = np.maximum(factor * (1 - rim * (1 - z) ** 2), np.float32(darkest))
        half = np.array([lu, lv, l3[2] + 1.0])
        half /= np.linalg.norm(half)
        spec = np.clip(u * half[0] + v * half[1] + z * half[2], 0, 1) ** rng.uniform(40, 120)
        return factor, spec * np.float32(rng.uniform(0.85, 1.0))
    if kind == "linear":
        t = (x * lx + y * ly) / radius_px  # 1 toward the light .. -1 away
        hi = rng.uniform(1.0, 1.15)
        factor = hi + (darkest - hi) * np.clip((1 - t) / 2, 0, 1)
        return factor, np.zeros((1, 1), np.float32)
    if kind == "radial":
        px, py = lx * 0.4 * radius_px, ly * 0.4 * radius_px
        d = np.sqrt((x - px) ** 2 + (y - py) ** 2) / (1.4 * radius_px)
        hi = rng.uniform(1.0, 1.15)
        factor = hi + (darkest - hi) * np.clip(d, 0, 1)
        return factor, np.zeros((1, 1), np.float32)
    if kind == "specular":
        px, py = lx * 0.45 * radius_px, ly * 0.45 * radius_px
        r = rng.uniform(0.15, 0.3) * radius_px
        blob = np.exp(-((x - px) ** 2 + (y - py) ** 2) / (2 * r * r))
        return np.ones((1, 1), np.float32), blob * np.float32(rng.uniform(0.55, 0.9))
    raise ValueError(f"unknown shading {kind!r}")


def apply_shading(base: np.ndarray, factor: np.ndarray, highlight: np.ndarray) -> np.ndarray:
    """(h, w, 3) float32 colour field from a base RGB and shade_field's output."""
    f = factor[..., None].astype(np.float32)
    dark = base[None, None, :] * np.minimum(f, 1)
    col = dark + (255 - dark) * np.clip(f - 1, 0, 1)
    hl = highlight[..., None]
    return col + (255 - col) * hl


def drop_shadow(
    image: np.ndarray,
    points_px: np.ndarray,
    offset_px: tuple[float, float],
    blur_px: float,
    opacity: float,
) -> None:
    """Darken `image` (uint8, in place) under a blurred copy of the polygon moved by
    `offset_px`: a soft, dark, low-chroma shadow."""
    side = image.shape[0]
    pad = 3 * blur_px + 2
    win = window_around(points_px + np.asarray(offset_px), pad, side)
    if win.shape[0] <= 0 or win.shape[1] <= 0:
        return
    alpha = coverage(points_px, win, offset_px)
    alpha = cv2.GaussianBlur(alpha, (0, 0), max(blur_px, 0.5)) * np.float32(opacity)
    region = image[win.slices].astype(np.float32)
    tint = np.float32(12.0)  # shadows fall toward a near-black, neutral colour
    region += (tint - region) * alpha[..., None]
    image[win.slices] = to_uint8(region)


def composite(image: np.ndarray, win: Window, colour: np.ndarray, alpha: np.ndarray) -> None:
    """Blend a colour field over `image` (uint8, in place) with coverage `alpha`."""
    region = image[win.slices].astype(np.float32)
    region += (colour - region) * alpha[..., None]
    image[win.slices] = to_uint8(region)


def to_uint8(values: np.ndarray) -> np.ndarray:
    """Round and saturate non-negative float values to uint8 (cv2: faster than numpy)."""
    return cv2.convertScaleAbs(values)


__all__ = [
    "SUBPIXEL_BITS",
    "Window",
    "apply_shading",
    "composite",
    "coverage",
    "drop_shadow",
    "expand_polygon",
    "ring",
    "shade_field",
    "to_uint8",
    "window_around",
]
