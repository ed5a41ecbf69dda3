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
from functools import lru_cache

import cv2
import numpy as np

_FLAT_DELTA_E = 2.0
_COARSE = 16  # grid side on which a smooth background model is drawn before interpolation
_MAD_TO_SIGMA = 1.4826
_MIN_SIGMA = 0.5


@dataclass(frozen=True)
class Background:
    """A fitted background: `coef` (3, K) polynomial coefficients per Lab channel over the basis
    of `degree`, and `sigma`, the robust spread of the border's colour distance to the fit."""

    coef: np.ndarray
    degree: int
    sigma: float

    @property
    def flat(self) -> bool:
        return self.degree == 0 or not np.any(self.coef[:, 1:])

    def model8(self, h: int, w: int) -> np.ndarray:
        """The model in OpenCV's 8-bit Lab units (L·255/100, a + 128, b + 128): a (3,) array when
        flat, else (H, W, 3) float32, drawn on a coarse grid and interpolated (it is smooth)."""
        scale = np.array([255.0 / 100.0, 1.0, 1.0], np.float32)
        offset = np.array([0.0, 128.0, 128.0], np.float32)
        if self.flat:
            return self.coef[:, 0] * scale + offset
        g = _COARSE
        coarse = np.moveaxis(self.render(g, g), 0, -1) * scale + offset  # (g, g, 3)
        return cv2.resize(coarse, (w, h), interpolation=cv2.INTER_LINEAR)

    def render(self, h: int, w: int) -> np.ndarray:
        """(3, H, W) float32 model Lab at every pixel."""
        u = (np.arange(w, dtype=np.float32) + 0.5) / w - 0.5  # (W,)
        v = (np.arange(h, dtype=np.float32) + 0.5) / h - 0.5  # (H,)
        out = np.empty((3, h, w), np.float32)
        for c in range(3):
            k = self.coef[c]
            row = k[0] + (k[1] * u if self.degree >= 1 else 0.0)  # (W,)
            col = k[2] * v if self.degree >= 1 else np.zeros_like(v)  # (H,)
            if self.degree >= 2:
                row = row + k[3] * u * u
                col = col + k[5] * v * v
            out[c] = col[:, None] + row[None, :]
            if self.degree >= 2 and k[4] != 0:
                out[c] += k[4] * (v[:, None] * u[None, :])
        return out


def _basis(u: np.ndarray, v: np.ndarray, degree: int) -> np.ndarray:
    cols = [np.ones_like(u)]
    if degree >= 1:
        cols += [u, v]
    if degree >= 2:
        cols += [u * u, u * v, v * v]
    return np.stack(cols, axis=1)  # (N, K)


@lru_cache(maxsize=16)
def _strip_coords(h: int, w: int, bw: int, keep: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(u, v, stride) of the border-strip pixels in `_strip` order, every `stride`-th kept."""
    ys, xs = np.mgrid[0:h, 0:w]
    coords = _strip(np.stack([ys, xs], axis=-1), bw)  # (N, 2)
    stride = max(1, len(coords) // keep)
    coords = coords[::stride]
    u = (coords[:, 1].astype(np.float32) + 0.5) / w - 0.5
    v = (coords[:, 0].astype(np.float32) + 0.5) / h - 0.5
    return u, v, stride


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


_SAMPLES = 384  # border samples a fit uses: plenty for six coefficients and a spread


def _strip_width(h: int, w: int, frac: float) -> int:
    return max(1, min(int(round(frac * min(h, w))), min(h, w) // 4))


def border_samples(
    lab: np.ndarray, frac: float, max_samples: int = _SAMPLES
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(u, v, lab) of about `max_samples` pixels spread over a border strip `frac` of the side
    wide (at least 1 px); u, v in -0.5..0.5 from the image centre."""
    h, w = lab.shape[:2]
    bw = _strip_width(h, w, frac)
    u, v, stride = _strip_coords(h, w, bw, max_samples)
    samples = _strip(lab, bw)[::stride].astype(np.float32)
    if lab.dtype == np.uint8:  # OpenCV's 8-bit Lab -> L* 0..100, a*, b*
        samples[:, 0] *= 100.0 / 255.0
        samples[:, 1:] -= 128.0
    return u, v, samples


def fit_background(lab: np.ndarray, *, frac: float, degree: int, outlier_k: float) -> Background:
    """Fit the border of an (H, W, 3) CIELAB image: float L* 0..100, or OpenCV's 8-bit Lab."""
    u, v, samples = border_samples(lab, frac)
    resid = _norm(samples - _median(samples))
    keep = _inliers(resid, outlier_k)
    centre = samples[keep].mean(axis=0)
    resid = _norm(samples - centre)
    coef = np.zeros((3, _N_COEF[degree]), np.float32)
    coef[:, 0] = centre
    # A flat border (nearly every sample within a just-noticeable difference of the mean) needs
    # no surface: the common case of rendered and many generated images, and the fast one.
    flat = np.count_nonzero(resid[keep] < _FLAT_DELTA_E) >= 0.95 * np.count_nonzero(keep)
    if degree > 0 and not flat and np.count_nonzero(keep) > 6 * _N_COEF[degree]:
        h, w = lab.shape[:2]
        basis = _strip_basis(h, w, _strip_width(h, w, frac), _SAMPLES, degree)  # (N, K)
        for _ in range(2):
            bk = basis[keep]  # least squares by the normal equations: K is at most 6
            ok, sol = cv2.solve(bk.T @ bk, bk.T @ samples[keep], flags=cv2.DECOMP_LU)  # (K, 3)
            resid = _norm(samples - basis @ sol)
            keep = _inliers(resid, outlier_k)
        coef = sol.T.astype(np.float32)
    sigma = _MAD_TO_SIGMA * float(_median(resid[keep])) if keep.any() else 0.0
    return Background(coef=coef, degree=degree, sigma=max(sigma, _MIN_SIGMA) if sigma else 0.0)


_N_COEF = {0: 1, 1: 3, 2: 6}


def _norm(d: np.ndarray) -> np.ndarray:
    """Row lengths of an (N, 3) array."""
    return np.sqrt(np.einsum("nc,nc->n", d, d))


def _median(a: np.ndarray) -> np.ndarray:
    """The (upper) median along the first axis, by one partition (np.median's overhead is
    larger than the work on a few hundred samples)."""
    k = len(a) // 2
    return np.partition(a, k, axis=0)[k]


def _inliers(resid: np.ndarray, k: float) -> np.ndarray:
    scale = _MAD_TO_SIGMA * _median(resid)
    return resid <= max(k * scale, 3.0)


__all__ = ["Background", "border_samples", "fit_background"]
