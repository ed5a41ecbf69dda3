"""Attention-synopsis cost: a synopsis against plain generation of the same images.

    python benchmarks/circuits.py       # micro DiT (random weights), 24 core prompts × 2 seeds
    python benchmarks/circuits.py --prompts 96 --seeds 4 --threads 2 --checkpoint CKPT_DIR

A forward pass costs the same whatever the weights, so a freshly initialised micro DiT stands in
for a trained one (its images are noise, so the scorer binds few objects: the per-image mask
work of a trained model is not all exercised, but every image is still scored). Both runs
generate the same prompts, seeds, steps and batches; the synopsis adds the hooked attention
(explicit per-head probabilities, on-the-fly reduction), scoring and object masks, and writing
its files. One warm-up batch (not counted) pays one-time costs. Peak memory is the process's
maximum resident set size (getrusage) after both runs, and tracemalloc's peak of Python/numpy
allocations during the synopsis (torch tensors are not traced). Target: synopsis ≤ 3× plain
generation, peak < 4 GiB.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from _common import dit_parser, dit_pipeline, print_hardware_header

TARGET_RATIO = 3.0
TARGET_PEAK_GIB = 4.0


def main(argv: list[str] | None = None) -> None:
    p = dit_parser(__doc__, threads=1)
    p.add_argument("--prompts", type=int, default=24)
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--json", action="store_true", help="print the numbers as JSON, not a table")
    a = p.parse_args(argv)
    print_hardware_header(to_stderr=a.json)

    from relbench.circuits.synopsis import load_suite, select_prompts, synopsis
    from relbench.models.dit_adapter import DiTModel

    pipe = dit_pipeline(a)
    model = DiTModel(f"{a.preset}-random", pipe, steps=a.steps, batch_size=a.batch_size)
    prompts = select_prompts(load_suite("core"), a.prompts)
    seeds = list(range(a.seeds))
    texts = [q.prompt for q in prompts for _ in seeds]
    seed_list = [s for _ in prompts for s in seeds]

    with tempfile.TemporaryDirectory() as tmp:
        # Warm-up (not counted): one small batch through each path.
        pipe.generate(texts[:4], seed_list[:4], steps=a.steps, batch_size=a.batch_size)
        synopsis(model, "core", n_prompts=2, seeds=[0], steps=a.steps, out=Path(tmp) / "warm",
                 batch_size=a.batch_size)

        w0, c0 = time.perf_counter(), time.process_time()
        pipe.generate(texts, seed_list, steps=a.steps, batch_size=a.batch_size)
        plain = (time.perf_counter() - w0, time.process_time() - c0)

        tracemalloc.start()
        w0, c0 = time.perf_counter(), time.process_time()
        result = synopsis(model, "core", n_prompts=a.prompts, seeds=seeds, steps=a.steps,
                          out=Path(tmp) / "synopsis", batch_size=a.batch_size)
        syn = (time.perf_counter() - w0, time.process_time() - c0)
        traced_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()

    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    out = {
        "images": len(texts), "prompts": len(prompts), "seeds": a.seeds, "steps": a.steps,
        "batch_size": a.batch_size, "threads": a.threads, "preset": a.preset,
        "n_bound": result.info["n_bound"],
        "wall_s": {"plain": round(plain[0], 2), "synopsis": round(syn[0], 2)},
        "cpu_s": {"plain": round(plain[1], 2), "synopsis": round(syn[1], 2)},
        "ratio_wall": round(syn[0] / plain[0], 3), "ratio_cpu": round(syn[1] / plain[1], 3),
        "peak_rss_gib": round(peak_rss / 2**30, 3),
        "tracemalloc_peak_mib": round(traced_peak / 2**20, 1),
        "load_avg_1min": round(os.getloadavg()[0], 2),
    }
    if a.json:
        json.dump(out, sys.stdout, indent=2)
        print()
        return
    print(f"{out['images']} images ({len(prompts)} core prompts × {a.seeds} seeds), "
          f"{a.steps} steps, {a.preset} DiT, batch {a.batch_size}, {a.threads} torch threads, "
          f"1-min load average {out['load_avg_1min']:.1f}\n")
    print("| run | wall s | cpu s |\n|---|---|---|")
    print(f"| plain generation | {plain[0]:.2f} | {plain[1]:.2f} |")
    print(f"| synopsis (hooks, scoring, masks, files) | {syn[0]:.2f} | {syn[1]:.2f} |")
    ok_time = out["ratio_cpu"] <= TARGET_RATIO
    ok_mem = out["peak_rss_gib"] < TARGET_PEAK_GIB
    print(f"\nsynopsis / plain: {out['ratio_wall']:.2f}× wall, {out['ratio_cpu']:.2f}× cpu "
          f"({'meets' if ok_time else 'misses'} the ≤ {TARGET_RATIO:.0f}× target); peak RSS "
          f"{out['peak_rss_gib']:.2f} GiB ({'meets' if ok_mem else 'misses'} the < "
          f"{TARGET_PEAK_GIB:.0f} GiB target); tracemalloc peak "
          f"{out['tracemalloc_peak_mib']:.1f} MiB")


if __name__ == "__main__":
    main()
