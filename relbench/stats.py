"""Run statistics: bootstrap confidence intervals over prompts, paired perturbation drops, seed
consistency (VISOR_k), accuracy breakdowns (relation, shape pair, colour order) and mean layout
offsets. Pure numpy; rows are `samples.jsonl` dicts."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Callable, Iterable

import numpy as np

from relbench.scene import RELATIONS

N_BOOTSTRAP = 2000
CI_LEVEL = 0.95


def _per_prompt(rows: Iterable[dict[str, Any]], key: str = "source_id") -> dict[str, list[bool]]:
    """Scored `correct` values grouped by prompt (unscorable rows dropped)."""
    out: dict[str, list[bool]] = defaultdict(list)
    for r in rows:
        if r.get("correct") is not None:
            out[r[key]].append(bool(r["correct"]))
    return out


def _interval(samples: np.ndarray) -> list[float]:
    lo, hi = np.quantile(samples, [(1 - CI_LEVEL) / 2, (1 + CI_LEVEL) / 2])
    return [float(lo), float(hi)]


def accuracy_ci(rows: Iterable[dict[str, Any]], seed: int = 0) -> dict[str, Any]:
    """Mean accuracy and its 95 % bootstrap interval, resampling prompts (seeds stay together,
    since images of one prompt are not independent)."""
    per_prompt = _per_prompt(rows)
    groups = [per_prompt[k] for k in sorted(per_prompt)]  # order-free: a resumed run agrees
    if not groups:
        return {"mean": None, "ci95": None, "n_prompts": 0}
    sums = np.array([sum(g) for g in groups], dtype=float)
    counts = np.array([len(g) for g in groups], dtype=float)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(groups), size=(N_BOOTSTRAP, len(groups)))
    boot = sums[idx].sum(1) / counts[idx].sum(1)
    return {"mean": float(sums.sum() / counts.sum()), "ci95": _interval(boot),
            "n_prompts": len(groups)}


def paired_drop(original: Iterable[dict], perturbed: Iterable[dict], seed: int = 0) -> dict:
    """Accuracy on originals minus accuracy on their perturbed versions, over the prompts present
    in both (paired by `source_id`), with a 95 % bootstrap interval over those prompts."""
    a, b = _per_prompt(original), _per_prompt(perturbed)
    common = sorted(set(a) & set(b))
    if not common:
        return {"drop": None, "ci95": None, "n_prompts": 0}
    diffs = np.array([np.mean(a[k]) - np.mean(b[k]) for k in common])
    rng = np.random.default_rng(seed)
    boot = diffs[rng.integers(0, len(diffs), size=(N_BOOTSTRAP, len(diffs)))].mean(1)
    return {"drop": float(diffs.mean()), "ci95": _interval(boot), "n_prompts": len(common)}


def seed_consistency(rows: Iterable[dict[str, Any]]) -> dict[str, float]:
    """VISOR_k: the share of prompts correct on at least k of their n images, k = 1..n."""
    groups = list(_per_prompt(rows, key="prompt_id").values())
    if not groups:
        return {}
    n = max(len(g) for g in groups)
    return {f"k{k}": float(np.mean([sum(g) >= k for g in groups])) for k in range(1, n + 1)}


ANY = "any"  # the key part for an object the prompt leaves unnamed ("red is above blue")


def _spec(row: dict[str, Any]) -> dict[str, Any]:
    return row.get("spec") or {}


def row_relation(row: dict[str, Any]) -> str | None:
    """The target relation of a row (its `relation`, else its spec's)."""
    return row.get("relation") or _spec(row).get("relation")


def shape_pair(row: dict[str, Any]) -> str | None:
    """"subject shape/reference shape", e.g. "square/circle"; None without a spec."""
    return _pair(row, "shape")


def color_order(row: dict[str, Any]) -> str | None:
    """"subject colour/reference colour", e.g. "red/blue"; None without a spec."""
    return _pair(row, "color")


def _pair(row: dict[str, Any], attr: str) -> str | None:
    spec = _spec(row)
    if not spec:
        return None
    subj, ref = spec.get("subject") or {}, spec.get("reference") or {}
    return f"{subj.get(attr) or ANY}/{ref.get(attr) or ANY}"


BREAKDOWNS: dict[str, Callable[[dict[str, Any]], str | None]] = {
    "relation": row_relation,
    "shape_pair": shape_pair,
    "color_order": color_order,
}


def breakdown(
    rows: Iterable[dict[str, Any]], key: Callable[[dict[str, Any]], str | None]
) -> dict[str, dict[str, Any]]:
    """Accuracy per group of rows (`key(row)`; None keys dropped): mean, 95 % bootstrap interval
    over the group's prompts, scored-image and prompt counts. Relations come in RELATIONS order,
    other keys sorted."""
    out = {}
    for k, group in _group(rows, key).items():
        ci = accuracy_ci(group)
        n_scored = sum(r.get("correct") is not None for r in group)
        out[k] = {"accuracy": ci["mean"], "ci95": ci["ci95"], "n_scored": n_scored,
                  "n_prompts": ci["n_prompts"]}
    return out


def _group(
    rows: Iterable[dict[str, Any]], key: Callable[[dict[str, Any]], str | None]
) -> dict[str, list[dict[str, Any]]]:
    """Rows by `key(row)` (None keys dropped): relations in RELATIONS order, other keys sorted."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        k = key(r)
        if k is not None:
            groups[k].append(r)
    order = {r: i for i, r in enumerate(RELATIONS)}
    return {k: groups[k] for k in sorted(groups, key=lambda k: (order.get(k, len(order)), k))}


def breakdowns(rows: Iterable[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """`breakdown` by relation, by (subject, reference) shape pair and by colour order."""
    rows = list(rows)
    return {name: breakdown(rows, key) for name, key in BREAKDOWNS.items()}


def layout_offsets(rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Mean and standard deviation of the found layout offsets (dx, dy: subject minus reference,
    fractions of the image, y down) over rows where both objects were bound, overall and per
    target relation. A model that draws "above" as a diagonal shows it as a mean dx far from 0."""
    rows = [r for r in rows if r.get("dx") is not None and r.get("dy") is not None]
    return {
        "overall": _offsets(rows),
        "per_relation": {k: _offsets(group) for k, group in _group(rows, row_relation).items()},
    }


def _offsets(rows: list[dict[str, Any]]) -> dict[str, Any]:
    if not rows:
        return {"dx": None, "dy": None, "dx_sd": None, "dy_sd": None, "n": 0}
    d = np.array([[r["dx"], r["dy"]] for r in rows], dtype=float)  # (N, 2)
    mean, sd = d.mean(0), d.std(0)
    return {"dx": round(float(mean[0]), 4), "dy": round(float(mean[1]), 4),
            "dx_sd": round(float(sd[0]), 4), "dy_sd": round(float(sd[1]), 4), "n": len(rows)}
