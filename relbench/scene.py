"""Scenes, object specs and the spatial-relation rule.

Pure Python (no numpy, no torch): everything else in relbench builds on these types.

Coordinates are fractions of the image size, with y pointing *down* (image convention),
so a scene renders identically at any resolution and every threshold scales with it.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass
from typing import Any, Iterable

SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
"""Shapes the renderer draws and the scorer classifies."""

TRAIN_COLORS: tuple[str, ...] = ("red", "blue")
"""The two colours of the paper's training set."""

COLOR_RGB: dict[str, tuple[int, int, int]] = {
    "red": (255, 0, 0),
    "blue": (0, 0, 255),
    "green": (0, 170, 0),
    "yellow": (255, 220, 0),
    "purple": (150, 0, 200),
    "orange": (255, 140, 0),
    "black": (0, 0, 0),
    "white": (255, 255, 255),
}
"""Canonical render colour of each named colour (the scorer's palette lives in detectors/)."""

BACKGROUND_RGB: tuple[int, int, int] = (128, 128, 128)

RELATIONS: tuple[str, ...] = (
    "above",
    "below",
    "left",
    "right",
    "upper_left",
    "upper_right",
    "lower_left",
    "lower_right",
)
"""The eight relations, named from the subject's point of view ("subject is above reference")."""

CARDINAL_RELATIONS: tuple[str, ...] = RELATIONS[:4]
DIAGONAL_RELATIONS: tuple[str, ...] = RELATIONS[4:]

INVERSE: dict[str, str] = {
    "above": "below",
    "below": "above",
    "left": "right",
    "right": "left",
    "upper_left": "lower_right",
    "lower_right": "upper_left",
    "upper_right": "lower_left",
    "lower_left": "upper_right",
}

DIRECTION: dict[str, tuple[int, int]] = {
    "above": (0, -1),
    "below": (0, 1),
    "left": (-1, 0),
    "right": (1, 0),
    "upper_left": (-1, -1),
    "upper_right": (1, -1),
    "lower_left": (-1, 1),
    "lower_right": (1, 1),
}
"""Unit direction (x right, y down) of subject relative to reference; diagonals are sums."""

STRICT_THRESHOLD: float = 5 / 128
"""The paper's T = 5 px at 128 px, as a fraction of the image size (≈ 0.039)."""

PAPER_SIZE: float = 32 / 128
"""Shape extent in the paper's data: disk diameter, square side, triangle side (32 px at 128)."""

PAPER_CENTER_RANGE: tuple[float, float] = (17 / 128, 111 / 128)
"""Range of object centres in the paper's data (17..111 px at 128)."""


def strict_relation(dx: float, dy: float, threshold: float = STRICT_THRESHOLD) -> str | None:
    """The paper's geometry rule: the relation of a subject offset (dx, dy) from its reference.

    dx = x_subject - x_reference, dy = y_subject - y_reference, as fractions of the image
    size (y down). |dx| <= T gives above/below, else |dy| <= T gives left/right, else a
    diagonal. Returns None when both offsets are within T: the centres coincide and no
    relation is defined (the paper's rule says "below" there, a known artefact).
    """
    if abs(dx) <= threshold and abs(dy) <= threshold:
        return None
    if abs(dx) <= threshold:
        return "above" if dy < 0 else "below"
    if abs(dy) <= threshold:
        return "left" if dx < 0 else "right"
    if dx < 0:
        return "upper_left" if dy < 0 else "lower_left"
    return "upper_right" if dy < 0 else "lower_right"


def loose_holds(relation: str, dx: float, dy: float, threshold: float = STRICT_THRESHOLD) -> bool:
    """The loose rule: the subject lies on the right side of the reference on every axis the
    relation names, by more than T; axes it does not name are free.

    "above" holds loosely when dy < -T whatever dx is; "upper_left" when dx < -T and dy < -T.
    Strict implies loose for every relation and offset (tested), so the two never disagree in
    the surprising direction; loose additionally accepts e.g. a diagonal layout for "above".
    """
    ux, uy = DIRECTION[check_relation(relation)]
    ok_x = ux == 0 or ux * dx > threshold
    ok_y = uy == 0 or uy * dy > threshold
    return ok_x and ok_y


def check_relation(relation: str) -> str:
    """Return `relation` if it is one of RELATIONS, else raise a ValueError with a suggestion."""
    if relation not in DIRECTION:
        raise ValueError(f"unknown relation {relation!r}{did_you_mean(relation, RELATIONS)}")
    return relation


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """A ' (did you mean X?)' suffix for error messages, or a list of valid names."""
    import difflib

    choices = list(choices)
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return f"; choose from {', '.join(choices)}"


@dataclass(frozen=True)
class ObjectSpec:
    """What a prompt says about one object; None means the prompt leaves it unsaid."""

    shape: str | None = None
    color: str | None = None

    def words(self) -> str:
        return " ".join(w for w in (self.color, self.shape) if w)

    def matches(self, shape: str | None, color: str | None) -> bool:
        """Whether a detected (shape, color) satisfies this spec."""
        return (self.shape is None or self.shape == shape) and (
            self.color is None or self.color == color
        )


@dataclass(frozen=True)
class RelationSpec:
    """The target of a prompt: subject, relation to reference, reference."""

    subject: ObjectSpec
    relation: str
    reference: ObjectSpec

    def __post_init__(self) -> None:
        check_relation(self.relation)

    def inverse(self) -> RelationSpec:
        """The same fact said from the reference's side ("B is below A")."""
        return RelationSpec(self.reference, INVERSE[self.relation], self.subject)

    def to_dict(self) -> dict[str, Any]:
        s, r = self.subject, self.reference
        return {
            "subject": {"shape": s.shape, "color": s.color},
            "relation": self.relation,
            "reference": {"shape": r.shape, "color": r.color},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RelationSpec:
        try:
            return cls(
                subject=ObjectSpec(**d["subject"]),
                relation=d["relation"],
                reference=ObjectSpec(**d["reference"]),
            )
        except (KeyError, TypeError) as e:
            raise ValueError(f"malformed spec {d!r}: {e}") from e


@dataclass(frozen=True)
class SceneObject:
    """One drawn object: centre (x, y) and extent `size`, all as fractions of the image size."""

    shape: str
    color: str
    x: float
    y: float
    size: float = PAPER_SIZE


@dataclass(frozen=True)
class Scene:
    """Objects drawn in order (later ones on top) on a flat background."""

    objects: tuple[SceneObject, ...]
    background: tuple[int, int, int] = BACKGROUND_RGB

    def offset(self, i: int = 0, j: int = 1) -> tuple[float, float]:
        """(dx, dy) of object i relative to object j."""
        a, b = self.objects[i], self.objects[j]
        return a.x - b.x, a.y - b.y

    def relation(self, i: int = 0, j: int = 1, threshold: float = STRICT_THRESHOLD) -> str | None:
        """Strict relation of object i to object j."""
        return strict_relation(*self.offset(i, j), threshold=threshold)

    def to_dict(self) -> dict[str, Any]:
        return {"objects": [asdict(o) for o in self.objects], "background": list(self.background)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Scene:
        return cls(
            objects=tuple(SceneObject(**o) for o in d["objects"]),
            background=tuple(d.get("background", BACKGROUND_RGB)),  # type: ignore[arg-type]
        )


def circumradius(obj: SceneObject) -> float:
    """Radius of the smallest centred disk holding the shape (fraction of the image size)."""
    if obj.shape == "square":
        return obj.size / math.sqrt(2)
    if obj.shape == "triangle":
        return obj.size / math.sqrt(3)  # equilateral, centred on its centroid
    return obj.size / 2


def apart(a: SceneObject, b: SceneObject) -> bool:
    """Whether two objects cannot overlap: centres further apart than their circumradii."""
    return math.hypot(a.x - b.x, a.y - b.y) > circumradius(a) + circumradius(b)


def _unambiguous(dx: float, dy: float, relation: str, margin: float) -> bool:
    """The relation holds at thresholds T - margin and T + margin alike: no boundary is near."""
    return (
        strict_relation(dx, dy, STRICT_THRESHOLD - margin) == relation
        and strict_relation(dx, dy, STRICT_THRESHOLD + margin) == relation
    )


def place_pair(
    shapes: tuple[str, str],
    colors: tuple[str, str],
    rng: random.Random,
    *,
    relation: str | None = None,
    margin: float = 0.0,
    allow_overlap: bool = True,
    size: float = PAPER_SIZE,
    background: tuple[int, int, int] = BACKGROUND_RGB,
    max_tries: int = 10_000,
) -> Scene:
    """Two objects (subject first) at centres uniform in the paper's range, by rejection.

    With `relation`, only layouts in which the subject holds it strictly, at least `margin`
    (fraction of the image size) from every decision boundary; without, any layout whose
    relation is defined. `allow_overlap=False` keeps the shapes from touching.
    """
    lo, hi = PAPER_CENTER_RANGE
    for _ in range(max_tries):
        a = SceneObject(shapes[0], colors[0], rng.uniform(lo, hi), rng.uniform(lo, hi), size)
        b = SceneObject(shapes[1], colors[1], rng.uniform(lo, hi), rng.uniform(lo, hi), size)
        dx, dy = a.x - b.x, a.y - b.y
        if relation is None:
            ok = strict_relation(dx, dy) is not None
        else:
            ok = _unambiguous(dx, dy, relation, margin)
        if ok and (allow_overlap or apart(a, b)):
            return Scene((a, b), background)
    raise RuntimeError(
        f"could not place {colors[0]} {shapes[0]} {relation or 'anywhere'} of "
        f"{colors[1]} {shapes[1]} in {max_tries} tries"
    )


def scene_for_spec(
    spec: RelationSpec,
    rng: random.Random,
    *,
    size: float = PAPER_SIZE,
    allow_overlap: bool = False,
    background: tuple[int, int, int] = BACKGROUND_RGB,
    margin: float = 0.0,
    max_tries: int = 10_000,
) -> Scene:
    """A random scene that satisfies `spec` strictly. Unsaid shapes/colours are filled from the
    training vocabulary so that the two objects stay distinguishable where the spec allows.
    With `margin` > 0 the offsets keep at least that distance from every decision boundary."""
    shapes = fill_unsaid(spec.subject.shape, spec.reference.shape, SHAPES, rng)
    colors = fill_unsaid(spec.subject.color, spec.reference.color, TRAIN_COLORS, rng)
    return place_pair(shapes, colors, rng, relation=spec.relation, margin=margin,
                      allow_overlap=allow_overlap, size=size, background=background,
                      max_tries=max_tries)


def random_scene(
    rng: random.Random,
    *,
    size: float = PAPER_SIZE,
    allow_overlap: bool = True,
    background: tuple[int, int, int] = BACKGROUND_RGB,
    max_tries: int = 10_000,
) -> Scene:
    """A layout from the paper's training distribution: two different shapes, one red and one
    blue, centres uniform in the paper's range. Layouts whose centres coincide (no relation
    defined, ≈1 % of draws) are redrawn."""
    s1, s2 = rng.sample(SHAPES, 2)
    c1, c2 = rng.sample(TRAIN_COLORS, 2)
    return place_pair((s1, s2), (c1, c2), rng, allow_overlap=allow_overlap, size=size,
                      background=background, max_tries=max_tries)


def fill_unsaid(
    a: str | None, b: str | None, vocab: tuple[str, ...], rng: random.Random
) -> tuple[str, str]:
    """Fill unsaid attributes, preferring values that keep the two objects different."""
    if a is None and b is None:
        a, b = rng.sample(vocab, 2)
    elif a is None:
        a = rng.choice([v for v in vocab if v != b] or list(vocab))
    elif b is None:
        b = rng.choice([v for v in vocab if v != a] or list(vocab))
    return a, b  # type: ignore[return-value]


GEOMETRIES: tuple[str, ...] = ("relbench", "paper")
"""How a scene's objects are drawn and what point their (x, y) names.

relbench: a triangle is centred on its centroid, pixels whose centre lies inside are filled.
paper: the paper's generator (`utils/relation_shape_dataset_lib.py`): a triangle's (x, y) lies
h/3 below its apex (its centroid is another h/3 lower), shapes are drawn by PIL's ImageDraw
at integer pixel centres. Circles and squares are centred on (x, y) in both."""

POSITION_CONVENTIONS: tuple[str, ...] = ("centroid", "bbox", "paper_anchor")
"""Which point of an object stands for it when relations are judged: the centroid (relbench),
the bounding-box centre (GenEval, VISOR, T2I-CompBench, the paper's scorer) or the paper's
anchor (h/3 below a triangle's apex). For circles and squares all three coincide."""

NATIVE_CONVENTION: dict[str, str] = {"relbench": "centroid", "paper": "paper_anchor"}
"""The convention in which a geometry's (x, y) are stated: score a model by this one."""


def check_geometry(name: str) -> str:
    """Return `name` if it is one of GEOMETRIES, else raise a ValueError naming them."""
    if name not in GEOMETRIES:
        raise ValueError(
            f"unknown geometry {name!r}; known geometries: {', '.join(GEOMETRIES)}"
        )
    return name


def check_convention(name: str) -> str:
    """Return `name` if it is one of POSITION_CONVENTIONS, else raise a ValueError naming them."""
    if name not in POSITION_CONVENTIONS:
        raise ValueError(
            f"unknown position convention {name!r}; known conventions: "
            f"{', '.join(POSITION_CONVENTIONS)}"
        )
    return name


def _above_centroid(convention: str, extent: float) -> float:
    """How far above an upright equilateral triangle's centroid (side `extent`) a convention's
    point lies: the bounding-box centre h/6, the paper's anchor h/3."""
    h = extent * math.sqrt(3) / 2
    return {"centroid": 0.0, "bbox": h / 6, "paper_anchor": h / 3}[convention]


def object_point(
    obj: SceneObject, convention: str, geometry: str = "relbench", image_size: int = 128
) -> tuple[float, float]:
    """The (x, y) of a drawn object under a position convention (fractions of the image size).
    Circles and squares: (obj.x, obj.y). The geometry's own convention gives (obj.x, obj.y), its
    label; another gives that point of the triangle as `geometry` draws it at `image_size` px:
    the paper's vertices are truncated to whole pixels by PIL (relbench.render), which moves its
    triangle's centroid and box centre by up to a pixel from the formulas' ideal."""
    check_convention(convention)
    native = NATIVE_CONVENTION[check_geometry(geometry)]
    if obj.shape != "triangle" or convention == native:
        return obj.x, obj.y
    if geometry == "paper":
        n = image_size
        x, y, s = obj.x * n - 0.5, obj.y * n - 0.5, obj.size * n  # PIL pixel-index coordinates
        h = s * math.sqrt(3) / 2
        xs = [math.trunc(v) for v in (x, x - s / 2, x + s / 2)]
        ys = [math.trunc(v) for v in (y - h / 3, y + 2 * h / 3, y + 2 * h / 3)]
        if convention == "centroid":
            px, py = sum(xs) / 3, sum(ys) / 3
        else:  # bbox
            px, py = (min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2
        return (px + 0.5) / n, (py + 0.5) / n
    dy = _above_centroid(native, obj.size) - _above_centroid(convention, obj.size)
    return obj.x, obj.y + dy


def in_convention(
    scene: Scene, convention: str, geometry: str = "relbench", image_size: int = 128
) -> Scene:
    """`scene` with every object moved to its point under `convention` (drawn by `geometry` at
    `image_size` px): its `relation()` is the truth a scorer of that convention should find."""
    objs = []
    for o in scene.objects:
        x, y = object_point(o, convention, geometry, image_size)
        objs.append(SceneObject(o.shape, o.color, x, y, o.size))
    return Scene(tuple(objs), scene.background)


def paper_scene(
    rng: random.Random,
    *,
    image_size: int = 128,
    size: float = PAPER_SIZE,
    allow_overlap: bool = True,
    background: tuple[int, int, int] = BACKGROUND_RGB,
    max_tries: int = 10_000,
) -> Scene:
    """A layout as the paper's generator draws it: two different shapes, one red and one blue,
    centres on whole pixels r+1..N-r-1 (17..111 at 128 px, r the radius), subject drawn first.

    A pixel centre i is the scene fraction (i + 0.5) / image_size (relbench's pixel convention),
    so offsets are whole pixels, as in the paper's labels. Layouts without a defined relation
    are redrawn (the paper calls them "below"); `allow_overlap=False` keeps the shapes apart."""
    r = round(size * image_size / 2)
    lo, hi = r + 1, image_size - r - 1
    for _ in range(max_tries):
        s1, s2 = rng.sample(SHAPES, 2)
        c1, c2 = rng.sample(TRAIN_COLORS, 2)
        a, b = (
            SceneObject(s, c, (rng.randint(lo, hi) + 0.5) / image_size,
                        (rng.randint(lo, hi) + 0.5) / image_size, size)
            for s, c in ((s1, c1), (s2, c2))
        )
        scene = Scene((a, b), background)
        if scene.relation() is None:
            continue
        if allow_overlap or apart(*in_convention(scene, "centroid", "paper").objects):
            return scene
    raise RuntimeError(f"could not place a paper layout in {max_tries} tries")


__all__ = [
    "BACKGROUND_RGB",
    "CARDINAL_RELATIONS",
    "COLOR_RGB",
    "DIAGONAL_RELATIONS",
    "DIRECTION",
    "GEOMETRIES",
    "INVERSE",
    "NATIVE_CONVENTION",
    "PAPER_CENTER_RANGE",
    "PAPER_SIZE",
    "POSITION_CONVENTIONS",
    "RELATIONS",
    "SHAPES",
    "STRICT_THRESHOLD",
    "TRAIN_COLORS",
    "ObjectSpec",
    "RelationSpec",
    "Scene",
    "SceneObject",
    "apart",
    "check_convention",
    "check_geometry",
    "check_relation",
    "circumradius",
    "did_you_mean",
    "fill_unsaid",
    "in_convention",
    "loose_holds",
    "object_point",
    "paper_scene",
    "place_pair",
    "random_scene",
    "scene_for_spec",
    "strict_relation",
]
