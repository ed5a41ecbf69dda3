"""The style suite: two-object scenes drawn the way pretrained text-to-image DiTs draw them.

An out-of-domain *image* generator beside the prompt perturbations. `sample_styled` draws
a seeded two-object scene with any set of named style factors (STYLE_FACTORS); each factor's
variant is drawn from the seed and recorded in the result, along with each object's full
mask, so a scorer can be measured per factor and per combination:

- shading: lit spheres for circles (dark side down to 25-35 % brightness, darker rim, small
  near-white specular highlight), linear or radial gradients (about 40 % to 115 %),
  specular highlights; yellow, orange and white keep a higher darkest level
  (`palette.SHADE_FLOOR`) so they keep their colour word;
- shadow: a soft drop shadow or a tight contact shadow, dark and low-chroma, opacity up to
  0.7; it falls on the background only (objects are painted over it);
- background: paper with fibres and stains, wood grain, noise, gradient, vignette (one with a
  near-white centre falling to mid-gray corners), studio sweep with a hotspot (light, mid,
  dark), never one close to an object's colour (`allowed_backgrounds`);
- outline: a near-black or darkened-fill (~30 %) stroke 2-8 % of the object's extent, drawn
  inside the edge, centred on it or outside it. A stroke centred on or outside the edge
  makes the object larger, as a person sees it: the truth mask (and so the recorded centres
  and extent) then includes the stroke, and the layout is drawn for the outlined shapes.
  Growing a shape by a stroke of constant width moves neither its bounding-box centre nor
  its enclosing-circle centre, nor the centroid of the paper's circle, square and
  equilateral triangle; only a `geometry` triangle's centroid moves (toward its longer
  sides), and the truth follows the outlined mask;
- geometry: turned and rounded squares, triangles of any proportion and orientation, ellipses;
- colour: any shade a person still calls by the colour word (`palette.SHADES`);
- size: one object up to 2× the other; resolution: 128..1024 px; jpeg: quality 40..90.

With no factor the scene is flat palette colours on plain gray, with the same layout rules:
the relation holds under the centroid, the bounding-box centre and the enclosing-circle
centre of each object, at least BOUNDARY_MARGIN from every decision boundary on the exact
outlines and `mask_margin(side)` on the drawn masks, with a clear gap between the shapes and
none near the border. One light direction per image lights the shading and casts the
shadows. Numpy and OpenCV only (no torch).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import cv2
import numpy as np

from relbench.render import check_size
from relbench.scene import (
    COLOR_RGB,
    PAPER_SIZE,
    RELATIONS,
    SHAPES,
    ObjectSpec,
    RelationSpec,
    Scene,
    SceneObject,
    check_relation,
    did_you_mean,
)
from relbench.styles.backgrounds import BACKGROUNDS, allowed_backgrounds, make_background
from relbench.styles.geometry import (
    BOUNDARY_MARGIN,
    CENTRE_DEFINITIONS,
    Outline,
    make_outline,
    mask_centres,
    place,
    polygon_centroid,
    relation_is_clear,
)
from relbench.styles.paint import (
    Window,
    apply_shading,
    composite,
    coverage,
    drop_shadow,
    expand_polygon,
    ring,
    shade_field,
    window_around,
)
from relbench.styles.palette import SHADES, sample_shade, shade_floor

STYLE_FACTORS: tuple[str, ...] = (
    "shading",
    "shadow",
    "background",
    "outline",
    "geometry",
    "colour",
    "size",
    "resolution",
    "jpeg",
)
"""The named style factors, in the order they are recorded."""

RESOLUTIONS: tuple[int, ...] = (128, 256, 384, 512, 768, 1024)
"""Image sides drawn by the `resolution` factor."""
JPEG_QUALITY: tuple[int, int] = (40, 90)
"""Range of JPEG quality drawn by the `jpeg` factor (inclusive)."""
SIZE_RATIO: tuple[float, float] = (1.25, 2.0)
"""Range of the larger object's extent over the smaller's under `size`."""
LARGE_EXTENT: tuple[float, float] = (0.24, 0.34)
"""Range of the larger object's extent under `size` (fraction of the side)."""
OUTLINE_WIDTH: tuple[float, float] = (0.02, 0.08)
"""Outline stroke width, as a fraction of the object's extent (at least 1 px)."""
OUTLINE_PLACES: tuple[tuple[str, float], ...] = (("inside", 0.3), ("centred", 0.35),
                                                 ("outside", 0.35))
"""Where the stroke lies relative to the shape's edge, with probabilities."""
OUTLINE_DARKEN: tuple[float, float] = (0.25, 0.4)
"""A `darker` outline is the fill colour times a factor in this range."""
OUTLINE_BLACK = np.full(3, 18.0, np.float32)
"""Colour of a `black` outline (near-black)."""
SHADOW_OFFSET: tuple[float, float] = (0.05, 0.14)
SHADOW_BLUR: tuple[float, float] = (0.02, 0.14)
SHADOW_OPACITY: tuple[float, float] = (0.35, 0.7)
"""Drop shadow offset and blur (fractions of the object's extent) and darkening."""
CONTACT_OFFSET: tuple[float, float] = (0.01, 0.035)
CONTACT_BLUR: tuple[float, float] = (0.01, 0.03)
CONTACT_OPACITY: tuple[float, float] = (0.55, 0.7)
"""A tight contact shadow (drawn with probability CONTACT_SHARE): small offset, little blur."""
CONTACT_SHARE = 0.3
MASK_ROUNDING_PX = 1.5
"""Pixels of rounding allowed between a centre of the exact outline and of its drawn mask."""
MIN_MASK_MARGIN = 0.005
MIN_MASK_GAP = 0.04
"""Clear gap between the two drawn masks of reshaped objects (geometry, size, an outline
outside the edge), at least (fraction of the side): MIN_GAP holds on the exact outlines, and
anti-aliased edges can bring the masks up to about a pixel closer."""
"""Floor of `mask_margin` for tiny images (below 100 px)."""


def mask_margin(side: int) -> float:
    """Margin from every decision boundary that the relation keeps on masks drawn at `side`
    px: BOUNDARY_MARGIN (held by the exact outlines) less MASK_ROUNDING_PX of rounding, so
    0.0083 at 128 px, 0.017 at 512 px, 0.0185 at 1024 px (never below MIN_MASK_MARGIN)."""
    return max(MIN_MASK_MARGIN, BOUNDARY_MARGIN - MASK_ROUNDING_PX / side)
FLAT_BACKGROUND = 128
"""Gray level of the background when `background` is not named (the paper's gray)."""
SHADINGS_ROUND: tuple[tuple[str, float], ...] = (
    ("sphere", 0.6), ("radial", 0.15), ("linear", 0.1), ("specular", 0.15)
)
"""Shading kinds of a circle under `shading`, with their probabilities."""
LIGHT_DEG: tuple[float, float] = (210.0, 330.0)
"""Direction the light comes from (degrees, y down: 270 = straight above); shading is lit from
it and shadows fall the opposite way, as in one lit scene."""
SHADINGS_FLAT: tuple[str, ...] = ("linear", "radial", "specular")
"""Shading kinds of a square or triangle under `shading` (equally likely)."""
SPHERE_DARKEST: tuple[float, float] = (0.25, 0.35)
"""Brightness of a lit sphere's dark side (factor of the base colour), before the colour
word's limit (`palette.shade_floor`) raises it."""
GRADIENT_DARKEST: tuple[float, float] = (0.4, 0.55)
"""Darkest end of a linear or radial gradient, before the colour word's limit."""
_MAX_LAYOUT_TRIES = 200


def check_factors(names: Iterable[str]) -> tuple[str, ...]:
    """The named factors (an iterable, or one comma-separated string) in STYLE_FACTORS order,
    duplicates dropped; ValueError naming the known factors for a name that is not one."""
    if isinstance(names, str):
        names = [n for n in names.split(",") if n.strip()]
    wanted = set()
    for name in names:
        name = str(name).strip()
        if name not in STYLE_FACTORS:
            raise ValueError(
                f"unknown style factor {name!r}{did_you_mean(name, STYLE_FACTORS)}; "
                f"known factors: {', '.join(STYLE_FACTORS)}"
            )
        wanted.add(name)
    return tuple(f for f in STYLE_FACTORS if f in wanted)


@dataclass(frozen=True)
class StyledImage:
    """A styled render and its truth.

    `scene` holds each object's centroid of its full drawn mask and its extent (the larger
    side of its bounding box, before any outline stroke), as fractions of the side; `spec` names subject (object 0),
    relation and reference (object 1); `factors` maps each applied factor to its variant;
    `masks` (2, H, W) is each object's full drawn region (coverage ≥ 0.5), including an
    outline stroke drawn on or outside the shape's edge.
    """

    image: np.ndarray
    scene: Scene
    spec: RelationSpec
    factors: dict[str, str]
    masks: np.ndarray


def _streams(seed: int) -> dict[str, np.random.Generator]:
    """One independent generator per factor (and the layout), so a factor's variant for a
    seed does not change when other factors are added or removed."""
    names = ("layout", *STYLE_FACTORS, "light")
    children = np.random.SeedSequence(seed).spawn(len(names))
    return {n: np.random.default_rng(s) for n, s in zip(names, children)}


def _check_pair(pair: tuple[str, str] | None, vocab: Iterable[str], what: str) -> None:
    if pair is None:
        return
    vocab = list(vocab)
    if len(pair) != 2:
        raise ValueError(f"{what} must be a pair, got {pair!r}")
    for v in pair:
        if v not in vocab:
            raise ValueError(f"unknown {what[:-1]} {v!r}{did_you_mean(str(v), vocab)}")


def _extents(on: bool, rng: np.random.Generator) -> tuple[tuple[float, float], str]:
    if not on:
        return (PAPER_SIZE, PAPER_SIZE), ""
    large = float(rng.uniform(*LARGE_EXTENT))
    ratio = float(rng.uniform(*SIZE_RATIO))
    if rng.random() < 0.5:
        return (large, large / ratio), f"subject {ratio:.2f}x"
    return (large / ratio, large), f"reference {ratio:.2f}x"


def _ellipse_axes(o: Outline, side: int) -> tuple[float, float, float] | None:
    if o.axes is None:
        return None
    a, b, angle = o.axes
    return a * side, b * side, angle


@dataclass(frozen=True)
class _Stroke:
    """An outline stroke: colour kind, place (inside/centred/outside), width (fraction of the
    extent) and the darkening of a `darker` stroke."""

    kind: str
    place: str
    width: float
    darken: float

    def outer(self, extent: float) -> float:
        """How far (scene fractions) the stroke reaches beyond the shape's edge."""
        share = {"inside": 0.0, "centred": 0.5, "outside": 1.0}[self.place]
        return share * self.width * extent


def _stroke(on: bool, rng: np.random.Generator) -> _Stroke | None:
    if not on:
        return None
    kind = "black" if rng.random() < 0.5 else "darker"
    places, probs = zip(*OUTLINE_PLACES)
    where = str(rng.choice(places, p=probs))
    return _Stroke(kind, where, float(rng.uniform(*OUTLINE_WIDTH)),
                   float(rng.uniform(*OUTLINE_DARKEN)))


def _grown(o: Outline, by: float) -> tuple[Outline, np.ndarray]:
    """The outline grown by `by` (an outside stroke), recentred on its own centroid, and the
    shift from the grown shape's centroid to the original's."""
    if by <= 0:
        return o, np.zeros(2)
    pts = expand_polygon(o.points, by)
    c = polygon_centroid(pts)
    return Outline(o.shape, pts - c, o.variant, o.axes), -c


@dataclass(frozen=True)
class _Layout:
    """A drawn layout: per object its outline, pixel polygon of the shape and of its full
    drawn region (the shape grown by an outside stroke), the window and the coverage of the
    full region there; the full masks (2, H, W); the mask centres (2 objects, 3 definitions,
    xy); and the centre of each shape without its stroke (pixels)."""

    outlines: list[Outline]
    polygons: list[np.ndarray]
    regions: list[np.ndarray]
    windows: list[Window]
    alphas: list[np.ndarray]
    masks: np.ndarray
    centres: np.ndarray
    shape_centres: list[np.ndarray]


def _mask_gap(masks: np.ndarray, windows: list[Window]) -> float:
    """Smallest distance (px) from a pixel of mask 1 to mask 0, over the windows' union."""
    r0, r1 = min(w.r0 for w in windows), max(w.r1 for w in windows)
    c0, c1 = min(w.c0 for w in windows), max(w.c1 for w in windows)
    free = (~masks[0][r0:r1, c0:c1]).astype(np.uint8)
    dist = cv2.distanceTransform(free, cv2.DIST_L2, cv2.DIST_MASK_5)
    return float(dist[masks[1][r0:r1, c0:c1]].min())


def _layout(
    names: tuple[str, ...],
    shapes: tuple[str, str],
    relation: str,
    side: int,
    rng: dict[str, np.random.Generator],
    record: dict[str, str],
    stroke: _Stroke | None,
) -> _Layout:
    """A layout whose relation is clear under every centre definition, both on the exact
    outlines (BOUNDARY_MARGIN) and on the drawn masks (`mask_margin`); redrawn otherwise.
    Shapes with a stroke reaching outside their edge are laid out as the grown shapes."""
    free = "geometry" in names
    # Layouts of the paper's shapes stay as they were (the flat scene is unchanged); shapes
    # reshaped by geometry, size or an outside stroke also keep MIN_MASK_GAP on the masks.
    reshaped = free or "size" in names or (stroke is not None and stroke.place != "inside")
    for _ in range(_MAX_LAYOUT_TRIES):
        extents, size_variant = _extents("size" in names, rng["size"])
        shape_rng = rng["geometry"] if free else rng["layout"]
        outlines = [make_outline(s, e, shape_rng, free) for s, e in zip(shapes, extents)]
        grown = [_grown(o, stroke.outer(o.extent) if stroke else 0.0) for o in outlines]
        placed = place(grown[0][0], grown[1][0], relation, rng["layout"])
        if placed is None:
            continue
        shape_at = [p + g[1] for p, g in zip(placed, grown)]  # shape centroids (fractions)
        polygons = [(o.points + p) * side for o, p in zip(outlines, shape_at)]
        regions = [(g[0].points + p) * side for g, p in zip(grown, placed)]
        windows = [window_around(p, 2.0, side) for p in regions]
        alphas = [coverage(p, w) for p, w in zip(regions, windows)]
        masks = np.zeros((2, side, side), dtype=bool)
        for m, w, a in zip(masks, windows, alphas):
            m[w.slices] = a >= 0.5
        if not masks[0].any() or not masks[1].any() or (masks[0] & masks[1]).any():
            continue
        if reshaped and _mask_gap(masks, windows) < MIN_MASK_GAP * side:
            continue
        centres = np.stack([mask_centres(a >= 0.5, (w.r0, w.c0), (side, side))
                            for a, w in zip(alphas, windows)])  # (2, 3, 2)
        if not relation_is_clear(centres[0] - centres[1], relation, mask_margin(side)):
            continue
        if size_variant:
            record["size"] = size_variant
        if free:
            record["geometry"] = "/".join(o.variant for o in outlines)
        return _Layout(outlines, polygons, regions, windows, alphas, masks, centres,
                       [p * side for p in shape_at])
    raise RuntimeError(f"could not lay out {shapes[0]} {relation} {shapes[1]} at {side} px")


def _background(
    on: bool, colors: tuple[str, str], side: int, rng: np.random.Generator,
    record: dict[str, str],
) -> tuple[np.ndarray, tuple[int, int, int]]:
    """The uint8 background image and its mean colour."""
    if not on:
        return np.full((side, side, 3), FLAT_BACKGROUND, np.uint8), (FLAT_BACKGROUND,) * 3
    choices = allowed_backgrounds(colors)
    name = choices[int(rng.integers(len(choices)))]
    record["background"] = name
    image = make_background(name, side, rng)
    mean = image[::8, ::8].reshape(-1, 3).mean(axis=0)
    return image, (int(round(mean[0])), int(round(mean[1])), int(round(mean[2])))


def _shadows(image: np.ndarray, lay: _Layout, light: float, rng: np.random.Generator,
             record: dict[str, str]) -> None:
    """One soft drop shadow per object, cast away from the light, under both objects."""
    side = image.shape[0]
    angle = (light + np.pi) % (2 * np.pi)  # shadows fall away from the light
    contact = rng.random() < CONTACT_SHARE
    ranges = ((CONTACT_OFFSET, CONTACT_BLUR, CONTACT_OPACITY) if contact
              else (SHADOW_OFFSET, SHADOW_BLUR, SHADOW_OPACITY))
    off, blur, opacity = (float(rng.uniform(*r)) for r in ranges)
    for o, pts in zip(lay.outlines, lay.regions):
        ext = o.extent * side
        drop_shadow(image, pts, (np.cos(angle) * off * ext, np.sin(angle) * off * ext),
                    blur * ext, opacity)
    record["shadow"] = (f"{'contact' if contact else 'drop'} dir {np.degrees(angle):.0f} "
                        f"offset {off:.2f} blur {blur:.2f} opacity {opacity:.2f}")


def _objects(
    image: np.ndarray, lay: _Layout, names: tuple[str, ...], colors: tuple[str, str],
    rgbs: list[np.ndarray], light: float, rng: dict[str, np.random.Generator],
    record: dict[str, str], stroke: _Stroke | None,
) -> None:
    """Paint both objects over `image`: the outline colour over the full region (for a
    stroke reaching outside the edge), then the fill (flat or shaded) with the inside part
    of the stroke over the shape itself."""
    side = image.shape[0]
    if stroke is not None:
        record["outline"] = f"{stroke.kind} {stroke.place} {stroke.width:.3f}"
    used = []
    for i, (o, pts, win, alpha) in enumerate(zip(lay.outlines, lay.polygons, lay.windows,
                                                 lay.alphas)):
        base = rgbs[i]
        if "shading" in names:
            r = rng["shading"]
            if o.shape == "circle":
                kinds, probs = zip(*SHADINGS_ROUND)
                kind = str(r.choice(kinds, p=probs))
            else:
                kind = str(r.choice(SHADINGS_FLAT))
            span = SPHERE_DARKEST if kind == "sphere" else GRADIENT_DARKEST
            darkest = max(shade_floor(colors[i]), float(r.uniform(*span)))
            used.append(kind if kind == "specular" else f"{kind} {darkest:.2f}")
            axes = _ellipse_axes(o, side) if kind == "sphere" else None
            factor, highlight = shade_field(kind, win, lay.shape_centres[i],
                                            o.extent * side / 2, darkest, light, r, axes)
            colour = apply_shading(base, factor, highlight)
        else:
            colour = np.broadcast_to(base, (*win.shape, 3))
        if stroke is None:
            composite(image, win, colour, alpha)
            continue
        edge = OUTLINE_BLACK if stroke.kind == "black" else base * np.float32(stroke.darken)
        width_px = max(1.0, stroke.width * o.extent * side)
        inner = {"inside": width_px, "centred": width_px / 2, "outside": 0.0}[stroke.place]
        if stroke.place != "inside":
            composite(image, win, np.broadcast_to(edge, (*win.shape, 3)), alpha)
        if inner > 0:
            band = ring(pts, win, inner)[..., None]
            colour = colour * (1 - band) + edge * band
        composite(image, win, colour, alpha if stroke.place == "inside" else coverage(pts, win))
    if used:
        record["shading"] = "/".join(used)


def _jpeg(image: np.ndarray, rng: np.random.Generator, record: dict[str, str]) -> np.ndarray:
    """`image` after a JPEG encode/decode round trip at a drawn quality."""
    q = int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1))
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, q])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    record["jpeg"] = f"q{q}"
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def sample_styled(
    factors: Iterable[str],
    seed: int,
    *,
    size: int = 256,
    relation: str | None = None,
    shapes: tuple[str, str] | None = None,
    colors: tuple[str, str] | None = None,
) -> StyledImage:
    """A two-object scene drawn with the named style factors, deterministic for `seed`.

    Without `relation` the relation cycles with the seed (seed % 8), so any 8 consecutive
    seeds cover all of RELATIONS once. Default shapes: two different of circle/square/
    triangle; default colours: one red, one blue (`colors` may name any of COLOR_RGB).
    `size` is the image side unless the `resolution` factor draws one. Each factor draws
    from its own seeded stream, so adding a factor never changes another's variant, and
    factors that leave the layout alone (all but geometry, size and an outline stroke reaching
    outside the edge) keep the same layout.
    """
    names = check_factors(factors)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    side = check_size(size)
    relation = check_relation(relation) if relation is not None else RELATIONS[int(seed) % 8]
    _check_pair(shapes, SHAPES, "shapes")
    _check_pair(colors, COLOR_RGB, "colours")
    rng = _streams(int(seed))
    if shapes is None:
        drawn = rng["layout"].choice(len(SHAPES), size=2, replace=False)
        shapes = (SHAPES[int(drawn[0])], SHAPES[int(drawn[1])])
    if colors is None:
        colors = ("red", "blue") if rng["layout"].random() < 0.5 else ("blue", "red")
    shapes, colors = (str(shapes[0]), str(shapes[1])), (str(colors[0]), str(colors[1]))
    record: dict[str, str] = {}

    if "resolution" in names:
        side = int(rng["resolution"].choice(RESOLUTIONS))
        record["resolution"] = str(side)
    if "colour" in names:
        shades = [sample_shade(c, rng["colour"]) for c in colors]
        rgbs = [np.asarray(rgb, np.float32) for _, rgb in shades]
        record["colour"] = "/".join(name for name, _ in shades)
    else:
        rgbs = [np.asarray(COLOR_RGB[c], np.float32) for c in colors]
    stroke = _stroke("outline" in names, rng["outline"])
    lay = _layout(names, shapes, relation, side, rng, record, stroke)
    image, background = _background("background" in names, colors, side, rng["background"],
                                     record)
    light = float(np.radians(rng["light"].uniform(*LIGHT_DEG)))
    if "shadow" in names:
        _shadows(image, lay, light, rng["shadow"], record)
    _objects(image, lay, names, colors, rgbs, light, rng, record, stroke)
    if "jpeg" in names:
        image = _jpeg(image, rng["jpeg"], record)

    objects = tuple(
        SceneObject(s, c, float(lay.centres[i, 0, 0]), float(lay.centres[i, 0, 1]),
                    lay.outlines[i].extent)
        for i, (s, c) in enumerate(zip(shapes, colors))
    )
    spec = RelationSpec(ObjectSpec(shapes[0], colors[0]), relation,
                        ObjectSpec(shapes[1], colors[1]))
    factors_out = {f: record[f] for f in STYLE_FACTORS if f in record}
    return StyledImage(image, Scene(objects, background), spec, factors_out, lay.masks)


__all__ = [
    "BACKGROUNDS",
    "CENTRE_DEFINITIONS",
    "BOUNDARY_MARGIN",
    "RESOLUTIONS",
    "SHADES",
    "STYLE_FACTORS",
    "StyledImage",
    "check_factors",
    "mask_centres",
    "mask_margin",
    "sample_styled",
]
