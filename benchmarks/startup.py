"""Start-up cost of the `relbench` command, and a whole `relbench score` process against decoding.

    python benchmarks/startup.py [--n 6000] [--repeats 5] [--size 128] [--workers 1] [--log FILE]

Compiles relbench's bytecode first, as an installed package has it (a checkout run with
PYTHONDONTWRITEBYTECODE set would otherwise compile its edited modules in every process).
Renders N flat two-object PNGs (relbench.render of relbench.scene.random_scene, seeded) with a
metadata.jsonl of prompts into a temporary folder, then times, best of --repeats interleaved
rounds each:

- `relbench --help` (a process: interpreter, typer, the command table);
- `relbench score` on a one-image folder (a process: what every scoring run pays before its
  first image);
- `relbench score` on the N images (a whole process, as a user runs it);
- `relbench.scoring.score_folder` on the N images in this process, its detector already built
  (what scoring itself costs);
- reading and decoding the same N PNGs with `cv2.imdecode` alone, in this process;

and then, in fresh processes, where the start-up goes: the bare interpreter, importing numpy
and OpenCV, the rest of relbench.scoring, OpenCV's first CIELAB conversion (it builds its
conversion tables once per process), building the default detector, importing relbench.cli.

The ratio of the whole `relbench score` process to decoding alone is the headline (target
≤ 3×), given two ways, each with its verdict: the best whole process over the best decoding
(the usual best-of timing, which on a busy machine may pair two lucky moments), and the median
over rounds of each round's process over the decoding timed in that round, with its range (the
machine's drift between rounds cancels). The whole process minus in-process scoring is the
start-up cost (interpreter, imports, building the detector). Wall times depend on the
machine's load: the header says which CPU and load they were measured under, and the CPU
seconds beside them vary less.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import cv2

from relbench.render import render
from relbench.scene import random_scene
from relbench.suites.phrases import CANONICAL_PHRASE

TARGET_RATIO = 3.0


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (or lscpu), else the platform's processor."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return platform.processor() or "unknown"


def write_folder(root: Path, n: int, size: int, seed: int) -> list[Path]:
    """N flat PNGs of random two-object scenes and their metadata.jsonl (prompt rows) in `root`."""
    root.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    with open(root / "metadata.jsonl", "w") as meta:
        for i in range(n):
            scene = random_scene(random.Random(seed * 1_000_003 + i))
            a, b = scene.objects
            phrase = CANONICAL_PHRASE[scene.relation()]
            prompt = f"{a.color} {a.shape} is {phrase} {b.color} {b.shape}"
            name = f"{i:05d}.png"
            ok, png = cv2.imencode(".png", cv2.cvtColor(render(scene, size), cv2.COLOR_RGB2BGR))
            if not ok:
                raise RuntimeError(f"PNG encoding failed for image {i}")
            (root / name).write_bytes(png.tobytes())
            meta.write(json.dumps({"file": name, "prompt": prompt}) + "\n")
            files.append(root / name)
    return files


def relbench_exe() -> list[str]:
    """The `relbench` console script next to this interpreter, else `python -m relbench.cli`."""
    script = Path(sys.executable).with_name("relbench")
    return [str(script)] if script.exists() else [sys.executable, "-m", "relbench.cli"]


Timing = tuple[float, float]
"""(wall seconds, CPU seconds): on a busy machine the CPU time is the steadier of the two."""


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_process(argv: list[str]) -> Timing:
    """Wall and CPU seconds of one process (all its children included); a non-zero exit is an
    error naming the command."""
    cpu, start = _children_cpu(), time.perf_counter()
    res = subprocess.run(argv, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {res.returncode}: {res.stderr.strip()[-500:]}")
    return wall, _children_cpu() - cpu


def decode_all(files: list[Path]) -> Timing:
    """Wall and CPU seconds to read and `cv2.imdecode` every file, in this process."""
    import numpy as np

    cpu, start = time.process_time(), time.perf_counter()
    for f in files:
        img = cv2.imdecode(np.frombuffer(f.read_bytes(), np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            raise RuntimeError(f"{f}: not decodable")
    return time.perf_counter() - start, time.process_time() - cpu


def score_in_process(root: Path, out: Path, scorer: object) -> Timing:
    """Wall and CPU seconds of `score_folder` on `root` with an already built scorer, here."""
    from relbench.scoring import score_folder

    cpu, start = time.process_time(), time.perf_counter()
    score_folder(root, scorer, out, progress=False)  # type: ignore[arg-type]
    return time.perf_counter() - start, time.process_time() - cpu


_STAGES = """
import json, time
t = [time.perf_counter()]
import numpy, cv2
t.append(time.perf_counter())
import relbench.scoring
t.append(time.perf_counter())
cv2.cvtColor(numpy.zeros((1, 1, 3), numpy.uint8), cv2.COLOR_RGB2Lab)
t.append(time.perf_counter())
relbench.scoring.load_detector("default")
t.append(time.perf_counter())
import relbench.cli
t.append(time.perf_counter())
print(json.dumps([b - a for a, b in zip(t, t[1:])]))
"""
STAGES = ("import numpy and OpenCV", "import relbench.scoring (the rest)",
          "OpenCV's first CIELAB conversion (its tables)", "build the default detector",
          "import relbench.cli (typer, the commands)")
"""What a fresh process does before it scores anything, in `_STAGES`' order."""


def startup_stages(repeats: int) -> tuple[float, list[float]]:
    """(seconds for an interpreter that does nothing, seconds of each of STAGES), the best of
    `repeats` fresh processes each."""
    bare = min(run_process([sys.executable, "-c", "pass"])[0] for _ in range(repeats))
    runs = []
    for _ in range(repeats):
        res = subprocess.run([sys.executable, "-c", _STAGES], capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"start-up stages failed: {res.stderr.strip()[-500:]}")
        runs.append(json.loads(res.stdout))
    return bare, [min(r[i] for r in runs) for i in range(len(STAGES))]


def compile_relbench() -> int:
    """Write up-to-date bytecode for every relbench module (`compileall`); returns how many
    modules had none."""
    import compileall
    import importlib.util

    import relbench

    root = Path(relbench.__file__).resolve().parent
    stale = 0
    for src in root.rglob("*.py"):
        pyc = Path(importlib.util.cache_from_source(str(src)))
        stale += not pyc.exists() or pyc.stat().st_mtime < src.stat().st_mtime
    compileall.compile_dir(str(root), quiet=1)
    return stale


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=6000, help="images to score (default 6000)")
    p.add_argument("--size", type=int, default=128, help="image side in pixels")
    p.add_argument("--repeats", type=int, default=5,
                   help="interleaved rounds; the best is reported")
    p.add_argument("--workers", type=int, default=1, help="relbench score --workers")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log", type=Path, default=None,
                   help="also write the printout to this file (benchmarks/results/startup.txt)")
    a = p.parse_args(argv)
    if a.log is not None:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        sys.stdout = __import__("_common").Tee(sys.stdout, a.log)
        print(f"command: python benchmarks/startup.py "
              f"{' '.join(argv if argv is not None else sys.argv[1:])}")

    # An installed package carries its compiled bytecode (pip compiles it); a checkout gets it
    # on its first run, unless PYTHONDONTWRITEBYTECODE is set, when every process would compile
    # the edited modules again. Compile it first, so that start-up is timed as users meet it.
    stale = compile_relbench()
    exe = relbench_exe()
    tmp = Path(tempfile.mkdtemp(prefix="relbench-startup-"))
    try:
        t0 = time.perf_counter()
        files = write_folder(tmp / "images", a.n, a.size, a.seed)
        write_folder(tmp / "one", 1, a.size, a.seed)
        made = time.perf_counter() - t0
        score_args = ["--quiet", "--workers", str(a.workers)]
        from relbench.scoring.api import load_scorer

        scorer = load_scorer()
        timings: dict[str, Callable[[], Timing]] = {
            "relbench --help": lambda: run_process([*exe, "--help"]),
            "relbench score (1 image)": lambda: run_process(
                [*exe, "score", str(tmp / "one"), "--out", str(tmp / "one.jsonl"), *score_args]),
            f"relbench score ({a.n} images)": lambda: run_process(
                [*exe, "score", str(tmp / "images"), "--out", str(tmp / "scores.jsonl"),
                 *score_args]),
            f"score_folder in-process ({a.n} images)": lambda: score_in_process(
                tmp / "images", tmp / "inproc.jsonl", scorer),
            f"read + cv2.imdecode ({a.n} images, in-process)": lambda: decode_all(files),
        }
        runs: dict[str, list[Timing]] = {k: [] for k in timings}
        for _ in range(a.repeats):
            for name, fn in timings.items():
                runs[name].append(fn())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(f"CPU: {cpu_model()} ({os.cpu_count()} logical cores); load average "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"Python {platform.python_version()}, OpenCV {cv2.__version__}; {a.n} PNGs of "
          f"{a.size} px rendered in {made:.1f} s; best of {a.repeats} rounds; "
          f"score --workers {a.workers}")
    print(f"relbench's bytecode compiled before timing ({stale} modules had none up to date), "
          "as an installed package has it")
    print()
    best = {k: (min(w for w, _ in ts), min(c for _, c in ts)) for k, ts in runs.items()}
    decode = best[f"read + cv2.imdecode ({a.n} images, in-process)"]
    width = max(len(k) for k in runs)
    print(f"{'measurement':<{width}}  {'best wall s':>11}  {'median wall s':>13}  {'× decode':>8}  "
          f"{'best CPU s':>10}  {'× decode':>8}")
    for name, ts in runs.items():
        w, c = best[name]
        print(f"{name:<{width}}  {w:11.3f}  {statistics.median(x for x, _ in ts):13.3f}  "
              f"{w / decode[0]:8.2f}  {c:10.3f}  {c / decode[1]:8.2f}")
    whole_name = f"relbench score ({a.n} images)"
    whole = best[whole_name]
    inproc = best[f"score_folder in-process ({a.n} images)"]
    decode_runs = runs[f"read + cv2.imdecode ({a.n} images, in-process)"]
    # Each round's whole process over the decoding timed in the same round: the machine's
    # speed drifts between rounds, and a ratio of two bests can pair a fast round with a slow.
    paired = sorted(w / d for (w, _), (d, _) in zip(runs[whole_name], decode_runs))
    paired_cpu = sorted(c / dc for (_, c), (_, dc) in zip(runs[whole_name], decode_runs))
    best_ratio, median_ratio = whole[0] / decode[0], statistics.median(paired)

    def verdict(ratio: float) -> str:
        return f"{'meets' if ratio <= TARGET_RATIO else 'misses'} the {TARGET_RATIO:.0f}× target"

    print(f"\nstart-up cost of a relbench score process (whole − in-process): "
          f"{whole[0] - inproc[0]:.3f} s wall, {whole[1] - inproc[1]:.3f} s CPU")
    print(f"whole relbench score process / decoding alone, best over best: "
          f"{best_ratio:.2f}× wall, {whole[1] / decode[1]:.2f}× CPU ({verdict(best_ratio)})")
    print(f"... round by round (each round's process over its own decoding): median "
          f"{median_ratio:.2f}× wall ({paired[0]:.2f}–{paired[-1]:.2f}), "
          f"{statistics.median(paired_cpu):.2f}× CPU ({paired_cpu[0]:.2f}–{paired_cpu[-1]:.2f}) "
          f"({verdict(median_ratio)})")
    bare, stages = startup_stages(a.repeats)
    print(f"\nwhere a fresh process's start-up goes (wall s, best of {a.repeats} processes)")
    width = max(len(k) for k in STAGES)
    print(f"{'python -c pass (the interpreter)':<{width}}  {bare:6.3f}")
    for name, sec in zip(STAGES, stages):
        print(f"{name:<{width}}  {sec:6.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
