"""`relbench train`: train (or resume) a bundled DiT from a JSON config."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer


def train(
    config: Optional[Path] = typer.Argument(
        None, help="Training config JSON (configs/train/*.json); the defaults if omitted"
    ),
    out: Path = typer.Option(
        ..., "--out", help="Run directory: checkpoints/ and log.jsonl (resumed if it exists)"
    ),
    set_: Optional[list[str]] = typer.Option(
        None, "--set", help="Override a field, e.g. --set model.preset=nano (repeatable)"
    ),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar"),
) -> None:
    """Train a PixArt-style DiT on rendered scenes; a killed run resumes from its last checkpoint."""
    from relbench.dit.train import TrainConfig, train as run_training

    try:
        cfg = TrainConfig.load(config, set_ or [])
    except (ValueError, OSError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    last = run_training(cfg, out, progress=not quiet)
    from relbench.distributed import process_info

    if process_info().is_main:  # under torchrun, rank 0 alone prints
        typer.echo(json.dumps(last))
