"""`relbench data build`: write the paper's training set, regenerated from a seed."""

from __future__ import annotations

import json
import time
from enum import Enum
from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False)


class DatasetFormat(str, Enum):
    hf = "hf"
    imagefolder = "imagefolder"


@app.callback()
def _data() -> None:
    """Build training sets from the renderer."""


@app.command()
def build(
    out: Path = typer.Option(..., "--out", help="Output directory (must be empty or absent)."),
    n: int = typer.Option(10_000, "--n", min=1, help="Number of images."),
    size: int = typer.Option(128, "--size", min=32, max=1024, help="Image side in pixels."),
    seed: int = typer.Option(0, "--seed", help="Dataset seed; row i is drawn from (seed, i)."),
    antialias: bool = typer.Option(
        False, "--antialias", help="Anti-aliased edges (not the paper's look)."
    ),
    no_overlap: bool = typer.Option(
        False, "--no-overlap", help="Redraw layouts whose shapes could overlap."
    ),
    fmt: DatasetFormat = typer.Option(
        DatasetFormat.hf,
        "--format",
        help="hf: datasets.save_to_disk; imagefolder: PNGs + metadata.jsonl (relbench score).",
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace an earlier relbench dataset in OUT."
    ),
    geometry: str = typer.Option(
        "relbench", "--geometry",
        help="relbench: triangles centred on their centroid (the bundled models' data); paper: "
        "the paper's own shapes and labelled positions (its training distribution).",
    ),
    styles: str = typer.Option(
        "", "--styles",
        help="Comma list of style factors (relbench.styles: shading, shadow, background, "
        "outline, geometry, colour, size, resolution, jpeg): draw styled renders instead.",
    ),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar or summary."),
) -> None:
    """Render N images of the paper's two-object distribution with captions and specs."""
    from relbench.data import save_dataset  # datasets and pandas load only for this command

    start = time.perf_counter()
    try:
        manifest = save_dataset(
            out,
            n,
            size=size,
            seed=seed,
            antialias=antialias,
            allow_overlap=not no_overlap,
            fmt=fmt.value,
            overwrite=overwrite,
            progress=not quiet,
            geometry=geometry,
            styles=[f for f in styles.split(",") if f.strip()],
        )
    except (FileExistsError, ValueError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(code=2) from None
    if not quiet:
        elapsed = time.perf_counter() - start
        typer.echo(f"wrote {n} images to {out} in {elapsed:.1f} s ({n / elapsed:.0f} img/s)")
        typer.echo(json.dumps(manifest, indent=2))
