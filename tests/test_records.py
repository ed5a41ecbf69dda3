"""Typed run records (relbench.records): published board logs and fresh runs load as the
pydantic models, provenance is complete, and the published JSON Schemas match the models."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from relbench.records import SampleRow, Summary, read_sample_rows, read_summary, schemas

ROOT = Path(__file__).resolve().parents[1]
BOARD_RUNS = sorted((ROOT / "leaderboards" / "runs").glob("*/*/summary.json"))


def test_the_board_has_run_logs_to_check():
    assert len(BOARD_RUNS) >= 5


@pytest.mark.parametrize("summary_path", BOARD_RUNS,
                         ids=lambda p: f"{p.parent.parent.name}/{p.parent.name}")
def test_published_run_logs_load_as_records(summary_path: Path):
    summary = read_summary(summary_path)
    assert summary.status == "complete" and summary.metrics.n_scored > 0
    samples = sorted(summary_path.parent.glob("samples.jsonl*"))
    assert samples, f"no samples.jsonl beside {summary_path}"
    rows = read_sample_rows(samples[0], limit=50)
    assert rows and all(r.correct in (True, False, None) for r in rows)


@pytest.fixture(scope="module")
def fresh_run(tmp_path_factory) -> Path:
    from relbench.runner import EvalConfig, run_eval

    out = tmp_path_factory.mktemp("run")
    run_eval(EvalConfig(model="oracle", suite="core", perturbations=["template-2"], seeds=[0],
                        limit=2), out, progress=False)
    return out


def test_a_fresh_run_records_its_provenance(fresh_run: Path):
    summary = read_summary(fresh_run)
    prov = summary.provenance
    assert prov is not None
    assert prov.started_utc.utcoffset() == prov.finished_utc.utcoffset() == timedelta(0)
    assert prov.started_utc <= prov.finished_utc
    elapsed = (prov.finished_utc - prov.started_utc).total_seconds()
    assert prov.wall_s == pytest.approx(elapsed, abs=1e-3)
    assert {"numpy", "opencv", "pydantic"} <= set(prov.packages)
    assert prov.git_dirty in (True, False, None)
    raw = json.loads((fresh_run / "summary.json").read_text())
    assert raw["provenance"]["started_utc"].endswith(("Z", "+00:00"))  # ISO 8601, UTC


def test_a_fresh_run_loads_as_records(fresh_run: Path):
    summary = read_summary(fresh_run)
    assert summary.run.suite == "core" and set(summary.metrics.per_perturbation) == {"template-2"}
    rows = read_sample_rows(fresh_run / "samples.jsonl")
    assert len(rows) == 4 and {r.perturbation for r in rows} == {None, "template-2"}
    assert all(r.spec is not None and r.spec.relation == r.relation for r in rows)


def test_records_keep_fields_they_do_not_know():
    row = SampleRow.model_validate({"sample_id": "s", "suite": "core", "prompt_id": "p",
                                    "source_id": "p", "prompt": "x", "seed": 0, "correct": None,
                                    "error": "no image", "my_field": 3})
    assert row.model_dump()["my_field"] == 3


def test_a_malformed_row_names_its_file_and_line(tmp_path: Path):
    path = tmp_path / "samples.jsonl"
    good = {"sample_id": "s", "suite": "core", "prompt_id": "p", "source_id": "p", "prompt": "x",
            "seed": 0, "correct": True}
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, "seed": "zero"}) + "\n")
    with pytest.raises(ValueError, match=r"samples.jsonl line 2: not a relbench sample row"):
        read_sample_rows(path)
    with pytest.raises(ValueError, match="not a relbench summary"):
        (tmp_path / "summary.json").write_text(json.dumps({"status": "done"}))
        read_summary(tmp_path)


def test_published_schemas_match_the_models():
    """Regenerate with `python -m relbench.records docs/schemas`."""
    published = ROOT / "docs" / "schemas"
    for name, text in schemas().items():
        path = published / name
        assert path.exists() and path.read_text() == text, (
            f"{path} is out of date: python -m relbench.records docs/schemas")
    assert json.loads(schemas()["summary.schema.json"])["properties"]["status"]["enum"] == [
        "complete", "incomplete", "failed", "partial"]
    assert Summary.model_json_schema()["title"] == "Summary"


def test_image_hashes_identify_what_was_drawn(fresh_run: Path, tmp_path: Path):
    from relbench.records import image_sha256, images_hash
    from relbench.runner import EvalConfig, run_eval

    rows = [json.loads(line) for line in (fresh_run / "samples.jsonl").read_text().splitlines()]
    assert all(len(r["image_sha256"]) == 64 for r in rows)
    assert read_summary(fresh_run).provenance.images_sha256 == images_hash(rows)
    # The oracle draws the same images again: same per-image hashes for the shared samples.
    run_eval(EvalConfig(model="oracle", suite="core", seeds=[0], limit=1), tmp_path / "again",
             progress=False)
    lines = (tmp_path / "again" / "samples.jsonl").read_text().splitlines()
    again = [json.loads(line) for line in lines]
    first = {r["sample_id"]: r["image_sha256"] for r in rows}
    assert again and all(first[r["sample_id"]] == r["image_sha256"] for r in again)
    img = np.zeros((4, 4, 3), np.uint8)
    assert image_sha256(img) != image_sha256(img.reshape(4, 12))  # shape is part of the hash
    img2 = img.copy()
    img2[0, 0, 0] = 1
    assert image_sha256(img) != image_sha256(img2)
    assert images_hash([{"sample_id": "a"}]) is None


def test_log_show_prints_the_provenance(fresh_run: Path):
    from typer.testing import CliRunner

    from relbench.cli import app

    out = CliRunner().invoke(app, ["log", "show", str(fresh_run), "--plain"]).output
    summary = json.loads((fresh_run / "summary.json").read_text())
    prov = summary["provenance"]
    assert f"{prov['started_utc']} → {prov['finished_utc']}" in out
    assert f"images hash:        {prov['images_sha256']}" in out or prov["images_sha256"] in out
    assert "numpy " in out and "git " in out
