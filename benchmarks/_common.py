"""What the DiT benchmarks share: their model options and the pipeline those options describe.

A forward pass costs the same whatever the weights, so without `--checkpoint` each benchmark
times a freshly initialised model of `--preset` (seeded, so runs are comparable).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def dit_parser(doc: str | None, *, threads: int) -> argparse.ArgumentParser:
    """An argument parser (help text `doc`) with the options every DiT benchmark takes:
    --checkpoint, --preset, --image-size, --patch-size (the bundled configs' 64 px, patch 8, i.e.
    8 × 8 tokens), --steps, --batch-size and --threads (default `threads`)."""
    p = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--checkpoint", default=None, help="a DiT checkpoint (default: random weights)")
    p.add_argument("--preset", default="micro", help="model size when no checkpoint is given")
    p.add_argument("--image-size", type=int, default=64, help="pixels, when no checkpoint is given")
    p.add_argument("--patch-size", type=int, default=8, help="when no checkpoint is given")
    p.add_argument("--steps", type=int, default=14)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=threads, help="torch CPU threads")
    return p


def dit_pipeline(a: argparse.Namespace, *, encoder: str = "rtep", objective: str = "eps") -> Any:
    """Set torch's thread count, then load `a.checkpoint`'s `DiTPipeline`, or build a random one
    of `a.preset` with `encoder` and `objective`."""
    import torch

    from relbench.dit.model import ModelConfig
    from relbench.dit.sample import DiTPipeline, build_parts, load_pipeline

    torch.set_num_threads(a.threads)
    if a.checkpoint:
        return load_pipeline(Path(a.checkpoint))
    torch.manual_seed(0)
    net, enc = build_parts(ModelConfig(preset=a.preset, encoder=encoder, image_size=a.image_size,
                                       patch_size=a.patch_size))
    return DiTPipeline(net, enc, objective)


def hardware_header() -> str:
    """One line naming the hardware a benchmark ran on: CPU model, the flags that decide float32
    and bfloat16 speed (avx2, avx512f, avx512_bf16, amx), torch's CPU capability, and the GPUs.
    Speed-ups mean little without it (bf16 is ~1.5x faster with AVX512-BF16, ~10x slower without)."""
    import os

    from relbench.hardware import describe

    hw = describe()
    flags = " ".join(f"{k}={'yes' if v else 'no'}" for k, v in hw["cpu_flags"].items())
    gpus = ", ".join(hw["gpus"]) or "none"
    return (f"hardware: CPU {hw['cpu'] or 'unknown'} ({os.cpu_count()} logical cores; {flags}; "
            f"torch capability {hw['torch_cpu_capability']}; native bf16 "
            f"{'yes' if hw['native_bf16'] else 'no'}); GPU {gpus}")


def print_hardware_header(*, to_stderr: bool = False) -> None:
    """Print `hardware_header()` first thing (on stderr when stdout carries JSON)."""
    import sys

    print(hardware_header(), file=sys.stderr if to_stderr else sys.stdout, flush=True)


def decode_vs_score(
    blobs: list[bytes], specs: list, detector: Any, rounds: int = 5
) -> dict[str, float]:
    """Seconds to decode the PNGs alone (`decode`), to decode and score them image by image
    (`one_by_one`: `score_image` on each) and in batches as `relbench score` does (`batched`:
    each `relbench.scoring.detect.batched` list decoded, then `Detector.score_batch`);
    each the best of `rounds` interleaved rounds: the machine is shared, the minimum is the
    least disturbed measurement, and the ratios compare rounds taken side by side."""
    import time

    import cv2
    import numpy as np

    from relbench.scoring import decode_image, score_image
    from relbench.scoring.detect import batched

    arrays = [np.frombuffer(b, np.uint8) for b in blobs]
    for a, b, s in list(zip(arrays, blobs, specs))[:20]:  # warm-up (tables, caches)
        cv2.imdecode(a, cv2.IMREAD_UNCHANGED)
        score_image(decode_image(b), s, detector)

    def decode() -> None:
        for a in arrays:
            cv2.imdecode(a, cv2.IMREAD_UNCHANGED)

    def one_by_one() -> None:
        for b, s in zip(blobs, specs):
            score_image(decode_image(b), s, detector)

    def in_batches() -> None:  # as relbench score reads and scores its rows
        decoded = ((decode_image(b), s) for b, s in zip(blobs, specs))
        for part in batched(decoded, lambda pair: pair[0]):
            for r in detector.score_batch([im for im, _ in part], [s for _, s in part]):
                if isinstance(r, Exception):
                    raise r

    best = {"decode": float("inf"), "one_by_one": float("inf"), "batched": float("inf")}
    for _ in range(rounds):
        for name, run in (("decode", decode), ("one_by_one", one_by_one), ("batched", in_batches)):
            t0 = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


class Tee:
    """Write to a stream and to a file: a benchmark's `--log` printout, from which published
    figures are taken."""

    def __init__(self, stream: Any, path: Path) -> None:
        self.stream, self.file = stream, open(path, "w", encoding="utf-8")

    def write(self, text: str) -> int:
        self.file.write(text)
        self.file.flush()
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()
        self.file.flush()
