"""Image sources that bracket every model: the oracle (the scorer's ceiling) and chance (its floor).

Both render with `relbench.render` and never import torch. The model wrappers `oracle` and
`chance` in `relbench.models.baselines` call these functions.
"""

from __future__ import annotations

import json
import random

import numpy as np

from relbench.render import render
from relbench.scene import (
    SHAPES,
    TRAIN_COLORS,
    RelationSpec,
    Scene,
    fill_unsaid,
    place_pair,
    scene_for_spec,
)

ORACLE_MARGIN = 1 / 128
"""The oracle keeps its offsets 1 px (at 128 px) from every relation boundary: a layout right at
the threshold is not a fact a pixel image can state, so it would not test the scorer."""


def oracle_scene(spec: RelationSpec, seed: int) -> Scene:
    """A non-overlapping scene that satisfies `spec` strictly, drawn with `random.Random(seed)`."""
    return scene_for_spec(
        _check_spec(spec), random.Random(seed), allow_overlap=False, margin=ORACLE_MARGIN
    )


def chance_scene(spec: RelationSpec, seed: int, *, allow_overlap: bool = False) -> Scene:
    """The prompt's two objects (unsaid shapes/colours filled as the oracle fills them) at
    centres drawn uniformly from the paper's range, ignoring the relation.

    Overlap is excluded by default so that the floor measures the relation alone, not the
    detector's trouble with occlusion. Layouts with coinciding centres (no relation) are redrawn.
    The layout is drawn from (seed, spec), so prompts of one suite get independent layouts for
    the same seed, while a rewording of a prompt (same spec) gets the same one.
    """
    spec = _check_spec(spec)
    rng = random.Random(f"chance:{seed}:{json.dumps(spec.to_dict(), sort_keys=True)}")
    shapes = fill_unsaid(spec.subject.shape, spec.reference.shape, SHAPES, rng)
    colors = fill_unsaid(spec.subject.color, spec.reference.color, TRAIN_COLORS, rng)
    return place_pair(shapes, colors, rng, allow_overlap=allow_overlap)


def oracle_image(spec: RelationSpec, seed: int, size: int = 128) -> np.ndarray:
    """(size, size, 3) uint8 render of `oracle_scene(spec, seed)`: what a perfect model draws."""
    return render(oracle_scene(spec, seed), size)


def chance_image(spec: RelationSpec, seed: int, size: int = 128) -> np.ndarray:
    """(size, size, 3) uint8 render of `chance_scene(spec, seed)`: right objects, random layout."""
    return render(chance_scene(spec, seed), size)


def _check_spec(spec: RelationSpec) -> RelationSpec:
    if not isinstance(spec, RelationSpec):
        raise ValueError(f"expected a relbench.scene.RelationSpec, got {type(spec).__name__}")
    return spec


__all__ = [
    "chance_image",
    "chance_scene",
    "oracle_image",
    "oracle_scene",
]
