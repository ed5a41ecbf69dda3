"""Training-speed benchmark: wall time for a bundled DiT to reach 0.5 / 0.8 / 0.9 strict accuracy.

    python benchmarks/train.py report relbench/bundled/rtep-micro/train_log.jsonl \
        relbench/bundled/minilm-micro/train_log.jsonl [--json]
    python benchmarks/train.py run configs/train/rtep-micro.json --out /tmp/probe --minutes 20 \
        --set eval_every=250 --set eval_prompts=24

`report` prints one row per log: steps and training minutes to each target (first periodic
evaluation at or above it) and each as a ratio of the first log's minutes; `--json` prints the
full reports instead. `run` trains (single process, `--threads` torch threads) until the
wall-clock budget is spent, then prints the same report as JSON. Accuracy comes from the
periodic evaluation rows of the log (relbench scorer on an evenly spaced subset of the `core`
suite, EMA weights).
"""

from __future__ import annotations

import argparse
import importlib.util
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

    from relbench.dit.train import Trainer, TrainConfig

    torch.set_num_threads(threads)
    cfg = TrainConfig.load(config, overrides)
    trainer = Trainer(cfg, out, progress=False)  # the renderer's scenes under cfg's layouts
    deadline = time.monotonic() + 60 * minutes
    while trainer.step < cfg.steps and time.monotonic() < deadline:
        trainer.run(stop_at=trainer.step + cfg.log_every)
    trainer.save()
    return report(Path(out) / "log.jsonl")


def table(reports: list[dict]) -> str:
    """The reports as a Markdown table: per target, step and minutes, and minutes as a ratio of
    the first report's (– where a run never reached the target)."""
    head = ["log", "steps", "minutes", "best strict"] + [f"to {t}: step, min (× first)" for t in TARGETS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    first = reports[0] if reports else {}
    for r in reports:
        cells = [r["log"], str(r["steps"]), f"{r['wall_s'] / 60:.1f}",
                 "–" if r["best_strict"] is None else f"{r['best_strict']:.3f}"]
        for t in TARGETS:
            wall, base = r[f"wall_s_to_{t}"], first.get(f"wall_s_to_{t}")
            if wall is None:
                cells.append("–")
                continue
            ratio = f" ({wall / base:.2f}×)" if base else ""
            cells.append(f"{r[f'step_to_{t}']}, {wall / 60:.1f}{ratio}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("report")
    r.add_argument("logs", type=Path, nargs="+")
    r.add_argument("--json", action="store_true", help="print the full reports as JSON")
    t = sub.add_parser("run")
    t.add_argument("config", type=Path, nargs="?")
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--set", dest="overrides", action="append", default=[])
    t.add_argument("--minutes", type=float, default=20.0)
    t.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    spec = importlib.util.spec_from_file_location("_common", Path(__file__).with_name("_common.py"))
    common = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(common)  # beside this file, however the script was started
    common.print_hardware_header(to_stderr=True)
    if a.cmd == "report":
        reports = [report(log) for log in a.logs]
        if not a.json:
            print(table(reports))
            return
        res: dict | list[dict] = reports[0] if len(reports) == 1 else reports
    else:
        res = run(a.config, a.out, a.overrides, a.minutes, a.threads)
    json.dump(res, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
