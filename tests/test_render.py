"""The renderer's geometry, colours and labels, and the oracle/chance image sources."""

import math
import random

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from relbench.baselines import chance_image, chance_scene, oracle_image, oracle_scene
from relbench.render import (
    ANTIALIAS_FACTOR,
    mask_centroid,
    render,
    render_batch,
    render_labels,
    shape_area,
    shape_perimeter,
)
from relbench.scene import (
    COLOR_RGB,
    PAPER_SIZE,
    RELATIONS,
    SHAPES,
    TRAIN_COLORS,
    ObjectSpec,
    RelationSpec,
    Scene,
    SceneObject,
    random_scene,
    strict_relation,
)

shapes = st.sampled_from(SHAPES)
sizes = st.sampled_from([64, 128, 256])
centre = st.floats(min_value=0.3, max_value=0.7, allow_nan=False)


def one(shape: str, x: float, y: float, color: str = "red", size: float = PAPER_SIZE) -> Scene:
    return Scene((SceneObject(shape, color, x, y, size),))


@settings(max_examples=150, deadline=None)
@given(shapes, sizes, centre, centre)
def test_mask_centroid_is_scene_centre(shape, size, x, y):
    mask = render_labels(one(shape, x, y), size) == 1
    cx, cy = mask_centroid(mask)
    assert abs(cx - x) * size <= 0.5
    assert abs(cy - y) * size <= 0.5


@settings(max_examples=150, deadline=None)
@given(shapes, sizes, centre, centre)
def test_area_matches_analytic(shape, size, x, y):
    extent = PAPER_SIZE * size
    count = int((render_labels(one(shape, x, y), size) == 1).sum())
    # Each boundary pixel is a sampling error of at most one pixel, half of them on average.
    assert abs(count - shape_area(shape, extent)) <= 0.5 * shape_perimeter(shape, extent) + 1


@pytest.mark.parametrize("shape", SHAPES)
def test_area_is_unbiased_over_subpixel_positions(shape):
    rng = random.Random(0)
    extent = PAPER_SIZE * 128
    jitter = [(0.5 + rng.random() / 128, 0.5 + rng.random() / 128) for _ in range(200)]
    counts = [(render_labels(one(shape, x, y), 128) == 1).sum() for x, y in jitter]
    assert abs(np.mean(counts) / shape_area(shape, extent) - 1) < 0.01


def test_paper_geometry_at_128():
    # Disk r = 16 px centred on the pixel corner (64, 64): rows 48..79 and columns 48..79.
    labels = render_labels(one("circle", 0.5, 0.5), 128)
    rows, cols = np.nonzero(labels)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (48, 79, 48, 79)
    # Square side 32 px: exactly 32 × 32 pixels when its edges fall between pixels.
    assert (render_labels(one("square", 0.5, 0.5), 128) == 1).sum() == 32 * 32
    # Triangle points up: its top row is narrower than its bottom row.
    tri = render_labels(one("triangle", 0.5, 0.5), 128) == 1
    filled = np.nonzero(tri.any(axis=1))[0]
    assert tri[filled[0]].sum() < tri[filled[-1]].sum()
    # Centred on its centroid: the base is h/3 below the centre, the apex 2h/3 above.
    h = 32 * math.sqrt(3) / 2
    assert abs((filled[-1] + 1) - (64 + h / 3)) <= 1
    assert abs(filled[0] - (64 - 2 * h / 3)) <= 1


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), sizes)
def test_flat_colours_exact_and_labels_consistent(seed, size):
    scene = random_scene(random.Random(seed))
    image, labels = render(scene, size), render_labels(scene, size)
    assert image.shape == (size, size, 3) and image.dtype == np.uint8
    assert labels.shape == (size, size) and labels.dtype == np.int16
    palette = [scene.background] + [COLOR_RGB[o.color] for o in scene.objects]
    for label, rgb in enumerate(palette):
        assert (image[labels == label] == rgb).all()
    # Only the palette's colours occur, and the top object is fully visible.
    assert set(map(tuple, image.reshape(-1, 3))) <= set(map(tuple, palette))
    top = (labels == 2).sum()
    assert top == (render_labels(Scene(scene.objects[1:]), size) == 1).sum()


def test_later_objects_are_drawn_on_top():
    a = SceneObject("square", "red", 0.5, 0.5)
    b = SceneObject("circle", "blue", 0.52, 0.5)
    assert tuple(render(Scene((a, b)))[64, 66]) == COLOR_RGB["blue"]
    assert tuple(render(Scene((b, a)))[64, 66]) == COLOR_RGB["red"]


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1))
@example(726)  # a triangle apex sliver, see below
def test_antialias_mixes_colours_only_at_edges(seed):
    scene = random_scene(random.Random(seed))
    aa, labels = render(scene, 128, antialias=True), render_labels(scene, 128)
    palette = {tuple(scene.background)} | {COLOR_RGB[o.color] for o in scene.objects}
    mixed = np.array([tuple(p) not in palette for p in aa.reshape(-1, 3)]).reshape(128, 128)
    assert mixed.any()
    # A mixed pixel has a label change within 2 px. (Not always within 1 px: a triangle's 60°
    # apex can cover a sliver of a pixel two rows above the first pixel whose centre it covers.)
    padded = np.pad(labels, 2, mode="edge")
    window = np.stack([padded[i : i + 128, j : j + 128] for i in range(5) for j in range(5)])
    edge = (window != window[0]).any(axis=0)
    assert not (mixed & ~edge).any()
    # Far from edges, anti-aliasing changes nothing.
    assert (aa[~edge] == render(scene, 128)[~edge]).all()


@pytest.mark.parametrize("shape", SHAPES)
def test_antialias_coverage_gives_subpixel_centre(shape):
    x, y = 0.5 + 0.3 / 128, 0.5 - 0.2 / 128
    aa = render(one(shape, x, y, color="white"), 128, antialias=True).astype(float)
    weight = (aa[..., 0] - 128) / (255 - 128)  # coverage in 0..1 against the gray background
    rows, cols = np.indices(weight.shape)
    cx = ((cols + 0.5) * weight).sum() / weight.sum()
    cy = ((rows + 0.5) * weight).sum() / weight.sum()
    assert abs(cx - x * 128) < 0.1 and abs(cy - y * 128) < 0.1
    # Covered area (sum of coverage) matches the analytic area to within 1 %.
    assert abs(weight.sum() / shape_area(shape, PAPER_SIZE * 128) - 1) < 0.01
    assert ANTIALIAS_FACTOR >= 2


def test_any_size_from_32_to_1024_and_batch():
    scene = random_scene(random.Random(3))
    for size in (32, 1024):
        assert render(scene, size).shape == (size, size, 3)
    batch = render_batch([scene, scene], 64, antialias=True)
    assert batch.shape == (2, 64, 64, 3)
    assert (batch[0] == render(scene, 64, antialias=True)).all()
    assert render_batch([], 64).shape == (0, 64, 64, 3)


def test_objects_partly_outside_the_image_are_clipped():
    corner = SceneObject("circle", "red", 0.0, 1.0)
    outside = SceneObject("square", "blue", 2.0, 2.0)
    scene = Scene((corner, outside))
    labels = render_labels(scene, 64)
    assert 0 < (labels == 1).sum() < shape_area("circle", 16) / 2 + 16
    assert not (labels == 2).any()
    assert render(scene, 64, antialias=True).shape == (64, 64, 3)


@pytest.mark.parametrize(
    ("scene", "size", "message"),
    [
        (one("hexagon", 0.5, 0.5), 64, "hexagon"),
        (one("circle", 0.5, 0.5, color="rde"), 64, "did you mean 'red'"),
        (one("circle", float("nan"), 0.5), 64, "finite"),
        (one("circle", 0.5, 0.5), 16, "out of range"),
        (one("circle", 0.5, 0.5), 2048, "out of range"),
        (one("circle", 0.5, 0.5), 64.0, "integer"),
    ],
)
def test_bad_input_names_the_problem(scene, size, message):
    with pytest.raises(ValueError, match=message):
        render(scene, size)


def test_mask_centroid_rejects_empty_masks():
    with pytest.raises(ValueError, match="empty"):
        mask_centroid(np.zeros((8, 8), bool))


# --- oracle and chance ----------------------------------------------------------------------

objects = st.builds(
    ObjectSpec, st.sampled_from(SHAPES + (None,)), st.sampled_from(TRAIN_COLORS + (None,))
)
specs = st.builds(RelationSpec, objects, st.sampled_from(RELATIONS), objects)


@settings(max_examples=60, deadline=None)
@given(specs, st.integers(0, 2**31 - 1))
def test_oracle_satisfies_its_spec_and_is_deterministic(spec, seed):
    scene = oracle_scene(spec, seed)
    subj, ref = scene.objects
    assert spec.subject.matches(subj.shape, subj.color)
    assert spec.reference.matches(ref.shape, ref.color)
    # The relation holds on the rendered masks too, not just on the scene's numbers.
    labels = render_labels(scene, 128)
    (sx, sy), (rx, ry) = mask_centroid(labels == 1), mask_centroid(labels == 2)
    assert strict_relation(subj.x - ref.x, subj.y - ref.y) == spec.relation
    assert (labels == 1).sum() == (render_labels(Scene(scene.objects[:1]), 128) == 1).sum()
    assert abs((sx - rx) - (subj.x - ref.x)) * 128 <= 1
    assert abs((sy - ry) - (subj.y - ref.y)) * 128 <= 1
    assert (oracle_image(spec, seed) == render(scene, 128)).all()


@settings(max_examples=60, deadline=None)
@given(specs, st.integers(0, 2**31 - 1))
def test_chance_keeps_objects_and_separates_them(spec, seed):
    scene = chance_scene(spec, seed)
    subj, ref = scene.objects
    assert spec.subject.matches(subj.shape, subj.color)
    assert spec.reference.matches(ref.shape, ref.color)
    labels = render_labels(scene, 128)
    assert (labels == 1).sum() == (render_labels(Scene(scene.objects[:1]), 128) == 1).sum()
    assert (chance_image(spec, seed, 64) == render(scene, 64)).all()


def test_chance_ignores_the_relation():
    spec = RelationSpec(ObjectSpec("circle", "red"), "above", ObjectSpec("square", "blue"))
    relations = [chance_scene(spec, s).relation(0, 1) for s in range(400)]
    hit = relations.count("above") / len(relations)
    # Uniform centres put ≈ 5 % of layouts in the narrow "above" band and ≈ 79 % on diagonals.
    assert hit < 0.15
    assert len(set(relations)) == 8


def test_baselines_reject_non_specs():
    with pytest.raises(ValueError, match="RelationSpec"):
        oracle_image({"relation": "above"}, 0)  # type: ignore[arg-type]
