"""A layout-only check that needs no shapes: the strict relation rule applied to the centroids of
the two prompted colours' pixels. Used by training evaluations (`relbench.dit.train`) and by
ablations judged on layout (`relbench circuits ablate --metric colour_layout`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from relbench.scene import COLOR_RGB, strict_relation

COLOUR_TOLERANCE = 100
"""Max RGB distance of a pixel from a pure palette colour to count as that colour (diagnostic)."""


def colour_layout_correct(image: np.ndarray, spec: Any) -> bool | None:
    """A training diagnostic that does not need shapes: does the relation rule, applied to the
    centroids of the subject's and reference's colour pixels, give the prompt's relation?

    None when the two objects share a colour, a colour is unsaid, or either colour covers fewer
    than 3 pixels. Early in training a model draws colour blobs long before recognisable shapes,
    so this moves when strict accuracy (which needs the shapes) cannot; chance is about 0.14 on
    `core`, true layouts score 0.97 at 32 px.
    """
    colours = (spec.subject.color, spec.reference.color)
    if None in colours or colours[0] == colours[1] or any(c not in COLOR_RGB for c in colours):
        return None
    img = np.asarray(image, dtype=np.float32)  # (H, W, 3)
    masks = [np.linalg.norm(img - np.asarray(COLOR_RGB[c], np.float32), axis=-1) < COLOUR_TOLERANCE
             for c in colours]  # 2 × (H, W)
    if any(m.sum() < 3 for m in masks):
        return None
    from relbench.render import mask_centroid  # lazy: scoring a folder never needs the renderer

    (xs_, ys_), (xr, yr) = (mask_centroid(m) for m in masks)
    return strict_relation(xs_ - xr, ys_ - yr) == spec.relation
