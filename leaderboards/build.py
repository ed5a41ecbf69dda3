"""Rebuild the published leaderboard in this folder.

    python leaderboards/build.py                # run the missing evaluations, then build the board
    python leaderboards/build.py --runs-only    # only the evaluations
    python leaderboards/build.py --board-only   # only the tables, page and plots
    python leaderboards/build.py --models oracle chance rte-micro
    python leaderboards/build.py --models rtep-micro --suites core   # core and its perturbations only

Each (model, suite) is one run log under `runs/<model>/<suite>/` (run.json, samples.jsonl
without per-row detections, summary.json; no images), seeds 0-3: `core` with every registered perturbation, and every other
suite (`profile`, the OOD suites) as is. A finished run that matches the current model (name,
args, checkpoint hash), suite, scorer and seeds is skipped; a matching run killed before its
summary resumes; a stale one is deleted and run again (the board refuses to mix versions).
`--rerun` redoes the chosen models' runs anyway (e.g. after a change to a baseline's code).
Models that `relbench.models` cannot load (a bundled DiT not trained yet) are skipped with a
message. The board (leaderboard.md/.csv/.json, index.html, PNG plots) is written here, and the
board's numbers in README.md and docs/*.md (their `<!-- board:... -->` regions) are rewritten
from leaderboard.json (relbench.leaderboard_docs).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from relbench.leaderboard import build_leaderboard
from relbench.models import load_model
from relbench.runner import RUN_INFO, SUMMARY, EvalConfig, run_eval
from relbench.scoring import load_detector
from relbench.suites import (
    get_perturbation, get_suite, list_perturbations, list_suites, perturb_suite,
)

HERE = Path(__file__).resolve().parent
RUNS = HERE / "runs"
MODELS = ["oracle", "chance", "rte-micro", "rtep-micro", "minilm-micro"]
SEEDS = [0, 1, 2, 3]
DETECTOR = "default"
PERTURBED_SUITE = "core"
NOTE = "Rebuild with `python leaderboards/build.py`; run logs are in `runs/<model>/<suite>/`."


def plan() -> list[tuple[str, list[str]]]:
    """(suite, perturbations) of every run a model gets."""
    return [(s, list_perturbations() if s == PERTURBED_SUITE else []) for s in list_suites()]


def expected_info(model: dict, suite: str, perturbations: list[str]) -> dict:
    """The run.json fields a current run of (model, suite, perturbations) must have."""
    base = get_suite(suite)
    det = load_detector(DETECTOR)
    return {
        "model": json.loads(json.dumps(model)),  # as stored: tuples become lists
        "suite_version": base.version,
        "prompt_hash": base.prompt_hash,
        "perturbations": [[p, get_perturbation(p).version, perturb_suite(base, p).prompt_hash]
                          for p in perturbations],
        "scorer_version": det.version,
        "scorer_config_hash": det.config_hash,
        "seeds": SEEDS,
    }


def matches(run_dir: Path, want: dict) -> bool:
    """Whether the run.json in `run_dir` records the wanted model, suite (and perturbation
    names, versions and hashes), scorer and seeds."""
    if not (run_dir / RUN_INFO).is_file():
        return False
    info = json.loads((run_dir / RUN_INFO).read_text())
    have = {k: info.get(k) for k in want}
    have["perturbations"] = [[p.get("name"), p.get("version"), p.get("prompt_hash")]
                             for p in info.get("perturbations", [])]
    return have == want


def run_model(name: str, quiet: bool, rerun: bool = False, suites: list[str] | None = None) -> int:
    """Run every missing or stale evaluation of one model (all of them with `rerun`), on
    `suites` only when given; the number of runs made."""
    try:
        model = load_model(name)
    except (ValueError, ImportError, FileNotFoundError, OSError) as e:
        print(f"{name}: skipped, cannot be loaded ({e})")
        return 0
    made = 0
    for suite, perts in plan():
        if suites is not None and suite not in suites:
            continue
        out = RUNS / name / suite
        want = expected_info(model.describe(), suite, perts)
        current = matches(out, want) and not rerun
        if current and (out / SUMMARY).is_file():
            print(f"{name} on {suite}: up to date")
            continue
        if out.exists() and not current:
            why = "--rerun" if rerun else "stale (model, suite, scorer or seeds changed)"
            print(f"{name} on {suite}: {why}; running it again")
            shutil.rmtree(out)
        cfg = EvalConfig(name, suite, perturbations=perts, seeds=SEEDS, detector=DETECTOR)
        summary = run_eval(cfg, out, progress=not quiet, model=model)
        compact(out)
        print(f"{name} on {suite}: overall {summary['metrics']['overall']}")
        made += 1
    return made


def compact(run_dir: Path) -> None:
    """Drop the per-row `detections` from a finished board run's samples.jsonl (about 30 % of
    its size): the board reads verdicts, found attributes and reasons, and a log without images
    cannot be re-scored anyway. Written through a temporary file, so a kill loses nothing."""
    path = run_dir / "samples.jsonl"
    tmp = path.with_suffix(".jsonl.tmp")
    with open(path, encoding="utf-8") as src, open(tmp, "w", encoding="utf-8") as dst:
        for line in src:
            row = json.loads(line)
            row.pop("detections", None)
            dst.write(json.dumps(row) + "\n")
    tmp.replace(path)


def build_board() -> dict:
    runs = sorted(p.parent for p in RUNS.glob(f"*/*/{RUN_INFO}"))
    if not runs:
        raise SystemExit(f"no runs under {RUNS}; run without --board-only first")
    from relbench.circuits.card import rebuild_cards

    try:  # the circuit cards, from the inputs published beside them (hashes checked)
        rebuild_cards(HERE / "cards")
    except FileNotFoundError as e:
        print(f"circuit cards kept as they are: {e}")
    doc = build_leaderboard(runs, HERE, title="relbench leaderboard", note=NOTE)
    from relbench.leaderboard_docs import documents, update_files

    for path in update_files(documents(HERE.parent), doc):  # README.md, docs/*.md: numbers
        print(f"updated the board's numbers in {path.relative_to(HERE.parent)}")
    return doc


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    step = parser.add_mutually_exclusive_group()
    step.add_argument("--runs-only", action="store_true", help="run evaluations, skip the board")
    step.add_argument("--board-only", action="store_true", help="build the board from the runs")
    parser.add_argument("--models", nargs="+", default=MODELS, help="models to evaluate")
    parser.add_argument("--suites", nargs="+", default=None, choices=list_suites(),
                        help="evaluate only these suites (default: all)")
    parser.add_argument("--rerun", action="store_true",
                        help="run the chosen models' evaluations again even if up to date")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    if not args.board_only:
        for name in args.models:
            run_model(name, args.quiet, args.rerun, args.suites)
    if not args.runs_only:
        doc = build_board()
        print(f"board: {len(doc['rows'])} rows → {HERE} ({', '.join(doc['files'][:6])})")


if __name__ == "__main__":
    sys.exit(main())
