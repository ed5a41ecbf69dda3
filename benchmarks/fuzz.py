"""Fuzz relbench's inputs: hostile rows, files, run directories, suite files and checkpoints.

    python benchmarks/fuzz.py [--rows 10000] [--seed 0] [--json] [--memory-rows 0]

Generates hostile inputs and throws them at `relbench score` (library and CLI), `relbench eval
--suite file:`, `relbench rescore`, `relbench leaderboard build` and checkpoint loading, inside a
scratch directory that also holds a canary folder beside the folders named to relbench:

- traceback: an exception other than the clean errors a command reports (ValueError and its
  subclasses, OSError naming the file), or a CLI exit code other than 0/2, or "Traceback" in its
  output;
- written outside: a file created, changed or removed anywhere in the scratch tree except the
  folder a command was told to write (snapshot of names, sizes and sha256 before and after);
- read outside: a row that names a canary image outside its folder (by `..`, an absolute path
  or a symlink) and still scores, or any output that contains the canary text's token;
- lost / doubled: input rows missing from, or repeated in, the output (each fuzzed row carries
  a unique id).

`--memory-rows N` also measures the peak resident memory of `relbench score` on an N-row
metadata.jsonl in a child process (its own high-water mark, VmHWM).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

CANARY_TOKEN = "CANARY-7f3a9c1e-do-not-read"
PROMPTS = [
    "red square is to the upper left of blue circle",
    "blue triangle is to the left of red square",
    "red circle is below blue square",
    "blue circle is above red triangle",
]


@dataclass
class Tally:
    """What one target's fuzzing found."""

    target: str
    cases: int = 0
    rows: int = 0
    tracebacks: int = 0
    outside_writes: int = 0
    outside_reads: int = 0
    lost: int = 0
    doubled: int = 0
    clean_errors: int = 0
    seconds: float = 0.0
    examples: list[str] = field(default_factory=list)
    reasons: dict[str, int] = field(default_factory=dict)
    """Clean errors by their first words (what the inputs were refused for)."""

    def note(self, kind: str, text: str) -> None:
        if len(self.examples) < 5:
            self.examples.append(f"{kind}: {text[:300]}")


# ---------------------------------------------------------------- scratch tree and canaries


def snapshot(root: Path, skip: list[Path]) -> dict[str, tuple[int, Any]]:
    """relative path → (size, mtime in ns) of every file under `root` (a symlink: its target),
    except under `skip`: any write, creation or removal changes it."""
    skip_r = [p.resolve() for p in skip]
    out = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        d = Path(dirpath)
        if any(d.resolve() == s or s in d.resolve().parents for s in skip_r):
            dirnames[:] = []
            continue
        for name in filenames + [n for n in dirnames if (d / n).is_symlink()]:
            p = d / name
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = (-1, os.readlink(p))
            elif p.is_file():
                st = p.stat()
                out[rel] = (st.st_size, st.st_mtime_ns)
    return out


def diff(before: dict, after: dict) -> list[str]:
    return sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))


def png(img: np.ndarray) -> bytes:
    return cv2.imencode(".png", cv2.cvtColor(img, cv2.COLOR_RGB2BGR))[1].tobytes()


def good_image(rng: random.Random, size: int = 64) -> np.ndarray:
    from relbench.render import render
    from relbench.scene import Scene, SceneObject

    a = SceneObject("square", "red", rng.uniform(0.2, 0.4), rng.uniform(0.2, 0.4))
    b = SceneObject("circle", "blue", rng.uniform(0.6, 0.8), rng.uniform(0.6, 0.8))
    return render(Scene((a, b)), size)


def header_png(width: int, height: int) -> bytes:
    """A PNG whose header declares width × height with almost no pixel data (a bomb)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))


def make_canary(base: Path, rng: random.Random) -> Path:
    """base/canary: a valid image (scores if read) and a text file with CANARY_TOKEN."""
    canary = base / "canary"
    canary.mkdir()
    (canary / "secret.png").write_bytes(png(good_image(rng)))
    (canary / "secret.txt").write_text(CANARY_TOKEN + "\n")
    (canary / "victim.png").write_bytes(png(good_image(rng)))
    return canary


# ---------------------------------------------------------------- hostile files and rows


def make_files(folder: Path, canary: Path, rng: random.Random) -> dict[str, list[str]]:
    """Image files and links in `folder`, by kind: good, bad (unscorable) and outside (names that
    lead to the canary)."""
    folder.mkdir(parents=True, exist_ok=True)
    good, bad = [], []
    for i in range(8):
        (folder / f"good{i}.png").write_bytes(png(good_image(rng)))
        good.append(f"good{i}.png")
    img = good_image(rng)
    jpg = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR))[1].tobytes()
    p = png(img)
    files = {
        "corrupt.png": b"not an image at all",
        "empty.png": b"",
        "trunc.png": p[: len(p) // 2],
        "trunc.jpg": jpg[: len(jpg) - 200],
        "bomb.png": header_png(20000, 20000),
        "bomb2.png": header_png(2**31 - 1, 2**31 - 1),
        "gray.png": cv2.imencode(".png", np.full((32, 32), 90, np.uint8))[1].tobytes(),
        "tiny.png": png(np.zeros((1, 1, 3), np.uint8)),
        "rgba.png": cv2.imencode(".png", np.dstack([img, np.zeros(img.shape[:2], np.uint8)]))[1].tobytes(),
        "u16.png": cv2.imencode(".png", (img.astype(np.uint16) * 257))[1].tobytes(),
        "text.png": b"\x89PNG\r\n\x1a\n" + os.urandom(200),
        "weird name ü%20 'quote\".png": p,
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
        bad.append(name)
    (folder / "adir.png").mkdir()
    bad.append("adir.png")
    os.mkfifo(folder / "fifo.png")
    bad.append("fifo.png")
    (folder / "loop.png").symlink_to(folder / "loop.png")
    bad.append("loop.png")
    (folder / "link_out.png").symlink_to(canary / "secret.png")
    (folder / "dir_out").symlink_to(canary)
    (folder / "link_text.png").symlink_to(canary / "secret.txt")
    rel = os.path.relpath(canary, folder)
    outside = ["link_out.png", "dir_out/secret.png", "link_text.png", f"{rel}/secret.png",
               str(canary / "secret.png"), f"./{rel}/secret.txt", f"good0.png/../{rel}/secret.png",
               "../" * 12 + str(canary / "secret.png").lstrip("/"), "//" + str(canary / "secret.png"),
               f"{rel}/../canary/secret.png", "/etc/passwd", "/dev/zero", "/proc/self/environ"]
    return {"good": good, "bad": bad, "outside": outside}


def hostile_value(rng: random.Random, depth: int = 0) -> Any:
    """A JSON value of a random wrong type."""
    choices = [None, True, 0, -1, 2**70, 1.5, float("nan"), float("inf"), "", "x" * 5000,
               "\u202e\u0000\u2028", [], {}, ["circle"], {"a": 1}, [[[[]]]]]
    v = rng.choice(choices)
    if depth < 2 and rng.random() < 0.2:
        return {"k": hostile_value(rng, depth + 1)}
    return v


def hostile_spec(rng: random.Random) -> Any:
    spec = {"subject": {"shape": "square", "color": "red"}, "relation": "upper_left",
            "reference": {"shape": "circle", "color": "blue"}}
    kind = rng.randrange(8)
    if kind == 0:
        return hostile_value(rng)
    if kind == 1:
        spec["subject"]["shape"] = rng.choice(["hexagon", ["circle"], 3, None, "", "CIRCLE"])
    elif kind == 2:
        spec["reference"]["color"] = rng.choice(["crimson", {"r": 1}, 7.5, "", "blue\n"])
    elif kind == 3:
        spec["relation"] = rng.choice(["beside", None, ["above"], 1, "ABOVE", "above "])
    elif kind == 4:
        del spec[rng.choice(list(spec))]
    elif kind == 5:
        spec["subject"] = hostile_value(rng)
    elif kind == 6:
        spec["extra"] = hostile_value(rng)
        spec["subject"]["size"] = hostile_value(rng)
    return spec


def hostile_line(rng: random.Random, uid: int, files: dict[str, list[str]]) -> tuple[bytes, str]:
    """One metadata.jsonl line and its kind: "good", "bad", "outside" or "raw" (not an object)."""
    r = rng.random()
    if r < 0.08:  # raw garbage line
        raw = rng.choice([b"{not json", b"\xff\xfe\x00 binary", b"[1, 2, 3]", b"\"a string\"",
                          b"42", b"null", b"{\"file\": \"x\"", b"\xef\xbb\xbf{}",
                          b"[" * 5000 + b"]" * 5000, b"{\"a\": " * 3000 + b"1" + b"}" * 3000,
                          "{\"file\": \"caf\u00e9.png\"}".encode("latin-1")])
        return raw, "raw"
    row: dict[str, Any] = {"fuzz_id": uid}
    if r < 0.35:
        kind, row["file"] = "outside", rng.choice(files["outside"])
    elif r < 0.55:
        kind, row["file"] = "good", rng.choice(files["good"])
    else:
        kind = "bad"
        row["file"] = rng.choice(files["bad"] + [hostile_value(rng), "missing.png", "", "a\x00b",
                                                 "x/" * 300 + "y.png", "ü" * 300 + ".png"])
    p = rng.random()
    if p < 0.5:
        row["prompt"] = rng.choice(PROMPTS)
    elif p < 0.7:
        row["spec"] = hostile_spec(rng)
        row["prompt"] = rng.choice(PROMPTS + [hostile_value(rng)])
    else:
        row["prompt"] = rng.choice(["", "   ", "zorp blarg", "red red red", hostile_value(rng),
                                    "the " * 5000, "red square is above\n blue circle",
                                    "red square is above blue circle" + "\u0301" * 50])
    if kind == "good" and ("spec" in row or row["prompt"] not in PROMPTS):
        kind = "bad"
    for _ in range(rng.randrange(3)):
        row[rng.choice(["seed", "id", "weight", "correct", "error", "detections", "line"])] = \
            hostile_value(rng)
    text = json.dumps(row, allow_nan=True)
    return text.encode("utf-8", "surrogatepass"), kind


# ---------------------------------------------------------------- targets


CLEAN = (ValueError, FileNotFoundError)


def run_guarded(t: Tally, what: str, fn: Callable[[], Any], clean=CLEAN) -> Any:
    """Call fn; a clean error counts as such, anything else as a traceback."""
    try:
        return fn()
    except clean as e:
        t.clean_errors += 1
        import re

        key = re.sub(r"\S*/\S*|'[^']*'|\d+", "_", str(e))[:70]
        t.reasons[key] = t.reasons.get(key, 0) + 1
        if "\n" in str(e).strip() and "Traceback" in str(e):
            t.tracebacks += 1
            t.note("traceback-in-message", f"{what}: {e}")
        return e
    except Exception as e:  # noqa: BLE001 - what the fuzzer counts
        t.tracebacks += 1
        t.note("traceback", f"{what}: {type(e).__name__}: {e} | "
               + traceback.format_exc().strip().splitlines()[-3])
        return e


def check_score_output(t: Tally, out: Path, expected: list[tuple[int | None, str]]) -> None:
    """Every input line has one output row; outside rows never score; no canary text leaks."""
    text = out.read_text(encoding="utf-8")
    if CANARY_TOKEN in text:
        t.outside_reads += 1
        t.note("read", f"{out}: canary token in output")
    rows = [json.loads(line) for line in text.splitlines()]
    if len(rows) != len(expected):
        diff_n = len(expected) - len(rows)
        t.lost += max(diff_n, 0)
        t.doubled += max(-diff_n, 0)
        t.note("count", f"{out}: {len(rows)} rows for {len(expected)} lines")
    seen: dict[Any, int] = {}
    for row in rows:
        uid = row.get("fuzz_id")
        if uid is not None:
            seen[uid] = seen.get(uid, 0) + 1
    for uid, kind in expected:
        if uid is None:
            continue
        n = seen.get(uid, 0)
        if n == 0:
            t.lost += 1
        elif n > 1:
            t.doubled += n - 1
    for row, (uid, kind) in zip(rows, expected):
        if kind == "outside" and row.get("correct") is not None:
            t.outside_reads += 1
            t.note("read", f"row {uid} file {row.get('file')!r} scored")


def fuzz_score(base: Path, canary: Path, n_rows: int, rng: random.Random, detector) -> Tally:
    """score_folder (library) on folders of hostile metadata; 1 in 4 folders with --workers 2."""
    from relbench.scoring.folder import score_folder

    t = Tally("score")
    start = time.perf_counter()
    per_folder = 500
    uid = 0
    for k in range(max(1, n_rows // per_folder)):
        folder = base / f"score{k}"
        files = make_files(folder, canary, rng)
        lines, expected = [], []
        for _ in range(per_folder):
            raw, kind = hostile_line(rng, uid, files)
            lines.append(raw)
            expected.append((uid if kind != "raw" else None, kind))
            uid += 1
        (folder / "metadata.jsonl").write_bytes(b"\n".join(lines) + b"\n")
        out = base / f"score{k}.out" / "scores.jsonl"
        before = snapshot(base, [out.parent])
        workers = 2 if k % 4 == 3 else 1
        res = run_guarded(t, f"score folder {k}",
                          lambda: score_folder(folder, detector, out, workers=workers, progress=False))
        t.cases += 1
        t.rows += per_folder
        changed = diff(before, snapshot(base, [out.parent]))
        if changed:
            t.outside_writes += len(changed)
            t.note("write", f"score {k}: {changed[:3]}")
        if not isinstance(res, Exception):
            check_score_output(t, out, expected)
    t.seconds = time.perf_counter() - start
    return t


def fuzz_score_cli(base: Path, canary: Path, rng: random.Random) -> Tally:
    """`relbench score` through CliRunner (in process) and one subprocess, on hostile folders and
    hostile options."""
    from typer.testing import CliRunner

    from relbench.cli import app

    t = Tally("score CLI")
    start = time.perf_counter()
    folder = base / "cli"
    files = make_files(folder, canary, rng)
    lines = [hostile_line(rng, i, files)[0] for i in range(200)]
    (folder / "metadata.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    out_dir = base / "cli.out"
    out_dir.mkdir()
    cases = [
        [str(folder), "--out", str(out_dir / "s.jsonl")],
        [str(folder), "--out", str(folder / "metadata.jsonl")],
        [str(folder), "--out", str(out_dir)],
        [str(base / "nonexistent"), "--out", str(out_dir / "x.jsonl")],
        [str(folder), "--out", str(out_dir / "m.jsonl"), "--max-pixels", "10"],
        [str(folder), "--out", str(out_dir / "d.jsonl"), "--detector", "../../etc/passwd"],
        [str(folder), "--out", str(out_dir / "d.jsonl"), "--detector", str(canary / "secret.txt")],
        [str(folder), "--out", str(out_dir / "w.jsonl"), "--workers", "0"],
        [str(canary), "--out", str(out_dir / "c.jsonl")],
    ]
    runner = CliRunner()
    meta_before = (folder / "metadata.jsonl").read_bytes()
    for args in cases:
        before = snapshot(base, [out_dir])
        res = runner.invoke(app, ["score", *args, "--quiet", "--json"])
        t.cases += 1
        t.rows += 200
        output = (res.stdout or "") + (getattr(res, "stderr", "") or "")
        if res.exit_code not in (0, 2) or "Traceback" in output or (
                res.exception is not None and not isinstance(res.exception, SystemExit)):
            t.tracebacks += 1
            t.note("traceback", f"score {args[1:]}: exit {res.exit_code} {res.exception!r}")
        elif res.exit_code == 2:
            t.clean_errors += 1
        if CANARY_TOKEN in output and str(canary / "secret.txt") not in args:
            t.outside_reads += 1  # (a --detector file named on the command line may be read)
        elif CANARY_TOKEN in output:
            t.note("echo", f"score {args[1:]}: the error quotes the named --detector file")
        changed = diff(before, snapshot(base, [out_dir]))
        if changed:
            t.outside_writes += len(changed)
            t.note("write", f"score {args[1:]}: {changed[:3]}")
    if (folder / "metadata.jsonl").read_bytes() != meta_before:
        t.outside_writes += 1
    # one real process, as a user runs it
    before = snapshot(base, [out_dir])
    proc = subprocess.run([sys.executable, "-m", "relbench.cli", "score", str(folder), "--out",
                           str(out_dir / "sub.jsonl"), "--quiet", "--json"],
                          capture_output=True, text=True, timeout=600)
    t.cases += 1
    t.rows += 200
    if proc.returncode not in (0, 2) or "Traceback" in proc.stderr:
        t.tracebacks += 1
        t.note("traceback", f"subprocess score: {proc.returncode} {proc.stderr[-300:]}")
    changed = diff(before, snapshot(base, [out_dir]))
    t.outside_writes += len(changed)
    if (out_dir / "sub.jsonl").exists():
        n = len((out_dir / "sub.jsonl").read_text().splitlines())
        t.lost += max(0, 200 - n)
        t.doubled += max(0, n - 200)
    t.seconds = time.perf_counter() - start
    return t


def hostile_suite_line(rng: random.Random, i: int, typed: bool) -> str:
    """One suite-file line; with `typed`, only lines that load (odd, colliding and markup ids)."""
    if typed:  # ids unique, but lines 0 and 1 ("a/b", "a_b") read alike once made file-safe
        pid = ["a/b", "a_b"][i] if i < 2 else rng.choice(
            ["p", "a#b", "../../x", "<script>x</script>", "=1+1", "x" * 300, "\u202e", "/"]) + str(i)
        return json.dumps({"prompt": rng.choice(PROMPTS), "id": pid})
    r = rng.random()
    if r < 0.6:
        return json.dumps({"prompt": rng.choice(PROMPTS), "id": f"p{i}"})
    if r < 0.75:
        return json.dumps({"prompt": rng.choice(PROMPTS), "spec": hostile_spec(rng), "id": f"p{i}"})
    if r < 0.85:
        return json.dumps({"prompt": hostile_value(rng), "id": hostile_value(rng)})
    return rng.choice(["{bad json", "[]", "\"x\"", "{\"prompt\": \"zorp\"}",
                       json.dumps({"prompt": rng.choice(PROMPTS), "id": "../../x"}),
                       json.dumps({"prompt": rng.choice(PROMPTS), "id": "a/b"}),
                       json.dumps({"prompt": rng.choice(PROMPTS), "id": "a_b"}),
                       json.dumps({"prompt": rng.choice(PROMPTS), "id": "<script>x</script>"})])


def fuzz_eval_suite_file(base: Path, n_files: int, rng: random.Random) -> Tally:
    """run_eval(oracle, file:PROMPTS) on hostile suite files, with --save-images."""
    from relbench.runner import EvalConfig, read_samples, run_eval

    t = Tally("eval --suite file:")
    start = time.perf_counter()
    for k in range(n_files):
        path = base / f"suite{k}.jsonl"
        n = rng.randrange(1, 12)
        typed = k % 2 == 0  # half the files load (odd ids), half carry broken lines
        path.write_text("\n".join(hostile_suite_line(rng, i, typed) for i in range(n)) + "\n")
        out = base / f"eval{k}"
        seeds = rng.choice([[0], [0, 1], [3, 5]] * 3 + [[1, 1], [-1], [0, 2**70]])
        before = snapshot(base, [out])
        cfg = EvalConfig("oracle", f"file:{path}", seeds=seeds, save_images=rng.random() < 0.5)
        res = run_guarded(t, f"eval {path.name} seeds {seeds}",
                          lambda: run_eval(cfg, out, progress=False))
        t.cases += 1
        t.rows += n
        changed = diff(before, snapshot(base, [out]))
        if changed:
            t.outside_writes += len(changed)
            t.note("write", f"eval {k}: {changed[:3]}")
        if not isinstance(res, Exception):
            rows = read_samples(out / "samples.jsonl")
            ids = [r["sample_id"] for r in rows]
            t.doubled += len(ids) - len(set(ids))
            if res["metrics"]["n"] != len(set(ids)):
                t.doubled += 1
                t.note("count", f"eval {k}: summary n {res['metrics']['n']} for {len(set(ids))} ids")
            files = [r["file"] for r in rows if r.get("file")]
            if len(files) != len(set(files)):
                t.doubled += len(files) - len(set(files))
                t.note("collision", f"eval {k}: image names collide")
    t.seconds = time.perf_counter() - start
    return t


def fuzz_rescore(base: Path, canary: Path, n_runs: int, rng: random.Random) -> Tally:
    """rescore_run on copies of a finished --save-images run whose samples.jsonl rows are made
    hostile (paths out, duplicate and odd ids, wrong types), and whose images are swapped for
    links out."""
    from relbench.runner import EvalConfig, read_samples, rescore_run, run_eval

    t = Tally("rescore")
    start = time.perf_counter()
    prompts = base / "rescore_prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p, "id": f"r/{i}"}) + "\n"
                               for i, p in enumerate(PROMPTS * 3)))
    template = base / "rescore_template"
    run_eval(EvalConfig("oracle", f"file:{prompts}", seeds=[0, 1], save_images=True), template,
             progress=False)
    n_template = len(read_samples(template / "samples.jsonl"))
    rel_canary = os.path.relpath(canary, template)
    for k in range(n_runs):
        run = base / f"rescore_run{k}"
        shutil.copytree(template, run, symlinks=True)
        rows = read_samples(run / "samples.jsonl")
        typed = k % 3 != 0  # two runs in three keep every type right: paths and ids only
        for row in rows:
            r = rng.random()
            if r < 0.25:
                row["file"] = rng.choice([f"{rel_canary}/victim.png", str(canary / "victim.png"),
                                          f"images/../{rel_canary}/secret.png", "../../../x.png",
                                          "run.json", "samples.jsonl", "images",
                                          "images/" + "x" * 300 + ".png"]
                                         + ([] if typed else ["", hostile_value(rng)]))
            elif r < 0.35:
                row["sample_id"] = rng.choice([rows[0]["sample_id"], "../../x", "a/b#s0", "a_b#s0",
                                               "<b>x</b>"] + ([] if typed else [hostile_value(rng)]))
            elif r < 0.45 and not typed:
                row[rng.choice(["spec", "prompt", "seed", "perturbation"])] = hostile_value(rng)
            elif r < 0.5:
                img = run / row["file"]
                img.unlink(missing_ok=True)
                img.symlink_to(canary / "secret.png")
        (run / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        out = base / f"rescore_out{k}" / "inner"
        before = snapshot(base, [out])
        res = run_guarded(t, f"rescore {k}", lambda: rescore_run(run, "default", out, progress=False))
        t.cases += 1
        t.rows += len(rows)
        changed = diff(before, snapshot(base, [out]))
        if changed:
            t.outside_writes += len(changed)
            t.note("write", f"rescore {k}: {changed[:3]}")
        if not isinstance(res, Exception):
            new = read_samples(out / "samples.jsonl")
            t.lost += max(0, len(rows) - len(new))
            t.doubled += max(0, len(new) - len(rows))
            secret = (canary / "secret.png").read_bytes()
            for row in new:  # a canary image copied into the new run was read from outside
                f = row.get("file")
                if row.get("correct") is not None and (out / f).read_bytes() == secret:
                    t.outside_reads += 1
                    t.note("read", f"rescore {k}: canary image copied into {f}")
            n_unique = len({json.dumps(r.get("sample_id")) for r in rows})
            if res["metrics"]["n"] > n_unique:
                t.doubled += res["metrics"]["n"] - n_unique
        assert n_template
    t.seconds = time.perf_counter() - start
    return t


def fuzz_leaderboard(base: Path, n_cases: int, rng: random.Random) -> Tally:
    """build_leaderboard on a good run plus a copy with hostile names and values in run.json
    and summary.json."""
    from relbench.leaderboard import build_leaderboard
    from relbench.runner import EvalConfig, run_eval

    t = Tally("leaderboard build")
    start = time.perf_counter()
    prompts = base / "lb_prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    good = base / "lb_good"
    run_eval(EvalConfig("oracle", f"file:{prompts}", seeds=[0], save_images=True), good,
             progress=False)
    names = ["<script>alert(1)</script>", "=HYPERLINK(\"http://x\")", "+1", "-2", "@SUM(A1)",
             "a\nb", "a|b", "[x](javascript:alert(1))", "`code`", "x" * 10000, "\u202eevil",
             "ok-name", "normal model", "\x00", "..\\..\\x"]
    for k in range(n_cases):
        run = base / f"lb_run{k}"
        shutil.copytree(good, run, symlinks=True)
        info = json.loads((run / "run.json").read_text())
        summary = json.loads((run / "summary.json").read_text())
        r = rng.random()
        if r < 0.5:
            info["model"]["name"] = rng.choice(names + [hostile_value(rng)])
        elif r < 0.6:
            info["model"]["args"] = {rng.choice(names): rng.choice(names)}
        elif r < 0.7:
            info["model"] = hostile_value(rng)
        elif r < 0.8:
            summary["metrics"]["overall"] = hostile_value(rng)
        elif r < 0.9:
            summary["run"]["model"]["name"] = rng.choice(names)
        else:
            info["perturbations"] = [{"name": rng.choice(names), "version": "1", "prompt_hash": "x"}]
        summary["run"] = {**summary["run"], **{k2: info[k2] for k2 in ("model", "perturbations")
                                               if k2 in info}}
        (run / "run.json").write_text(json.dumps(info))
        (run / "summary.json").write_text(json.dumps(summary))
        out = base / f"lb_out{k}"
        before = snapshot(base, [out])
        res = run_guarded(t, f"leaderboard {k}", lambda: build_leaderboard([good, run], out))
        t.cases += 1
        t.rows += 2
        changed = diff(before, snapshot(base, [out]))
        if changed:
            t.outside_writes += len(changed)
            t.note("write", f"leaderboard {k}: {changed[:3]}")
        if not isinstance(res, Exception):
            md = (out / "leaderboard.md").read_text()
            csv = (out / "leaderboard.csv").read_text()
            bad_md = any(s in md for s in ("<script", "javascript:", "\x00"))
            bad_csv = any(line.split(",")[c][:1] in "=+-@" for line in csv.splitlines()[1:]
                          for c in (0, 1) if len(line.split(",")) > c and line.split(",")[c])
            if bad_md or bad_csv:
                t.tracebacks += 1  # counted as a failure: injection reached the table
                t.note("injection", f"leaderboard {k}: md {bad_md} csv {bad_csv}")
    t.seconds = time.perf_counter() - start
    return t


def fuzz_checkpoints(base: Path, n_cases: int, rng: random.Random) -> Tally:
    """load_pipeline on a tiny valid checkpoint whose config.json and files are made hostile."""
    import torch

    from relbench.dit.checkpoint import Checkpoint, write_checkpoint
    from relbench.dit.model import ModelConfig
    from relbench.dit.sample import build_parts, load_pipeline

    t = Tally("checkpoint load")
    start = time.perf_counter()
    tiny = {"preset": "nano", "head_dim": 8, "encoder": "rte", "encoder_dim": 16, "max_length": 8,
            "image_size": 16, "patch_size": 2}
    cfg = ModelConfig(**tiny)
    model, _ = build_parts(cfg)
    template = base / "ckpt_template"
    write_checkpoint(template, Checkpoint({"model": cfg.model_dump(), "objective": "eps"},
                                          {"ema": model.state_dict()}))
    load_pipeline(template)  # the template itself loads
    mutations: list[Callable[[dict, Path], None]] = [
        lambda c, p: c["model"].__setitem__("encoder", rng.choice(
            ["t5:google/t5-v1_1-xxl", "t5:", "t5:/nonexistent", "minilm2", hostile_value(rng)])),
        lambda c, p: c["model"].__setitem__(rng.choice(list(tiny)), rng.choice(
            [10**9, -1, 0, 2**63, "x", None, 1.5, [1], 65536])),
        lambda c, p: c.__setitem__("files", {rng.choice(["../../canary/secret.txt", "/etc/passwd",
                                                         "ema.safetensors"]): "0" * 64}),
        lambda c, p: c.__setitem__(rng.choice(["format", "version", "objective", "sampling",
                                               "autoencoder", "model"]), hostile_value(rng)),
        lambda c, p: c.__setitem__("sampling", {"shift": rng.choice([float("nan"), -1, 1e308, "x"])}),
        lambda c, p: c.__setitem__("autoencoder", {"channels": 10**6, "downsample": 3, "width": 10**7}),
        lambda c, p: (p / "ema.safetensors").write_bytes(os.urandom(64)),
        lambda c, p: (p / "ema.safetensors").write_bytes(b"\xff" * 8 + b"{}"),
        lambda c, p: torch.save({}, p / "ema.safetensors"),
        lambda c, p: c["model"].__setitem__("preset", rng.choice(["B", "huge", "../x"])),
    ]
    for k in range(n_cases):
        path = base / f"ckpt{k}"
        shutil.copytree(template, path)
        c = json.loads((path / "config.json").read_text())
        for m in rng.sample(mutations, rng.randrange(1, 3)):
            try:
                m(c, path)
            except (TypeError, AttributeError, KeyError):  # an earlier mutation replaced "model"
                pass
        text = json.dumps(c, allow_nan=True) if rng.random() < 0.95 else "{\"format\": [" * 2000
        (path / "config.json").write_text(text)
        before = snapshot(base, [])
        res = run_guarded(t, f"checkpoint {k}", lambda: load_pipeline(path))
        t.cases += 1
        t.rows += 1
        changed = diff(before, snapshot(base, []))
        if changed:
            t.outside_writes += len(changed)
            t.note("write", f"checkpoint {k}: {changed[:3]}")
        if isinstance(res, Exception) and CANARY_TOKEN in str(res):
            t.outside_reads += 1
        shutil.rmtree(path)
    t.seconds = time.perf_counter() - start
    return t


# ---------------------------------------------------------------- memory of score on N rows


def measure_score_memory(base: Path, n_rows: int, rng: random.Random, pythonpath: str | None) -> dict:
    """Peak RSS of `relbench score` (a child process) on an n_rows metadata.jsonl: 1 row in 50
    names a real image, the rest missing files (so the run measures rows, not decoding)."""
    folder = base / f"mem{n_rows}"
    folder.mkdir()
    for i in range(4):
        (folder / f"good{i}.png").write_bytes(png(good_image(rng)))
    with open(folder / "metadata.jsonl", "w") as f:
        for i in range(n_rows):
            file = f"good{i % 4}.png" if i % 50 == 0 else f"img/{i:07d}.png"
            f.write(json.dumps({"file": file, "prompt": PROMPTS[i % 4], "seed": i % 4,
                                "id": f"sample-{i:07d}"}) + "\n")
    # The process's own high-water mark (VmHWM): ru_maxrss would carry the forking parent's
    # peak across exec on Linux, and this benchmark's own process is large by then.
    code = ("import resource, sys, time, json\n"
            "def peak_mb():\n"
            "    try:\n"
            "        for line in open('/proc/self/status'):\n"
            "            if line.startswith('VmHWM:'):\n"
            "                return int(line.split()[1]) / 1024\n"
            "    except OSError:\n"
            "        pass\n"
            "    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
            "from relbench.scoring import load_detector\n"
            "from relbench.scoring.folder import score_folder\n"
            "t = time.perf_counter()\n"
            f"s = score_folder(__import__('pathlib').Path({str(folder)!r}), load_detector('default'),"
            " progress=False)\n"
            "print(json.dumps({'n': s['n'], 'seconds': time.perf_counter() - t,"
            " 'relbench': __import__('relbench').__file__,"
            " 'maxrss_mb': peak_mb()}))\n")
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=3600, cwd=pythonpath or base)  # `-c` puts the cwd first on sys.path
    if proc.returncode != 0:
        return {"error": proc.stderr[-500:]}
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["rows"] = n_rows
    return out


# ---------------------------------------------------------------- main


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=10000, help="hostile metadata rows for score")
    p.add_argument("--suites", type=int, default=150, help="hostile suite files for eval")
    p.add_argument("--runs", type=int, default=40, help="hostile run dirs for rescore")
    p.add_argument("--boards", type=int, default=60, help="hostile runs for leaderboard build")
    p.add_argument("--checkpoints", type=int, default=150, help="hostile checkpoint configs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--memory-rows", type=int, default=0, help="also measure score's peak RSS")
    p.add_argument("--memory-pythonpath", default=None,
                   help="PYTHONPATH for the memory child (e.g. an older relbench tree to compare)")
    p.add_argument("--memory-only", action="store_true", help="skip the fuzzing, measure memory")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()

    import warnings

    warnings.filterwarnings("ignore")
    from relbench.scoring import load_detector

    rng = random.Random(a.seed)
    detector = load_detector("default")
    results, memory = [], None
    with tempfile.TemporaryDirectory(prefix="relbench-fuzz-") as tmp:
        base = Path(tmp)
        canary = make_canary(base, rng)
        canary_before = snapshot(canary, [])
        if not a.memory_only:
            results.append(fuzz_score(base, canary, a.rows, rng, detector))
            results.append(fuzz_score_cli(base, canary, rng))
            results.append(fuzz_eval_suite_file(base, a.suites, rng))
            results.append(fuzz_rescore(base, canary, a.runs, rng))
            results.append(fuzz_leaderboard(base, a.boards, rng))
            results.append(fuzz_checkpoints(base, a.checkpoints, rng))
        if results and diff(canary_before, snapshot(canary, [])):
            results[-1].outside_writes += 1
            results[-1].note("write", "canary folder changed")
        if a.memory_rows:
            memory = measure_score_memory(base, a.memory_rows, rng, a.memory_pythonpath)
    total = Tally("total")
    for r in results:
        for k in ("cases", "rows", "tracebacks", "outside_writes", "outside_reads", "lost",
                  "doubled", "clean_errors", "seconds"):
            setattr(total, k, getattr(total, k) + getattr(r, k))
    if a.json:
        print(json.dumps({"targets": [r.__dict__ for r in results + [total]], "memory": memory},
                         indent=2))
    else:
        head = ("target", "cases", "rows", "tracebacks", "written out", "read out", "lost",
                "doubled", "clean errors", "s")
        print(" | ".join(head))
        print("|".join("---" for _ in head))
        for r in results + [total]:
            print(" | ".join(str(x) for x in (
                r.target, r.cases, r.rows, r.tracebacks, r.outside_writes, r.outside_reads,
                r.lost, r.doubled, r.clean_errors, f"{r.seconds:.0f}")))
        for r in results:
            for ex in r.examples:
                print(f"  {r.target}: {ex}")
        for r in results:
            top = sorted(r.reasons.items(), key=lambda kv: -kv[1])[:4]
            print(f"  {r.target} refused: " + "; ".join(f"{n}× {k}" for k, n in top))
        if memory:
            print(f"score on {memory.get('rows')} rows: peak RSS {memory.get('maxrss_mb', 0):.0f} MB, "
                  f"{memory.get('seconds', 0):.0f} s" if "error" not in memory else
                  f"memory run failed: {memory['error']}")
    bad = total.tracebacks + total.outside_writes + total.outside_reads + total.lost + total.doubled
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
