"""`relbench circuits ...`: circuit diagnostics of a DiT (attention synopsis, ablations, ...)."""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn, Optional

import typer

from relbench.cli import model_options as mo

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Circuit diagnostics: attention synopsis, ablations, screening, cards.")

MODEL_HELP = ("Model: a bundled DiT (rtep-micro, ...), dit:CKPT_DIR or diffusers:PATH (PixArt, "
              "SD3, Flux)")
_ERRORS = (ValueError, FileNotFoundError, FileExistsError, ImportError)
"""Bad input: reported as one line on stderr, exit code 2."""


def parse_seeds(text: str) -> list[int]:
    """"0,1,2" → [0, 1, 2]; a BadParameter for anything else."""
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError as e:
        raise typer.BadParameter(f"seeds must be comma-separated integers, got {text!r}") from e
    if not seeds:
        raise typer.BadParameter("no seeds given")
    return seeds


def _window(text: str) -> tuple[int, int]:
    try:
        start, end = (int(x) for x in text.split(":"))
    except ValueError as e:
        raise ValueError(f"step window must be START:END (e.g. 0:7), got {text!r}") from e
    return start, end


def _num(x: float | None, fmt: str = ".3f") -> str:
    return "n/a" if x is None else format(x, fmt)


def _model_and_suite(
    model: str, suite: str, limit: int | None, *, device: str | None, dtype: str | None,
    height: int | None, width: int | None, force_bf16: bool, model_arg: Optional[list[str]],
) -> tuple[object, object]:
    """The model (its name, or the model loaded with the options given) and the suite (its name,
    or its first `limit` prompts as suite "<name>[:N]")."""
    from relbench.cli.model_options import build_model_args

    args = build_model_args(model, {}, device=device, dtype=dtype, height=height, width=width,
                            force_bf16=force_bf16, extra=model_arg)
    loaded: object = model
    if args:
        from relbench.models import load_model

        loaded = load_model(model, **args)
    the_suite: object = suite
    if limit is not None:
        import dataclasses

        from relbench.circuits.synopsis import load_suite

        base = load_suite(suite)
        the_suite = dataclasses.replace(base, name=f"{base.name}[:{limit}]",
                                        prompts=base.prompts[:limit])
    return loaded, the_suite


def _head(r: dict) -> str:
    """A ranked head's name: its recorded `name` (Flux: S0H1), else L{layer}H{head}."""
    return r.get("name") or f"L{r['layer']}H{r['head']}"


def _fail(e: Exception) -> NoReturn:
    typer.echo(f"error: {e}", err=True)
    raise typer.Exit(2) from e


def _need_torch() -> None:
    """Exit 2 naming the extra to install when torch is missing: every circuits command loads
    relbench.circuits, which hooks a DiT in torch."""
    try:
        import torch  # noqa: F401
    except ImportError:
        _fail(ImportError("relbench circuits needs torch, from the dit extra: "
                          "pip install 'relbench[dit]'"))


@app.command("synopsis")
def synopsis_cmd(
    model: str = typer.Option(..., "--model", help=MODEL_HELP),
    suite: str = typer.Option("core", help="Suite name or file:PROMPTS.jsonl"),
    out: Path = typer.Option(..., "--out", help="Output directory (written whole, or not at all)"),
    n_prompts: Optional[int] = typer.Option(None, "--n-prompts", min=1,
                                            help="Evenly spaced prompts of the suite (default all)"),
    seeds: str = typer.Option("0,1,2,3", help="Comma-separated seeds"),
    steps: int = typer.Option(14, min=1, help="Sampler steps"),
    guidance: Optional[float] = typer.Option(None, help="Classifier-free guidance scale (default 4.5)"),
    batch_size: int = typer.Option(16, min=1),
    detector: str = typer.Option("default", help="Scorer config that finds the objects"),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing OUT"),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar"),
    device: Optional[str] = mo.device_option(),
    dtype: Optional[str] = mo.dtype_option(),
    height: Optional[int] = mo.size_option("height"),
    width: Optional[int] = mo.size_option("width"),
    force_bf16: bool = mo.force_bf16_option(),
    model_arg: Optional[list[str]] = mo.model_arg_option(),
    limit: Optional[int] = typer.Option(None, "--limit", min=1,
                                        help="Only the suite's first N prompts (recorded as suite NAME[:N])"),
) -> None:
    """Capture cross-attention (SD3 / Flux: the image→text block of the joint attention) while
    generating SUITE; rank candidate relation and object heads."""
    _need_torch()
    from relbench.circuits.synopsis import synopsis

    try:
        loaded, the_suite = _model_and_suite(model, suite, limit, device=device, dtype=dtype,
                                             height=height, width=width, force_bf16=force_bf16,
                                             model_arg=model_arg)
        result = synopsis(loaded, the_suite, n_prompts, parse_seeds(seeds), steps, out, guidance=guidance,
                          batch_size=batch_size, detector=detector, overwrite=overwrite,
                          progress=not quiet)
    except _ERRORS as e:
        _fail(e)
    info = result.info
    typer.echo(f"{model}: {info['n_bound']}/{info['n_images']} images with both objects found → {out}")
    if not info["n_bound"]:
        typer.echo("warning: no image had both objects found, so the synopsis is empty", err=True)
    for kind in ("relation_heads", "object_heads"):
        top = ", ".join(f"{_head(r)} ({r['score']:.2f})" for r in info[kind][:3])
        typer.echo(f"  top {kind.replace('_', ' ')}: {top}")


@app.command("ablate")
def ablate_cmd(
    model: str = typer.Option(..., "--model", help=MODEL_HELP),
    heads: str = typer.Option(
        "", help="Comma-separated targets, each ablated alone: L2H1 (a head), L2 (a layer), all, "
                 "or heads joined by + (L2H1+L3H0, together)"),
    kind: str = typer.Option("zero_head", help="zero_head, block_tokens (--roles) or block_text "
                                               "(every text token; image queries only)"),
    metric: str = typer.Option(
        "correct", help="correct (strict accuracy, shapes included) or colour_layout (the strict "
        "rule on the two colours' centroids: for models whose shapes the scorer cannot name yet)",
    ),
    roles: str = typer.Option("", help="Token roles to block (block_tokens), e.g. relation or shape2,color2"),
    step_window: Optional[list[str]] = typer.Option(
        None, "--step-window", help="START:END sampling steps to ablate in (repeatable; default all)"),
    random_control: int = typer.Option(0, "--random-control", min=0,
                                       help="Also ablate K random heads (0: no control)"),
    draws: int = typer.Option(5, min=1, help="Random-control draws; as many as there are K-head sets "
                              "(18 single heads on a micro DiT) ablates every set once (exhaustive)"),
    suite: str = typer.Option("core", help="Suite name or file:PROMPTS.jsonl"),
    n_prompts: Optional[int] = typer.Option(None, "--n-prompts", min=1),
    seeds: str = typer.Option("0,1,2,3", help="Comma-separated seeds"),
    steps: int = typer.Option(14, min=1, help="Sampler steps"),
    guidance: Optional[float] = typer.Option(None, help="Classifier-free guidance scale (default 4.5)"),
    batch_size: int = typer.Option(16, min=1),
    seed: int = typer.Option(0, help="Seed of the random-head draws"),
    out: Path = typer.Option(..., "--out", help="Directory for ablation.json"),
    detector: str = typer.Option("default"),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar"),
    device: Optional[str] = mo.device_option(),
    dtype: Optional[str] = mo.dtype_option(),
    height: Optional[int] = mo.size_option("height"),
    width: Optional[int] = mo.size_option("width"),
    force_bf16: bool = mo.force_bf16_option(),
    model_arg: Optional[list[str]] = mo.model_arg_option(),
    limit: Optional[int] = typer.Option(None, "--limit", min=1,
                                        help="Only the suite's first N prompts (recorded as suite NAME[:N])"),
) -> None:
    """Accuracy change when heads are zeroed or blocked from tokens, paired by prompt and seed."""
    _need_torch()
    from relbench.circuits.ablate import ablate

    targets = [t.strip() for t in heads.split(",") if t.strip()]
    if not targets and not random_control:
        _fail(ValueError("nothing to ablate: give --heads and/or --random-control"))
    try:
        windows = [_window(w) for w in step_window] if step_window else [None]
        loaded, the_suite = _model_and_suite(model, suite, limit, device=device, dtype=dtype,
                                             height=height, width=width, force_bf16=force_bf16,
                                             model_arg=model_arg)
        result = ablate(
            loaded, targets, kind=kind, roles=[r.strip() for r in roles.split(",") if r.strip()],  # type: ignore[arg-type]
            step_windows=windows, random_control=random_control, draws=draws, suite=the_suite,
            n_prompts=n_prompts, seeds=parse_seeds(seeds), steps=steps, guidance=guidance,
            detector=detector, batch_size=batch_size, seed=seed, out=out, progress=not quiet,
            metric=metric,
        )
    except _ERRORS as e:
        _fail(e)
    base = result["baseline"]
    typer.echo(f"{model}: baseline {result['metric']} {_num(base['strict'])} → {out / 'ablation.json'}")
    for a in result["ablations"]:
        if a.get("draw") is not None:
            continue
        win = "" if a["step_window"] is None else f" steps {a['step_window'][0]}:{a['step_window'][1]}"
        ci = a["delta_ci95"]
        typer.echo(f"  {a['target']}{win}: {_num(a['strict'])} (Δ {_num(a['delta'], '+.3f')}"
                   + ("" if ci is None else f", 95% CI {ci[0]:+.3f}–{ci[1]:+.3f}") + ")")
    rc = result["random_control"]
    if rc["draws"] and rc.get("exhaustive"):
        from relbench.circuits.ablate import control_rows

        ranked = sorted(control_rows(result), key=lambda a: a["delta"])
        typer.echo(f"  every {rc['k']}-head set ({rc['draws']}, exhaustive): mean Δ {_num(rc['mean'], '+.3f')}; "
                   "largest drops " + ", ".join(f"{'+'.join(a['heads'])} {a['delta']:+.3f}" for a in ranked[:5]))
    elif rc["draws"]:
        typer.echo(f"  random {rc['k']} heads × {rc['draws']} draws: mean Δ {_num(rc['mean'], '+.3f')}")


# ---- screen, card and arith (issue 5, items 3, 5, 6) are added below this line --------------



def _load(model: str, **kwargs: object) -> object:
    from relbench.models import load_model

    return load_model(model, **{k: v for k, v in kwargs.items() if v is not None})


@app.command("screen")
def screen_cmd(
    model: str = typer.Option(..., "--model", help=MODEL_HELP),
    out: Path = typer.Option(..., "--out", help="Directory for screen.json"),
    synopsis: Optional[Path] = typer.Option(
        None, "--synopsis", help="A synopsis directory: also report the rank agreement with it"),
) -> None:
    """Weight-space screening of every head against the relations' ramps (no forward pass).

    Per head and relation: the cosine between the position × relation-word QK map and the
    relation's linear ramp; heads ranked by mean |cos|.
    """
    _need_torch()
    from relbench.circuits.screen import agreement, screen_model, write_screen

    try:
        doc = screen_model(_load(model))
        if synopsis is not None:
            from relbench.circuits.synopsis import load_synopsis

            doc["agreement"] = agreement(doc, load_synopsis(synopsis).info)
        path = write_screen(doc, out)
    except _ERRORS as e:
        _fail(e)
    typer.echo(f"{model}: {len(doc['top'])} heads screened → {path}")
    typer.echo("  top heads by mean |cos| (signed, relation-specific): " + ", ".join(
        f"{_head(t)} {t['score']:.2f} ({t['signed']:+.2f}, {t['specific']:+.2f})"
        for t in doc["top"][:3]))
    if "agreement" in doc:
        a = doc["agreement"]
        typer.echo(f"  Spearman with the synopsis over {a['n_heads']} heads: "
                   f"{_num(a['spearman'], '+.3f')}")


@app.command("card")
def card_cmd(
    model: str = typer.Option(..., "--model", help="Model name shown on the card"),
    synopsis: Path = typer.Option(..., "--synopsis", help="Synopsis directory (synopsis.json)"),
    screen: Optional[Path] = typer.Option(
        None, "--screen", help="screen.json (or its directory); leave out for models screening "
                               "cannot read (SD3, Flux: the card then has no screening section)"),
    ablation: Path = typer.Option(..., "--ablation", help="ablation.json (or its directory)"),
    out: Path = typer.Option(..., "--out", help="Directory for card.json and card.md; "
                                                "leaderboards/cards/<model> puts it on the board"),
) -> None:
    """A circuit card from a synopsis, a screen and an ablation, with a computed verdict.

    Top relation and object heads, Δ accuracy when ablated vs the random-head control, and the
    screening cosine of the top relation head.
    """
    _need_torch()
    from relbench.circuits.card import build_card

    try:
        card = build_card(model, synopsis, screen, ablation, out)
    except _ERRORS as e:
        _fail(e)
    typer.echo(f"{model}: {card['verdict']['text']} → {out}")


@app.command("arith")
def arith_cmd(
    model: str = typer.Option(..., "--model",
                              help="A bundled / dit: DiT with a contextual encoder (minilm, t5)"),
    source: str = typer.Option("above", help="Relation of the prompts that are edited"),
    target: str = typer.Option("below", help="Relation whose effect vector is added / swapped in"),
    mode: str = typer.Option("add", help="add (alpha × mean effect vector) or swap (the target "
                                         "prompt's own state)"),
    alpha: float = typer.Option(1.0, help="Scale of the added effect vector (mode add)"),
    seeds: str = typer.Option("0,1,2,3", help="Comma-separated seeds (the same for both arms)"),
    steps: Optional[int] = typer.Option(None, min=1, help="Sampler steps (default the model's)"),
    guidance: Optional[float] = typer.Option(None, help="Classifier-free guidance scale"),
    detector: str = typer.Option("default", help="Scorer config that measures the layout"),
    out: Path = typer.Option(..., "--out", help="Output JSON file"),
) -> None:
    """Embedding arithmetic at the second shape token, measured on the generated layout.

    Edits the text states of SOURCE prompts toward TARGET, generates with paired seeds, and
    reports the scorer's dx, dy before and after.
    """
    _need_torch()
    from relbench.circuits.arithmetic import run_arithmetic, write_report

    try:
        res = run_arithmetic(_load(model, steps=steps, guidance=guidance), source=source,
                             target=target, mode=mode, alpha=alpha, seeds=parse_seeds(seeds),
                             detector=detector)
        write_report(res, out)
    except _ERRORS as e:
        _fail(e)
    b, a, s = res["before"], res["after"], res["paired_shift"]
    typer.echo(f"{model} {source}→{target} ({mode}): {res['n_paired']}/{res['n_images']} image "
               f"pairs measured → {out}")
    typer.echo(f"  before dx {_num(b['dx'], '+.3f')} dy {_num(b['dy'], '+.3f')}; after dx "
               f"{_num(a['dx'], '+.3f')} dy {_num(a['dy'], '+.3f')}; paired shift toward "
               f"{target}: {_num(s['toward_target'], '+.3f')}")


@app.command("rebuild-cards")
def rebuild_cards_cmd(
    cards_dir: Path = typer.Argument(Path("leaderboards/cards"),
                                     help="Directory of <model>/card.json with inputs/ beside each"),
) -> None:
    """Rebuild every circuit card from the inputs published beside it (sha256 checked)."""
    _need_torch()
    from relbench.circuits.card import rebuild_cards

    try:
        written = rebuild_cards(cards_dir)
    except _ERRORS as e:
        _fail(e)
    if not written:
        _fail(FileNotFoundError(f"no <model>/card.json under {cards_dir}"))
    for path in written:
        typer.echo(f"rebuilt {path}")
