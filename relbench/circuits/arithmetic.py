"""Embedding arithmetic for contextual text encoders (minilm, t5): does the relation live in the
second shape token's state, and does moving that state move the generated layout?

Relation effect vector (at grammar role `shape2`, the reference object's shape word):

    v(r → r') = mean over object pairs o of  s_o,r'(shape2) − s_o,r(shape2)

where s_o,r(shape2) is the encoder state at the shape2 token(s) (sub-tokens averaged) of the
`core` prompt with objects o and relation r. Both prompts name the same objects, so the
difference is what the relation words wrote into the reference's token (for phrases of unequal
length, e.g. "above" vs "to the left of", also where that token sits: compare equal-length pairs,
above/below or left/right, for the cleanest reading).

Edits of a prompt with relation r (only the shape2 token states change; the relation words and
everything else stay as encoded):

- `add`:  s(shape2) += alpha · v(r → target)      (one mean vector for every prompt)
- `swap`: s(shape2) := s_o,target(shape2)         (this prompt's own counterfactual state)

The edited states are sampled with the model's own DiTPipeline (`generate_from_states` hands it
a stand-in encoder that returns the given states; the null prompt stays the real one), with the
same seeds as the unedited baseline, and the scorer measures both images' layout: dx, dy =
subject minus reference centre, fractions of the image, y down. A relation that lives in the
shape2 token moves (dx, dy) toward DIRECTION[target] − DIRECTION[r].

rte/rtep have no contextual fusion: each token's state is its own word vector (+ a position code),
so the shape2 state never depends on the relation and there is nothing to move; they are refused.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from relbench.circuits.screen import role_positions
from relbench.dit.encoders import RandomTokenEncoder, TextEncoder
from relbench.scene import DIRECTION, RELATIONS, RelationSpec, check_relation

MODES = ("add", "swap")
N_BOOTSTRAP = 2000


class NoContextualFusion(ValueError):
    """Embedding arithmetic asked of an encoder whose token states ignore their context."""


def check_contextual(encoder: Any) -> None:
    """Raise NoContextualFusion for rte/rtep (and any non-TextEncoder)."""
    if isinstance(encoder, RandomTokenEncoder):
        raise NoContextualFusion(
            f"embedding arithmetic needs a contextual text encoder (minilm, t5:...); the "
            f"{encoder.name} encoder has no contextual fusion: every token's state is its own word "
            "vector"
            + (" plus a position code" if encoder.positional else "")
            + ", so the second shape token's state does not depend on the relation and a relation "
            "effect vector there is zero (or only a position shift)"
        )
    if not isinstance(encoder, TextEncoder):
        raise NoContextualFusion(
            f"embedding arithmetic needs a relbench TextEncoder, got {type(encoder).__name__}"
        )


# ---------------------------------------------------------------- prompts and states


def _object_key(spec: RelationSpec) -> tuple:
    return (spec.subject, spec.reference)


def core_by_relation() -> dict[str, dict[tuple, tuple[str, RelationSpec]]]:
    """relation → {(subject, reference): (prompt, spec)} over the `core` suite."""
    from relbench.suites import get_suite

    out: dict[str, dict[tuple, tuple[str, RelationSpec]]] = {r: {} for r in RELATIONS}
    for p in get_suite("core").prompts:
        out[p.relation][_object_key(p.spec)] = (p.prompt, p.spec)
    return out


def shape2_states(encoder: TextEncoder, prompts: Sequence[str]) -> torch.Tensor:
    """The mean encoder state over each prompt's shape2 tokens, (P, D)."""
    states, _ = encoder.encode(list(prompts))  # (P, L, D)
    return torch.stack(
        [states[i, role_positions(encoder, p, "shape2")].mean(0) for i, p in enumerate(prompts)]
    )


def effect_vector(encoder: TextEncoder, source: str, target: str) -> torch.Tensor:
    """v(source → target) at the shape2 token, averaged over the `core` object pairs, (D,)."""
    check_contextual(encoder)
    source, target = check_relation(source), check_relation(target)
    table = core_by_relation()
    common = sorted(set(table[source]) & set(table[target]), key=repr)
    if not common:
        raise ValueError(f"the core suite has no object pair with both {source!r} and {target!r}")
    a = shape2_states(encoder, [table[source][k][0] for k in common])  # (P, D)
    b = shape2_states(encoder, [table[target][k][0] for k in common])  # (P, D)
    return (b - a).mean(0)


def effect_vectors(
    encoder: TextEncoder, relations: Sequence[str] = RELATIONS
) -> dict[str, dict[str, Any]]:
    """For every ordered pair "r->r'" of relations: |v(r → r')| and that norm relative to the
    mean norm of the shape2 states, a summary of how much relation the shape2 token carries."""
    check_contextual(encoder)
    table = core_by_relation()
    keys = sorted(set.intersection(*(set(table[r]) for r in relations)), key=repr)
    s = {
        r: shape2_states(encoder, [table[r][k][0] for k in keys]) for r in relations
    }  # (P, D) each
    base = float(torch.stack(list(s.values())).norm(dim=-1).mean())
    out: dict[str, dict[str, Any]] = {}
    for r in relations:
        for t in relations:
            if r != t:
                v = (s[t] - s[r]).mean(0)
                out[f"{r}->{t}"] = {
                    "norm": round(float(v.norm()), 6),
                    "relative_norm": round(float(v.norm()) / base, 6),
                }
    return out


def edit_states(
    encoder: TextEncoder,
    prompts: Sequence[str],
    target: str,
    *,
    mode: str = "add",
    alpha: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(original states, edited states, mask) for `prompts` (all `core`-grammar prompts):
    only the shape2 token states differ; see the module docstring for `add` and `swap`."""
    check_contextual(encoder)
    if mode not in MODES:
        raise ValueError(f"unknown arithmetic mode {mode!r}; choose from {', '.join(MODES)}")
    target = check_relation(target)
    from relbench.suites import parse_prompt

    states, mask = encoder.encode(list(prompts))  # (B, L, D)
    edited = states.clone()
    table = core_by_relation()
    vectors: dict[str, torch.Tensor] = {}
    for i, prompt in enumerate(prompts):
        spec = parse_prompt(prompt)
        pos = role_positions(encoder, prompt, "shape2")
        if mode == "add":
            if spec.relation not in vectors:
                vectors[spec.relation] = effect_vector(encoder, spec.relation, target)
            edited[i, pos] += alpha * vectors[spec.relation]
        else:
            other = table[target].get(_object_key(spec))
            if other is None:
                raise ValueError(
                    f"prompt {prompt!r}: the core suite has no {target!r} prompt with "
                    "the same objects to swap the shape2 state from"
                )
            o_states, _ = encoder.encode([other[0]])  # (1, L, D)
            o_pos = role_positions(encoder, other[0], "shape2")
            same = len(o_pos) == len(pos)
            edited[i, pos] = o_states[0, o_pos] if same else o_states[0, o_pos].mean(0)
    return states, edited, mask


# ---------------------------------------------------------------- sampling from given states


class _GivenStates(TextEncoder):
    """A TextEncoder that answers keys "#i" with given states; the null prompt comes from the
    real encoder, so guidance runs exactly as for ordinary prompts."""

    def __init__(self, base: TextEncoder, states: torch.Tensor, mask: torch.Tensor) -> None:
        self.base, self.states, self.mask = base, states, mask
        self.name, self.dim, self.max_length = base.name, base.dim, base.max_length

    def encode(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        idx = [int(p[1:]) for p in prompts]
        return self.states[idx], self.mask[idx]

    def null(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.base.null()


def generate_from_states(
    pipe: Any, states: torch.Tensor, mask: torch.Tensor, seeds: Sequence[int], **sampling: Any
) -> list[np.ndarray]:
    """Images from text states (B, L, D) and mask (B, L) instead of prompts, through the
    DiTPipeline's own sampler (`sampling`: steps, guidance, batch_size, output_size)."""
    if not hasattr(pipe, "encoder") or not hasattr(pipe, "generate"):
        raise TypeError(
            f"generate_from_states needs a relbench DiTPipeline, got {type(pipe).__name__}"
        )
    if states.shape[0] != len(seeds) or mask.shape[0] != len(seeds):
        raise ValueError(
            f"{states.shape[0]} state rows and {mask.shape[0]} mask rows for {len(seeds)} seeds"
        )
    fixed = copy.copy(pipe)  # shares the weights; only the encoder differs
    fixed.encoder = _GivenStates(pipe.encoder, states, mask)
    return fixed.generate([f"#{i}" for i in range(len(seeds))], list(seeds), **sampling)


# ---------------------------------------------------------------- the experiment


def _layout(
    images: Sequence[np.ndarray], specs: Sequence[RelationSpec], detector: Any
) -> np.ndarray:
    """(N, 2) scorer dx, dy per image; NaN where the two objects were not both bound."""
    from relbench.scoring import score_image

    out = np.full((len(images), 2), np.nan)
    for i, (img, spec) in enumerate(zip(images, specs)):
        res = score_image(img, spec, detector)
        if res.dx is not None and res.dy is not None:
            out[i] = (res.dx, res.dy)
    return out


def _summary(layout: np.ndarray, target: str) -> dict[str, Any]:
    """Mean dx, dy over the measured images and the share whose strict relation is `target`."""
    from relbench.scene import strict_relation

    ok = layout[~np.isnan(layout).any(1)]  # (M, 2)
    if not len(ok):
        return {"dx": None, "dy": None, "target_found": None, "n": 0}
    found = np.mean([strict_relation(float(dx), float(dy)) == target for dx, dy in ok])
    return {
        "dx": round(float(ok[:, 0].mean()), 4),
        "dy": round(float(ok[:, 1].mean()), 4),
        "target_found": round(float(found), 4),
        "n": len(ok),
    }


def _bootstrap_ci(values: np.ndarray, seed: int = 0) -> list[float] | None:
    """95 % interval of the mean of `values` (rows = prompts), resampling rows."""
    if len(values) < 2:
        return None
    rng = np.random.default_rng(seed)
    boot = values[rng.integers(0, len(values), size=(N_BOOTSTRAP, len(values)))].mean(1)
    lo, hi = np.quantile(boot, [0.025, 0.975])
    return [round(float(lo), 4), round(float(hi), 4)]


def run_arithmetic(
    model: Any,
    *,
    source: str = "above",
    target: str = "below",
    mode: str = "add",
    alpha: float = 1.0,
    seeds: Sequence[int] = (0, 1, 2, 3),
    prompts: Sequence[str] | None = None,
    detector: str = "default",
) -> dict[str, Any]:
    """Edit the shape2 states of `source`-relation prompts toward `target`, generate with paired
    seeds, and measure the layout before and after (see the module docstring).

    `model` is a loaded bundled / `dit:` model (its pipeline, steps and guidance are used);
    `prompts` default to the core prompts of `source`.
    """
    from relbench.scoring import load_detector
    from relbench.suites import parse_prompt

    pipe = getattr(model, "pipe", None)
    if pipe is None or not hasattr(pipe, "encoder"):
        raise ValueError(
            f"model {getattr(model, 'name', model)!r} is not a bundled/dit: DiT; embedding "
            "arithmetic runs through relbench's DiTPipeline"
        )
    check_contextual(pipe.encoder)
    source, target = check_relation(source), check_relation(target)
    if source == target:
        raise ValueError(f"source and target are both {source!r}: nothing to move")
    if prompts is None:
        prompts = [p for p, _ in core_by_relation()[source].values()]
    prompts = list(prompts)
    if not prompts or not seeds:
        raise ValueError("need at least one prompt and one seed")
    for p in prompts:
        if parse_prompt(p).relation != source:
            raise ValueError(f"prompt {p!r} is not a {source!r} prompt")
    states, edited, mask = edit_states(pipe.encoder, prompts, target, mode=mode, alpha=alpha)
    rows = [(i, s) for i in range(len(prompts)) for s in seeds]  # (prompt index, seed)
    idx = [i for i, _ in rows]
    seed_list = [s for _, s in rows]
    sampling = {
        "steps": model.steps,
        "guidance": model.guidance,
        "batch_size": getattr(model, "batch_size", 32),
        "output_size": getattr(model, "output_size", 128),
    }
    before_imgs = generate_from_states(pipe, states[idx], mask[idx], seed_list, **sampling)
    after_imgs = generate_from_states(pipe, edited[idx], mask[idx], seed_list, **sampling)
    det = load_detector(detector)
    specs = [parse_prompt(prompts[i]) for i in idx]
    before, after = _layout(before_imgs, specs, det), _layout(after_imgs, specs, det)  # (N, 2)
    both = ~np.isnan(before).any(1) & ~np.isnan(after).any(1)  # (N,)
    shift = after - before  # (N, 2)
    prompt_of = np.array(idx)
    per_prompt = np.array(
        [
            shift[(prompt_of == j) & both].mean(0)
            for j in range(len(prompts))
            if ((prompt_of == j) & both).any()
        ]
    ).reshape(-1, 2)  # (P', 2)
    want = np.subtract(DIRECTION[target], DIRECTION[source]).astype(float)
    want /= np.linalg.norm(want)
    mean_shift = shift[both].mean(0) if both.any() else None
    return {
        "model": model.describe() if hasattr(model, "describe") else str(model),
        "encoder": pipe.encoder.name,
        "source": source,
        "target": target,
        "mode": mode,
        "alpha": alpha if mode == "add" else None,
        "role": "shape2",
        "seeds": list(seeds),
        "prompts": prompts,
        "n_images": len(rows),
        "n_paired": int(both.sum()),
        "before": _summary(before, target),
        "after": _summary(after, target),
        "paired_shift": {
            "dx": None if mean_shift is None else round(float(mean_shift[0]), 4),
            "dy": None if mean_shift is None else round(float(mean_shift[1]), 4),
            "dx_ci95": _bootstrap_ci(per_prompt[:, 0]),
            "dy_ci95": _bootstrap_ci(per_prompt[:, 1]),
            "toward_target": None if mean_shift is None else round(float(mean_shift @ want), 4),
            "n_prompts": len(per_prompt),
        },
        "effect": effect_vectors(pipe.encoder, [source, target])[f"{source}->{target}"],
        "expected_direction": [round(float(x), 4) for x in want],
        "sampling": {k: sampling[k] for k in ("steps", "guidance")},
        "detector": detector,
    }


def write_report(result: Mapping[str, Any], path: Any) -> None:
    """Write an arithmetic result as JSON (atomically)."""
    from relbench.runlog import write_json_atomic

    write_json_atomic(path, result)


__all__ = [
    "MODES",
    "NoContextualFusion",
    "check_contextual",
    "core_by_relation",
    "edit_states",
    "effect_vector",
    "effect_vectors",
    "generate_from_states",
    "run_arithmetic",
    "shape2_states",
    "write_report",
]
