"""Run logs → leaderboard: Markdown, CSV and JSON tables and one static HTML page with plots.

The page is rendered by `relbench.leaderboard_page` (template in relbench/templates/), the
figures by `relbench.leaderboard_plots`.

One row per (model, suite). Runs are only set side by side when they were scored alike: one
scorer version and config hash for all of them, and for each suite (and each perturbation of
it) one version and prompt hash. Anything else is refused with the two runs and the field named.

A model with a circuit card (`relbench circuits card`) in `<out>/cards/<model>.json` or
`<out>/cards/<model>/card.json` gets its top relation head and ablation Δ shown beside it.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Sequence

from relbench.runner import RunDir, RunDirError, open_run
from relbench.scene import RELATIONS

LEADERBOARD_SCHEMA_VERSION = "1"
"""Schema number of leaderboard.json (relbench.versions: a plain integer)."""
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
        _check_text(run)
        _check_usable(run)
        if not run.complete:
            raise RunDirError(
                f"{run.path} is incomplete (no complete summary.json): finish it by re-running "
                "its relbench eval command (it resumes), or leave it out"
            )
        _check_summary_matches(run)
        runs.append(run)
    check_compatible(runs)
    return runs


def _check_usable(run: RunDir) -> None:
    """Refuse a run that failed, a `--limit` smoke run, and a run in which no image generated."""
    summary = run.summary or {}
    if summary.get("status") == "failed":
        reason = (summary.get("failure") or {}).get("reason", "no reason recorded")
        raise RunDirError(f"{run.path} failed: {reason}")
    limit = run.info.get("limit")
    if limit is not None:
        raise RunDirError(
            f"{run.path} is a --limit {limit} smoke run (only the suite's first {limit} prompts); "
            "the leaderboard takes full runs only: re-run without --limit"
        )
    failed = (summary.get("metrics") or {}).get("n_generation_failed") or 0
    rows = run.rows() if failed else []
    if rows and failed >= len(rows):
        first = next((r.get("error") for r in rows if r.get("error")), None)
        raise RunDirError(f"{run.path}: every one of its {len(rows)} images failed to generate "
                          f"(first: {first})")


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
        # Logs before `scorer_position` all scored centroids, the only convention there was.
        "scorer": {k: runs[0].info.get(k) for k in SCORER_FIELDS}
        | {"position": runs[0].info.get("scorer_position", "centroid")},
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
    from relbench.leaderboard_page import render_page
    from relbench.leaderboard_plots import (
        plot_accuracy_per_perturbation, plot_accuracy_per_relation, sample_grid,
    )

    plots = [PLOT_PERTURBATIONS, PLOT_RELATIONS]
    plot_accuracy_per_perturbation(runs, out_dir / PLOT_PERTURBATIONS)
    plot_accuracy_per_relation(runs, out_dir / PLOT_RELATIONS)
    grids = {}
    for run in sorted(runs, key=lambda r: (r.info["suite"], model_label(r))):
        name = f"{GRIDS}/{_slug(model_label(run))}--{_slug(run.info['suite'])}.png"
        if sample_grid(run, out_dir / name, n=grid_size):
            grids[f"{model_label(run)} on {run.info['suite']}"] = name
    (out_dir / MARKDOWN).write_text(_markdown(doc, rows, perts, plots, note))
    full_cards = {m: json.loads(f.read_text()) for m in cards
                  if (f := _card_file(m, out_dir / CARDS if cards_dir is None else Path(cards_dir)))
                  and f.name.endswith(".json")}
    (out_dir / HTML).write_text(render_page(doc, plots=plots, grids=grids, note=note,
                                            cards=full_cards))
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
        path = _card_file(model, cards_dir)
        if path is not None:
            out[model] = _card_summary(path, out_dir)
    return out


def _card_file(model: str, cards_dir: Path) -> Path | None:
    """The model's card.json in `cards_dir` (`<model>.json` or `<model>/card.json`), if any."""
    for path in (cards_dir / f"{_slug(model)}.json", cards_dir / _slug(model) / "card.json"):
        if path.is_file():
            return path
    return None


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
            "suite": card.get("suite"),
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
    delta = "not ablated" if c["delta"] is None else f"Δ {format_number(float(c['delta']), signed=True)}"
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
        "found": {k: m.get(k) for k in ("shape", "color", "relation_loose")},
        "per_perturbation": {
            p: {"accuracy": pm.get("overall"), "ci95": pm.get("overall_ci95"),
                "drop": (pm.get("paired_drop") or {}).get("drop"),
                "drop_ci95": (pm.get("paired_drop") or {}).get("ci95")}
            for p, pm in (m.get("per_perturbation") or {}).items()},
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


_UNSAFE_TEXT = re.compile(r"[\x00-\x1f\x7f\u2028\u2029<>|`\[\]\\]")
"""Characters refused in names a run log puts into leaderboard tables: control characters and
newlines (they end a table row) and Markdown/HTML syntax (tags, links, pipes, code spans)."""


def _check_text(run: RunDir) -> None:
    """Refuse a run whose model, suite, perturbation or scorer names (or model args) carry
    Markdown/HTML syntax or control characters: they are written into leaderboard.md as is."""
    from pydantic import ValidationError

    from relbench.runlog import RunInfo

    info = run.info
    try:
        RunInfo.model_validate(info)
    except ValidationError as e:
        first = e.errors()[0]
        raise RunDirError(f"{run.path}/run.json: invalid {'.'.join(map(str, first['loc']))}: "
                          f"{first['msg']}") from None
    model = info.get("model") if isinstance(info.get("model"), dict) else {}
    texts = [("model name", model.get("name")), ("model args", model.get("args")),
             ("suite", info.get("suite")), ("suite version", info.get("suite_version")),
             ("scorer", info.get("scorer")), ("scorer version", info.get("scorer_version")),
             ("relbench version", info.get("relbench_version")),
             ("git commit", info.get("git_commit"))]
    texts += [("perturbation", p) for p in info.get("perturbations") or []]
    for what, value in texts:
        for text in _strings(value):
            if len(text) > 200:
                raise RunDirError(f"{run.path}: {what} {text[:40]!r}… is {len(text)} characters "
                                  "long (at most 200 go into a leaderboard)")
            bad = _UNSAFE_TEXT.search(text)
            if bad:
                raise RunDirError(
                    f"{run.path}: {what} {text[:60]!r} contains {bad.group()!r}, which the "
                    "leaderboard does not write into Markdown tables; rename it and re-run"
                )


def _strings(value: Any) -> list[str]:
    """Every string in a JSON value (keys included)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [t for k, v in value.items() for t in [*_strings(k), *_strings(v)]]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _strings(v)]
    return []


def csv_cell(value: Any) -> Any:
    """A cell safe to open in a spreadsheet: text starting with =, +, -, @ (or a tab / carriage
    return) would run as a formula, so it gets a leading apostrophe."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _write_csv(rows: list[dict[str, Any]], columns: list[str], path: Path) -> None:
    import pandas as pd

    safe = [{k: csv_cell(v) for k, v in row.items()} for row in rows]
    pd.DataFrame(safe, columns=columns).to_csv(path, index=False, float_format="%.4f")


def format_number(x: Any, digits: int = 3, signed: bool = False) -> str:
    """A table cell: floats to `digits` places (with a sign when `signed`), None blank."""
    if x is None:
        return ""
    if isinstance(x, float):
        return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"
    return str(x)


def _acc_ci(row: dict[str, Any]) -> str:
    if row["overall"] is None:
        return "n/a"
    if row["ci95_low"] is None:
        return format_number(row["overall"])
    return f"{format_number(row['overall'])} [{format_number(row['ci95_low'])}–{format_number(row['ci95_high'])}]"


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
           f"Scorer `{sc['scorer']}` v{sc['scorer_version']} ("
           + (f"position convention `{sc['position']}`, " if sc.get("position") else "")
           + "config sha256 "
           f"`{str(sc['scorer_config_hash'])[:16]}`). `overall` = strict relation ∧ shapes ∧ "
           "colours ∧ unique binding, with a 95 % bootstrap interval over prompts; "
           "`all seeds` = share of prompts correct on every seed (VISOR_n).\n",
           "## Accuracy\n"]
    cards = doc.get("circuit_cards", {})
    out.append(_md_table(
        ["suite", "model", "overall [95% CI]", "strict relation", "all seeds", "images",
         "unscorable"] + (["circuit card"] if cards else []),
        [[r["suite"], r["model"], _acc_ci(r), format_number(r["relation_strict"]),
          format_number(r["all_seeds_correct"]), format_number(r["n_scored"]), format_number(r["n_unscorable"])]
         + ([_card_cell(cards.get(r["model"]))] if cards else []) for r in rows]))
    if cards:
        out.append("\n## Circuit cards\n\nTop relation head (attention synopsis) and the change in "
                   "strict accuracy when it is ablated, against the range of a random-head "
                   "control; screening = its weight-space ramp score (mean |cos|).\n")
        out.append(_md_table(
            ["model", "relation head (score)", "Δ ablated [95% CI]", "random control",
             "screening", "object head (score)", "verdict", "card"],
            [[m, f"{c['relation_head']} ({format_number(c['relation_score'])})",
              _delta_ci(c), "" if c["control"] is None else
              f"{format_number(c['control'][0], signed=True)} … {format_number(c['control'][1], signed=True)}",
              format_number(c["screen_score"]), f"{c['object_head']} ({format_number(c['object_score'])})",
              c["verdict_text"], f"[card]({c['card']})"] for m, c in cards.items()]))
    with_perts = [r for r in rows if any(r.get(f"accuracy:{p}") is not None for p in perts)]
    if with_perts:
        out.append("\n## Robustness\n\nAccuracy on perturbed prompts; in brackets the change "
                   "against the same prompts' originals with the same seeds (minus the paired "
                   "drop).\n")
        out.append(_md_table(
            ["suite", "model", "original", *perts],
            [[r["suite"], r["model"], format_number(r["overall"])]
             + [_pert_cell(r, p) for p in perts] for r in with_perts]))
    rels = [rel for rel in RELATIONS if any(rel in r["per_relation"] for r in doc["rows"])]
    if rels:
        out.append("\n## Per relation\n")
        out.append(_md_table(
            ["suite", "model", *rels],
            [[r["suite"], r["model"]] + [format_number(_rel_acc(r["per_relation"].get(x))) for x in rels]
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
    return format_number(float(c["delta"]), signed=True) + (
        f" [{format_number(float(ci[0]), signed=True)}, {format_number(float(ci[1]), signed=True)}]" if ci else "")


def _pert_cell(row: dict[str, Any], p: str) -> str:
    acc, drop = row.get(f"accuracy:{p}"), row.get(f"drop:{p}")
    if acc is None:
        return ""
    return format_number(acc) + ("" if drop is None else f" ({format_number(0.0 - drop, signed=True)})")  # no -0.000


def _rel_acc(v: Any) -> float | None:
    return v.get("accuracy") if isinstance(v, dict) else v


def _short(x: Any, n: int = 16) -> str:
    return "" if x is None else f"`{str(x)[:n]}`"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "x"
