"""Named data geometries: the `paper` renderer draws exactly the paper's shapes, positions are
restated between conventions, and geometry travels through data build and checkpoints."""

import json
import math
import random
import warnings

import numpy as np
import pytest
from PIL import Image, ImageDraw

from relbench.render import render, render_labels
from relbench.scene import (
    GEOMETRIES,
    POSITION_CONVENTIONS,
    Scene,
    SceneObject,
    check_convention,
    check_geometry,
    in_convention,
    object_point,
    paper_scene,
)

H = 32 * math.sqrt(3) / 2  # the paper's triangle height at 128 px


def paper_reference(objects: list[tuple[str, str, int, int]], size: int = 128) -> np.ndarray:
    """The paper's drawing, written out from its formulas: r = 16, s = 2r, h = s·√3/2, PIL
    ImageDraw on a 'gray' canvas, objects drawn in order at whole-pixel centres (X, Y)."""
    img = Image.new("RGB", (size, size), "gray")
    draw = ImageDraw.Draw(img)
    r = 16
    for shape, color, x, y in objects:
        if shape == "circle":
            draw.ellipse([(x - r, y - r), (x + r, y + r)], fill=color)
        elif shape == "square":
            s = 2 * r
            draw.rectangle([(x - s // 2, y - s // 2), (x + s // 2, y + s // 2)], fill=color)
        else:
            s = 2 * r
            h = s * (3 ** 0.5) / 2
            draw.polygon([(x, y - h / 3), (x - s / 2, y + h * 2 / 3), (x + s / 2, y + h * 2 / 3)],
                         fill=color)
    return np.asarray(img)


def paper_objects(objects: list[tuple[str, str, int, int]]) -> Scene:
    """The same objects as a relbench scene: pixel centre X is the fraction (X + 0.5) / 128."""
    return Scene(tuple(SceneObject(s, c, (x + 0.5) / 128, (y + 0.5) / 128)
                       for s, c, x, y in objects))


FIXED = [
    [("triangle", "red", 64, 64)],
    [("circle", "blue", 17, 111)],
    [("square", "red", 111, 17)],
    [("triangle", "blue", 30, 90), ("circle", "red", 95, 40)],
    [("square", "blue", 60, 60), ("triangle", "red", 70, 66)],  # overlapping, triangle on top
    [("triangle", "red", 55, 70), ("circle", "blue", 63, 62)],  # overlapping, circle on top
    [("circle", "red", 40, 41), ("square", "blue", 41, 80)],
]


@pytest.mark.parametrize("objects", FIXED)
def test_paper_renderer_matches_the_papers_formulas_pixel_for_pixel(objects):
    scene = paper_objects(objects)
    assert np.array_equal(render(scene, 128, geometry="paper"), paper_reference(objects))


def test_paper_shapes_have_the_papers_extent():
    """At 128 px: square and circle span 33 pixel centres (both ends drawn); the triangle's
    vertices are truncated to whole pixels, so its apex is 10 px above (X, Y), its base 18 below."""
    for shape in ("circle", "square", "triangle"):
        labels = render_labels(paper_objects([(shape, "red", 64, 64)]), geometry="paper")
        rows, cols = np.nonzero(labels)
        assert (cols.min(), cols.max()) == (48, 80)
        if shape == "triangle":
            assert (rows.min(), rows.max()) == (54, 82)
            assert np.nonzero(labels[54])[0].tolist() == [64]  # a one-pixel apex
        else:
            assert (rows.min(), rows.max()) == (48, 80)


def test_paper_labels_and_image_agree():
    rng = random.Random(3)
    for _ in range(20):
        scene = paper_scene(rng)
        img, labels = render(scene, geometry="paper"), render_labels(scene, geometry="paper")
        assert (img[labels == 0] == 128).all()
        for i, obj in enumerate(scene.objects):
            assert (img[labels == i + 1] == (255, 0, 0) if obj.color == "red" else
                    img[labels == i + 1] == (0, 0, 255)).all()


def test_relbench_geometry_is_the_default_and_unchanged():
    rng = random.Random(0)
    from relbench.scene import random_scene

    for _ in range(5):
        scene = random_scene(rng)
        assert np.array_equal(render(scene), render(scene, geometry="relbench"))
        assert np.array_equal(render_labels(scene), render_labels(scene, geometry="relbench"))


def test_paper_scene_is_the_papers_distribution():
    rng = random.Random(1)
    for _ in range(200):
        scene = paper_scene(rng)
        a, b = scene.objects
        assert a.shape != b.shape and {a.color, b.color} == {"red", "blue"}
        for o in (a, b):
            for v in (o.x, o.y):
                px = v * 128 - 0.5
                assert px == int(px) and 17 <= px <= 111
        assert scene.relation() is not None


@pytest.mark.parametrize("bad", [lambda: render(paper_objects(FIXED[0]), geometry="papr"),
                                 lambda: render_labels(paper_objects(FIXED[0]), geometry="x"),
                                 lambda: check_geometry("centroid")])
def test_unknown_geometry_names_the_known_ones(bad):
    with pytest.raises(ValueError, match="unknown geometry .*relbench, paper"):
        bad()


def test_unknown_convention_names_the_known_ones():
    with pytest.raises(ValueError, match="unknown position convention 'center'.*centroid, bbox, "
                                         "paper_anchor"):
        check_convention("center")


def test_paper_geometry_refuses_antialiasing():
    with pytest.raises(ValueError, match="flat"):
        render(paper_objects(FIXED[0]), antialias=True, geometry="paper")


def test_object_points_of_a_triangle():
    """relbench: centroid, bbox centre and anchor lie h/6 apart on the triangle's axis. paper:
    (x, y) is the anchor; centroid and box centre are those of the triangle PIL draws, whose
    vertices are truncated to whole pixels (apex 10 px above, base 18 px below at 128 px).
    Circles and squares sit at (x, y) under every convention."""
    tri = SceneObject("triangle", "red", 0.5, 0.5)
    h = H / 128
    pts = {c: object_point(tri, c, "relbench") for c in POSITION_CONVENTIONS}
    assert pts["centroid"] == (0.5, 0.5)
    assert pts["bbox"][1] == pytest.approx(0.5 - h / 6)
    assert pts["paper_anchor"][1] == pytest.approx(0.5 - h / 3)
    assert all(p[0] == 0.5 for p in pts.values())
    tri = SceneObject("triangle", "red", 64.5 / 128, 64.5 / 128)  # pixel centre (64, 64)
    pixel = {c: tuple(v * 128 - 0.5 for v in object_point(tri, c, "paper"))
             for c in POSITION_CONVENTIONS}
    assert pixel["paper_anchor"] == (64, 64)
    assert pixel["bbox"] == (64, 68)                                  # rows 54..82
    assert pixel["centroid"] == pytest.approx((64, 64 + 26 / 3))      # (54 + 82 + 82) / 3
    for shape in ("circle", "square"):
        obj = SceneObject(shape, "red", 0.3, 0.7)
        assert {object_point(obj, c, g) for c in POSITION_CONVENTIONS for g in GEOMETRIES} == {
            (0.3, 0.7)}


def test_in_convention_moves_the_relation_of_close_pairs():
    """A circle 6 px to the left of a paper triangle, level with its labelled anchor: the
    paper's label says left; by centroids the circle is ≈ 9 px higher, a diagonal."""
    scene = paper_objects([("circle", "red", 58, 64), ("triangle", "blue", 64, 64)])
    assert scene.relation() == "left"
    assert in_convention(scene, "paper_anchor", "paper").relation() == "left"
    assert in_convention(scene, "centroid", "paper").relation() == "upper_left"


def test_data_build_paper_geometry(tmp_path):
    from relbench.data import example, save_dataset

    row = example(0, seed=2, geometry="paper")
    scene = Scene.from_dict(row["scene"])
    assert np.array_equal(row["image"], render(scene, geometry="paper"))
    assert all((o.x * 128 - 0.5).is_integer() for o in scene.objects)
    manifest = save_dataset(tmp_path / "d", 2, seed=2, geometry="paper", fmt="imagefolder")
    assert manifest["args"]["geometry"] == "paper"
    with pytest.raises(ValueError, match="known geometries: relbench, paper"):
        save_dataset(tmp_path / "e", 2, geometry="papr")


def test_checkpoint_without_geometry_is_relbench_with_one_warning():
    from relbench.dit import checkpoint

    source = "test-checkpoint-without-geometry"
    checkpoint._UNRECORDED_GEOMETRY_WARNED.discard(source)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert checkpoint.checkpoint_geometry({"model": {}}, source) == "relbench"
        assert checkpoint.checkpoint_geometry({"model": {}}, source) == "relbench"
    assert len([w for w in caught if "no training geometry" in str(w.message)]) == 1
    assert checkpoint.checkpoint_geometry({"geometry": "paper"}, source) == "paper"
    assert checkpoint.checkpoint_geometry({"train": {"geometry": "paper"}}, source) == "paper"
    with pytest.raises(ValueError, match="known geometries"):
        checkpoint.checkpoint_geometry({"geometry": "papr"}, source)


def test_bundled_checkpoints_record_no_geometry_and_score_with_default():
    """The bundled models predate the field (their files are not rewritten): relbench, default."""
    from relbench.dit.checkpoint import checkpoint_geometry
    from relbench.models.dit_adapter import BUNDLED_ROOT, list_bundled
    from relbench.scoring.position import detector_for_geometry

    for name in list_bundled():
        meta = json.loads((BUNDLED_ROOT / name / "config.json").read_text())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert detector_for_geometry(checkpoint_geometry(meta, f"bundled:{name}")) == "default"
    assert detector_for_geometry("paper") == "paper"


def test_new_checkpoints_record_their_geometry():
    from relbench.dit.train import TrainConfig

    assert TrainConfig().geometry == "relbench"
    assert TrainConfig(geometry="paper").geometry == "paper"
    with pytest.raises(ValueError, match="relbench.*paper"):
        TrainConfig(geometry="papr")


@pytest.mark.slow  # the tiny checkpoint fixture trains a step (shared with other slow tests)
def test_a_trained_checkpoint_records_its_geometry(tiny_checkpoint):
    from relbench.models.dit_adapter import load_dit

    meta = json.loads((tiny_checkpoint / "config.json").read_text())
    assert meta["geometry"] == "relbench"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a recorded geometry gives no warning
        assert load_dit("tiny", tiny_checkpoint, steps=1).geometry == "relbench"


def test_eval_scores_with_the_detector_of_the_models_geometry(tmp_path):
    """A model trained on paper data is scored by `paper` unless --detector says otherwise; the
    choice is recorded in run.json."""
    from relbench.models.baselines import OracleModel
    from relbench.runner import EvalConfig, load_run_info, run_eval

    class PaperTrained(OracleModel):
        geometry = "paper"

    cases = ((None, ("paper", "paper_anchor")), ("default", ("default", "centroid")))
    for detector, expected in cases:
        out = tmp_path / str(detector)
        run_eval(EvalConfig("oracle", "core", seeds=[0], limit=2, detector=detector), out,
                 progress=False, model=PaperTrained(128))
        info = load_run_info(out)
        assert (info["scorer"], info["scorer_position"], info["model_geometry"]) == (
            expected + ("paper",))
    out = tmp_path / "plain"
    run_eval(EvalConfig("oracle", "core", seeds=[0], limit=2), out, progress=False)
    info = load_run_info(out)
    assert (info["scorer"], info["scorer_position"], info["model_geometry"]) == (
        "default", "centroid", None)
