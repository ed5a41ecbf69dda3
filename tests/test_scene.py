"""The relation rule: properties that must hold for every offset."""

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relbench.scene import (
    DIRECTION,
    INVERSE,
    RELATIONS,
    STRICT_THRESHOLD,
    ObjectSpec,
    RelationSpec,
    Scene,
    SceneObject,
    check_relation,
    loose_holds,
    random_scene,
    scene_for_spec,
    strict_relation,
)

coord = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
offset = st.floats(min_value=-1.0, max_value=1.0, allow_nan=False)


@given(coord, coord, coord, coord)
def test_relation_is_antisymmetric(x1, y1, x2, y2):
    a = strict_relation(x1 - x2, y1 - y2)
    b = strict_relation(x2 - x1, y2 - y1)
    if a is None:
        assert b is None
    else:
        assert b == INVERSE[a]


@given(coord, coord, coord, coord, st.floats(-0.4, 0.4), st.floats(-0.4, 0.4))
def test_relation_is_translation_invariant(x1, y1, x2, y2, tx, ty):
    # Offsets are computed from translated centres; compare on exactly representable grid points.
    q = lambda v: round(v * 1024) / 1024  # noqa: E731
    x1, y1, x2, y2, tx, ty = map(q, (x1, y1, x2, y2, tx, ty))
    assert strict_relation(x1 - x2, y1 - y2) == strict_relation((x1 + tx) - (x2 + tx), (y1 + ty) - (y2 + ty))


@given(st.integers(-200, 200), st.integers(-200, 200), st.sampled_from([32, 64, 128, 256, 512, 1024]))
def test_threshold_scales_with_image_size(px_dx, px_dy, size):
    """The same layout in pixels at 128 px and scaled to another size gets the same relation."""
    scale = size / 128
    at_128 = strict_relation(px_dx / 128, px_dy / 128)
    at_size = strict_relation(px_dx * scale / size, px_dy * scale / size)
    assert at_128 == at_size


def test_paper_threshold_is_five_pixels_at_128():
    assert strict_relation(5 / 128, -20 / 128) == "above"  # |dx| = T counts as aligned
    assert strict_relation(6 / 128, -20 / 128) == "upper_right"
    assert strict_relation(-20 / 128, 5 / 128) == "left"
    assert strict_relation(0.0, 0.0) is None  # coincident centres: no relation
    assert STRICT_THRESHOLD == pytest.approx(0.039, abs=1e-3)


@given(offset, offset)
def test_strict_implies_loose(dx, dy):
    rel = strict_relation(dx, dy)
    if rel is not None:
        assert loose_holds(rel, dx, dy)


@given(offset, offset, st.sampled_from(RELATIONS))
def test_loose_is_antisymmetric(dx, dy, rel):
    assert loose_holds(rel, dx, dy) == loose_holds(INVERSE[rel], -dx, -dy)


def test_loose_accepts_diagonal_for_cardinal_but_not_the_reverse():
    assert loose_holds("above", 0.2, -0.2)  # upper_right layout still "above" loosely
    assert not loose_holds("upper_left", 0.0, -0.2)  # pure "above" is not loosely upper_left
    assert not loose_holds("above", 0.0, -0.01)  # within T: not above even loosely


@given(offset, offset)
def test_exactly_one_or_no_relation_and_direction_signs(dx, dy):
    rel = strict_relation(dx, dy)
    if rel is None:
        return
    ux, uy = DIRECTION[rel]
    if ux:
        assert ux * dx > 0
    if uy:
        assert uy * dy > 0


def test_unknown_relation_suggests():
    with pytest.raises(ValueError, match="did you mean 'upper_left'"):
        check_relation("uper_left")
    with pytest.raises(ValueError):
        RelationSpec(ObjectSpec("square"), "beside", ObjectSpec("circle"))


@settings(max_examples=50)
@given(st.sampled_from(RELATIONS), st.integers(0, 10_000))
def test_scene_for_spec_satisfies_spec(rel, seed):
    spec = RelationSpec(ObjectSpec("square", "red"), rel, ObjectSpec("circle", "blue"))
    scene = scene_for_spec(spec, random.Random(seed))
    assert scene.relation(0, 1) == rel
    assert scene.relation(1, 0) == INVERSE[rel]
    assert (scene.objects[0].shape, scene.objects[0].color) == ("square", "red")


def test_random_scene_follows_paper_distribution():
    rng = random.Random(0)
    scenes = [random_scene(rng) for _ in range(4000)]
    for s in scenes[:200]:
        a, b = s.objects
        assert a.shape != b.shape and {a.color, b.color} == {"red", "blue"}
        assert all(17 / 128 <= v <= 111 / 128 for v in (a.x, a.y, b.x, b.y))
    diagonal = sum(s.relation() in ("upper_left", "upper_right", "lower_left", "lower_right") for s in scenes)
    assert 0.75 < diagonal / len(scenes) < 0.83  # the paper: about 79 % of random layouts are diagonal


def test_spec_and_scene_round_trip_through_dicts():
    spec = RelationSpec(ObjectSpec("triangle", None), "lower_left", ObjectSpec(None, "blue"))
    assert RelationSpec.from_dict(spec.to_dict()) == spec
    assert spec.inverse().inverse() == spec
    scene = Scene((SceneObject("circle", "red", 0.25, 0.5), SceneObject("square", "blue", 0.5, 0.5)))
    assert Scene.from_dict(scene.to_dict()) == scene
    with pytest.raises(ValueError, match="malformed spec"):
        RelationSpec.from_dict({"subject": {"shape": "x"}})
