"""Object detection by colour segmentation and shape fitting (numpy + OpenCV, no learning).

Pipeline per image: estimate the background from the border pixels; label every pixel with a
lookup table (one per background, cached) that maps RGB to the nearest *prototype* in CIELAB,
where prototypes are blends α·colour + (1-α)·background (α ≥ blend_split → the colour, else
background), so anti-aliased and blurred edges split at half coverage and any background
colour works; contours of each colour class give components; each component is fitted with
the smallest enclosing circle, rectangle and triangle and takes the shape whose fit it fills
best. A component touching another colour may be occluded: its fits are then scored by how
much of the fitted shape is covered by it *or by the occluder*, so a disk partly hidden by a
square is still a disk, with the centre of the enclosing shape rather than the visible pixels.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from relbench.scoring.config import DetectorConfig

BACKGROUND = 0
UNASSIGNED = 255


@dataclass
class Detection:
    """A detection: centre x, y in fractions of width/height; area a fraction of the image."""

    shape: str
    color: str
    x: float
    y: float
    area: float
    fit: float
    solidity: float
    occluded: bool

    def words(self) -> str:
        return f"{self.color} {self.shape}"

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in ("x", "y", "area", "fit", "solidity"):
            d[k] = round(d[k], 4)
        return d


def _lab(rgb: np.ndarray) -> np.ndarray:
    """(N, 3) RGB 0..255 -> (N, 3) CIELAB (L in 0..100)."""
    f = (np.asarray(rgb, dtype=np.float32) / 255.0).reshape(-1, 1, 3)
    return cv2.cvtColor(f, cv2.COLOR_RGB2Lab).reshape(-1, 3)


class Detector:
    """A loaded detector config plus its cached lookup tables; pass it to `detect`/`score_image`."""

    def __init__(self, config: DetectorConfig) -> None:
        self.config = config
        self.colors: list[str] = list(config.palette)
        if len(self.colors) >= UNASSIGNED:
            raise ValueError(f"palette has {len(self.colors)} colours; at most 254 are supported")
        self._luts: OrderedDict[tuple[int, int, int], np.ndarray] = OrderedDict()
        self.lut_for(np.asarray(config.background, dtype=np.float64))

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def version(self) -> str:
        return self.config.version

    @property
    def config_hash(self) -> str:
        return self.config.config_hash

    def describe(self) -> dict:
        return {"name": self.name, "version": self.version, "config_hash": self.config_hash}

    def lut_for(self, bg: np.ndarray) -> np.ndarray:
        """The 2^24-entry label table for a background colour (rounded to background_quant)."""
        q = self.config.background_quant
        key = tuple(np.minimum(255, np.rint(np.asarray(bg) / q) * q).astype(int).tolist())
        lut = self._luts.get(key)
        if lut is None:
            lut = self._build_lut(np.asarray(key, dtype=np.float32))
            self._luts[key] = lut
            while len(self._luts) > self.config.lut_cache_size:
                self._luts.popitem(last=False)
        else:
            self._luts.move_to_end(key)
        return lut

    def _build_lut(self, bg: np.ndarray) -> np.ndarray:
        cfg = self.config
        bg_lab = _lab(bg[None])[0]
        protos, labels = [bg[None]], [BACKGROUND]
        alphas = np.linspace(0.0, 1.0, cfg.blend_steps, dtype=np.float32)[1:]
        for i, name in enumerate(self.colors):
            c = np.asarray(cfg.palette[name], dtype=np.float32)
            if np.linalg.norm(_lab(c[None])[0] - bg_lab) < cfg.min_contrast_delta_e:
                continue  # indistinguishable from this background
            protos.append(alphas[:, None] * c + (1 - alphas[:, None]) * bg)
            labels += [i + 1 if a >= cfg.blend_split else BACKGROUND for a in alphas]
        proto_lab = _lab(np.concatenate(protos))  # (P, 3)
        labels_arr = np.asarray(labels, dtype=np.uint8)

        bits = cfg.lut_bits
        n, step = 1 << bits, 1 << (8 - bits)
        levels = np.arange(n, dtype=np.float32) * step + (step - 1) / 2
        grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(-1, 3)
        grid_lab = _lab(grid)  # (n³, 3) in (R, G, B) order
        small = np.empty(len(grid_lab), dtype=np.uint8)
        for s in range(0, len(grid_lab), 8192):
            d = np.linalg.norm(grid_lab[s : s + 8192, None, :] - proto_lab[None], axis=2)
            j = d.argmin(1)
            small[s : s + 8192] = np.where(
                d[np.arange(len(j)), j] <= cfg.max_delta_e, labels_arr[j], UNASSIGNED
            )
        cube = small.reshape(n, n, n)  # [R, G, B]
        for axis in range(3):
            cube = cube.repeat(step, axis=axis)
        # Indexed by the RGBA pixel as little-endian uint32 with alpha masked: B<<16 | G<<8 | R.
        return np.ascontiguousarray(cube.transpose(2, 1, 0)).ravel()


def to_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """Validate a (H, W, 3) uint8 RGB array; other layouts raise a ValueError saying why."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"expected a numpy image array, got {type(image).__name__}")
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        raise ValueError("grayscale image; colour is needed")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB image, got shape {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {image.dtype}")
    if image.shape[0] < 8 or image.shape[1] < 8:
        raise ValueError(f"image too small to score: {image.shape[1]}x{image.shape[0]}")
    return np.ascontiguousarray(image)


def estimate_background(image: np.ndarray) -> np.ndarray:
    """Median RGB of the border pixels (objects rarely cover most of the border)."""
    border = np.concatenate([image[0, ::2], image[-1, ::2], image[1:-1:2, 0], image[1:-1:2, -1]])
    mid = len(border) // 2
    return np.partition(border, mid, axis=0)[mid].astype(np.float64)


def label_pixels(image: np.ndarray, detector: Detector) -> np.ndarray:
    """(H, W) uint8: 0 background, i + 1 palette colour i, 255 unassigned."""
    lut = detector.lut_for(estimate_background(image))
    # RGBA as little-endian int32 is (255 << 24 | B << 16 | G << 8 | R) - 2**32 = (BGR) - 2**24:
    # a negative index that counts back from the end of the 2**24-entry table to entry BGR.
    packed = cv2.cvtColor(image, cv2.COLOR_RGB2RGBA).view(np.int32)[..., 0]
    return lut.take(packed)


def detect(image: np.ndarray, detector: Detector) -> list[Detection]:
    """Objects in an RGB uint8 image, largest first."""
    cfg = detector.config
    image = to_rgb_uint8(image)
    h0, w0 = image.shape[:2]
    scale = 1.0
    if max(h0, w0) > cfg.work_max_side:
        scale = cfg.work_max_side / max(h0, w0)
        size = (max(8, round(w0 * scale)), max(8, round(h0 * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    h, w = image.shape[:2]
    labels = label_pixels(image, detector)
    counts = cv2.calcHist([labels], [0], None, [256], [0, 256]).ravel()
    min_area = cfg.min_area_frac * h * w
    present = [k for k in range(1, len(detector.colors) + 1) if counts[k] >= min_area]
    if not present:
        return []
    objmask = None
    if len(present) > 1:
        table = np.zeros(256, dtype=np.uint8)
        table[present] = 1
        objmask = cv2.LUT(labels, table)
    out: list[Detection] = []
    for k in present:
        mask = (labels == k).view(np.uint8)
        contours, hier = cv2.findContours(mask, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
        holes: dict[int, float] = {}
        for i, (_, _, _, parent) in enumerate(hier[0]):
            if parent >= 0:
                holes[parent] = holes.get(parent, 0.0) + cv2.contourArea(contours[i])
        for i, c in enumerate(contours):
            if hier[0][i][3] >= 0:
                continue
            outer = cv2.contourArea(c)
            if outer + 0.5 * len(c) < min_area:  # polygon area + half the perimeter ≈ pixel count
                continue
            x, y, bw, bh = cv2.boundingRect(c)
            # Pixel count (holes from noise refilled): comparable with the pixel-corner fits.
            count = cv2.countNonZero(mask[y : y + bh, x : x + bw]) + holes.get(i, 0.0)
            det = _fit(c, count, k, mask, objmask, detector, (h, w))
            if det is not None:
                out.append(det)
    for d in out:  # back to fractions of the original image
        d.x, d.y = d.x / w, d.y / h
    out.sort(key=lambda d: -d.area)
    return out


def _fit(
    contour: np.ndarray,
    area: float,
    k: int,
    mask: np.ndarray,
    objmask: np.ndarray | None,
    detector: Detector,
    hw: tuple[int, int],
) -> Detection | None:
    """Classify one component by which enclosing shape it fills best, and place its centre.

    Fits run on the convex hull of the boundary pixel centres; areas compare with the pixel
    count, so the hull is grown by half a pixel (circle radius + 0.5, rectangle sides + 1,
    hull area + perimeter/2 + 1) to cover the pixels' extent rather than their centres.
    """
    cfg = detector.config
    h, w = hw
    hull = cv2.convexHull(contour)
    hull_area = cv2.contourArea(hull) + cv2.arcLength(hull, True) / 2 + 1
    solidity = area / hull_area
    if solidity < cfg.min_solidity:
        return None
    (ccx, ccy), r = cv2.minEnclosingCircle(hull)
    r += 0.5
    rect = cv2.minAreaRect(hull)
    rect = (rect[0], (rect[1][0] + 1, rect[1][1] + 1), rect[2])
    fits = {
        "circle": area / (math.pi * r * r),
        "square": area / (rect[1][0] * rect[1][1]),
        "triangle": 0.0,
    }
    margin = cfg.occlusion_margin_px
    occluded = objmask is not None and _touches_other(contour, mask, objmask, margin)
    tri = None
    if occluded or max(fits.values()) < cfg.skip_triangle_above:
        # Through pixel centres, not grown: growing by a pixel square offsets the slanted sides
        # more than the base and would bias the centroid upward.
        tri_area, tri = cv2.minEnclosingTriangle(hull)
        tri = tri.reshape(3, 2)
        fits["triangle"] = area / tri_area if tri_area > 0 else 0.0
    if occluded:
        # Score each fitted shape by how much of it this object *or an occluder* covers.
        box, tri_px = _px(cv2.boxPoints(rect)), _px(tri)
        fits = {
            "circle": _covered(objmask, lambda m: cv2.circle(m, *_circle_args(ccx, ccy, r))),
            "square": _covered(objmask, lambda m: cv2.fillPoly(m, [box], 1, cv2.LINE_8, _SHIFT)),
            "triangle": _covered(
                objmask, lambda m: cv2.fillPoly(m, [tri_px], 1, cv2.LINE_8, _SHIFT)
            ),
        }
    shape = max(fits, key=fits.__getitem__)
    fit = fits[shape]
    if fit < cfg.min_fit:
        shape = "unknown"
    if shape == "circle":
        cx, cy = ccx, ccy
    elif shape == "square":
        cx, cy = rect[0]
    elif shape == "triangle" and occluded:
        cx, cy = tri.mean(axis=0)  # the centroid, where the renderer centres triangles
    else:  # fully visible triangle or unknown: the pixel centroid (unbiased, unlike the fit's)
        x, y, bw, bh = cv2.boundingRect(contour)
        mom = cv2.moments(mask[y : y + bh, x : x + bw], binaryImage=True)
        cx, cy = x + mom["m10"] / mom["m00"], y + mom["m01"] / mom["m00"]
    return Detection(
        shape=shape,
        color=detector.colors[k - 1],
        x=float(cx) + 0.5,  # pixel index -> continuous coordinate (pixel i centre is i + 0.5)
        y=float(cy) + 0.5,
        area=area / (h * w),
        fit=float(min(fit, 1.0)),
        solidity=float(min(solidity, 1.0)),
        occluded=bool(occluded),
    )


def _touches_other(contour: np.ndarray, mask: np.ndarray, objmask: np.ndarray, margin: int) -> bool:
    x, y, bw, bh = cv2.boundingRect(contour)
    m = margin + 1
    y0, y1 = max(0, y - m), min(mask.shape[0], y + bh + m)
    x0, x1 = max(0, x - m), min(mask.shape[1], x + bw + m)
    own = mask[y0:y1, x0:x1]
    if cv2.countNonZero(objmask[y0:y1, x0:x1]) == cv2.countNonZero(own):
        return False  # no other object pixel near this component
    grown = cv2.dilate(own, np.ones((2 * m + 1, 2 * m + 1), np.uint8))
    other = objmask[y0:y1, x0:x1] & (1 - own)
    return bool(cv2.countNonZero(grown & other))


_SHIFT = 4  # sub-pixel bits for drawing fitted shapes


def _px(poly: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(poly, dtype=np.float64) * (1 << _SHIFT)).astype(np.int32)


def _circle_args(cx: float, cy: float, r: float):
    c = (int(round(cx * (1 << _SHIFT))), int(round(cy * (1 << _SHIFT))))
    return c, int(round(r * (1 << _SHIFT))), 1, -1, cv2.LINE_8, _SHIFT


def _covered(support: np.ndarray, draw) -> float:
    """Fraction of a drawn shape's pixels (drawn on a zero canvas) that are object pixels."""
    canvas = np.zeros_like(support)
    draw(canvas)
    n = cv2.countNonZero(canvas)
    if n == 0:
        return 0.0
    return cv2.countNonZero(canvas & support) / n
