"""`relbench rescore RUN_DIR --detector NAME | --scorer NAME`: score a run's saved images with
another scorer."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def rescore(
    run_dir: Path = typer.Argument(..., help="A finished run made with eval --save-images"),
    detector: Optional[str] = typer.Option(
        None, "--detector", help="Config of the default scorer: name or JSON path"),
    scorer: Optional[str] = typer.Option(
        None, "--scorer", help="Scorer: default (the classical detector, configured by "
        "--detector) or one an installed package registers (recorded in run.json)"),
    out: Optional[Path] = typer.Option(
        None, "--out", help="New run directory (default RUN_DIR.rescored-<scorer>-v<version>)"
    ),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar"),
) -> None:
    """Re-score the saved images of RUN_DIR into a new run directory (run.json, samples.jsonl,
    summary.json) with the scorer --scorer and --detector choose, as for `relbench eval`; the
    original run is left untouched."""
    from relbench.runner import default_rescore_dir, rescore_run
    from relbench.scoring.api import load_scorer

    if detector is None and scorer is None:
        typer.echo("error: name the new scorer: --detector NAME (a config of the default scorer) "
                   "or --scorer NAME", err=True)
        raise typer.Exit(2)
    try:
        if out is None:
            det = load_scorer(scorer, detector=detector)
            out = default_rescore_dir(run_dir, det.name, det.version)
        summary = rescore_run(run_dir, detector, out, progress=not quiet, scorer=scorer)
    except (ValueError, FileNotFoundError, ImportError) as e:  # ImportError: a scorer's package
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    m, run = summary["metrics"], summary["run"]
    acc = "n/a" if m["overall"] is None else f"{m['overall']:.3f}"
    ci = m.get("overall_ci95")
    typer.echo(f"rescored {run_dir} with {run['scorer']} v{run['scorer_version']}: overall {acc}"
               + (f" [95% CI {ci[0]:.3f}–{ci[1]:.3f}]" if ci else "")
               + f" ({m['n_scored']} scored, {m['n_unscorable']} unscorable) → {out}")
