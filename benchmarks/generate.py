"""Sampling-speed benchmark: images/s for a DiT at 14 sampler steps with CFG 4.5 (the bundled
models' objective `x0`: flow-matching Euler with shift 3; `eps`/`v`: DPM-Solver++).

    python benchmarks/generate.py                       # the bundled rtep-micro, every mode
    python benchmarks/generate.py --modes fp32 bf16 --threads 2
    python benchmarks/generate.py --checkpoint none --preset micro   # random weights, pixel space

Each mode samples the same prompts and seeds in one process, after a warm-up batch of its own
(excluded; for compiled modes it holds the compilation, reported as `warmup_s`):

    fp32          float32 eager (the default everywhere)
    bf16          weights and activations in bfloat16 (`DiTPipeline.bf16`, `relbench eval --bf16`)
    compile       torch.compile (inductor) of the float32 transformer (`--compile`)
    bf16+compile  both

The table gives images/s, the ratio to fp32 measured in the same run, process CPU seconds (on a
shared machine the wall time includes waiting for the CPU; compare ratios, not absolute figures,
across runs) and how far each mode's images are from fp32's: mean and largest |difference| in
uint8 levels. `--json` prints the rows as JSON instead.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
from _common import dit_parser, dit_pipeline, print_hardware_header

BUNDLED = Path(__file__).resolve().parents[1] / "relbench" / "bundled" / "rtep-micro"
MODES = ("fp32", "bf16", "compile", "bf16+compile")


def main(argv: list[str] | None = None) -> None:
    p = dit_parser(__doc__, threads=2)
    p.set_defaults(checkpoint=str(BUNDLED) if BUNDLED.exists() else None)
    p.add_argument("--encoder", default="rtep", help="with random weights")
    p.add_argument("--objective", default="x0", choices=["eps", "v", "flow", "x0"], help="with random weights")
    p.add_argument("--shift", type=float, default=3.0, help="flow-path sampler shift, random weights only")
    p.add_argument("--images", type=int, default=64)
    p.add_argument("--guidance", type=float, default=4.5)
    p.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    a = p.parse_args(argv)
    print_hardware_header(to_stderr=a.json)
    if a.checkpoint in ("none", ""):
        a.checkpoint = None

    from relbench.dit.objectives import FLOW_PATH

    pipe = dit_pipeline(a, encoder=a.encoder, objective=a.objective)
    if not a.checkpoint and a.objective in FLOW_PATH:
        pipe.shift = a.shift
    prompts = ["red circle is above blue square", "blue triangle is to the left of red circle"]
    batch = [prompts[i % 2] for i in range(a.images)]
    seeds = list(range(a.images))

    def sample(n: int) -> list[np.ndarray]:
        return pipe.generate(batch[:n], seeds[:n], steps=a.steps, guidance=a.guidance, batch_size=a.batch_size)

    rows, reference = [], None
    for mode in a.modes:
        pipe.bf16, pipe.compile, pipe._compiled = "bf16" in mode, "compile" in mode, None
        w0 = time.perf_counter()
        sample(a.batch_size)
        warmup = time.perf_counter() - w0
        t0, c0 = time.perf_counter(), time.process_time()
        images = sample(a.images)
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        stack = np.stack(images).astype(np.int16)
        reference = stack if mode == "fp32" else reference
        diff = None if reference is None else np.abs(stack - reference)
        rows.append({
            "mode": mode, "images": a.images, "seconds": round(dt, 3), "images_per_s": round(a.images / dt, 2),
            "cpu_seconds": round(cpu, 2), "warmup_s": round(warmup, 1),
            "mean_abs_diff_vs_fp32": None if diff is None else round(float(diff.mean()), 3),
            "max_abs_diff_vs_fp32": None if diff is None else int(diff.max()),
        })
    base = next((r["images_per_s"] for r in rows if r["mode"] == "fp32"), None)
    for r in rows:
        r["ratio_vs_fp32"] = None if base is None else round(r["images_per_s"] / base, 2)
    setting = {"checkpoint": a.checkpoint, "steps": a.steps, "guidance": a.guidance, "batch_size": a.batch_size,
               "threads": a.threads, "load_avg_1min": round(os.getloadavg()[0], 2), **pipe.describe()["model"]}
    if a.json:
        print(json.dumps({"setting": setting, "rows": rows}, indent=1))
        return
    print(" ".join(f"{k}={v}" for k, v in setting.items()))
    head = ["mode", "images_per_s", "ratio_vs_fp32", "seconds", "cpu_seconds", "warmup_s",
            "mean_abs_diff_vs_fp32", "max_abs_diff_vs_fp32"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        print("| " + " | ".join("–" if r[k] is None else str(r[k]) for k in head) + " |")


if __name__ == "__main__":
    main()
