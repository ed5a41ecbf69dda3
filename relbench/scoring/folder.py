"""Score a folder of images described by `metadata.jsonl` (the `relbench score` contract).

Each metadata line is a JSON object with `file` (relative to the folder) and `prompt` (free
text) or `spec` (a RelationSpec dict). Every input row is written back with its fields kept,
plus the `ScoreResult` fields. A row that cannot be scored — missing/corrupt/grayscale image,
empty or unparseable prompt, or a metadata line that is not a JSON object — gets
`correct: null` and an `error`; malformed lines become such rows carrying their `line`
number, so no input line is silently dropped and the rest still score.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator

from relbench.scene import RelationSpec
from relbench.scoring.config import DetectorConfig
from relbench.scoring.detect import Detector
from relbench.scoring.files import read_image
from relbench.scoring.judge import score_image
from relbench.scoring.metrics import summarize

METADATA = "metadata.jsonl"
SCORES = "scores.jsonl"
RESULT_FIELDS = (
    "correct", "relation_strict", "relation_loose", "shape", "color", "exist_binding",
    "unique_binding", "dx", "dy", "found_relation", "reason", "detections",
)


def read_metadata(path: Path) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    """(line number, row or None, error or None) for every non-blank line of a metadata file."""
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                yield n, None, f"{path.name} line {n}: invalid JSON ({e.msg})"
                continue
            if not isinstance(row, dict):
                kind = type(row).__name__
                yield n, None, f"{path.name} line {n}: expected a JSON object, got {kind}"
                continue
            yield n, row, None


def row_spec(row: dict[str, Any]) -> RelationSpec:
    """The spec of a metadata row: its explicit `spec`, else its parsed `prompt`."""
    if row.get("spec") is not None:
        if not isinstance(row["spec"], dict):
            raise ValueError(f"spec must be an object, got {row['spec']!r}")
        return RelationSpec.from_dict(row["spec"])
    prompt = row.get("prompt")
    if prompt is None:
        raise ValueError("row has neither 'prompt' nor 'spec'")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError("empty prompt")
    from relbench.suites import parse_prompt  # lazy: suites is only needed for free text

    return parse_prompt(prompt)


def score_row(row: dict[str, Any], root: Path, detector: Detector) -> dict[str, Any]:
    """The output row for one metadata row (never raises for a bad row: it gets an `error`)."""
    out = dict(row)
    try:
        spec = row_spec(row)
        if "spec" not in out:
            out["spec"] = spec.to_dict()
        file = row.get("file")
        if not isinstance(file, str) or not file:
            raise ValueError("row has no 'file'")
        image = read_image(root / file, detector.config.background)
        out.update(score_image(image, spec, detector).to_dict())
    except ValueError as e:  # ImageReadError, PromptParseError and malformed specs are ValueErrors
        return error_row(out, str(e))
    return out


def error_row(row: dict[str, Any], error: str) -> dict[str, Any]:
    """`row` marked unscorable: every result field null (detections empty) plus `error`."""
    out = dict(row)
    out.update({f: None for f in RESULT_FIELDS})
    out["detections"] = []
    out["error"] = error
    return out


def score_folder(
    root: Path,
    detector: Detector,
    out_path: Path | None = None,
    *,
    workers: int = 1,
    progress: bool = True,
) -> dict[str, Any]:
    """Score `root/metadata.jsonl` into `out_path` (default `root/scores.jsonl`); returns the
    summary. Rows are written and flushed as they are scored (a killed run keeps them); the
    output is rewritten from scratch on each run."""
    root = Path(root)
    meta = root / METADATA
    if not meta.is_file():
        raise FileNotFoundError(f"{meta} not found: a score folder needs a {METADATA}")
    out_path = Path(out_path) if out_path is not None else root / SCORES
    items = list(read_metadata(meta))
    rows: list[dict[str, Any]] = []
    from tqdm.auto import tqdm

    bar = tqdm(total=len(items), disable=not progress, unit="img", desc="score")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with open(out_path, "w", encoding="utf-8") as f:
        for row in _scored(items, root, detector, workers):
            f.write(json.dumps(row) + "\n")
            f.flush()
            rows.append(row)
            bar.update(1)
        os.fsync(f.fileno())
    bar.close()
    summary = summarize(rows)
    summary["detector"] = detector.describe()
    summary["scores"] = str(out_path)
    return summary


def _scored(items, root: Path, detector: Detector, workers: int) -> Iterator[dict[str, Any]]:
    if workers <= 1:
        for item in items:
            yield _score_item(item, root, detector)
        return
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(
        workers, initializer=_init_worker, initargs=(detector.config.model_dump(mode="json"),)
    ) as pool:
        yield from pool.imap(_worker_item, [(item, str(root)) for item in items], chunksize=16)


def _score_item(item, root: Path, detector: Detector) -> dict[str, Any]:
    n, row, err = item
    if row is None:
        return error_row({"line": n}, err)
    return score_row(row, root, detector)


_WORKER_DETECTOR: Detector | None = None


def _init_worker(cfg: dict) -> None:
    global _WORKER_DETECTOR
    _WORKER_DETECTOR = Detector(DetectorConfig.model_validate(cfg))


def _worker_item(args) -> dict[str, Any]:
    item, root = args
    assert _WORKER_DETECTOR is not None
    return _score_item(item, Path(root), _WORKER_DETECTOR)
