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


def refine_decoder(
    checkpoint: Path = typer.Argument(..., help="A latent DiT checkpoint directory (training or bundled)"),
    out: Path = typer.Option(..., "--out", help="Directory for the refined checkpoint (replaced atomically)"),
    set_: Optional[list[str]] = typer.Option(
        None, "--set", help="Override a refinement setting, e.g. --set steps=600 (repeatable)"
    ),
    eval_prompts: int = typer.Option(
        0, "--eval-prompts", help="Score this many core prompts (seed 0) before and after; 0 = skip"
    ),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch threads (default: torch's)"),
) -> None:
    """Fit the autoencoder's decoder to the DiT's own last-step predictions (relbench.dit.refine);
    the transformer and the encoder are left as they are."""
    import torch

    from relbench.dit.checkpoint import CheckpointError
    from relbench.dit.refine import RefineConfig, refine_checkpoint
    from relbench.dit.train import apply_override

    if threads:
        torch.set_num_threads(threads)
    try:
        data: dict = {}
        for item in set_ or []:
            apply_override(data, item, RefineConfig)
        cfg = RefineConfig.model_validate(data)
        section = refine_checkpoint(
            checkpoint, out, cfg, eval_prompts=eval_prompts,
            log=lambda row: typer.echo(json.dumps(row), err=True),
        )
    except (ValueError, OSError, CheckpointError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    typer.echo(json.dumps(section))
