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

from relbench.models import GenerationRequest, T2IModel, load_model
from relbench.runlog import RunInfo, git_commit

SAMPLES = "samples.jsonl"
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
    """Generate and score every (prompt, seed) of the suite and its perturbations into `out_dir`."""
    from relbench.scoring import load_detector
    from relbench.suites import get_perturbation, perturb_suite

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

    samples_path = out_dir / SAMPLES
    done = {row["sample_id"] for row in read_samples(samples_path, repair=True)}
    todo = [
        (s.name, p, seed)
        for s in suites
        for p in s.prompts
        for seed in cfg.seeds
        if _sample_id(p.id, seed) not in done
    ]
    total = sum(len(s.prompts) for s in suites) * len(cfg.seeds)
    bar = _progress(total, len(done), progress)
    with open(samples_path, "a", encoding="utf-8") as f:
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
    bar.close()
    summary = build_summary(info, read_samples(samples_path))
    _write_json_atomic(out_dir / SUMMARY, summary)
    return summary


def build_summary(info: RunInfo, rows: list[dict]) -> dict:
    """`summary.json`: run provenance + metrics; `metrics.overall` is the headline accuracy."""
    from relbench.scoring import summarize
    from relbench.stats import accuracy_ci, paired_drop, seed_consistency

    by_pert: dict[str, list[dict]] = {}
    for row in rows:
        by_pert.setdefault(row.get("perturbation") or "none", []).append(row)
    originals = by_pert.get("none", [])
    metrics = summarize(originals)
    metrics["overall_ci95"] = accuracy_ci(originals)["ci95"]
    metrics["seed_consistency"] = seed_consistency(originals)
    metrics["per_perturbation"] = {}
    for name, pert_rows in sorted(by_pert.items()):
        if name == "none":
            continue
        m = summarize(pert_rows)
        m["overall_ci95"] = accuracy_ci(pert_rows)["ci95"]
        m["paired_drop"] = paired_drop(originals, pert_rows)
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


def _check_or_write_info(out_dir: Path, info: RunInfo) -> None:
    path = out_dir / RUN_INFO
    new = info.model_dump(exclude={"git_commit", "relbench_version"})
    if path.exists():
        old = json.loads(path.read_text())
        old_cmp = {k: v for k, v in old.items() if k not in ("git_commit", "relbench_version")}
        if old_cmp != new:
            diff = sorted(k for k in set(old_cmp) | set(new) if old_cmp.get(k) != new.get(k))
            raise ValueError(
                f"{out_dir} holds a run with a different configuration (differs in: "
                f"{', '.join(diff)}); use a new --out directory to start another run"
            )
        return
    _write_json_atomic(path, info.model_dump())


def _score(image: Any, spec, detector, error: str | None) -> dict:
    from relbench.scoring import score_image

    if error is None:
        error = _image_problem(image)
    if error is not None:
        return {"correct": None, "error": error}
    return score_image(image, spec, detector).to_dict()


def _image_problem(image: Any) -> str | None:
    """Why a model's output cannot be scored, or None if it can."""
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


def _write_json_atomic(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    tmp.replace(path)


def _batches(items: list, n: int) -> Iterator[list]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def _progress(total: int, initial: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, unit="img", desc="eval")
