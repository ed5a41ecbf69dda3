"""Harness overhead: how much of a `run_eval` is spent outside the model's forward passes.

    python benchmarks/harness.py                  # micro DiT (random weights), 24 core prompts × 2 seeds
    python benchmarks/harness.py --prompts 48 --seeds 4 --threads 2 --checkpoint CKPT_DIR

A forward pass costs the same whatever the weights, so a freshly initialised micro DiT stands in
for a trained one. Times are taken with hooks on the DiT module (forward passes), a wrapper
around `generate` (everything the model does: text encoding, noise, scheduler, decoding) and
around the whole `run_eval` (adds scoring, the samples file, the summary). A small warm-up run
(not counted) pays one-time costs such as imports. Wall and process-CPU seconds are both shown:
on a shared machine the wall times include waiting for the CPU, the CPU times do not.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

from _common import dit_parser, dit_pipeline, print_hardware_header

TARGET_OVERHEAD = 0.10


class Clock:
    """Accumulated wall and CPU seconds of a repeated section."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.wall = self.cpu = 0.0
        self.calls = 0
        self._start: tuple[float, float] | None = None

    def start(self) -> None:
        self._start = (time.perf_counter(), time.process_time())

    def stop(self) -> None:
        assert self._start is not None
        self.wall += time.perf_counter() - self._start[0]
        self.cpu += time.process_time() - self._start[1]
        self.calls += 1
        self._start = None


def _prompt_file(n: int, folder: Path) -> Path:
    """`n` evenly spaced prompts of the `core` suite as a prompt file."""
    import numpy as np

    from relbench.suites import get_suite

    prompts = list(get_suite("core").prompts)
    idx = np.linspace(0, len(prompts) - 1, min(n, len(prompts))).round().astype(int)
    path = folder / f"core_{n}.jsonl"
    path.write_text("".join(json.dumps({"prompt": prompts[i].prompt}) + "\n" for i in idx))
    return path


def main(argv: list[str] | None = None) -> None:
    p = dit_parser(__doc__, threads=2)
    p.add_argument("--prompts", type=int, default=24)
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--guidance", type=float, default=4.5)
    p.add_argument("--json", action="store_true", help="print the numbers as JSON instead of a table")
    a = p.parse_args(argv)
    print_hardware_header(to_stderr=a.json)

    from relbench.models.dit_adapter import DiTModel
    from relbench.runner import EvalConfig, run_eval

    pipe = dit_pipeline(a)
    model = DiTModel(f"{a.preset}-random", pipe, steps=a.steps, guidance=a.guidance, batch_size=a.batch_size)

    forward, generate, total = Clock(), Clock(), Clock()
    pipe.model.register_forward_pre_hook(lambda *_: forward.start())
    pipe.model.register_forward_hook(lambda *_: forward.stop())
    inner = model.generate

    def timed_generate(requests):
        generate.start()
        try:
            return inner(requests)
        finally:
            generate.stop()

    model.generate = timed_generate  # type: ignore[method-assign]

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        warm = EvalConfig("bench", f"file:{_prompt_file(1, tmp_path)}", seeds=[0], batch_size=a.batch_size)
        run_eval(warm, tmp_path / "warm", progress=False, model=model)
        forward.reset()
        generate.reset()
        cfg = EvalConfig("bench", f"file:{_prompt_file(a.prompts, tmp_path)}", seeds=list(range(a.seeds)),
                         batch_size=a.batch_size)
        total.start()
        summary = run_eval(cfg, tmp_path / "run", progress=False, model=model)
        total.stop()

    n = summary["metrics"]["n_scored"] + summary["metrics"]["n_unscorable"]
    result = {
        "images": n, "steps": a.steps, "guidance": a.guidance, "batch_size": a.batch_size,
        "threads": a.threads, "forward_passes": forward.calls,
        "wall_s": {"forward": forward.wall, "generate": generate.wall, "run_eval": total.wall},
        "cpu_s": {"forward": forward.cpu, "generate": generate.cpu, "run_eval": total.cpu},
        "overhead": (total.wall - forward.wall) / total.wall,
        "harness_overhead": (total.wall - generate.wall) / total.wall,
        "load_avg_1min": os.getloadavg()[0],
    }
    if a.json:
        json.dump(result, sys.stdout, indent=2)
        print()
        return
    rows = [
        ("forward passes", forward.wall, forward.cpu),
        ("rest of generation (encoder, scheduler, decode)", generate.wall - forward.wall,
         generate.cpu - forward.cpu),
        ("harness (scoring, samples file, summary)", total.wall - generate.wall, total.cpu - generate.cpu),
        ("whole run_eval", total.wall, total.cpu),
    ]
    print(f"{n} images ({a.prompts} core prompts × {a.seeds} seeds), {a.steps} steps, CFG {a.guidance}, "
          f"batch {a.batch_size}, {a.threads} torch threads, {forward.calls} forward passes, "
          f"1-min load average {result['load_avg_1min']:.1f}\n")
    print("| part | wall s | wall % | cpu s |\n|---|---|---|---|")
    for name, wall, cpu in rows:
        print(f"| {name} | {wall:.2f} | {100 * wall / total.wall:.1f} | {cpu:.2f} |")
    verdict = "meets" if result["overhead"] <= TARGET_OVERHEAD else "misses"
    print(f"\noverhead outside forward passes: {100 * result['overhead']:.1f} % of wall time "
          f"({verdict} the ≤ {100 * TARGET_OVERHEAD:.0f} % target); harness alone "
          f"{100 * result['harness_overhead']:.1f} %")


if __name__ == "__main__":
    main()
