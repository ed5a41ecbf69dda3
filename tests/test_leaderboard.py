"""Leaderboards from tiny oracle/chance runs, their refusals, `relbench log show` and rescoring."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from relbench.cli import app
from relbench.leaderboard import (
    CSV, HTML, JSON, MARKDOWN, PLOT_PERTURBATIONS, PLOT_RELATIONS, IncompatibleRunsError,
    build_leaderboard,
)
from relbench.runlog import RUN_SCHEMA_VERSION
from relbench.scoring import load_detector
from relbench.runner import (
    RUN_INFO, SUMMARY, EvalConfig, RunDirError, open_run, read_samples, rescore_run, run_eval,
)

cli = CliRunner()


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """oracle and chance on three prompts (plus their `typos` versions), two seeds, images saved."""
    root = tmp_path_factory.mktemp("runs")
    prompts = root / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in [
        "red square is above blue circle",
        "blue triangle is to the left of red square",
        "red circle is below and to the right of blue triangle",
    ]))
    out = {}
    for model in ("oracle", "chance"):
        cfg = EvalConfig(model, f"file:{prompts}", perturbations=["typos"], seeds=[0, 1],
                         save_images=True)
        run_eval(cfg, root / model, progress=False)
        out[model] = root / model
    return out


def _copy(run: Path, dest: Path, **changes) -> Path:
    """A copy of `run` with `changes` written into both run.json and summary.json["run"]."""
    shutil.copytree(run, dest)
    info = json.loads((dest / RUN_INFO).read_text())
    summary = json.loads((dest / SUMMARY).read_text())
    info.update(changes)
    summary["run"].update(changes)
    (dest / RUN_INFO).write_text(json.dumps(info))
    (dest / SUMMARY).write_text(json.dumps(summary))
    return dest


def test_build_writes_all_four_files_and_the_plots(runs, tmp_path):
    out = tmp_path / "board"
    result = cli.invoke(app, ["leaderboard", "build", str(runs["oracle"]), str(runs["chance"]),
                              "--out", str(out)])
    assert result.exit_code == 0, result.output
    for name in (MARKDOWN, CSV, JSON, HTML, PLOT_PERTURBATIONS, PLOT_RELATIONS,
                 "grids/oracle--file_prompts.jsonl.png"):
        assert (out / name).stat().st_size > 0, name

    table = pd.read_csv(out / CSV)
    assert list(table["model"]) == ["oracle", "chance"]  # best first
    oracle, chance = table.iloc[0], table.iloc[1]
    assert oracle["overall"] == 1.0 and oracle["relation_strict"] == 1.0
    assert oracle["accuracy:typos"] == 1.0 and oracle["drop:typos"] == 0.0
    assert chance["n_scored"] == 6 and chance["overall"] < 1.0
    assert chance["ci95_low"] <= chance["overall"] <= chance["ci95_high"]

    doc = json.loads((out / JSON).read_text())
    assert doc["scorer"]["scorer"] == "default"
    assert doc["rows"][0]["per_relation"]["above"]["accuracy"] == 1.0
    assert doc["rows"][0]["run"]["seeds"] == [0, 1]
    md = (out / MARKDOWN).read_text()
    assert "| file:prompts.jsonl | oracle | 1.000 [1.000–1.000] |" in md
    assert "## Robustness" in md and "typos" in md
    page = (out / HTML).read_text()
    assert "class='sortable'" in page and "<script>" in page
    assert "accuracy_per_relation.png" in page and "grids/chance--file_prompts.jsonl.png" in page


def test_build_refuses_mixed_scorer_and_suite_versions(runs, tmp_path):
    other = _copy(runs["chance"], tmp_path / "chance-v9", scorer_version="9.9")
    version = re.escape(load_detector("default").version)
    with pytest.raises(IncompatibleRunsError, match=rf"oracle and .*chance-v9: scorer_version "
                                                    rf"differs \('{version}' vs '9\.9'\)"):
        build_leaderboard([runs["oracle"], other], tmp_path / "board")
    result = cli.invoke(app, ["leaderboard", "build", str(runs["oracle"]), str(other),
                              "--out", str(tmp_path / "board")])
    assert result.exit_code == 2 and "scorer_version differs" in result.output

    rehashed = _copy(runs["chance"], tmp_path / "chance-rehash", prompt_hash="0" * 64)
    with pytest.raises(IncompatibleRunsError, match="prompt_hash of suite 'file:prompts.jsonl'"):
        build_leaderboard([runs["oracle"], rehashed], tmp_path / "board")
    with pytest.raises(IncompatibleRunsError, match="both model 'chance'"):
        build_leaderboard([runs["chance"], _copy(runs["chance"], tmp_path / "dup")], tmp_path / "b")


def test_build_refuses_an_incomplete_run_and_a_hand_edited_one(runs, tmp_path):
    partial = _copy(runs["chance"], tmp_path / "partial")
    (partial / SUMMARY).unlink()
    with pytest.raises(RunDirError, match="partial is incomplete"):
        build_leaderboard([runs["oracle"], partial], tmp_path / "board")
    edited = tmp_path / "edited"
    shutil.copytree(runs["chance"], edited)
    info = json.loads((edited / RUN_INFO).read_text())
    (edited / RUN_INFO).write_text(json.dumps({**info, "scorer_version": "9.9"}))
    with pytest.raises(RunDirError, match="run.json and summary.json disagree on scorer_version"):
        build_leaderboard([edited], tmp_path / "board")


def test_other_schema_version_or_missing_run_json_is_a_clear_error(runs, tmp_path):
    old = _copy(runs["oracle"], tmp_path / "old", schema_version="0")
    with pytest.raises(RunDirError, match=f"schema version '0'.*reads schema version "
                                          f"'{RUN_SCHEMA_VERSION}'.*new --out"):
        open_run(old)
    result = cli.invoke(app, ["log", "show", str(old)])
    assert result.exit_code == 2 and "schema version '0'" in result.output
    bare = tmp_path / "bare"
    bare.mkdir()
    result = cli.invoke(app, ["log", "show", str(bare)])
    assert result.exit_code == 2 and "has no run.json" in result.output
    with pytest.raises(ValueError, match="schema version '0'"):  # eval does not resume into it
        run_eval(EvalConfig("oracle", "core", seeds=[0]), old, progress=False)


def test_log_show_prints_provenance_progress_and_metrics(tmp_path):
    run_dir = tmp_path / "core"
    run_eval(EvalConfig("oracle", "core", seeds=[0], perturbations=["typos"]), run_dir,
             progress=False)
    info = json.loads((run_dir / RUN_INFO).read_text())
    result = cli.invoke(app, ["log", "show", str(run_dir)])
    assert result.exit_code == 0, result.output
    out = result.output
    for text in ("core v1.0.0", info["prompt_hash"], "typos v1", info["scorer_config_hash"],
                 "default v" + info["scorer_version"], "oracle", '{"size": 128}', "seeds:",
                 "relbench version:   " + info["relbench_version"], str(info["git_commit"]),
                 "192 / 192 rows (100.0 %), 0 unscorable", "1.000 [1.000–1.000]", "k1 1.000"):
        assert text in out, text
    assert "status:             complete" in out

    (run_dir / SUMMARY).unlink()
    lines = (run_dir / "samples.jsonl").read_text().splitlines(keepends=True)
    (run_dir / "samples.jsonl").write_text("".join(lines[:50]))
    result = cli.invoke(app, ["log", "show", str(run_dir), "--rich"])
    assert result.exit_code == 0, result.output
    assert "incomplete" in result.output and "50 / 192 rows" in result.output
    report = json.loads(cli.invoke(app, ["log", "show", str(run_dir), "--json"]).output)
    assert report["progress"] == {"rows": 50, "expected": 192, "unscorable": 0, "images_saved": 0}
    assert report["metrics"]["n_scored"] == 50


def test_rescore_with_the_same_detector_gives_the_same_metrics(runs, tmp_path):
    out = tmp_path / "rescored"
    summary = rescore_run(runs["chance"], "default", out, progress=False)
    original = json.loads((runs["chance"] / SUMMARY).read_text())
    assert summary["metrics"] == original["metrics"]
    assert summary["rescored_from"]["run_dir"] == str(runs["chance"])
    new_rows = read_samples(out / "samples.jsonl")
    old_rows = read_samples(runs["chance"] / "samples.jsonl")
    assert [r["reason"] for r in new_rows] == [r["reason"] for r in old_rows]
    assert all((out / r["file"]).is_file() for r in new_rows)
    info = json.loads((out / RUN_INFO).read_text())
    assert info["scorer"] == "default" and info["rescored_from"]["scorer_version"] == load_detector("default").version
    # the rescored run is a run like any other: it can be shown and put on a leaderboard
    assert cli.invoke(app, ["log", "show", str(out)]).exit_code == 0
    build_leaderboard([runs["oracle"], out], tmp_path / "board")

    result = cli.invoke(app, ["rescore", str(runs["chance"]), "--detector", "default",
                              "--out", str(out)])
    assert result.exit_code == 2 and "not empty" in result.output


def test_rescore_needs_saved_images(tmp_path):
    run_dir = tmp_path / "noimg"
    run_eval(EvalConfig("oracle", "ood-color-only", seeds=[0]), run_dir, progress=False)
    result = cli.invoke(app, ["rescore", str(run_dir), "--detector", "default", "--quiet"])
    assert result.exit_code == 2
    assert "no image was saved" in result.output and "--save-images" in result.output
    result = cli.invoke(app, ["rescore", str(run_dir), "--detector", "defualt"])
    assert result.exit_code == 2 and "did you mean 'default'" in result.output
