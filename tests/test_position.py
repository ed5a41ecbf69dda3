"""Position conventions of the detector: each scores its own geometry's truth, circles and
squares do not depend on them, unknown names fail clearly, and the shipped configs load."""

import json
import random

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from relbench.render import render
from relbench.resources import detectors_dir
from relbench.scene import (
    GEOMETRIES,
    POSITION_CONVENTIONS,
    STRICT_THRESHOLD,
    Scene,
    SceneObject,
    in_convention,
    paper_scene,
    random_scene,
)
from relbench.scoring import DetectorConfig, detect, load_detector, score_image
from relbench.scoring.config import resolve_config
from relbench.scoring.position import DETECTOR_OF_CONVENTION, apex_index
from relbench.scene import INVERSE, ObjectSpec, RelationSpec


def _detector(convention: str):
    return load_detector(DETECTOR_OF_CONVENTION[convention])


def test_every_shipped_detector_config_loads():
    names = sorted(p.stem for p in detectors_dir().glob("*.json"))
    assert {"default", "paper", "bbox"} <= set(names)
    for name in names:
        det = load_detector(name)
        assert det.name == name and len(det.config_hash) == 64
    positions = {n: load_detector(n).config.position for n in ("default", "bbox", "paper")}
    assert positions == {"default": "centroid", "bbox": "bbox", "paper": "paper_anchor"}


def test_unknown_position_convention_is_a_clear_error():
    raw = json.loads((detectors_dir() / "default.json").read_text())
    with pytest.raises(ValueError, match="centroid, bbox, paper_anchor"):
        DetectorConfig.model_validate({**raw, "position": "middle"})


def test_convention_configs_are_the_default_with_another_position():
    """paper.json and bbox.json extend default.json, so their thresholds cannot drift from it."""
    base = resolve_config(detectors_dir() / "default.json")
    for name in ("paper", "bbox"):
        cfg = resolve_config(detectors_dir() / f"{name}.json")
        differ = {k for k in base.keys() | cfg.keys() if base.get(k) != cfg.get(k)}
        assert differ <= {"name", "version", "description", "position"}, (name, differ)


@pytest.mark.parametrize("tri,apex", [
    ([[64, 54], [48, 82], [80, 82]], 0),          # the paper's upright triangle
    ([[10, 80], [90, 80], [50, 70]], 2),          # squat: apex opposite the longest side
    ([[40, 90], [50, 10], [60, 90]], 1),          # tall: apex opposite the shortest side
    ([[30, 80], [80, 75], [60, 30]], 2),          # tilted
])
def test_apex_is_the_vertex_whose_axis_points_up(tri, apex):
    assert apex_index(np.array(tri, dtype=float)) == apex


def _one(shape: str, x: float, y: float) -> Scene:
    return Scene((SceneObject(shape, "red", x, y),))


@pytest.mark.parametrize("shape", ["circle", "square"])
def test_circles_and_squares_do_not_depend_on_the_convention(shape):
    for geometry in GEOMETRIES:
        img = render(_one(shape, 0.4 + 0.5 / 128, 0.55 + 0.5 / 128), geometry=geometry)
        pts = {c: (d.x, d.y) for c in POSITION_CONVENTIONS for d in detect(img, _detector(c))}
        assert len(set(pts.values())) == 1, pts


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_a_lone_triangle_is_found_at_each_conventions_point(geometry):
    """Each convention's detection lies within a pixel of that convention's true point: the
    slack whole-pixel labels leave (offsets are whole pixels, and |offset| = T is a tie). The
    paper's anchor (its label) is ⅔ px below the anchor of the triangle PIL draws."""
    scene = _one("triangle", (60 + 0.5) / 128, (70 + 0.5) / 128)
    img = render(scene, geometry=geometry)
    for conv in POSITION_CONVENTIONS:
        (det,) = detect(img, _detector(conv))
        truth = in_convention(scene, conv, geometry).objects[0]
        assert det.shape == "triangle"
        assert abs(det.x - truth.x) * 128 < 0.2 and abs(det.y - truth.y) * 128 < 1.0, conv


def specs_of(scene: Scene) -> list[RelationSpec]:
    """The true spec of object 0 against object 1, and the opposite relation."""
    a, b = scene.objects
    rel = scene.relation()
    subj, ref = ObjectSpec(a.shape, a.color), ObjectSpec(b.shape, b.color)
    return [RelationSpec(subj, rel, ref), RelationSpec(subj, INVERSE[rel], ref)]


def _resolvable(scene: Scene, margin_px: float = 1.0) -> bool:
    dx, dy = scene.offset()
    m = margin_px / 128
    return abs(abs(dx) - STRICT_THRESHOLD) >= m and abs(abs(dy) - STRICT_THRESHOLD) >= m


@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.filter_too_much])
@given(seed=st.integers(0, 2**31 - 1), geometry=st.sampled_from(GEOMETRIES),
       convention=st.sampled_from(POSITION_CONVENTIONS))
def test_a_scene_scored_with_its_matching_convention_gives_its_truth(seed, geometry, convention):
    rng = random.Random(seed)
    scene = (paper_scene(rng, allow_overlap=False) if geometry == "paper"
             else random_scene(rng, allow_overlap=False))
    truth = in_convention(scene, convention, geometry)
    assume(_resolvable(truth))
    img = render(scene, geometry=geometry)
    detector = _detector(convention)
    for spec in specs_of(truth):
        result = score_image(img, spec, detector)
        assert result.correct is (spec.relation == truth.relation()), (spec, result.reason)
