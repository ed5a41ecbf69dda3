"""The classical scorer: detection, binding, verdicts, file decoding, metrics."""

from __future__ import annotations

import functools
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from PIL import Image

from relbench.render import render
from relbench.scene import COLOR_RGB, INVERSE, ObjectSpec, RelationSpec, Scene, SceneObject
from relbench.scoring import (
    ImageReadError,
    decode_image,
    detect,
    load_detector,
    read_image,
    score_file,
    score_image,
    summarize,
)


@functools.lru_cache(maxsize=1)
def _default_detector():
    return load_detector("default")


@pytest.fixture(scope="module")
def det():
    return _default_detector()


def two(s1="square", c1="red", x1=0.3, y1=0.3, s2="circle", c2="blue", x2=0.7, y2=0.7, **kw):
    return Scene((SceneObject(s1, c1, x1, y1), SceneObject(s2, c2, x2, y2)), **kw)


def spec(s1, c1, rel, s2, c2) -> RelationSpec:
    return RelationSpec(ObjectSpec(s1, c1), rel, ObjectSpec(s2, c2))


@pytest.mark.parametrize("size", [32, 128, 1024])
@pytest.mark.parametrize("shape", ["circle", "square", "triangle"])
def test_each_shape_and_colour_detected_with_centre(det, size, shape):
    for color in COLOR_RGB:
        x, y = 0.37, 0.61
        found = detect(render(Scene((SceneObject(shape, color, x, y),)), size), det)
        assert [(d.shape, d.color) for d in found] == [(shape, color)], (size, color)
        # Within a pixel of the working resolution (larger images are downscaled first).
        tol = max(1.0, size / det.config.work_max_side)
        assert abs(found[0].x - x) * size <= tol and abs(found[0].y - y) * size <= tol


def test_white_background_and_white_object_on_gray(det):
    found = detect(render(two(c1="black", background=(255, 255, 255)), 128), det)
    assert sorted((d.shape, d.color) for d in found) == [("circle", "blue"), ("square", "black")]
    found = detect(render(two(c1="white"), 128), det)
    assert sorted((d.shape, d.color) for d in found) == [("circle", "blue"), ("square", "white")]


@pytest.mark.parametrize("corruption", ["blur", "jpeg", "noise", "antialias"])
def test_corruptions_keep_verdict(det, corruption):
    rng = np.random.default_rng(0)
    scenes = [two(), two("triangle", "blue", 0.75, 0.2, "square", "red", 0.25, 0.7),
              two("circle", "red", 0.5, 0.2, "triangle", "blue", 0.5, 0.75)]
    for scene in scenes:
        img = render(scene, 128, antialias=corruption == "antialias")
        if corruption == "blur":
            img = cv2.GaussianBlur(img, (0, 0), 1.5)
        elif corruption == "jpeg":
            _, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 30])
            img = cv2.imdecode(buf, cv2.IMREAD_COLOR)  # encoded and decoded in the same order
        elif corruption == "noise":
            img = np.clip(img + rng.normal(0, 12, img.shape), 0, 255).astype(np.uint8)
        a, b = scene.objects
        s = spec(a.shape, a.color, scene.relation(), b.shape, b.color)
        r = score_image(img, s, det)
        assert r.correct, r.reason
        opposite = RelationSpec(s.subject, INVERSE[s.relation], s.reference)
        assert not score_image(img, opposite, det).correct


def test_occluded_circle_keeps_shape_and_centre(det):
    # The square is drawn on top and hides about a quarter of the disk.
    scene = Scene(
        (SceneObject("circle", "red", 0.45, 0.45), SceneObject("square", "blue", 0.6, 0.6))
    )
    found = {d.color: d for d in detect(render(scene, 128, antialias=True), det)}
    circle = found["red"]
    assert circle.shape == "circle" and circle.occluded
    assert abs(circle.x - 0.45) * 128 <= 2 and abs(circle.y - 0.45) * 128 <= 2
    assert found["blue"].shape == "square"
    s = spec("circle", "red", "upper_left", "square", "blue")
    assert score_image(render(scene, 128), s, det).correct


def test_binding_with_unsaid_attributes(det):
    img = render(two(), 128)  # red square upper-left of blue circle
    assert score_image(img, spec(None, "red", "upper_left", None, "blue"), det).correct
    assert score_image(img, spec("square", None, "upper_left", "circle", None), det).correct
    assert score_image(img, spec("square", "red", "upper_left", None, None), det).correct
    r = score_image(img, spec("square", None, "upper_left", "triangle", None), det)
    assert not r.correct and not r.exist_binding and not r.shape


def test_negatives_are_false(det):
    img = render(two(), 128)
    pos = score_image(img, spec("square", "red", "upper_left", "circle", "blue"), det)
    assert pos.correct and pos.relation_strict and pos.unique_binding and pos.dx < 0 and pos.dy < 0
    opp = score_image(img, spec("square", "red", "lower_right", "circle", "blue"), det)
    assert not opp.correct and not opp.relation_strict and not opp.relation_loose
    assert opp.exist_binding and opp.shape and opp.color
    swapped = score_image(img, spec("square", "blue", "upper_left", "circle", "red"), det)
    assert not swapped.correct and not swapped.exist_binding
    assert swapped.shape and swapped.color  # attributes present, bound to the wrong objects


def test_loose_accepts_diagonal_for_cardinal(det):
    r = score_image(render(two(), 128), spec("square", "red", "above", "circle", "blue"), det)
    assert not r.relation_strict and r.relation_loose and not r.correct


def test_reason_text(det):
    img = render(two(), 128)
    r = score_image(img, spec("square", "red", "lower_left", "circle", "blue"), det)
    assert r.reason.startswith(
        "expected red square lower_left of blue circle; found it upper_left (dx=-0."
    )
    r = score_image(img, spec("square", "red", "upper_left", "circle", "green"), det)
    assert r.reason == ("expected red square upper_left of green circle; no green circle found "
                        "(detected: red square at (0.30, 0.30), blue circle at (0.70, 0.70))")
    r = score_image(img, spec("square", "red", "upper_left", "circle", "blue"), det)
    assert r.reason.startswith("found red square upper_left of blue circle")


def test_identical_objects_do_not_degenerate(det):
    scene = two("circle", "red", 0.5, 0.25, "circle", "red", 0.5, 0.75)
    img = render(scene, 128)
    for rel in ("above", "below"):
        r = score_image(img, spec("circle", "red", rel, "circle", "red"), det)
        assert r.correct and r.unique_binding and "two identical objects" in r.reason
    assert not score_image(img, spec("circle", "red", "left", "circle", "red"), det).correct


def test_extra_matching_object_breaks_unique_binding(det):
    scene = Scene((SceneObject("square", "red", 0.2, 0.2), SceneObject("circle", "blue", 0.7, 0.7),
                   SceneObject("square", "red", 0.8, 0.2)))
    r = score_image(render(scene, 128), spec("square", "red", "upper_left", "circle", "blue"), det)
    assert r.exist_binding and not r.unique_binding and not r.correct and "ambiguous" in r.reason


def test_empty_image_scores_false(det):
    s = spec("square", "red", "above", "circle", None)
    r = score_image(np.full((64, 64, 3), 128, np.uint8), s, det)
    assert not r.correct and r.detections == [] and "detected: nothing" in r.reason


def test_result_dict_fields(det):
    s = spec("square", "red", "upper_left", "circle", "blue")
    d = score_image(render(two(), 128), s, det).to_dict()
    for key in ("correct", "relation_strict", "relation_loose", "shape", "color", "exist_binding",
                "unique_binding", "dx", "dy", "reason", "detections"):
        assert key in d
    assert {"shape", "color", "x", "y", "area"} <= set(d["detections"][0])


# --- files -------------------------------------------------------------------------------------


def _png(path, arr):
    cv2.imwrite(str(path), arr)
    return path


def test_bad_files(tmp_path, det):
    s = spec("square", "red", "upper_left", "circle", "blue")
    with pytest.raises(ImageReadError, match="no such file"):
        score_file(tmp_path / "missing.png", s, det)
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(ImageReadError, match="corrupt.png: corrupt"):
        read_image(tmp_path / "corrupt.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageReadError, match="empty"):
        read_image(tmp_path / "empty.png")
    _png(tmp_path / "gray.png", np.full((32, 32), 100, np.uint8))
    with pytest.raises(ImageReadError, match="grayscale image; colour is needed"):
        read_image(tmp_path / "gray.png")
    with pytest.raises(ValueError, match="grayscale"):
        score_image(np.zeros((32, 32), np.uint8), s, det)


def test_file_formats_score_like_the_array(tmp_path, det):
    rgb = render(two(), 128)
    s = spec("square", "red", "upper_left", "circle", "blue")
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    assert score_file(_png(tmp_path / "a.png", bgr), s, det).correct
    # 16-bit
    assert score_file(_png(tmp_path / "b16.png", bgr.astype(np.uint16) * 257), s, det).correct
    # RGBA with a transparent background: composited over the detector's background
    rgba = np.dstack([bgr, np.full(rgb.shape[:2], 255, np.uint8)])
    rgba[(rgb == 128).all(axis=2)] = 0
    assert score_file(_png(tmp_path / "c.png", rgba), s, det).correct
    # palette PNG
    Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE, colors=8).save(tmp_path / "p.png")
    assert np.array_equal(read_image(tmp_path / "p.png"), rgb)
    assert score_file(tmp_path / "p.png", s, det).correct
    ok, buf = cv2.imencode(".png", bgr)
    assert np.array_equal(decode_image(buf.tobytes()), rgb)


def test_rgb_files_decode_straight_to_rgb_as_the_general_path_does(tmp_path):
    """8-bit RGB PNGs and JPEGs are decoded to RGB by the decoder itself; every other kind takes
    the general path. Both give the same pixels."""
    import io

    from relbench.scene import BACKGROUND_RGB
    from relbench.scoring import files

    rgb = np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    rgb[:8] = (20, 200, 90)
    pil = Image.fromarray(rgb)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90°": the stored pixels are scored as they are, either way

    def save(img, fmt, **kw):
        buf = io.BytesIO()
        img.save(buf, fmt, **kw)
        return buf.getvalue()

    kinds = {
        "png": (save(pil, "PNG", dpi=(72, 72)), True),
        "png, EXIF": (save(pil, "PNG", exif=exif.tobytes()), True),
        "jpeg 4:2:0": (save(pil, "JPEG", quality=75), True),
        "jpeg 4:4:4, EXIF": (save(pil, "JPEG", subsampling=0, exif=exif.tobytes()), True),
        "jpeg progressive": (save(pil, "JPEG", progressive=True), True),
        "png with tRNS": (save(pil, "PNG", transparency=(20, 200, 90)), False),
        "png RGBA": (save(pil.convert("RGBA"), "PNG"), False),
        "png palette": (save(pil.convert("P"), "PNG"), False),
        "png 16-bit": (cv2.imencode(".png", rgb[..., ::-1].astype(np.uint16) * 257)[1].tobytes(),
                       False),
        "jpeg CMYK": (save(pil.convert("CMYK"), "JPEG"), False),
    }
    for kind, (data, plain) in kinds.items():
        assert files._plain_rgb(data) is plain, kind
        general = files._normalise(cv2.imdecode(np.frombuffer(data, np.uint8),
                                                cv2.IMREAD_UNCHANGED), kind, BACKGROUND_RGB)
        assert np.array_equal(decode_image(data, kind), general), kind
    assert files._plain_rgb(kinds["png"][0][:30]) is False  # no image data: the general path


# --- config and metrics ------------------------------------------------------------------------


def test_detector_config_and_errors(tmp_path):
    a, b = load_detector(), load_detector("default")
    assert a.config_hash == b.config_hash and len(a.config_hash) == 64
    assert a.name == "default" and a.version
    with pytest.raises(ValueError, match="did you mean 'default'"):
        load_detector("defualt")
    bad = tmp_path / "bad.json"
    bad.write_text('{"name": "x"}')
    with pytest.raises(ValueError, match="invalid detector config"):
        load_detector(bad)
    cfg = a.config.model_dump()
    cfg["min_fit"] = 0.9
    other = tmp_path / "other.json"
    other.write_text(json.dumps(cfg))
    assert load_detector(other).config_hash != a.config_hash


def test_summarize():
    rows = [
        {"correct": True, "relation_strict": True, "relation_loose": True, "shape": True,
         "color": True, "exist_binding": True, "unique_binding": True, "relation": "above"},
        {"correct": False, "relation_strict": False, "relation_loose": True, "shape": True,
         "color": False, "exist_binding": True, "unique_binding": True,
         "spec": {"relation": "left"}},
        {"correct": None, "error": "missing"},
    ]
    m = summarize(rows)
    assert (m["n"], m["n_scored"], m["n_unscorable"]) == (3, 2, 1)
    assert m["overall"] == 0.5 and m["relation_loose"] == 1.0 and m["color"] == 0.5
    assert m["per_relation"] == {"above": 1.0, "left": 0.0}
    assert summarize([])["overall"] is None


def test_scoring_never_imports_torch():
    code = "import relbench.scoring, relbench.scoring.folder, sys; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_random_scenes_scored_like_their_truth(seed):
    """Any resolvable random layout: its true spec is correct, the opposite relation is not."""
    import random

    from relbench.scene import STRICT_THRESHOLD, random_scene

    det = _default_detector()
    scene = random_scene(random.Random(seed), allow_overlap=False)
    dx, dy = scene.offset()
    # Offsets within a pixel of T are not decided by the pixels: the render draws each object
    # on whole pixels (hard edges), which moves its centre by up to half a pixel, and the
    # offset is the difference of two such centres.
    margin = 1.0 / 128
    assume(abs(abs(dx) - STRICT_THRESHOLD) > margin and abs(abs(dy) - STRICT_THRESHOLD) > margin)
    a, b = scene.objects
    s = spec(a.shape, a.color, scene.relation(), b.shape, b.color)
    img = render(scene, 128)
    assert score_image(img, s, det).correct
    assert not score_image(img, RelationSpec(s.subject, INVERSE[s.relation], s.reference), det).correct
