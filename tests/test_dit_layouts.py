"""Training layouts: the paper's by default; the relation-balanced, canonical-pull curriculum."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest

from relbench.data import sample_caption_parts
from relbench.dit.layouts import LayoutConfig, align_cardinal, canonical_centres, pull, training_scene
from relbench.dit.train import TrainConfig, renderer_source
from relbench.scene import DIAGONAL_RELATIONS, RELATIONS, STRICT_THRESHOLD, random_scene, strict_relation


def test_default_is_the_papers_distribution():
    cfg = LayoutConfig()
    assert cfg.is_paper
    for i in range(50):
        assert training_scene(random.Random(i), cfg, step=i) == random_scene(random.Random(i))


@pytest.mark.parametrize("relation", RELATIONS)
def test_canonical_layout_holds_its_relation_mirrored_about_the_centre(relation):
    (sx, sy), (rx, ry) = canonical_centres(relation, 0.3)
    assert strict_relation(sx - rx, sy - ry) == relation
    assert (sx + rx, sy + ry) == pytest.approx((1.0, 1.0))


def test_pull_never_changes_the_relation_and_lambda_zero_is_canonical():
    rng = random.Random(0)
    for _ in range(2000):
        scene = random_scene(rng)
        lam = rng.random()
        pulled = pull(scene, lam, 0.3)
        assert pulled.relation() == scene.relation()
        # the move is the stated affine pull, objects keep shape, colour and size
        (cx, cy), _ = canonical_centres(scene.relation(), 0.3)
        a, b = scene.objects[0], pulled.objects[0]
        assert (b.x, b.y) == pytest.approx((cx + lam * (a.x - cx), cy + lam * (a.y - cy)))
        assert (b.shape, b.color, b.size) == (a.shape, a.color, a.size)
    canonical = pull(scene, 0.0, 0.3)
    flat = [v for o in canonical.objects for v in (o.x, o.y)]
    assert flat == pytest.approx([v for c in canonical_centres(scene.relation(), 0.3) for v in c])
    assert pull(scene, 1.0, 0.3) == scene
    with pytest.raises(ValueError, match="lambda"):
        pull(scene, 1.5, 0.3)


def test_cardinal_offsets_stay_within_the_threshold_after_a_pull():
    rng = random.Random(1)
    cfg = LayoutConfig(balance_relations=True, spread_start=0.0)
    for _ in range(500):
        scene = training_scene(rng, cfg, 0)
        dx, dy = scene.offset()
        rel = scene.relation()
        if rel in ("above", "below"):
            assert abs(dx) <= STRICT_THRESHOLD
        elif rel in ("left", "right"):
            assert abs(dy) <= STRICT_THRESHOLD


def test_balanced_relations_are_uniform_where_the_paper_is_mostly_diagonal():
    rng = random.Random(2)
    n = 4000
    balanced = Counter(training_scene(rng, LayoutConfig(balance_relations=True), 0).relation() for _ in range(n))
    paper = Counter(random_scene(rng).relation() for _ in range(n))
    assert set(balanced) == set(RELATIONS)
    assert all(abs(balanced[r] / n - 1 / 8) < 0.03 for r in RELATIONS)
    assert sum(paper[r] for r in DIAGONAL_RELATIONS) / n > 0.7


def test_spread_floor_ramps_from_start_to_one():
    cfg = LayoutConfig(spread_start=0.2, spread_ramp_steps=100)
    assert [cfg.spread_floor(s) for s in (0, 50, 100, 1000)] == pytest.approx([0.2, 0.6, 1.0, 1.0])
    assert LayoutConfig(spread_start=0.3).spread_floor(10**6) == 0.3  # no ramp: constant
    # at the end of the ramp every scene is a paper scene again
    late = LayoutConfig(spread_start=0.0, spread_ramp_steps=10)
    for i in range(20):
        assert training_scene(random.Random(i), late, 10) == random_scene(random.Random(i))
    with pytest.raises(ValueError):
        LayoutConfig(spread_start=1.5)


def test_early_curriculum_layouts_are_tighter_than_the_papers():
    def spread(cfg, step):
        rng = random.Random(3)
        xs = [training_scene(rng, cfg, step).objects[0].x for _ in range(1000)]
        m = sum(xs) / len(xs)
        return (sum((x - m) ** 2 for x in xs) / len(xs)) ** 0.5

    cfg = LayoutConfig(balance_relations=True, spread_start=0.0, spread_ramp_steps=1000)
    assert spread(cfg, 0) < 0.75 * spread(LayoutConfig(balance_relations=True), 0)


def test_spread_power_concentrates_layouts_near_the_canonical_ones():
    def mean_distance(power):
        cfg = LayoutConfig(balance_relations=True, spread_start=0.0, spread_power=power)
        rng = random.Random(4)
        total = 0.0
        for _ in range(1000):
            scene = training_scene(rng, cfg, 0)
            (cx, cy), _ = canonical_centres(scene.relation(), cfg.canonical_distance)
            total += ((scene.objects[0].x - cx) ** 2 + (scene.objects[0].y - cy) ** 2) ** 0.5
        return total / 1000

    uniform, concentrated, canonical = mean_distance(1.0), mean_distance(3.0), mean_distance(1e6)
    assert canonical < 1e-3 < concentrated < 0.75 * uniform
    with pytest.raises(ValueError):
        LayoutConfig(spread_power=0)


def test_source_captions_describe_the_rendered_layout_and_config_round_trips(tmp_path):
    cfg = TrainConfig.load(None, ["layout.balance_relations=true", "layout.spread_start=0",
                                  "layout.spread_ramp_steps=500", "model.image_size=64",
                                  "model.patch_size=8"])
    assert cfg.layout == LayoutConfig(balance_relations=True, spread_start=0.0, spread_ramp_steps=500)
    src = renderer_source(cfg.model.image_size, 0, cfg.layout)
    images, captions = src(7, 0, 8)
    assert images.shape == (8, 64, 64, 3)
    assert src(7, 0, 8)[1] == captions  # a pure function of (step, rank, batch)
    rng = random.Random("train:0:0:7")
    scenes = [training_scene(rng, cfg.layout, 7) for _ in range(8)]
    assert captions == [sample_caption_parts(s, rng).text for s in scenes]
    with pytest.raises(ValueError, match="did you mean 'spread_start'"):
        TrainConfig.load(None, ["layout.spread_strat=0"])


def test_order_bias_holds_then_ramps_to_the_papers_half():
    cfg = LayoutConfig(order_bias=0.8, order_bias_hold_steps=100, order_bias_ramp_steps=300)
    q = [cfg.subject_colour_probability(s) for s in (0, 99, 100, 250, 400, 10**6)]
    assert q == pytest.approx([0.8, 0.8, 0.8, 0.65, 0.5, 0.5])
    assert not cfg.is_paper and LayoutConfig().subject_colour_probability(0) == 0.5
    with pytest.raises(ValueError, match="order_bias=0.8 has no effect without"):
        LayoutConfig(order_bias=0.8)


def test_order_bias_makes_red_the_subject_with_probability_q_and_keeps_the_layout():
    n = 4000
    for q, step in ((0.8, 0), (1.0, 0), (0.8, 10**6)):
        cfg = LayoutConfig(order_bias=q, order_bias_hold_steps=1000)
        rng = random.Random(5)
        scenes = [training_scene(rng, cfg, step) for _ in range(n)]
        red_first = sum(s.objects[0].color == "red" for s in scenes) / n
        want = q if step < 1000 else 0.5
        assert abs(red_first - want) < 0.03, (q, step, red_first)
        assert all({s.objects[0].color, s.objects[1].color} == {"red", "blue"} for s in scenes)
    # a swap exchanges the colours only: shapes, places and so the relation stay
    biased = LayoutConfig(order_bias=1.0, order_bias_hold_steps=10)
    for i in range(50):
        a, b = random_scene(random.Random(i)), training_scene(random.Random(i), biased, 0)
        assert [(o.shape, o.x, o.y, o.size) for o in a.objects] == [(o.shape, o.x, o.y, o.size) for o in b.objects]
        assert b.objects[0].color == "red" and a.relation() == b.relation()


@pytest.mark.parametrize("scale", [0.0, 0.4])
def test_cardinal_alignment_scales_the_unnamed_axis_and_keeps_every_relation(scale):
    rng = random.Random(3)
    cardinal = 0
    for _ in range(400):
        scene = random_scene(rng)
        aligned = align_cardinal(scene, scale)
        (dx, dy), (ax, ay) = scene.offset(0, 1), aligned.offset(0, 1)
        assert aligned.relation(0, 1) == scene.relation(0, 1)
        if scene.relation(0, 1) in DIAGONAL_RELATIONS:
            assert aligned == scene
            continue
        cardinal += 1
        named_x = scene.relation(0, 1) in ("left", "right")
        assert (ax, ay) == pytest.approx((dx, scale * dy) if named_x else (scale * dx, dy))
        # The midpoint stays where it was.
        mid = lambda s, i: (s.objects[0].x + s.objects[1].x, s.objects[0].y + s.objects[1].y)[i]  # noqa: E731
        assert mid(aligned, 0) == pytest.approx(mid(scene, 0)) and mid(aligned, 1) == pytest.approx(mid(scene, 1))
    assert cardinal > 20
    assert align_cardinal(scene, 1.0) is scene
    with pytest.raises(ValueError, match="must be in"):
        align_cardinal(scene, 1.5)


def test_zero_cardinal_offset_lines_up_every_cardinal_training_scene():
    config = LayoutConfig(balance_relations=True, spread_start=0.3, cardinal_offset_scale=0.0)
    rng = random.Random(0)
    scenes = [training_scene(rng, config, 0) for _ in range(300)]
    cardinal = [s for s in scenes if s.relation(0, 1) not in DIAGONAL_RELATIONS]
    assert len(cardinal) > 80
    for s in cardinal:
        dx, dy = s.offset(0, 1)
        assert min(abs(dx), abs(dy)) == pytest.approx(0.0, abs=1e-12)
    assert not config.is_paper and not LayoutConfig(cardinal_offset_scale=0.5).is_paper


def test_layout_phases_switch_the_training_layouts_at_their_step():
    base = {"layout": {"balance_relations": True, "spread_start": 0.0, "spread_ramp_steps": 100}}
    phase = {"step": 50, "layout": {"balance_relations": True, "spread_start": 0.3, "cardinal_offset_scale": 0.0}}
    cfg = TrainConfig.model_validate(base | {"layout_phases": [phase]})
    assert cfg.layout_at(49) == cfg.layout and cfg.layout_at(50).cardinal_offset_scale == 0.0
    assert cfg.layout_at(10_000).spread_start == 0.3
    plain = TrainConfig.model_validate(base)
    # Before the phase the batches are the unextended run's, byte for byte; from it on they differ.
    a, b = renderer_source(32, 0, cfg.layout_at), renderer_source(32, 0, plain.layout_at)
    assert np.array_equal(a(49, 0, 8)[0], b(49, 0, 8)[0]) and a(49, 0, 8)[1] == b(49, 0, 8)[1]
    assert not np.array_equal(a(60, 0, 8)[0], b(60, 0, 8)[0])
    with pytest.raises(ValueError, match="layout_phases: steps must increase"):
        TrainConfig.model_validate(base | {"layout_phases": [phase, phase]})
