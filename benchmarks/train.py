"""Training-speed benchmark: wall time for a bundled DiT to reach 0.5 / 0.8 / 0.9 strict accuracy.

    python benchmarks/train.py report OUT/log.jsonl
    python benchmarks/train.py run configs/train/rtep-micro.json --out /tmp/probe --minutes 20 \
        --set eval_every=250 --set eval_prompts=24

`run` trains (single process, `--threads` torch threads) until the wall-clock budget is spent,
then prints the same report. Accuracy comes from the periodic evaluation rows of the log
(relbench scorer on an evenly spaced subset of the `core` suite, EMA weights).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

TARGETS = (0.5, 0.8, 0.9)


def report(log: Path) -> dict:
    """First wall time (training seconds) at which strict accuracy reached each target."""
    rows = [json.loads(line) for line in Path(log).read_text().splitlines() if line.strip()]
    evals = [r for r in rows if "strict_accuracy" in r]
    losses = [r for r in rows if "loss" in r]
    out = {
        "log": str(log),
        "steps": max((r["step"] for r in rows), default=0),
        "wall_s": max((r.get("wall_s", 0) for r in rows), default=0),
        "final_loss": losses[-1]["loss"] if losses else None,
        "evals": [(r["step"], r["wall_s"], r["strict_accuracy"], r.get("overall")) for r in evals],
        "best_strict": max((r["strict_accuracy"] for r in evals), default=None),
    }
    for t in TARGETS:
        hit = next((r for r in evals if r["strict_accuracy"] >= t), None)
        out[f"wall_s_to_{t}"] = hit["wall_s"] if hit else None
        out[f"step_to_{t}"] = hit["step"] if hit else None
    return out


def run(config: Path | None, out: Path, overrides: list[str], minutes: float, threads: int) -> dict:
    import torch

    from relbench.dit.train import Trainer, TrainConfig, renderer_source

    torch.set_num_threads(threads)
    cfg = TrainConfig.load(config, overrides)
    source = renderer_source(cfg.model.image_size, cfg.seed, cfg.layout_at)
    trainer = Trainer(cfg, out, source=source, progress=False)
    deadline = time.monotonic() + 60 * minutes
    while trainer.step < cfg.steps and time.monotonic() < deadline:
        trainer.run(stop_at=trainer.step + cfg.log_every)
    trainer.save()
    return report(Path(out) / "log.jsonl")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("report")
    r.add_argument("log", type=Path)
    t = sub.add_parser("run")
    t.add_argument("config", type=Path, nargs="?")
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--set", dest="overrides", action="append", default=[])
    t.add_argument("--minutes", type=float, default=20.0)
    t.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    res = report(a.log) if a.cmd == "report" else run(a.config, a.out, a.overrides, a.minutes, a.threads)
    json.dump(res, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
