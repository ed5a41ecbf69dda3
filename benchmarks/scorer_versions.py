"""Two scorer versions on the same images: the current checkout's and an earlier git revision's.

    python benchmarks/scorer_versions.py --old 370da7b [--model rtep-micro --suite core]
        [--styled 40] [--show 8]

Writes one image folder per image set (a model's generations for a suite, seeds 0-3; styled
renders, `--styled` per style factor and as many random combinations of three or more), scores
it with this checkout's `relbench score` and with the old revision's (extracted with
`git archive` into a temporary folder and run in a subprocess), and prints each version's
accuracy, how many images only one of them scores correct, how many rows differ in any result
field (verdicts, offsets, reasons, every detection's fields at the row's 4 decimals), and
(`--show`) the reasons of the verdict disagreements. The images are the same bytes for both
versions. `--flat N` adds N random flat scenes at 128 px (the renderer's own images).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2

from relbench.scoring.folder import RESULT_FIELDS

ROOT = Path(__file__).resolve().parent.parent


def _write_folder(out: Path, items) -> None:
    """items: (name, RGB image, spec dict); PNGs + metadata.jsonl in `out`."""
    out.mkdir(parents=True)
    with open(out / "metadata.jsonl", "w") as f:
        for name, image, spec in items:
            cv2.imwrite(str(out / f"{name}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            f.write(json.dumps({"file": f"{name}.png", "spec": spec, "id": name}) + "\n")


def _model_items(model_name: str, suite_name: str, seeds: list[int]):
    from relbench.models import GenerationRequest, load_model
    from relbench.suites import get_suite

    model = load_model(model_name)
    suite = get_suite(suite_name)
    jobs = [(p, s) for p in suite.prompts for s in seeds]
    for i in range(0, len(jobs), 32):
        batch = jobs[i : i + 32]
        images = model.generate([GenerationRequest(p.prompt, s, p.spec) for p, s in batch])
        for (p, s), img in zip(batch, images):
            yield f"{p.id}-s{s}".replace("/", "_"), img, p.spec.to_dict()


def _styled_items(n: int, seed: int):
    from relbench.styles import STYLE_FACTORS, sample_styled

    rng = random.Random(seed)
    sets = [(f,) for f in STYLE_FACTORS for _ in range(n)]
    sets += [tuple(sorted(rng.sample(STYLE_FACTORS, rng.randint(3, len(STYLE_FACTORS)))))
             for _ in range(n)]
    for i, factors in enumerate(sets):
        s = sample_styled(factors, seed=seed * 100_000 + i, size=256)
        yield f"{'+'.join(factors)}-{i}", s.image, s.spec.to_dict()


def _flat_items(n: int, seed: int):
    from scorer import specs_for

    from relbench.render import render
    from relbench.scene import random_scene

    for i in range(n):
        scene = random_scene(random.Random(seed * 1_000_003 + i))
        yield f"flat-{i}", render(scene, 128), specs_for(scene)[0].to_dict()


def _score(folder: Path, out: Path, pythonpath: Path | None) -> dict[str, dict]:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    code = ("import sys; from relbench.cli import main; "
            "sys.argv = ['relbench', 'score', sys.argv[1], '--out', sys.argv[2], '--quiet']; main()")
    subprocess.run([sys.executable, "-c", code, str(folder), str(out)], check=True, env=env,
                   cwd=str(pythonpath or ROOT), stdout=subprocess.DEVNULL)
    rows = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    return {r["id"]: r for r in rows}


def _compare(label: str, old: dict, new: dict, show: int) -> None:
    ids = sorted(new)
    n = len(ids)
    acc_old = sum(bool(old[i]["correct"]) for i in ids) / n
    acc_new = sum(bool(new[i]["correct"]) for i in ids) / n
    only_new = [i for i in ids if new[i]["correct"] and not old[i]["correct"]]
    only_old = [i for i in ids if old[i]["correct"] and not new[i]["correct"]]
    differ = sum(any(old[i].get(f) != new[i].get(f) for f in RESULT_FIELDS) for i in ids)
    print(f"{label:<34} {n:>5} {acc_old:>8.3f} {acc_new:>8.3f} {len(only_old):>9}"
          f" {len(only_new):>9} {differ:>12}")
    for i in only_old[:show]:
        print(f"    only old: {i}: new says {new[i]['reason'][:110]}")
    for i in only_new[:show]:
        print(f"    only new: {i}: old says {old[i]['reason'][:110]}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--old", required=True, help="git revision of the other scorer")
    p.add_argument("--model", default="rtep-micro")
    p.add_argument("--suite", default="core")
    p.add_argument("--styled", type=int, default=40, help="styled images per factor (0: none)")
    p.add_argument("--flat", type=int, default=0, help="random flat 128 px scenes (0: none)")
    p.add_argument("--show", type=int, default=0, help="reasons of disagreements to print")
    args = p.parse_args(argv)
    __import__("_common").print_hardware_header()
    print(f"command: python benchmarks/scorer_versions.py {' '.join(argv or sys.argv[1:])}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        old_src = tmp / "old"
        old_src.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.old],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(old_src)], input=archive, check=True)
        sets = {f"{args.model} on {args.suite} (seeds 0-3)":
                list(_model_items(args.model, args.suite, [0, 1, 2, 3]))}
        if args.styled:
            items = list(_styled_items(args.styled, 0))
            sets["styled, single factors"] = [t for t in items if "+" not in t[0]]
            sets["styled, combinations of >= 3"] = [t for t in items if "+" in t[0]]
        if args.flat:
            sets["flat random scenes, 128 px"] = list(_flat_items(args.flat, 0))
        print(f"\nold scorer: revision {args.old}; new scorer: this checkout")
        print(f"{'images':<34} {'n':>5} {'old acc':>8} {'new acc':>8} {'only old':>9}"
              f" {'only new':>9} {'rows differ':>12}")
        for k, (label, items) in enumerate(sets.items()):
            folder = tmp / f"set{k}"
            _write_folder(folder, items)
            old = _score(folder, tmp / f"old{k}.jsonl", old_src)
            new = _score(folder, tmp / f"new{k}.jsonl", None)
            _compare(label, old, new, args.show)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    raise SystemExit(main())
