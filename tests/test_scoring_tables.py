"""The scorer's shortcuts give what the plain computation gives: colour tables indexed by each
channel's top bits, and the edge rule run on the box around the foreground."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relbench.scoring import load_detector
from relbench.scoring.colour import build_lut, expand, packed
from relbench.styles import sample_styled

detect_mod = importlib.import_module("relbench.scoring.detect")


@pytest.fixture(scope="module")
def detector():
    return load_detector("default")


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([4, 5, 6, 7]))
def test_expanded_table_reads_the_grid_cell_of_each_pixel(seed, bits):
    rng = np.random.default_rng(seed)
    n = 1 << bits
    table = rng.integers(0, 256, n**3, dtype=np.uint8)  # indexed [R, G, B] row-major
    image = rng.integers(0, 256, (7, 9, 3), dtype=np.uint8)
    q = image >> (8 - bits)
    direct = table[(q[..., 0].astype(int) * n + q[..., 1]) * n + q[..., 2]]
    assert np.array_equal(expand(table, bits).take(packed(image, bits)), direct)


def test_names_come_from_the_colour_regions(detector):
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    bits = detector.config.lut_bits
    q = image >> (8 - bits)
    n = 1 << bits
    grid = build_lut(detector.config)
    want = grid[(q[..., 0].astype(int) * n + q[..., 1]) * n + q[..., 2]]
    assert np.array_equal(detector.names(image), want)


def _whole_image_edge_rule(fg, dist, thresholds, cfg):
    """The edge rule over the whole image, written plainly: the reference for the boxed one."""
    import cv2

    top, low = float(dist.max()), float(thresholds[1:].min())
    weak = (dist >= low) & (dist <= cfg.edge_split * top)
    if not (low < cfg.edge_split * top and weak.any()):
        return fg
    r = cfg.edge_radius_px
    near_bg = cv2.dilate(1 - fg, np.ones((2 * r + 1, 2 * r + 1), np.uint8)).astype(bool)
    window = (4 * r + 1, 4 * r + 1)
    d = dist.astype(np.float32)
    mass = cv2.boxFilter(fg.astype(np.float32), -1, window, normalize=False)
    level = cv2.boxFilter(fg * d, -1, window, normalize=False)
    level *= cfg.edge_split / np.maximum(mass, 1.0)
    out = fg.copy()
    out[near_bg & (d < level)] = 0
    return out


@pytest.mark.parametrize("factors", [(), ("shading", "background", "jpeg"), ("outline", "shadow")])
def test_edge_rule_on_the_foreground_box_equals_the_whole_image(detector, factors):
    cfg = detector.config
    changed = 0
    for seed in range(6):
        image = sample_styled(factors, seed=seed, size=128).image
        state = detect_mod.Work(image)  # the stages up to the foreground, as scoring runs them
        for stage in detect_mod.SEGMENT_STAGES[: detect_mod.SEGMENT_STAGES.index(
                detect_mod._st_foreground) + 1]:
            stage(state, detector)
        fg, dist, thresholds = state.fg, state.dist, detector.thresholds(state.bg)
        boxed = fg.copy()
        detect_mod._trim_edges(boxed, dist, thresholds, cfg)
        assert np.array_equal(boxed, _whole_image_edge_rule(fg, dist, thresholds, cfg))
        changed += int((boxed != fg).sum())
    assert changed > 0  # the rule did trim something on these images


def _fresh(detector):
    detector._dist.clear()
    detector._seen.clear()


@settings(max_examples=12, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from(["clean", "antialias", "blur", "overlap"]))
def test_a_flat_background_scores_the_same_met_first_or_again(detector, seed, condition):
    """An image's detections do not depend on whether the detector met its background before
    (first sight computes its pixels' cells; from the second on, the whole table is read)."""
    import random
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    scorer = importlib.import_module("scorer")
    image, _ = scorer.make_image(condition, random.Random(seed), np.random.default_rng(seed))
    _fresh(detector)
    first = detect_mod.detect(image, detector)
    detect_mod.detect(image, detector)
    assert detector._dist, "the second sight builds the background's table"
    again = detect_mod.detect(image, detector)
    assert [d.to_dict() for d in first] == [d.to_dict() for d in again]
    assert first, "the render has objects"


def test_cell_distances_equal_the_table(detector):
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (24, 20, 3), dtype=np.uint8)
    image[:4] = image[-4:] = 128
    bg = detect_mod._flat_model(128, 128, 128)
    _fresh(detector)
    idx = packed(image, detector.config.lut_bits)
    names = detector._lut.take(idx)
    direct = detector.cell_distances(idx, names, bg)
    assert detector.foreground_table(bg) is None  # first sight: no table yet
    table = detector.foreground_table(bg)
    assert np.array_equal(direct, table.take(idx))
    assert direct.any()


def _plain_ellipse_overlap(hull, rect):
    """IoU of the filled hull and the ellipse inscribed in `rect`, both drawn with fillPoly /
    ellipse on one canvas that holds them: the reference for the scorer's shortcut."""
    import cv2

    pts = np.concatenate([cv2.boxPoints(rect), hull.reshape(-1, 2).astype(np.float32)])
    x, y, bw, bh = cv2.boundingRect(pts)
    lo = np.array([x - 1, y - 1], np.float64)
    shape = np.zeros((bh + 3, bw + 3), np.uint8)
    ellipse = np.zeros_like(shape)
    poly = np.round((hull.reshape(-1, 2) - lo) * 16).astype(np.int32)
    cv2.fillPoly(shape, [poly], 1, cv2.LINE_8, 4)
    (cx, cy), (rw, rh), angle = rect
    centre = (int(round((cx - lo[0]) * 16)), int(round((cy - lo[1]) * 16)))
    axes = (int(round((rw - 1) / 2 * 16)), int(round((rh - 1) / 2 * 16)))
    cv2.ellipse(ellipse, centre, axes, angle, 0, 360, 1, -1, cv2.LINE_8, 4)
    union = np.count_nonzero(shape | ellipse)
    return np.count_nonzero(shape & ellipse) / union if union else 0.0


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_ellipse_overlap_equals_drawing_both_shapes(seed):
    """The fit reuses the hull filled on its own box (drawContours) and counts the union from
    the two areas; drawing hull and ellipse on one canvas gives the same IoU."""
    import cv2

    rng = np.random.default_rng(seed)
    pts = rng.integers(0, rng.integers(3, 100), (rng.integers(3, 30), 2)).astype(np.int32)
    hull = cv2.convexHull(pts.reshape(-1, 1, 2))
    rect = cv2.minAreaRect(hull)
    rect = (rect[0], (rect[1][0] + 1, rect[1][1] + 1), rect[2])
    want = _plain_ellipse_overlap(hull, rect)
    assert detect_mod._ellipse_overlap(hull, rect) == want
    x, y, w, h = cv2.boundingRect(hull)
    solid = np.zeros((h, w), np.uint8)
    cv2.drawContours(solid, [hull], -1, 1, cv2.FILLED, offset=(-x, -y))
    assert detect_mod._ellipse_overlap(hull, rect, solid) == want


@settings(max_examples=6, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 12))
def test_a_batch_scores_each_image_as_alone(detector, seed, n):
    """`score_batch` runs each step over the whole batch; every verdict is `score_image`'s, and
    a bad image fails alone, in its place."""
    import random

    from relbench.scoring import score_image
    from relbench.scoring.judge import score_batch, score_images
    from relbench.styles import STYLE_FACTORS

    rng = random.Random(seed)
    samples = [sample_styled(tuple(rng.sample(STYLE_FACTORS, rng.randint(0, 3))),
                             seed=rng.randrange(1 << 30), size=rng.choice([64, 128]))
               for _ in range(n)]
    images, specs = [s.image for s in samples], [s.spec for s in samples]
    bad = rng.randint(0, n)
    images.insert(bad, np.zeros((4, 4, 3), np.uint8))
    specs.insert(bad, specs[0])
    out = score_batch(images, specs, detector)
    assert isinstance(out[bad], ValueError) and "too small" in str(out[bad])
    alone = [score_image(im, sp, detector).to_dict() for i, (im, sp) in
             enumerate(zip(images, specs)) if i != bad]
    assert [r.to_dict() for i, r in enumerate(out) if i != bad] == alone
    if bad:
        first = detect_mod.detect_batch(images[:bad], detector)[0]
        assert [d.to_dict() for d in first] == alone[0]["detections"]
    with pytest.raises(ValueError, match=f"image {bad}: image too small"):
        score_images(images, specs, detector)
    with pytest.raises(ValueError, match="2 images but 1 specs"):
        score_batch(images[:2], specs[:1], detector)
