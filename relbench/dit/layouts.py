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
"""

from __future__ import annotations

import random

from pydantic import BaseModel, ConfigDict, Field

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

    @property
    def is_paper(self) -> bool:
        return not self.balance_relations and self.spread_start >= 1.0

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


def training_scene(rng: random.Random, config: LayoutConfig, step: int) -> Scene:
    """One training scene drawn from `rng` under `config` at optimizer step `step`."""
    if config.is_paper:
        return random_scene(rng)
    if config.balance_relations:
        relation = rng.choice(RELATIONS)
        shapes = tuple(rng.sample(SHAPES, 2))
        colors = tuple(rng.sample(TRAIN_COLORS, 2))
        scene = place_pair(shapes, colors, rng, relation=relation)  # type: ignore[arg-type]
    else:
        scene = random_scene(rng)
    floor = config.spread_floor(step)
    if floor >= 1.0:
        return scene
    lam = floor + (1.0 - floor) * rng.random() ** config.spread_power
    return pull(scene, lam, config.canonical_distance)
