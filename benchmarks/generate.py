"""Sampling-speed benchmark: images/s for a bundled DiT at 14 sampler steps with CFG 4.5 (the bundled
models' objective `x0`: flow-matching Euler with shift 3; `eps`/`v`: DPM-Solver++).

    python benchmarks/generate.py                       # random-init micro, rtep, 64 px pixels, patch 8
    python benchmarks/generate.py --checkpoint OUT/checkpoints/step_0001000 --threads 2

Speed does not depend on the weights, so without a checkpoint a freshly initialised model of the
chosen preset is timed (one warm-up batch first, excluded). Process CPU seconds and the load
average are reported beside the wall time: on a shared machine the wall time includes waiting for
the CPU. `--bf16` times the same sampler under CPU bf16 autocast (matmuls in bf16), for comparison.
`--compile` runs the transformer through torch.compile; the compilation happens in the warm-up
batch, whose wall time is reported as `warmup_seconds`.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time

from _common import dit_parser, dit_pipeline


def main(argv: list[str] | None = None) -> None:
    p = dit_parser(__doc__, threads=2)
    p.add_argument("--encoder", default="rtep")
    p.add_argument("--objective", default="x0", choices=["eps", "v", "flow", "x0"])
    p.add_argument("--shift", type=float, default=3.0, help="flow-path sampler shift (the bundled configs use 3)")
    p.add_argument("--images", type=int, default=64)
    p.add_argument("--guidance", type=float, default=4.5)
    p.add_argument("--bf16", action="store_true", help="run under torch.autocast('cpu', bfloat16)")
    p.add_argument("--compile", action="store_true", help="torch.compile the transformer (inductor)")
    a = p.parse_args(argv)

    import torch

    from relbench.dit.objectives import FLOW_PATH

    pipe = dit_pipeline(a, encoder=a.encoder, objective=a.objective)
    if not a.checkpoint and a.objective in FLOW_PATH:
        pipe.shift = a.shift
    pipe.compile = a.compile
    prompts = ["red circle is above blue square", "blue triangle is to the left of red circle"]
    batch = [prompts[i % 2] for i in range(a.images)]
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if a.bf16 else contextlib.nullcontext()
    with autocast:
        w0 = time.perf_counter()
        pipe.generate(batch[: a.batch_size], list(range(a.batch_size)), steps=a.steps, guidance=a.guidance,
                      batch_size=a.batch_size)
        warmup = time.perf_counter() - w0
        t0, c0 = time.perf_counter(), time.process_time()
        pipe.generate(batch, list(range(a.images)), steps=a.steps, guidance=a.guidance,
                      batch_size=a.batch_size)
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    json.dump({"images": a.images, "seconds": round(dt, 3), "images_per_s": round(a.images / dt, 2),
               "cpu_seconds": round(cpu, 3), "load_avg_1min": round(os.getloadavg()[0], 2),
               "batch_size": a.batch_size, "steps": a.steps, "guidance": a.guidance,
               "threads": a.threads, "bf16": a.bf16,
               "compile": a.compile, "warmup_seconds": round(warmup, 1), **pipe.describe()["model"]},
              sys.stdout)
    print()


if __name__ == "__main__":
    main()
