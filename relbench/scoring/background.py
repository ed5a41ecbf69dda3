"""The background of an image, modelled from its border: a smooth surface plus a texture level.

Generated images rarely have a flat background: paper, wood, noise, gradients, vignettes and
lit studio backdrops. The model is a low-order polynomial in (x, y) per CIELAB channel, fitted
robustly to a strip along the image border (objects rarely cover much of it; border pixels far
from the first fit are dropped and the fit repeated), so gradients and vignettes belong to the
background; the spread of the border around the fit measures texture, which sets how far from
the background a pixel must be to count as an object.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache

import cv2
import numpy as np

from relbench.scoring.config import DetectorConfig

_COARSE = 16  # grid side on which a smooth background model is drawn before interpolation
_MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True)
class Background:
    """A fitted background: `coef` (3, K) polynomial coefficients per Lab channel over the basis
    of `degree`, and `sigma`, the robust spread of the border's colour distance to the fit."""

    coef: np.ndarray
    degree: int
    sigma: float

    @cached_property
    def key(self) -> tuple[int, int, int]:
        """The model's constant CIELAB colour rounded to whole units: for a flat background, the
        key and origin of its distance table."""
        return tuple(int(v) for v in np.rint(self.coef[:, 0]))

    @cached_property
    def flat(self) -> bool:
        """Whether the model is a constant colour."""
        return self.degree == 0 or not self.coef[:, 1:].any()

    def model8(self, h: int, w: int) -> np.ndarray:
        """The model in OpenCV's 8-bit Lab units (L·255/100, a + 128, b + 128): a (3,) array when
        flat, else (H, W, 3) float32, drawn on a coarse grid and interpolated (it is smooth)."""
        coef8 = self.coef * _LAB8_SCALE[:, None]  # (3, K)
        coef8[:, 0] += _LAB8_OFFSET
        if self.flat:
            return coef8[:, 0]
        coarse = (_coarse_basis(_COARSE, self.degree) @ coef8.T).reshape(_COARSE, _COARSE, 3)
        return cv2.resize(coarse, (w, h), interpolation=cv2.INTER_LINEAR)


_LAB8_SCALE = np.array([255.0 / 100.0, 1.0, 1.0], np.float32)
_LAB8_OFFSET = np.array([0.0, 128.0, 128.0], np.float32)


@lru_cache(maxsize=4)
def _coarse_basis(g: int, degree: int) -> np.ndarray:
    """(g·g, K) float32 polynomial basis at the pixel centres of a g × g grid, row-major."""
    c = (np.arange(g, dtype=np.float32) + 0.5) / g - 0.5
    uu, vv = np.meshgrid(c, c)
    return _basis(uu.ravel(), vv.ravel(), degree)


def _basis(u: np.ndarray, v: np.ndarray, degree: int) -> np.ndarray:
    cols = [np.ones_like(u)]
    if degree >= 1:
        cols += [u, v]
    if degree >= 2:
        cols += [u * u, u * v, v * v]
    return np.stack(cols, axis=1)  # (N, K)


@lru_cache(maxsize=16)
def _strip_coords(
    h: int, w: int, bw: int, keep: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(u, v, flat pixel index) of every `stride`-th border-strip pixel in `_strip` order, with
    stride = strip length // `keep`: one fancy index then reads the samples of any image of
    this size."""
    ys, xs = np.mgrid[0:h, 0:w]
    coords = _strip(np.stack([ys, xs], axis=-1), bw)  # (N, 2)
    stride = max(1, len(coords) // keep)
    coords = coords[::stride]
    u = (coords[:, 1].astype(np.float32) + 0.5) / w - 0.5
    v = (coords[:, 0].astype(np.float32) + 0.5) / h - 0.5
    index = (coords[:, 0] * w + coords[:, 1]).astype(np.intp)
    return u, v, index


@lru_cache(maxsize=16)
def _strip_basis(h: int, w: int, bw: int, keep: int, degree: int) -> np.ndarray:
    """The polynomial basis (N, K) at `_strip_coords`' samples."""
    u, v, _ = _strip_coords(h, w, bw, keep)
    return _basis(u, v, degree)


def _strip(a: np.ndarray, bw: int) -> np.ndarray:
    """(N, C) the values of an (H, W, C) array in a border strip `bw` pixels wide."""
    c = a.shape[-1]
    return np.concatenate([a[:bw].reshape(-1, c), a[-bw:].reshape(-1, c),
                           a[bw:-bw, :bw].reshape(-1, c), a[bw:-bw, -bw:].reshape(-1, c)])


def _strip_width(h: int, w: int, frac: float) -> int:
    return max(1, min(int(round(frac * min(h, w))), min(h, w) // 4))


def border_samples(
    rgb: np.ndarray, frac: float, max_samples: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(u, v, lab) of about `max_samples` pixels spread over a border strip `frac` of the side
    wide (at least 1 px) of an RGB uint8 image; u, v in -0.5..0.5 from the image centre; lab
    is CIELAB (L* 0..100) by OpenCV's 8-bit conversion, as `cv2.cvtColor` gives the whole
    image, but only for the samples."""
    h, w = rgb.shape[:2]
    bw = _strip_width(h, w, frac)
    u, v, index = _strip_coords(h, w, bw, max_samples)
    return u, v, lab_of(rgb.reshape(-1, 3).take(index, axis=0).reshape(1, -1, 3)).reshape(-1, 3)


def lab_of(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 RGB -> float32 CIELAB, L* 0..100, by OpenCV's 8-bit conversion (the one
    the whole-image distances use)."""
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab) * _LAB8_TO_LAB_SCALE
    lab += _LAB8_TO_LAB_OFFSET
    return lab


_LAB8_TO_LAB_SCALE = np.array([100.0 / 255.0, 1.0, 1.0], np.float32)
_LAB8_TO_LAB_OFFSET = np.array([0.0, -128.0, -128.0], np.float32)


def fit_background(rgb: np.ndarray, cfg: DetectorConfig) -> Background:
    """Fit the border of an (H, W, 3) RGB uint8 image in CIELAB with the config's border strip,
    polynomial degree, sample count and outlier rule."""
    frac, degree, outlier_k = cfg.border_frac, cfg.background_degree, cfg.background_outlier_k
    floor = cfg.background_outlier_min_delta_e
    u, v, samples = border_samples(rgb, frac, cfg.background_samples)
    resid = _norm(samples - _median(samples))
    keep = _inliers(resid, outlier_k, floor)
    n_keep = np.count_nonzero(keep)
    kept_samples = np.compress(keep, samples, axis=0)
    centre = _column_sums(kept_samples) / n_keep  # np.mean, less overhead
    resid = _norm(samples - centre)
    coef = np.zeros((3, _N_COEF[degree]), np.float32)
    coef[:, 0] = centre
    # A flat border (nearly every sample within a just-noticeable difference of the mean) needs
    # no surface: the common case of rendered and many generated images, and the fast one.
    flat = np.count_nonzero(np.compress(keep, resid) < cfg.flat_fit_delta_e) \
        >= cfg.flat_fit_share * n_keep
    if degree > 0 and not flat and n_keep > 6 * _N_COEF[degree]:
        h, w = rgb.shape[:2]
        bw = _strip_width(h, w, frac)
        basis = _strip_basis(h, w, bw, cfg.background_samples, degree)  # (N, K)
        for _ in range(2):
            bk = np.compress(keep, basis, axis=0)  # least squares by the normal equations: K ≤ 6
            ok, sol = cv2.solve(bk.T @ bk, bk.T @ kept_samples, flags=cv2.DECOMP_LU)  # (K, 3)
            resid = _norm(samples - basis @ sol)
            kept, keep = keep, _inliers(resid, outlier_k, floor)
            if not np.logical_xor(kept, keep).any():
                break  # a refit on the same inliers would give the same surface
            kept_samples = np.compress(keep, samples, axis=0)
        coef = sol.T.astype(np.float32)
    inlying = np.compress(keep, resid)
    sigma = _MAD_TO_SIGMA * float(_median(inlying)) if len(inlying) else 0.0
    sigma = max(sigma, cfg.background_min_sigma) if sigma else 0.0
    return Background(coef=coef, degree=degree, sigma=sigma)


_N_COEF = {0: 1, 1: 3, 2: 6}


def _norm(d: np.ndarray) -> np.ndarray:
    """Row lengths of an (N, 3) float32 array: sqrt((x0² + x1²) + x2²) in float32, by OpenCV
    (fewer calls' overhead than numpy's on a few hundred rows; the same sums in the same
    order, so the same values as `np.sqrt(np.einsum("nc,nc->n", d, d))`)."""
    return cv2.sqrt(cv2.transform(cv2.multiply(d, d).reshape(1, -1, 3), _ONES3)).reshape(-1)


_ONES3 = np.ones((1, 3), np.float32)


def _column_sums(a: np.ndarray) -> np.ndarray:
    """(3,) float32 column sums of an (N, 3) float32 array, accumulated row by row as
    `a.sum(axis=0)` does (OpenCV's reduce has less overhead on a few hundred rows)."""
    return cv2.reduce(a, 0, cv2.REDUCE_SUM, dtype=cv2.CV_32F).reshape(3)


def _median(a: np.ndarray) -> np.ndarray:
    """The (upper) median along the first axis, by one partition (np.median's overhead is
    larger than the work on a few hundred samples)."""
    k = len(a) // 2
    return np.partition(a, k, axis=0)[k]


def _inliers(resid: np.ndarray, k: float, floor: float) -> np.ndarray:
    """Samples within k robust sigmas of the fit, or within `floor` (a near-flat border)."""
    scale = _MAD_TO_SIGMA * _median(resid)
    return resid <= max(k * scale, floor)


__all__ = ["Background", "border_samples", "fit_background", "lab_of"]
