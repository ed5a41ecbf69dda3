"""`relbench rescore RUN_DIR --detector NAME`: score a run's saved images with another scorer."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def rescore(
    run_dir: Path = typer.Argument(..., help="A finished run made with eval --save-images"),
    detector: str = typer.Option(..., "--detector", help="Scorer config name or JSON path"),
    out: Optional[Path] = typer.Option(
        None, "--out", help="New run directory (default RUN_DIR.rescored-<detector>-v<version>)"
    ),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar"),
) -> None:
    """Re-score the saved images of RUN_DIR into a new run directory (run.json, samples.jsonl,
    summary.json); the original run is left untouched."""
    from relbench.runner import default_rescore_dir, rescore_run
    from relbench.scoring import load_detector

    try:
        if out is None:
            cfg = load_detector(detector).config
            out = default_rescore_dir(run_dir, cfg.name, cfg.version)
        summary = rescore_run(run_dir, detector, out, progress=not quiet)
    except (ValueError, FileNotFoundError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    m, run = summary["metrics"], summary["run"]
    acc = "n/a" if m["overall"] is None else f"{m['overall']:.3f}"
    ci = m.get("overall_ci95")
    typer.echo(f"rescored {run_dir} with {run['scorer']} v{run['scorer_version']}: overall {acc}"
               + (f" [95% CI {ci[0]:.3f}–{ci[1]:.3f}]" if ci else "")
               + f" ({m['n_scored']} scored, {m['n_unscorable']} unscorable) → {out}")
