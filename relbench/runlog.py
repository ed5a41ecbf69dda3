"""The run log: a versioned record of what produced a run's numbers."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

import relbench

RUN_SCHEMA_VERSION = "1"
"""Schema number of run.json (relbench.versions: a plain integer, bumped only when a reader
must change)."""


class RunInfo(BaseModel):
    """Provenance of a run, written to `summary.json["run"]` (field order is the file's order)."""

    schema_version: str = RUN_SCHEMA_VERSION
    suite: str
    suite_version: str
    prompt_hash: str
    perturbations: list[dict[str, str]] = Field(default_factory=list)
    scorer: str
    scorer_version: str
    scorer_config_hash: str
    scorer_position: str | None = None
    """The scorer's position convention (centroid, bbox, paper_anchor); None in older logs."""
    model: dict[str, Any]
    model_geometry: str | None = None
    """The data geometry a DiT checkpoint was trained on (relbench, paper); None otherwise."""
    seeds: list[int]
    sampling: dict[str, Any] = Field(default_factory=dict)
    relbench_version: str = relbench.__version__
    git_commit: str | None = None
    limit: int | None = None
    """`relbench eval --limit N`: only the suite's first N prompts ran (a smoke run)."""
    extensions: list[dict[str, Any]] = Field(default_factory=list)
    """Parts installed packages provide (model, scorer, perturbations; relbench.extensions):
    group, name, entry point, package and package version. Empty in older logs."""


def git_commit() -> str | None:
    """The commit of the relbench source tree, or None outside a git checkout."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def git_dirty() -> bool | None:
    """Whether the relbench source tree has uncommitted changes (`git status --porcelain` not
    empty), or None outside a git checkout: a run from a dirty tree is not the commit it names."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "status", "--porcelain"], cwd=here, capture_output=True,
                             text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return bool(out.stdout.strip()) if out.returncode == 0 else None


def file_hash(path: Path) -> str:
    """sha256 of a file, for checkpoint hashes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write `obj` as indented JSON to a temporary file beside `path` (named per process, since
    ranks may race), then rename it over `path`: readers never see a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    tmp.replace(path)


def json_hash(obj: Any) -> str:
    """sha256 of an object's canonical JSON."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
