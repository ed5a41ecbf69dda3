"""Whether the scorer's verdict on an image depends on the images it read before.

    python benchmarks/scorer_order.py [--n 400] [--seed 7] [--log FILE]

A detector builds a flat background's whole distance table (6-bit colour cells, rounded) only
the second time it meets that background (relbench.scoring.detect.Detector.foreground_table);
the first time, it computes the same cell distances for that image's pixels alone
(Detector.cell_distances). Up to scorer 2.1.0 the first image was read with exact float
distances instead, so an image's result could depend on what the same process scored before it
(its position in a folder, `--workers`, a resume). For each flat-background image of the flat
corruption suite (benchmarks/scorer.py's conditions whose border is one colour), this reads it
with the background unseen and again through the table, and counts the images whose detections
differ (any field, as written to 4 decimals) and those where a verdict differs (the true spec or
either negative): both must be 0.
"""

from __future__ import annotations

import argparse
import importlib
import random
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

CONDITIONS = ("clean", "antialias", "blur", "scale256", "white_bg", "overlap")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=400, help="images per condition")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--log", type=Path, default=None, help="also write the printout here")
    a = p.parse_args(argv)
    import _common
    import scorer

    if a.log is not None:
        sys.stdout = _common.Tee(sys.stdout, a.log)
    _common.print_hardware_header()
    print(f"command: python benchmarks/scorer_order.py "
          f"{' '.join(argv if argv is not None else sys.argv[1:])}")
    from relbench.scoring import load_detector
    from relbench.scoring.judge import judge

    detect = importlib.import_module("relbench.scoring.detect")
    det = load_detector("default")
    print(f"detector {det.name} v{det.version} ({det.config_hash[:12]})")
    print(f"{'condition':<10} {'images':>7} {'detections differ':>18} {'a verdict differs':>18}")
    totals = [0, 0, 0]
    for cond in CONDITIONS:
        rng, nrng = random.Random(a.seed), np.random.default_rng(a.seed)
        counts = [0, 0, 0]
        for _ in range(a.n):
            image, scene = scorer.make_image(cond, rng, nrng)
            specs = scorer.specs_for(scene)
            det._dist.clear()
            det._seen.clear()
            direct = detect.detect(image, det)  # background unseen: direct distances
            detect.detect(image, det)  # seen twice: the table is built
            if not det._dist:
                continue  # the border is not one flat colour: no table path
            table = detect.detect(image, det)
            counts[0] += 1
            counts[1] += [d.to_dict() for d in direct] != [d.to_dict() for d in table]
            counts[2] += ([judge(direct, s).correct for s in specs]
                          != [judge(table, s).correct for s in specs])
        totals = [t + c for t, c in zip(totals, counts)]
        print(f"{cond:<10} {counts[0]:>7} {counts[1]:>18} {counts[2]:>18}")
    print(f"{'all':<10} {totals[0]:>7} {totals[1]:>18} {totals[2]:>18}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
