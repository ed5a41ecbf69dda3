"""Peak memory and time to the first image of `relbench eval --suite file:PROMPTS.jsonl`, by rows.

    python benchmarks/suite_stream.py [--sizes 1000,100000,1000000] [--held-up-to 100000]
                                      [--log benchmarks/results/suite_stream.txt]

Writes prompt files of each size into a temporary folder (rows drawn, seeded, from every
grammar prompt the two-object vocabulary gives: colour pair × shape pair × phrase × template;
a quarter with an explicit spec, each with an id and an extra field), then for each runs

    relbench eval --model oracle --suite file:FILE --seeds 0 --limit 1 --batch-size 1 --quiet

as a subprocess and reports its wall time to the first image (the first row appearing in
samples.jsonl, polled every 5 ms), its whole wall time, and its peak resident memory (VmHWM,
which the process prints at exit). `--limit 1` stops the run after that image, but the file is still read in full once
before it: every row is checked and the prompt hash is computed (relbench.suites.stream). The
"check" column times that pass alone in this process (`PromptFile.scan`, cold parse caches).
Peak RSS is the eval process's own.
For files up to --held-up-to rows, the "held" columns load the file the way `relbench eval`
did before streaming (`load_suite_file` + `prompt_hash`, a subprocess) for comparison.
Wall times depend on the machine's load; the header names the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PEAK = ("import atexit, sys\n"
        "def _peak():\n"
        "    for line in open('/proc/self/status'):\n"
        "        if line.startswith('VmHWM:'):\n"
        "            sys.stderr.write(f'PEAK_KB {line.split()[1]}\\n')\n"
        "atexit.register(_peak)\n")
"""Prepended to each measured process: prints its own peak resident memory (VmHWM) at exit.
`wait4`'s ru_maxrss would include the forking parent's peak (Linux carries it across exec)."""
EVAL = PEAK + "from relbench.cli import main\nsys.argv[0] = 'relbench'\nmain()\n"
HELD = PEAK + "from relbench.suites import load_suite_file\nload_suite_file(sys.argv[1]).prompt_hash\n"


def prompt_pool() -> list[tuple[str, dict]]:
    """Every (prompt text, spec) of two different shapes in two different colours, each phrase
    and template: the distinct prompts a large user file repeats."""
    from relbench.scene import COLOR_RGB, SHAPES, ObjectSpec, RelationSpec
    from relbench.suites.grammar import format_prompt
    from relbench.suites.phrases import PHRASES

    pool = []
    for rel, phrases in PHRASES.items():
        for c1 in COLOR_RGB:
            for c2 in COLOR_RGB:
                for s1 in SHAPES:
                    for s2 in SHAPES:
                        if c1 == c2 or s1 == s2:
                            continue
                        spec = RelationSpec(ObjectSpec(s1, c1), rel, ObjectSpec(s2, c2))
                        for phrase in phrases:
                            for template in range(1, 7):
                                text = format_prompt(spec, phrase=phrase, template=template)
                                pool.append((text, spec.to_dict()))
    return pool


def write_file(path: Path, n: int, pool: list[tuple[str, dict]], seed: int = 0) -> None:
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            text, spec = pool[rng.randrange(len(pool))]
            row = {"id": f"row-{i:07d}", "prompt": text, "batch": i // 1000}
            if i % 4 == 3:
                row["spec"] = spec
            f.write(json.dumps(row) + "\n")


def run_eval(path: Path, out: Path) -> tuple[float | None, float, float, int]:
    """(seconds to the first image, whole wall seconds, peak RSS MB, exit code) of one
    `relbench eval` process on `path`."""
    argv = [sys.executable, "-c", EVAL, "eval", "--model", "oracle", "--suite", f"file:{path}", "--seeds", "0",
            "--limit", "1", "--batch-size", "1", "--quiet", "--out", str(out)]
    samples = out / "samples.jsonl"
    start = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)
        first = None
        while proc.poll() is None:
            if first is None and samples.is_file() and samples.stat().st_size > 0:
                first = time.perf_counter() - start
            time.sleep(0.005)
        wall = time.perf_counter() - start
        if first is None and samples.is_file() and samples.stat().st_size > 0:
            first = wall
        err.seek(0)
        text = err.read().decode(errors="replace")
    if proc.returncode:
        sys.stderr.write(text[-2000:])
    return first, wall, _peak_mb(text), proc.returncode


def _peak_mb(stderr: str) -> float:
    """The PEAK_KB line a measured process printed, in MB."""
    kb = [line.split()[1] for line in stderr.splitlines() if line.startswith("PEAK_KB ")]
    return int(kb[-1]) / 1024 if kb else float("nan")


def run_held(path: Path) -> tuple[float, float]:
    """(wall seconds, peak RSS MB) of loading and hashing `path` as one held Suite."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", HELD, str(path)], capture_output=True, text=True,
                          check=False)
    if proc.returncode:
        raise SystemExit(f"the held loader failed on {path}: {proc.stderr[-2000:]}")
    return time.perf_counter() - start, _peak_mb(proc.stderr)


def check_seconds(path: Path) -> float:
    """Seconds of one checking pass (`PromptFile.scan`) in this process, parse caches cold."""
    from relbench.suites.grammar import analyse_prompt
    from relbench.suites.stream import PromptFile, _parse_outcome

    _parse_outcome.cache_clear()
    analyse_prompt.cache_clear()
    start = time.perf_counter()
    PromptFile(path).scan()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="1000,100000,1000000", help="rows per file, comma-separated")
    p.add_argument("--held-up-to", type=int, default=100_000,
                   help="also time the held loader on files up to this many rows (0: never)")
    p.add_argument("--log", type=Path, default=None,
                   help="also write the printout to this file (e.g. benchmarks/results/"
                        "suite_stream.txt): published figures come from such logs")
    args = p.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).parent))
    if args.log is not None:
        sys.stdout = __import__("_common").Tee(sys.stdout, args.log)
    __import__("_common").print_hardware_header()
    print(f"command: python benchmarks/suite_stream.py "
          f"{' '.join(argv if argv is not None else sys.argv[1:])}")
    print(f"load: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (1/5/15 min)")
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    pool = prompt_pool()
    print(f"files: rows drawn from {len(pool):,} distinct prompts; eval: relbench eval --model "
          "oracle --suite file:FILE --seeds 0 --limit 1 --batch-size 1 --quiet --out DIR")
    head = (f"{'rows':>9} {'file MB':>8} {'check s':>8} {'1st image s':>11} {'eval s':>7} "
            f"{'peak RSS MB':>11} {'held s':>7} {'held RSS MB':>11}")
    print(head)
    ok = True
    with tempfile.TemporaryDirectory(prefix="relbench-suite-stream-") as tmp:
        for n in sizes:
            path = Path(tmp) / f"prompts-{n}.jsonl"
            write_file(path, n, pool)
            mb = path.stat().st_size / 2**20
            check = check_seconds(path)
            first, wall, rss, rc = run_eval(path, Path(tmp) / f"run-{n}")
            ok &= rc == 0
            held = run_held(path) if n <= args.held_up_to else None
            first_s = "failed" if first is None else f"{first:.2f}"
            held_s = f"{held[0]:>7.2f} {held[1]:>11.0f}" if held else f"{'-':>7} {'-':>11}"
            print(f"{n:>9,} {mb:>8.1f} {check:>8.2f} {first_s:>11} {wall:>7.2f} {rss:>11.0f} "
                  f"{held_s}", flush=True)
            path.unlink()
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
