"""The style suite: every factor draws, records itself and keeps the truth unambiguous."""

import json

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relbench.scene import COLOR_RGB, RELATIONS, SHAPES, STRICT_THRESHOLD, strict_relation
from relbench.styles import (
    MIN_MASK_GAP,
    RESOLUTIONS,
    mask_margin,
    SHADES,
    STYLE_FACTORS,
    check_factors,
    sample_styled,
)
from relbench.styles.backgrounds import BACKGROUNDS, allowed_backgrounds
from relbench.styles.geometry import MIN_GAP

FAST = [f for f in STYLE_FACTORS if f != "resolution"]
COMBO = ("shading", "shadow", "background", "outline", "geometry", "colour", "size", "jpeg")


def centres_from_mask(mask: np.ndarray) -> dict[str, tuple[float, float]]:
    """Centroid, bounding-box centre and enclosing-circle centre (fractions), computed here
    independently of relbench.styles."""
    h, w = mask.shape
    rows, cols = np.nonzero(mask)
    centroid = ((cols.mean() + 0.5) / w, (rows.mean() + 0.5) / h)
    bbox = ((cols.min() + cols.max() + 1) / 2 / w, (rows.min() + rows.max() + 1) / 2 / h)
    (cx, cy), _ = cv2.minEnclosingCircle(np.stack([cols, rows], 1).astype(np.float32))
    return {"centroid": centroid, "bbox": bbox, "circle": ((cx + 0.5) / w, (cy + 0.5) / h)}


def test_factor_names():
    assert STYLE_FACTORS == (
        "shading", "shadow", "background", "outline", "geometry", "colour", "size",
        "resolution", "jpeg",
    )
    assert check_factors(["jpeg", "shading", "jpeg"]) == ("shading", "jpeg")
    assert check_factors([]) == ()


def test_unknown_factor_names_the_known_ones():
    with pytest.raises(ValueError) as err:
        check_factors(["shadw"])
    msg = str(err.value)
    assert "'shadw'" in msg and "did you mean 'shadow'" in msg
    assert all(f in msg for f in STYLE_FACTORS)
    with pytest.raises(ValueError, match="known factors"):
        sample_styled(["glitter"], 0)


@pytest.mark.parametrize("factors", [(f,) for f in STYLE_FACTORS] + [COMBO, tuple(STYLE_FACTORS)])
def test_each_factor_draws_and_is_recorded(factors):
    for seed in range(3):
        s = sample_styled(factors, seed, size=128)
        h, w = s.image.shape[:2]
        assert s.image.dtype == np.uint8 and s.image.shape == (h, w, 3) and h == w
        assert set(s.factors) == set(factors)
        assert all(isinstance(v, str) and v for v in s.factors.values())
        assert s.masks.shape == (2, h, w) and s.masks.dtype == bool
        if "resolution" in factors:
            assert h == int(s.factors["resolution"]) and h in RESOLUTIONS
        else:
            assert h == 128


def test_no_factor_is_flat_gray_with_palette_colours():
    s = sample_styled([], 5, size=128, colors=("green", "yellow"))
    assert s.factors == {}
    near = np.zeros(s.masks.shape[1:], np.uint8)
    for m in s.masks:
        near |= cv2.dilate(m.astype(np.uint8), np.ones((5, 5), np.uint8))
    assert (s.image[near == 0] == 128).all()
    for m, color in zip(s.masks, ("green", "yellow")):
        inner = cv2.erode(m.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        assert (s.image[inner] == COLOR_RGB[color]).all()


def test_same_seed_same_bytes():
    for seed in (0, 7):
        a, b = sample_styled(COMBO, seed), sample_styled(COMBO, seed)
        assert a.image.tobytes() == b.image.tobytes()
        assert a.factors == b.factors and a.scene == b.scene
        assert (a.masks == b.masks).all()
    assert sample_styled(COMBO, 0).image.tobytes() != sample_styled(COMBO, 1).image.tobytes()


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    factors=st.sets(st.sampled_from(STYLE_FACTORS)),
    side=st.sampled_from([64, 128, 256]),
)
def test_truth_holds_under_every_centre_definition(seed, factors, side):
    s = sample_styled(factors, seed, size=side)
    h = s.image.shape[0]
    a, b = (centres_from_mask(m) for m in s.masks)
    for name in a:
        dx, dy = a[name][0] - b[name][0], a[name][1] - b[name][1]
        assert strict_relation(dx, dy) == s.spec.relation, name
        # A clear margin from every decision boundary (2 % less pixel rounding).
        m = mask_margin(h) - 1e-9
        assert m >= 0.0049 and (h < 512 or m >= 0.0169)
        for t in (STRICT_THRESHOLD - m, STRICT_THRESHOLD + m):
            assert strict_relation(dx, dy, t) == s.spec.relation, (name, t)
    for obj, m in zip(s.scene.objects, s.masks):
        cx, cy = centres_from_mask(m)["centroid"]
        assert obj.x == pytest.approx(cx, abs=1e-9) and obj.y == pytest.approx(cy, abs=1e-9)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32), factors=st.sets(st.sampled_from(FAST)))
def test_objects_apart_and_off_the_border(seed, factors):
    s = sample_styled(factors, seed, size=128)
    side = s.image.shape[0]
    m0, m1 = s.masks
    assert m0.any() and m1.any() and not (m0 & m1).any()
    # Every layout keeps MIN_GAP between the exact shapes, and a mask pixel's centre lies within
    # √2/2 px of its shape (a pixel farther away is not covered at all), so the masks' centres
    # stay MIN_GAP·side − √2 apart; reshaped objects also keep MIN_MASK_GAP on the masks, as the
    # generator measures it.
    exact = cv2.distanceTransform((~m0).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    assert exact[m1].min() >= MIN_GAP * side - 2**0.5
    if {"geometry", "size"} & set(factors):
        dist = cv2.distanceTransform((~m0).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_5)
        assert dist[m1].min() >= MIN_MASK_GAP * side
    for m in s.masks:
        rows, cols = np.nonzero(m)
        assert min(rows.min(), cols.min()) >= 0.04 * side
        assert max(rows.max(), cols.max()) < side - 0.04 * side


def test_shadow_and_inside_outline_leave_the_truth_alone():
    inside = 0
    for seed in range(12):
        plain = sample_styled([], seed)
        shadow = sample_styled(["shadow"], seed)
        assert shadow.scene == plain.scene and (shadow.masks == plain.masks).all()
        assert shadow.image.tobytes() != plain.image.tobytes()
        styled = sample_styled(["shadow", "outline"], seed)
        if " inside " in styled.factors["outline"]:
            inside += 1
            assert styled.scene == plain.scene
            assert (styled.masks == plain.masks).all()
    assert inside >= 1


def _outlined(place: str, n: int, factors=("outline",), size=256):
    """The first `n` seeds' samples whose outline stroke is drawn at `place`."""
    out, seed = [], 0
    while len(out) < n:
        s = sample_styled(factors, seed, size=size)
        if f" {place} " in s.factors["outline"]:
            out.append(s)
        seed += 1
    return out


@pytest.mark.parametrize("place", ["outside", "centred"])
def test_outline_outside_the_edge_is_in_the_mask(place):
    for s in _outlined(place, 4):
        union = s.masks[0] | s.masks[1]
        # Every pixel off the plain gray lies in a mask or on its anti-aliased rim.
        near = cv2.dilate(union.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        assert not (s.image[~near] != 128).any()
        for m, obj in zip(s.masks, s.scene.objects):
            fill = (s.image == COLOR_RGB[obj.color]).all(axis=2)
            ring = m & ~cv2.dilate(fill.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
            # The stroke is inside the mask and wider than anti-aliasing would make it.
            assert ring.sum() > 0.05 * m.sum(), s.factors
            dark = s.image[ring].max(axis=1) <= max(COLOR_RGB[obj.color]) * 0.5 + 20
            assert dark.mean() > 0.6, s.factors


def test_outline_outside_the_edge_keeps_the_centres():
    """The outlined shape's mask centres sit on the unoutlined shape's exact centres: the
    centroid within half a pixel, the bounding-box and enclosing-circle centres within
    0.6 px (a raster bounding box moves in half-pixel steps; the plain shape's own mask is
    off by up to ~0.3 px)."""
    from relbench.styles.geometry import make_outline, outline_centres
    from relbench.styles.paint import coverage, expand_polygon, window_around

    side = 512
    rng = np.random.default_rng(0)
    for shape in SHAPES:
        o = make_outline(shape, 0.25, rng, free=False)
        shape_px = (o.points + np.array([0.4137, 0.5521])) * side
        exact = dict(zip(("centroid", "bbox", "circle"), outline_centres(shape_px)))
        for width in (0.02, 0.035, 0.05, 0.065, 0.08):
            grown = expand_polygon(shape_px, width * 0.25 * side)
            win = window_around(grown, 2.0, side)
            plain = np.zeros((side, side), bool)
            plain[win.slices] = coverage(shape_px, win) >= 0.5
            outlined = np.zeros((side, side), bool)
            outlined[win.slices] = coverage(grown, win) >= 0.5
            assert outlined.sum() > plain.sum() and (plain <= outlined).all()
            got = centres_from_mask(outlined)
            for name, tol in (("centroid", 0.5), ("bbox", 0.6), ("circle", 0.6)):
                err = np.abs(np.multiply(got[name], side) - exact[name]).max()
                assert err <= tol, (shape, width, name, err)
    # End to end: the fill (pixels nearer the fill colour than the black stroke, so the
    # anti-aliased edge splits at coverage 0.5) has the outlined mask's centroid.
    samples = [s for s in _outlined("outside", 8, size=512) if s.factors["outline"][:5] == "black"]
    assert samples
    for s in samples:
        for m, obj in zip(s.masks, s.scene.objects):
            px = s.image.astype(float)
            to_fill = np.linalg.norm(px - COLOR_RGB[obj.color], axis=2)
            to_edge = np.linalg.norm(px - 18.0, axis=2)
            fill = (to_fill < to_edge) & m
            assert fill.sum() < m.sum()
            (fx, fy), (mx, my) = centres_from_mask(fill)["centroid"], (obj.x, obj.y)
            assert max(abs(fx - mx), abs(fy - my)) * 512 <= 0.5, s.factors


def test_shading_reaches_dark_sides_and_bright_highlights():
    darkest, brightest = [], []
    for seed in range(16):
        s = sample_styled(["shading"], seed, shapes=("circle", "square"), colors=("red", "blue"))
        if not s.factors["shading"].startswith("sphere"):
            continue
        px = s.image[cv2.erode(s.masks[0].astype(np.uint8), np.ones((3, 3), np.uint8)) > 0]
        darkest.append(px[:, 0].min() / 255)
        brightest.append(px.min(axis=1).max())
    assert len(darkest) >= 4
    assert min(darkest) < 0.4 and max(brightest) > 200  # dark side, near-white highlight
    yellow = sample_styled(["shading"], 1, shapes=("circle", "square"), colors=("yellow", "blue"))
    inner = cv2.erode(yellow.masks[0].astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    assert yellow.image[inner][:, 0].min() >= 0.78 * 255 - 2  # yellow never turns olive


def test_shadow_variants_include_contact_and_strong():
    kinds = {sample_styled(["shadow"], seed, size=64).factors["shadow"].split()[0]
             for seed in range(16)}
    assert kinds == {"contact", "drop"}


def test_relations_are_spread_evenly():
    assert [sample_styled([], s, size=64).spec.relation for s in range(16)] == list(RELATIONS) * 2
    assert sample_styled([], 3, relation="above").spec.relation == "above"


def test_spec_names_the_drawn_objects():
    s = sample_styled(["geometry"], 11, shapes=("triangle", "circle"), colors=("purple", "white"))
    assert (s.spec.subject.shape, s.spec.subject.color) == ("triangle", "purple")
    assert (s.spec.reference.shape, s.spec.reference.color) == ("circle", "white")
    drawn = [(o.shape, o.color) for o in s.scene.objects]
    assert drawn == [("triangle", "purple"), ("circle", "white")]
    default = sample_styled([], 4)
    assert {o.color for o in default.scene.objects} == {"red", "blue"}
    assert len({o.shape for o in default.scene.objects}) == 2
    assert all(o.shape in SHAPES for o in default.scene.objects)


def test_bad_arguments():
    with pytest.raises(ValueError, match="relation"):
        sample_styled([], 0, relation="beside")
    with pytest.raises(ValueError, match="hexagon"):
        sample_styled([], 0, shapes=("hexagon", "circle"))
    with pytest.raises(ValueError, match="teal"):
        sample_styled([], 0, colors=("teal", "red"))
    with pytest.raises(ValueError, match="seed"):
        sample_styled([], -1)


def test_colour_factor_draws_named_shades():
    seen = set()
    for seed in range(24):
        s = sample_styled(["colour"], seed, size=64)
        names = s.factors["colour"].split("/")
        for name, obj in zip(names, s.scene.objects):
            assert name in SHADES[obj.color]
            seen.add(name)
    assert len(seen) >= 6
    dark_or_light = {"navy", "dark navy", "dark red", "deep red", "sky blue", "light sky blue"}
    assert len(seen & dark_or_light) >= 3


def test_size_factor_ratio_within_two():
    ratios = []
    for seed in range(16):
        s = sample_styled(["size"], seed, size=256)
        a, b = (o.size for o in s.scene.objects)
        ratios.append(max(a, b) / min(a, b))
    assert min(ratios) >= 1.2 and max(ratios) <= 2.05


def test_background_never_matches_an_object_colour():
    assert not [n for n in allowed_backgrounds(("white", "red")) if "light" in n or n == "paper"]
    assert not [n for n in allowed_backgrounds(("black", "blue")) if "dark" in n]
    assert not [n for n in allowed_backgrounds(("orange", "blue")) if n.startswith("wood")]
    assert set(allowed_backgrounds(("red", "blue"))) == set(BACKGROUNDS)


def test_jpeg_changes_pixels_not_layout():
    plain, jpeg = sample_styled([], 2), sample_styled(["jpeg"], 2)
    assert plain.scene == jpeg.scene
    q = int(jpeg.factors["jpeg"][1:])
    assert 40 <= q <= 90
    assert np.abs(plain.image.astype(int) - jpeg.image).max() > 0


def test_data_rows_can_be_styled():
    from relbench.data import example

    plain = example(3, seed=1)
    assert "styles" not in plain
    row = example(3, seed=1, size=128, styles=("shadow", "colour"))
    assert set(row["styles"]) == {"shadow", "colour"}
    assert row["image"].shape == (128, 128, 3)
    assert row["relation"] == row["spec"]["relation"]
    assert row["subject_color"] == row["spec"]["subject"]["color"]


@settings(max_examples=60, deadline=None)
@given(word=st.sampled_from(sorted(SHADES)), seed=st.integers(0, 2**32))
def test_sampled_shades_stay_within_their_word(word, seed):
    from relbench.styles.palette import rgb_to_lch, sample_shade

    name, rgb = sample_shade(word, np.random.default_rng(seed))
    assert name in SHADES[word]
    l, c, h = rgb_to_lch(rgb)
    if word == "black":
        assert l < 25 and c < 8
    elif word == "white":
        assert l > 90 and c < 14
    else:
        hues = [rgb_to_lch(v)[2] for v in SHADES[word].values()]
        lo, hi = min(hues), max(hues)
        assert lo - 3 <= h <= hi + 3


def test_data_build_styles_option(tmp_path):
    from typer.testing import CliRunner

    from relbench.cli import app

    runner = CliRunner()
    bad = runner.invoke(app, ["data", "build", "--out", str(tmp_path / "bad"), "--n", "2",
                              "--styles", "shading,glow", "--quiet"])
    assert bad.exit_code == 2 and "glow" in bad.output and "known factors" in bad.output
    out = tmp_path / "styled"
    ok = runner.invoke(app, ["data", "build", "--out", str(out), "--n", "3", "--size", "64",
                             "--styles", "outline,colour", "--format", "imagefolder", "--quiet"])
    assert ok.exit_code == 0, ok.output
    rows = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and all(set(r["styles"]) == {"outline", "colour"} for r in rows)
    manifest = json.loads((out / "relbench_dataset.json").read_text())
    assert manifest["args"]["styles"] == ["outline", "colour"]
