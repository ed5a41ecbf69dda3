"""Ablations with paired seeds: the same prompts and seeds generated with and without an
intervention on chosen cross-attention heads, scored, and compared prompt by prompt.

Targets: `L{l}H{h}` (one head), `L{l}` (every head of a layer), `all` (every head), or several
joined by "+" (`L2H1+L3H0`, ablated together). Kinds: `zero_head` (the head's output is zeroed)
and `block_tokens` (the head cannot attend to text tokens of the given roles, e.g. `relation`).
Both act on the conditional branch only, optionally within a window of sampling steps
[start, end). A random-head control ablates k heads drawn at random, several draws, the same way; with
as many draws as there are k-head sets it ablates every set once (exhaustive, exact).

`strict` is the accuracy under `metric` over every (prompt, seed): by default relbench's headline
accuracy (`correct`: strict relation rule, shapes and colours right, unique binding); with
`metric="colour_layout"` the layout-only check of `relbench.scoring.colour_layout_correct`
(the strict rule on the centroids of the two colours, no shapes needed), for a model that
places its objects but does not yet draw shapes the scorer can name; `delta` = ablated − baseline accuracy (negative:
the ablation costs accuracy) with a 95 % bootstrap interval over prompts from
`relbench.stats.paired_drop`. The baseline runs under the same hooks with no intervention, so
an empty ablation gives delta 0 exactly.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import numpy as np

from relbench.circuits.attention import HookedModel, Intervention, check_interventions, open_model
from relbench.circuits.roles import check_roles
from relbench.runlog import write_json_atomic
from relbench.circuits.synopsis import (
    DEFAULT_SEEDS,
    batches,
    load_suite,
    progress_bar,
    run_info,
    select_prompts,
)

ABLATION_JSON = "ablation.json"
Kind = Literal["zero_head", "block_tokens", "block_text"]
METRICS = {"correct": "strict accuracy", "colour_layout": "colour-layout accuracy"}
"""Row field an ablation is judged by → how cards and reports name it."""
_HEAD = re.compile(r"^([LS]\d+)(?:H(\d+))?$")


@dataclass(frozen=True)
class Ablation:
    """Heads (layer, head) to ablate together, how, and in which steps."""

    target: str
    heads: tuple[tuple[int, int], ...]
    kind: Kind = "zero_head"
    roles: tuple[str, ...] = ()
    step_window: tuple[int, int] | None = None

    def interventions(self) -> list[Intervention]:
        """One `Intervention` per layer touched."""
        by_layer: dict[int, list[int]] = {}
        for layer, head in self.heads:
            by_layer.setdefault(layer, []).append(head)
        return [Intervention(layer, tuple(sorted(hs)), self.kind, self.roles, self.step_window)
                for layer, hs in sorted(by_layer.items())]


def parse_target(
    text: str, layers: int, heads: int, names: Sequence[str] | None = None
) -> tuple[tuple[int, int], ...]:
    """`L2H1`, `L2`, `all` or a "+"-joined list of them → (layer, head) pairs, range-checked.
    With the model's layer `names` (Flux: L0.., S0..) a name picks its layer index."""
    pairs: list[tuple[int, int]] = []
    for part in text.strip().split("+"):
        part = part.strip()
        if part == "all":
            pairs += [(layer, h) for layer in range(layers) for h in range(heads)]
            continue
        m = _HEAD.match(part)
        if m is None:
            raise ValueError(
                f"bad head target {part!r}: use L<layer>H<head> (L2H1), L<layer> (L2) or all"
            )
        label = m.group(1)
        if names is not None and label in names:
            layer = list(names).index(label)
        elif label.startswith("S") or any(n.startswith("S") for n in names or ()):
            raise ValueError(f"no layer {label} in this model (its layers: {_span(names)})")
        else:
            layer = int(label[1:])
        chosen = range(heads) if m.group(2) is None else [int(m.group(2))]
        pairs += [(layer, h) for h in chosen]
    for layer, head in pairs:  # the same range errors as the hooks give
        check_interventions([Intervention(layer, (head,), "zero_head")], layers, heads)
    return tuple(dict.fromkeys(pairs))


def _span(names: Sequence[str] | None) -> str:
    """"L0..L18, S0..S37" for a Flux model's layer names; "L0..L5" for PixArt."""
    groups: dict[str, list[str]] = {}
    for n in names or ["L0"]:
        groups.setdefault(n[0], []).append(n)
    return ", ".join(f"{g[0]}..{g[-1]}" if len(g) > 1 else g[0] for g in groups.values())


def random_heads(
    k: int, layers: int, heads: int, rng: np.random.Generator
) -> tuple[tuple[int, int], ...]:
    """`k` distinct heads drawn uniformly from the model's layers × heads."""
    total = layers * heads
    if not 1 <= k <= total:
        raise ValueError(f"random control k={k} must be between 1 and the model's {total} heads")
    idx = sorted(rng.choice(total, size=k, replace=False).tolist())
    return tuple((i // heads, i % heads) for i in idx)


def control_head_sets(
    k: int, layers: int, heads: int, draws: int, seed: int = 0
) -> list[tuple[tuple[int, int], ...]]:
    """The head sets of the random-head control: `draws` sets of `k` heads drawn with
    `np.random.default_rng(seed)`, or, when `draws` reaches the number of distinct k-head sets
    (18 single heads in a micro model), every set once in layer/head order. The exhaustive control
    is exact: a head's Δ is then ranked against every other head's, not against a sample."""
    total = layers * heads
    if not 1 <= k <= total:
        raise ValueError(f"random control k={k} must be between 1 and the model's {total} heads")
    if draws < 1:
        raise ValueError(f"draws must be positive, got {draws}")
    if draws >= math.comb(total, k):
        return [tuple((i // heads, i % heads) for i in combo) for combo in itertools.combinations(range(total), k)]
    rng = np.random.default_rng(seed)
    return [random_heads(k, layers, heads, rng) for _ in range(draws)]


def control_rows(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The random-control entries of an ablation.json (those with a `draw`) that have a Δ."""
    return [a for a in result.get("ablations", []) if a.get("draw") is not None and a.get("delta") is not None]


def ablate(
    model: Any,
    targets: Sequence[str | Ablation] = (),
    *,
    kind: Kind = "zero_head",
    roles: Sequence[str] = (),
    step_windows: Sequence[tuple[int, int] | None] = (None,),
    random_control: int = 0,
    draws: int = 5,
    suite: str | Any = "core",
    n_prompts: int | None = None,
    seeds: Sequence[int] = DEFAULT_SEEDS,
    steps: int = 14,
    guidance: float | None = None,
    detector: str = "default",
    batch_size: int = 16,
    seed: int = 0,
    out: str | Path | None = None,
    progress: bool = False,
    metric: str = "correct",
) -> dict[str, Any]:
    """Run the baseline, every target × step window, and the random control (`random_control`
    heads, `draws` draws with `np.random.default_rng(seed)`); return ablation.json as a dict and
    write it to `out/ablation.json` when `out` is given. Bad targets, heads out of range and
    unparseable prompts fail before anything is generated."""
    from relbench.scoring import load_detector

    if metric not in METRICS:
        from relbench.scene import did_you_mean

        raise ValueError(f"unknown metric {metric!r}{did_you_mean(metric, METRICS)} "
                         f"(choose from {', '.join(METRICS)})")
    hm = model if isinstance(model, HookedModel) else open_model(model, steps=steps,
                                                                 guidance=guidance)
    layers, heads = hm.shape
    roles = tuple(roles)
    check_roles(roles)
    for w in step_windows:
        if w is not None and not 0 <= w[0] < w[1] <= hm.steps:
            raise ValueError(
                f"step window {list(w)} must satisfy 0 <= start < end <= steps ({hm.steps})"
            )
    ablations: list[Ablation] = []
    for t in targets:
        if isinstance(t, Ablation):
            check_interventions(t.interventions(), layers, heads)
            ablations.append(t)
            continue
        pairs = parse_target(t, layers, heads, hm.layer_names)
        ablations += [Ablation(t, pairs, kind, roles, w) for w in step_windows]
    for a in ablations:
        a.interventions()  # validates kind / roles / window
    controls: list[Ablation] = []
    if random_control:
        name = f"random:{random_control}"
        sets = control_head_sets(random_control, layers, heads, draws, seed)
        controls = [Ablation(name, pairs, kind, roles) for pairs in sets]
        controls[0].interventions()

    the_suite = load_suite(suite)
    prompts = select_prompts(the_suite, n_prompts)
    for p in prompts:
        hm.roles(p.prompt)  # unparseable prompts fail here, before any generation
    det = load_detector(detector)
    total = (1 + len(ablations) + len(controls)) * len(prompts) * len(seeds)
    bar = progress_bar(total, progress, "ablate")
    run = _Runner(hm, the_suite.name, prompts, list(seeds), det, batch_size, bar,
                  layout=metric == "colour_layout")

    from relbench.stats import accuracy_ci

    judged = lambda rows: _judged_by(rows, metric)  # noqa: E731
    baseline = judged(run([]))
    base_ci = accuracy_ci(baseline)
    names = hm.layer_names
    rows_out = [_entry(a, judged(run(a.interventions())), baseline, names=names) for a in ablations]
    control_rows = [_entry(a, judged(run(a.interventions())), baseline, draw=i, names=names)
                    for i, a in enumerate(controls)]
    bar.close()
    deltas = [r["delta"] for r in control_rows if r["delta"] is not None]
    result = {
        **run_info(hm, the_suite, prompts, seeds),
        "metric": metric,
        "detector": det.describe(),
        "baseline": {"strict": base_ci["mean"], "ci95": base_ci["ci95"]},
        "ablations": rows_out + control_rows,
        "random_control": {
            "k": random_control,
            "draws": len(controls),
            "exhaustive": bool(controls) and len(controls) == math.comb(layers * heads, random_control),
            "deltas": deltas,
            "mean": float(np.mean(deltas)) if deltas else None,
        },
    }
    if out is not None:
        write_json_atomic(Path(out) / ABLATION_JSON, result)
    return result


def _entry(
    a: Ablation, rows: list[dict], baseline: list[dict], draw: int | None = None,
    names: Sequence[str] | None = None,
) -> dict[str, Any]:
    from relbench.stats import accuracy_ci, paired_drop

    drop = paired_drop(baseline, rows)
    entry: dict[str, Any] = {
        "target": a.target,
        "kind": a.kind,
        "roles": list(a.roles),
        "step_window": None if a.step_window is None else list(a.step_window),
        "strict": accuracy_ci(rows)["mean"],
        "delta": None if drop["drop"] is None else _neg(drop["drop"]),
        "delta_ci95": None if drop["ci95"] is None else [_neg(drop["ci95"][1]),
                                                         _neg(drop["ci95"][0])],
        "heads": [f"{names[layer] if names else f'L{layer}'}H{h}" for layer, h in a.heads],
    }
    if draw is not None:
        entry["draw"] = draw
    return entry


def _judged_by(rows: list[dict], metric: str) -> list[dict]:
    """Rows whose `correct` (what relbench.stats counts) is `metric`'s verdict (None: not judged)."""
    if metric == "correct":
        return rows
    return [r | {"correct": r[metric], "scorer_correct": r["correct"]} for r in rows]


def _neg(x: float) -> float:
    return 0.0 if x == 0 else -float(x)  # no "-0.0" in the JSON


class _Runner:
    """Generates and scores the prompts × seeds under given interventions."""

    def __init__(self, hm: HookedModel, suite_name: str, prompts: list, seeds: list[int], det: Any,
                 batch_size: int, bar: Any, layout: bool = False) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.hm, self.suite_name, self.det, self.bar = hm, suite_name, det, bar
        self.jobs = [(p, s) for p in prompts for s in seeds]
        self.batch_size = batch_size
        self.layout = layout
        """Also judge each image by `colour_layout_correct` (row field `colour_layout`)."""

    def __call__(self, interventions: list[Intervention]) -> list[dict]:
        from relbench.runner import _sample_row, _score
        from relbench.scoring import colour_layout_correct

        rows = []
        with self.hm.hooks(interventions=interventions) as hooks:
            for batch in batches(self.jobs, self.batch_size):
                images = self.hm.generate([p.prompt for p, _ in batch], [s for _, s in batch],
                                          hooks)
                for (p, s), image in zip(batch, images):
                    row = _sample_row(self.suite_name, p, s)
                    scored = _score(image, p.spec, self.det, None)
                    if self.layout:
                        scored["colour_layout"] = (None if scored.get("correct") is None
                                                   else colour_layout_correct(image, p.spec))
                    rows.append(row | scored)
                self.bar.update(len(batch))
        return rows


__all__ = [
    "ABLATION_JSON", "METRICS", "Ablation", "ablate", "control_head_sets", "control_rows", "parse_target", "random_heads", "write_json_atomic",
]
