"""`relbench rescore --scorer NAME`: a run's saved images re-scored by a scorer an installed
package registers, with the same --scorer/--detector rules as `relbench score` and `eval`, and
the scorer's name, version and package recorded in the new run.json."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from relbench import extensions

MODULE = '''
from relbench.scoring.judge import ScoreResult


class SizeScorer:
    """Calls every image wrong and says its size (a test scorer that shows it saw the image)."""

    name = "size"
    version = "2"
    config_hash = "size-1"

    def describe(self):
        return {"name": self.name, "version": self.version, "config_hash": self.config_hash}

    def score(self, image, spec):
        return ScoreResult(correct=False, relation_strict=False, relation_loose=False,
                           shape=True, color=True, exist_binding=True, unique_binding=True,
                           dx=None, dy=None, found_relation=None,
                           reason=f"image {image.shape[1]}x{image.shape[0]}")
'''


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """A fake distribution `sizeplug` 0.3 that registers scorer `size`, on sys.path for a test."""
    root = tmp_path / "site"
    info = root / "sizeplug-0.3.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: sizeplug\nVersion: 0.3\n")
    (info / "entry_points.txt").write_text(textwrap.dedent("""
        [relbench.scorers]
        size = sizeplug_mod:SizeScorer
        """))
    (root / "sizeplug_mod.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(root))
    extensions.refresh()
    yield root
    sys.modules.pop("sizeplug_mod", None)
    extensions.refresh()


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory) -> Path:
    """A finished oracle run on the first 2 core prompts, 2 seeds, with its images saved."""
    from relbench.runner import EvalConfig, run_eval

    out = tmp_path_factory.mktemp("runs") / "oracle"
    run_eval(EvalConfig(model="oracle", suite="core", seeds=[0, 1], limit=2, save_images=True),
             out, progress=False)
    return out


def _run_json(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text())


def test_a_registered_scorer_rescores_the_saved_images_and_is_recorded(plugin, saved_run,
                                                                        tmp_path):
    from relbench.records import read_summary
    from relbench.runner import read_samples, rescore_run

    out = tmp_path / "rescored"
    summary = rescore_run(saved_run, None, out, progress=False, scorer="size")
    run = _run_json(out)
    assert (run["scorer"], run["scorer_version"], run["scorer_config_hash"]) == (
        "size", "2.0.0", "size-1")
    assert run["scorer_position"] is None  # no detector config, no position convention
    assert [(e["group"], e["name"], e["package"], e["package_version"])
            for e in run["extensions"]] == [("relbench.scorers", "size", "sizeplug", "0.3.0")]
    assert run["rescored_from"]["scorer"] == "default"
    rows = read_samples(out / "samples.jsonl")
    assert len(rows) == 4 and {r["reason"] for r in rows} == {"image 128x128"}
    assert (summary["metrics"]["n_scored"], summary["metrics"]["overall"]) == (4, 0.0)
    assert read_summary(out).run.scorer == "size"  # a typed record like any other run


def test_rescoring_back_with_the_detector_drops_the_scorer_package(plugin, saved_run, tmp_path):
    from relbench.runner import rescore_run

    first = tmp_path / "by-size"
    rescore_run(saved_run, None, first, progress=False, scorer="size")
    back = tmp_path / "by-default"
    summary = rescore_run(first, "default", back, progress=False)
    run = _run_json(back)
    assert run["scorer"] == "default" and run["extensions"] == []
    assert run["scorer_position"] is not None
    original = json.loads((saved_run / "summary.json").read_text())["metrics"]["overall"]
    assert summary["metrics"]["overall"] == original == 1.0


def test_the_command_takes_scorer_and_names_the_default_directory(plugin, saved_run):
    from relbench.cli import app

    res = CliRunner().invoke(app, ["rescore", str(saved_run), "--scorer", "size", "--quiet"])
    assert res.exit_code == 0, res.output
    out = saved_run.with_name(f"{saved_run.name}.rescored-size-v2.0.0")
    assert "with size v2.0.0: overall 0.000" in res.output and str(out) in res.output
    assert _run_json(out)["extensions"][0]["package"] == "sizeplug"


@pytest.mark.parametrize("args, message", [
    (["--scorer", "size", "--detector", "paper"],
     "--detector configures the default scorer; scorer 'size' takes none"),
    (["--scorer", "siez"], "unknown scorer 'siez'"),
    ([], "name the new scorer: --detector NAME"),
])
def test_bad_scorer_options_are_usage_errors(plugin, saved_run, tmp_path, args, message):
    from relbench.cli import app

    out = tmp_path / "never"
    res = CliRunner().invoke(app, ["rescore", str(saved_run), *args, "--out", str(out)])
    assert res.exit_code == 2 and message in res.output
    assert not out.exists()


def test_the_default_scorer_by_name_is_the_detector(saved_run, tmp_path):
    from relbench.cli import app

    out = tmp_path / "default"
    res = CliRunner().invoke(app, ["rescore", str(saved_run), "--scorer", "default",
                                   "--detector", "paper", "--out", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    run = _run_json(out)
    assert run["scorer"] == "paper" and run["scorer_position"] == "paper_anchor"
