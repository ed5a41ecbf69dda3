"""`relbench suites list | show | ceiling | build | lock-perturbations`: inspect and regenerate
the prompt suites and the perturbation lock."""

from __future__ import annotations

import json
from typing import Optional

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False)


@app.command("list")
def list_cmd(as_json: bool = typer.Option(False, "--json", help="Print one JSON object")) -> None:
    """Suites (name, version, size, prompt hash) and perturbations (name, version)."""
    from relbench.suites import get_perturbation, get_suite, list_perturbations, list_suites

    suites = [get_suite(n).describe() for n in list_suites()]
    perts = [
        {"name": p.name, "version": p.version, "description": p.description}
        for p in map(get_perturbation, list_perturbations())
    ]
    if as_json:
        typer.echo(json.dumps({"suites": suites, "perturbations": perts}, indent=2))
        return
    typer.echo("suites:")
    for s in suites:
        typer.echo(f"  {s['name']:<20} v{s['version']:<8} {s['size']:>4} prompts  {s['prompt_hash'][:16]}")
    typer.echo("perturbations:")
    for p in perts:
        typer.echo(f"  {p['name']:<20} v{p['version']:<8} {p['description']}")


@app.command("show")
def show_cmd(
    name: str = typer.Argument(..., help="Suite name (see `relbench suites list`)"),
    perturb: Optional[list[str]] = typer.Option(None, "--perturb", help="Perturbation to apply (repeatable)"),
    seed: int = typer.Option(0, help="Perturbation seed"),
    limit: Optional[int] = typer.Option(None, help="Show at most N prompts"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON lines, one per prompt"),
) -> None:
    """The prompts of a suite (optionally perturbed)."""
    suite = _perturbed(name, perturb or [], seed)
    prompts = suite.prompts[:limit] if limit is not None else suite.prompts
    if as_json:
        for p in prompts:
            typer.echo(json.dumps(p.to_row()))
        return
    typer.echo(f"{suite.name} v{suite.version}: {len(suite)} prompts, hash {suite.prompt_hash[:16]}")
    for p in prompts:
        typer.echo(f"  {p.id:<24} {p.relation:<12} {p.prompt}")


@app.command("ceiling")
def ceiling_cmd(
    names: list[str] = typer.Argument(..., help="Suite names (see `relbench suites list`)"),
    perturb: Optional[list[str]] = typer.Option(None, "--perturb", help="Perturbation to apply (repeatable)"),
    seed: int = typer.Option(0, help="Perturbation seed"),
) -> None:
    """The most strict relation accuracy an order-blind encoder (e.g. `rte`) can reach on each
    suite, with two-object images (relbench.suites.ceiling); one JSON line per suite."""
    from relbench.suites.ceiling import order_blind_ceiling

    for name in names:
        suite = _perturbed(name, perturb or [], seed)
        typer.echo(json.dumps({"suite": suite.name, **order_blind_ceiling(suite)}))


def _perturbed(name: str, perturbations: list[str], seed: int):
    """The suite `name` with `perturbations` applied in order; exit 2 naming a bad name."""
    from relbench.suites import get_suite, perturb_suite

    try:
        suite = get_suite(name)
        for p in perturbations:
            suite = perturb_suite(suite, p, seed=seed)
    except ValueError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e
    return suite


@app.command("build")
def build_cmd(
    names: Optional[list[str]] = typer.Argument(None, help="Suites to build (default: all)"),
    write: bool = typer.Option(False, "--write", help="Regenerate the frozen lists"),
) -> None:
    """Check the frozen prompt lists match their definitions (non-zero exit if not); --write
    regenerates them (refused for a changed suite whose version was not bumped)."""
    from relbench.suites import check_frozen, list_suites, write_frozen

    failed = False
    for name in names or list_suites():
        try:
            if write:
                changed = write_frozen(name)
                typer.echo(f"{name}: {'written' if changed else 'unchanged'}")
                continue
            problems = check_frozen(name)
        except (ValueError, FileNotFoundError) as e:
            typer.echo(f"{name}: error: {e}", err=True)
            failed = True
            continue
        if problems:
            failed = True
            typer.echo(f"{name}: out of date: " + "; ".join(problems))
        else:
            typer.echo(f"{name}: ok")
    if failed:
        raise typer.Exit(1)


@app.command("lock-perturbations")
def lock_perturbations_cmd(
    names: Optional[list[str]] = typer.Argument(
        None, help="Perturbations (default: all of relbench's)"),
    write: bool = typer.Option(
        False, "--write", help="Regenerate prompts/frozen/perturbations.json"),
) -> None:
    """Check that each perturbation's output on each registered suite matches the lock
    (non-zero exit if not); --write regenerates it (refused for a changed output whose
    perturbation version was not bumped)."""
    from relbench.suites.perturbation_lock import check_lock, locked_names, write_lock

    if write:
        try:
            changed = write_lock(names or None)
        except ValueError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(1) from None
        typer.echo(f"written: {', '.join(changed)}" if changed else "unchanged")
        return
    failed = False
    for name in names or locked_names():
        try:
            problems = check_lock(name)
        except ValueError as e:
            problems = [str(e)]
        failed = failed or bool(problems)
        typer.echo(f"{name}: " + ("out of date: " + "; ".join(problems) if problems else "ok"))
    if failed:
        raise typer.Exit(1)
