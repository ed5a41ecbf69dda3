"""Position conventions × geometries: how much the point chosen for a triangle moves verdicts.

Called by `python benchmarks/scorer.py --conventions [--n N] [--seed S]`. For each geometry
(relbench, paper) it renders seeded scenes without overlap, detects them once with a detector of
each position convention (default.json, bbox.json, paper.json: the same thresholds), and judges
each image three times as scorer.py does (positive, opposite relation, colours swapped).

- Cross-table: truth = the geometry's own labels; one column per detector convention. Its
  off-diagonal cells are the published size of the convention effect.
- Matching conventions: truth restated in each convention (`relbench.scene.in_convention`),
  scored by that convention's detector: ≈ 100 % (a detected centre can be off by half a pixel).
- Overlap: scenes whose shapes overlap, scored by the geometry's native detector, split by the
  visible fraction of the hidden (first-drawn) object: at least half visible, or less.

Scenes whose true offset (in the convention judged) lies within --margin-px of T are left out
of that cell, as in scorer.py: the pixels cannot decide them. Paper layouts have whole-pixel
offsets, so this leaves out exactly the ties |offset| = 5 px.
"""

from __future__ import annotations

import math
import random

import numpy as np

from relbench.render import render, render_labels
from relbench.scene import (
    GEOMETRIES, NATIVE_CONVENTION, PAPER_CENTER_RANGE, PAPER_SIZE, POSITION_CONVENTIONS, SHAPES,
    TRAIN_COLORS, Scene, SceneObject, in_convention, paper_scene, random_scene, strict_relation,
)
from relbench.scoring import detect, judge, load_detector
from relbench.scoring.position import DETECTOR_OF_CONVENTION as DETECTOR_OF
from scorer import resolvable, specs_for

TARGETS = {("paper", "clean"): 0.995, ("paper", "overlap ≥ half visible"): 0.95}


def _verdicts(dets, scene: Scene) -> int:
    """How many of the three verdicts (positive, opposite, swapped colours) are right."""
    pos, opp, swap = specs_for(scene)
    return judge(dets, pos).correct + (not judge(dets, opp).correct) + (
        not judge(dets, swap).correct
    )


def _snap(v: float, size: int = 128) -> float:
    """A scene coordinate moved to the nearest pixel centre (the paper's whole-pixel grid)."""
    return (round(v * size - 0.5) + 0.5) / size


def overlap_scene(geometry: str, rng: random.Random) -> Scene:
    """Two different shapes 0.2-0.9 object sizes apart (most overlap), on the paper's pixel grid
    for the paper geometry."""
    lo, hi = PAPER_CENTER_RANGE
    while True:
        s1, s2 = rng.sample(SHAPES, 2)
        c1, c2 = rng.sample(TRAIN_COLORS, 2)
        x, y = rng.uniform(lo, hi), rng.uniform(lo, hi)
        ang, dist = rng.uniform(0, 2 * math.pi), rng.uniform(0.2, 0.9) * PAPER_SIZE
        x2, y2 = x + dist * math.cos(ang), y + dist * math.sin(ang)
        if geometry == "paper":
            x, y, x2, y2 = (_snap(v) for v in (x, y, x2, y2))
        if lo <= x2 <= hi and lo <= y2 <= hi and strict_relation(x - x2, y - y2) is not None:
            return Scene((SceneObject(s1, c1, x, y), SceneObject(s2, c2, x2, y2)))


def hidden_visible_fraction(scene: Scene, geometry: str, size: int = 128) -> float:
    """Visible fraction of the first-drawn object (the one the other may cover)."""
    full = np.count_nonzero(render_labels(Scene(scene.objects[:1]), size, geometry=geometry))
    seen = np.count_nonzero(render_labels(scene, size, geometry=geometry) == 1)
    return seen / full


def clean_scene(geometry: str, rng: random.Random) -> Scene:
    if geometry == "paper":
        return paper_scene(rng, allow_overlap=False)
    return random_scene(rng, allow_overlap=False)


def run(n: int, seed: int, margin_px: float = 0.5) -> dict:
    """Every table's counts: {"cross": {(geometry, convention): (agree, verdicts)}, "matching":
    ..., "overlap": {(geometry, bucket): (agree, verdicts)}}."""
    detectors = {c: load_detector(DETECTOR_OF[c]) for c in POSITION_CONVENTIONS}
    cross: dict[tuple[str, str], list[int]] = {}
    matching: dict[tuple[str, str], list[int]] = {}
    overlap: dict[tuple[str, str], list[int]] = {}
    for gi, geometry in enumerate(GEOMETRIES):
        rng = random.Random(seed * 1000 + 500 + gi)
        native = NATIVE_CONVENTION[geometry]
        for _ in range(n):
            scene = clean_scene(geometry, rng)
            img = render(scene, 128, geometry=geometry)
            dets = {c: detect(img, d) for c, d in detectors.items()}
            truths = {c: in_convention(scene, c, geometry) for c in POSITION_CONVENTIONS}
            for conv in POSITION_CONVENTIONS:
                if resolvable(truths[native], margin_px):
                    cell = cross.setdefault((geometry, conv), [0, 0])
                    cell[0] += _verdicts(dets[conv], truths[native])
                    cell[1] += 3
                if resolvable(truths[conv], margin_px):
                    cell = matching.setdefault((geometry, conv), [0, 0])
                    cell[0] += _verdicts(dets[conv], truths[conv])
                    cell[1] += 3
        orng = random.Random(seed * 1000 + 700 + gi)
        for _ in range(n):
            scene = overlap_scene(geometry, orng)
            seen = hidden_visible_fraction(scene, geometry)
            if seen >= 1.0 or not resolvable(scene, margin_px):
                continue  # not overlapping, or undecidable from pixels
            bucket = "overlap ≥ half visible" if seen >= 0.5 else "overlap < half visible"
            img = render(scene, 128, geometry=geometry)
            cell = overlap.setdefault((geometry, bucket), [0, 0])
            cell[0] += _verdicts(detect(img, detectors[native]), scene)
            cell[1] += 3
    return {"cross": cross, "matching": matching, "overlap": overlap}


def _pct(cell: list[int] | None) -> str:
    if not cell or not cell[1]:
        return f"{'-':>15}"
    return f"{cell[0] / cell[1]:>8.2%} ({cell[1] // 3:>4})"


def report(n: int, seed: int, margin_px: float = 0.5) -> bool:
    """Print the three tables; True when the paper geometry's targets are met and the
    cross-table's diagonal (each geometry scored by its own convention) is all-correct."""
    res = run(n, seed, margin_px)
    for c in POSITION_CONVENTIONS:
        d = load_detector(DETECTOR_OF[c])
        print(f"detector for {c}: {d.name} v{d.version} ({d.config_hash[:12]})")
    head = "".join(f"{c:>16}" for c in POSITION_CONVENTIONS)
    print(f"\nposition convention × geometry, clean scenes without overlap (n = {n} per geometry;"
          f" agreement (images judged); offsets within {margin_px} px of T left out)")
    print("truth = the geometry's own labels; columns = the detector's convention")
    print(f"{'geometry':<10}{'labels at':>14}{head}")
    for g in GEOMETRIES:
        cells = "".join(f"{_pct(res['cross'].get((g, c)))} " for c in POSITION_CONVENTIONS)
        print(f"{g:<10}{NATIVE_CONVENTION[g]:>14}{cells}")
    diagonal = [res["cross"].get((g, NATIVE_CONVENTION[g])) for g in GEOMETRIES]
    ok = all(cell and cell[0] == cell[1] for cell in diagonal)
    print(f"diagonal (each geometry by its own convention) all-correct: {'yes' if ok else 'NO'}")
    print("\nmatching conventions: truth restated in the detector's convention (≈ 100 %; a "
          "detected centre can be off by half a pixel)")
    print(f"{'geometry':<24}{head}")
    for g in GEOMETRIES:
        cells = "".join(f"{_pct(res['matching'].get((g, c)))} " for c in POSITION_CONVENTIONS)
        print(f"{g:<24}{cells}")
    print("\noverlapping scenes, native detector, by the visible fraction of the hidden object")
    for (g, bucket), cell in sorted(res["overlap"].items()):
        target = TARGETS.get((g, bucket))
        verdict = ""
        if target is not None:
            met = cell[0] / cell[1] >= target
            ok &= met
            verdict = f"  ≥{target:.1%} {'ok' if met else 'MISSED'}"
        print(f"{g:<10}{DETECTOR_OF[NATIVE_CONVENTION[g]]:>8}  {bucket:<24}{_pct(cell)}{verdict}")
    clean = res["cross"].get(("paper", "paper_anchor"))
    met = bool(clean) and clean[0] / clean[1] >= TARGETS[("paper", "clean")]
    ok &= met
    print(f"\npaper geometry + paper detector, clean: {_pct(clean).strip()}  "
          f"≥{TARGETS[('paper', 'clean')]:.1%} {'ok' if met else 'MISSED'}")
    return ok
