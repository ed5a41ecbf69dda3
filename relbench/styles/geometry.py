"""Shape outlines as polygons, the centre definitions a scorer might use, and layouts whose
relation holds under all of them.

Everything here is in scene fractions (x right, y down, 1.0 = the image side), so a layout
is drawn identically at any resolution. A shape is a convex polygon; circles and rounded
corners are polygons with enough vertices to be smooth at 1024 px.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from relbench.scene import DIRECTION, STRICT_THRESHOLD, strict_relation

MAX_ROTATION_DEG = 25.0
"""Squares turn by at most this much under `geometry`."""
MAX_CORNER_RADIUS = 0.25
"""Rounded-corner radius, as a fraction of the square's side, at most."""
MIN_TRIANGLE_ANGLE_DEG = 28.0
"""Every angle of a `geometry` triangle is at least this (still clearly a triangle)."""
MAX_ELLIPSE_RATIO = 1.25
"""Major/minor axis ratio of a `geometry` circle, at most."""

BOUNDARY_MARGIN = 0.02
"""Every centre definition keeps the relation at thresholds T ± this (fractions of the side)."""
MIN_GAP = 0.045
"""Clear gap between the two shapes, at least (fraction of the side)."""
BORDER = 0.05
"""No shape comes nearer than this to the image border (fraction of the side)."""
CARDINAL_SLACK = 0.003
"""A cardinal pair's off-axis offset lies within ± this of the middle of the centre
definitions' offsets (so every definition sees the pair in line)."""
DIAGONAL_ANGLES_DEG = (30.0, 60.0)
"""A diagonal pair's direction lies between these angles from the horizontal."""

CENTRE_DEFINITIONS: tuple[str, ...] = ("centroid", "bbox", "circle")
"""Centroid, bounding-box centre, centre of the minimum enclosing circle."""


@dataclass(frozen=True)
class Outline:
    """A convex shape: `points` (N, 2) relative to its centroid, and how it was made."""

    shape: str
    points: np.ndarray
    variant: str
    axes: tuple[float, float, float] | None = None
    """Semi-major, semi-minor axis and angle (degrees) of a circle or ellipse."""

    @property
    def extent(self) -> float:
        """The larger side of the axis-aligned bounding box."""
        span = self.points.max(axis=0) - self.points.min(axis=0)
        return float(span.max())


def _ring(n: int) -> np.ndarray:
    t = np.linspace(0.0, 2 * math.pi, n, endpoint=False)
    return np.stack([np.cos(t), np.sin(t)], axis=1)


def _rotate(points: np.ndarray, degrees: float) -> np.ndarray:
    a = math.radians(degrees)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return points @ rot.T


def polygon_centroid(points: np.ndarray) -> np.ndarray:
    """Area centroid of a simple polygon (shoelace formula)."""
    x, y = points[:, 0], points[:, 1]
    x1, y1 = np.roll(x, -1), np.roll(y, -1)
    cross = x * y1 - x1 * y
    area = cross.sum() / 2
    return np.array([((x + x1) * cross).sum(), ((y + y1) * cross).sum()]) / (6 * area)


def _centred(
    shape: str, points: np.ndarray, variant: str, axes: tuple[float, float, float] | None = None
) -> Outline:
    return Outline(shape, points - polygon_centroid(points), variant, axes)


def make_outline(shape: str, extent: float, rng: np.random.Generator, free: bool) -> Outline:
    """The outline of `shape` with extent `extent` (diameter or side). With `free` (the
    `geometry` factor) the shape is varied: ellipses, turned and rounded squares, triangles
    of any proportion and orientation; without, the paper's circle, square and apex-up
    equilateral triangle."""
    if shape == "circle":
        ratio = float(rng.uniform(1.0, MAX_ELLIPSE_RATIO)) if free else 1.0
        angle = float(rng.uniform(0, 180)) if free else 0.0
        pts = _ring(96) * np.array([extent / 2, extent / 2 / ratio])
        variant = f"ellipse {ratio:.2f}" if free else "circle"
        axes = (extent / 2, extent / 2 / ratio, angle)
        return _centred(shape, _rotate(pts, angle), variant, axes)
    if shape == "square":
        if not free:
            h = extent / 2
            return _centred(shape, np.array([[-h, -h], [h, -h], [h, h], [-h, h]]), "square")
        angle = float(rng.uniform(-MAX_ROTATION_DEG, MAX_ROTATION_DEG))
        radius = float(rng.uniform(0, MAX_CORNER_RADIUS)) * extent if rng.random() < 0.6 else 0.0
        pts = _rounded_square(extent, radius)
        return _centred(shape, _rotate(pts, angle), f"rot {angle:+.0f} round {radius / extent:.2f}")
    if shape == "triangle":
        if not free:
            s, h = extent, extent * math.sqrt(3) / 2
            pts = np.array([[0, -2 * h / 3], [s / 2, h / 3], [-s / 2, h / 3]])
            return _centred(shape, pts, "equilateral")
        angles = _triangle_angles(rng)
        pts = _triangle(angles, extent)
        turn = float(rng.uniform(0, 360))
        variant = "angles " + "/".join(f"{a:.0f}" for a in angles) + f" turn {turn:.0f}"
        return _centred(shape, _rotate(pts, turn), variant)
    raise ValueError(f"unknown shape {shape!r}")


def _rounded_square(side: float, radius: float) -> np.ndarray:
    h = side / 2
    if radius <= 0:
        return np.array([[-h, -h], [h, -h], [h, h], [-h, h]])
    arc = np.linspace(0, math.pi / 2, 12)
    pts = []
    for cx, cy, start in ((h, h, 0.0), (-h, h, 0.5), (-h, -h, 1.0), (h, -h, 1.5)):
        cx, cy = cx - math.copysign(radius, cx), cy - math.copysign(radius, cy)
        t = arc + start * math.pi
        pts.append(np.stack([cx + radius * np.cos(t), cy + radius * np.sin(t)], axis=1))
    return np.concatenate(pts)


def _triangle_angles(rng: np.random.Generator) -> tuple[float, float, float]:
    lo = MIN_TRIANGLE_ANGLE_DEG
    while True:
        a, b = rng.uniform(lo, 180 - 2 * lo, size=2)
        c = 180 - a - b
        if c >= lo:
            return float(a), float(b), float(c)


def _triangle(angles: tuple[float, float, float], extent: float) -> np.ndarray:
    """A triangle with these angles, scaled to the area of an equilateral triangle of side
    `extent` but with no side longer than 1.35 × `extent`."""
    a, b, _ = (math.radians(v) for v in angles)
    c_side = 1.0  # side between the vertices at angles a and b
    apex_x = c_side * math.tan(b) / (math.tan(a) + math.tan(b))
    apex_y = apex_x * math.tan(a)
    pts = np.array([[0.0, 0.0], [c_side, 0.0], [apex_x, -apex_y]])
    area = 0.5 * c_side * apex_y
    scale = math.sqrt(math.sqrt(3) / 4 * extent**2 / area)
    longest = max(np.linalg.norm(pts[i] - pts[(i + 1) % 3]) for i in range(3))
    scale = min(scale, 1.35 * extent / longest)
    return pts * scale


def outline_centres(points: np.ndarray) -> np.ndarray:
    """(3, 2): centroid, bounding-box centre and enclosing-circle centre of a polygon,
    in CENTRE_DEFINITIONS order."""
    bbox = (points.min(axis=0) + points.max(axis=0)) / 2
    (cx, cy), _ = cv2.minEnclosingCircle(points.astype(np.float32))
    return np.stack([polygon_centroid(points), bbox, np.array([cx, cy])])


def mask_centres(mask: np.ndarray, origin: tuple[int, int] = (0, 0),
                 shape: tuple[int, int] | None = None) -> np.ndarray:
    """(3, 2): centroid, bounding-box centre and enclosing-circle centre of a boolean mask
    as fractions of width/height (pixel i's centre at i + 0.5, as in relbench.render).

    `mask` may be a window of a larger image: `origin` (row, column) is its top-left pixel
    there and `shape` (H, W) the larger image's size.
    """
    h, w = shape if shape is not None else mask.shape
    m = np.ascontiguousarray(mask, dtype=np.uint8)
    moments = cv2.moments(m, binaryImage=True)
    if moments["m00"] == 0:
        raise ValueError("empty mask has no centre")
    centroid = np.array([moments["m10"], moments["m01"]]) / moments["m00"]
    x, y, bw, bh = cv2.boundingRect(m)
    bbox = np.array([x + (bw - 1) / 2, y + (bh - 1) / 2])
    contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    (cx, cy), _ = cv2.minEnclosingCircle(np.concatenate(contours).reshape(-1, 2))
    offset = np.array([origin[1], origin[0]], dtype=np.float64) + 0.5
    scale = np.array([w, h], dtype=np.float64)
    return (np.stack([centroid, bbox, np.array([cx, cy])]) + offset) / scale


def relation_is_clear(dxy: np.ndarray, relation: str, margin: float) -> bool:
    """Whether every row (dx, dy) of `dxy` gives `relation` at thresholds T - margin and
    T + margin alike (no decision boundary within `margin`)."""
    for dx, dy in dxy:
        for t in (STRICT_THRESHOLD - margin, STRICT_THRESHOLD + margin):
            if strict_relation(float(dx), float(dy), t) != relation:
                return False
    return True


def place(
    subject: Outline, reference: Outline, relation: str, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray] | None:
    """Centroid positions (x, y) of subject and reference so that `relation` holds under
    every centre definition with BOUNDARY_MARGIN, the shapes are at least MIN_GAP apart and
    both stay BORDER from the image edges; None when this pair of outlines does not fit."""
    ux, uy = DIRECTION[relation]
    cs, cr = outline_centres(subject.points), outline_centres(reference.points)
    if ux == 0 or uy == 0:
        u = np.array([ux, uy], dtype=np.float64)
        # Off-axis offsets of the other definitions relative to the centroids'; centre them.
        perp = np.array([abs(uy), abs(ux)], dtype=np.float64)
        rel = (cs - cr) @ perp
        off = -(rel.min() + rel.max()) / 2 + rng.uniform(-CARDINAL_SLACK, CARDINAL_SLACK)
    else:
        ang = math.radians(rng.uniform(*DIAGONAL_ANGLES_DEG))
        u = np.array([ux * math.cos(ang), uy * math.sin(ang)])
        perp, off = np.zeros(2), 0.0
    # Separation along u: the subject's nearest point beyond the reference's farthest.
    need = (reference.points @ u).max() - (subject.points @ u).min()
    room_lo, room_hi = BORDER, 1.0 - BORDER
    for _ in range(8):
        gap = MIN_GAP + rng.exponential(0.08)
        delta = u * (need + gap) / (u @ u) + perp * off  # subject centroid - reference centroid
        pts = np.concatenate([subject.points + delta, reference.points])
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        span = hi - lo
        if np.any(span > room_hi - room_lo):
            continue
        shift = rng.uniform(room_lo - lo, room_hi - hi)  # reference centroid position
        if not relation_is_clear((cs + delta) - cr, relation, BOUNDARY_MARGIN):
            return None
        return shift + delta, shift
    return None


__all__ = [
    "BORDER",
    "BOUNDARY_MARGIN",
    "CARDINAL_SLACK",
    "CENTRE_DEFINITIONS",
    "DIAGONAL_ANGLES_DEG",
    "MAX_CORNER_RADIUS",
    "MAX_ELLIPSE_RATIO",
    "MAX_ROTATION_DEG",
    "MIN_GAP",
    "MIN_TRIANGLE_ANGLE_DEG",
    "Outline",
    "make_outline",
    "mask_centres",
    "outline_centres",
    "place",
    "polygon_centroid",
    "relation_is_clear",
]
