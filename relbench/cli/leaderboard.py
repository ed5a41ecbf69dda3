"""`relbench leaderboard build RUN_DIR... --out DIR`: tables, plots and an HTML page from runs."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False)


@app.callback()
def _leaderboard() -> None:
    """Build leaderboards from run directories."""


@app.command("build")
def build(
    run_dirs: list[Path] = typer.Argument(..., help="Finished run directories (relbench eval)"),
    out: Path = typer.Option(..., "--out", help="Output directory"),
    title: str = typer.Option("relbench leaderboard", help="Page title"),
    note: Optional[str] = typer.Option(None, help="A sentence added under the title"),
) -> None:
    """Write leaderboard.md, leaderboard.csv, leaderboard.json, index.html and PNG plots; refuses
    runs scored with different scorer versions or suite versions."""
    from relbench.leaderboard import build_leaderboard

    try:
        doc = build_leaderboard(run_dirs, out, title=title, note=note)
    except (ValueError, FileNotFoundError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"{len(doc['rows'])} rows from {len(run_dirs)} runs → {out}: "
               + ", ".join(doc["files"][:6]) + (" …" if len(doc["files"]) > 6 else ""))
