"""Leaderboard figures (matplotlib, no pyplot): accuracy per perturbation, per relation, and
sample grids.

Figures are drawn for a page about 1,200 px wide: one panel per row, at most `PAGE_WIDTH_IN`
inches wide at `DPI`, so their text stays legible when a browser shows them at page width.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from relbench.leaderboard import model_label, perturbation_names
from relbench.runner import RunDir
from relbench.scene import RELATIONS

DPI = 100
PAGE_WIDTH_IN = 11.5  # 1,150 px at DPI: shown unscaled beside the page's tables
PANEL_HEIGHT_IN = 3.0


def _model_colors(runs: Sequence[RunDir]) -> dict[str, str]:
    from matplotlib import rcParams

    cycle = rcParams["axes.prop_cycle"].by_key()["color"]
    models = sorted({model_label(r) for r in runs})
    return {m: cycle[i % len(cycle)] for i, m in enumerate(models)}


def _bars(ax, categories: list[str], series: dict[str, list[tuple[float | None, Any]]],
          colors: dict[str, str]) -> None:
    """Grouped bars: one group per category, one bar per series (value, ci95 or None)."""
    import numpy as np

    n = max(len(series), 1)
    width = 0.8 / n
    x = np.arange(len(categories))
    for i, (name, vals) in enumerate(series.items()):
        ys = [np.nan if v is None else v for v, _ in vals]
        err = np.array([[0.0, 0.0] if ci is None or v is None else [v - ci[0], ci[1] - v]
                        for v, ci in vals]).T.clip(min=0)  # (2, C)
        ax.bar(x - 0.4 + width * (i + 0.5), ys, width, yerr=err, label=name,
               color=colors.get(name), capsize=2, error_kw={"lw": 0.8})
    ax.set_xticks(x, categories, rotation=30 if len(categories) > 8 else 0,
                  ha="right" if len(categories) > 8 else "center")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accuracy")
    ax.grid(axis="y", alpha=0.3)


def _figure(n_panels: int):
    from matplotlib.figure import Figure

    return Figure(figsize=(PAGE_WIDTH_IN, PANEL_HEIGHT_IN * max(n_panels, 1) + 0.4),
                  layout="constrained")


def _legend(fig, ax) -> None:
    """One legend for the figure, above the panels, in one row."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside upper center", ncols=min(len(labels), 6),
                   fontsize=9, frameon=False)


def _save(fig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)


def plot_accuracy_per_perturbation(runs: Sequence[RunDir], path: Path) -> None:
    """Accuracy on the original prompts and on each perturbation, per model, one panel per suite
    that has perturbation runs (a panel of overall accuracy per suite when none has)."""
    colors = _model_colors(runs)
    perts = perturbation_names(runs)
    suites = suite_order(r.info["suite"] for r in runs if r.info.get("perturbations"))
    if not suites:
        fig = _figure(1)
        ax = fig.add_subplot()
        all_suites = suite_order(r.info["suite"] for r in runs)
        series = {m: [_overall(_find(runs, m, s)) for s in all_suites] for m in sorted(colors)}
        _bars(ax, all_suites, series, colors)
        ax.set_title("accuracy per suite (no perturbation runs)")
        _legend(fig, ax)
        _save(fig, path)
        return
    fig = _figure(len(suites))
    for k, suite in enumerate(suites):
        ax = fig.add_subplot(len(suites), 1, k + 1)
        series = {}
        for m in sorted(colors):
            run = _find(runs, m, suite)
            if run is None:
                continue
            pm = run.summary["metrics"].get("per_perturbation", {})  # type: ignore[index]
            series[m] = [_overall(run)] + [
                (pm[p].get("overall"), pm[p].get("overall_ci95")) if p in pm else (None, None)
                for p in perts]
        _bars(ax, ["original", *perts], series, colors)
        ax.set_title(f"accuracy per perturbation: {suite}")
    _legend(fig, ax)
    _save(fig, path)


def plot_accuracy_per_relation(runs: Sequence[RunDir], path: Path) -> None:
    """Accuracy per target relation (original prompts), per model, one panel per suite."""
    colors = _model_colors(runs)
    suites = suite_order(r.info["suite"] for r in runs)
    fig = _figure(len(suites))
    ax = None
    for k, suite in enumerate(suites):
        ax = fig.add_subplot(len(suites), 1, k + 1)
        series = {}
        rels: list[str] = []
        per_run = {}
        for m in sorted(colors):
            run = _find(runs, m, suite)
            if run is None:
                continue
            per_run[m] = _relations(run)
            rels += [x for x in per_run[m] if x not in rels]
        rels.sort(key=lambda x: RELATIONS.index(x) if x in RELATIONS else len(RELATIONS))
        for m, per in per_run.items():
            series[m] = [per.get(x, (None, None)) for x in rels]
        _bars(ax, rels, series, colors)
        ax.set_title(f"accuracy per relation: {suite}")
    if ax is not None:
        _legend(fig, ax)
    _save(fig, path)


def suite_order(names: Iterable[str]) -> list[str]:
    """Suites in registry order (core, profile, the OOD suites), others after, sorted."""
    from relbench.suites import list_suites

    order = {s: i for i, s in enumerate(list_suites())}
    return sorted(set(names), key=lambda s: (order.get(s, len(order)), s))


def _find(runs: Sequence[RunDir], model: str, suite: str) -> RunDir | None:
    return next((r for r in runs if model_label(r) == model and r.info["suite"] == suite), None)


def _overall(run: RunDir | None) -> tuple[float | None, Any]:
    if run is None:
        return (None, None)
    m = run.summary["metrics"]  # type: ignore[index]
    return (m.get("overall"), m.get("overall_ci95"))


def _relations(run: RunDir) -> dict[str, tuple[float | None, Any]]:
    m = run.summary["metrics"]  # type: ignore[index]
    rel = (m.get("breakdowns") or {}).get("relation")
    if rel is not None:
        return {k: (v["accuracy"], v["ci95"]) for k, v in rel.items()}
    return {k: (v, None) for k, v in m.get("per_relation", {}).items()}


def sample_grid(run: RunDir, path: Path, n: int = 16, cols: int = 4) -> bool:
    """A grid of up to `n` saved images (first seed, original prompts, evenly spaced), titled
    with the prompt and the verdict. False (nothing written) when the run saved no images."""
    from matplotlib.figure import Figure

    from relbench.scoring import ImageReadError, read_image

    from relbench.safety import UnsafePathError, path_inside

    def inside(file: str) -> Path | None:  # a run's row never makes the board read outside it
        try:
            return path_inside(run.path, file)
        except UnsafePathError:
            return None

    rows = [r for r in run.rows() if isinstance(r.get("file"), str) and inside(r["file"])
            and isinstance(r.get("seed"), int) and not r.get("perturbation")]
    if not rows:
        return False
    first_seed = min(r["seed"] for r in rows)
    rows = [r for r in rows if r["seed"] == first_seed]
    step = max(1, len(rows) // n)
    chosen = [r for r in rows[::step][:n] if inside(r["file"]).is_file()]
    if not chosen:
        return False
    n_rows = (len(chosen) + cols - 1) // cols
    fig = Figure(figsize=(2.4 * cols, 2.7 * n_rows), layout="constrained")
    for i, r in enumerate(chosen):
        ax = fig.add_subplot(n_rows, cols, i + 1)
        ax.set_axis_off()
        try:
            ax.imshow(read_image(inside(r["file"]), name=r["file"]))
        except ImageReadError:
            continue
        verdict = ("correct" if r.get("correct") else
                   "unscorable" if r.get("correct") is None else
                   f"wrong: found {r.get('found_relation') or 'no pair'}")
        ax.set_title(textwrap.fill(str(r.get("prompt")), 26) + f"\n{verdict}", fontsize=7,
                     color="green" if r.get("correct") else "firebrick")
    _save(fig, path)
    return True


__all__ = [
    "plot_accuracy_per_perturbation",
    "plot_accuracy_per_relation",
    "sample_grid",
    "suite_order",
]
