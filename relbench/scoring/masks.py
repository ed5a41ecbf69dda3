"""Pixel masks of the two objects the scorer matched to a prompt, and their coverage of a token
grid (for the circuit synopsis). Scoring itself is untouched: the detections and the pixel
labels come from one segmentation (`detect_labelled`), judged as `score_image` judges them.

The judged pair is the subject/reference detections whose offset equals the verdict's (dx, dy).
A detection's mask is the connected component of its colour class (the scorer's pixel labels,
at the image's own resolution; specks below the scorer's minimum area left out) whose centroid
lies nearest the detection's centre — for an occluded shape that is the centre of the fitted
shape, not of the visible pixels, hence "nearest".
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from relbench.scene import RelationSpec
from relbench.scoring.detect import Detection, Detector, detect_labelled, to_rgb_uint8
from relbench.scoring.judge import ScoreResult, judge


@dataclass
class ObjectMasks:
    """The verdict on an image plus the (H, W) bool masks of its subject and reference (None
    when the scorer bound no pair)."""

    result: ScoreResult
    subject: np.ndarray | None
    reference: np.ndarray | None

    @property
    def bound(self) -> bool:
        return self.subject is not None


def object_masks(image: np.ndarray, spec: RelationSpec, detector: Detector) -> ObjectMasks:
    """Score `image` against `spec` and return the matched objects' pixel masks."""
    dets, labels = detect_labelled(to_rgb_uint8(image), detector)
    result = judge(dets, spec)
    pair = _judged_pair(result, spec)
    if pair is None:
        return ObjectMasks(result, None, None)
    subj, ref = (_component(labels, d, detector) for d in pair)
    return ObjectMasks(result, subj, ref)


def grid_coverage(masks: ObjectMasks, grid: int) -> np.ndarray:
    """(grid², 3) fractions of each grid cell (row-major, top row first) covered by the subject,
    the reference and neither; rows sum to 1. Without a bound pair every cell is background."""
    if not masks.bound:
        out = np.zeros((grid * grid, 3), np.float32)
        out[:, 2] = 1.0
        return out
    assert masks.subject is not None and masks.reference is not None
    subj = _cell_fraction(masks.subject, grid)
    ref = _cell_fraction(masks.reference & ~masks.subject, grid)  # a pixel counts once
    return np.stack([subj, ref, np.clip(1.0 - subj - ref, 0.0, 1.0)], axis=1)


def _cell_fraction(mask: np.ndarray, grid: int) -> np.ndarray:
    h, w = mask.shape
    if h % grid or w % grid:
        # Area interpolation averages the pixels under each cell, also for uneven cells.
        small = cv2.resize(mask.astype(np.float32), (grid, grid), interpolation=cv2.INTER_AREA)
    else:
        small = mask.reshape(grid, h // grid, grid, w // grid).mean(axis=(1, 3))
    return np.asarray(small, np.float32).reshape(-1)


def _judged_pair(result: ScoreResult, spec: RelationSpec) -> tuple[Detection, Detection] | None:
    if not result.exist_binding or result.dx is None or result.dy is None:
        return None
    dets = result.detections
    for a in dets:
        if not spec.subject.matches(a.shape, a.color):
            continue
        for b in dets:
            if b is not a and spec.reference.matches(b.shape, b.color) and \
                    a.x - b.x == result.dx and a.y - b.y == result.dy:
                return a, b
    raise AssertionError(f"no detection pair gives the judged offset for {spec}")  # unreachable


def _component(labels: np.ndarray, det: Detection, detector: Detector) -> np.ndarray:
    """The pixels of `det`: its colour's connected component nearest its centre."""
    k = detector.colors.index(det.color) + 1
    n, comp, stats, centroids = cv2.connectedComponentsWithStats(
        (labels == k).view(np.uint8), connectivity=8
    )
    if n <= 1:
        return np.zeros(labels.shape, bool)
    h, w = labels.shape
    ids = np.arange(1, n)
    big = ids[stats[1:, cv2.CC_STAT_AREA] >= detector.config.min_area_frac * h * w]
    ids = big if len(big) else ids  # specks only when nothing larger is left
    centre = np.array([det.x * w - 0.5, det.y * h - 0.5])
    best = ids[int(np.argmin(np.linalg.norm(centroids[ids] - centre, axis=1)))]
    return comp == best


__all__ = ["ObjectMasks", "grid_coverage", "object_masks"]
