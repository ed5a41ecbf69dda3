"""The classical scorer on styled images (relbench.styles): properties that must hold for every
factor, shadows and outlines that never become objects, colour names stable under shading.
The full style benchmark is `python benchmarks/scorer.py --styles`."""

from __future__ import annotations

import random

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relbench.scene import COLOR_RGB, INVERSE, ObjectSpec, RelationSpec
from relbench.scoring import detect, judge, load_detector
from relbench.scoring.colour import name_of, rgb_to_lch
from relbench.styles import STYLE_FACTORS, sample_styled

CHROMATIC = [c for c in COLOR_RGB if c not in ("black", "white")]
_CONFIG = []


def _config():
    """The default detector's config, loaded once (building its colour table takes a while)."""
    if not _CONFIG:
        _CONFIG.append(load_detector("default").config)
    return _CONFIG[0]


@pytest.fixture(scope="module")
def det():
    return load_detector("default")


def _verdicts(image, spec, det):
    dets = detect(image, det)
    opp = RelationSpec(spec.subject, INVERSE[spec.relation], spec.reference)
    s, r = spec.subject, spec.reference
    swap = RelationSpec(ObjectSpec(s.shape, r.color), spec.relation, ObjectSpec(r.shape, s.color))
    return judge(dets, spec), judge(dets, opp), judge(dets, swap)


@pytest.mark.parametrize("factor", STYLE_FACTORS)
def test_each_style_factor_alone_scores_as_its_truth(det, factor):
    for seed in range(4):
        s = sample_styled([factor], seed=1000 + seed, size=160)
        pos, opp, swap = _verdicts(s.image, s.spec, det)
        assert pos.correct, (factor, seed, s.factors, pos.reason)
        assert not opp.correct and not swap.correct, (factor, seed, s.factors)


def test_combinations_of_three_factors_score_as_their_truth(det):
    rng = random.Random(7)
    for seed in range(8):
        factors = rng.sample(STYLE_FACTORS, 3)
        s = sample_styled(factors, seed=2000 + seed, size=256)
        pos, opp, swap = _verdicts(s.image, s.spec, det)
        assert pos.correct, (seed, s.factors, pos.reason)
        assert not opp.correct and not swap.correct, (seed, s.factors)


@pytest.mark.parametrize("bg", [(235, 232, 225), (128, 128, 128), (70, 70, 72)])
def test_a_soft_shadow_alone_is_never_an_object(det, bg):
    img = np.empty((160, 160, 3), np.uint8)
    img[:] = bg
    alpha = np.zeros((160, 160), np.float32)
    cv2.circle(alpha, (70, 90), 28, 1.0, -1)
    alpha = cv2.GaussianBlur(alpha, (0, 0), 5) * 0.6
    shadowed = img.astype(np.float32) * (1 - alpha[..., None])
    assert detect(np.clip(shadowed + 0.5, 0, 255).astype(np.uint8), det) == []


@pytest.mark.parametrize("bg", [(240, 238, 232), (60, 60, 64)])
@pytest.mark.parametrize("shape", ["circle", "square", "triangle"])
def test_an_outline_ring_belongs_to_its_shape(det, bg, shape):
    """A dark outline around a fill is the shape's edge, not a black object of its own."""
    img = np.empty((200, 200, 3), np.uint8)
    img[:] = bg
    fill, ink = (200, 20, 40), (15, 12, 12)
    if shape == "circle":
        cv2.circle(img, (100, 100), 50, ink, -1, cv2.LINE_AA)
        cv2.circle(img, (100, 100), 44, fill, -1, cv2.LINE_AA)
    elif shape == "square":
        cv2.rectangle(img, (50, 50), (150, 150), ink, -1, cv2.LINE_AA)
        cv2.rectangle(img, (56, 56), (144, 144), fill, -1, cv2.LINE_AA)
    else:
        outer = np.array([[100, 40], [160, 150], [40, 150]], np.int32)
        inner = np.array([[100, 56], [148, 144], [52, 144]], np.int32)
        cv2.fillPoly(img, [outer], ink, cv2.LINE_AA)
        cv2.fillPoly(img, [inner], fill, cv2.LINE_AA)
    found = detect(img, det)
    assert [(d.shape, d.color) for d in found] == [(shape, "red")]


@settings(max_examples=60, deadline=None)
@given(colour=st.sampled_from(CHROMATIC), shade=st.floats(0.3, 1.0), tint=st.floats(0.0, 0.5))
def test_colour_names_hold_under_shading_and_highlights(colour, shade, tint):
    """Darkening (shading) or mixing with white (highlights) keeps a chromatic name."""
    cfg = _config()
    base = np.asarray(COLOR_RGB[colour], np.float64)
    dark = tuple(int(round(v)) for v in base * shade)
    light = tuple(int(round(v + (255 - v) * tint)) for v in base)
    assert name_of(dark, cfg) == colour
    assert name_of(light, cfg) == colour


@settings(max_examples=60, deadline=None)
@given(level=st.integers(60, 215), spread=st.integers(0, 6))
def test_grays_have_no_name(level, spread):
    """Low-chroma mid tones (backgrounds, shadows) are never a palette colour."""
    cfg = _config()
    rgb = (level, level + spread // 2, level + spread)
    assert rgb_to_lch(np.asarray([rgb], np.float32))[0, 1] < 14
    assert name_of(rgb, cfg) is None


def test_people_s_shades_get_their_colour_word(det):
    cfg = det.config
    shades = {"navy": ((0, 0, 128), "blue"), "royal blue": ((65, 105, 225), "blue"),
              "sky blue": ((135, 206, 235), "blue"), "crimson": ((220, 20, 60), "red"),
              "dark red": ((139, 0, 0), "red"), "orange-red": ((255, 69, 0), "red")}
    for word, (rgb, name) in shades.items():
        assert name_of(rgb, cfg) == name, word


def test_an_unreadable_image_says_what_it_found(det):
    img = np.full((128, 128, 3), 128, np.uint8)
    cv2.circle(img, (40, 40), 15, (255, 0, 0), -1)
    spec = RelationSpec(ObjectSpec("circle", "red"), "left", ObjectSpec("square", "blue"))
    r = judge(detect(img, det), spec)
    assert not r.correct and "red circle at (0.3" in r.reason


def test_every_shade_the_style_suite_draws_gets_its_colour_word(det):
    from relbench.styles.palette import SHADES

    for word, shades in SHADES.items():
        for shade, rgb in shades.items():
            assert name_of(rgb, det.config) == word, (word, shade, rgb)
