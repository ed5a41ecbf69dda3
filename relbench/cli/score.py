"""`relbench score DIR`: score a folder of images + metadata.jsonl into scores.jsonl."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer


def score(
    directory: Path = typer.Argument(..., help="Folder with images and metadata.jsonl."),
    out: Optional[Path] = typer.Option(
        None, "--out", help="Output file (default DIR/scores.jsonl)."
    ),
    detector: str = typer.Option(
        "default", "--detector", help="Detector config name or JSON path."
    ),
    scorer: str = typer.Option(
        "default", "--scorer",
        help="Scorer: default (the classical detector) or one an installed package registers.",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print a summary object on stdout."),
    workers: int = typer.Option(1, "--workers", min=1, help="Scoring processes."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
    max_pixels: Optional[int] = typer.Option(
        None, "--max-pixels", min=0,
        help="Refuse (per row, from the file header) images with more pixels than this "
             "(default 40,000,000; 0 = no limit).",
    ),
) -> None:
    """Score every image of DIR against its prompt; bad rows get correct=null and an error.

    A malformed metadata.jsonl line becomes an error row with its `line` number; the
    other rows still score.
    """
    from relbench.scoring.api import load_scorer, scorer_provenance
    from relbench.scoring.folder import score_folder

    try:
        det = load_scorer(scorer, detector=detector)
        if workers > 1 and scorer != "default":
            raise ValueError(f"--workers {workers} needs the default scorer; {scorer!r} runs in "
                             "one process")
        summary = score_folder(directory, det, out, workers=workers, progress=not quiet,
                               max_pixels=max_pixels)
    except (OSError, ValueError, ImportError) as e:  # a missing folder or a full disk: OSError;
        typer.echo(f"error: {e}", err=True)  # a scorer package that fails to load: ImportError
        raise typer.Exit(2) from None
    if scorer_provenance(scorer):
        summary["scorer_extension"] = scorer_provenance(scorer)
    if json_out:
        typer.echo(json.dumps(summary))
    else:
        acc = summary["overall"]
        acc_s = "n/a" if acc is None else f"{acc:.3f}"
        typer.echo(
            f"scored {summary['n_scored']}/{summary['n']} ({summary['n_unscorable']} unscorable); "
            f"accuracy {acc_s}; wrote {summary['scores']}"
        )
