"""Aggregate score rows (dicts with the `ScoreResult.to_dict` fields) into accuracies."""

from __future__ import annotations

from typing import Any, Iterable

from relbench.scene import RELATIONS

METRIC_FIELDS = (
    "relation_strict", "relation_loose", "shape", "color", "exist_binding", "unique_binding",
)


def summarize(rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Counts and mean accuracies over scored rows (rows with `correct` null are unscorable).

    `overall` is the headline accuracy (mean `correct`); `per_relation` groups by the spec's
    relation (from `relation` or `spec.relation` in the row). Means are None with no scored row.
    """
    rows = list(rows)
    scored = [r for r in rows if r.get("correct") is not None]
    out: dict[str, Any] = {
        "n": len(rows),
        "n_scored": len(scored),
        "n_unscorable": len(rows) - len(scored),
        "overall": _mean(r["correct"] for r in scored),
    }
    for f in METRIC_FIELDS:
        out[f] = _mean(r.get(f) for r in scored)
    by_rel: dict[str, list[bool]] = {}
    for r in scored:
        rel = r.get("relation") or (r.get("spec") or {}).get("relation")
        if rel is not None:
            by_rel.setdefault(rel, []).append(bool(r["correct"]))
    order = {r: i for i, r in enumerate(RELATIONS)}
    out["per_relation"] = {
        k: _mean(v) for k, v in sorted(by_rel.items(), key=lambda kv: order.get(kv[0], 99))
    }
    return out


def _mean(values: Iterable[Any]) -> float | None:
    vals = [bool(v) for v in values]
    return sum(vals) / len(vals) if vals else None
