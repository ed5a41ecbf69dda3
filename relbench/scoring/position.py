"""Which point stands for a detected object: the named position conventions.

The strict relation rule compares offsets with a 5 px band (at 128 px), so the point chosen
for a triangle decides verdicts: its bounding-box centre lies h/6 (≈ 4.6 px) above its
centroid and the paper's anchor h/3 (≈ 9.2 px) above it. A scorer names its convention
(`DetectorConfig.position`) and scores a model by the convention of its training data
(`relbench.scene.NATIVE_CONVENTION`). For circles and squares all conventions coincide.

`object_position` is pure: it takes what the shape fit knows about one component and returns
the point in working-image pixel-index coordinates (pixel i's centre is i), as `_fit` uses.

- centroid: the pixel centroid of a fully visible triangle (unbiased, unlike the fit's), the
  fitted triangle's centroid when it is partly hidden.
- bbox: the centre of the box spanned by the fitted triangle, whose lower edge is the outer
  edge of the lowest pixel row when the triangle is fully visible (a flat base is placed
  better by its pixels, a sharp corner by the fit).
- paper_anchor: one third of the height below the apex, along the triangle's own axis. The
  apex is the vertex of the fitted triangle whose axis (from the opposite side's midpoint to
  the vertex) points most nearly up the image: the paper draws its triangles apex up, and
  unlike "the vertex opposite the shortest side" this needs no threshold and picks the top
  vertex of squat and of tall triangles alike. A fully visible triangle's anchor is its pixel
  centroid moved towards the apex by a third of its extent along the axis (the extent of the
  pixel centres; both unbiased for a filled shape); a partly hidden one's is the fitted
  triangle's apex + (opposite midpoint − apex) / 3.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from relbench.scene import NATIVE_CONVENTION, check_convention, check_geometry

RotatedRect = tuple[tuple[float, float], tuple[float, float], float]

DETECTOR_OF_CONVENTION: dict[str, str] = {
    "centroid": "default", "bbox": "bbox", "paper_anchor": "paper",
}
"""The shipped detector config (detectors/NAME.json) of each position convention."""


def detector_for_geometry(geometry: str) -> str:
    """The shipped detector that scores a model trained on `geometry` data by its own
    convention: `default` for relbench, `paper` for the paper's data."""
    return DETECTOR_OF_CONVENTION[NATIVE_CONVENTION[check_geometry(geometry)]]


@dataclass(frozen=True)
class Component:
    """What the shape fit knows about one colour component (working-image pixel indices).

    `contour` is the component's outer boundary (cv2 layout, (N, 1, 2)), `mask` the uint8 mask
    of its whole colour class, `circle_center` the enclosing circle's centre (used for a partly
    hidden circle), `rect` the min-area rectangle, `triangle` the (3, 2) min enclosing triangle
    through pixel centres (None when it was not fitted), `occluded` whether another object
    touches it.
    """

    shape: str
    contour: np.ndarray
    mask: np.ndarray
    circle_center: tuple[float, float] | None  # computed for an occluded object only
    rect: RotatedRect
    triangle: np.ndarray | None
    occluded: bool


def object_position(c: Component, convention: str) -> tuple[float, float]:
    """(x, y) of the object under `convention` (one of POSITION_CONVENTIONS)."""
    check_convention(convention)
    if at_pixel_centroid(c.shape, c.occluded):
        return pixel_centroid(c.contour, c.mask)
    if c.shape == "circle":  # partly hidden: the enclosing circle's centre
        return float(c.circle_center[0]), float(c.circle_center[1])
    tri = None if c.triangle is None else np.asarray(c.triangle, dtype=np.float64).reshape(3, 2)
    hidden_triangle = c.shape == "triangle" and c.occluded and tri is not None
    if convention == "bbox":
        x, y, bw, bh = cv2.boundingRect(c.contour)
        if c.shape != "triangle" or tri is None:
            return x + (bw - 1) / 2, y + (bh - 1) / 2
        lo, hi = tri.min(axis=0), tri.max(axis=0)
        if c.occluded:
            return float(lo[0] + hi[0]) / 2, float(lo[1] + hi[1]) / 2
        # A sharp corner is sampled by few pixels, so the fit (extrapolated from the sides)
        # places the apex and the base corners better than the pixel box; the flat base is
        # placed better by the lowest pixel row's outer edge (the fit runs through its centres).
        return float(lo[0] + hi[0]) / 2, float(lo[1] + (y + bh - 0.5)) / 2
    if convention == "paper_anchor" and c.shape == "triangle" and tri is not None:
        apex, mid = _apex(tri)
        if c.occluded:
            a = apex + (mid - apex) / 3
            return float(a[0]), float(a[1])
        u = (apex - mid) / np.linalg.norm(apex - mid)  # unit axis, towards the apex
        proj = c.contour.reshape(-1, 2).astype(np.float64) @ u
        gx, gy = pixel_centroid(c.contour, c.mask)
        step = (proj.max() - proj.min()) / 3
        return gx + u[0] * step, gy + u[1] * step
    if hidden_triangle:  # centroid of a partly hidden triangle: the fit's, where it is centred
        (ax, ay), (bx, by), (cx, cy) = tri.tolist()
        return (ax + bx + cx) / 3, (ay + by + cy) / 3  # tri.mean(axis=0), without its overhead
    return pixel_centroid(c.contour, c.mask)


def at_pixel_centroid(shape: str, occluded: bool) -> bool:
    """Whether every convention places the object at its pixel centroid: a square, or a circle
    nothing hides. For symmetric shapes centroid, box centre and anchor coincide, and the pixel
    centroid is the most precise estimate of all of them (sub-pixel, unlike the extreme pixels a
    fitted rectangle or circle rests on)."""
    return shape == "square" or (shape == "circle" and not occluded)


def pixel_centroid(contour: np.ndarray | None, mask: np.ndarray) -> tuple[float, float]:
    """Centroid of the colour pixels within the component's bounding rectangle (`contour` None:
    the whole mask is that rectangle)."""
    if contour is None:
        x = y = 0
    else:
        x, y, bw, bh = cv2.boundingRect(contour)
        mask = mask[y : y + bh, x : x + bw]
    mom = cv2.moments(mask, binaryImage=True)
    return x + mom["m10"] / mom["m00"], y + mom["m01"] / mom["m00"]


def apex_index(tri: np.ndarray) -> int:
    """Index of the apex of a (3, 2) triangle (y down): the vertex whose axis, from the
    opposite side's midpoint to the vertex, points most nearly up."""
    tri = np.asarray(tri, dtype=np.float64).reshape(3, 2)
    best, best_up = 0, np.inf
    for i in range(3):
        axis = tri[i] - (tri[(i + 1) % 3] + tri[(i + 2) % 3]) / 2
        n = np.linalg.norm(axis)
        up = axis[1] / n if n > 0 else np.inf
        if up < best_up:
            best, best_up = i, up
    return best


def _apex(tri: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(apex, midpoint of the opposite side)."""
    i = apex_index(tri)
    return tri[i], (tri[(i + 1) % 3] + tri[(i + 2) % 3]) / 2


__all__ = [
    "DETECTOR_OF_CONVENTION", "Component", "apex_index", "at_pixel_centroid",
    "detector_for_geometry", "object_position", "pixel_centroid",
]
