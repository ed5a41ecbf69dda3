"""The style part of `benchmarks/scorer.py --styles`: agreement per style factor alone and on
random combinations of three or more factors, and throughput on flat and styled PNGs.

Agreement, as for the flat conditions: each image is judged three times, against its true
spec (a positive), the opposite relation and the spec with colours swapped between the shapes
(hard negatives); agreement is the share of the 3N verdicts that match the truth, FP counts
negatives scored correct. Images come from `relbench.styles.sample_styled`, whose layouts are
unambiguous under any reasonable centre definition.
"""

from __future__ import annotations

import random
import sys

import cv2
import numpy as np

from relbench.scoring import detect, judge
from relbench.styles import STYLE_FACTORS, sample_styled
from scorer import negatives

SINGLE_TARGET = 0.98
COMBO_TARGET = 0.95
COMBO_MIN_FACTORS = 3


def _combo(rng: random.Random) -> tuple[str, ...]:
    k = rng.randint(COMBO_MIN_FACTORS, len(STYLE_FACTORS))
    return tuple(sorted(rng.sample(STYLE_FACTORS, k)))


def agreement(factors, n: int, detector, seed: int, size: int, show: int = 0,
              combos: bool = False) -> dict:
    """Score n styled images; returns counts and the share of verdicts matching the truth."""
    rng = random.Random(seed)
    pos = opp_ok = fp_swap = fp_opp = shown = 0
    for i in range(n):
        fs = _combo(rng) if combos else factors
        s = sample_styled(fs, seed=seed * 100_003 + i, size=size)
        dets = detect(s.image, detector)
        opp, swap = negatives(s.spec)
        rp, ro, rs = judge(dets, s.spec), judge(dets, opp), judge(dets, swap)
        pos += rp.correct
        opp_ok += not ro.correct
        fp_opp += ro.correct
        fp_swap += rs.correct
        if not rp.correct and shown < show:
            shown += 1
            print(f"   [{'+'.join(fs) or 'flat'} seed {seed * 100_003 + i}] {rp.reason}; "
                  f"factors {s.factors}", file=sys.stderr)
    agree = (pos + (n - fp_opp) + (n - fp_swap)) / (3 * n)
    return {"n": n, "agree": agree, "pos": pos / n, "fp_opp": fp_opp, "fp_swap": fp_swap}


def accuracy_table(n: int, n_combo: int, detector, seed: int, size: int, show: int) -> bool:
    """Print agreement per factor alone and on random combinations; True when targets met."""
    ok_all = True
    print(f"\nstyled images ({size} px unless the factor sets it), {n} per factor, "
          f"{n_combo} random combinations of >= {COMBO_MIN_FACTORS} factors")
    print(f"{'factors':<22} {'n':>5} {'agree':>8} {'pos':>8} {'FP opp':>7} {'FP swap':>7}  target")
    rows = [((), "flat", SINGLE_TARGET)] + [((f,), f, SINGLE_TARGET) for f in STYLE_FACTORS]
    for i, (fs, label, target) in enumerate(rows):
        r = agreement(fs, n, detector, seed * 1000 + i, size, show)
        met = r["pos"] >= target and r["fp_opp"] == 0 and r["fp_swap"] == 0
        ok_all &= met
        print(f"{label:<22} {r['n']:>5} {r['agree']:>8.2%} {r['pos']:>8.2%} {r['fp_opp']:>7} "
              f"{r['fp_swap']:>7}  pos ≥{target:.0%} {'ok' if met else 'MISSED'}")
    r = agreement((), n_combo, detector, seed * 1000 + 999, size, show, combos=True)
    met = r["pos"] >= COMBO_TARGET and r["fp_opp"] == 0 and r["fp_swap"] == 0
    ok_all &= met
    print(f"{'combinations (>=3)':<22} {r['n']:>5} {r['agree']:>8.2%} {r['pos']:>8.2%} "
          f"{r['fp_opp']:>7} {r['fp_swap']:>7}  pos ≥{COMBO_TARGET:.0%} "
          f"{'ok' if met else 'MISSED'}")
    return ok_all


def speed_table(n: int, detector, seed: int) -> bool:
    """Throughput at 128 and 512 px on flat and styled PNGs, in batches as `relbench score`
    scores and image by image; True when every batched ratio is at most 3."""
    ok = True
    print(f"\nthroughput (PNG decode + score, 1 process, best of 5 rounds; {n} images a row): "
          "in batches as relbench score runs, and image by image (score_image)")
    print(f"{'images':<16} {'img/s':>8} {'x decode':>9} {'one by one':>11}  target (batched)")
    for size in (128, 512):
        for styled in (False, True):
            r = throughput(n, detector, seed, size, styled)
            met = r["batched"] <= 3.0
            ok &= met
            label = f"{'styled' if styled else 'flat'} {size} px"
            print(f"{label:<16} {r['rate']:>8,.0f} {r['batched']:>8.2f}x {r['one_by_one']:>10.2f}x"
                  f"  ≤3x {'ok' if met else 'MISSED'}")
    return ok


def _png(img: np.ndarray) -> bytes:
    return cv2.imencode(".png", cv2.cvtColor(img, cv2.COLOR_RGB2BGR))[1].tobytes()


def throughput(n: int, detector, seed: int, size: int, styled: bool) -> dict[str, float]:
    """Images/s of decode + score in batches (`rate`) and the ratios of decode + score to decode
    alone, in batches (`batched`) and image by image (`one_by_one`), on n PNGs, best of 5
    interleaved rounds of each in this process."""
    blobs, specs = [], []
    rng = random.Random(seed)
    for i in range(n):
        fs = tuple(f for f in _combo(rng) if f != "resolution") if styled else ()
        s = sample_styled(fs, seed=seed * 7919 + i, size=size)
        blobs.append(_png(s.image))
        specs.append(s.spec)
    t = __import__("_common").decode_vs_score(blobs, specs, detector)
    return {"rate": n / t["batched"], "batched": t["batched"] / t["decode"],
            "one_by_one": t["one_by_one"] / t["decode"]}
