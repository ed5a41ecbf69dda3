"""Draw scenes as RGB arrays (numpy only, no torch): the paper's look and the ground truth.

Pixel convention (shared with the scorer): pixel (row j, column i) covers the square
[i, i+1) × [j, j+1) in continuous image coordinates, so its centre is (i + 0.5, j + 0.5).
An object centred at the scene fraction x lies at x·size in those coordinates (a centre of
0.5 at 128 px is 64.0: the corner between pixels 63 and 64). In flat mode a pixel belongs
to a shape when its *centre* lies inside the shape (boundary included), so for a pixel mask
the continuous centroid is ``mean(column index) + 0.5`` and the scene fraction is that
divided by the width — `mask_centroid` does exactly this and is what scorers should use.
With this rule the centroid of a rendered disk or square is within 0.5 px of the scene
centre on each axis (tested for all three shapes).

Shapes, with s = obj.size·size: circle = disk of diameter s; square = axis-aligned, side s;
triangle = equilateral, side s, apex up, centred on its centroid (apex 2h/3 above the
centre, base h/3 below, h = s·√3/2). Anti-aliasing supersamples each pixel on a k×k grid
and averages (exact area-weighted downsampling of the supersampled image).

Geometry `paper` (see `relbench.scene.GEOMETRIES`) draws instead exactly what the paper's
generator draws: PIL ImageDraw calls at pixel-index centre (X, Y) = (x·size − ½, y·size − ½)
with r = s/2: circle `ellipse((X−r, Y−r, X+r, Y+r))`, square `rectangle((X−s//2, Y−s//2,
X+s//2, Y+s//2))` (both ends included: 33 px at 128), triangle `polygon` through (X, Y − h/3),
(X − s/2, Y + 2h/3), (X + s/2, Y + 2h/3), whose coordinates PIL truncates to whole pixels (at
128 px the drawn apex lies 10 px above (X, Y) and the base 18 px below). Flat fill only.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np

from PIL import Image, ImageDraw

from relbench.scene import COLOR_RGB, SHAPES, Scene, SceneObject, check_geometry, did_you_mean

MIN_SIZE = 32
MAX_SIZE = 1024
ANTIALIAS_FACTOR = 4
"""Sub-samples per pixel side when anti-aliasing (4 → 16 samples per pixel)."""

_SQRT3 = math.sqrt(3.0)


def check_size(size: int) -> int:
    """Return `size` if it is an int image side the renderer supports, else raise ValueError."""
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
        raise ValueError(f"image size must be an integer, got {size!r}")
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise ValueError(f"image size {size} out of range: choose {MIN_SIZE}..{MAX_SIZE} px")
    return int(size)


def object_rgb(obj: SceneObject) -> tuple[int, int, int]:
    """The render colour of an object, with a clear error for an unknown colour name."""
    try:
        return COLOR_RGB[obj.color]
    except KeyError:
        raise ValueError(
            f"unknown colour {obj.color!r}{did_you_mean(str(obj.color), COLOR_RGB)}"
        ) from None


def _check_object(obj: SceneObject) -> None:
    if obj.shape not in SHAPES:
        raise ValueError(f"unknown shape {obj.shape!r}{did_you_mean(str(obj.shape), SHAPES)}")
    object_rgb(obj)
    for name in ("x", "y", "size"):
        v = getattr(obj, name)
        if not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"object {name} must be a finite number, got {v!r}")
    if obj.size <= 0:
        raise ValueError(f"object size must be positive, got {obj.size!r}")


def _bbox(obj: SceneObject, size: int) -> tuple[int, int, int, int]:
    """Inclusive pixel bounds (r0, r1, c0, c1) of the candidates for `obj` at `size` px,
    unclipped: pixel i is a candidate when its centre i + 0.5 lies within the shape's box."""
    cx, cy, s = obj.x * size, obj.y * size, obj.size * size
    # Half-extent of a box containing the shape in every case (triangle circumradius s/√3).
    half = s / _SQRT3 if obj.shape == "triangle" else s / 2
    return (
        math.ceil(cy - half - 0.5),
        math.floor(cy + half - 0.5),
        math.ceil(cx - half - 0.5),
        math.floor(cx + half - 0.5),
    )


def _shape_mask(
    obj: SceneObject, size: int, clip: tuple[int, int, int, int]
) -> tuple[int, int, np.ndarray] | None:
    """Pixels whose centres lie inside `obj` (rendered at `size` px) within the inclusive
    pixel window `clip` = (r0, r1, c0, c1).

    Returns (first row, first column, boolean mask of the object's box) or None when the
    object misses the window.
    """
    b = _bbox(obj, size)
    r0, r1 = max(b[0], clip[0]), min(b[1], clip[1])
    c0, c1 = max(b[2], clip[2]), min(b[3], clip[3])
    if c0 > c1 or r0 > r1:
        return None
    cx, cy, s = obj.x * size, obj.y * size, obj.size * size
    px = np.arange(c0, c1 + 1, dtype=np.float64)[None, :] + (0.5 - cx)  # (1, W') offsets
    py = np.arange(r0, r1 + 1, dtype=np.float64)[:, None] + (0.5 - cy)  # (H', 1) offsets
    if obj.shape == "circle":
        r = s / 2
        mask = px * px + py * py <= r * r
    elif obj.shape == "square":
        mask = (np.abs(px) <= s / 2) & (np.abs(py) <= s / 2)
    else:  # triangle, apex up: inside when within both apex lines and above the base
        h = s * _SQRT3 / 2
        apex_depth = py + 2 * h / 3  # distance below the apex
        mask = (py <= h / 3) & (_SQRT3 * np.abs(px) <= apex_depth)
    return r0, c0, mask


def _paint(
    scene: Scene, size: int, out: np.ndarray, values: Sequence, origin: tuple[int, int] = (0, 0)
) -> None:
    """Write values[i] where object i is inside, in order, into `out`, a window of the
    size-px image whose top-left pixel is `origin` (later objects cover earlier ones)."""
    oy, ox = origin
    clip = (oy, oy + out.shape[0] - 1, ox, ox + out.shape[1] - 1)
    for obj, value in zip(scene.objects, values):
        hit = _shape_mask(obj, size, clip)
        if hit is not None:
            r0, c0, mask = hit
            h, w = mask.shape
            out[r0 - oy : r0 - oy + h, c0 - ox : c0 - ox + w][mask] = value


def _paper_index(v: float) -> float:
    """A scene coordinate times the size, minus ½: PIL's pixel-index coordinate. Whole values
    are snapped exactly (PIL truncates polygon vertices, so 63.9999999 must not become 63)."""
    r = round(v)
    return float(r) if abs(v - r) < 1e-6 else v


def _paper_paint(scene: Scene, size: int, image: Image.Image, inks: Sequence) -> None:
    """Draw the objects in order onto a PIL image as the paper's generator does."""
    draw = ImageDraw.Draw(image)
    for obj, ink in zip(scene.objects, inks):
        x, y = _paper_index(obj.x * size - 0.5), _paper_index(obj.y * size - 0.5)
        s = obj.size * size
        if obj.shape == "circle":
            r = s / 2
            draw.ellipse([(x - r, y - r), (x + r, y + r)], fill=ink)
        elif obj.shape == "square":
            half = s // 2
            draw.rectangle([(x - half, y - half), (x + half, y + half)], fill=ink)
        else:
            h = s * _SQRT3 / 2
            draw.polygon([(x, y - h / 3), (x - s / 2, y + 2 * h / 3), (x + s / 2, y + 2 * h / 3)],
                         fill=ink)


def _raster_labels(scene: Scene, size: int, geometry: str = "relbench") -> np.ndarray:
    if geometry == "paper":
        canvas = Image.new("I", (size, size), 0)
        _paper_paint(scene, size, canvas, range(1, len(scene.objects) + 1))
        return np.asarray(canvas, dtype=np.int16)
    labels = np.zeros((size, size), dtype=np.int16)
    _paint(scene, size, labels, range(1, len(scene.objects) + 1))
    return labels


def _check_scene(scene: Scene) -> None:
    if not isinstance(scene, Scene):
        raise ValueError(f"expected a relbench.scene.Scene, got {type(scene).__name__}")
    if len(scene.objects) > np.iinfo(np.int16).max - 1:
        raise ValueError(f"too many objects to label: {len(scene.objects)}")
    for obj in scene.objects:
        _check_object(obj)
    bg = tuple(scene.background)
    if len(bg) != 3 or not all(isinstance(v, (int, np.integer)) and 0 <= v <= 255 for v in bg):
        raise ValueError(f"background must be three integers in 0..255, got {scene.background!r}")


def render_labels(scene: Scene, size: int = 128, *, geometry: str = "relbench") -> np.ndarray:
    """(size, size) int16 label map: 0 background, i + 1 where object i is visible.

    Later objects cover earlier ones, exactly as in `render` (flat mode): both paint the
    same pixel masks in the same order.
    """
    _check_scene(scene)
    return _raster_labels(scene, check_size(size), check_geometry(geometry))


def render(
    scene: Scene, size: int = 128, *, antialias: bool = False, geometry: str = "relbench"
) -> np.ndarray:
    """(size, size, 3) uint8 RGB image of `scene`, drawn in `geometry` (see the module doc).

    Flat mode (default, the paper's data) uses exactly the scene's colours; anti-aliased
    mode averages ANTIALIAS_FACTOR² sub-samples per pixel, so only edge pixels mix colours.
    The `paper` geometry is flat only, as the paper's data is.
    """
    _check_scene(scene)
    size = check_size(size)
    colors = [object_rgb(o) for o in scene.objects]
    if check_geometry(geometry) == "paper":
        if antialias:
            raise ValueError("the paper geometry is drawn flat (no anti-aliasing), as the "
                             "paper's data is; drop antialias or use geometry 'relbench'")
        canvas = Image.new("RGB", (size, size), tuple(int(v) for v in scene.background))
        _paper_paint(scene, size, canvas, colors)
        return np.asarray(canvas, dtype=np.uint8).copy()
    image = np.empty((size, size, 3), dtype=np.uint8)
    image[:] = scene.background
    if not antialias or not scene.objects:
        _paint(scene, size, image, colors)
        return image
    # Only pixels inside some object's box can mix colours: supersample that window alone.
    boxes = [_bbox(o, size) for o in scene.objects]
    # ±1: a pixel whose centre is outside an object's box may still be partly covered.
    r0 = max(min(b[0] for b in boxes) - 1, 0)
    r1 = min(max(b[1] for b in boxes) + 1, size - 1)
    c0 = max(min(b[2] for b in boxes) - 1, 0)
    c1 = min(max(b[3] for b in boxes) + 1, size - 1)
    if r0 > r1 or c0 > c1:
        return image
    k = ANTIALIAS_FACTOR
    h, w = r1 - r0 + 1, c1 - c0 + 1
    fine = np.empty((h * k, w * k, 3), dtype=np.uint8)
    fine[:] = scene.background
    _paint(scene, size * k, fine, colors, origin=(r0 * k, c0 * k))
    # Sum each k×k block: sub-pixel (a, b) of pixel (j, i) is fine pixel (j·k + a, i·k + b).
    block = fine.reshape(h, k, w, k, 3).sum(axis=(1, 3), dtype=np.uint32)  # (h, w, 3)
    image[r0 : r1 + 1, c0 : c1 + 1] = (block + (k * k) // 2) // (k * k)
    return image


def render_batch(
    scenes: Iterable[Scene], size: int = 128, antialias: bool = False, geometry: str = "relbench"
) -> np.ndarray:
    """(N, size, size, 3) uint8: `render` of each scene, stacked."""
    images = [render(s, size, antialias=antialias, geometry=geometry) for s in scenes]
    if not images:
        return np.zeros((0, check_size(size), size, 3), dtype=np.uint8)
    return np.stack(images)


def mask_centroid(mask: np.ndarray) -> tuple[float, float]:
    """Centroid (x, y) of a boolean (H, W) mask as fractions of the width and height, in the
    renderer's convention (pixel i's centre is i + 0.5), so it compares directly with
    `SceneObject.x`/`.y`."""
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {mask.shape}")
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        raise ValueError("empty mask has no centroid")
    h, w = mask.shape
    return (cols.mean() + 0.5) / w, (rows.mean() + 0.5) / h


def shape_area(shape: str, extent: float) -> float:
    """Analytic area of a shape of extent `extent` (diameter or side), in the same units²."""
    if shape == "circle":
        return math.pi * extent * extent / 4
    if shape == "square":
        return extent * extent
    if shape == "triangle":
        return _SQRT3 / 4 * extent * extent
    raise ValueError(f"unknown shape {shape!r}{did_you_mean(str(shape), SHAPES)}")


def shape_perimeter(shape: str, extent: float) -> float:
    """Analytic perimeter of a shape of extent `extent` (diameter or side)."""
    if shape == "circle":
        return math.pi * extent
    if shape == "square":
        return 4 * extent
    if shape == "triangle":
        return 3 * extent
    raise ValueError(f"unknown shape {shape!r}{did_you_mean(str(shape), SHAPES)}")


__all__ = [
    "ANTIALIAS_FACTOR",
    "MAX_SIZE",
    "MIN_SIZE",
    "check_size",
    "mask_centroid",
    "object_rgb",
    "render",
    "render_batch",
    "render_labels",
    "shape_area",
    "shape_perimeter",
]
