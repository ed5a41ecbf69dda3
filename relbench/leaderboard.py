"""Run logs → leaderboard: Markdown, CSV and JSON tables and one static HTML page with plots.

One row per (model, suite). Runs are only set side by side when they were scored alike: one
scorer version and config hash for all of them, and for each suite (and each perturbation of
it) one version and prompt hash. Anything else is refused with the two runs and the field named.

A model with a circuit card (`relbench circuits card`) in `<out>/cards/<model>.json` or
`<out>/cards/<model>/card.json` gets its top relation head and ablation Δ shown beside it.
"""

from __future__ import annotations

import html
import json
import os
import re
import textwrap
from pathlib import Path
from typing import Any, Sequence

from relbench.runner import RunDir, RunDirError, open_run
from relbench.scene import RELATIONS

LEADERBOARD_SCHEMA_VERSION = "1"
MARKDOWN, CSV, JSON, HTML = "leaderboard.md", "leaderboard.csv", "leaderboard.json", "index.html"
PLOT_PERTURBATIONS = "accuracy_per_perturbation.png"
PLOT_RELATIONS = "accuracy_per_relation.png"
GRIDS = "grids"
CARDS = "cards"
SCORER_FIELDS = ("scorer", "scorer_version", "scorer_config_hash")
SUITE_FIELDS = ("suite_version", "prompt_hash")
BASE_COLUMNS = (
    "model", "suite", "overall", "ci95_low", "ci95_high", "relation_strict", "all_seeds_correct",
    "n_scored", "n_unscorable",
)


class IncompatibleRunsError(ValueError):
    """Two runs that cannot share a leaderboard (different scorer or suite versions)."""


def load_runs(run_dirs: Sequence[Path]) -> list[RunDir]:
    """Open finished runs and check they can share one leaderboard (see `check_compatible`)."""
    if not run_dirs:
        raise ValueError("no run directories given")
    runs = []
    for d in run_dirs:
        run = open_run(Path(d))
        if not run.complete:
            raise RunDirError(
                f"{run.path} is incomplete (no complete summary.json): finish it by re-running "
                "its relbench eval command (it resumes), or leave it out"
            )
        _check_summary_matches(run)
        runs.append(run)
    check_compatible(runs)
    return runs


def _check_summary_matches(run: RunDir) -> None:
    """run.json and summary.json["run"] must tell the same story (a hand-edited copy may not)."""
    recorded = run.summary.get("run", {}) if run.summary else {}
    for key in (*SCORER_FIELDS, "suite", *SUITE_FIELDS, "seeds"):
        if recorded.get(key) != run.info.get(key):
            raise RunDirError(
                f"{run.path}: run.json and summary.json disagree on {key} "
                f"({run.info.get(key)!r} vs {recorded.get(key)!r}); re-run the eval"
            )


def check_compatible(runs: Sequence[RunDir]) -> None:
    """Raise IncompatibleRunsError naming two runs and the field when they cannot be compared."""
    first = runs[0]
    for run in runs[1:]:
        for key in SCORER_FIELDS:
            _same(first, run, key, first.info.get(key), run.info.get(key),
                  "rescore one of them with the other's scorer (relbench rescore)")
    suites: dict[str, RunDir] = {}
    perts: dict[tuple[str, str], tuple[RunDir, dict]] = {}
    cells: dict[tuple[str, str], RunDir] = {}
    for run in runs:
        suite = run.info["suite"]
        other = suites.setdefault(suite, run)
        for key in SUITE_FIELDS:
            _same(other, run, f"{key} of suite {suite!r}", other.info.get(key), run.info.get(key),
                  "re-run the older one with this relbench's suite")
        for p in run.info.get("perturbations", []):
            o_run, o_p = perts.setdefault((suite, p["name"]), (run, p))
            for key in ("version", "prompt_hash"):
                _same(o_run, run, f"{key} of perturbation {p['name']!r} on {suite!r}",
                      o_p.get(key), p.get(key), "re-run the older one with this relbench")
        cell = (model_label(run), suite)
        if cell in cells:
            raise IncompatibleRunsError(
                f"runs {cells[cell].path} and {run.path} are both model {cell[0]!r} on suite "
                f"{suite!r}; a leaderboard has one row per (model, suite): keep one of them"
            )
        cells[cell] = run


def _same(a: RunDir, b: RunDir, field: str, va: Any, vb: Any, fix: str) -> None:
    if va != vb:
        raise IncompatibleRunsError(
            f"cannot mix runs {a.path} and {b.path}: {field} differs ({va!r} vs {vb!r}); {fix}"
        )


def model_label(run: RunDir) -> str:
    """The model's name as the leaderboard shows it."""
    return str(run.info["model"].get("name", "?"))


def perturbation_names(runs: Sequence[RunDir]) -> list[str]:
    """Perturbations present in any run, in registry order (unknown names last, sorted)."""
    from relbench.suites import list_perturbations

    found = {p["name"] for run in runs for p in run.info.get("perturbations", [])}
    known = [p for p in list_perturbations() if p in found]
    return known + sorted(found - set(known))


def leaderboard_rows(runs: Sequence[RunDir]) -> list[dict[str, Any]]:
    """One flat row per run: the base columns, then `accuracy:<p>` and `drop:<p>` for each
    perturbation. Sorted by suite (registry order), then overall accuracy, best first."""
    from relbench.suites import list_suites

    perts = perturbation_names(runs)
    rows = []
    for run in runs:
        m = run.summary["metrics"]  # type: ignore[index]
        ci = m.get("overall_ci95") or [None, None]
        k_all = f"k{len(run.info.get('seeds', []))}"
        row: dict[str, Any] = {
            "model": model_label(run), "suite": run.info["suite"], "overall": m.get("overall"),
            "ci95_low": ci[0], "ci95_high": ci[1], "relation_strict": m.get("relation_strict"),
            "all_seeds_correct": (m.get("seed_consistency") or {}).get(k_all),
            "n_scored": m.get("n_scored"), "n_unscorable": m.get("n_unscorable"),
        }
        per_pert = m.get("per_perturbation", {})
        for p in perts:
            pm = per_pert.get(p)
            row[f"accuracy:{p}"] = None if pm is None else pm.get("overall")
            row[f"drop:{p}"] = None if pm is None else (pm.get("paired_drop") or {}).get("drop")
        rows.append(row)
    order = {s: i for i, s in enumerate(list_suites())}
    rows.sort(key=lambda r: (order.get(r["suite"], len(order)), r["suite"],
                             -(r["overall"] if r["overall"] is not None else -1), r["model"]))
    return rows


def build_leaderboard(
    run_dirs: Sequence[Path], out_dir: Path, *, title: str = "relbench leaderboard",
    note: str | None = None, grid_size: int = 16, cards_dir: Path | None = None,
) -> dict[str, Any]:
    """Write leaderboard.md, leaderboard.csv, leaderboard.json, index.html and the PNG plots (and
    a sample grid per run that saved images) into `out_dir`; returns the JSON document. Circuit
    cards are read from `cards_dir` (default `out_dir/cards`)."""
    runs = load_runs(run_dirs)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = leaderboard_rows(runs)
    by_cell = {(model_label(r), r.info["suite"]): r for r in runs}
    perts = perturbation_names(runs)
    columns = list(BASE_COLUMNS) + [f"{k}:{p}" for p in perts for k in ("accuracy", "drop")]
    doc = {
        "schema_version": LEADERBOARD_SCHEMA_VERSION,
        "title": title,
        "scorer": {k: runs[0].info.get(k) for k in SCORER_FIELDS},
        "suites": _suites(runs),
        "columns": columns,
        "rows": [_json_row(r, by_cell[(r["model"], r["suite"])], out_dir) for r in rows],
    }
    cards = circuit_cards(sorted({r["model"] for r in rows}),
                          out_dir / CARDS if cards_dir is None else Path(cards_dir), out_dir)
    if cards:
        doc["circuit_cards"] = cards
    (out_dir / JSON).write_text(json.dumps(doc, indent=2) + "\n")
    _write_csv(rows, columns, out_dir / CSV)
    plots = [PLOT_PERTURBATIONS, PLOT_RELATIONS]
    plot_accuracy_per_perturbation(runs, out_dir / PLOT_PERTURBATIONS)
    plot_accuracy_per_relation(runs, out_dir / PLOT_RELATIONS)
    grids = {}
    for run in sorted(runs, key=lambda r: (r.info["suite"], model_label(r))):
        name = f"{GRIDS}/{_slug(model_label(run))}--{_slug(run.info['suite'])}.png"
        if sample_grid(run, out_dir / name, n=grid_size):
            grids[f"{model_label(run)} on {run.info['suite']}"] = name
    (out_dir / MARKDOWN).write_text(_markdown(doc, rows, perts, plots, note))
    (out_dir / HTML).write_text(_html(doc, rows, columns, plots, grids, note))
    doc["files"] = [MARKDOWN, CSV, JSON, HTML, *plots, *grids.values()]
    return doc


# ---------------------------------------------------------------- circuit cards


def circuit_cards(
    models: Sequence[str], cards_dir: Path, out_dir: Path
) -> dict[str, dict[str, Any]]:
    """model → a summary of its circuit card, for the models that have one in `cards_dir`
    (`<model>.json` or `<model>/card.json`); a card that cannot be read is a ValueError."""
    out = {}
    for model in models:
        for path in (cards_dir / f"{_slug(model)}.json", cards_dir / _slug(model) / "card.json"):
            if path.is_file():
                out[model] = _card_summary(path, out_dir)
                break
    return out


def _card_summary(path: Path, out_dir: Path) -> dict[str, Any]:
    try:
        card = json.loads(path.read_text())
        rel, obj = card["relation_head"], card["object_head"]
        abl = rel.get("ablation") or {}
        rc = card.get("random_control") or {}
        return {
            "relation_head": rel["name"], "relation_score": rel["score"],
            "delta": abl.get("delta"), "delta_ci95": abl.get("delta_ci95"),
            "control": [rc["min"], rc["max"]] if rc else None,
            "screen_score": (rel.get("screen") or {}).get("score"),
            "object_head": obj["name"], "object_score": obj["score"],
            "verdict": card["verdict"]["label"], "verdict_text": card["verdict"]["text"],
            "card": _relpath(_card_page(path), out_dir),
        }
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"circuit card {path} cannot be read ({type(e).__name__}: {e}); rebuild "
                         "it with relbench circuits card") from None


def _card_page(path: Path) -> Path:
    """The card's Markdown page beside its JSON when there is one, else the JSON."""
    md = path.with_name("card.md") if path.name == "card.json" else path.with_suffix(".md")
    return md if md.is_file() else path


def _card_cell(c: dict[str, Any] | None) -> str:
    """"L2H1 Δ −0.310 (causal)": the card beside a model in the accuracy table."""
    if c is None:
        return ""
    delta = "not ablated" if c["delta"] is None else f"Δ {_f(float(c['delta']), signed=True)}"
    return f"{c['relation_head']} {delta} ({c['verdict']})"


# ---------------------------------------------------------------- tables


def _suites(runs: Sequence[RunDir]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for run in runs:
        s = out.setdefault(run.info["suite"], {k: run.info.get(k) for k in SUITE_FIELDS})
        for p in run.info.get("perturbations", []):
            s.setdefault("perturbations", {})[p["name"]] = {
                "version": p.get("version"), "prompt_hash": p.get("prompt_hash")}
    return dict(sorted(out.items()))


def _json_row(row: dict[str, Any], run: RunDir, out_dir: Path) -> dict[str, Any]:
    m = run.summary["metrics"]  # type: ignore[index]
    rel = (m.get("breakdowns") or {}).get("relation")
    return {
        **row,
        "per_relation": rel if rel is not None else m.get("per_relation", {}),
        "run": {
            "path": _relpath(run.path, out_dir),
            "model": run.info.get("model"),
            "seeds": run.info.get("seeds"),
            "sampling": run.info.get("sampling"),
            "relbench_version": run.info.get("relbench_version"),
            "git_commit": run.info.get("git_commit"),
        },
    }


def _relpath(path: Path, start: Path) -> str:
    try:
        return os.path.relpath(path.resolve(), start.resolve())
    except ValueError:  # another drive (Windows)
        return str(path)


def _write_csv(rows: list[dict[str, Any]], columns: list[str], path: Path) -> None:
    import pandas as pd

    pd.DataFrame(rows, columns=columns).to_csv(path, index=False, float_format="%.4f")


def _f(x: Any, digits: int = 3, signed: bool = False) -> str:
    if x is None:
        return ""
    if isinstance(x, float):
        return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"
    return str(x)


def _acc_ci(row: dict[str, Any]) -> str:
    if row["overall"] is None:
        return "n/a"
    if row["ci95_low"] is None:
        return _f(row["overall"])
    return f"{_f(row['overall'])} [{_f(row['ci95_low'])}–{_f(row['ci95_high'])}]"


def _md_table(header: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in body]
    return "\n".join(lines) + "\n"


def _markdown(doc: dict, rows: list[dict], perts: list[str], plots: list[str],
              note: str | None) -> str:
    sc = doc["scorer"]
    out = [f"# {doc['title']}\n",
           "Generated by `relbench leaderboard build` from run logs; do not edit by hand."
           + (f" {note}" if note else "") + "\n",
           f"Scorer `{sc['scorer']}` v{sc['scorer_version']} (config sha256 "
           f"`{str(sc['scorer_config_hash'])[:16]}`). `overall` = strict relation ∧ shapes ∧ "
           "colours ∧ unique binding, with a 95 % bootstrap interval over prompts; "
           "`all seeds` = share of prompts correct on every seed (VISOR_n).\n",
           "## Accuracy\n"]
    cards = doc.get("circuit_cards", {})
    out.append(_md_table(
        ["suite", "model", "overall [95% CI]", "strict relation", "all seeds", "images",
         "unscorable"] + (["circuit card"] if cards else []),
        [[r["suite"], r["model"], _acc_ci(r), _f(r["relation_strict"]),
          _f(r["all_seeds_correct"]), _f(r["n_scored"]), _f(r["n_unscorable"])]
         + ([_card_cell(cards.get(r["model"]))] if cards else []) for r in rows]))
    if cards:
        out.append("\n## Circuit cards\n\nTop relation head (attention synopsis) and the change in "
                   "strict accuracy when it is ablated, against the range of a random-head "
                   "control; screening = its weight-space ramp score (mean |cos|).\n")
        out.append(_md_table(
            ["model", "relation head (score)", "Δ ablated [95% CI]", "random control",
             "screening", "object head (score)", "verdict", "card"],
            [[m, f"{c['relation_head']} ({_f(c['relation_score'])})",
              _delta_ci(c), "" if c["control"] is None else
              f"{_f(c['control'][0], signed=True)} … {_f(c['control'][1], signed=True)}",
              _f(c["screen_score"]), f"{c['object_head']} ({_f(c['object_score'])})",
              c["verdict_text"], f"[card]({c['card']})"] for m, c in cards.items()]))
    with_perts = [r for r in rows if any(r.get(f"accuracy:{p}") is not None for p in perts)]
    if with_perts:
        out.append("\n## Robustness\n\nAccuracy on perturbed prompts; in brackets the change "
                   "against the same prompts' originals with the same seeds (minus the paired "
                   "drop).\n")
        out.append(_md_table(
            ["suite", "model", "original", *perts],
            [[r["suite"], r["model"], _f(r["overall"])]
             + [_pert_cell(r, p) for p in perts] for r in with_perts]))
    rels = [rel for rel in RELATIONS if any(rel in r["per_relation"] for r in doc["rows"])]
    if rels:
        out.append("\n## Per relation\n")
        out.append(_md_table(
            ["suite", "model", *rels],
            [[r["suite"], r["model"]] + [_f(_rel_acc(r["per_relation"].get(x))) for x in rels]
             for r in doc["rows"]]))
    out.append("\n## Suites\n")
    out.append(_md_table(
        ["suite", "version", "prompt sha256", "perturbations"],
        [[name, s["suite_version"], f"`{s['prompt_hash'][:16]}`",
          ", ".join(f"{p} v{v['version']}" for p, v in s.get("perturbations", {}).items())]
         for name, s in doc["suites"].items()]))
    out.append("\n## Runs\n")
    out.append(_md_table(
        ["suite", "model", "model args", "checkpoint sha256", "seeds", "relbench", "commit", "run"],
        [[r["suite"], r["model"], f"`{json.dumps(r['run']['model'].get('args', {}))}`",
          _short(r["run"]["model"].get("checkpoint_hash")),
          ",".join(map(str, r["run"]["seeds"] or [])), str(r["run"]["relbench_version"]),
          _short(r["run"]["git_commit"], 10), r["run"]["path"]] for r in doc["rows"]]))
    out.append("\n## Plots\n\n" + "\n".join(f"![{p[:-4].replace('_', ' ')}]({p})" for p in plots)
               + "\n")
    return "\n".join(out)


def _delta_ci(c: dict[str, Any]) -> str:
    if c["delta"] is None:
        return "not ablated"
    ci = c["delta_ci95"]
    return _f(float(c["delta"]), signed=True) + (
        f" [{_f(float(ci[0]), signed=True)}, {_f(float(ci[1]), signed=True)}]" if ci else "")


def _pert_cell(row: dict[str, Any], p: str) -> str:
    acc, drop = row.get(f"accuracy:{p}"), row.get(f"drop:{p}")
    if acc is None:
        return ""
    return _f(acc) + ("" if drop is None else f" ({_f(0.0 - drop, signed=True)})")  # no -0.000


def _rel_acc(v: Any) -> float | None:
    return v.get("accuracy") if isinstance(v, dict) else v


def _short(x: Any, n: int = 16) -> str:
    return "" if x is None else f"`{str(x)[:n]}`"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "x"


# ---------------------------------------------------------------- HTML

_SORT_JS = """
const headers = document.querySelectorAll("table.sortable th");
headers.forEach((th, i) => th.addEventListener("click", () => {
  const body = th.closest("table").tBodies[0], up = th.dataset.dir !== "asc";
  th.dataset.dir = up ? "asc" : "desc";
  const key = td => { const v = td.dataset.v ?? td.textContent, n = parseFloat(v);
    return v === "" ? -Infinity : (isNaN(n) ? v : n); };
  const cmp = (x, y) => typeof x === "number" && typeof y === "number" ? x - y
    : String(x).localeCompare(String(y));
  [...body.rows].sort((a, b) => (up ? 1 : -1) * cmp(key(a.cells[i]), key(b.cells[i])))
    .forEach(r => body.appendChild(r));
}));
"""

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: right; white-space: nowrap; }
th { background: #eee; cursor: pointer; position: sticky; top: 0; }
td:nth-child(-n+2), th:nth-child(-n+2) { text-align: left; }
.wrap { overflow-x: auto; } img { max-width: 100%; } code { font-size: 0.9em; }
"""


def _html(doc: dict, rows: list[dict], columns: list[str], plots: list[str],
          grids: dict[str, str], note: str | None) -> str:
    e = html.escape
    sc = doc["scorer"]
    head = "".join(f"<th title='click to sort'>{e(c)}</th>" for c in columns)
    body = []
    for r in rows:
        cells = []
        for c in columns:
            v = r.get(c)
            text = _acc_ci(r) if c == "overall" else _f(v, signed=c.startswith("drop:"))
            cells.append(f"<td data-v='{'' if v is None else e(str(v))}'>{e(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    suites = "".join(
        f"<li><code>{e(n)}</code> v{e(str(s['suite_version']))}, prompts sha256 "
        f"<code>{e(str(s['prompt_hash'])[:16])}</code></li>" for n, s in doc["suites"].items())
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{e(doc['title'])}</title><style>{_CSS}</style></head><body>",
        f"<h1>{e(doc['title'])}</h1>",
        "<p>Generated by <code>relbench leaderboard build</code>; do not edit by hand."
        + (f" {e(note)}" if note else "") + "</p>",
        f"<p>Scorer <code>{e(str(sc['scorer']))}</code> v{e(str(sc['scorer_version']))}, config "
        f"sha256 <code>{e(str(sc['scorer_config_hash'])[:16])}</code>. Click a column to sort. "
        "<code>overall</code> = strict relation ∧ shapes ∧ colours ∧ unique binding "
        "[95 % CI over prompts]; <code>drop:P</code> = paired drop on perturbation P.</p>",
        f"<ul>{suites}</ul>",
        f"<div class='wrap'><table class='sortable'><thead><tr>{head}</tr></thead><tbody>"
        + "".join(body) + "</tbody></table></div>",
        "<h2>Plots</h2>",
        *(f"<p><img src='{e(p)}' alt='{e(p[:-4])}'></p>" for p in plots),
    ]
    cards = doc.get("circuit_cards", {})
    if cards:
        parts.insert(parts.index("<h2>Plots</h2>"), "<h2>Circuit cards</h2><ul>" + "".join(
            f"<li><b>{e(m)}</b>: {e(_card_cell(c))}; {e(c['verdict_text'])} "
            f"<a href='{e(c['card'])}'>card</a></li>" for m, c in cards.items()) + "</ul>")
    if grids:
        parts.append("<h2>Samples</h2><p>First seed of evenly spaced prompts; titles green when "
                     "correct, red with the found relation when not.</p>")
        parts += [f"<h3>{e(k)}</h3><p><img src='{e(v)}' alt='{e(k)}'></p>"
                  for k, v in grids.items()]
    parts.append(f"<script>{_SORT_JS}</script></body></html>\n")
    return "\n".join(parts)


# ---------------------------------------------------------------- plots (matplotlib, no pyplot)


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
    ax.set_xticks(x, categories, rotation=35, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accuracy")
    ax.grid(axis="y", alpha=0.3)


def _save(fig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")


def plot_accuracy_per_perturbation(runs: Sequence[RunDir], path: Path) -> None:
    """Accuracy on the original prompts and on each perturbation, per model, one panel per suite
    that has perturbation runs (a panel of overall accuracy per suite when none has)."""
    from matplotlib.figure import Figure

    colors = _model_colors(runs)
    perts = perturbation_names(runs)
    suites = _suite_order(r.info["suite"] for r in runs if r.info.get("perturbations"))
    if not suites:
        fig = Figure(figsize=(7, 4), layout="constrained")
        ax = fig.add_subplot()
        all_suites = _suite_order(r.info["suite"] for r in runs)
        series = {m: [_overall(_find(runs, m, s)) for s in all_suites] for m in sorted(colors)}
        _bars(ax, all_suites, series, colors)
        ax.set_title("accuracy per suite (no perturbation runs)")
        ax.legend(fontsize=8)
        _save(fig, path)
        return
    fig = Figure(figsize=(max(7, 0.45 * (len(perts) + 1) * max(len(colors), 2)),
                          3.8 * len(suites)), layout="constrained")
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
        ax.legend(fontsize=8)
    _save(fig, path)


def plot_accuracy_per_relation(runs: Sequence[RunDir], path: Path) -> None:
    """Accuracy per target relation (original prompts), per model, one panel per suite."""
    from matplotlib.figure import Figure

    colors = _model_colors(runs)
    suites = _suite_order(r.info["suite"] for r in runs)
    ncols = 2 if len(suites) > 2 else 1
    nrows = (len(suites) + ncols - 1) // ncols
    fig = Figure(figsize=(max(7, 1.1 * len(RELATIONS) * max(len(colors), 2) / 2) * ncols,
                          3.4 * nrows), layout="constrained")
    for k, suite in enumerate(suites):
        ax = fig.add_subplot(nrows, ncols, k + 1)
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
        ax.legend(fontsize=8)
    _save(fig, path)


def _suite_order(names) -> list[str]:
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

    rows = [r for r in run.rows() if r.get("file") and not r.get("perturbation")]
    if not rows:
        return False
    first_seed = min(r["seed"] for r in rows)
    rows = [r for r in rows if r["seed"] == first_seed]
    step = max(1, len(rows) // n)
    chosen = [r for r in rows[::step][:n] if (run.path / r["file"]).is_file()]
    if not chosen:
        return False
    n_rows = (len(chosen) + cols - 1) // cols
    fig = Figure(figsize=(2.4 * cols, 2.7 * n_rows), layout="constrained")
    for i, r in enumerate(chosen):
        ax = fig.add_subplot(n_rows, cols, i + 1)
        ax.set_axis_off()
        try:
            ax.imshow(read_image(run.path / r["file"]))
        except ImageReadError:
            continue
        verdict = ("correct" if r.get("correct") else
                   "unscorable" if r.get("correct") is None else
                   f"wrong: found {r.get('found_relation') or 'no pair'}")
        ax.set_title(textwrap.fill(r["prompt"], 26) + f"\n{verdict}", fontsize=7,
                     color="green" if r.get("correct") else "firebrick")
    _save(fig, path)
    return True
