"""`relbench log show RUN_DIR`: a run's provenance, progress and headline metrics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False)


@app.callback()
def _log() -> None:
    """Inspect run directories."""


@app.command("show")
def show(
    run_dir: Path = typer.Argument(..., help="A run directory written by relbench eval/rescore"),
    rich_out: Optional[bool] = typer.Option(
        None, "--rich/--plain", help="Table style (default: rich on a terminal, plain otherwise)"
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as one JSON object"),
) -> None:
    """Provenance (suite, scorer, model, seeds, versions), progress and metrics with 95 % CIs."""
    from relbench.runner import open_run, run_report

    try:
        report = run_report(open_run(run_dir))
    except (ValueError, FileNotFoundError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    facts, header, table, footer = _sections(report)
    from rich.console import Console

    console = Console(highlight=False)
    if rich_out is None:
        rich_out = console.is_terminal
    if rich_out:
        _print_rich(console, facts, header, table, footer)
    else:
        _print_plain(facts, header, table, footer)


def _sections(report: dict[str, Any]) -> tuple[list[tuple[str, str]], list[str], list[list[str]],
                                               list[str]]:
    """The report as (field, value) facts, a metrics table and footnote lines."""
    run, prog, m = report["run"], report["progress"], report["metrics"]
    model = run.get("model", {})
    expected = prog["expected"]
    done = f"{prog['rows']} / {expected if expected is not None else '?'} rows"
    if expected:
        done += f" ({100 * prog['rows'] / expected:.1f} %)"
    status = report["status"]
    if status != "complete":
        status += " (no summary.json: re-run the same relbench eval command to finish it)"
    facts = [
        ("run", report["path"]),
        ("status", status),
        ("suite", f"{run.get('suite')} v{run.get('suite_version')}"),
        ("prompt hash", str(run.get("prompt_hash"))),
        ("perturbations", ", ".join(f"{p['name']} v{p.get('version')} ({p.get('prompt_hash')})"
                                    for p in run.get("perturbations", [])) or "none"),
        ("scorer", f"{run.get('scorer')} v{run.get('scorer_version')}"),
        ("scorer config hash", str(run.get("scorer_config_hash"))),
        # Logs before the field all scored centroids, the only convention there was; a
        # third-party scorer records none.
        ("scorer position", str(run.get("scorer_position", "centroid") or "n/a")),
        ("model", str(model.get("name"))),
        ("model args", json.dumps(model.get("args", {}), sort_keys=True)),
        ("checkpoint hash", str(model.get("checkpoint_hash"))),
        ("model geometry", str(run.get("model_geometry") or "n/a (not a DiT checkpoint)")),
        ("seeds", ",".join(map(str, run.get("seeds", [])))),
        ("sampling", json.dumps(run.get("sampling", {}), sort_keys=True)),
        ("relbench version", str(run.get("relbench_version"))),
        ("git commit", str(run.get("git_commit"))),
        ("progress",
         f"{done}, {prog['unscorable']} unscorable, {prog['images_saved']} images saved"),
    ]
    exts = run.get("extensions") or []
    if exts:
        facts.append(("extensions", ", ".join(
            f"{e.get('group', '?')}:{e.get('name', '?')} ({e.get('package', '?')} "
            f"{e.get('package_version', '?')})" for e in exts)))
    prov = report.get("provenance") or {}
    if prov:
        dirty = {True: " (uncommitted changes)", False: "", None: ""}[prov.get("git_dirty")]
        facts += [
            ("ran (UTC)", f"{prov.get('started_utc')} → {prov.get('finished_utc')}, "
                          f"{prov.get('wall_s', 0):.1f} s"),
            ("source", f"relbench {prov.get('relbench_version')}, git "
                       f"{prov.get('git_commit')}{dirty}, python {prov.get('python')}"),
            ("packages", ", ".join(f"{k} {v}" for k, v in sorted(
                (prov.get("packages") or {}).items()))),
            ("images hash", str(prov.get("images_sha256"))),
        ]
    if run.get("rescored_from"):
        src = run["rescored_from"]
        facts.append(("rescored from", f"{src.get('run_dir')} (scorer {src.get('scorer')} "
                                       f"v{src.get('scorer_version')})"))
    header = ["set", "accuracy [95% CI]", "strict relation", "paired drop [95% CI]", "scored",
              "unscorable"]
    table: list[list[str]] = []
    footer: list[str] = []
    if m is None:
        footer.append("no rows yet")
        return facts, header, table, footer
    table.append(["original", _acc(m.get("overall"), m.get("overall_ci95")),
                  _f(m.get("relation_strict")), "", str(m.get("n_scored")),
                  str(m.get("n_unscorable"))])
    for name, pm in m.get("per_perturbation", {}).items():
        drop = pm.get("paired_drop") or {}
        table.append([name, _acc(pm.get("overall"), pm.get("overall_ci95")),
                      _f(pm.get("relation_strict")), _acc(drop.get("drop"), drop.get("ci95"), True),
                      str(pm.get("n_scored")), str(pm.get("n_unscorable"))])
    sc = m.get("seed_consistency") or {}
    if sc:
        footer.append("seed consistency (VISOR_k, share of prompts correct on ≥ k images): "
                      + ", ".join(f"{k} {v:.3f}" for k, v in sc.items()))
    off = ((m.get("offsets") or {}).get("overall")) or {}
    if off.get("n"):
        footer.append(f"mean layout offset (subject − reference): dx {off['dx']:+.3f}, "
                      f"dy {off['dy']:+.3f} over {off['n']} bound images")
    return facts, header, table, footer


def _f(x: float | None, signed: bool = False) -> str:
    if x is None:
        return "n/a"
    return f"{x:+.3f}" if signed else f"{x:.3f}"


def _acc(x: float | None, ci: list[float] | None, signed: bool = False) -> str:
    if x is None:
        return "n/a"
    return _f(x, signed) + (f" [{_f(ci[0], signed)}–{_f(ci[1], signed)}]" if ci else "")


def _print_plain(facts, header, table, footer) -> None:
    width = max(len(k) for k, _ in facts)
    for k, v in facts:
        typer.echo(f"{k + ':':<{width + 1}} {v}")
    if table:
        typer.echo("")
        cols = [max(len(str(r[i])) for r in [header, *table]) for i in range(len(header))]
        for r in [header, *table]:
            typer.echo("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                                 for i, (c, w) in enumerate(zip(r, cols))).rstrip())
    for line in footer:
        typer.echo(line)


def _print_rich(console, facts, header, table, footer) -> None:
    from rich.table import Table

    prov = Table(show_header=False, box=None, pad_edge=False)
    prov.add_column(style="bold")
    prov.add_column(overflow="fold")
    for k, v in facts:
        prov.add_row(k, v)
    console.print(prov)
    if table:
        t = Table(*header, title="metrics")
        for r in table:
            t.add_row(*r)
        console.print(t)
    for line in footer:
        console.print(line)
