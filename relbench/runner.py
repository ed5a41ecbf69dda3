"""suite × model × scorer → a run directory (`samples.jsonl` + `summary.json`), resumable.

Rows are appended and flushed as they are scored, so a killed run loses at most the batch in
flight; running the same command again skips every sample already on disk.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from relbench.models import GenerationRequest, NoImage, T2IModel, load_model
from relbench.models.api import model_sampling
from relbench.runlog import RunInfo, git_commit, write_json_atomic
from relbench.safety import json_line

SAMPLES = "samples.jsonl"
SHARD_SAMPLES = "samples.rank{rank}.jsonl"
"""Rows of process RANK in a multi-process eval, merged into SAMPLES when all are done."""
SUMMARY = "summary.json"
RUN_INFO = "run.json"


@dataclass
class EvalConfig:
    """What `relbench eval` runs. Seeds are shared by every prompt (paired comparisons)."""

    model: str
    suite: str
    perturbations: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3])
    detector: str | None = None
    """Scorer config name or path; None: the detector of the model's training geometry
    (`paper` for a checkpoint trained on the paper's data, else `default`)."""
    scorer: str | None = None
    """None or "default": the classical detector (configured by `detector`); else a scorer an
    installed package registers (relbench.scoring.api)."""
    batch_size: int = 16
    save_images: bool = False
    perturb_seed: int = 0
    model_args: dict[str, Any] = field(default_factory=dict)
    limit: int | None = None
    """Only the first `limit` prompts of the suite (and their perturbed versions): a smoke run,
    recorded in run.json so it never passes for a full run on the board."""
    max_initial_failures: int = 8
    """Stop (RunFailedError) when the first this-many images of an invocation all fail to generate."""


ERRORS_DIR = "errors"
FIRST_FAILURE = "first_failure.txt"
"""RUN_DIR/errors/first_failure.txt: the traceback of the run's first generation failure."""


class RunFailedError(RuntimeError):
    """A run stopped because its first images all failed to generate (summary status "failed")."""


def resolve_suite(name: str, *, stream: bool = False):
    """A registered suite name, or `file:PATH` for a user's own prompts. With `stream` (what
    `relbench eval` uses) a file is checked and hashed in one pass here, then read row by row,
    never held (relbench.suites.stream)."""
    from relbench.suites import get_suite, load_suite_file

    if name.startswith("file:"):
        if stream:
            from relbench.suites.stream import PromptFile

            suite = PromptFile(Path(name[5:]))
            suite.scan()  # a bad row fails here, before the model loads or anything is written
            return suite
        return load_suite_file(Path(name[5:]))
    return get_suite(name)


def run_eval(cfg: EvalConfig, out_dir: Path, *, progress: bool = True, model: T2IModel | None = None) -> dict:
    """Generate and score every (prompt, seed) of the suite and its perturbations into `out_dir`,
    holding a lock on `out_dir` (a second writer fails at once with DirLockedError; the ranks of
    one distributed run share it). See `_run_eval_locked` for sharding and resume."""
    from relbench.distributed import process_info
    from relbench.safety import LOCK_FILE, check_seeds

    check_seeds(cfg.seeds)
    out_dir = Path(out_dir)
    created = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        with _run_lock(out_dir, process_info()):
            return _run_eval_locked(cfg, out_dir, progress=progress, model=model)
    except BaseException:
        if created and {p.name for p in out_dir.iterdir()} <= {LOCK_FILE}:  # failed before writing
            (out_dir / LOCK_FILE).unlink(missing_ok=True)
            out_dir.rmdir()
        raise


def _run_lock(out_dir: Path, proc):
    """One writer per run directory; under torchrun each rank locks its own shard and all share
    the directory's lock (which a single-process run takes exclusively)."""
    from contextlib import ExitStack

    from relbench.safety import DirLock

    stack = ExitStack()
    try:
        if proc.distributed:
            stack.enter_context(DirLock(out_dir, shared=True))
            stack.enter_context(DirLock(out_dir, name=f".relbench.rank{proc.rank}.lock"))
        else:
            stack.enter_context(DirLock(out_dir))
    except BaseException:
        stack.close()
        raise
    return stack


def _run_eval_locked(
    cfg: EvalConfig, out_dir: Path, *, progress: bool = True, model: T2IModel | None = None
) -> dict:
    """Generate and score every (prompt, seed) of the suite and its perturbations into `out_dir`.

    Under `torchrun` / `accelerate launch` (WORLD_SIZE > 1) process R takes the jobs i with
    i % WORLD_SIZE == R (jobs in canonical order: suite, prompt, seed), appends its rows to
    `samples.rank{R}.jsonl` (resumable like `samples.jsonl`), and when all are done rank 0 merges
    the shards into `samples.jsonl` in canonical order, so the summary is the one a single process
    writes; every process returns it. Without a process group (no torch, no rendezvous address)
    the last process to finish merges, and a later single-process run on the same directory
    folds in whatever shards it finds before resuming.
    """
    from relbench.distributed import barrier, can_init, init_process_group, process_info, shard
    from relbench.models.registry import model_extension
    from relbench.records import utc_now
    from relbench.scoring import load_detector
    from relbench.scoring.api import DEFAULT_SCORER, load_scorer, scorer_provenance
    from relbench.scoring.position import detector_for_geometry
    from relbench.suites import get_perturbation, perturb_suite

    started = utc_now()
    proc = process_info()
    grouped = proc.distributed and can_init() and init_process_group("gloo")
    base = resolve_suite(cfg.suite, stream=True)
    suites = [base] + [perturb_suite(base, p, seed=cfg.perturb_seed) for p in cfg.perturbations]
    if cfg.limit is not None and cfg.limit < 1:
        raise ValueError(f"limit must be a positive number of prompts, got {cfg.limit}")
    model = model or load_model(cfg.model, **cfg.model_args)
    geometry = getattr(model, "geometry", None)  # DiT checkpoints record theirs
    if cfg.scorer in (None, DEFAULT_SCORER):
        detector = load_detector(cfg.detector or detector_for_geometry(geometry or "relbench"))
    else:
        detector = load_scorer(cfg.scorer, detector=cfg.detector)
    info = RunInfo(
        suite=base.name,
        suite_version=base.version,
        prompt_hash=base.prompt_hash,
        perturbations=[
            {"name": p, "version": get_perturbation(p).version, "prompt_hash": s.prompt_hash}
            for p, s in zip(cfg.perturbations, suites[1:])
        ],
        scorer=detector.name,
        scorer_version=detector.version,
        scorer_config_hash=detector.config_hash,
        # A third-party scorer has no detector config, hence no position convention to record.
        scorer_position=getattr(getattr(detector, "config", None), "position", None),
        model=model.describe(),
        model_geometry=geometry,
        seeds=list(cfg.seeds),
        sampling=model_sampling(model),
        git_commit=git_commit(),
        limit=cfg.limit,
        extensions=[e for e in (model_extension(cfg.model), scorer_provenance(cfg.scorer),
                                *(get_perturbation(p).extension for p in cfg.perturbations)) if e],
    )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _check_or_write_info(out_dir, info)

    jobs = _Jobs(suites, cfg.seeds, cfg.limit)  # read as generated: a file: suite is never held
    order = _SampleIds(jobs)  # the canonical row order
    samples_path = out_dir / SAMPLES
    folded = proc.is_main and (grouped or not proc.distributed) and _fold_shards(out_dir, order)
    barrier()
    if proc.distributed:
        jobs = shard(list(jobs), proc.rank, proc.world_size)
        write_path = out_dir / SHARD_SAMPLES.format(rank=proc.rank)
        done = {r["sample_id"] for r in read_samples(samples_path)}
        done |= resume_ids(write_path)
    else:
        write_path = samples_path
        done = resume_ids(samples_path)
    todo = (job for job in jobs if _sample_id(job[1].id, job[2]) not in done)
    n_done = sum(_sample_id(p.id, seed) in done for _, p, seed in jobs) if done else 0
    bar = _progress(len(jobs), n_done, progress and proc.is_main)
    try:
        _generate_into(write_path, todo, model, detector, cfg, out_dir, bar)
    except RunFailedError as e:
        if not proc.distributed:
            summary = build_summary(info, read_samples(samples_path), started=started)
            summary["status"] = "failed"
            summary["failure"] = {"reason": str(e), "traceback": f"{ERRORS_DIR}/{FIRST_FAILURE}"}
            write_json_atomic(out_dir / SUMMARY, summary)
        raise
    finally:
        bar.close()

    if not proc.distributed:
        if folded:  # the rows this run appended after a sharded run's go back into canonical order
            _fold_shards(out_dir, order, force=True)
        summary = build_summary(info, read_samples(samples_path), started=started)
        write_json_atomic(out_dir / SUMMARY, summary)
        return summary
    if grouped:
        barrier()  # every shard is complete
        if proc.is_main:
            _fold_shards(out_dir, order)
            summary = build_summary(info, read_samples(samples_path), started=started)
            write_json_atomic(out_dir / SUMMARY, summary)
        barrier()  # summary.json is written
        return json.loads((out_dir / SUMMARY).read_text())
    # No process group: whichever process sees every job done merges (a race between two such
    # processes writes the same file twice); the others return a summary of their own shard.
    merged = _fold_shards(out_dir, order, only_if_complete=True)
    rows = read_samples(samples_path)
    if merged or set(order) <= {r["sample_id"] for r in rows}:
        summary = build_summary(info, rows, started=started)
        if merged:
            write_json_atomic(out_dir / SUMMARY, summary)
        return summary
    summary = build_summary(info, read_samples(write_path), started=started)
    summary["status"] = "partial"
    summary["shard"] = {"rank": proc.rank, "world_size": proc.world_size,
                        "samples": write_path.name}
    return summary


def _generate_into(
    path: Path, todo: list, model: T2IModel, detector, cfg: EvalConfig, out_dir: Path, bar
) -> None:
    """Generate and score the (suite name, prompt, seed) jobs in `todo`, appending one row per job
    to `path` and flushing after every batch."""
    from relbench.records import image_sha256

    failures = _Failures(out_dir, cfg.max_initial_failures)
    with open(path, "a", encoding="utf-8") as f:
        for batch in _batches(todo, cfg.batch_size):
            requests = [GenerationRequest(p.prompt, seed, p.spec) for _, p, seed in batch]
            failed: dict[str, Any] | None = None
            try:
                images: Sequence[Any] = model.generate(requests)
                batch_error = None
                if len(images) != len(requests):
                    batch_error = f"model returned {len(images)} images for {len(requests)} prompts"
                    failed = failures.record("WrongImageCount", batch_error, len(batch))
            except Exception as e:  # noqa: BLE001 - one failing batch must not end the run
                import traceback

                failed = failures.record(type(e).__name__, traceback.format_exc(), len(batch))
                images = []
                batch_error = f"generation failed: {type(e).__name__}: {e} (traceback: {failed['traceback']})"
            for i, (suite_name, p, seed) in enumerate(batch):
                row = _sample_row(suite_name, p, seed)
                image = images[i] if batch_error is None else None
                row.update(_score(image, p.spec, detector, batch_error))
                if isinstance(image, np.ndarray):  # what the model drew, comparable across reruns
                    row["image_sha256"] = image_sha256(image)
                if failed is not None:
                    row.update(generation_failed=True, error_type=failed["error_type"],
                               traceback=failed["traceback"])
                elif isinstance(image, NoImage):
                    row.update(generation_failed=True, error_type="NoImage")
                    failures.count("NoImage", image.reason)
                else:
                    failures.ok()
                source = getattr(model, "source_files", {}).get((p.prompt.strip(), seed))
                if source is not None:  # folder:DIR names the file that answered
                    row["source_file"] = source
                if cfg.save_images and image is not None and row.get("error") is None:
                    try:
                        row["file"] = _save_image(out_dir, row["sample_id"], image)
                    except OSError as e:  # a full disk or inode table: this row has no image
                        row.update(correct=None, error=f"image not saved: {e}", image_error=str(e))
                f.write(json_line(row))
            f.flush()
            os.fsync(f.fileno())
            bar.update(len(batch))
            failures.check()


class _Failures:
    """Counts generation failures from the start of an invocation; saves each distinct traceback
    under RUN_DIR/errors/ (the first also as first_failure.txt) and stops the run when the first
    `limit` images all failed."""

    def __init__(self, out_dir: Path, limit: int) -> None:
        self.dir, self.limit = Path(out_dir) / ERRORS_DIR, limit
        self.initial = 0
        """Failures before the first image that generated; -1 once one has."""
        self.first: str | None = None
        self.saved: dict[str, str] = {}

    def record(self, error_type: str, text: str, images: int = 1) -> dict[str, Any]:
        """Count `images` failed images; save `text` (a traceback or reason) once; return the row
        fields that point at it."""
        import hashlib

        key = hashlib.sha256(text.encode()).hexdigest()[:12]
        if key not in self.saved:
            self.dir.mkdir(parents=True, exist_ok=True)
            name = f"failure-{key}.txt"
            (self.dir / name).write_text(text)
            if not (self.dir / FIRST_FAILURE).exists():
                (self.dir / FIRST_FAILURE).write_text(text)
            self.saved[key] = f"{ERRORS_DIR}/{name}"
        if self.first is None:
            self.first = f"{error_type}: {text.strip().splitlines()[-1] if text.strip() else ''}"
        if self.initial >= 0:
            self.initial += images
        return {"error_type": error_type, "traceback": self.saved[key]}

    def count(self, error_type: str, reason: str) -> None:
        """Count one image the model answered with a NoImage (its reason is in the row already;
        only the first is also written to first_failure.txt)."""
        if not (self.dir / FIRST_FAILURE).exists():
            self.dir.mkdir(parents=True, exist_ok=True)
            (self.dir / FIRST_FAILURE).write_text(f"{error_type}: {reason}\n")
        if self.first is None:
            self.first = f"{error_type}: {reason}"
        if self.initial >= 0:
            self.initial += 1

    def ok(self) -> None:
        self.initial = -1

    def check(self) -> None:
        if self.limit > 0 and self.initial >= self.limit:
            raise RunFailedError(
                f"the first {self.initial} images all failed to generate (first: {self.first}); "
                f"traceback in {self.dir / FIRST_FAILURE}. Fix the cause and re-run into a new "
                "--out directory"
            )


def _shard_files(out_dir: Path) -> list[Path]:
    """The per-rank sample files of a sharded run, by rank."""
    found = []
    for path in out_dir.glob(SHARD_SAMPLES.format(rank="*")):
        rank = path.name[len("samples.rank") : -len(".jsonl")]
        if rank.isdigit():
            found.append((int(rank), path))
    return [p for _, p in sorted(found)]


def _fold_shards(
    out_dir: Path, order: list[str], *, only_if_complete: bool = False, force: bool = False
) -> bool:
    """Merge every `samples.rank*.jsonl` into `samples.jsonl` (one row per sample id, in the
    canonical `order`; ids outside it keep their place at the end), then delete the shards.

    With `only_if_complete`, do nothing unless every id of `order` has a row; with `force`,
    rewrite `samples.jsonl` in canonical order even when there is no shard. The merged file
    replaces the old one atomically before any shard is deleted, so a kill in between loses
    nothing. Returns whether a merge happened."""
    shards = _shard_files(out_dir)
    if not shards and not force:
        return False
    samples_path = out_dir / SAMPLES
    by_id: dict[str, dict] = {}
    for path in [samples_path, *shards]:
        for row in read_samples(path):
            by_id.setdefault(row["sample_id"], row)
    if only_if_complete and any(i not in by_id for i in order):
        return False
    rank_of = {sample_id: i for i, sample_id in enumerate(order)}
    rows = sorted(by_id.values(), key=lambda r: rank_of.get(r["sample_id"], len(order)))
    tmp = samples_path.with_name(f".{SAMPLES}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(row) + "\n" for row in rows)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(samples_path)
    for path in shards:
        path.unlink(missing_ok=True)
    return True


def resume_ids(path: Path) -> set[str]:
    """The sample ids a resumed run may skip: the rows of `path` after repairing it. A partial
    last line is cut; a repeated sample id (two writers once raced) keeps its first row; a row
    whose image failed to save (`image_error`) is dropped so it is generated again. The file is
    rewritten atomically only when something was removed."""
    rows = read_samples(path, repair=True)
    kept, seen = [], set()
    for n, row in enumerate(rows, start=1):
        problem = check_row(row)
        if problem:
            raise RunDirError(f"{path} line {n}: {problem}; use a new --out directory")
        sid = row.get("sample_id")
        if sid in seen or row.get("image_error") is not None:
            continue
        seen.add(sid)
        kept.append(row)
    if len(kept) != len(rows):
        _rewrite_rows(path, kept)
    return seen


def _rewrite_rows(path: Path, rows: list[dict]) -> None:
    """Replace `path` by `rows` atomically (a temporary file renamed over it)."""
    from relbench.safety import json_line

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.writelines(json_line(row) for row in rows)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


def unique_rows(rows: list[dict]) -> list[dict]:
    """The first row of each sample id, in order (a summary never counts a sample twice)."""
    seen: set = set()
    out = []
    for row in rows:
        sid = row.get("sample_id")
        if isinstance(sid, str) and sid in seen:
            continue
        if isinstance(sid, str):
            seen.add(sid)
        out.append(row)
    return out


def build_summary(info: RunInfo, rows: list[dict], *, started: datetime | None = None) -> dict:
    """`summary.json`: run provenance + metrics; `metrics.overall` is the headline accuracy.
    With `started` (when this invocation began), `provenance` records UTC start and end, wall
    time, package versions and whether the source tree was dirty (relbench.records).

    Each set (the originals, then each perturbation) also gets `breakdowns` (accuracy with a CI
    per relation, shape pair and colour order) and `offsets` (mean dx, dy overall and per
    relation)."""
    from relbench.scoring import summarize
    from relbench.stats import (
        accuracy_ci, breakdowns, layout_offsets, paired_drop, seed_consistency,
    )

    rows = unique_rows(rows)
    by_pert: dict[str, list[dict]] = {}
    for row in rows:
        by_pert.setdefault(row.get("perturbation") or "none", []).append(row)
    originals = by_pert.get("none", [])
    metrics = summarize(originals)
    metrics["overall_ci95"] = accuracy_ci(originals)["ci95"]
    metrics["seed_consistency"] = seed_consistency(originals)
    metrics["breakdowns"] = breakdowns(originals)
    metrics["offsets"] = layout_offsets(originals)
    metrics["per_perturbation"] = {}
    for name, pert_rows in sorted(by_pert.items()):
        if name == "none":
            continue
        m = summarize(pert_rows)
        m["overall_ci95"] = accuracy_ci(pert_rows)["ci95"]
        m["paired_drop"] = paired_drop(originals, pert_rows)
        m["breakdowns"] = breakdowns(pert_rows)
        m["offsets"] = layout_offsets(pert_rows)
        metrics["per_perturbation"][name] = m
    metrics["n_generation_failed"] = sum(bool(r.get("generation_failed")) for r in rows)
    unsaved = sum(r.get("image_error") is not None for r in rows)
    if unsaved:  # --save-images promised files that are not there: resuming writes them
        metrics["n_images_unsaved"] = unsaved
    status = "incomplete" if unsaved else "complete"
    summary = {"status": status, "run": info.model_dump(), "metrics": metrics}
    if started is not None:
        from relbench.records import provenance
        from relbench.runlog import git_dirty

        prov = provenance(started, git_commit=info.git_commit, git_dirty=git_dirty(), rows=rows)
        summary["provenance"] = prov.model_dump(mode="json")
    return summary


def read_samples(path: Path, *, repair: bool = False) -> list[dict]:
    """Rows of a samples file. A partial last line (a run killed mid-write) is dropped, and with
    `repair` also cut from the file so appending resumes cleanly."""
    if not path.exists():
        return []
    rows, good_bytes = [], 0
    with open(path, "rb") as f:
        for raw in f:
            try:
                rows.append(json.loads(raw))
            except json.JSONDecodeError:
                if f.read():  # a bad line in the middle is real corruption, not a kill
                    raise ValueError(f"{path}: corrupt line {len(rows) + 1}") from None
                break
            if not raw.endswith(b"\n"):
                rows.pop()
                break
            good_bytes += len(raw)
    if repair and path.stat().st_size != good_bytes:
        with open(path, "r+b") as f:
            f.truncate(good_bytes)
    return rows


class RunDirError(ValueError):
    """A directory that cannot be read as a run of this relbench (no run.json, another schema)."""


@dataclass
class RunDir:
    """An existing run directory: `info` is its run.json, `summary` its summary.json (None while
    the run is incomplete)."""

    path: Path
    info: dict[str, Any]
    summary: dict[str, Any] | None

    @property
    def complete(self) -> bool:
        return self.summary is not None and self.summary.get("status") == "complete"

    def rows(self) -> list[dict]:
        """samples.jsonl, each row checked for the types relbench reads (`check_row`)."""
        rows = read_samples(self.path / SAMPLES)
        for n, row in enumerate(rows, start=1):
            problem = check_row(row)
            if problem:
                raise RunDirError(f"{self.path / SAMPLES} line {n}: {problem}; not a run this "
                                  "relbench wrote (re-run the eval into a new --out directory)")
        return rows


_ROW_TYPES: dict[str, tuple[type, ...]] = {
    "sample_id": (str,), "suite": (str,), "prompt_id": (str,), "source_id": (str,),
    "perturbation": (str, type(None)), "prompt": (str,), "spec": (dict, type(None)),
    "relation": (str, type(None)), "seed": (int,), "file": (str,),
    "correct": (bool, type(None)), "error": (str, type(None)),
}


def check_row(row: Any) -> str | None:
    """Why a samples.jsonl row cannot be read as one relbench wrote (wrong types), or None."""
    if not isinstance(row, dict):
        return f"expected a JSON object, got {type(row).__name__}"
    if not isinstance(row.get("sample_id"), str):
        return f"sample_id {row.get('sample_id')!r} is not a string"
    for key, types in _ROW_TYPES.items():
        if key in row and (not isinstance(row[key], types)
                           or (isinstance(row[key], bool) and bool not in types)):
            return f"{key} {str(row[key])[:40]!r} has type {type(row[key]).__name__}"
    spec = row.get("spec")
    if isinstance(spec, dict) and not all(isinstance(spec.get(k), dict)
                                          for k in ("subject", "reference")):
        return "spec needs subject and reference objects"
    return None


def load_run_info(run_dir: Path) -> dict[str, Any]:
    """run.json of an existing run, checked against this relbench's run-log schema version."""
    from relbench import __version__
    from relbench.runlog import RUN_SCHEMA_VERSION

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory {run_dir} does not exist")
    path = run_dir / RUN_INFO
    if not path.is_file():
        what = "an unfinished or foreign run" if (run_dir / SAMPLES).exists() else "not a run"
        raise RunDirError(
            f"{run_dir} has no {RUN_INFO} ({what}): `relbench eval --out DIR` writes it; "
            "re-run the eval into a new --out directory"
        )
    try:
        info = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise RunDirError(f"{path} is not valid JSON ({e}); re-run the eval into a new --out "
                          "directory") from None
    if not isinstance(info, dict):
        raise RunDirError(f"{path} holds {type(info).__name__}, not a JSON object")
    found = info.get("schema_version")
    if found != RUN_SCHEMA_VERSION:
        raise RunDirError(
            f"{run_dir} is a run log of schema version {found!r} (written by relbench "
            f"{info.get('relbench_version', '?')}); this relbench {__version__} reads schema "
            f"version {RUN_SCHEMA_VERSION!r}. Re-run the eval with this relbench into a new --out "
            "directory, or read it with the relbench version that wrote it"
        )
    return info


def open_run(run_dir: Path) -> RunDir:
    """An existing run directory (see `load_run_info` for the checks)."""
    run_dir = Path(run_dir)
    info = load_run_info(run_dir)
    summary_path = run_dir / SUMMARY
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else None
    return RunDir(run_dir, info, summary)


def expected_samples(info: dict[str, Any]) -> int | None:
    """How many rows a finished run has: prompts × (1 + perturbations) × seeds. None when the
    suite is not a registered one with the recorded version and prompt hash (e.g. `file:`)."""
    from relbench.suites import get_suite, list_suites

    if info.get("suite") not in list_suites():
        return None
    suite = get_suite(info["suite"])
    if (suite.version, suite.prompt_hash) != (info.get("suite_version"), info.get("prompt_hash")):
        return None
    n = len(suite) if info.get("limit") is None else min(len(suite), int(info["limit"]))
    return n * (1 + len(info.get("perturbations", []))) * len(info.get("seeds", []))


def run_report(run: RunDir) -> dict[str, Any]:
    """What `relbench log show` prints: provenance, progress and the metrics (from summary.json,
    or computed from the rows so far while the run is incomplete)."""
    rows = run.rows()
    if run.summary is None:  # a sharded run in progress keeps its rows in per-rank files
        seen = {r["sample_id"] for r in rows}
        for path in _shard_files(run.path):
            rows += [r for r in read_samples(path) if r["sample_id"] not in seen]
    if run.summary is not None:
        metrics = run.summary["metrics"]
    else:
        metrics = build_summary(RunInfo.model_validate(run.info), rows)["metrics"] if rows else None
    return {
        "path": str(run.path),
        "status": "complete" if run.complete else "incomplete",
        "run": run.info,
        "progress": {
            "rows": len(rows),
            "expected": expected_samples(run.info),
            "unscorable": sum(r.get("correct") is None for r in rows),
            "images_saved": sum(1 for r in rows if r.get("file")),
        },
        "metrics": metrics,
        "provenance": (run.summary or {}).get("provenance"),
    }


def default_rescore_dir(run_dir: Path, detector_name: str, detector_version: str) -> Path:
    """`RUN_DIR.rescored-<scorer or detector config>-v<version>` beside the run."""
    run_dir = Path(run_dir)
    return run_dir.with_name(f"{run_dir.name}.rescored-{detector_name}-v{detector_version}")


def rescore_run(
    run_dir: Path, detector: str | Path | None, out_dir: Path, *, progress: bool = True,
    scorer: str | None = None,
) -> dict:
    """Score the saved images of a finished run (`relbench eval --save-images`) with another
    scorer into a new run directory: run.json with the new scorer fields (and `rescored_from`),
    samples.jsonl with the images copied alongside, and summary.json. Rows that were unscorable
    at generation (no image) stay unscorable.

    `scorer` and `detector` choose the scorer as in `relbench score` and `eval`
    (`relbench.scoring.api.load_scorer`): the classical detector with config `detector` (None:
    `default`), or a scorer an installed package registers, recorded with its package in
    `extensions` (`detector` with such a scorer is an error)."""
    from relbench import __version__
    from relbench.scoring.api import load_scorer, scorer_provenance

    run = open_run(run_dir)
    if not run.complete:
        raise RunDirError(f"{run.path} is incomplete (no complete {SUMMARY}); finish it by "
                          "re-running its relbench eval command, then rescore")
    out_dir = Path(out_dir)
    if out_dir.resolve() == run.path.resolve():
        raise ValueError("--out must differ from the run directory: a rescore writes a new run")
    if out_dir.exists() and _unfinished_rescore(out_dir, run.path):
        import shutil

        shutil.rmtree(out_dir)  # a rescore of this run killed before its summary: start again
    from relbench.safety import LOCK_FILE

    if out_dir.exists() and any(p.name != LOCK_FILE for p in out_dir.iterdir()):
        raise ValueError(f"{out_dir} is not empty; choose a new --out directory")
    rows = run.rows()
    generated = [r for r in rows if r.get("error") is None or r.get("file")]
    unsaved = [r for r in generated if not r.get("file")]
    if unsaved:
        how = "no image was saved" if len(unsaved) == len(generated) else (
            f"{len(unsaved)} of {len(generated)} images were not saved (first: "
            f"{unsaved[0].get('sample_id')})")
        raise RunDirError(f"cannot rescore {run.path}: {how}; re-run the eval with --save-images "
                          "into a new --out directory")
    det = load_scorer(scorer, detector=None if detector is None else str(detector))
    info = RunInfo.model_validate(run.info)
    old = {k: run.info.get(k) for k in ("scorer", "scorer_version", "scorer_config_hash",
                                        "relbench_version", "git_commit")}
    extensions = [e for e in info.extensions if e.get("group") != "relbench.scorers"]
    info = info.model_copy(update={
        "scorer": det.name, "scorer_version": det.version,
        "scorer_config_hash": det.config_hash, "relbench_version": __version__,
        "git_commit": git_commit(),
        # A third-party scorer has no detector config, hence no position convention to record.
        "scorer_position": getattr(getattr(det, "config", None), "position", None),
        "extensions": extensions + [e for e in (scorer_provenance(scorer),) if e],
    })
    rescored_from = {"run_dir": str(run.path), **old}

    from relbench.safety import DirLock

    existed = out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    with DirLock(out_dir):
        try:
            return _rescore_into(out_dir, run, rows, det, info, rescored_from, progress)
        except BaseException:  # nothing half-written stays behind to block a retry
            import shutil

            shutil.rmtree(out_dir, ignore_errors=True)
            if existed:
                out_dir.mkdir(parents=True, exist_ok=True)
            raise


def _unfinished_rescore(out_dir: Path, run_path: Path) -> bool:
    """Whether `out_dir` is a rescore of `run_path` that was killed before its summary."""
    try:
        info = json.loads((out_dir / RUN_INFO).read_text())
    except (OSError, ValueError):
        return False
    src = info.get("rescored_from") if isinstance(info, dict) else None
    return (isinstance(src, dict) and isinstance(src.get("run_dir"), str)
            and Path(src["run_dir"]).resolve() == run_path.resolve()
            and not (out_dir / SUMMARY).exists())


def _rescore_into(out_dir: Path, run: RunDir, rows: list[dict], det, info: RunInfo,
                  rescored_from: dict, progress: bool) -> dict:
    """The writing half of `rescore_run`: every path read stays inside the run directory and
    every path written inside `out_dir` (images get `image_name` names there)."""
    from relbench.records import utc_now
    from relbench.safety import path_inside
    from relbench.scoring.folder import RESULT_FIELDS, score_rows

    started = utc_now()

    write_json_atomic(out_dir / RUN_INFO, {**info.model_dump(), "rescored_from": rescored_from})
    bar = _progress(len(rows), 0, progress)
    new_rows = []
    # Rows with an image are scored a batch at a time (score_rows: score_row on each, faster);
    # each refuses a file outside run.path.
    scored = score_rows(
        ({k: v for k, v in row.items() if k not in RESULT_FIELDS and k != "error"}
         for row in rows if row.get("file")), run.path, det)
    with open(out_dir / SAMPLES, "w", encoding="utf-8") as f:
        for row in rows:
            if row.get("file"):
                row = next(scored)
                if row.get("error") is None:
                    rel = image_name(str(row.get("sample_id")))
                    dst = path_inside(out_dir, rel)
                    if not dst.exists():  # a repeated sample id names the same image
                        _copy_image(path_inside(run.path, row["file"]), dst)
                    row["file"] = rel
            f.write(json_line(row))
            new_rows.append(row)
            bar.update(1)
        f.flush()
        os.fsync(f.fileno())
    bar.close()
    summary = build_summary(info, new_rows, started=started)
    summary["rescored_from"] = rescored_from
    write_json_atomic(out_dir / SUMMARY, summary)
    return summary


def _copy_image(src: Path, dst: Path) -> None:
    """Hard-link when possible (same filesystem), else copy."""
    import shutil

    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _check_or_write_info(out_dir: Path, info: RunInfo) -> None:
    path = out_dir / RUN_INFO
    new = info.model_dump(exclude={"git_commit", "relbench_version"})
    new = {k: v for k, v in new.items() if not (k == "limit" and v is None)}  # logs before --limit
    if path.exists():
        old = load_run_info(out_dir)
        old_cmp = {k: v for k, v in old.items() if k not in ("git_commit", "relbench_version")
                   and not (k == "limit" and v is None)}
        # Logs from before these fields: the scorer config hash and checkpoint hash still decide.
        for k in ("scorer_position", "model_geometry", "extensions"):
            old_cmp.setdefault(k, new.get(k))
        if old_cmp != new:
            diff = sorted(k for k in set(old_cmp) | set(new) if old_cmp.get(k) != new.get(k))
            raise ValueError(
                f"{out_dir} holds a run with a different configuration (differs in: "
                f"{', '.join(diff)}); use a new --out directory to start another run"
            )
        return
    write_json_atomic(path, info.model_dump())


def _score(image: Any, spec, detector, error: str | None) -> dict:
    if error is None:
        error = _image_problem(image)
    if error is not None:
        return {"correct": None, "error": error}
    return detector.score(image, spec).to_dict()  # a Scorer (relbench.scoring.api)


def _image_problem(image: Any) -> str | None:
    """Why a model's output cannot be scored, or None if it can."""
    if isinstance(image, NoImage):
        return image.reason
    if not isinstance(image, np.ndarray):
        return f"model returned {type(image).__name__}, not an array"
    if image.ndim != 3 or image.shape[2] != 3:
        return f"model returned an image of shape {image.shape}, expected (H, W, 3)"
    if image.dtype != np.uint8:
        if not np.isfinite(image).all():
            return "model returned an image with NaN or infinite values"
        return f"model returned dtype {image.dtype}, expected uint8"
    return None


def _sample_id(prompt_id: str, seed: int) -> str:
    return f"{prompt_id}#s{seed}"


def _sample_row(suite_name: str, p, seed: int) -> dict:
    return {
        "sample_id": _sample_id(p.id, seed),
        "suite": suite_name,
        "prompt_id": p.id,
        "source_id": p.source_id or p.id,
        "perturbation": p.perturbation,
        "prompt": p.prompt,
        "spec": p.spec.to_dict(),
        "relation": p.spec.relation,
        "seed": seed,
    }


def image_name(sample_id: str) -> str:
    """`images/<readable id>-<hash>.png`: the hash of the exact id keeps names unique when two ids
    read the same once made file-safe (`a/b` and `a_b`), and the name is always a plain file."""
    import hashlib
    import re

    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", sample_id).strip("._")[:80] or "sample"
    digest = hashlib.sha256(sample_id.encode()).hexdigest()[:12]
    return f"images/{safe}-{digest}.png"


def _save_image(out_dir: Path, sample_id: str, image: np.ndarray) -> str:
    """Write `image` under out_dir/images (to a temporary name, then renamed: a kill leaves no
    half file); an OSError when it could not be written in full."""
    import cv2

    rel = image_name(sample_id)
    path = out_dir / rel
    path.parent.mkdir(exist_ok=True)
    ok, data = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"cannot encode {rel} as PNG")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data.tobytes())
        tmp.replace(path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise OSError(f"cannot write {rel}: {e.strerror or e}") from None
    return rel


def _batches(items: Iterable, n: int) -> Iterator[list]:
    """Lists of `n` items (the last may be shorter), taken from `items` as they come."""
    it = iter(items)
    while batch := list(islice(it, n)):
        yield batch


class _Jobs:
    """The (suite name, prompt, seed) jobs of a run in canonical order (suite, prompt, seed):
    with `limit`, the first `limit` prompts of each suite (a perturbed prompt sits at the index
    of the original it pairs with). Prompts are read anew on each iteration, so a streamed
    `file:` suite is never held."""

    def __init__(self, suites: Sequence[Any], seeds: Sequence[int], limit: int | None) -> None:
        self.suites, self.seeds, self.limit = suites, seeds, limit

    def __iter__(self) -> Iterator[tuple[str, Any, int]]:
        for s in self.suites:
            for p in islice(s.prompts, self.limit):
                for seed in self.seeds:
                    yield s.name, p, seed

    def __len__(self) -> int:
        n = sum(len(s) if self.limit is None else min(len(s), self.limit) for s in self.suites)
        return n * len(self.seeds)


class _SampleIds:
    """The sample ids of `jobs`, in their order (re-iterable, sized, never held)."""

    def __init__(self, jobs: _Jobs) -> None:
        self.jobs = jobs

    def __iter__(self) -> Iterator[str]:
        return (_sample_id(p.id, seed) for _, p, seed in self.jobs)

    def __len__(self) -> int:
        return len(self.jobs)


def _progress(total: int, initial: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, unit="img", desc="eval")
