"""suite × model × scorer → a run directory (`samples.jsonl` + `summary.json`), resumable.

Rows are appended and flushed as they are scored, so a killed run loses at most the batch in
flight; running the same command again skips every sample already on disk.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from relbench.models import GenerationRequest, NoImage, T2IModel, load_model
from relbench.runlog import RunInfo, git_commit, write_json_atomic

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
    detector: str = "default"
    batch_size: int = 16
    save_images: bool = False
    perturb_seed: int = 0
    model_args: dict[str, Any] = field(default_factory=dict)


def resolve_suite(name: str):
    """A registered suite name, or `file:PATH` for a user's own prompts."""
    from relbench.suites import get_suite, load_suite_file

    if name.startswith("file:"):
        return load_suite_file(Path(name[5:]))
    return get_suite(name)


def run_eval(cfg: EvalConfig, out_dir: Path, *, progress: bool = True, model: T2IModel | None = None) -> dict:
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
    from relbench.scoring import load_detector
    from relbench.suites import get_perturbation, perturb_suite

    proc = process_info()
    grouped = proc.distributed and can_init() and init_process_group("gloo")
    base = resolve_suite(cfg.suite)
    suites = [base] + [perturb_suite(base, p, seed=cfg.perturb_seed) for p in cfg.perturbations]
    model = model or load_model(cfg.model, **cfg.model_args)
    detector = load_detector(cfg.detector)
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
        model=model.describe(),
        seeds=list(cfg.seeds),
        sampling=getattr(model, "sampling", {}),
        git_commit=git_commit(),
    )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _check_or_write_info(out_dir, info)

    jobs = [(s.name, p, seed) for s in suites for p in s.prompts for seed in cfg.seeds]
    order = [_sample_id(p.id, seed) for _, p, seed in jobs]  # the canonical row order
    samples_path = out_dir / SAMPLES
    folded = proc.is_main and (grouped or not proc.distributed) and _fold_shards(out_dir, order)
    barrier()
    if proc.distributed:
        jobs = shard(jobs, proc.rank, proc.world_size)
        write_path = out_dir / SHARD_SAMPLES.format(rank=proc.rank)
        done = {r["sample_id"] for r in read_samples(samples_path)}
        done |= {r["sample_id"] for r in read_samples(write_path, repair=True)}
    else:
        write_path = samples_path
        done = {row["sample_id"] for row in read_samples(samples_path, repair=True)}
    todo = [job for job in jobs if _sample_id(job[1].id, job[2]) not in done]
    bar = _progress(len(jobs), len(jobs) - len(todo), progress and proc.is_main)
    _generate_into(write_path, todo, model, detector, cfg, out_dir, bar)
    bar.close()

    if not proc.distributed:
        if folded:  # the rows this run appended after a sharded run's go back into canonical order
            _fold_shards(out_dir, order, force=True)
        summary = build_summary(info, read_samples(samples_path))
        write_json_atomic(out_dir / SUMMARY, summary)
        return summary
    if grouped:
        barrier()  # every shard is complete
        if proc.is_main:
            _fold_shards(out_dir, order)
            write_json_atomic(out_dir / SUMMARY, build_summary(info, read_samples(samples_path)))
        barrier()  # summary.json is written
        return json.loads((out_dir / SUMMARY).read_text())
    # No process group: whichever process sees every job done merges (a race between two such
    # processes writes the same file twice); the others return a summary of their own shard.
    merged = _fold_shards(out_dir, order, only_if_complete=True)
    rows = read_samples(samples_path)
    if merged or set(order) <= {r["sample_id"] for r in rows}:
        summary = build_summary(info, rows)
        if merged:
            write_json_atomic(out_dir / SUMMARY, summary)
        return summary
    summary = build_summary(info, read_samples(write_path))
    summary["status"] = "partial"
    summary["shard"] = {"rank": proc.rank, "world_size": proc.world_size,
                        "samples": write_path.name}
    return summary


def _generate_into(
    path: Path, todo: list, model: T2IModel, detector, cfg: EvalConfig, out_dir: Path, bar
) -> None:
    """Generate and score the (suite name, prompt, seed) jobs in `todo`, appending one row per job
    to `path` and flushing after every batch."""
    with open(path, "a", encoding="utf-8") as f:
        for batch in _batches(todo, cfg.batch_size):
            requests = [GenerationRequest(p.prompt, seed, p.spec) for _, p, seed in batch]
            try:
                images: Sequence[Any] = model.generate(requests)
                batch_error = None
                if len(images) != len(requests):
                    batch_error = f"model returned {len(images)} images for {len(requests)} prompts"
            except Exception as e:  # noqa: BLE001 - one failing batch must not end the run
                images, batch_error = [], f"generation failed: {type(e).__name__}: {e}"
            for i, (suite_name, p, seed) in enumerate(batch):
                row = _sample_row(suite_name, p, seed)
                image = images[i] if batch_error is None else None
                row.update(_score(image, p.spec, detector, batch_error))
                if cfg.save_images and image is not None and row.get("error") is None:
                    row["file"] = _save_image(out_dir, row["sample_id"], image)
                f.write(json.dumps(row) + "\n")
            f.flush()
            os.fsync(f.fileno())
            bar.update(len(batch))


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


def build_summary(info: RunInfo, rows: list[dict]) -> dict:
    """`summary.json`: run provenance + metrics; `metrics.overall` is the headline accuracy.

    Each set (the originals, then each perturbation) also gets `breakdowns` (accuracy with a CI
    per relation, shape pair and colour order) and `offsets` (mean dx, dy overall and per
    relation)."""
    from relbench.scoring import summarize
    from relbench.stats import (
        accuracy_ci, breakdowns, layout_offsets, paired_drop, seed_consistency,
    )

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
    return {"status": "complete", "run": info.model_dump(), "metrics": metrics}


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
        return read_samples(self.path / SAMPLES)


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
    return len(suite) * (1 + len(info.get("perturbations", []))) * len(info.get("seeds", []))


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
    }


def default_rescore_dir(run_dir: Path, detector_name: str, detector_version: str) -> Path:
    """`RUN_DIR.rescored-<detector>-v<version>` beside the run."""
    run_dir = Path(run_dir)
    return run_dir.with_name(f"{run_dir.name}.rescored-{detector_name}-v{detector_version}")


def rescore_run(
    run_dir: Path, detector: str | Path, out_dir: Path, *, progress: bool = True
) -> dict:
    """Score the saved images of a finished run (`relbench eval --save-images`) with another
    scorer into a new run directory: run.json with the new scorer fields (and `rescored_from`),
    samples.jsonl with the images copied alongside, and summary.json. Rows that were unscorable
    at generation (no image) stay unscorable."""
    from relbench import __version__
    from relbench.scoring import load_detector
    from relbench.scoring.folder import RESULT_FIELDS, score_row

    run = open_run(run_dir)
    if not run.complete:
        raise RunDirError(f"{run.path} is incomplete (no complete {SUMMARY}); finish it by "
                          "re-running its relbench eval command, then rescore")
    out_dir = Path(out_dir)
    if out_dir.resolve() == run.path.resolve():
        raise ValueError("--out must differ from the run directory: a rescore writes a new run")
    if out_dir.exists() and any(out_dir.iterdir()):
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
    det = load_detector(detector)
    info = RunInfo.model_validate(run.info)
    old = {k: run.info.get(k) for k in ("scorer", "scorer_version", "scorer_config_hash",
                                        "relbench_version", "git_commit")}
    info = info.model_copy(update={
        "scorer": det.name, "scorer_version": det.version,
        "scorer_config_hash": det.config_hash, "relbench_version": __version__,
        "git_commit": git_commit(),
    })
    rescored_from = {"run_dir": str(run.path), **old}

    out_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out_dir / RUN_INFO, {**info.model_dump(), "rescored_from": rescored_from})
    bar = _progress(len(rows), 0, progress)
    new_rows = []
    with open(out_dir / SAMPLES, "w", encoding="utf-8") as f:
        for row in rows:
            if row.get("file"):
                base = {k: v for k, v in row.items() if k not in RESULT_FIELDS and k != "error"}
                row = score_row(base, run.path, det)
                if row.get("error") is None:
                    _copy_image(run.path / row["file"], out_dir / row["file"])
            f.write(json.dumps(row) + "\n")
            new_rows.append(row)
            bar.update(1)
        f.flush()
        os.fsync(f.fileno())
    bar.close()
    summary = build_summary(info, new_rows)
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
    if path.exists():
        old = load_run_info(out_dir)
        old_cmp = {k: v for k, v in old.items() if k not in ("git_commit", "relbench_version")}
        if old_cmp != new:
            diff = sorted(k for k in set(old_cmp) | set(new) if old_cmp.get(k) != new.get(k))
            raise ValueError(
                f"{out_dir} holds a run with a different configuration (differs in: "
                f"{', '.join(diff)}); use a new --out directory to start another run"
            )
        return
    write_json_atomic(path, info.model_dump())


def _score(image: Any, spec, detector, error: str | None) -> dict:
    from relbench.scoring import score_image

    if error is None:
        error = _image_problem(image)
    if error is not None:
        return {"correct": None, "error": error}
    return score_image(image, spec, detector).to_dict()


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


def _save_image(out_dir: Path, sample_id: str, image: np.ndarray) -> str:
    import cv2

    rel = Path("images") / (sample_id.replace("/", "_").replace("#", "_") + ".png")
    (out_dir / rel).parent.mkdir(exist_ok=True)
    cv2.imwrite(str(out_dir / rel), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return str(rel)


def _batches(items: list, n: int) -> Iterator[list]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def _progress(total: int, initial: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, unit="img", desc="eval")
