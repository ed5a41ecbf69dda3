"""The `relbench` command line: thin wrappers that build a config, call the library, print.

Start-up is kept cheap: the command modules import only typer at module level, and each
command imports the library (numpy, OpenCV, pandas, datasets, torch, ...) inside its body, so
`relbench --help`, a usage error and `relbench score` pay only for what they use
(tests/test_startup.py checks which packages `import relbench.cli` loads; timings in
benchmarks/startup.py).
"""

from __future__ import annotations

import typer

from relbench.cli import circuits, data, leaderboard, log, rescore, score, suites, train
from relbench.cli import eval as eval_cmd

app = typer.Typer(
    name="relbench",
    help="Spatial-relation benchmark for text-to-image diffusion transformers.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(data.app, name="data", help="Build training sets from the renderer.")
app.add_typer(suites.app, name="suites", help="List, show and build prompt suites.")
app.command("score")(score.score)
app.command("eval")(eval_cmd.eval_)
app.command("train")(train.train)
app.command("refine-decoder")(train.refine_decoder)
app.add_typer(log.app, name="log", help="Inspect run directories.")
app.add_typer(leaderboard.app, name="leaderboard", help="Build leaderboards from runs.")
app.command("rescore")(rescore.rescore)
app.add_typer(circuits.app, name="circuits",
              help="Circuit diagnostics of a DiT (synopsis, ablations).")


def main() -> None:
    try:
        app()
    finally:
        # Everything alive now lives until the process ends: left out of the garbage
        # collector's last passes, a `relbench score` process exits some 50 ms sooner
        # (benchmarks/startup.py). Files are closed and flushed by the commands themselves.
        import gc

        gc.freeze()
