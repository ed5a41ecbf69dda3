"""Run statistics: bootstrap confidence intervals over prompts, paired perturbation drops and
seed consistency (VISOR_k). Pure numpy; rows are `samples.jsonl` dicts."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterable

import numpy as np

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
