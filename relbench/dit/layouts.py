"""Training layouts: the paper's distribution, or a curriculum that starts near one canonical
layout per relation and widens to the paper's.

Why a curriculum: in the paper's data the two centres are uniform, so the caption fixes only the
*relative* placement and most of the denoising loss is explained without reading the text. A
small DiT on two CPU cores then learns to draw blobs long before it learns the relation (see
benchmarks/results/train_probes.md). Pulling each layout towards its relation's canonical layout

    p = c_r + λ · (p_paper − c_r),   λ = λ_min(step) + (1 − λ_min(step)) · u^k,  u ~ U(0, 1)

makes the caption nearly determine the image when λ is small, the regime in which a DiT learns
a word within a hundred steps, while λ near 1 is the paper's layout. The pull never changes the
relation: for both cardinal and diagonal relations the set of offsets that hold it is convex and
contains the canonical offset, so every pulled layout holds the relation of the paper layout it
came from, and its caption (computed from the pulled geometry) is still the paper's caption
distribution for that relation. `λ_min` ramps linearly from `spread_start` to 1 over
`spread_ramp_steps` optimizer steps; k = `spread_power` > 1 puts more of the layouts near the
canonical ones (k = 1: λ uniform in [λ_min, 1]).

`balance_relations` draws the relation uniformly first (the paper's layouts are 79 % diagonal,
so each cardinal relation is about 5 % of them) and then a paper layout that holds it.

`cardinal_offset_scale` lines cardinal layouts up: the strict rule calls "above" only when the
x offset is within T = 5/128 of the image (2.5 px at 64 px), so a model that places each object
with an error of a pixel or two turns a target anywhere in [−T, T] into a diagonal a good part of
the time. Scaling that offset towards 0 (about the pair's midpoint, the named axis untouched)
centres the targets in the allowed band. `TrainConfig.layout_phases` switches to such a layout
from a given step, so a finished run can be extended without changing its earlier batches.

`order_bias` breaks the symmetry between subject and reference. In the paper's data each colour
is the subject half the time, so whether the red object goes above or below in "… is above …" is
an XOR of the relation word and the colour order. At that symmetric point the gradient that would
grow the paper's first stage (a head whose attention to the relation word writes a "subject side"
tag into the image tokens) averages to zero over the two orders, and a small DiT sits on the
plateau where it draws the right axis and lets the noise decide which object goes where
(benchmarks/results/train_probes.md). Making red the subject with probability q > 0.5 gives
the tag a gradient ∝ 2q − 1, and, once the tag exists, the second stage (a head that reads the
subject's own words where the tag says so) a gradient ∝ q(1 − q); holding q near 0.8 grows both,
then q falls linearly to 0.5, the paper's distribution. With q = 1 the model learns "red goes
on the subject side" alone and loses it when the orders are mixed again.
"""

from __future__ import annotations

import random
from dataclasses import replace

from pydantic import BaseModel, ConfigDict, Field, model_validator

from relbench.scene import DIRECTION, RELATIONS, SHAPES, TRAIN_COLORS, Scene, SceneObject, place_pair, random_scene


class LayoutConfig(BaseModel):
    """Where the two objects of a training scene go. The defaults are the paper's layouts."""

    model_config = ConfigDict(extra="forbid")

    balance_relations: bool = False
    """Draw the relation uniformly among the eight, then a paper layout that holds it."""
    spread_start: float = Field(1.0, ge=0.0, le=1.0)
    """λ_min at step 0 (1 = the paper's layouts throughout)."""
    spread_ramp_steps: int = Field(0, ge=0)
    """Steps over which λ_min rises linearly from `spread_start` to 1 (0 = no ramp)."""
    spread_power: float = Field(1.0, gt=0.0)
    """k in λ = λ_min + (1 − λ_min)·u^k: above 1, more layouts near the canonical ones."""
    canonical_distance: float = Field(0.3, gt=0.0, lt=0.7)
    """Centre distance along each axis of the canonical layouts (fraction of the image)."""
    cardinal_offset_scale: float = Field(1.0, ge=0.0, le=1.0)
    """Scale of a cardinal layout's offset along the axis its relation does not name (the x
    offset of "above"), about the pair's midpoint, after the pull: 0 lines the two centres up
    exactly. The strict rule allows that offset only up to T = 5/128, so a model whose sampled
    positions scatter by a few pixels reads as a diagonal unless its targets sit at 0."""
    order_bias: float = Field(0.5, ge=0.0, le=1.0)
    """q: probability that the subject has the first training colour (red) at step 0
    (0.5 = the paper's symmetric orders)."""
    order_bias_hold_steps: int = Field(0, ge=0)
    """Steps for which q stays at `order_bias`."""
    order_bias_ramp_steps: int = Field(0, ge=0)
    """Steps over which q then falls (or rises) linearly to 0.5."""

    @model_validator(mode="after")
    def _bias_has_a_schedule(self) -> LayoutConfig:
        if self.order_bias != 0.5 and self.order_bias_hold_steps + self.order_bias_ramp_steps == 0:
            raise ValueError(
                f"order_bias={self.order_bias} has no effect without order_bias_hold_steps or "
                "order_bias_ramp_steps (q is 0.5 from the first step on)"
            )
        return self

    @property
    def is_paper(self) -> bool:
        return (not self.balance_relations and self.spread_start >= 1.0 and self.order_bias == 0.5
                and self.cardinal_offset_scale == 1.0)

    def subject_colour_probability(self, step: int) -> float:
        """q at `step`: the probability that the subject is red (TRAIN_COLORS[0])."""
        if step < self.order_bias_hold_steps:
            return self.order_bias
        if step >= self.order_bias_hold_steps + self.order_bias_ramp_steps:
            return 0.5
        frac = (step - self.order_bias_hold_steps) / self.order_bias_ramp_steps
        return self.order_bias + (0.5 - self.order_bias) * frac

    def spread_floor(self, step: int) -> float:
        """λ_min at `step`."""
        if self.spread_ramp_steps == 0:
            return self.spread_start
        return min(1.0, self.spread_start + (1.0 - self.spread_start) * step / self.spread_ramp_steps)


def canonical_centres(relation: str, distance: float) -> tuple[tuple[float, float], tuple[float, float]]:
    """(subject, reference) centres of `relation`'s canonical layout, mirrored about the image
    centre: the offset is `distance` along each axis the relation names, 0 along the other."""
    ux, uy = DIRECTION[relation]
    h = distance / 2
    return (0.5 + ux * h, 0.5 + uy * h), (0.5 - ux * h, 0.5 - uy * h)


def pull(scene: Scene, lam: float, distance: float) -> Scene:
    """The scene with each object moved to c + lam·(p − c), c its relation's canonical centre."""
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lambda must be in [0, 1], got {lam}")
    relation = scene.relation(0, 1)
    if relation is None:
        raise ValueError("the two objects' centres coincide: no relation to pull towards")
    targets = canonical_centres(relation, distance)
    moved = tuple(
        SceneObject(o.shape, o.color, cx + lam * (o.x - cx), cy + lam * (o.y - cy), o.size)
        for o, (cx, cy) in zip(scene.objects[:2], targets)
    )
    return Scene(moved + scene.objects[2:], scene.background)


def align_cardinal(scene: Scene, scale: float) -> Scene:
    """The scene with the offset along the axis a cardinal relation does not name multiplied by
    `scale` about the pair's midpoint (a diagonal scene is returned unchanged). The named axis
    is untouched, so the relation holds as before."""
    if not 0.0 <= scale <= 1.0:
        raise ValueError(f"cardinal offset scale must be in [0, 1], got {scale}")
    if scale == 1.0:
        return scene
    relation = scene.relation(0, 1)
    if relation is None:
        raise ValueError("the two objects' centres coincide: no relation to align")
    ux, uy = DIRECTION[relation]
    if ux != 0 and uy != 0:
        return scene
    a, b = scene.objects[:2]
    if ux == 0:  # above / below: scale the x offset
        mid = (a.x + b.x) / 2
        a, b = replace(a, x=mid + scale * (a.x - mid)), replace(b, x=mid + scale * (b.x - mid))
    else:  # left / right: scale the y offset
        mid = (a.y + b.y) / 2
        a, b = replace(a, y=mid + scale * (a.y - mid)), replace(b, y=mid + scale * (b.y - mid))
    return Scene((a, b) + scene.objects[2:], scene.background)


def swap_colours(scene: Scene) -> Scene:
    """The scene with its first two objects' colours exchanged (shapes and places kept)."""
    a, b = scene.objects[:2]
    return Scene((replace(a, color=b.color), replace(b, color=a.color)) + scene.objects[2:], scene.background)


def training_scene(rng: random.Random, config: LayoutConfig, step: int) -> Scene:
    """One training scene drawn from `rng` under `config` at optimizer step `step`."""
    if config.is_paper:
        return random_scene(rng)
    scene = _placed_scene(rng, config, step)
    q = config.subject_colour_probability(step)
    if q != 0.5:
        wanted = TRAIN_COLORS[0] if rng.random() < q else TRAIN_COLORS[1]
        if scene.objects[0].color != wanted:
            scene = swap_colours(scene)
    return scene


def _placed_scene(rng: random.Random, config: LayoutConfig, step: int) -> Scene:
    if config.balance_relations:
        relation = rng.choice(RELATIONS)
        shapes = tuple(rng.sample(SHAPES, 2))
        colors = tuple(rng.sample(TRAIN_COLORS, 2))
        scene = place_pair(shapes, colors, rng, relation=relation)  # type: ignore[arg-type]
    else:
        scene = random_scene(rng)
    floor = config.spread_floor(step)
    if floor < 1.0:
        lam = floor + (1.0 - floor) * rng.random() ** config.spread_power
        scene = pull(scene, lam, config.canonical_distance)
    return align_cardinal(scene, config.cardinal_offset_scale)
