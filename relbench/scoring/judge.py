"""Bind a prompt's objects to detections and judge the relation: one `ScoreResult` per image."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from relbench.scene import ObjectSpec, RelationSpec, loose_holds, strict_relation
from relbench.scoring.detect import (
    DETECT_STAGES,
    Detection,
    Detector,
    Work,
    detect,
    run_batches,
)


@dataclass
class ScoreResult:
    """The verdict on one image: `correct` = strict relation ∧ shapes ∧ colours ∧ unique
    binding."""

    correct: bool
    relation_strict: bool
    relation_loose: bool
    shape: bool
    color: bool
    exist_binding: bool
    unique_binding: bool
    dx: float | None
    dy: float | None
    found_relation: str | None
    reason: str
    detections: list[Detection] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The JSON row fields (the `relbench score` / samples.jsonl contract)."""
        return {
            "correct": self.correct,
            "relation_strict": self.relation_strict,
            "relation_loose": self.relation_loose,
            "shape": self.shape,
            "color": self.color,
            "exist_binding": self.exist_binding,
            "unique_binding": self.unique_binding,
            "dx": None if self.dx is None else round(self.dx, 4),
            "dy": None if self.dy is None else round(self.dy, 4),
            "found_relation": self.found_relation,
            "reason": self.reason,
            "detections": [d.to_dict() for d in self.detections],
        }


def score_image(image: np.ndarray, spec: RelationSpec, detector: Detector) -> ScoreResult:
    """Score an RGB uint8 (H, W, 3) image against the spec it was generated from."""
    return judge(detect(image, detector), spec)


def score_batch(
    images: list[np.ndarray], specs: list[RelationSpec], detector: Detector
) -> list[ScoreResult | Exception]:
    """`score_image` on each (image, spec) pair of a batch, or the exception that image raised
    (one bad image fails alone). The same verdicts as image by image, faster on many images:
    each step runs over a batch of them before the next (`relbench.scoring.detect.run_batches`)."""
    if len(images) != len(specs):
        raise ValueError(f"{len(images)} images but {len(specs)} specs")
    states = [Work(image) for image in images]
    for s, spec in zip(states, specs):
        s.spec = spec
    run_batches(states, SCORE_STAGES, detector)
    return [s.result if s.error is None else s.error for s in states]


def score_images(
    images: list[np.ndarray], specs: list[RelationSpec], detector: Detector
) -> list[ScoreResult]:
    """`score_batch` for images that must all score: a bad one raises its error, which names
    its position in the batch."""
    out = score_batch(images, specs, detector)
    for i, r in enumerate(out):
        if isinstance(r, ValueError):
            raise ValueError(f"image {i}: {r}") from r
        if isinstance(r, Exception):
            r.add_note(f"(image {i} of the batch)")
            raise r
    return out


def _st_judge(s: Work, detector: Detector) -> None:
    s.result = judge(s.dets, s.spec)
    s.dets = None


SCORE_STAGES = DETECT_STAGES + (_st_judge,)
"""`score_image` in stages: detection's, then the verdict."""


def judge(dets: list[Detection], spec: RelationSpec) -> ScoreResult:
    """The verdict for given detections (pure; `score_image` = detect + judge)."""
    subj, ref = spec.subject, spec.reference
    shape_ok = _present(dets, [subj.shape, ref.shape], lambda d: d.shape)
    color_ok = _present(dets, [subj.color, ref.color], lambda d: d.color)
    s_cands = [i for i, d in enumerate(dets) if subj.matches(d.shape, d.color)]
    r_cands = [i for i, d in enumerate(dets) if ref.matches(d.shape, d.color)]
    pairs = [(s, r) for s in s_cands for r in r_cands if s != r]
    exist = bool(pairs)
    # Two detections that both specs match equally (e.g. "red circle above red circle"): the
    # prompt cannot tell them apart, so the assignment that best fits the relation is taken.
    twins = len(pairs) == 2 and set(s_cands) == set(r_cands) and len(s_cands) == 2
    unique = len(pairs) == 1 or twins
    expected = f"{_words(subj)} {_phrase(spec.relation)} {_words(ref)}"

    if not exist:
        missing = _words(subj) if not s_cands else _words(ref)
        if s_cands and r_cands:  # both match only the same single detection
            missing = f"two objects ({_words(subj)}, {_words(ref)})"
        found = ", ".join(d.where() for d in dets) or "nothing"
        reason = f"expected {expected}; no {missing} found (detected: {found})"
        return ScoreResult(False, False, False, shape_ok, color_ok, False, False, None, None,
                           None, reason, dets)

    if twins:
        pair = max(pairs, key=lambda p: _relation_fit(dets, p, spec.relation))
    else:
        pair = pairs[0]
    a, b = dets[pair[0]], dets[pair[1]]
    dx, dy = a.x - b.x, a.y - b.y
    found = strict_relation(dx, dy)
    strict = found == spec.relation
    loose = loose_holds(spec.relation, dx, dy)
    correct = strict and shape_ok and color_ok and unique
    offs = f"(dx={dx:+.2f}, dy={dy:+.2f})"
    if not unique:
        reason = (f"expected {expected}; ambiguous binding: {len(s_cands)} match {_words(subj)}, "
                  f"{len(r_cands)} match {_words(ref)} (detected: "
                  f"{', '.join(d.where() for d in dets)})")
    elif strict:
        reason = f"found {expected} {offs}"
    elif found is None:
        reason = f"expected {expected}; found the centres coincide {offs}"
    else:
        reason = f"expected {expected}; found it {found} {offs}"
    if twins:
        reason += "; two identical objects, assignment chosen by the relation"
    return ScoreResult(correct, strict, loose, shape_ok, color_ok, True, unique, dx, dy, found,
                       reason, dets)


def _phrase(relation: str) -> str:
    """'above', 'below', else 'left of', 'upper_left of' (relation names, readable)."""
    return relation if relation in ("above", "below") else f"{relation} of"


def _words(o: ObjectSpec) -> str:
    return o.words() or "object"


def _present(dets: list[Detection], wanted: list[str | None], attr) -> bool:
    """Every named value is detected at least as many times as the prompt names it."""
    have = [attr(d) for d in dets]  # lists, not Counters: this runs per image on the hot path
    return all(have.count(v) >= wanted.count(v) for v in wanted if v is not None)


def _relation_fit(dets: list[Detection], pair: tuple[int, int], relation: str) -> tuple:
    a, b = dets[pair[0]], dets[pair[1]]
    dx, dy = a.x - b.x, a.y - b.y
    return (strict_relation(dx, dy) == relation, loose_holds(relation, dx, dy))
