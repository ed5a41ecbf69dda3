"""Typed run records: the rows of `samples.jsonl`, `summary.json` and its provenance.

`relbench eval` writes plain JSON; these pydantic models are its contract, so a reader (the
leaderboard, a user's notebook, another tool) validates what it loads instead of guessing at
dict keys. Every model keeps fields it does not know (`extra="allow"`): logs written by older
or newer relbench versions still load, and a row keeps whatever its metadata carried.

JSON Schemas of these models are published in `docs/schemas/` and regenerated with

    python -m relbench.records docs/schemas

(`tests/test_records.py` fails when the published files drift from the models).
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from relbench.runlog import RunInfo
from relbench.scoring.config import DetectorConfig

RECORDS_VERSION = "1"
"""Bumped when a field of these records changes meaning or is removed (adding one is not)."""

PACKAGES = (
    ("numpy", "numpy"),
    ("opencv", "cv2"),
    ("scikit-image", "skimage"),
    ("pillow", "PIL"),
    ("pydantic", "pydantic"),
    ("torch", "torch"),
    ("diffusers", "diffusers"),
    ("transformers", "transformers"),
    ("safetensors", "safetensors"),
)
"""(label, import name) of the packages whose version can change a run's numbers; each is
recorded when this process has imported it (OpenCV decides the scorer's shape fits, torch and
diffusers the generated images)."""


class _Record(BaseModel):
    model_config = ConfigDict(extra="allow")


class ObjectRecord(_Record):
    """One object of a spec; None where the prompt leaves it unsaid."""

    shape: str | None = None
    color: str | None = None


class SpecRecord(_Record):
    """What a prompt asks for: subject, relation to reference, reference."""

    subject: ObjectRecord
    relation: str
    reference: ObjectRecord


class DetectionRecord(_Record):
    """An object the scorer found; positions and area are fractions of the image size."""

    shape: str | None = None
    color: str | None = None
    x: float
    y: float
    area: float | None = None


class SampleRow(_Record):
    """One row of `samples.jsonl`: one (prompt, seed) image and its verdict.

    A row that could not be scored has `correct` null and an `error`; one whose image failed to
    generate also has `generation_failed`. Board logs may leave out `detections` (the images
    can be re-scored from a run saved with images)."""

    sample_id: str
    suite: str
    prompt_id: str
    source_id: str
    perturbation: str | None = None
    prompt: str
    spec: SpecRecord | None = None
    relation: str | None = None
    seed: int
    correct: bool | None
    relation_strict: bool | None = None
    relation_loose: bool | None = None
    shape: bool | None = None
    color: bool | None = None
    exist_binding: bool | None = None
    unique_binding: bool | None = None
    dx: float | None = None
    dy: float | None = None
    found_relation: str | None = None
    reason: str | None = None
    detections: list[DetectionRecord] | None = None
    error: str | None = None
    generation_failed: bool | None = None
    file: str | None = None
    """The saved image, relative to the run directory (`eval --save-images`)."""
    image_sha256: str | None = None
    """`image_sha256` of the image the model returned (absent in older logs)."""


class SetMetrics(_Record):
    """Accuracies of one set of rows (the originals, or one perturbation)."""

    n: int
    n_scored: int
    n_unscorable: int
    overall: float | None
    """The headline: strict relation ∧ shapes ∧ colours ∧ unique binding."""
    overall_ci95: list[float] | None = None
    relation_strict: float | None = None
    relation_loose: float | None = None
    shape: float | None = None
    color: float | None = None
    exist_binding: float | None = None
    unique_binding: float | None = None
    per_relation: dict[str, float | None] = Field(default_factory=dict)


class Metrics(SetMetrics):
    """`summary.json["metrics"]`: the originals' metrics plus one entry per perturbation."""

    per_perturbation: dict[str, SetMetrics] = Field(default_factory=dict)


class Provenance(_Record):
    """When, where and with what software an invocation of `relbench eval` ran."""

    records_version: str = RECORDS_VERSION
    started_utc: datetime
    finished_utc: datetime
    wall_s: float
    relbench_version: str
    git_commit: str | None = None
    git_dirty: bool | None = None
    """`git status --porcelain` of the source tree was not empty; None outside a checkout."""
    python: str
    packages: dict[str, str] = Field(default_factory=dict)
    images_sha256: str | None = None
    """`images_hash` of the rows: equal for two runs that drew the same images; None when no
    row has an image hash (older logs)."""


class Summary(_Record):
    """`summary.json`: status, the run's configuration (`RunInfo`), metrics and provenance
    (absent in logs written before it existed)."""

    status: Literal["complete", "incomplete", "failed", "partial"]
    run: RunInfo
    metrics: Metrics
    provenance: Provenance | None = None


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


def package_versions() -> dict[str, str]:
    """label → version of each of `PACKAGES` this process has imported."""
    out: dict[str, str] = {}
    for label, module in PACKAGES:
        mod = sys.modules.get(module)
        version = getattr(mod, "__version__", None) if mod is not None else None
        if version is not None:
            out[label] = str(version)
    return out


def image_sha256(image: Any) -> str:
    """sha256 of an image array's shape, dtype and pixels (C order): the same pixels give the
    same hash whatever produced them."""
    import hashlib

    import numpy as np

    arr = np.ascontiguousarray(image)
    h = hashlib.sha256(f"{arr.dtype.str}{arr.shape}".encode())
    h.update(arr.tobytes())
    return h.hexdigest()


def images_hash(rows: list[dict[str, Any]]) -> str | None:
    """One sha256 over the (sample_id, image_sha256) pairs of `rows`, in sample_id order; None
    when no row has an image hash."""
    import hashlib

    pairs = sorted((str(r.get("sample_id")), r["image_sha256"])
                   for r in rows if r.get("image_sha256"))
    if not pairs:
        return None
    return hashlib.sha256("".join(f"{s}\t{h}\n" for s, h in pairs).encode()).hexdigest()


def provenance(
    started: datetime, *, git_commit: str | None = None, git_dirty: bool | None = None,
    rows: list[dict[str, Any]] | None = None,
) -> Provenance:
    """The provenance of an invocation that began at `started` and ends now (with `rows`, the
    run-level hash of their images)."""
    import platform

    import relbench

    finished = utc_now()
    return Provenance(
        started_utc=started, finished_utc=finished,
        wall_s=round((finished - started).total_seconds(), 3),
        relbench_version=relbench.__version__, git_commit=git_commit, git_dirty=git_dirty,
        python=platform.python_version(), packages=package_versions(),
        images_sha256=images_hash(rows or []),
    )


def read_summary(path: Path) -> Summary:
    """`summary.json` (or its run directory) as a `Summary`; a ValueError naming the file when
    it does not match the record."""
    path = Path(path)
    if path.is_dir():
        path = path / "summary.json"
    try:
        return Summary.model_validate_json(path.read_text())
    except ValueError as e:
        raise ValueError(f"{path}: not a relbench summary: {e}") from None


def read_sample_rows(path: Path, limit: int | None = None) -> list[SampleRow]:
    """The rows of a `samples.jsonl` (or `.jsonl.gz`; at most `limit`); a ValueError naming the
    file and line of the first row that does not match the record."""
    import gzip

    path = Path(path)
    rows: list[SampleRow] = []
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if limit is not None and len(rows) >= limit:
                break
            if not line.strip():
                continue
            try:
                rows.append(SampleRow.model_validate_json(line))
            except ValueError as e:
                raise ValueError(f"{path} line {n}: not a relbench sample row: {e}") from None
    return rows


SCHEMAS: dict[str, type[BaseModel]] = {
    "sample_row": SampleRow,
    "summary": Summary,
    "run_info": RunInfo,
    "provenance": Provenance,
    "detector_config": DetectorConfig,
}
"""docs/schemas/<name>.schema.json ← model."""


def schemas() -> dict[str, str]:
    """File name → JSON Schema text of every published record."""
    return {f"{name}.schema.json": json.dumps(model.model_json_schema(), indent=2) + "\n"
            for name, model in SCHEMAS.items()}


def write_schemas(directory: Path) -> list[Path]:
    """Write `schemas()` into `directory`; returns the files written."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in schemas().items():
        (directory / name).write_text(text)
        written.append(directory / name)
    return written


def main(argv: list[str] | None = None) -> int:
    """`python -m relbench.records DIR`: write the JSON Schemas into DIR."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write("usage: python -m relbench.records DIR (e.g. docs/schemas)\n")
        return 2
    for path in write_schemas(Path(args[0])):
        sys.stdout.write(f"wrote {path}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
