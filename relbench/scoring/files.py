"""Read image files for scoring: decode, normalise to RGB uint8, clear errors."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from relbench.scene import BACKGROUND_RGB, RelationSpec
from relbench.scoring.detect import Detector, estimate_background
from relbench.scoring.judge import ScoreResult, score_image


class ImageReadError(ValueError):
    """A file that cannot be scored (missing, empty, corrupt, grayscale)."""


def decode_image(
    data: bytes, name: str = "<bytes>", background: tuple[int, int, int] = BACKGROUND_RGB
) -> np.ndarray:
    """Encoded image bytes -> (H, W, 3) uint8 RGB.

    16-bit images are scaled to 8 bits; palette images are expanded by the decoder; RGBA is
    composited over the background estimated from the border when the border is opaque, else
    over `background` (the detector's expected background); single-channel images are
    refused (colour is needed).
    """
    if not data:
        raise ImageReadError(f"{name}: empty file")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ImageReadError(f"{name}: corrupt or unsupported image")
    return _normalise(img, name, background)


def read_image(path: str | Path, background: tuple[int, int, int] = BACKGROUND_RGB) -> np.ndarray:
    """Decode an image file to (H, W, 3) uint8 RGB (see `decode_image` for the conversions)."""
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise ImageReadError(f"{path}: empty file")
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ImageReadError(f"{path}: corrupt or unsupported image")
    return _normalise(img, str(path), background)


def score_file(path: str | Path, spec: RelationSpec, detector: Detector) -> ScoreResult:
    """`score_image` on a decoded file."""
    return score_image(read_image(path, detector.config.background), spec, detector)


def _normalise(img: np.ndarray, name: str, background: tuple[int, int, int]) -> np.ndarray:
    if img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 1):
        raise ImageReadError(f"{name}: grayscale image; colour is needed")
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise ImageReadError(f"{name}: unsupported pixel type {img.dtype}")
    if img.shape[2] == 4:
        rgb = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
        alpha = img[..., 3:4].astype(np.float32) / 255.0
        if alpha.min() < 1.0:
            opaque = alpha[..., 0] > 0.5
            border_ok = np.concatenate([opaque[0], opaque[-1], opaque[:, 0], opaque[:, -1]])
            fallback = np.asarray(background, dtype=np.float64)
            bg = estimate_background(rgb) if border_ok.all() else fallback
            rgb = (rgb * alpha + bg[None, None] * (1 - alpha) + 0.5).astype(np.uint8)
        return rgb
    if img.shape[2] != 3:
        raise ImageReadError(f"{name}: unsupported channel count {img.shape[2]}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
