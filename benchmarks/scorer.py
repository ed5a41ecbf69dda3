"""Accuracy and speed of the classical scorer on a labelled corruption suite.

    python benchmarks/scorer.py [--n 400] [--quick] [--detector default] [--seed 0]
    python benchmarks/scorer.py --styles [--n 400] [--n-combo 800] [--size 256]
    python benchmarks/scorer.py --conventions
    python benchmarks/scorer.py --speed-only     # (and --no-speed: accuracy alone)

For each condition, renders N two-object scenes and scores each image three times: against
its true spec (positive, should be correct), the opposite relation (negative) and the spec
with colours swapped between the two shapes (negative). Agreement = fraction of the 3N
verdicts matching the ground truth; FP(swap) counts swapped-colour negatives scored correct.
Scenes whose true offset lies within --margin-px (default 0.5 px) of the threshold T are
redrawn: the pixels cannot decide them. Throughput: 128 px PNG decode + scoring in this
process, vs decode alone (best of 5 interleaved rounds each).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
from pathlib import Path

import cv2
import numpy as np

from relbench.render import render
from relbench.scene import (
    PAPER_CENTER_RANGE, PAPER_SIZE, INVERSE, ObjectSpec, RelationSpec, Scene, SceneObject,
    STRICT_THRESHOLD, random_scene, strict_relation,
)
from relbench.scoring import detect, judge, load_detector

TARGETS = {"clean": 0.995, "overlap": 0.90}
DEFAULT_TARGET = 0.98


def _overlap_scene(rng: random.Random) -> Scene:
    """Two different shapes whose centres are 0.55-0.9 object sizes apart (they overlap)."""
    s1, s2 = rng.sample(["circle", "square", "triangle"], 2)
    c1, c2 = rng.sample(["red", "blue"], 2)
    lo, hi = PAPER_CENTER_RANGE
    while True:
        x, y = rng.uniform(lo, hi), rng.uniform(lo, hi)
        ang, dist = rng.uniform(0, 2 * math.pi), rng.uniform(0.55, 0.9) * PAPER_SIZE
        x2, y2 = x + dist * math.cos(ang), y + dist * math.sin(ang)
        if lo <= x2 <= hi and lo <= y2 <= hi and strict_relation(x - x2, y - y2) is not None:
            return Scene((SceneObject(s1, c1, x, y), SceneObject(s2, c2, x2, y2)))


def _jpeg(img: np.ndarray, q: int) -> np.ndarray:
    bgr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, q])
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def resolvable(scene: Scene, margin_px: float, size: int = 128) -> bool:
    """Whether the true offsets are at least `margin_px` from the relation threshold T: an
    offset within half a pixel of T is not decided by the pixels, only by sub-pixel truth."""
    dx, dy = scene.offset()
    m = margin_px / size
    return abs(abs(dx) - STRICT_THRESHOLD) >= m and abs(abs(dy) - STRICT_THRESHOLD) >= m


def make_image(
    cond: str, rng: random.Random, nrng: np.random.Generator, margin_px: float = 0.0
) -> tuple[np.ndarray, Scene]:
    """One labelled image for a condition."""
    while True:
        if cond == "overlap":
            scene = _overlap_scene(rng)
        elif cond == "white_bg":
            scene = random_scene(rng, allow_overlap=False, background=(255, 255, 255))
        else:
            scene = random_scene(rng, allow_overlap=False)
        if resolvable(scene, margin_px):
            break
    img = render(scene, 128, antialias=cond in ("antialias", "overlap"))
    if cond == "blur":
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.8, 1.5))
    elif cond == "jpeg":
        img = _jpeg(img, rng.randint(30, 60))
    elif cond == "noise":
        noisy = img.astype(np.float32) + nrng.normal(0, rng.uniform(5, 12), img.shape)
        img = np.clip(noisy + 0.5, 0, 255).astype(np.uint8)
    elif cond.startswith("scale"):
        s = int(cond[5:])
        interp = cv2.INTER_AREA if s < 128 else cv2.INTER_LINEAR
        img = cv2.resize(img, (s, s), interpolation=interp)
    return img, scene


def negatives(spec: RelationSpec) -> tuple[RelationSpec, RelationSpec]:
    """The hard negatives of a true spec: (opposite relation, colours swapped between the
    two shapes)."""
    s, r = spec.subject, spec.reference
    opp = RelationSpec(s, INVERSE[spec.relation], r)
    swap = RelationSpec(ObjectSpec(s.shape, r.color), spec.relation, ObjectSpec(r.shape, s.color))
    return opp, swap


def specs_for(scene: Scene) -> tuple[RelationSpec, RelationSpec, RelationSpec]:
    """(positive, opposite relation, colours swapped)."""
    a, b = scene.objects
    pos = RelationSpec(ObjectSpec(a.shape, a.color), scene.relation(), ObjectSpec(b.shape, b.color))
    return (pos, *negatives(pos))


CONDITIONS = ["clean", "antialias", "blur", "jpeg", "noise", "scale96", "scale256", "scale512",
              "white_bg", "overlap"]


def accuracy(n: int, detector, seed: int, show_failures: int, margin_px: float) -> bool:
    ok_all = True
    print(f"{'condition':<10} {'n':>5} {'agree':>8} {'pos':>7} {'opp':>7} {'FP swap':>7}  target")
    for ci, cond in enumerate(CONDITIONS):
        rng, nrng = random.Random(seed * 1000 + ci), np.random.default_rng(seed * 1000 + ci)
        agree = pos_ok = opp_ok = fp_swap = 0
        shown = 0
        for _ in range(n):
            img, scene = make_image(cond, rng, nrng, margin_px)
            dets = detect(img, detector)
            pos, opp, swap = specs_for(scene)
            rp, ro, rs = judge(dets, pos), judge(dets, opp), judge(dets, swap)
            pos_ok += rp.correct
            opp_ok += not ro.correct
            fp_swap += rs.correct
            agree += rp.correct + (not ro.correct) + (not rs.correct)
            if not rp.correct and shown < show_failures:
                shown += 1
                truth = [(o.shape, o.color, round(o.x, 3), round(o.y, 3)) for o in scene.objects]
                print(f"   [{cond}] {rp.reason}; truth {truth}", file=sys.stderr)
        rate = agree / (3 * n)
        target = TARGETS.get(cond, DEFAULT_TARGET)
        met = rate >= target and fp_swap == 0
        ok_all &= met
        print(f"{cond:<10} {n:>5} {rate:>8.2%} {pos_ok / n:>7.2%} {opp_ok / n:>7.2%} {fp_swap:>7}"
              f"  ≥{target:.1%} {'ok' if met else 'MISSED'}")
    return ok_all


def throughput(n: int, detector, seed: int) -> bool:
    rng, nrng = random.Random(seed), np.random.default_rng(seed)
    blobs, specs = [], []
    for _ in range(n):
        img, scene = make_image("clean", rng, nrng)
        blobs.append(cv2.imencode(".png", cv2.cvtColor(img, cv2.COLOR_RGB2BGR))[1].tobytes())
        specs.append(specs_for(scene)[0])
    t = __import__("_common").decode_vs_score(blobs, specs, detector)
    rate, ratio = n / t["batched"], t["batched"] / t["decode"]
    print(f"\nthroughput (128 px PNG, 1 process): decode+score in batches {rate:,.0f} img/s, "
          f"decode alone {n / t['decode']:,.0f} img/s, ratio {ratio:.2f}x "
          f"(image by image {t['one_by_one'] / t['decode']:.2f}x; targets ≥3,000 img/s, ≤3x)")
    return rate >= 3000 and ratio <= 3.0


def speed_over_processes(args: argparse.Namespace, argv: list[str] | None) -> bool:
    """The 128 / 512 px flat and styled ratios measured in `args.processes` fresh processes;
    prints each row's median, min and max. True when every median is at most 3."""
    import statistics
    import subprocess

    cmd = [sys.executable, __file__, "--speed-only", "--ratios-json", "--n", str(args.n),
           "--seed", str(args.seed), "--detector", args.detector]
    runs = []
    for _ in range(args.processes):
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        runs.append(json.loads(out.strip().splitlines()[-1]))
    print(f"\nthroughput ratio to decoding alone (PNG decode + score against decode, best of 5 "
          f"rounds in each process; {args.processes} processes, {max(args.n, 100)} images a row): "
          "in batches as relbench score runs (the target), and image by image (score_image)")
    print(f"{'images':<26} {'median':>7} {'min':>6} {'max':>6}  per process")
    ok = True
    for row in runs[0]:
        vals = [r[row] for r in runs]
        med = statistics.median(vals)
        target = row.endswith("batched")
        verdict = ("ok" if med <= 3.0 else "MISSED") if target else "(no target)"
        ok &= med <= 3.0 or not target
        print(f"{row:<26} {med:>6.2f}x {min(vals):>5.2f}x {max(vals):>5.2f}x  "
              f"{' '.join(f'{v:.2f}' for v in vals)}  {'≤3x ' if target else ''}{verdict}")
    return ok


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=400, help="images per condition")
    p.add_argument("--quick", action="store_true", help="50 images per condition")
    p.add_argument("--detector", default="default")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--margin-px", type=float, default=0.5,
                   help="redraw scenes whose offset is this close to T (px at 128)")
    p.add_argument("--show-failures", type=int, default=0, help="print reasons of failed positives")
    p.add_argument("--styles", action="store_true",
                   help="instead: agreement per style factor and on random combinations, and "
                        "throughput on flat and styled PNGs at 128 and 512 px "
                        "(benchmarks/_styles.py)")
    p.add_argument("--n-combo", type=int, default=None,
                   help="--styles: random combinations scored (default 2 × --n)")
    p.add_argument("--size", type=int, default=256, help="--styles: image side when the "
                   "resolution factor is off")
    p.add_argument("--conventions", action="store_true",
                   help="instead: the position convention × geometry tables "
                        "(benchmarks/_conventions.py)")
    speed = p.add_mutually_exclusive_group()
    speed.add_argument("--no-speed", action="store_true",
                       help="accuracy only (run the speed tables apart, on an idle machine)")
    speed.add_argument("--speed-only", action="store_true",
                       help="only the throughput: the flat-suite line and the 128 / 512 px flat "
                            "and styled table (benchmarks/results/scorer_speed.txt)")
    p.add_argument("--processes", type=int, default=1,
                   help="--speed-only: measure in this many fresh processes, one after another, "
                        "and print each row's median and range (a process's ratio varies with "
                        "its memory layout and the host's load)")
    p.add_argument("--ratios-json", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--log", type=Path, default=None,
                   help="also write the printout to this file (e.g. benchmarks/results/"
                        "scorer_styles.txt): published figures come from such logs")
    args = p.parse_args(argv)
    if args.log is not None:
        sys.stdout = __import__("_common").Tee(sys.stdout, args.log)
    __import__("_common").print_hardware_header()
    print(f"command: python benchmarks/scorer.py {' '.join(argv if argv is not None else sys.argv[1:])}")
    n = 50 if args.quick else args.n
    if args.conventions:
        import _conventions

        return 0 if _conventions.report(n, args.seed, args.margin_px) else 1
    detector = load_detector(args.detector)
    print(f"detector {detector.name} v{detector.version} ({detector.config_hash[:12]})")
    if args.speed_only:
        import _styles

        print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} (1/5/15 min)")
        if args.ratios_json:  # one measuring process of --processes
            ratios = {}
            for size in (128, 512):
                for st in (False, True):
                    r = _styles.throughput(max(n, 100), detector, args.seed, size, st)
                    label = f"{'styled' if st else 'flat'} {size} px"
                    ratios[f"{label}, batched"] = r["batched"]
                    ratios[f"{label}, one by one"] = r["one_by_one"]
            print(json.dumps(ratios))
            return 0
        if args.processes > 1:
            return 0 if speed_over_processes(args, argv) else 1
        flat_ok = throughput(max(n * 5, 500), detector, args.seed)
        return 0 if _styles.speed_table(max(n, 100), detector, args.seed) and flat_ok else 1
    if args.styles:
        import _styles

        n_combo = args.n_combo if args.n_combo is not None else 2 * n
        acc_ok = _styles.accuracy_table(n, n_combo, detector, args.seed, args.size,
                                        args.show_failures)
        speed_ok = args.no_speed or _styles.speed_table(max(n, 100), detector, args.seed)
        return 0 if acc_ok and speed_ok else 1
    print(f"{n} images per condition; offsets within {args.margin_px} px of T redrawn")
    acc_ok = accuracy(n, detector, args.seed, args.show_failures, args.margin_px)
    speed_ok = args.no_speed or throughput(max(n * 5, 500), detector, args.seed)
    return 0 if acc_ok and speed_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
