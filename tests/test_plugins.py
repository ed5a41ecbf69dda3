"""Extension from outside the repository: a package registers a model, a perturbation and a
scorer through entry points (relbench.extensions) and relbench uses and records them.

The "package" is a tiny fake distribution: a folder on sys.path holding a module and a
`fakeplug-1.2.3.dist-info` with METADATA and entry_points.txt, as pip would install it."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from relbench import extensions

PLUGIN_MODULE = '''
"""A third-party relbench extension (test fixture)."""
import numpy as np

from relbench.scoring.judge import ScoreResult


class GrayModel:
    """Draws a flat gray image of `size` px (or the size given after `gray:`)."""

    name = "gray"

    def __init__(self, size=32):
        self.size = int(size)

    def generate(self, requests):
        return [np.full((self.size, self.size, 3), 128, np.uint8) for _ in requests]

    def describe(self):
        return {"name": self.name, "args": {"size": self.size}, "checkpoint_hash": None}


def gray(size=32):
    return GrayModel(size)


def shout(prompt, rng):
    """Upper-cases the colour words (a test perturbation)."""
    from dataclasses import replace
    return replace(prompt, prompt=prompt.prompt.replace("red", "RED").replace("blue", "BLUE"))


shout.version = "7"


class MeanScorer:
    """Calls an image correct when its mean brightness is above 100 (a test scorer)."""

    name = "mean"
    version = "3"
    config_hash = "mean-100"

    def describe(self):
        return {"name": self.name, "version": self.version, "config_hash": self.config_hash}

    def score(self, image, spec):
        ok = bool(image.mean() > 100)
        return ScoreResult(correct=ok, relation_strict=ok, relation_loose=ok, shape=ok, color=ok,
                           exist_binding=ok, unique_binding=ok, dx=None, dy=None,
                           found_relation=None, reason=f"mean brightness {image.mean():.0f}")


class NotAScorer:
    pass
'''

ENTRY_POINTS = """
[relbench.models]
gray = fakeplug_mod:gray
oracle = fakeplug_mod:gray

[relbench.perturbations]
shout = fakeplug_mod:shout

[relbench.scorers]
mean = fakeplug_mod:MeanScorer
broken = fakeplug_mod:NotAScorer
missing = fakeplug_missing_module:Scorer
"""


def _install(root: Path, dist: str, version: str, entry_points: str, module: str | None) -> None:
    """A distribution `dist` as pip lays it out in site-packages: module + dist-info."""
    info = root / f"{dist}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))
    if module is not None:
        (root / "fakeplug_mod.py").write_text(module)


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """The fake distribution `fakeplug` 1.2.3 installed on sys.path for one test."""
    root = tmp_path / "site"
    _install(root, "fakeplug", "1.2.3", ENTRY_POINTS, PLUGIN_MODULE)
    monkeypatch.syspath_prepend(str(root))
    extensions.refresh()
    yield root
    sys.modules.pop("fakeplug_mod", None)
    from relbench.suites import perturbations

    perturbations._REGISTRY.pop("shout", None)
    extensions.refresh()


def test_entry_points_are_found_with_their_package_and_version(plugin):
    assert "mean" in extensions.names(extensions.SCORERS)
    assert extensions.provenance(extensions.SCORERS, "mean") == {
        "group": "relbench.scorers", "name": "mean", "entry_point": "fakeplug_mod:MeanScorer",
        "package": "fakeplug", "package_version": "1.2.3"}
    assert extensions.find(extensions.SCORERS, "nothing") is None


def test_the_entry_point_tables_are_read_once(plugin, monkeypatch):
    import importlib.metadata

    calls = []
    real = importlib.metadata.entry_points
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        lambda **kw: calls.append(kw) or real(**kw))
    extensions.refresh()
    for _ in range(3):
        extensions.find(extensions.SCORERS, "mean")
        extensions.names(extensions.SCORERS)
    assert calls == [{"group": "relbench.scorers"}]


def test_a_name_two_packages_claim_is_an_error_naming_both(plugin):
    _install(plugin, "otherplug", "0.1", "[relbench.scorers]\nmean = otherplug:Mean\n", None)
    extensions.refresh()
    with pytest.raises(ValueError, match="more than one package: fakeplug .*otherplug"):
        extensions.find(extensions.SCORERS, "mean")


def test_a_registered_scorer_loads_and_satisfies_the_protocol(plugin):
    from relbench.scoring.api import Scorer, list_scorers, load_scorer

    assert list_scorers()[0] == "default" and "mean" in list_scorers()
    scorer = load_scorer("mean")
    assert isinstance(scorer, Scorer) and scorer.version == "3.0.0"  # "3", read as semver
    assert isinstance(load_scorer(None), Scorer)  # the classical detector is the built-in one


def test_scorer_errors_name_the_problem(plugin):
    from relbench.scoring.api import load_scorer

    with pytest.raises(ValueError, match="unknown scorer 'maen'.*did you mean 'mean'"):
        load_scorer("maen")
    with pytest.raises(ValueError, match="'broken' from package fakeplug is not a relbench Scorer"):
        load_scorer("broken")
    with pytest.raises(ImportError, match="'missing'.*fakeplug 1.2.3 failed to load"):
        load_scorer("missing")
    with pytest.raises(ValueError, match="--detector configures the default scorer"):
        load_scorer("mean", detector="paper")


def _folder(root: Path) -> Path:
    import cv2

    root.mkdir()
    cv2.imwrite(str(root / "light.png"), np.full((16, 16, 3), 200, np.uint8))
    cv2.imwrite(str(root / "dark.png"), np.full((16, 16, 3), 20, np.uint8))
    rows = [{"file": f, "prompt": "red circle above blue square"}
            for f in ("light.png", "dark.png")]
    (root / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def test_relbench_score_uses_a_registered_scorer_and_names_its_package(plugin, tmp_path):
    from relbench.cli import app

    folder = _folder(tmp_path / "imgs")
    res = CliRunner().invoke(app, ["score", str(folder), "--scorer", "mean", "--json", "--quiet"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["detector"] == {"name": "mean", "version": "3.0.0", "config_hash": "mean-100"}
    assert summary["scorer_extension"]["package"] == "fakeplug"
    assert summary["scorer_extension"]["package_version"] == "1.2.3"
    lines = (folder / "scores.jsonl").read_text().splitlines()
    rows = {r["file"]: r for r in map(json.loads, lines)}
    assert rows["light.png"]["correct"] is True and rows["dark.png"]["correct"] is False
    assert rows["dark.png"]["reason"] == "mean brightness 20"


def test_relbench_score_refuses_workers_with_a_registered_scorer(plugin, tmp_path):
    from relbench.cli import app

    folder = _folder(tmp_path / "imgs")
    res = CliRunner().invoke(app, ["score", str(folder), "--scorer", "mean", "--workers", "2"])
    assert res.exit_code == 2 and "needs the default scorer" in res.output


def test_a_registered_model_loads_by_name_and_with_an_argument(plugin):
    from relbench.models import list_models, load_model
    from relbench.models.registry import model_extension

    assert "gray" in list_models()
    assert load_model("gray").size == 32 and load_model("gray:8").size == 8
    assert model_extension("gray:8")["package"] == "fakeplug"


def test_relbench_own_names_win_over_a_package_that_reuses_them(plugin):
    from relbench.models import load_model
    from relbench.models.registry import model_extension

    assert load_model("oracle").__class__.__name__ == "OracleModel"
    assert model_extension("oracle") is None


def test_a_registered_perturbation_applies_with_its_version(plugin):
    from relbench.suites import get_perturbation, get_suite, list_perturbations, perturb_suite

    assert "shout" in list_perturbations()
    pert = get_perturbation("shout")
    assert pert.version == "7.0.0" and pert.extension["package_version"] == "1.2.3"  # "7" as semver
    suite = perturb_suite(get_suite("core"), "shout")
    assert suite.version == "1.0.0+shout-7.0.0"
    assert "RED" in suite.prompts[0].prompt.upper() and "RED" in suite.prompts[0].prompt


def test_an_eval_with_registered_parts_records_their_packages(plugin, tmp_path):
    from relbench.runner import EvalConfig, run_eval

    cfg = EvalConfig(model="gray:16", suite="core", perturbations=["shout"], seeds=[0],
                     scorer="mean", limit=1)
    summary = run_eval(cfg, tmp_path / "run", progress=False)
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["scorer"] == "mean" and run["scorer_version"] == "3.0.0"
    assert run["scorer_position"] is None
    assert sorted((e["group"], e["name"], e["package"], e["package_version"])
                  for e in run["extensions"]) == [
        ("relbench.models", "gray", "fakeplug", "1.2.3"),
        ("relbench.perturbations", "shout", "fakeplug", "1.2.3"),
        ("relbench.scorers", "mean", "fakeplug", "1.2.3"),
    ]
    m = summary["metrics"]  # gray 128 is "correct" to the mean-brightness scorer
    assert (m["n_scored"], m["overall"]) == (1, 1.0)
    assert m["per_perturbation"]["shout"]["n_scored"] == 1
    # The same command resumes (its record matches); an eval without extensions records none.
    run_eval(cfg, tmp_path / "run", progress=False)
    run_eval(EvalConfig(model="oracle", suite="core", seeds=[0], limit=1), tmp_path / "plain",
             progress=False)
    assert json.loads((tmp_path / "plain" / "run.json").read_text())["extensions"] == []
