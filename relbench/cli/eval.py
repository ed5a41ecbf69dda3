"""`relbench eval`: generate a suite with a model, score it, write a resumable run directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from relbench.cli import model_options as mo


def eval_(
    model: str = typer.Option(
        "oracle",
        help="Model: oracle, chance, a bundled model (rtep-micro, ...), dit:CKPT_DIR, diffusers:PATH, folder:DIR",
    ),
    suite: str = typer.Option("core", help="Suite name (see `relbench suites list`) or file:PROMPTS.jsonl"),
    perturb: Optional[list[str]] = typer.Option(None, "--perturb", help="Perturbation to add (repeatable)"),
    n_images: int = typer.Option(4, "--n-images", min=1, help="Images per prompt; seeds 0..n-1 unless --seeds"),
    seeds: Optional[str] = typer.Option(None, help="Comma-separated seeds, e.g. 0,1,2,3"),
    out: Path = typer.Option(..., "--out", help="Run directory (resumed if it exists)"),
    detector: Optional[str] = typer.Option(
        None, help="Scorer config name or path. Default: the model's training geometry's detector "
                   "(paper for a checkpoint trained on the paper's data, else default); for "
                   "diffusers: and folder: models choose (see docs/position-conventions.md)"),
    scorer: Optional[str] = typer.Option(
        None, "--scorer", help="Scorer: default (the classical detector, configured by "
                               "--detector) or one an installed package registers (recorded in run.json)"),
    batch_size: int = typer.Option(16, min=1),
    steps: Optional[int] = typer.Option(
        None, min=1, help="Sampler steps, for models that sample (bundled, dit:, diffusers:); default 14"
    ),
    guidance: Optional[float] = typer.Option(
        None, help="Classifier-free guidance scale, for models that sample; default 4.5"
    ),
    compile_: bool = typer.Option(
        False, "--compile",
        help="torch.compile a DiT's transformer (bundled, dit:): ~1.1x faster sampling after a one-off compile "
             "(~1.9x with --bf16)",
    ),
    bf16: bool = typer.Option(
        False, "--bf16",
        help="Sample a DiT (bundled, dit:) with bfloat16 weights and activations: ~1.5x faster on CPUs "
             "with AVX512-BF16, with changed images (rtep-micro on core: 0.909 vs 0.924 in float32, "
             "95.8 % of verdicts agree); about 10x SLOWER on CPUs without native bf16, where it falls "
             "back to float32 with a warning unless --force-bf16. For diffusers: models, = --dtype bfloat16",
    ),
    force_bf16: bool = mo.force_bf16_option(),
    device: Optional[str] = mo.device_option(),
    dtype: Optional[str] = mo.dtype_option(),
    height: Optional[int] = mo.size_option("height"),
    width: Optional[int] = mo.size_option("width"),
    model_arg: Optional[list[str]] = mo.model_arg_option(),
    limit: Optional[int] = typer.Option(
        None, "--limit", min=1, help="Only the suite's first N prompts (a smoke run; recorded, and "
                                     "refused by the leaderboard)"),
    max_initial_failures: int = typer.Option(
        8, "--max-initial-failures", min=0,
        help="Stop with exit code 1 when the first K images all fail to generate (0: never)"),
    save_images: bool = typer.Option(False, "--save-images", help="Write each image under RUN_DIR/images"),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar"),
    as_json: bool = typer.Option(False, "--json", help="Print summary.json on stdout"),
) -> None:
    """Evaluate MODEL on SUITE (and its perturbations); writes samples.jsonl and summary.json."""
    from relbench.runner import EvalConfig, run_eval

    seed_list = _parse_seeds(seeds) if seeds else list(range(n_images))
    model_args = mo.build_model_args(
        model, {"steps": steps, "guidance": guidance, "compile": compile_ or None},
        device=device, dtype=dtype, height=height, width=width, bf16=bf16, force_bf16=force_bf16,
        extra=model_arg,
    )
    cfg = EvalConfig(
        model=model,
        suite=suite,
        perturbations=list(perturb or []),
        seeds=seed_list,
        detector=detector,
        scorer=scorer,
        batch_size=batch_size,
        save_images=save_images,
        model_args=model_args,
        limit=limit,
        max_initial_failures=max_initial_failures,
    )
    from relbench.runner import RunFailedError

    try:
        summary = run_eval(cfg, out, progress=not quiet)
    except (ValueError, FileNotFoundError, ImportError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e
    except RunFailedError as e:
        typer.echo(f"error: run failed: {e}", err=True)
        raise typer.Exit(1) from e
    from relbench.distributed import process_info

    if not process_info().is_main:
        return  # under torchrun every process gets the summary; rank 0 prints it
    if summary.get("status") == "partial":
        typer.echo(f"note: this process's shard is done but others are not; their rows merge when "
                   f"the last finishes, or on the next `relbench eval --out {out}`", err=True)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    m = summary["metrics"]
    typer.echo(f"{model} on {summary['run']['suite']}: overall {_fmt(m['overall'])}"
               f"{_ci(m.get('overall_ci95'))} ({m['n_scored']} scored, {m['n_unscorable']} "
               f"unscorable) → {out}")
    if m.get("n_generation_failed"):
        typer.echo(f"warning: {m['n_generation_failed']} images failed to generate; tracebacks in "
                   f"{out / 'errors'}", err=True)
    if limit is not None:
        typer.echo(f"note: --limit {limit}: a smoke run over the suite's first {limit} prompts, "
                   "not a full run", err=True)
    for name, pm in m.get("per_perturbation", {}).items():
        drop = pm.get("paired_drop", {}).get("drop")
        typer.echo(f"  {name}: overall {_fmt(pm['overall'])}{_ci(pm.get('overall_ci95'))}"
                   + ("" if drop is None else f", paired drop {drop:+.3f}"))


def _ci(ci: list[float] | None) -> str:
    return "" if not ci else f" [95% CI {ci[0]:.3f}–{ci[1]:.3f}]"


def _fmt(x: float | None) -> str:
    return "n/a (nothing scorable)" if x is None else f"{x:.3f}"


def _parse_seeds(text: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError as e:
        raise typer.BadParameter(f"seeds must be comma-separated integers, got {text!r}") from e
