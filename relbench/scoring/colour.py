"""Colour names as regions of CIE LCh, and the pixel lookup table built from them.

A name covers a hue interval (chromatic names, above a minimum chroma) or a low-chroma
lightness interval (black, white); the palette defines regions, not points, so the shades a
person still calls "blue" (navy to sky blue) get that name and shading that only changes
lightness keeps it. Pixels outside every region (grays, low-chroma shadows) get label 0.
"""

from __future__ import annotations

import cv2
import numpy as np

from relbench.scoring.config import ColourRegion, DetectorConfig

UNNAMED = 0


def rgb_to_lch(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) RGB 0..255 -> (..., 3) CIE L*, C*, h (degrees 0..360), D65."""
    rgb = np.asarray(rgb, dtype=np.float32)
    # One row of pixels: OpenCV converts row by row, so a column of 1-pixel rows is slow.
    lab = cv2.cvtColor((rgb / 255.0).reshape(1, -1, 3), cv2.COLOR_RGB2Lab).reshape(-1, 3)
    return lab_to_lch(lab).reshape(rgb.shape)


def lab_to_lch(lab: np.ndarray) -> np.ndarray:
    """(N, 3) CIELAB -> (N, 3) CIE L*, C*, h (degrees 0..360)."""
    chroma = np.hypot(lab[:, 1], lab[:, 2])
    hue = np.degrees(np.arctan2(lab[:, 2], lab[:, 1])) % 360.0
    return np.stack([lab[:, 0], chroma, hue], axis=1)


def in_region(lch: np.ndarray, region: ColourRegion) -> np.ndarray:
    """Boolean (...,) : which LCh triples lie in `region`."""
    L, C, h = lch[..., 0], lch[..., 1], lch[..., 2]
    lo, hi = region.lightness
    ok = (L >= lo) & (L <= hi) & (C >= region.min_chroma) & (C < region.max_chroma)
    if region.hue is not None:
        a, b = region.hue
        ok &= ((h >= a) & (h < b)) if a <= b else ((h >= a) | (h < b))
    return ok


def name_labels(lch: np.ndarray, config: DetectorConfig) -> np.ndarray:
    """uint8 labels (...,): i + 1 for the first colour region (config order) holding the pixel,
    0 for none."""
    out = np.zeros(lch.shape[:-1], dtype=np.uint8)
    for i, region in enumerate(config.colours.values()):
        hit = in_region(lch, region) & (out == UNNAMED)
        out[hit] = i + 1
    return out


def name_of(rgb: tuple[int, int, int], config: DetectorConfig) -> str | None:
    """The colour name of one RGB triple, or None (e.g. a gray)."""
    label = int(name_labels(rgb_to_lch(np.asarray([rgb], np.float32)), config)[0])
    return None if label == UNNAMED else config.palette[label - 1]


def grid_levels(bits: int) -> np.ndarray:
    """The 2^bits RGB levels (cell centres) a table of `bits` bits per channel stands for."""
    step = 1 << (8 - bits)
    return np.arange(1 << bits, dtype=np.float32) * step + (step - 1) / 2


def grid_lab(bits: int) -> np.ndarray:
    """(2^(3·bits), 3) float32 CIELAB of the table's grid, indexed like `pack`."""
    levels = grid_levels(bits)
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(-1, 3)
    return cv2.cvtColor((grid / 255.0).reshape(1, -1, 3), cv2.COLOR_RGB2Lab).reshape(-1, 3)


def build_lut(config: DetectorConfig, lab: np.ndarray | None = None) -> np.ndarray:
    """The 2^(3·lut_bits)-entry name table, indexed by `pack`: names computed at each grid cell's
    centre colour. `lab`, when given, is `grid_lab(config.lut_bits)` (computed once for both)."""
    if lab is None:
        lab = grid_lab(config.lut_bits)
    return name_labels(lab_to_lch(lab), config)


def expand(table: np.ndarray, bits: int) -> np.ndarray:
    """A 2^(3·bits) grid table (indexed [R, G, B] row-major) laid out for `packed` indices
    (B' << 16 | G' << 8 | R', each channel's top `bits` bits): the 2^bits entries of one
    (B', G') pair are one run of bytes, so an image's pixels touch few cache lines."""
    n = 1 << bits
    out = _aligned_zeros(n * 256 * 256, table.dtype).reshape(n, 256, 256)
    out[:, :n, :n] = table.reshape(n, n, n).transpose(2, 1, 0)  # [B, G, R]
    return out.reshape(-1)


_HUGE_PAGE = 2 << 20


def _aligned_zeros(size: int, dtype: np.dtype) -> np.ndarray:
    """A zeroed 1-D array whose data starts on a 2 MB boundary, so that the kernel can back a
    multi-MB lookup table with whole huge pages (numpy asks for them) and random lookups miss
    the TLB less; an unaligned 4 MB table gets at most one."""
    itemsize = np.dtype(dtype).itemsize
    raw = np.zeros(size * itemsize + _HUGE_PAGE, np.uint8)
    start = -raw.ctypes.data % _HUGE_PAGE
    return raw[start : start + size * itemsize].view(dtype)


def packed(image: np.ndarray, bits: int) -> np.ndarray:
    """(H, W) int32 of an (H, W, 3) uint8 RGB image: each pixel's index into an `expand`ed
    table, B' << 16 | G' << 8 | R' where R', G', B' are each channel's top `bits` bits."""
    # RGBA bytes (R, G, B, A) read as a little-endian int32 are A << 24 | B << 16 | G << 8 | R.
    rgba = cv2.cvtColor(image, cv2.COLOR_RGB2RGBA).view(np.int32)[..., 0]
    m = (1 << bits) - 1
    np.right_shift(rgba, 8 - bits, out=rgba)
    return np.bitwise_and(rgba, m | m << 8 | m << 16, out=rgba)


__all__ = ["UNNAMED", "build_lut", "expand", "grid_lab", "in_region", "lab_to_lch", "name_labels",
           "name_of", "packed", "rgb_to_lch"]
